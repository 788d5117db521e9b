//! GPU pods on a real API server: a tenant with NVIDIA quota may run pods in the vendor's sandbox
//! class (the kind overlay's `kata-qemu-nvidia-gpu`, handler runc) only when they request GPUs and
//! are pinned to amd64 nodes; the plain class cannot take GPUs and tenants without GPU quota
//! cannot use the GPU class. A GPU SecureWorkload gets the class, the taint toleration and the
//! amd64 affinity. Server-side dry runs: the node has no GPU. Run by `e2e/localkube.sh` (or
//! `e2e/kind.sh`) with the kind overlay installed.
#![cfg(feature = "cluster")]

use e2e::cluster::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, DeleteParams, PostParams};
use scs_operator::api::SecureWorkload;
use serde_json::{Value, json};

const GPU_CLASS: &str = "kata-qemu-nvidia-gpu";

fn pod(class: &str, gpus: Option<u32>, placement: Value) -> Pod {
    let mut spec = busybox_pod_spec(&["sleep", "3600"]);
    spec["runtimeClassName"] = json!(class);
    if let Some(count) = gpus {
        spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = json!(count);
    }
    let mut manifest = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec});
    json_patch::merge(&mut manifest, &json!({"spec": placement}));
    serde_json::from_value(manifest).unwrap()
}

#[tokio::test]
async fn gpu_pods_need_the_vendor_class_and_amd64_nodes() {
    let client = client().await;
    let classes: Api<RuntimeClass> = Api::all(client.clone());
    let class = until("the GPU RuntimeClass", || async { classes.get_opt(GPU_CLASS).await.ok()? }).await;
    assert_eq!(class.metadata.labels.unwrap()["app.kubernetes.io/managed-by"], "scs-operator");

    let ns = "e2e-gpu";
    ready_tenant(&client, ns, json!({"quota": {"cpu": "2", "memory": "2Gi", "gpu": {"nvidia": 1}}})).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let dry = PostParams { dry_run: true, ..Default::default() };
    let amd64 = json!({"nodeSelector": {"kubernetes.io/arch": "amd64"}});
    let affinity = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}}});
    let any_arch = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]}]}]}}}});

    refused(
        "GPUs in the plain class",
        pods.create(&dry, &pod("kata-qemu", Some(1), amd64.clone())).await,
        &["must set runtimeClassName: kata-qemu-nvidia-gpu"],
    );
    refused(
        "GPUs anywhere",
        pods.create(&dry, &pod(GPU_CLASS, Some(1), json!({}))).await,
        &["must run on amd64 nodes"],
    );
    refused(
        "GPUs on Arm too",
        pods.create(&dry, &pod(GPU_CLASS, Some(1), any_arch)).await,
        &["must run on amd64 nodes"],
    );
    refused(
        "the GPU class without GPUs",
        pods.create(&dry, &pod(GPU_CLASS, None, amd64.clone())).await,
        &["is for pods that request its accelerators"],
    );
    pods.create(&dry, &pod(GPU_CLASS, Some(1), amd64)).await.expect("GPU pod with nodeSelector");
    pods.create(&dry, &pod(GPU_CLASS, Some(1), affinity)).await.expect("GPU pod with node affinity");
    pods.create(&dry, &pod("kata-qemu", None, json!({}))).await.expect("a plain pod");

    // Without GPU quota the GPU class is not the tenant's at all.
    let plain = "e2e-gpu-none";
    ready_tenant(&client, plain, json!({"quota": {"cpu": "1", "memory": "1Gi"}})).await;
    let other: Api<Pod> = Api::namespaced(client.clone(), plain);
    refused(
        "the GPU class without quota",
        other.create(&dry, &pod(GPU_CLASS, None, json!({}))).await,
        &["must set runtimeClassName: kata-qemu"],
    );

    // A GPU SecureWorkload: the vendor's class, its taint tolerated, amd64 only.
    let workloads: Api<SecureWorkload> = Api::namespaced(client.clone(), ns);
    apply(
        &workloads,
        "infer",
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": "infer", "namespace": ns},
               "spec": {"kind": "Deployment", "replicas": 0, "gpu": {"vendor": "nvidia", "count": 1, "model": "Tesla-T4"},
                        "template": {"spec": busybox_pod_spec(&["sleep", "3600"])}}}),
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let deployment = until("Deployment infer", || async { deployments.get_opt("infer").await.ok()? }).await;
    let template = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(template.runtime_class_name.as_deref(), Some(GPU_CLASS));
    let toleration = &template.tolerations.as_ref().unwrap()[0];
    assert_eq!((toleration.key.as_deref(), toleration.effect.as_deref()), (Some("nvidia.com/gpu"), Some("NoSchedule")));
    // The template as written is what the ReplicaSet will create: the API server admits it.
    let from_template = serde_json::to_value(&template).unwrap();
    assert_eq!(from_template["containers"][0]["resources"]["limits"]["nvidia.com/gpu"], "1");
    let candidate: Pod = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "from-template"}, "spec": from_template}),
    )
    .unwrap();
    pods.create(&dry, &candidate).await.expect("the workload's pod template is admitted");

    // An uncertified model is an invalid spec naming the field.
    apply(
        &workloads,
        "odd",
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": "odd", "namespace": ns},
               "spec": {"kind": "Deployment", "replicas": 0, "gpu": {"vendor": "nvidia", "count": 1, "model": "A100-SXM4-40GB"},
                        "template": {"spec": busybox_pod_spec(&["sleep", "3600"])}}}),
    )
    .await;
    let message = until("odd workload InvalidSpec", || async {
        let status = workloads.get("odd").await.ok()?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (ready.reason == "InvalidSpec").then(|| ready.message.clone())
    })
    .await;
    assert!(message.contains("spec.gpu.model"), "{message}");

    for name in ["infer", "odd"] {
        workloads.delete(name, &DeleteParams::default()).await.unwrap();
    }
    delete_tenant(&client, ns).await;
    delete_tenant(&client, plain).await;
}
