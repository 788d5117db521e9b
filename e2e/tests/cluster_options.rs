//! Issue 14 on a real cluster: Job options really act (completions, parallelism, backoffLimit),
//! and a Deployment configured the everyday way (env from a ConfigMap and a Secret, a ConfigMap
//! volume, a readiness probe) becomes ready, its pods and children carrying the workload's labels.
//! Run by `e2e/localkube.sh` (or `e2e/kind.sh`) with the kind overlay installed.
#![cfg(feature = "cluster")]

use e2e::cluster::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams};
use scs_operator::api::{SecureWorkload, WorkloadPhase};
use serde_json::{Value, json};

fn workload_manifest(namespace: &str, name: &str, metadata: Value, spec: Value) -> Value {
    let mut manifest = json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload",
        "metadata": {"name": name, "namespace": namespace}, "spec": spec});
    json_patch::merge(&mut manifest["metadata"], &metadata);
    manifest
}

async fn phase_reached(workloads: &Api<SecureWorkload>, name: &str, phase: WorkloadPhase) -> SecureWorkload {
    until(&format!("workload {name} {phase:?}"), || async {
        let workload = workloads.get(name).await.ok()?;
        let status = workload.status.as_ref()?;
        (status.phase == Some(phase) && status.observed_generation == workload.metadata.generation).then_some(workload)
    })
    .await
}

#[tokio::test]
async fn job_options_are_what_the_job_controller_runs_by() {
    let client = client().await;
    let ns = "e2e-options-job";
    ready_tenant(&client, ns, json!({"quota": {"cpu": "2", "memory": "2Gi", "pods": 20}})).await;
    let workloads: Api<SecureWorkload> = Api::namespaced(client.clone(), ns);
    let mut done = busybox_pod_spec(&["sh", "-c", "echo done"]);
    done["restartPolicy"] = json!("Never");
    let mut fails = busybox_pod_spec(&["sh", "-c", "exit 3"]);
    fails["restartPolicy"] = json!("Never");
    apply(
        &workloads,
        "three",
        workload_manifest(
            ns,
            "three",
            json!({}),
            json!({"kind": "Job", "replicas": 2, "job": {"completions": 3, "backoffLimit": 1, "activeDeadlineSeconds": 300},
                "template": {"spec": done}}),
        ),
    )
    .await;
    apply(
        &workloads,
        "once",
        workload_manifest(
            ns,
            "once",
            json!({}),
            json!({"kind": "Job", "job": {"backoffLimit": 0}, "template": {"spec": fails}}),
        ),
    )
    .await;

    phase_reached(&workloads, "three", WorkloadPhase::Succeeded).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let job = jobs.get("three").await.unwrap();
    let spec = job.spec.unwrap();
    assert_eq!((spec.parallelism, spec.completions, spec.backoff_limit), (Some(2), Some(3), Some(1)));
    assert_eq!(spec.active_deadline_seconds, Some(300));
    assert_eq!(job.status.unwrap().succeeded, Some(3), "three pods ran to completion, not one");
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let succeeded = pods.list(&ListParams::default().labels("scs.dev/workload=three")).await.unwrap().items;
    assert_eq!(
        succeeded.iter().filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")).count(),
        3
    );

    // backoffLimit 0: the first failed pod fails the Job; no retry is started.
    phase_reached(&workloads, "once", WorkloadPhase::Failed).await;
    let job = jobs.get("once").await.unwrap();
    assert_eq!(job.spec.unwrap().backoff_limit, Some(0));
    assert_eq!(job.status.unwrap().failed, Some(1), "exactly one attempt");
    let attempts = pods.list(&ListParams::default().labels("scs.dev/workload=once")).await.unwrap().items;
    assert_eq!(attempts.len(), 1, "no retry pod");

    for name in ["three", "once"] {
        workloads.delete(name, &DeleteParams::default()).await.unwrap();
    }
    delete_tenant(&client, ns).await;
}

#[tokio::test]
async fn a_deployment_reads_its_configmap_and_secret_and_becomes_ready() {
    let client = client().await;
    let ns = "e2e-options-env";
    ready_tenant(&client, ns, json!({"quota": {"cpu": "2", "memory": "2Gi"}})).await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    apply(
        &config_maps,
        "greeting",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "greeting", "namespace": ns},
            "data": {"GREETING": "hello", "motd.txt": "hello from the config map"}}),
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    apply(
        &secrets,
        "token",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", "namespace": ns},
            "stringData": {"TOKEN": "s3cret"}}),
    )
    .await;

    let mut pod = busybox_pod_spec(&["sleep", "3600"]);
    let container = &mut pod["containers"][0];
    container["envFrom"] = json!([{"configMapRef": {"name": "greeting"}}]);
    container["env"] = json!([{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "token", "key": "TOKEN"}}}]);
    container["volumeMounts"] = json!([{"name": "motd", "mountPath": "/etc/motd.d", "readOnly": true}]);
    // Ready only when the environment and the mounted file hold what the ConfigMap and Secret say.
    container["readinessProbe"] = json!({"exec": {"command": ["sh", "-c",
        "test \"$GREETING\" = hello && test \"$TOKEN\" = s3cret && grep -q 'from the config map' /etc/motd.d/motd.txt"]},
        "periodSeconds": 1});
    container["livenessProbe"] = json!({"exec": {"command": ["true"]}, "periodSeconds": 5});
    pod["volumes"] = json!([{"name": "motd", "configMap": {"name": "greeting", "items": [{"key": "motd.txt", "path": "motd.txt"}]}}]);
    let workloads: Api<SecureWorkload> = Api::namespaced(client.clone(), ns);
    apply(
        &workloads,
        "web",
        workload_manifest(
            ns,
            "web",
            json!({"labels": {"team": "shop", "scs.dev/tier": "ignored"}}),
            json!({"kind": "Deployment", "replicas": 1, "updateStrategy": {"maxSurge": 1, "maxUnavailable": 0},
                "expose": {"ports": [{"port": 80, "targetPort": 8080}]}, "template": {"spec": pod}}),
        ),
    )
    .await;
    phase_reached(&workloads, "web", WorkloadPhase::Running).await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let ready = until("a ready pod of web", || async {
        let list = pods.list(&ListParams::default().labels("scs.dev/workload=web")).await.ok()?;
        list.items.into_iter().find(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
    })
    .await;
    let labels = ready.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("shop"), "the workload's labels reach its pods");
    assert!(!labels.contains_key("scs.dev/tier"), "reserved prefixes stay behind");

    let deployment = Api::<Deployment>::namespaced(client.clone(), ns).get("web").await.unwrap();
    assert_eq!(deployment.metadata.labels.unwrap().get("team").map(String::as_str), Some("shop"));
    let spec = deployment.spec.unwrap();
    let selector = spec.selector.match_labels.unwrap();
    assert_eq!(selector.keys().collect::<Vec<_>>(), vec!["scs.dev/workload"], "selectors never change");
    let strategy = spec.strategy.unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"), "no volume, no static ip: it rolls");
    let service = Api::<Service>::namespaced(client.clone(), ns).get("web").await.unwrap();
    assert_eq!(service.metadata.labels.unwrap().get("team").map(String::as_str), Some("shop"));
    assert_eq!(service.spec.unwrap().selector.unwrap().keys().collect::<Vec<_>>(), vec!["scs.dev/workload"]);

    workloads.delete("web", &DeleteParams::default()).await.unwrap();
    delete_tenant(&client, ns).await;
}
