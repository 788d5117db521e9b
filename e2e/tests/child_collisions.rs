//! Children whose names are taken, against the fake API server: by an object nobody of ours made,
//! by a child of another workload, by an older workload producing the same name, and a namespace
//! created by someone else between the tenant's check and its write.

use std::time::Duration;

use e2e::harness::{Harness, eventually};
use kube::api::{Api, PostParams};
use scs_operator::api::SecureWorkload;
use serde_json::{Value, json};

const NS: &str = "acme-prod";

async fn ready() -> Harness {
    Harness::with_acme(NS).await
}

async fn create(harness: &Harness, name: &str, spec: Value) {
    let mut spec = spec;
    spec["template"] = json!({"spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]}});
    let object: SecureWorkload = serde_json::from_value(json!({
        "apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload",
        "metadata": {"name": name, "namespace": NS}, "spec": spec
    }))
    .unwrap();
    Api::<SecureWorkload>::namespaced(harness.client.clone(), NS)
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
}

fn exposed() -> Value {
    json!({"type": "ClusterIP", "ports": [{"name": "http", "port": 80}]})
}

fn volume(name: &str) -> Value {
    json!({"name": name, "size": "1Gi", "tier": "capacity", "mountPath": format!("/{name}")})
}

/// The workload's Ready condition as (status, reason, message).
fn ready_condition(harness: &Harness, name: &str) -> Option<(String, String, String)> {
    let object = harness.server.get(&format!("/apis/scs.dev/v1alpha1/namespaces/{NS}/secureworkloads/{name}"))?;
    let condition = object["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")?.clone();
    let text = |k: &str| condition[k].as_str().unwrap_or_default().to_string();
    Some((text("status"), text("reason"), text("message")))
}

async fn conflict(harness: &Harness, name: &str, wanted: &str) {
    eventually(&format!("{name}: Conflict saying {wanted}"), || async {
        ready_condition(harness, name).is_some_and(|c| c.0 == "False" && c.1 == "Conflict" && c.2.contains(wanted))
    })
    .await;
}

fn path(kind_path: &str, name: &str) -> String {
    format!("{kind_path}/namespaces/{NS}/{name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_made_service_of_the_same_name_is_not_taken_over() {
    let harness = ready().await;
    let server = &harness.server;
    server.insert(
        &format!("/api/v1/namespaces/{NS}/services"),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"team": "ops"}},
               "spec": {"selector": {"app": "legacy"}, "ports": [{"port": 8080}]}}),
    );
    create(&harness, "web", json!({"kind": "Deployment", "expose": exposed()})).await;
    conflict(&harness, "web", r#"Service "web" exists and was not created by scs-operator"#).await;
    eventually("Conflict event", || async { harness.event_reasons().contains(&"Conflict".to_string()) }).await;
    let service = server.get(&path("/api/v1", "services/web")).unwrap();
    assert_eq!(service["metadata"]["labels"], json!({"team": "ops"}), "untouched");
    assert_eq!(service["spec"]["selector"], json!({"app": "legacy"}));
    assert!(server.writes("/services/web").is_empty(), "never written");
    assert!(server.get(&path("/apis/apps/v1", "deployments/web")).is_none(), "nothing of the workload is applied");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_of_another_workload_is_not_taken_over() {
    let harness = ready().await;
    let server = &harness.server;
    // Made by the operator for a workload `cache` (since deleted, its Service orphaned by policy).
    server.insert(
        &format!("/api/v1/namespaces/{NS}/services"),
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "db-headless", "labels": {"app.kubernetes.io/managed-by": "scs-operator", "scs.dev/workload": "cache"}},
               "spec": {"clusterIP": "None", "selector": {"scs.dev/workload": "cache"}}}),
    );
    create(&harness, "db", json!({"kind": "StatefulSet"})).await;
    conflict(&harness, "db", r#"Service "db-headless" exists and belongs to SecureWorkload "cache""#).await;
    let service = server.get(&path("/api/v1", "services/db-headless")).unwrap();
    assert_eq!(service["metadata"]["labels"]["scs.dev/workload"], "cache");
    assert!(server.writes("/services/db-headless").is_empty());
    assert!(server.get(&path("/apis/apps/v1", "statefulsets/db")).is_none());
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulsets_headless_service_stays_with_the_older_workload() {
    let harness = ready().await;
    let server = &harness.server;
    create(&harness, "db", json!({"kind": "StatefulSet"})).await;
    eventually("db's headless Service", || async { server.get(&path("/api/v1", "services/db-headless")).is_some() })
        .await;
    create(&harness, "db-headless", json!({"kind": "Deployment", "expose": exposed()})).await;
    conflict(&harness, "db-headless", r#"Service "db-headless" is also produced by SecureWorkload "db""#).await;
    let service = server.get(&path("/api/v1", "services/db-headless")).unwrap();
    assert_eq!(service["metadata"]["labels"]["scs.dev/workload"], "db");
    assert_eq!(service["spec"]["clusterIP"], "None", "still db's headless Service");
    assert!(server.get(&path("/apis/apps/v1", "deployments/db-headless")).is_none());
    // The older workload is unaffected.
    assert!(server.get(&path("/apis/apps/v1", "statefulsets/db")).is_some());
    assert_ne!(ready_condition(&harness, "db").map(|c| c.1), Some("Conflict".to_string()));
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_stays_with_the_older_workload() {
    let harness = ready().await;
    let server = &harness.server;
    create(&harness, "app", json!({"kind": "Deployment", "volumes": [volume("cache-data")]})).await;
    eventually("app's claim", || async {
        server.get(&path("/api/v1", "persistentvolumeclaims/app-cache-data")).is_some()
    })
    .await;
    create(&harness, "app-cache", json!({"kind": "Deployment", "volumes": [volume("data")]})).await;
    conflict(
        &harness,
        "app-cache",
        r#"PersistentVolumeClaim "app-cache-data" is also produced by SecureWorkload "app""#,
    )
    .await;
    let claim = server.get(&path("/api/v1", "persistentvolumeclaims/app-cache-data")).unwrap();
    assert_eq!(claim["metadata"]["labels"]["scs.dev/workload"], "app");
    assert!(
        server.get(&path("/apis/apps/v1", "deployments/app-cache")).is_none(),
        "no pod of app-cache ever mounts app's data"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_created_by_someone_else_meanwhile_is_not_adopted() {
    let harness = Harness::start().await;
    let server = &harness.server;
    // The tenant finds `contested` absent, then someone creates it before the operator's POST lands.
    server.delay_next("POST", "/api/v1/namespaces", 1, Duration::from_millis(800));
    harness
        .create_tenant(json!({
            "apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "zeta"},
            "spec": {"namespaces": ["contested", "zeta"]}
        }))
        .await;
    eventually("the operator's POST of a namespace", || async {
        server.requests().iter().any(|r| r.method == "POST" && r.path == "/api/v1/namespaces")
    })
    .await;
    // Namespaces are created in spec order: the delayed POST is `contested`'s.
    server.insert(
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "contested", "labels": {"owner": "someone"}}}),
    );
    eventually("conflict reported", || async {
        harness.condition("zeta", "NamespacesReady").is_some_and(|c| c.0 == "False" && c.2.contains("contested"))
    })
    .await;
    let contested = server.get("/api/v1/namespaces/contested").unwrap();
    assert_eq!(contested["metadata"]["labels"], json!({"owner": "someone"}), "not adopted");
    assert_eq!(server.writes("/namespaces/contested"), vec![], "nothing written to or in it");
    assert!(server.get("/api/v1/namespaces/zeta").is_some(), "the other namespace is set up");
    harness.stop().await;
}
