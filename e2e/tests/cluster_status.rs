//! Status of what the real API server refuses: children refused by quota, pods refused at
//! creation, and an immutable StatefulSet change with its way through (recreate with orphan
//! propagation). Run by `e2e/localkube.sh` (or `e2e/kind.sh`).
#![cfg(feature = "cluster")]

use e2e::cluster::*;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use scs_operator::api::{SecureWorkload, WorkloadPhase};
use serde_json::{Value, json};

fn manifest(namespace: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": name, "namespace": namespace}, "spec": spec})
}

/// Waits until workload `name`'s condition `type_` has `status` and `reason` (for its current
/// generation) and returns its message.
async fn condition_reached(
    workloads: &Api<SecureWorkload>,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> String {
    until(&format!("workload {name} {type_}={status}/{reason}"), || async {
        let workload = workloads.get(name).await.ok()?;
        let current = workload.status.as_ref()?;
        let found = current.conditions.iter().find(|c| c.type_ == type_)?;
        (found.status == status
            && found.reason == reason
            && current.observed_generation == workload.metadata.generation)
            .then(|| found.message.clone())
    })
    .await
}

async fn warning_events(client: &Client, namespace: &str, name: &str, reason: &str) -> Vec<String> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), namespace);
    let list = events.list(&ListParams::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name) && e.reason.as_deref() == Some(reason)
        })
        .filter_map(|e| e.note)
        .collect()
}

/// Pods the ResourceQuota refuses: the Deployment's `ReplicaFailure` makes the workload Degraded
/// with reason FailedCreate and the API server's message.
#[tokio::test]
async fn pods_refused_by_quota_degrade_the_workload() {
    let client = client().await;
    let ns = "e2e-status-pods";
    ready_tenant(&client, ns, json!({"quota": {"cpu": "2", "memory": "2Gi", "pods": 1}})).await;
    let workloads: Api<SecureWorkload> = Api::namespaced(client.clone(), ns);
    let spec = json!({"kind": "Deployment", "replicas": 2, "template": {"spec": busybox_pod_spec(&["sleep", "3600"])}});
    apply(&workloads, "web", manifest(ns, "web", spec)).await;
    let message = condition_reached(&workloads, "web", "Degraded", "True", "FailedCreate").await;
    assert!(message.contains("exceeded quota"), "the server's message: {message}");
    let workload = workloads.get("web").await.unwrap();
    assert_eq!(workload.status.unwrap().phase, Some(WorkloadPhase::Degraded));
    until("a Degraded event naming the quota", || async {
        let notes = warning_events(&client, ns, "web", "Degraded").await;
        notes.iter().any(|n| n.contains("exceeded quota")).then_some(())
    })
    .await;
    workloads.delete("web", &DeleteParams::default()).await.unwrap();
    delete_tenant(&client, ns).await;
}

/// A Service the ResourceQuota refuses (a second LoadBalancer over `loadBalancers: 1`, which the
/// operator's own checks let through: each workload alone fits) is reported on the workload with
/// the server's message, and cleared once quota frees up.
#[tokio::test]
async fn a_child_refused_by_quota_is_reported_and_cleared() {
    let client = client().await;
    let ns = "e2e-status-lb";
    ready_tenant(&client, ns, json!({"quota": {"cpu": "2", "memory": "2Gi", "loadBalancers": 1}})).await;
    let workloads: Api<SecureWorkload> = Api::namespaced(client.clone(), ns);
    let spec = json!({"kind": "Deployment", "replicas": 0, "template": {"spec": busybox_pod_spec(&["sleep", "3600"])},
        "expose": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
    apply(&workloads, "first", manifest(ns, "first", spec.clone())).await;
    condition_reached(&workloads, "first", "ChildrenReady", "True", "Applied").await;
    apply(&workloads, "second", manifest(ns, "second", spec)).await;
    let message = condition_reached(&workloads, "second", "ChildrenReady", "False", "ApplyFailed").await;
    assert!(message.starts_with(&format!("Service {ns}/second refused by the API server:")), "{message}");
    assert!(message.contains("exceeded quota") && message.contains("services.loadbalancers"), "{message}");
    until("an ApplyFailed event", || async {
        (!warning_events(&client, ns, "second", "ApplyFailed").await.is_empty()).then_some(())
    })
    .await;
    workloads.delete("first", &DeleteParams::default()).await.unwrap();
    condition_reached(&workloads, "second", "ChildrenReady", "True", "Applied").await;
    workloads.delete("second", &DeleteParams::default()).await.unwrap();
    delete_tenant(&client, ns).await;
}

/// A volume size change is an immutable `volumeClaimTemplates` change: reported as ImmutableChange
/// with the running StatefulSet untouched; the one-shot annotation recreates it with orphan
/// propagation, so the pod (and its claim) is the same one before and after.
#[tokio::test]
async fn an_immutable_statefulset_change_is_reported_and_recreated_on_request() {
    let client = client().await;
    let ns = "e2e-status-sts";
    ready_tenant(&client, ns, json!({"quota": {"cpu": "2", "memory": "2Gi", "storage": {"total": "10Gi"}}})).await;
    let workloads: Api<SecureWorkload> = Api::namespaced(client.clone(), ns);
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let spec = |size: &str| {
        json!({"kind": "StatefulSet", "replicas": 1, "template": {"spec": busybox_pod_spec(&["sleep", "3600"])},
            "volumes": [{"name": "data", "size": size, "tier": "capacity", "mountPath": "/data"}]})
    };
    apply(&workloads, "db", manifest(ns, "db", spec("1Gi"))).await;
    // No provisioner on localkube: the pod waits for its claim, which is all this needs.
    let pod = until("pod db-0", || async { pods.get_opt("db-0").await.ok()? }).await;
    let uid = pod.uid().unwrap();
    let storage = |set: &StatefulSet| {
        let templates = set.spec.as_ref().unwrap().volume_claim_templates.clone().unwrap_or_default();
        templates[0].spec.as_ref().unwrap().resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0.clone()
    };
    let before = sets.get("db").await.unwrap();
    assert_eq!(storage(&before), "1Gi");

    apply(&workloads, "db", manifest(ns, "db", spec("2Gi"))).await;
    let message = condition_reached(&workloads, "db", "ChildrenReady", "False", "ImmutableChange").await;
    assert!(message.contains("spec.volumeClaimTemplates cannot change"), "{message}");
    assert!(message.contains("Forbidden"), "the API server's message is kept: {message}");
    assert!(message.contains("scs.dev/recreate-on-immutable-change=true"), "the way through is named: {message}");
    let untouched = sets.get("db").await.unwrap();
    assert_eq!(untouched.uid(), before.uid(), "the running StatefulSet is left as it is");
    assert_eq!(storage(&untouched), "1Gi");

    let annotate = json!({"metadata": {"annotations": {"scs.dev/recreate-on-immutable-change": "true"}}});
    workloads.patch("db", &PatchParams::default(), &Patch::Merge(&annotate)).await.unwrap();
    let recreated = until("the StatefulSet recreated with the new template", || async {
        let set = sets.get_opt("db").await.ok()??;
        (set.uid() != before.uid() && storage(&set) == "2Gi").then_some(set)
    })
    .await;
    condition_reached(&workloads, "db", "ChildrenReady", "True", "Applied").await;
    let annotations = workloads.get("db").await.unwrap().annotations().clone();
    assert!(!annotations.contains_key("scs.dev/recreate-on-immutable-change"), "one-shot: {annotations:?}");
    // Orphan propagation: the pod kept running through it and the new StatefulSet adopted it.
    let adopted = until("pod db-0 adopted by the new StatefulSet", || async {
        let pod = pods.get_opt("db-0").await.ok()??;
        let owner = pod.owner_references().iter().find(|o| o.controller == Some(true))?.uid.clone();
        (owner == recreated.uid().unwrap()).then_some(pod)
    })
    .await;
    assert_eq!(adopted.uid().unwrap(), uid, "the same pod, not a new one");
    workloads.delete("db", &DeleteParams::default()).await.unwrap();
    delete_tenant(&client, ns).await;
}
