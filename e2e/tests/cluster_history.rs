//! kubectl-native day 2 on a real API server: `kubectl scale` through the SecureWorkload's scale
//! subresource, an HorizontalPodAutoscaler resolving it, the spec history kept as
//! ControllerRevisions (collected by the real garbage collector with their workload) and a
//! rollback by annotation. Run by `e2e/localkube.sh` (or `e2e/kind.sh`).
#![cfg(feature = "cluster")]

use e2e::cluster::*;
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use scs_operator::api::SecureWorkload;
use serde_json::{Value, json};

fn workload(namespace: &str, name: &str, image: &str, extra: Value) -> Value {
    let mut pod = busybox_pod_spec(&["sleep", "3600"]);
    pod["containers"][0]["image"] = json!(image);
    let mut spec = json!({"kind": "Deployment", "replicas": 1, "template": {"spec": pod}});
    json_patch::merge(&mut spec, &extra);
    json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": name, "namespace": namespace}, "spec": spec})
}

async fn deployment_where<F: Fn(&Deployment) -> bool>(
    client: &kube::Client,
    ns: &str,
    name: &str,
    what: &str,
    check: F,
) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    until(what, || async { deployments.get(name).await.ok().filter(|d| check(d)).map(|_| ()) }).await;
}

fn image(deployment: &Deployment) -> String {
    deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0].image.clone().unwrap_or_default()
}

#[tokio::test]
async fn kubectl_scale_and_an_hpa_use_the_scale_subresource() {
    let client = client().await;
    let ns = "e2e-scale";
    ready_tenant(&client, ns, json!({"quota": {"cpu": "2", "memory": "2Gi"}})).await;
    let workloads: Api<SecureWorkload> = Api::namespaced(client.clone(), ns);
    apply(&workloads, "web", workload(ns, "web", BUSYBOX, json!({}))).await;
    deployment_where(&client, ns, "web", "Deployment web", |_| true).await;

    let out = kubectl(&["scale", "-n", ns, "swl/web", "--replicas=3"], None).unwrap();
    assert!(out.contains("scaled"), "{out}");
    deployment_where(&client, ns, "web", "Deployment web scaled to 3", |d| {
        d.spec.as_ref().unwrap().replicas == Some(3)
    })
    .await;
    // The scale subresource reports the selector and the pods the Deployment runs.
    let scale = until("scale status", || async {
        let raw = kubectl(
            &["get", "--raw", &format!("/apis/scs.dev/v1alpha1/namespaces/{ns}/secureworkloads/web/scale")],
            None,
        )
        .ok()?;
        let scale: Value = serde_json::from_str(&raw).ok()?;
        (scale["status"]["replicas"] == 3).then_some(scale)
    })
    .await;
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"]["selector"], "scs.dev/workload=web");
    // Scaling the Deployment itself is reverted: the SecureWorkload is what to scale.
    kubectl(&["scale", "-n", ns, "deploy/web", "--replicas=1"], None).unwrap();
    deployment_where(&client, ns, "web", "Deployment web back at 3", |d| d.spec.as_ref().unwrap().replicas == Some(3))
        .await;

    // An HPA targeting the SecureWorkload resolves its scale (no metrics server: no scaling).
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);
    apply(
        &hpas,
        "web",
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web", "namespace": ns},
               "spec": {"scaleTargetRef": {"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "name": "web"},
                        "minReplicas": 1, "maxReplicas": 5,
                        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}}),
    )
    .await;
    let able = until("HPA AbleToScale", || async {
        let hpa = hpas.get("web").await.ok()?;
        hpa.status?.conditions?.into_iter().find(|c| c.type_ == "AbleToScale")
    })
    .await;
    assert_eq!((able.status.as_str(), able.reason.as_deref()), ("True", Some("SucceededGetScale")), "{able:?}");
    hpas.delete("web", &DeleteParams::default()).await.unwrap();

    // A DaemonSet has no replicas: scaling it is refused by the CRD's own rule.
    apply(&workloads, "agents", {
        let mut m = workload(ns, "agents", BUSYBOX, json!({"kind": "DaemonSet"}));
        m["spec"].as_object_mut().unwrap().remove("replicas");
        m
    })
    .await;
    let error = kubectl(&["scale", "-n", ns, "swl/agents", "--replicas=2"], None).unwrap_err();
    assert!(error.contains("replicas cannot be set for a DaemonSet"), "{error}");
    for name in ["web", "agents"] {
        workloads.delete(name, &DeleteParams::default()).await.unwrap();
    }
    delete_tenant(&client, ns).await;
}

#[tokio::test]
async fn revisions_are_kept_rolled_back_to_and_collected_with_the_workload() {
    let client = client().await;
    let ns = "e2e-history";
    ready_tenant(&client, ns, json!({"quota": {"cpu": "2", "memory": "2Gi"}})).await;
    let workloads: Api<SecureWorkload> = Api::namespaced(client.clone(), ns);
    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), ns);
    let ours = ListParams::default().labels("app.kubernetes.io/managed-by=scs-operator,scs.dev/workload=web");
    // The same local image under two tags: both run, and the spec differs.
    let (old, new) = (BUSYBOX, BUSYBOX_NEXT);
    apply(&workloads, "web", workload(ns, "web", old, json!({}))).await;
    deployment_where(&client, ns, "web", "Deployment web", |d| image(d) == old).await;
    apply(&workloads, "web", workload(ns, "web", new, json!({}))).await;
    deployment_where(&client, ns, "web", "Deployment web updated", |d| image(d) == new).await;
    // Scaling is not a revision.
    kubectl(&["scale", "-n", ns, "swl/web", "--replicas=2"], None).unwrap();
    let listed = until("two revisions in status", || async {
        let status = workloads.get("web").await.ok()?.status?;
        (status.revisions.len() == 2).then_some(status.revisions)
    })
    .await;
    assert_eq!((listed[0].revision, listed[1].revision), (1, 2));
    // The summary names what differs between the two references: the tag.
    assert_eq!(listed[1].summary, "image main: 1.36 → 1.37");
    let stored = revisions.list(&ours).await.unwrap().items;
    assert_eq!(stored.len(), 2);
    for revision in &stored {
        let owner = &revision.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.controller), ("SecureWorkload", "web", Some(true)));
    }

    // Roll back with the annotation (what `kubectl scs rollback` sets).
    kubectl(&["annotate", "-n", ns, "swl/web", "scs.dev/rollback-to=1"], None).unwrap();
    deployment_where(&client, ns, "web", "Deployment web rolled back", |d| image(d) == old).await;
    let workload = until("rollback reported", || async {
        let workload = workloads.get("web").await.ok()?;
        let done = workload.status.as_ref()?.conditions.iter().any(|c| c.type_ == "RolledBack" && c.status == "True");
        (done && workload.status.as_ref()?.revisions.last()?.revision == 3).then_some(workload)
    })
    .await;
    assert!(!workload.metadata.annotations.unwrap_or_default().contains_key("scs.dev/rollback-to"));
    assert_eq!(workload.spec.replicas, Some(2), "the rollback keeps the scale");
    assert_eq!(revisions.list(&ours).await.unwrap().items.len(), 2, "revision 1 renumbered, not copied");
    // An unknown revision is refused where the user looks.
    kubectl(&["annotate", "-n", ns, "swl/web", "scs.dev/rollback-to=7"], None).unwrap();
    let refused = until("rollback refused", || async {
        let status = workloads.get("web").await.ok()?.status?;
        status.conditions.into_iter().find(|c| c.type_ == "RolledBack" && c.status == "False")
    })
    .await;
    assert_eq!(refused.reason, "RollbackRefused");
    assert!(refused.message.contains("revision 7 does not exist"), "{}", refused.message);
    let events =
        kubectl(&["get", "events", "-n", ns, "--field-selector", "reason=RollbackRefused", "-o", "name"], None)
            .unwrap();
    assert!(!events.trim().is_empty(), "a RollbackRefused Event");

    // The real garbage collector removes the revisions with their workload.
    workloads.delete("web", &DeleteParams::default()).await.unwrap();
    until("revisions collected", || async { revisions.list(&ours).await.ok()?.items.is_empty().then_some(()) }).await;
    delete_tenant(&client, ns).await;
}

#[tokio::test]
async fn a_forced_apply_after_a_rollback_wins_as_gitops_does() {
    // The rollback is written under its own field manager, so a later apply by the user (or Argo
    // CD) takes the spec back without a conflict when it forces, as GitOps tools do.
    let client = client().await;
    let ns = "e2e-gitops";
    ready_tenant(&client, ns, json!({"quota": {"cpu": "1", "memory": "1Gi"}})).await;
    let workloads: Api<SecureWorkload> = Api::namespaced(client.clone(), ns);
    apply(&workloads, "app", workload(ns, "app", BUSYBOX, json!({}))).await;
    until("revision 1", || async { (workloads.get("app").await.ok()?.status?.revisions.len() == 1).then_some(()) })
        .await;
    apply(&workloads, "app", workload(ns, "app", BUSYBOX_NEXT, json!({}))).await;
    until("revision 2", || async { (workloads.get("app").await.ok()?.status?.revisions.len() == 2).then_some(()) })
        .await;
    workloads
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"scs.dev/rollback-to": "1"}}})),
        )
        .await
        .unwrap();
    deployment_where(&client, ns, "app", "rolled back", |d| image(d) == BUSYBOX).await;
    // Git still says the new image: the next sync puts it back (roll back in Git under GitOps).
    apply(&workloads, "app", workload(ns, "app", BUSYBOX_NEXT, json!({}))).await;
    deployment_where(&client, ns, "app", "Git wins", |d| image(d) == BUSYBOX_NEXT).await;
    workloads.delete("app", &DeleteParams::default()).await.unwrap();
    delete_tenant(&client, ns).await;
}
