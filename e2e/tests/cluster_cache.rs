//! The child caches on a real API server: children are judged from watch caches by their applied
//! hash and the managedFields the API server keeps, so edits by others must still be seen and
//! undone, and an undone edit must not start a write loop. Run by `e2e/localkube.sh`.
#![cfg(feature = "cluster")]

use std::time::Duration;

use e2e::cluster::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{LimitRange, Pod, ResourceQuota, Service};
use k8s_openapi::jiff;
use kube::ResourceExt;
use kube::api::{Api, LogParams, Patch, PatchParams, PostParams};
use scs_operator::api::SecureWorkload;
use scs_operator::controller::children::APPLIED_HASH;
use serde_json::json;

/// Lines of the leading operator's log since `since` that contain every one of `needles`.
async fn leader_log_lines(client: &kube::Client, since: jiff::Timestamp, needles: &[&str]) -> usize {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "scs-system");
    let holder = leases.get("scs-operator").await.unwrap().spec.unwrap().holder_identity.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "scs-system");
    let seconds = (jiff::Timestamp::now().duration_since(since).as_secs() + 1).max(1);
    let params = LogParams { since_seconds: Some(seconds), ..Default::default() };
    let log = pods.logs(&holder, &params).await.unwrap();
    assert!(!log.contains('\u{1b}'), "no terminal colour codes in a container's log: {log}");
    // `since_seconds` is whole seconds: keep the lines stamped after `since`.
    let stamp = |line: &str| line.split_whitespace().next().and_then(|token| token.parse::<jiff::Timestamp>().ok());
    log.lines()
        .filter(|line| stamp(line).is_some_and(|at| at > since))
        .filter(|line| needles.iter().all(|n| line.contains(n)))
        .count()
}

/// The operator does not apply `name` (in namespace `ns`) again during `quiet`: it holds what the
/// operator wants. (A no-op apply leaves the object as it was, so only the operator's log tells.)
async fn not_applied_again(client: &kube::Client, ns: &str, name: &str, quiet: Duration) {
    let since = jiff::Timestamp::now();
    tokio::time::sleep(quiet).await;
    let applied = leader_log_lines(client, since, &[" applied", ns, name]).await;
    assert_eq!(applied, 0, "{ns}/{name} was applied again although it holds what the operator wants");
}

#[tokio::test]
async fn edits_by_others_are_undone_once_and_not_fought_over() {
    let client = client().await;
    let ns = "e2e-drift";
    ready_tenant(&client, ns, json!({"quota": {"cpu": "2", "memory": "4Gi", "pods": 10}})).await;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), ns);
    let quota = quotas.get("scs-tenant-quota").await.unwrap();
    assert!(quota.annotations().contains_key(APPLIED_HASH), "children carry the hash of what was applied");
    let pods = quota.spec.as_ref().and_then(|s| s.hard.as_ref()).unwrap()["pods"].clone();

    // A field of ours changed by someone else (an update, as `kubectl edit` makes): the field moves
    // to their manager, which the cache sees; the operator puts it back.
    let someone = PatchParams { field_manager: Some("e2e-someone".into()), ..Default::default() };
    quotas.patch("scs-tenant-quota", &someone, &Patch::Merge(json!({"spec": {"hard": {"pods": "99"}}}))).await.unwrap();
    until("quota pods restored", || async {
        let hard = quotas.get("scs-tenant-quota").await.ok()?.spec?.hard?;
        (hard["pods"] == pods).then_some(())
    })
    .await;
    not_applied_again(&client, ns, "scs-tenant-quota", Duration::from_secs(5)).await;

    // A field of ours removed (no one owns it afterwards: only our own field set shrinks).
    let limits: Api<LimitRange> = Api::namespaced(client.clone(), ns);
    let original = limits.list(&Default::default()).await.unwrap().items[0].clone();
    let name = original.name_any();
    let requests = original.spec.as_ref().and_then(|s| s.limits.first()?.default_request.clone());
    let remove = json!([{"op": "remove", "path": "/spec/limits/0/defaultRequest"}]);
    let patch: json_patch::Patch = serde_json::from_value(remove).unwrap();
    limits.patch(&name, &someone, &Patch::Json::<()>(patch)).await.unwrap();
    // (The API server defaults a missing defaultRequest to the limits: restored means ours again.)
    until("LimitRange default requests restored", || async {
        let limit = limits.get(&name).await.ok()?;
        (limit.spec?.limits.first()?.default_request == requests).then_some(())
    })
    .await;
    not_applied_again(&client, ns, &name, Duration::from_secs(5)).await;

    // A workload's replicas scaled by hand through the scale subresource: scaled back. A field the
    // operator does not set (an annotation of someone else) is left as it is, with no write.
    let workloads: Api<SecureWorkload> = Api::namespaced(client.clone(), ns);
    let spec = json!({"kind": "Deployment", "replicas": 0, "template": {"spec": busybox_pod_spec(&["sleep", "3600"])}});
    let manifest = json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload",
        "metadata": {"name": "web", "namespace": ns}, "spec": spec});
    apply(&workloads, "web", manifest).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    until("Deployment web", || async { deployments.get_opt("web").await.ok()?.map(|_| ()) }).await;
    deployments.patch_scale("web", &someone, &Patch::Merge(json!({"spec": {"replicas": 3}}))).await.unwrap();
    until("replicas scaled back to 0", || async {
        (deployments.get("web").await.ok()?.spec?.replicas == Some(0)).then_some(())
    })
    .await;
    let note = json!({"metadata": {"annotations": {"example.com/note": "mine"}}});
    deployments.patch("web", &someone, &Patch::Merge(note)).await.unwrap();
    not_applied_again(&client, ns, "web", Duration::from_secs(5)).await;
    let deployment = deployments.get("web").await.unwrap();
    assert_eq!(deployment.annotations()["example.com/note"], "mine", "not ours: kept");
    delete_tenant(&client, ns).await;
}

/// A new child's name held by an object without our label is known from the watch of such names
/// (`managed-by!=scs-operator`, which the API server answers with the objects lacking the label
/// too), not from a GET per new child: the workload reports the conflict and the object stays
/// as its maker left it.
#[tokio::test]
async fn a_name_taken_by_someone_else_is_seen_from_the_caches() {
    let client = client().await;
    let ns = "e2e-names";
    ready_tenant(&client, ns, json!({})).await;
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let theirs: Service = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "taken", "labels": {"team": "ops"}},
        "spec": {"selector": {"app": "legacy"}, "ports": [{"port": 8080}]}}))
    .unwrap();
    services.create(&PostParams::default(), &theirs).await.unwrap();
    let workloads: Api<SecureWorkload> = Api::namespaced(client.clone(), ns);
    let spec = json!({"kind": "Deployment", "replicas": 0, "expose": {"ports": [{"port": 80}]},
        "template": {"spec": busybox_pod_spec(&["sleep", "3600"])}});
    let manifest = json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload",
        "metadata": {"name": "taken", "namespace": ns}, "spec": spec});
    apply(&workloads, "taken", manifest).await;
    let wanted = r#"Service "taken" exists and was not created by scs-operator"#;
    until("the workload reports the taken name", || async {
        let status = workloads.get("taken").await.ok()?.status?;
        status.conditions.iter().any(|c| c.reason == "Conflict" && c.message.contains(wanted)).then_some(())
    })
    .await;
    let service = services.get("taken").await.unwrap();
    assert_eq!(service.labels().get("team").map(String::as_str), Some("ops"));
    assert!(!service.annotations().contains_key(APPLIED_HASH), "never applied by the operator");
    assert!(service.managed_fields().iter().all(|m| m.manager.as_deref() != Some("scs-operator")));
    services.delete("taken", &Default::default()).await.unwrap();
    workloads.delete("taken", &Default::default()).await.unwrap();
    delete_tenant(&client, ns).await;
}
