//! The Tenant and SdnNetwork controllers against the fake API server: real controller code, real
//! `kube::Client`, real HTTP and watches.

use std::time::Duration;

use e2e::harness::{Harness, eventually};
use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};

fn acme() -> Value {
    json!({
        "apiVersion": "scs.dev/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": "acme"},
        "spec": {
            "namespaces": ["acme-prod", "acme-dev"],
            "quota": {"cpu": "8", "memory": "32Gi", "pods": 50, "gpu": {"nvidia": 2}},
            "members": [
                {"kind": "Group", "name": "acme-admins", "role": "projectAdmin"},
                {"kind": "User", "name": "alice", "role": "member"},
                {"kind": "User", "name": "bob", "role": "viewer"},
            ],
            "networks": ["office"],
        }
    })
}

fn office() -> Value {
    json!({
        "apiVersion": "scs.dev/v1alpha1",
        "kind": "SdnNetwork",
        "metadata": {"name": "office"},
        "spec": {"type": "macvlan", "master": "eth1", "vlan": 100, "cidr": "192.168.100.0/24"}
    })
}

async fn ready_acme() -> Harness {
    let harness = Harness::start().await;
    harness.create_network(office()).await;
    harness.create_tenant(acme()).await;
    eventually("acme Ready", || async { harness.is_ready("acme") }).await;
    // The Ready event is written just after the status; tests that count writes start after it.
    eventually("Ready event", || async { harness.event_reasons().contains(&"Ready".to_string()) }).await;
    eventually("network status lists acme", || async {
        harness
            .server
            .get("/apis/scs.dev/v1alpha1/sdnnetworks/office")
            .is_some_and(|n| n["status"]["tenants"] == json!(["acme"]))
    })
    .await;
    harness
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_tenant_gets_every_child_and_becomes_ready() {
    let harness = ready_acme().await;
    let server = &harness.server;
    for namespace in ["acme-prod", "acme-dev"] {
        let ns = server.get(&format!("/api/v1/namespaces/{namespace}")).expect("namespace");
        assert_eq!(ns["metadata"]["labels"]["scs.dev/tenant"], "acme");
        assert_eq!(ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted");
        let quota =
            server.get(&format!("/api/v1/namespaces/{namespace}/resourcequotas/scs-tenant-quota")).expect("quota");
        assert_eq!(quota["spec"]["hard"]["requests.cpu"], "4", "half of the tenant's 8 CPUs");
        assert_eq!(quota["spec"]["hard"]["requests.nvidia.com/gpu"], "1");
        assert!(server.get(&format!("/api/v1/namespaces/{namespace}/limitranges/scs-tenant-defaults")).is_some());
        for role in ["scs:project-admin", "scs:member", "scs:viewer"] {
            let path = format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings/{role}");
            assert!(server.get(&path).is_some(), "{path}");
        }
        for policy in ["scs-default-deny", "scs-allow-same-tenant", "scs-allow-dns", "scs-allow-external"] {
            let path = format!("/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{policy}");
            assert!(server.get(&path).is_some(), "{path}");
        }
        let nad = server
            .get(&format!("/apis/k8s.cni.cncf.io/v1/namespaces/{namespace}/network-attachment-definitions/office"))
            .expect("attachment definition");
        let config: Value = serde_json::from_str(nad["spec"]["config"].as_str().unwrap()).unwrap();
        assert_eq!(config["master"], "eth1.100");
    }
    assert!(server.get("/apis/node.k8s.io/v1/runtimeclasses/kata-qemu").is_some());
    // The cloud-admin binding is a static manifest: the operator never binds scs:cloud-admin.
    assert!(server.get("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/scs:cloud-admin").is_none());
    assert!(
        server.get("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/scs:tenant:acme:storage-reader").is_some()
    );

    let tenant = server.get("/apis/scs.dev/v1alpha1/tenants/acme").unwrap();
    assert_eq!(tenant["metadata"]["finalizers"], json!(["scs.dev/tenant-cleanup"]));
    let status = &tenant["status"];
    assert_eq!(
        status["namespaces"],
        json!([{"name": "acme-prod", "state": "Ready"}, {"name": "acme-dev", "state": "Ready"}])
    );
    assert_eq!(status["quota"]["hard"]["requests.cpu"], "8");
    for concern in ["NamespacesReady", "QuotaReady", "RbacReady", "NetworksReady"] {
        assert_eq!(harness.condition("acme", concern).unwrap().0, "True", "{concern}");
    }
    eventually("network status lists the tenant", || async {
        let network = server.get("/apis/scs.dev/v1alpha1/sdnnetworks/office").unwrap();
        network["status"]["tenants"] == json!(["acme"])
            && network["status"]["namespaces"] == json!(["acme-dev", "acme-prod"])
    })
    .await;
    eventually("Ready event", || async { harness.event_reasons().contains(&"Ready".to_string()) }).await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_tenant_costs_no_writes() {
    let harness = ready_acme().await;
    // Let the first passes (network status, events) settle, then wake the controller.
    tokio::time::sleep(Duration::from_millis(500)).await;
    harness.server.clear_requests();
    // The pass reads nothing (its namespaces and children come from the watches), so only the
    // count of passes says it has run (other tests' passes count too: the wait below covers ours).
    let passes = scs_operator::controller::metrics::metrics().reconciles("tenant");
    harness.server.touch("/apis/scs.dev/v1alpha1/tenants/acme", "example.com/poke", "1");
    eventually("a new pass over acme", || async {
        scs_operator::controller::metrics::metrics().reconciles("tenant") > passes
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(harness.server.writes(""), vec![], "second pass must not write");
    let reads: Vec<String> = harness
        .server
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("acme-") && !r.watch)
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(reads, Vec::<String>::new(), "nor read its namespaces or children");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_change_rewrites_only_the_quotas() {
    let harness = ready_acme().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    harness.server.clear_requests();
    harness.patch_tenant("acme", json!({"spec": {"quota": {"cpu": "16"}}})).await;
    eventually("new quota applied", || async {
        harness.server.get("/api/v1/namespaces/acme-dev/resourcequotas/scs-tenant-quota").unwrap()["spec"]["hard"]["requests.cpu"] == "8"
    })
    .await;
    eventually("status caught up", || async { harness.is_ready("acme") }).await;
    let writes: Vec<String> = harness.server.writes("").iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    // Besides the quotas: the test's own spec patch and the operator's status update.
    let expected_others =
        ["PATCH /apis/scs.dev/v1alpha1/tenants/acme", "PATCH /apis/scs.dev/v1alpha1/tenants/acme/status"];
    let unexpected: Vec<&String> =
        writes.iter().filter(|w| !w.contains("/resourcequotas/") && !expected_others.contains(&w.as_str())).collect();
    assert_eq!(
        unexpected,
        Vec::<&String>::new(),
        "only ResourceQuotas (and status) may be written; all writes: {writes:?}"
    );
    assert_eq!(writes.iter().filter(|w| w.contains("/resourcequotas/")).count(), 2, "{writes:?}");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_members_removes_their_bindings() {
    let harness = ready_acme().await;
    harness
        .patch_tenant(
            "acme",
            json!({"spec": {"members": [{"kind": "Group", "name": "acme-admins", "role": "projectAdmin"}]}}),
        )
        .await;
    eventually("member and viewer bindings gone", || async {
        ["acme-prod", "acme-dev"].iter().all(|ns| {
            let path = |role: &str| format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/{role}");
            harness.server.get(&path("scs:member")).is_none()
                && harness.server.get(&path("scs:viewer")).is_none()
                && harness.server.get(&path("scs:project-admin")).is_some()
        })
    })
    .await;
    // The last project admin leaving removes the storage-reader binding as well.
    harness.patch_tenant("acme", json!({"spec": {"members": null}})).await;
    eventually("storage reader binding gone", || async {
        harness
            .server
            .get("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/scs:tenant:acme:storage-reader")
            .is_none()
    })
    .await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_namespace_is_a_conflict_and_left_alone() {
    let harness = Harness::start().await;
    harness
        .server
        .insert("/api/v1/namespaces", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "legacy"}}));
    harness
        .create_tenant(json!({
            "apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "beta"},
            "spec": {"namespaces": ["legacy", "beta"], "quota": {"cpu": "2"}}
        }))
        .await;
    eventually("conflict reported", || async {
        harness.condition("beta", "Ready").is_some_and(|c| c.0 == "False" && c.1 == "NamespaceConflict")
    })
    .await;
    let (_, _, message) = harness.condition("beta", "NamespacesReady").unwrap();
    assert!(message.contains("legacy exists and is not managed by scs-operator"), "{message}");
    let legacy = harness.server.get("/api/v1/namespaces/legacy").unwrap();
    assert_eq!(legacy["metadata"].get("labels"), None, "the foreign namespace is untouched");
    assert!(harness.server.writes("/namespaces/legacy").is_empty(), "nothing written in or to it");
    assert!(harness.server.get("/api/v1/namespaces/beta").is_some(), "the free namespace is still set up");
    eventually("conflict event", || async { harness.event_reasons().contains(&"NamespaceConflict".to_string()) }).await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_back_off_and_then_converge() {
    let harness = Harness::start().await;
    harness.server.fail_next("PATCH", "/resourcequotas/", 3, 500);
    harness.create_network(office()).await;
    harness.create_tenant(acme()).await;
    eventually("acme Ready despite errors", || async { harness.is_ready("acme") }).await;
    assert_eq!(harness.server.pending_failures(), 0, "every injected failure was hit");
    let quota_patches: Vec<_> = harness
        .server
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("/resourcequotas/"))
        .collect();
    assert!(quota_patches.len() >= 5, "3 failed tries and the successful ones: {quota_patches:?}");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_tenant_cleans_up_and_releases_the_finalizer() {
    let harness = ready_acme().await;
    harness.tenants().delete("acme", &DeleteParams::default()).await.unwrap();
    eventually("tenant gone", || async { harness.server.get("/apis/scs.dev/v1alpha1/tenants/acme").is_none() }).await;
    assert!(harness.server.get("/api/v1/namespaces/acme-prod").is_none());
    assert!(harness.server.get("/api/v1/namespaces/acme-dev").is_none());
    assert!(
        harness
            .server
            .get("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/scs:tenant:acme:storage-reader")
            .is_none()
    );
    assert!(
        harness.server.get("/apis/node.k8s.io/v1/runtimeclasses/kata-qemu").is_some(),
        "platform objects outlive tenants"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_tenant_with_workloads_is_held_until_they_go() {
    let harness = ready_acme().await;
    let workload = json!({
        "apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload",
        "metadata": {"name": "ledger", "namespace": "acme-prod"},
        "spec": {"kind": "Deployment", "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}}}
    });
    harness.server.insert("/apis/scs.dev/v1alpha1/namespaces/acme-prod/secureworkloads", workload);
    harness.tenants().delete("acme", &DeleteParams::default()).await.unwrap();
    eventually("deletion held", || async {
        harness
            .condition("acme", "Ready")
            .is_some_and(|c| c.1 == "DeletionBlocked" && c.2.contains("SecureWorkload acme-prod/ledger"))
    })
    .await;
    assert!(harness.server.get("/api/v1/namespaces/acme-prod").is_some(), "nothing is deleted while held");
    eventually("DeletionBlocked event", || async { harness.event_reasons().contains(&"DeletionBlocked".to_string()) })
        .await;

    // Removing the workload lets the deletion finish.
    let workloads: Api<scs_operator::api::SecureWorkload> = Api::namespaced(harness.client.clone(), "acme-prod");
    workloads.delete("ledger", &DeleteParams::default()).await.unwrap();
    eventually("tenant gone", || async { harness.server.get("/apis/scs.dev/v1alpha1/tenants/acme").is_none() }).await;
    assert!(harness.server.get("/api/v1/namespaces/acme-prod").is_none());
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_delete_annotation_overrides_the_hold() {
    let harness = ready_acme().await;
    harness.server.insert(
        "/apis/scs.dev/v1alpha1/namespaces/acme-dev/secureworkloads",
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": "w", "namespace": "acme-dev"},
               "spec": {"kind": "Job", "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}}}}),
    );
    harness.patch_tenant("acme", json!({"metadata": {"annotations": {"scs.dev/force-delete": "true"}}})).await;
    harness.tenants().delete("acme", &DeleteParams::default()).await.unwrap();
    eventually("tenant gone", || async { harness.server.get("/apis/scs.dev/v1alpha1/tenants/acme").is_none() }).await;
    assert!(harness.server.get("/api/v1/namespaces/acme-dev").is_none());
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_network_is_reported_and_picked_up_when_it_appears() {
    let harness = Harness::start().await;
    harness.create_tenant(acme()).await;
    eventually("network not found", || async {
        harness.condition("acme", "NetworksReady").is_some_and(|c| c.0 == "False" && c.1 == "NetworkNotFound")
    })
    .await;
    assert!(harness.server.get("/api/v1/namespaces/acme-prod").is_some(), "the rest is set up meanwhile");
    harness.create_network(office()).await;
    eventually("acme Ready once the network exists", || async { harness.is_ready("acme") }).await;
    assert!(
        harness
            .server
            .get("/apis/k8s.cni.cncf.io/v1/namespaces/acme-prod/network-attachment-definitions/office")
            .is_some()
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_we_did_not_create_are_never_touched() {
    let harness = ready_acme().await;
    // A RoleBinding a cloud admin made by hand in a tenant namespace, without our labels.
    harness.server.insert(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/acme-prod/rolebindings",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "hand-made", "namespace": "acme-prod"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}}),
    );
    harness.patch_tenant("acme", json!({"spec": {"members": null}})).await;
    eventually("our bindings gone", || async {
        harness.server.get("/apis/rbac.authorization.k8s.io/v1/namespaces/acme-prod/rolebindings/scs:member").is_none()
    })
    .await;
    assert!(
        harness.server.get("/apis/rbac.authorization.k8s.io/v1/namespaces/acme-prod/rolebindings/hand-made").is_some()
    );
    assert!(harness.server.writes("/rolebindings/hand-made").is_empty());
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_tenant_does_not_stall_the_others() {
    let harness = Harness::start().await;
    // Stored behind the API server's back (a real one would have rejected it): wrong types.
    harness.server.insert(
        "/apis/scs.dev/v1alpha1/tenants",
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "broken"}, "spec": {"namespaces": "not-a-list"}}),
    );
    harness.create_network(office()).await;
    harness.create_tenant(acme()).await;
    eventually("acme Ready next to a malformed tenant", || async { harness.is_ready("acme") }).await;
    assert!(harness.server.get("/api/v1/namespaces/broken").is_none(), "nothing is built from an unreadable object");
    harness.stop().await;
}

/// Without Multus the cluster does not serve NetworkAttachmentDefinitions at all (every request
/// for them is a 404, as a real API server answers for an unknown resource). The rest of the
/// tenant is still built and NetworksReady says what is missing, instead of every reconcile failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_without_multus_gets_everything_else_and_a_clear_network_condition() {
    let harness = Harness::start().await;
    harness.server.fail_next("GET", "network-attachment-definitions", usize::MAX, 404);
    harness.server.fail_next("PATCH", "network-attachment-definitions", usize::MAX, 404);
    harness.create_network(office()).await;
    harness.create_tenant(acme()).await;
    let path = "/apis/scs.dev/v1alpha1/tenants/acme";
    eventually("NetworksReady=False, ApiNotServed", || async {
        let conditions = harness.server.get(path).map(|t| t["status"]["conditions"].clone()).unwrap_or_default();
        conditions.as_array().into_iter().flatten().any(|c| {
            c["type"] == "NetworksReady"
                && c["status"] == "False"
                && c["reason"] == "ApiNotServed"
                && c["message"].as_str().is_some_and(|m| m.contains("NetworkAttachmentDefinition acme-prod/office"))
        })
    })
    .await;
    assert!(harness.server.get("/api/v1/namespaces/acme-prod/resourcequotas/scs-tenant-quota").is_some());
    assert!(!harness.is_ready("acme"));
}

/// An SdnNetwork that exists but cannot be read (here a type this operator does not know, as after
/// a CRD upgrade the operator has not caught up with) is not a deleted one: its attachment
/// definitions stay untouched, and the Tenant says which network and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_network_keeps_its_attachments_and_is_reported() {
    use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
    let harness = ready_acme().await;
    let attachments = ["office", "office.static"]
        .map(|name| format!("/apis/k8s.cni.cncf.io/v1/namespaces/acme-prod/network-attachment-definitions/{name}"));
    let before: Vec<Value> = attachments.iter().map(|path| harness.server.get(path).expect(path)).collect();
    let networks: Api<DynamicObject> =
        Api::all_with(harness.client.clone(), &ApiResource::erase::<scs_operator::api::SdnNetwork>(&()));
    let set_type = |network_type: &'static str| {
        let networks = networks.clone();
        async move {
            let patch = json!({"spec": {"type": network_type}});
            networks.patch("office", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        }
    };
    set_type("vxlan").await;
    eventually("NetworksReady=False, NetworkUnreadable", || async {
        harness.condition("acme", "NetworksReady").is_some_and(|(status, reason, message)| {
            status == "False"
                && reason == "NetworkUnreadable"
                && message.starts_with("SdnNetwork \"office\" cannot be read (")
                && message.ends_with("its attachment definitions are left as they are")
        })
    })
    .await;
    let after: Vec<Value> = attachments.iter().map(|path| harness.server.get(path).expect(path)).collect();
    assert_eq!(after, before, "not deleted, not rewritten");
    assert!(!harness.is_ready("acme"));

    set_type("macvlan").await;
    eventually("Ready again", || async { harness.is_ready("acme") }).await;
    harness.stop().await;
}

/// kata-deploy creates `kata-qemu` itself: the operator uses that RuntimeClass as it is and never
/// takes it over (the `scs-operator-cluster` admission policy would refuse the write, and every
/// tenant would fail behind it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_class_made_by_someone_else_is_used_not_taken_over() {
    let kata_deploy = json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
        "metadata": {"name": "kata-qemu", "labels": {"app.kubernetes.io/managed-by": "kata-deploy"}},
        "handler": "kata-qemu"});
    let harness = Harness::start_seeded(&[("/apis/node.k8s.io/v1/runtimeclasses", kata_deploy.clone())]).await;
    harness.create_network(office()).await;
    harness.create_tenant(acme()).await;
    eventually("tenant ready beside a foreign RuntimeClass", || async { harness.is_ready("acme") }).await;
    let live = harness.server.get("/apis/node.k8s.io/v1/runtimeclasses/kata-qemu").unwrap();
    assert_eq!(live["metadata"]["labels"], kata_deploy["metadata"]["labels"]);
    assert!(live.get("overhead").is_none() && live.get("scheduling").is_none(), "not rewritten: {live}");
    let writes = harness.server.writes("/runtimeclasses");
    assert!(!writes.iter().any(|w| w.path.ends_with("/runtimeclasses/kata-qemu")), "never written: {writes:?}");
    // The GPU vendor's class is the operator's own, made beside it.
    assert!(writes.iter().any(|w| w.path.ends_with("/runtimeclasses/kata-qemu-nvidia-gpu")), "{writes:?}");
    harness.stop().await;
}
