//! GPU pods on a real API server: a tenant with NVIDIA quota may run pods in the vendor's sandbox
//! class (the kind overlay's `kata-qemu-nvidia-gpu`, handler runc) only when they request GPUs and
//! are pinned to amd64 nodes; the plain class cannot take GPUs and tenants without GPU quota
//! cannot use the GPU class. A GPU SecureWorkload gets the class, the taint toleration and the
//! amd64, certified-node and CUDA affinity, and a pod with that affinity is placed only once the
//! node carries the device plugin's labels with a CUDA version in bounds. Server-side dry runs
//! otherwise: the node has no GPU. Run by `e2e/localkube.sh` (or
//! `e2e/kind.sh`) with the kind overlay installed.
#![cfg(feature = "cluster")]

use e2e::cluster::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
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
    apply_gpu_workload(&client, ns, 0, json!({"min": "11.0", "max": "11.2"})).await;
    let workloads: Api<SecureWorkload> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let deployment = until("Deployment infer", || async { deployments.get_opt("infer").await.ok()? }).await;
    let template = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(template.runtime_class_name.as_deref(), Some(GPU_CLASS));
    let toleration = &template.tolerations.as_ref().unwrap()[0];
    assert_eq!((toleration.key.as_deref(), toleration.effect.as_deref()), (Some("nvidia.com/gpu"), Some("NoSchedule")));
    // Certified nodes only, with CUDA 11.0 to 11.2 (integer label values: Gt/Lt are strict).
    let affinity = serde_json::to_value(template.affinity.as_ref().unwrap()).unwrap();
    assert_eq!(
        affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"],
        json!([{"matchExpressions": [
            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
            {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["Tesla-T4"]},
            {"key": "scs.dev/gpu-certified", "operator": "In", "values": ["true"]},
            {"key": "scs.dev/cuda-driver-version", "operator": "Gt", "values": ["10999"]},
            {"key": "scs.dev/cuda-driver-version", "operator": "Lt", "values": ["11021"]},
        ]}])
    );
    schedules_only_where_labelled(&client, affinity).await;
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

    // Bad CUDA bounds are refused by the CRD, naming the field.
    let with_cuda = |vendor: &str, cuda: Value| -> SecureWorkload {
        serde_json::from_value(json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload",
            "metadata": {"name": "cuda", "namespace": ns},
            "spec": {"kind": "Deployment", "replicas": 0, "gpu": {"vendor": vendor, "count": 1, "cuda": cuda},
                     "template": {"spec": busybox_pod_spec(&["sleep", "3600"])}}}))
        .unwrap()
    };
    refused(
        "a CUDA version that is not one",
        workloads.create(&dry, &with_cuda("nvidia", json!({"max": "11.x"}))).await,
        &["spec.gpu.cuda.max", "must be a CUDA version major.minor, e.g. 11.2"],
    );
    refused(
        "CUDA bounds the wrong way round",
        workloads.create(&dry, &with_cuda("nvidia", json!({"min": "11.10", "max": "11.2"}))).await,
        &["spec.gpu.cuda.min", "min must not exceed max"],
    );
    refused(
        "CUDA on Kunlun",
        workloads.create(&dry, &with_cuda("kunlun", json!({"max": "11.2"}))).await,
        &["spec.gpu.cuda", "cuda applies to vendor nvidia only"],
    );
    refused(
        "empty CUDA bounds",
        workloads.create(&dry, &with_cuda("nvidia", json!({}))).await,
        &["spec.gpu.cuda", "set min, max or both"],
    );
    workloads.create(&dry, &with_cuda("nvidia", json!({"min": "11.2"}))).await.expect("a CUDA minimum alone");

    for name in ["infer", "odd"] {
        workloads.delete(name, &DeleteParams::default()).await.unwrap();
    }
    delete_tenant(&client, ns).await;
    delete_tenant(&client, plain).await;
}

/// The node labels the placement check sets, with the values the CUDA bounds 11.0..=11.2 refuse
/// and accept.
const PLACEMENT_LABELS: [&str; 3] = ["nvidia.com/gpu.product", "scs.dev/gpu-certified", "scs.dev/cuda-driver-version"];

async fn set_node_labels(nodes: &Api<Node>, node: &str, labels: Value) {
    nodes.patch(node, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": labels}}))).await.unwrap();
}

/// A pod with the workload's affinity (no GPU request: the node has none) stays unscheduled on
/// the node without the plugin's labels and with a CUDA version out of bounds, and is scheduled
/// once the labels fit. The node's own values of these labels (a device plugin run may have
/// written them) are put back afterwards.
async fn schedules_only_where_labelled(client: &kube::Client, affinity: Value) {
    let nodes: Api<Node> = Api::all(client.clone());
    // The node pods can go to (kind's worker; localkube's only node).
    let all = nodes.list(&Default::default()).await.unwrap().items;
    let untainted = |n: &Node| n.spec.as_ref().and_then(|s| s.taints.as_ref()).is_none_or(Vec::is_empty);
    let node = all.into_iter().find(untainted).expect("a node without taints");
    let name = node.name_any();
    let before: serde_json::Map<String, Value> =
        PLACEMENT_LABELS.iter().map(|key| (key.to_string(), json!(node.labels().get(*key)))).collect();
    set_node_labels(&nodes, &name, json!({"scs.dev/gpu-certified": null, "scs.dev/cuda-driver-version": null})).await;

    let ns = "e2e-gpu-placement";
    plain_namespace(client, ns, json!({})).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut spec = busybox_pod_spec(&["sleep", "3600"]);
    spec["affinity"] = affinity;
    let pod: Pod = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "placed"}, "spec": spec}),
    )
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let scheduled = || async { pods.get("placed").await.ok()?.spec?.node_name };
    let message = until("the pod reported unschedulable", || async {
        let status = pods.get("placed").await.ok()?.status?;
        let condition = status.conditions?.into_iter().find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
        (condition.reason.as_deref() == Some("Unschedulable")).then(|| condition.message.unwrap_or_default())
    })
    .await;
    assert!(message.contains("node affinity"), "{message}");

    // Certified, but CUDA 12.2: still not placed.
    set_node_labels(
        &nodes,
        &name,
        json!({"nvidia.com/gpu.product": "Tesla-T4", "scs.dev/gpu-certified": "true", "scs.dev/cuda-driver-version": "12020"}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(scheduled().await, None, "placed on a node whose CUDA version is above the bound");
    // CUDA 11.2 (the certified 450.80.02 driver): placed.
    set_node_labels(&nodes, &name, json!({"scs.dev/cuda-driver-version": "11020"})).await;
    let placed = until("the pod scheduled once the labels fit", scheduled).await;
    assert_eq!(placed, name);

    delete_namespace(client, ns).await;
    set_node_labels(&nodes, &name, Value::Object(before)).await;
}
