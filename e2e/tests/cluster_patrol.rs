//! Issue 19 on a real cluster: tenant expiry with policy Suspend scales a SecureWorkload's
//! Deployment to zero and renewal brings it back; the API server refuses malformed expiry, channel
//! and patrol fields; only cloud admins may touch Patrols and NotificationChannels, and the
//! operator reads Secrets in its own namespace only. Run by `e2e/localkube.sh` (or `e2e/kind.sh`).
#![cfg(feature = "cluster")]

use e2e::cluster::*;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use kube::api::{Api, Patch, PatchParams};
use scs_operator::api::{SecureWorkload, Tenant, WorkloadPhase};
use serde_json::json;

async fn deployment_replicas(deployments: &Api<Deployment>, name: &str, want: i32) {
    until(&format!("Deployment {name} replicas {want}"), || async {
        let deployment = deployments.get(name).await.ok()?;
        (deployment.spec?.replicas == Some(want)).then_some(())
    })
    .await
}

/// Waits until DaemonSet `agent` wants `scheduled` pods, paused (its pod template selecting the
/// pause label) or not.
async fn daemonset_scheduled(daemonsets: &Api<DaemonSet>, scheduled: i32, paused: bool) {
    until(&format!("DaemonSet agent: {scheduled} scheduled, paused {paused}"), || async {
        let daemonset = daemonsets.get("agent").await.ok()?;
        let selector = daemonset.spec.as_ref()?.template.spec.as_ref()?.node_selector.clone().unwrap_or_default();
        let is_paused = selector.contains_key(scs_operator::expiry::PAUSED_NODE_LABEL);
        let status = daemonset.status?;
        let current = status.observed_generation == daemonset.metadata.generation;
        (current && status.desired_number_scheduled == scheduled && is_paused == paused).then_some(())
    })
    .await
}

#[tokio::test]
async fn expiry_with_suspend_scales_to_zero_and_renewal_restores_the_replicas() {
    let client = client().await;
    let ns = "e2e-expiry";
    let future = "2099-01-01T00:00:00Z";
    ready_tenant(
        &client,
        ns,
        json!({"quota": {"cpu": "2", "memory": "2Gi", "pods": 10}, "expiresAt": future, "expiryPolicy": "Suspend"}),
    )
    .await;
    let tenants: Api<Tenant> = Api::all(client.clone());
    let lifecycle = tenants.get(ns).await.unwrap().status.unwrap().lifecycle.expect("lifecycle in status");
    assert_eq!(format!("{:?}", lifecycle.state), "Active");
    assert!(lifecycle.days_left > 365, "{lifecycle:?}");

    let workloads: Api<SecureWorkload> = Api::namespaced(client.clone(), ns);
    apply(
        &workloads,
        "web",
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": "web", "namespace": ns},
               "spec": {"kind": "Deployment", "replicas": 2, "template": {"spec": busybox_pod_spec(&["sleep", "3600"])}}}),
    )
    .await;
    apply(
        &workloads,
        "agent",
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": "agent", "namespace": ns},
               "spec": {"kind": "DaemonSet", "template": {"spec": busybox_pod_spec(&["sleep", "3600"])}}}),
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    deployment_replicas(&deployments, "web", 2).await;
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
    daemonset_scheduled(&daemonsets, 1, false).await;

    // The lease ran out yesterday.
    let patch = json!({"spec": {"expiresAt": "2020-01-01T00:00:00Z"}});
    tenants.patch(ns, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    deployment_replicas(&deployments, "web", 0).await;
    // A DaemonSet cannot be scaled: its pods select a node label no node has, and go.
    daemonset_scheduled(&daemonsets, 0, true).await;
    let suspended = until("tenant Suspended", || async {
        let status = tenants.get(ns).await.ok()?.status?;
        let state = format!("{:?}", status.lifecycle.as_ref()?.state);
        (state == "Suspended").then_some(status)
    })
    .await;
    let expired = suspended.conditions.iter().find(|c| c.type_ == "Expired").expect("Expired condition");
    assert_eq!((expired.status.as_str(), expired.reason.as_str()), ("True", "Suspended"));
    until("workload Suspended by its tenant", || async {
        let workload = workloads.get("web").await.ok()?;
        let status = workload.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (status.phase == Some(WorkloadPhase::Suspended) && ready.reason == "TenantSuspended").then_some(())
    })
    .await;
    let workload = workloads.get("web").await.unwrap();
    assert_eq!(workload.spec.suspended, None, "the user's spec is not written");
    assert_eq!(workload.spec.replicas, Some(2));
    let events =
        kubectl(&["get", "events", "-A", "--field-selector", "reason=TenantSuspended", "-o", "name"], None).unwrap();
    assert!(!events.trim().is_empty(), "a TenantSuspended Event");

    // Renewed.
    let patch = json!({"spec": {"expiresAt": future}});
    tenants.patch(ns, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    deployment_replicas(&deployments, "web", 2).await;
    daemonset_scheduled(&daemonsets, 1, false).await;
    until("tenant Active again", || async {
        let lifecycle = tenants.get(ns).await.ok()?.status?.lifecycle?;
        (format!("{:?}", lifecycle.state) == "Active").then_some(())
    })
    .await;
    delete_tenant(&client, ns).await;
}

#[tokio::test]
async fn the_api_server_refuses_malformed_expiry_channels_and_patrols() {
    let client = client().await;
    let tenant = |spec: serde_json::Value| json!({"apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "e2e-bad-expiry"}, "spec": spec});
    dry_run(&client, &tenant(json!({"expiresAt": "2027-03-31T00:00:00+08:00", "expiryPolicy": "Suspend"})))
        .await
        .expect("an RFC 3339 time with an offset is accepted");
    for (spec, field) in [
        (json!({"expiresAt": "next tuesday"}), "spec.expiresAt"),
        (json!({"expiresAt": "2027-03-31"}), "spec.expiresAt"),
        (json!({"expiryPolicy": "Delete"}), "spec.expiryPolicy"),
        (
            json!({"patrol": {"thresholds": {"quotaWarningPercent": 96, "quotaCriticalPercent": 90}}}),
            "spec.patrol.thresholds",
        ),
    ] {
        let error = dry_run(&client, &tenant(spec.clone())).await.expect_err(&format!("{spec} refused"));
        assert!(error.contains(field), "{spec}: {error}");
    }
    let channel = |spec: serde_json::Value| json!({"apiVersion": "scs.dev/v1alpha1", "kind": "NotificationChannel", "metadata": {"name": "e2e-bad-channel"}, "spec": spec});
    dry_run(&client, &channel(json!({"secretRef": {"name": "ops-dingtalk"}, "keyword": "patrol"}))).await.unwrap();
    for (spec, field) in [
        (json!({"type": "slack", "secretRef": {"name": "x"}}), "spec.type"),
        (json!({"secretRef": {"name": "x"}, "maxListLength": 0}), "spec.maxListLength"),
        (json!({"keyword": "patrol"}), "spec.secretRef"),
        (json!({"secretRef": {"name": "x"}, "url": "https://oapi.dingtalk.com/robot/send?access_token=t"}), "url"),
    ] {
        let error = dry_run(&client, &channel(spec.clone())).await.expect_err(&format!("{spec} refused"));
        assert!(error.contains(field), "{spec}: {error}");
    }
    let patrol = |spec: serde_json::Value| json!({"apiVersion": "scs.dev/v1alpha1", "kind": "Patrol", "metadata": {"name": "e2e-bad-patrol"}, "spec": spec});
    dry_run(&client, &patrol(json!({"schedule": "0 9 * * 1-5", "timeZone": "Asia/Shanghai", "channels": ["ops"]})))
        .await
        .unwrap();
    for (spec, field) in [
        (json!({"schedule": "CRON_TZ=Asia/Shanghai 0 9 * * *"}), "spec.schedule"),
        (json!({"schedule": "@daily", "timeZone": "Asia/Shanghai; rm"}), "spec.timeZone"),
        (
            json!({"schedule": "@daily", "thresholds": {"quotaCriticalPercent": 120}}),
            "spec.thresholds.quotaCriticalPercent",
        ),
    ] {
        let error = dry_run(&client, &patrol(spec.clone())).await.expect_err(&format!("{spec} refused"));
        assert!(error.contains(field), "{spec}: {error}");
    }
}

#[tokio::test]
async fn only_cloud_admins_touch_patrols_and_channels_and_the_operator_reads_only_its_own_secrets() {
    let client = client().await;
    let ns = "e2e-patrol-rbac";
    ready_tenant(
        &client,
        ns,
        json!({"members": [
            {"kind": "User", "name": "e2e-patrol-admin", "role": "projectAdmin"},
            {"kind": "User", "name": "e2e-patrol-member", "role": "member"},
            {"kind": "User", "name": "e2e-patrol-viewer", "role": "viewer"}]}),
    )
    .await;
    let admin = ("e2e-cloud-admin", &["scs:cloud-admins"][..]);
    for resource in ["patrols", "notificationchannels"] {
        assert!(may(&client, admin, "create", ("scs.dev", resource), None).await, "cloud admin creates {resource}");
    }
    for user in ["e2e-patrol-admin", "e2e-patrol-member", "e2e-patrol-viewer"] {
        let who = (user, &["system:authenticated"][..]);
        for resource in ["patrols", "notificationchannels", "patrols/status"] {
            for verb in ["create", "update", "patch", "delete"] {
                assert!(
                    !may(&client, who, verb, ("scs.dev", resource), None).await,
                    "{user} may not {verb} {resource}"
                );
                assert!(
                    !may(&client, who, verb, ("scs.dev", resource), Some(ns)).await,
                    "{user} may not {verb} {resource} in {ns}"
                );
            }
        }
        assert!(!may(&client, who, "get", ("scs.dev", "notificationchannels"), None).await, "{user} reads no channel");
        assert!(!may(&client, who, "get", ("", "secrets"), Some("scs-system")).await, "{user} reads no webhook secret");
        // Nor may they point a patrol at themselves through their Tenant (cluster-scoped, admin-only).
        assert!(
            !may_on(&client, who, "patch", ("scs.dev", "tenants"), None, Some(ns)).await,
            "{user} may not patch its Tenant"
        );
    }
    let operator = ("system:serviceaccount:scs-system:scs-operator", &["system:serviceaccounts"][..]);
    assert!(may_on(&client, operator, "get", ("", "secrets"), Some("scs-system"), Some("ops-dingtalk")).await);
    // The pull-Secret sync also lists and watches Secrets in scs-system, and the inventory role
    // lists what a tenant namespace holds before it is released; neither reads a Secret's data
    // elsewhere.
    for verb in ["list", "watch"] {
        assert!(!may(&client, operator, verb, ("", "secrets"), None).await, "no cluster-wide Secret {verb}");
    }
    assert!(!may(&client, operator, "watch", ("", "secrets"), Some(ns)).await, "no Secret watch in {ns}");
    assert!(
        !may_on(&client, operator, "get", ("", "secrets"), Some(ns), Some("anything")).await,
        "no Secret reads elsewhere"
    );
    assert!(!may(&client, operator, "create", ("scs.dev", "notificationchannels"), None).await);
    assert!(may(&client, operator, "patch", ("scs.dev", "patrols/status"), None).await);
    delete_tenant(&client, ns).await;
}

#[tokio::test]
async fn a_patrol_runs_on_schedule_reads_its_secret_and_reports_each_delivery() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::DeleteParams;
    use scs_operator::api::{NotificationChannel, Patrol};
    let client = client().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "scs-system");
    // Nothing listens on port 9 inside the operator's pod: every attempt fails to connect.
    apply(
        &secrets,
        "e2e-patrol-hook",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "e2e-patrol-hook", "namespace": "scs-system"},
               "stringData": {"url": "http://127.0.0.1:9/hook?token=e2e-secret-token", "secret": "e2e-signing-secret"}}),
    )
    .await;
    let channels: Api<NotificationChannel> = Api::all(client.clone());
    for (name, secret) in [("e2e-patrol-hook", "e2e-patrol-hook"), ("e2e-patrol-missing", "e2e-patrol-no-such-secret")]
    {
        apply(
            &channels,
            name,
            json!({"apiVersion": "scs.dev/v1alpha1", "kind": "NotificationChannel", "metadata": {"name": name},
                   "spec": {"secretRef": {"name": secret}}}),
        )
        .await;
    }
    let patrols: Api<Patrol> = Api::all(client.clone());
    apply(
        &patrols,
        "e2e-every-minute",
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "Patrol", "metadata": {"name": "e2e-every-minute"},
               "spec": {"schedule": "* * * * *", "timeZone": "Asia/Shanghai", "channels": ["e2e-patrol-hook", "e2e-patrol-missing"]}}),
    )
    .await;
    let run = until("a patrol run with both deliveries done", || async {
        let run = patrols.get("e2e-every-minute").await.ok()?.status?.last_run?;
        (run.deliveries.len() == 2 && run.deliveries.iter().all(|d| d.result != "Pending")).then_some(run)
    })
    .await;
    assert!(run.id.ends_with("+08:00"), "the run is named by its time in the patrol's zone: {}", run.id);
    let hook = run.deliveries.iter().find(|d| d.name == "e2e-patrol-hook").unwrap();
    assert_eq!(
        (hook.result.as_str(), hook.attempts, hook.platform.as_deref()),
        ("Failed", 4, Some("webhook")),
        "{hook:?}"
    );
    assert!(hook.message.as_deref().unwrap_or("").contains("cannot connect"), "{hook:?}");
    let missing = run.deliveries.iter().find(|d| d.name == "e2e-patrol-missing").unwrap();
    assert_eq!(
        missing.message.as_deref(),
        Some("Secret scs-system/e2e-patrol-no-such-secret not found"),
        "the operator may read its namespace's Secrets by name: a 404, not a 403"
    );
    let everything = kubectl(&["get", "patrols,notificationchannels,events", "-A", "-o", "yaml"], None).unwrap();
    assert!(
        !everything.contains("e2e-secret-token") && !everything.contains("e2e-signing-secret"),
        "no credentials shown"
    );
    let channel = channels.get("e2e-patrol-hook").await.unwrap();
    assert_eq!(channel.status.and_then(|s| s.last_delivery).map(|d| d.result).as_deref(), Some("Failed"));
    let _ = patrols.delete("e2e-every-minute", &DeleteParams::default()).await;
    for name in ["e2e-patrol-hook", "e2e-patrol-missing"] {
        let _ = channels.delete(name, &DeleteParams::default()).await;
    }
    let _ = secrets.delete("e2e-patrol-hook", &DeleteParams::default()).await;
}
