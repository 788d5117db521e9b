//! SecureWorkload revision history and rollback against the fake API server: a ControllerRevision
//! per distinct spec (not per scale), pruned to `revisionHistoryLimit`, listed in status; the
//! `scs.dev/rollback-to` annotation copies a revision's spec back, an unknown revision is refused
//! with a condition and an Event. Also the scale subresource's status fields.

use e2e::harness::{Harness, eventually};
use kube::api::{Api, Patch, PatchParams, PostParams};
use scs_operator::api::SecureWorkload;
use serde_json::{Value, json};

const NS: &str = "acme-prod";
const REVISIONS: &str = "/apis/apps/v1/namespaces/acme-prod/controllerrevisions";

async fn start() -> Harness {
    Harness::with_acme(NS).await
}

fn api(harness: &Harness) -> Api<SecureWorkload> {
    Api::namespaced(harness.client.clone(), NS)
}

async fn patch(harness: &Harness, patch: Value) {
    api(harness).patch("web", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

fn image_patch(image: &str) -> Value {
    json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})
}

fn status(harness: &Harness) -> Value {
    harness.server.get(&format!("/apis/scs.dev/v1alpha1/namespaces/{NS}/secureworkloads/web")).unwrap()["status"]
        .clone()
}

/// `(revision, summary)` of status.revisions.
fn listed(harness: &Harness) -> Vec<(i64, String)> {
    status(harness)["revisions"]
        .as_array()
        .map(|r| {
            r.iter().map(|r| (r["revision"].as_i64().unwrap(), r["summary"].as_str().unwrap().to_string())).collect()
        })
        .unwrap_or_default()
}

fn deployment_image(harness: &Harness) -> String {
    harness.server.get(&format!("/apis/apps/v1/namespaces/{NS}/deployments/web")).map_or(String::new(), |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap_or_default().to_string()
    })
}

async fn create_web(harness: &Harness, limit: Option<i32>) {
    let mut manifest = json!({
        "apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": "web", "namespace": NS},
        "spec": {"kind": "Deployment", "replicas": 2,
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1.0"}]}}},
    });
    if let Some(limit) = limit {
        manifest["spec"]["revisionHistoryLimit"] = json!(limit);
    }
    let object: SecureWorkload = serde_json::from_value(manifest).unwrap();
    api(harness).create(&PostParams::default(), &object).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_changes_are_revisions_and_scaling_is_not() {
    let harness = start().await;
    create_web(&harness, None).await;
    eventually("revision 1", || async { listed(&harness) == [(1, "created".to_string())] }).await;
    let revisions = harness.server.list(REVISIONS);
    assert_eq!(revisions.len(), 1);
    let first = &revisions[0];
    assert_eq!(first["revision"], 1);
    assert_eq!(first["metadata"]["labels"]["app.kubernetes.io/managed-by"], "scs-operator");
    assert_eq!(first["metadata"]["labels"]["scs.dev/workload"], "web");
    assert_eq!(first["metadata"]["ownerReferences"][0]["kind"], "SecureWorkload");
    assert_eq!(first["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(first["data"]["spec"]["template"]["spec"]["containers"][0]["image"], "registry.example.com/app:1.0");
    assert!(first["data"]["spec"].get("replicas").is_none(), "replicas are not part of a revision");
    // The scale subresource reads these.
    assert_eq!(status(&harness)["selector"], "scs.dev/workload=web");

    // Scaling, suspending and restarting are not revisions.
    patch(&harness, json!({"spec": {"replicas": 5, "restartedAt": "2026-01-01T00:00:00Z"}})).await;
    eventually("scaled", || async {
        harness.server.get(&format!("/apis/apps/v1/namespaces/{NS}/deployments/web")).unwrap()["spec"]["replicas"] == 5
    })
    .await;
    patch(&harness, image_patch("registry.example.com/app:1.1")).await;
    eventually("revision 2", || async { listed(&harness).len() == 2 }).await;
    assert_eq!(listed(&harness)[1], (2, "image app: 1.0 → 1.1".to_string()));
    assert_eq!(harness.server.list(REVISIONS).len(), 2);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_pruned_to_the_limit() {
    let harness = start().await;
    create_web(&harness, Some(2)).await;
    eventually("revision 1", || async { listed(&harness).len() == 1 }).await;
    for (n, tag) in ["1.1", "1.2", "1.3", "1.4"].iter().enumerate() {
        patch(&harness, image_patch(&format!("registry.example.com/app:{tag}"))).await;
        let newest = n as i64 + 2;
        eventually("next revision", || async { listed(&harness).last().map(|r| r.0) == Some(newest) }).await;
    }
    // The current revision and two old ones.
    let numbers: Vec<i64> = listed(&harness).iter().map(|r| r.0).collect();
    assert_eq!(numbers, [3, 4, 5]);
    let mut stored: Vec<i64> = harness.server.list(REVISIONS).iter().map(|r| r["revision"].as_i64().unwrap()).collect();
    stored.sort();
    assert_eq!(stored, [3, 4, 5]);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_by_annotation_restores_the_spec_and_refuses_unknown_revisions() {
    let harness = start().await;
    create_web(&harness, None).await;
    eventually("revision 1", || async { listed(&harness).len() == 1 }).await;
    patch(&harness, image_patch("registry.example.com/app:1.1")).await;
    eventually("revision 2", || async { listed(&harness).len() == 2 }).await;
    patch(&harness, json!({"spec": {"replicas": 4}})).await;

    patch(&harness, json!({"metadata": {"annotations": {"scs.dev/rollback-to": "1"}}})).await;
    eventually("rolled back", || async { deployment_image(&harness) == "registry.example.com/app:1.0" }).await;
    let workload = api(&harness).get("web").await.unwrap();
    assert!(!workload.metadata.annotations.unwrap_or_default().contains_key("scs.dev/rollback-to"));
    assert_eq!(workload.spec.replicas, Some(4), "a rollback keeps the current replicas");
    // The restored spec is revision 1's, renumbered as the newest: no new object.
    eventually("renumbered", || async {
        listed(&harness) == [(2, "image app: 1.0 → 1.1".to_string()), (3, "image app: 1.1 → 1.0".to_string())]
    })
    .await;
    assert_eq!(harness.server.list(REVISIONS).len(), 2);
    let rolled_back = || {
        status(&harness)["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "RolledBack").cloned())
    };
    let condition = rolled_back().expect("a RolledBack condition");
    assert_eq!(condition["status"], "True");
    assert!(condition["message"].as_str().unwrap().contains("rolled back to revision 1"), "{condition}");
    eventually("RolledBack event", || async { harness.event_reasons().contains(&"RolledBack".to_string()) }).await;

    // An unknown revision: nothing changes, the annotation goes, the condition and an Event say why.
    patch(&harness, json!({"metadata": {"annotations": {"scs.dev/rollback-to": "9"}}})).await;
    eventually("refused", || async { rolled_back().is_some_and(|c| c["status"] == "False") }).await;
    let condition = rolled_back().unwrap();
    assert_eq!(condition["reason"], "RollbackRefused");
    assert!(condition["message"].as_str().unwrap().contains("revision 9 does not exist (kept: 2, 3)"), "{condition}");
    eventually("RollbackRefused event", || async { harness.event_reasons().contains(&"RollbackRefused".to_string()) })
        .await;
    let workload = api(&harness).get("web").await.unwrap();
    assert!(!workload.metadata.annotations.unwrap_or_default().contains_key("scs.dev/rollback-to"));
    assert_eq!(deployment_image(&harness), "registry.example.com/app:1.0");
    harness.stop().await;
}

/// The plugin's commands (`kubectl scs history|rollback|status`) against the API: the same
/// functions the binary runs, with the harness's client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_commands_read_history_and_request_a_rollback() {
    use scs_operator::plugin;
    let harness = start().await;
    create_web(&harness, None).await;
    eventually("revision 1", || async { listed(&harness).len() == 1 }).await;
    patch(&harness, image_patch("registry.example.com/app:1.1")).await;
    eventually("revision 2", || async { listed(&harness).len() == 2 }).await;

    let history = plugin::history(harness.client.clone(), "web", Some(NS.into())).await.unwrap();
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 3, "{history}");
    assert!(lines[0].starts_with("REVISION") && lines[0].ends_with("CHANGE"), "{history}");
    assert!(lines[1].starts_with("1 ") && lines[1].ends_with("created"), "{history}");
    assert!(lines[2].starts_with("2 (current)") && lines[2].ends_with("image app: 1.0 → 1.1"), "{history}");

    // Without --to-revision: the previous revision.
    let said = plugin::rollback(harness.client.clone(), "web", Some(NS.into()), None).await.unwrap();
    assert!(said.contains("rollback to revision 1 requested"), "{said}");
    eventually("rolled back", || async { deployment_image(&harness) == "registry.example.com/app:1.0" }).await;
    eventually("status says so", || async {
        let status = plugin::status(harness.client.clone(), &plugin::Target::Workload("web".into()), Some(NS.into()))
            .await
            .unwrap();
        status.contains("Revision:         3") && status.contains("RolledBack")
    })
    .await;
    let tenant =
        plugin::status(harness.client.clone(), &plugin::parse_target("tenant/acme").unwrap(), None).await.unwrap();
    assert!(tenant.starts_with("Tenant: acme\nReady:  True\n"), "{tenant}");
    assert!(tenant.contains("acme-prod"), "{tenant}");
    let missing = plugin::history(harness.client.clone(), "nope", Some(NS.into())).await.unwrap_err();
    assert!(missing.to_string().contains("not found"), "{missing}");
    harness.stop().await;
}
