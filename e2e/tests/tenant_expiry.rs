//! Tenant expiry against the fake API server, with a clock the test moves (no waiting for real
//! time): expire → every workload suspended → renew → every workload back as it was.

use e2e::harness::{Harness, eventually};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use scs_operator::api::SecureWorkload;
use scs_operator::clock::ManualClock;
use serde_json::{Value, json};

const NS: &str = "acme-prod";

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn workload(name: &str, spec: Value) -> Value {
    let mut spec = spec;
    spec["template"] = json!({"metadata": {"labels": {"app": name}}, "spec": {"restartPolicy": if matches!(spec["kind"].as_str(), Some("Job" | "CronJob")) { "Never" } else { "Always" }, "containers": [{"name": "app", "image": "registry.example.com/app:1"}]}});
    json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": name, "namespace": NS}, "spec": spec})
}

async fn start(policy: &str, clock: &ManualClock) -> Harness {
    let harness = Harness::start_with_clock(clock.clock()).await;
    harness
        .create_tenant(json!({
            "apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "acme"},
            "spec": {"namespaces": [NS], "quota": {"cpu": "16", "memory": "64Gi"},
                     "expiresAt": "2026-12-10T00:00:00Z", "expiryPolicy": policy}
        }))
        .await;
    eventually("tenant ready", || async { harness.is_ready("acme") }).await;
    let api: Api<SecureWorkload> = Api::namespaced(harness.client.clone(), NS);
    for (name, spec) in [
        ("web", json!({"kind": "Deployment", "replicas": 3})),
        ("ledger", json!({"kind": "StatefulSet", "replicas": 2})),
        ("migrate", json!({"kind": "Job"})),
        ("nightly", json!({"kind": "CronJob", "schedule": "0 3 * * *"})),
        ("agent", json!({"kind": "DaemonSet"})),
    ] {
        let object: SecureWorkload = serde_json::from_value(workload(name, spec)).unwrap();
        api.create(&PostParams::default(), &object).await.unwrap();
    }
    eventually("workloads built", || async {
        ["deployments/web", "statefulsets/ledger", "jobs/migrate", "cronjobs/nightly", "daemonsets/agent"]
            .iter()
            .all(|p| child(&harness, p).is_some())
    })
    .await;
    harness
}

fn child(harness: &Harness, path: &str) -> Option<Value> {
    let (group, rest) =
        if path.starts_with("cronjobs") || path.starts_with("jobs") { ("batch", path) } else { ("apps", path) };
    harness.server.get(&format!("/apis/{group}/v1/namespaces/{NS}/{rest}"))
}

fn lifecycle(harness: &Harness) -> Value {
    harness
        .server
        .get("/apis/scs.dev/v1alpha1/tenants/acme")
        .map(|t| t["status"]["lifecycle"].clone())
        .unwrap_or_default()
}

/// (Deployment replicas, StatefulSet replicas, Job suspend, CronJob suspend, the DaemonSet's
/// pause node selector).
fn running_state(harness: &Harness) -> (Value, Value, Value, Value, Value) {
    let field = |path: &str, pointer: &str| {
        child(harness, path).map(|o| o.pointer(pointer).cloned().unwrap_or_default()).unwrap_or_default()
    };
    (
        field("deployments/web", "/spec/replicas"),
        field("statefulsets/ledger", "/spec/replicas"),
        field("jobs/migrate", "/spec/suspend"),
        field("cronjobs/nightly", "/spec/suspend"),
        field("daemonsets/agent", "/spec/template/spec/nodeSelector/scs.dev~1tenant-suspended"),
    )
}

/// Makes the tenant controller look again (it triggers on any change of the Tenant) after the
/// test moved the clock; in a cluster, the controller's requeue at the expiry instant does this.
async fn poke(harness: &Harness, value: &str) {
    harness.patch_tenant("acme", json!({"metadata": {"annotations": {"test/poke": value}}})).await;
}

#[tokio::test]
async fn expire_suspends_every_workload_and_renewal_resumes_them() {
    let clock = ManualClock::at(at("2026-12-01T00:00:00Z"));
    let harness = start("Suspend", &clock).await;
    assert_eq!(lifecycle(&harness)["state"], "Active");
    assert_eq!(lifecycle(&harness)["daysLeft"], 9);
    let (status, reason, _) = harness.condition("acme", "Expired").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Active"));
    let running = (json!(3), json!(2), json!(false), json!(false), Value::Null);
    assert_eq!(running_state(&harness), running);

    // One second past the instant.
    clock.set(at("2026-12-10T00:00:01Z"));
    poke(&harness, "1").await;
    eventually("tenant suspended", || async { lifecycle(&harness)["state"] == "Suspended" }).await;
    assert_eq!(lifecycle(&harness)["daysLeft"], -1);
    let stopped = (json!(0), json!(0), json!(true), json!(true), json!("true"));
    eventually("every workload stopped", || async { running_state(&harness) == stopped }).await;
    let workloads = harness.server.list(&format!("/apis/scs.dev/v1alpha1/namespaces/{NS}/secureworkloads"));
    assert_eq!(workloads.len(), 5, "nothing deleted");
    eventually("workload status says why", || async {
        let web = harness.server.get(&format!("/apis/scs.dev/v1alpha1/namespaces/{NS}/secureworkloads/web")).unwrap();
        web["status"]["phase"] == "Suspended"
            && web["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["type"] == "Ready"
                        && c["reason"] == "TenantSuspended"
                        && c["message"].as_str().unwrap_or("").contains("Tenant acme expired")
                })
            })
    })
    .await;
    for workload in &workloads {
        assert!(workload["spec"].get("suspended").is_none(), "the user's spec is untouched: {}", workload["spec"]);
    }
    let (status, reason, message) = harness.condition("acme", "Expired").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Suspended"), "{message}");
    assert!(harness.event_reasons().contains(&"TenantSuspended".to_string()));
    assert!(harness.is_ready("acme"), "expiry is not a fault of the fence");

    // Renewed: expiresAt a year later.
    harness.patch_tenant("acme", json!({"spec": {"expiresAt": "2027-12-10T00:00:00Z"}})).await;
    eventually("tenant active again", || async { lifecycle(&harness)["state"] == "Active" }).await;
    eventually("every workload back as it was", || async { running_state(&harness) == running }).await;
    eventually("renewal announced", || async { harness.event_reasons().contains(&"TenantRenewed".to_string()) }).await;
    let events = harness.event_reasons();
    assert_eq!(events.iter().filter(|r| *r == "TenantSuspended").count(), 1, "one Event per transition: {events:?}");
    harness.stop().await;
}

#[tokio::test]
async fn notify_policy_reports_expiry_and_keeps_workloads_running() {
    let clock = ManualClock::at(at("2026-12-01T00:00:00Z"));
    let harness = start("Notify", &clock).await;
    clock.set(at("2026-12-12T00:00:00Z"));
    poke(&harness, "1").await;
    eventually("tenant expired", || async { lifecycle(&harness)["state"] == "Expired" }).await;
    assert_eq!(lifecycle(&harness)["daysLeft"], -2);
    eventually("expiry announced", || async { harness.event_reasons().contains(&"TenantExpired".to_string()) }).await;
    // Another pass (poked) changes nothing: still running.
    poke(&harness, "2").await;
    let running = (json!(3), json!(2), json!(false), json!(false), Value::Null);
    assert_eq!(running_state(&harness), running);
    harness.stop().await;
}
