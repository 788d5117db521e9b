//! Cluster tests: run by `e2e/kind.sh` against a kind cluster with the kind overlay installed
//! (`cargo test -p e2e --features cluster --test cluster`). They use the current kube context.
#![cfg(feature = "cluster")]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::{Namespace, Pod, ResourceQuota};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use scs_operator::api::{SecureWorkload, Tenant};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(180);

async fn client() -> Client {
    Client::try_default().await.expect("a kube context (run through e2e/kind.sh)")
}

async fn until<F, Fut, T>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn apply<K>(api: &Api<K>, name: &str, manifest: Value)
where
    K: kube::Resource + Clone + k8s_openapi::serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::apply("scs-e2e").force(), &Patch::Apply(manifest)).await.unwrap();
}

async fn ready_tenant(client: &Client, name: &str, spec: Value) -> Tenant {
    let tenants: Api<Tenant> = Api::all(client.clone());
    apply(
        &tenants,
        name,
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": name}, "spec": spec}),
    )
    .await;
    until(&format!("Tenant {name} Ready"), || async {
        let tenant = tenants.get(name).await.ok()?;
        let status = tenant.status.clone()?;
        let ready = status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
        (ready && status.observed_generation == tenant.metadata.generation).then_some(tenant)
    })
    .await
}

async fn delete_tenant(client: &Client, name: &str) {
    let tenants: Api<Tenant> = Api::all(client.clone());
    let _ = tenants.delete(name, &DeleteParams::default()).await;
    until(&format!("Tenant {name} gone"), || async { tenants.get_opt(name).await.ok()?.is_none().then_some(()) }).await;
}

/// Whether `user` (in `groups`) may `verb` `resource` in `namespace`, per the API server.
async fn may(
    client: &Client,
    user: &str,
    groups: &[&str],
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            groups: Some(groups.iter().map(|g| g.to_string()).collect()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: namespace.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    api.create(&PostParams::default(), &review).await.unwrap().status.unwrap().allowed
}

#[tokio::test]
async fn a_tenant_gets_namespaces_quotas_and_the_role_table() {
    let client = client().await;
    let spec = json!({
        "namespaces": ["e2e-roles-a", "e2e-roles-b"],
        "quota": {"cpu": "4", "memory": "8Gi", "pods": 20},
        "members": [
            {"kind": "User", "name": "e2e-admin", "role": "projectAdmin"},
            {"kind": "User", "name": "e2e-member", "role": "member"},
            {"kind": "User", "name": "e2e-viewer", "role": "viewer"},
        ],
    });
    ready_tenant(&client, "e2e-roles", spec).await;
    for namespace in ["e2e-roles-a", "e2e-roles-b"] {
        let ns = Api::<Namespace>::all(client.clone()).get(namespace).await.unwrap();
        assert_eq!(ns.metadata.labels.unwrap()["scs.dev/tenant"], "e2e-roles");
        let quota = Api::<ResourceQuota>::namespaced(client.clone(), namespace).get("scs-tenant-quota").await.unwrap();
        assert_eq!(quota.spec.unwrap().hard.unwrap()["requests.cpu"].0, "2");
        Api::<RoleBinding>::namespaced(client.clone(), namespace).get("scs:member").await.unwrap();
    }
    let ns = Some("e2e-roles-a");
    // Member: workloads yes, the fence and the cluster no.
    assert!(may(&client, "e2e-member", &[], "create", "apps", "deployments", ns).await);
    assert!(may(&client, "e2e-member", &[], "create", "", "pods/exec", ns).await);
    assert!(may(&client, "e2e-member", &[], "create", "scs.dev", "secureworkloads", ns).await);
    assert!(!may(&client, "e2e-member", &[], "update", "", "resourcequotas", ns).await);
    assert!(!may(&client, "e2e-member", &[], "create", "rbac.authorization.k8s.io", "rolebindings", ns).await);
    assert!(!may(&client, "e2e-member", &[], "delete", "", "namespaces", None).await);
    assert!(!may(&client, "e2e-member", &[], "get", "", "nodes", None).await);
    assert!(
        !may(&client, "e2e-member", &[], "create", "apps", "deployments", Some("default")).await,
        "other namespaces"
    );
    // Viewer: read-only, no Secrets.
    assert!(may(&client, "e2e-viewer", &[], "list", "apps", "deployments", ns).await);
    assert!(!may(&client, "e2e-viewer", &[], "get", "", "secrets", ns).await);
    assert!(!may(&client, "e2e-viewer", &[], "create", "apps", "deployments", ns).await);
    // Project admin: also storage, read-only.
    assert!(may(&client, "e2e-admin", &[], "list", "storage.k8s.io", "storageclasses", None).await);
    assert!(!may(&client, "e2e-admin", &[], "create", "storage.k8s.io", "storageclasses", None).await);
    // Cloud admins: everything.
    assert!(may(&client, "someone", &["scs:cloud-admins"], "patch", "", "nodes", None).await);
    delete_tenant(&client, "e2e-roles").await;
}

fn restricted_pod_spec() -> Value {
    json!({
        "securityContext": {"runAsNonRoot": true, "runAsUser": 65535, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "pause", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "50m", "memory": "32Mi"}},
            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
        }],
    })
}

#[tokio::test]
async fn a_secure_workload_runs_in_the_sandbox_class() {
    let client = client().await;
    ready_tenant(&client, "e2e-run", json!({"namespaces": ["e2e-run"], "quota": {"cpu": "2", "memory": "2Gi"}})).await;
    let workloads: Api<SecureWorkload> = Api::namespaced(client.clone(), "e2e-run");
    let manifest = json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": "pause", "namespace": "e2e-run"},
        "spec": {"kind": "Deployment", "replicas": 1, "template": {"spec": restricted_pod_spec()}}});
    apply(&workloads, "pause", manifest).await;
    until("workload Running", || async {
        let workload = workloads.get("pause").await.ok()?;
        (workload.status?.phase? == scs_operator::api::WorkloadPhase::Running).then_some(())
    })
    .await;
    let deployment = Api::<Deployment>::namespaced(client.clone(), "e2e-run").get("pause").await.unwrap();
    assert_eq!(deployment.spec.unwrap().template.spec.unwrap().runtime_class_name.as_deref(), Some("kata-qemu"));
    let pods = Api::<Pod>::namespaced(client.clone(), "e2e-run").list(&Default::default()).await.unwrap();
    assert!(pods.items.iter().all(|p| p.spec.as_ref().unwrap().runtime_class_name.as_deref() == Some("kata-qemu")));
    workloads.delete("pause", &DeleteParams::default()).await.unwrap();
    delete_tenant(&client, "e2e-run").await;
}

#[tokio::test]
async fn the_admission_policy_and_the_quota_hold() {
    let client = client().await;
    ready_tenant(&client, "e2e-fence", json!({"namespaces": ["e2e-fence"], "quota": {"pods": 1}})).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "e2e-fence");
    let pod = |name: &str, runtime_class: Option<&str>| {
        let mut spec = restricted_pod_spec();
        if let Some(class) = runtime_class {
            spec["runtimeClassName"] = json!(class);
        }
        serde_json::from_value::<Pod>(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}),
        )
        .unwrap()
    };
    // A hand-made pod without the tenant's runtime class: rejected by the policy.
    let error = pods.create(&PostParams::default(), &pod("bypass", None)).await.unwrap_err();
    assert!(error.to_string().contains("must set runtimeClassName: kata-qemu"), "{error}");
    // With the class: admitted, until the quota of one pod is used up.
    pods.create(&PostParams::default(), &pod("first", Some("kata-qemu"))).await.unwrap();
    let error = pods.create(&PostParams::default(), &pod("second", Some("kata-qemu"))).await.unwrap_err();
    assert!(error.to_string().contains("exceeded quota"), "{error}");
    delete_tenant(&client, "e2e-fence").await;
}

#[tokio::test]
async fn deleting_a_tenant_cleans_up() {
    let client = client().await;
    ready_tenant(
        &client,
        "e2e-bye",
        json!({"namespaces": ["e2e-bye"], "members": [{"kind": "User", "name": "x", "role": "projectAdmin"}]}),
    )
    .await;
    delete_tenant(&client, "e2e-bye").await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    until("namespace gone or terminating", || async {
        match namespaces.get_opt("e2e-bye").await.ok()? {
            None => Some(()),
            Some(ns) => ns.metadata.deletion_timestamp.map(|_| ()),
        }
    })
    .await;
    let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(client.clone());
    assert!(bindings.get_opt("scs:tenant:e2e-bye:storage-reader").await.unwrap().is_none());
}

/// The device plugin with a real kubelet: a kind node has no GPU, so once the node carries the
/// NVIDIA PCI label the DaemonSet runs there, registers `nvidia.com/gpu` with zero devices (the
/// kubelet then reports a capacity of 0) and labels the node with a zero count.
#[tokio::test]
async fn the_device_plugin_registers_with_a_real_kubelet() {
    use k8s_openapi::api::apps::v1::DaemonSet;
    use k8s_openapi::api::core::v1::Node;

    let client = client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let workers = nodes.list(&kube::api::ListParams::default().labels("!node-role.kubernetes.io/control-plane")).await;
    let worker = workers.unwrap().items.into_iter().next().expect("a worker node").metadata.name.unwrap();
    let pci_label = "feature.node.kubernetes.io/pci-10de.present";
    let label = |value: Value| {
        let nodes = nodes.clone();
        let worker = worker.clone();
        async move {
            let patch = json!({"metadata": {"labels": {pci_label: value}}});
            nodes.patch(&worker, &PatchParams::default(), &Patch::Merge(patch)).await.unwrap();
        }
    };
    label(json!("true")).await;

    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), "scs-device-plugins");
    until("the NVIDIA device plugin pod ready on the worker", || async {
        let status = daemon_sets.get("scs-device-plugin-nvidia").await.ok()?.status?;
        (status.number_ready == 1).then_some(())
    })
    .await;
    let node = until("the kubelet reports nvidia.com/gpu and the plugin's labels", || async {
        let node = nodes.get(&worker).await.ok()?;
        let capacity = node.status.as_ref()?.capacity.as_ref()?.get("nvidia.com/gpu")?.0.clone();
        let count = node.metadata.labels.as_ref()?.get("nvidia.com/gpu.count")?.clone();
        Some((capacity, count))
    })
    .await;
    assert_eq!(node, ("0".to_string(), "0".to_string()), "no GPU on a kind node: capacity and count are zero");

    label(Value::Null).await;
    until("the plugin pod gone once the node is no longer a GPU node", || async {
        let status = daemon_sets.get("scs-device-plugin-nvidia").await.ok()?.status?;
        (status.desired_number_scheduled == 0).then_some(())
    })
    .await;
}
