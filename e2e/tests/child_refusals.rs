//! Children the API server refuses, against the fake API server's fault injection: the owner
//! (SecureWorkload or Tenant) reports each refusal as `ChildrenReady=False` with the server's
//! message and an Event, clears it once a retry is taken, and a transient failure is never
//! reported. The real API server's own refusals are in `cluster_status.rs`.

use e2e::harness::{Harness, eventually};
use kube::api::{Api, Patch, PatchParams, PostParams};
use scs_operator::api::SecureWorkload;
use serde_json::{Value, json};

const NS: &str = "acme-prod";

fn tenant() -> Value {
    json!({
        "apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "acme"},
        "spec": {"namespaces": [NS], "quota": {"cpu": "16", "memory": "64Gi", "loadBalancers": 1}}
    })
}

fn web() -> SecureWorkload {
    serde_json::from_value(json!({
        "apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": "web", "namespace": NS},
        "spec": {"kind": "Deployment", "expose": {"ports": [{"port": 80}]},
                 "template": {"spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]}}}
    }))
    .unwrap()
}

fn workload_condition(harness: &Harness, type_: &str) -> Option<(String, String, String)> {
    let object = harness.server.get(&format!("/apis/scs.dev/v1alpha1/namespaces/{NS}/secureworkloads/web"))?;
    let conditions = object["status"]["conditions"].as_array()?.clone();
    conditions.iter().find(|c| c["type"] == type_).map(|c| {
        let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
        (text("status"), text("reason"), text("message"))
    })
}

fn event_notes(harness: &Harness, reason: &str) -> Vec<String> {
    harness
        .server
        .list("/apis/events.k8s.io/v1/events")
        .iter()
        .filter(|e| e["reason"] == reason)
        .map(|e| e["note"].as_str().unwrap_or_default().to_string())
        .collect()
}

const REFUSAL: &str = "Service \"web\" is invalid: spec.ports[0].port: Invalid value: 80: refused for the test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_workload_child_is_reported_then_cleared() {
    let harness = Harness::start().await;
    harness.create_tenant(tenant()).await;
    eventually("tenant ready", || async { harness.is_ready("acme") }).await;
    // The Service apply is refused until the test clears the fault.
    harness.server.fail_next_with("PATCH", &format!("/namespaces/{NS}/services/web"), 1000, 422, "Invalid", REFUSAL);
    let api: Api<SecureWorkload> = Api::namespaced(harness.client.clone(), NS);
    api.create(&PostParams::default(), &web()).await.unwrap();
    eventually("ChildrenReady=False/ApplyFailed", || async {
        workload_condition(&harness, "ChildrenReady").is_some_and(|c| c.0 == "False" && c.1 == "ApplyFailed")
    })
    .await;
    let (_, _, message) = workload_condition(&harness, "ChildrenReady").unwrap();
    assert_eq!(message, format!("Service {NS}/web refused by the API server: {REFUSAL}"));
    let ready = workload_condition(&harness, "Ready").unwrap();
    assert_eq!((ready.0.as_str(), ready.1.as_str()), ("False", "ApplyFailed"));
    // The rest of the workload is applied all the same.
    assert!(harness.server.get(&format!("/apis/apps/v1/namespaces/{NS}/deployments/web")).is_some());
    eventually("one ApplyFailed event", || async { !event_notes(&harness, "ApplyFailed").is_empty() }).await;
    // Retried with the controller's backoff, not in a hot loop.
    harness.server.clear_requests();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let retries = harness.server.writes(&format!("/namespaces/{NS}/services/web")).len();
    assert!(retries <= 2, "{retries} writes of the refused Service in 1.5 s");
    // Retried (with backoff, or at once on a change) until taken; then cleared, with an Event.
    harness.server.clear_failures();
    let touch = json!({"metadata": {"annotations": {"test/touch": "1"}}});
    api.patch("web", &PatchParams::default(), &Patch::Merge(&touch)).await.unwrap();
    eventually("ChildrenReady=True", || async {
        workload_condition(&harness, "ChildrenReady").is_some_and(|c| c.0 == "True")
    })
    .await;
    assert!(harness.server.get(&format!("/api/v1/namespaces/{NS}/services/web")).is_some());
    eventually("ChildrenApplied event", || async { !event_notes(&harness, "ChildrenApplied").is_empty() }).await;
    assert_eq!(event_notes(&harness, "ApplyFailed").len(), 1, "an Event on the transition only, not per retry");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_without_a_condition() {
    let harness = Harness::start().await;
    harness.create_tenant(tenant()).await;
    eventually("tenant ready", || async { harness.is_ready("acme") }).await;
    harness.server.fail_next("PATCH", &format!("/namespaces/{NS}/services/web"), 1, 503);
    harness.server.fail_next("PATCH", &format!("/namespaces/{NS}/deployments/web"), 1, 409);
    let api: Api<SecureWorkload> = Api::namespaced(harness.client.clone(), NS);
    api.create(&PostParams::default(), &web()).await.unwrap();
    eventually("service created on retry", || async {
        harness.server.get(&format!("/api/v1/namespaces/{NS}/services/web")).is_some()
            && workload_condition(&harness, "ChildrenReady").is_some_and(|c| c.0 == "True")
    })
    .await;
    assert_eq!(harness.server.pending_failures(), 0);
    assert!(event_notes(&harness, "ApplyFailed").is_empty(), "a 503 or a 409 is not reported");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_tenant_child_is_reported_then_cleared() {
    let harness = Harness::start().await;
    let denial = "resourcequotas \"acme\" is forbidden: ValidatingAdmissionPolicy 'test' denied request";
    harness.server.fail_next_with("PATCH", "/resourcequotas/", 1000, 403, "Forbidden", denial);
    harness.create_tenant(tenant()).await;
    eventually("tenant ChildrenReady=False/ApplyFailed", || async {
        harness.condition("acme", "ChildrenReady").is_some_and(|c| c.0 == "False" && c.1 == "ApplyFailed")
    })
    .await;
    let (_, _, message) = harness.condition("acme", "ChildrenReady").unwrap();
    assert!(message.starts_with("ResourceQuota acme-prod/"), "{message}");
    assert!(message.ends_with(denial), "{message}");
    let ready = harness.condition("acme", "Ready").unwrap();
    assert_eq!((ready.0.as_str(), ready.1.as_str()), ("False", "ApplyFailed"));
    assert!(harness.server.get(&format!("/api/v1/namespaces/{NS}")).is_some(), "the rest is applied");
    harness.server.clear_failures();
    harness.patch_tenant("acme", json!({"metadata": {"labels": {"test/touch": "1"}}})).await;
    eventually("tenant ready after the retry", || async { harness.is_ready("acme") }).await;
    assert_eq!(harness.condition("acme", "ChildrenReady").unwrap().0, "True");
    assert_eq!(event_notes(&harness, "ApplyFailed").len(), 1);
    harness.stop().await;
}

/// RuntimeClass `handler` is immutable: a handler changed in the operator config is refused. That
/// must not block any tenant; every tenant says what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_runtime_class_blocks_no_tenant() {
    let ours = json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
        "metadata": {"name": "kata-qemu", "labels": {"app.kubernetes.io/managed-by": "scs-operator"}},
        "handler": "kata-old"});
    let harness = Harness::start_seeded(&[("/apis/node.k8s.io/v1/runtimeclasses", ours)]).await;
    let refusal =
        "RuntimeClass.node.k8s.io \"kata-qemu\" is invalid: handler: Invalid value: \"kata-qemu\": field is immutable";
    harness.server.fail_next_with("PATCH", "/runtimeclasses/kata-qemu", 1000, 422, "Invalid", refusal);
    harness.create_tenant(tenant()).await;
    eventually("RuntimeClassReady=False/ImmutableHandler", || async {
        harness.condition("acme", "RuntimeClassReady").is_some_and(|c| c.0 == "False" && c.1 == "ImmutableHandler")
    })
    .await;
    let (_, _, message) = harness.condition("acme", "RuntimeClassReady").unwrap();
    assert!(message.contains("kubectl delete runtimeclass kata-qemu") && message.contains(refusal), "{message}");
    // Everything of the tenant is in place regardless.
    eventually("quota applied", || async {
        harness.condition("acme", "QuotaReady").is_some_and(|c| c.0 == "True")
            && harness.server.list("/api/v1/namespaces/acme-prod/resourcequotas").len() == 1
    })
    .await;
    assert_eq!(harness.condition("acme", "Ready").unwrap().1, "ImmutableHandler");
    eventually("ImmutableHandler event", || async { !event_notes(&harness, "ImmutableHandler").is_empty() }).await;
    harness.stop().await;
}
