//! The Patrol reconciler: at each scheduled time, look at every tenant and workload, build one
//! report per channel and deliver it.
//!
//! No duplicates: a run is claimed in the Patrol's status (its identity is the scheduled time)
//! with an optimistic-concurrency write *before* anything is sent. A restarted operator or a new
//! leader sees the claim and does not send that run again; channels it had not finished are
//! marked `Interrupted` rather than resent (at most once, never twice).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp, Zoned};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::conditions::{self, condition};
use super::context::{Context, RESYNC};
use super::error::Result;
use super::metrics::metrics;
use super::release;
use crate::api::{
    ChannelDelivery, NotificationChannel, Patrol, PatrolDelivery, PatrolRun, PatrolStatus, SecureWorkload, Tenant,
};
use crate::patrol::deliver::{self, Target};
use crate::patrol::report::{self, Finding, Presentation};
use crate::patrol::{cron, format};

/// A run's identity: its scheduled time, RFC 3339 in the patrol's zone.
pub fn run_id(scheduled: &Zoned) -> String {
    scheduled.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

pub async fn reconcile(guarded: Arc<DeserializeGuard<Patrol>>, ctx: Arc<Context>) -> Result<Action> {
    let Some(patrol) = super::readable(&guarded) else { return Ok(Action::await_change()) };
    let now = ctx.clock.now();
    let previous = patrol.status.clone().unwrap_or_default();
    let generation = patrol.metadata.generation;
    let schedule = cron::parse(&patrol.spec.schedule).map_err(|e| format!("spec.schedule: {e}"));
    let zone = cron::zone(patrol.spec.time_zone.as_deref()).map_err(|e| format!("spec.timeZone: {e}"));
    let (schedule, zone) = match (schedule, zone) {
        (Ok(schedule), Ok(zone)) => (schedule, zone),
        (Err(why), _) | (_, Err(why)) => {
            let ready = condition("Ready", false, "InvalidSchedule", why.clone(), generation);
            if conditions::changed(&previous.conditions, &ready) {
                ctx.event(patrol, true, "InvalidSchedule", why).await;
            }
            let status = PatrolStatus {
                next_run: None,
                conditions: conditions::merge(&previous.conditions, vec![ready]),
                ..previous.clone()
            };
            write_status(patrol, &ctx, &previous, &status).await?;
            return Ok(Action::await_change());
        }
    };
    let next = schedule.next_after(now, &zone);
    let deadline = SignedDuration::from_secs(patrol.spec.starting_deadline_seconds.unwrap_or(3600).max(60) as i64);
    let window_start = now.checked_sub(deadline).unwrap_or(now);
    let due = schedule.latest_between(window_start, now, &zone);
    let ready = condition(
        "Ready",
        true,
        if patrol.spec.suspend { "Suspended" } else { "Scheduled" },
        match &next {
            Some(next) => format!("next run at {}", run_id(next)),
            None => "the schedule never runs again".to_string(),
        },
        generation,
    );
    let claimed = previous.last_run.as_ref().map(|r| r.id.as_str());
    match due.as_ref().map(run_id) {
        Some(id) if !patrol.spec.suspend && claimed != Some(id.as_str()) => {
            run(patrol, &ctx, &id, now, next.as_ref(), ready).await?;
        }
        _ => {
            let status = PatrolStatus {
                next_run: next.as_ref().map(|n| Time(n.timestamp())),
                conditions: conditions::merge(&previous.conditions, vec![ready]),
                last_run: previous.last_run.clone(),
            };
            write_status(patrol, &ctx, &previous, &status).await?;
            settle_interrupted(patrol, &ctx, &previous).await?;
        }
    }
    let until_next =
        next.map(|n| n.timestamp().duration_since(now).as_secs().max(0) as u64 + 1).map_or(RESYNC, Duration::from_secs);
    Ok(Action::requeue(until_next.min(RESYNC)))
}

/// Marks the deliveries an earlier operator left `Pending` as `Interrupted`, judged on a fresh
/// read (the cache may still show this operator's own run in progress).
async fn settle_interrupted(patrol: &Patrol, ctx: &Context, cached: &PatrolStatus) -> Result<()> {
    let pending = |status: &PatrolStatus| {
        status.last_run.as_ref().is_some_and(|r| r.deliveries.iter().any(|d| d.result == "Pending"))
    };
    if !pending(cached) {
        return Ok(());
    }
    let api: Api<Patrol> = Api::all(ctx.client.clone());
    let fresh = api.get_status(&patrol.name_any()).await?;
    let status = fresh.status.clone().unwrap_or_default();
    if !pending(&status) {
        return Ok(());
    }
    let patch = json!({"metadata": {"resourceVersion": fresh.resource_version()},
        "status": {"lastRun": interrupted(status.last_run.clone())}});
    api.patch_status(&patrol.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    warn!(patrol = %patrol.name_any(), "an earlier operator stopped while sending a run; its unsent channels are marked Interrupted");
    Ok(())
}

/// A run whose deliveries an earlier operator left `Pending`: they are `Interrupted` now, never
/// resent.
fn interrupted(run: Option<PatrolRun>) -> Option<PatrolRun> {
    let mut run = run?;
    for delivery in run.deliveries.iter_mut().filter(|d| d.result == "Pending") {
        delivery.result = "Interrupted".into();
        delivery.message = Some("the operator stopped while sending; not resent, to avoid a duplicate".into());
    }
    Some(run)
}

/// The channels of this run: the patrol's own get every finding; a channel only tenants name gets
/// those tenants' findings.
fn audiences(patrol: &Patrol, tenants: &[Tenant]) -> BTreeMap<String, Option<Vec<String>>> {
    let mut audiences: BTreeMap<String, Option<Vec<String>>> =
        patrol.spec.channels.iter().map(|c| (c.clone(), None)).collect();
    for tenant in tenants {
        for channel in tenant.spec.patrol.iter().flat_map(|p| p.channels.iter()) {
            if let Some(names) = audiences.entry(channel.clone()).or_insert_with(|| Some(Vec::new())) {
                names.push(tenant.name_any());
            }
        }
    }
    audiences
}

/// Every finding of this run, per tenant.
async fn findings(patrol: &Patrol, ctx: &Context, now: Timestamp) -> Result<(Vec<Tenant>, Vec<Finding>)> {
    let catalog = ctx.catalog();
    // Whole tenants: the catalog keeps only the lifecycle of their status, the findings read quota.
    let tenants: Vec<Tenant> = ctx.readable_tenants();
    let gpu_keys: Vec<String> = [&ctx.config.gpu.nvidia.resource_name, &ctx.config.gpu.kunlun.resource_name]
        .iter()
        .map(|r| format!("requests.{r}"))
        .collect();
    let global = patrol.spec.thresholds.as_ref();
    let thresholds =
        |tenant: &Tenant| report::resolve(global, tenant.spec.patrol.as_ref().and_then(|p| p.thresholds.as_ref()));
    let mut found = Vec::new();
    for tenant in &tenants {
        found.extend(report::tenant_findings(tenant, &thresholds(tenant), &gpu_keys, now));
    }
    let workloads: Api<DeserializeGuard<SecureWorkload>> = Api::all(ctx.client.clone());
    for workload in workloads.list(&ListParams::default()).await?.items.into_iter().filter_map(|g| g.0.ok()) {
        let Some(tenant) = catalog.tenant_of_namespace(&workload.namespace().unwrap_or_default()) else { continue };
        found.extend(report::workload_finding(&workload, &tenant.name_any(), &thresholds(tenant), now));
    }
    Ok((tenants, found))
}

async fn run(
    patrol: &Patrol,
    ctx: &Context,
    id: &str,
    now: Timestamp,
    next: Option<&Zoned>,
    ready: Condition,
) -> Result<()> {
    let name = patrol.name_any();
    let api: Api<Patrol> = Api::all(ctx.client.clone());
    // The cache may lag behind a claim made by an earlier leader: decide on a fresh read.
    let fresh = api.get_status(&name).await?;
    let fresh_status = fresh.status.clone().unwrap_or_default();
    if fresh_status.last_run.as_ref().is_some_and(|r| r.id == id) {
        info!(patrol = %name, run = id, "run already claimed; not sent again");
        return Ok(());
    }
    let (tenants, found) = findings(patrol, ctx, now).await?;
    let audiences = audiences(patrol, &tenants);
    let mut counts: BTreeMap<String, i32> = BTreeMap::new();
    for finding in &found {
        *counts.entry(finding.category.as_str().to_string()).or_default() += 1;
    }
    let mut run = PatrolRun {
        id: id.to_string(),
        started_at: Some(Time(now)),
        finished_at: None,
        items: found.len() as i32,
        counts,
        deliveries: audiences
            .keys()
            .map(|channel| PatrolDelivery { name: channel.clone(), result: "Pending".into(), ..Default::default() })
            .collect(),
    };
    let mut status = PatrolStatus {
        last_run: Some(run.clone()),
        next_run: next.map(|n| Time(n.timestamp())),
        conditions: conditions::merge(&fresh_status.conditions, vec![ready]),
    };
    // The claim: fails with 409 if anyone wrote the Patrol since our read.
    let mut claim = status_patch(&status, fresh_status.last_run.as_ref());
    claim["metadata"] = json!({"resourceVersion": fresh.resource_version()});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&claim)).await?;
    info!(patrol = %name, run = id, items = found.len(), channels = audiences.len(), "patrol run claimed");

    for (index, (channel, audience)) in audiences.iter().enumerate() {
        let mine: Vec<Finding> = match audience {
            None => found.clone(),
            Some(tenants) => found.iter().filter(|f| tenants.contains(&f.tenant)).cloned().collect(),
        };
        let delivery = send(patrol, ctx, id, channel, mine).await;
        metrics().patrol_delivery(&name, channel, &delivery.result);
        if delivery.result == "Failed" {
            let why = delivery.message.clone().unwrap_or_default();
            ctx.event(patrol, true, "DeliveryFailed", format!("run {id}: channel {channel}: {why}")).await;
        }
        run.deliveries[index] = delivery;
        status.last_run = Some(run.clone());
        write_run(&api, &name, &status).await?;
    }
    run.finished_at = Some(Time(ctx.clock.now()));
    status.last_run = Some(run.clone());
    write_run(&api, &name, &status).await?;
    let delivered = run.deliveries.iter().filter(|d| d.result == "Delivered").count();
    ctx.event(
        patrol,
        false,
        "PatrolRun",
        format!("run {id}: {} finding(s); delivered to {delivered} of {} channel(s)", run.items, run.deliveries.len()),
    )
    .await;
    Ok(())
}

async fn write_run(api: &Api<Patrol>, name: &str, status: &PatrolStatus) -> Result<()> {
    let patch = status_patch(status, None);
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// A merge patch that writes `status` with its run whole. A merge patch keeps what it does not
/// name, so a new run kept the previous run's `finishedAt` (it looked finished while its
/// deliveries were still `Pending`) and its finding counts: what `previous` had and this run
/// lacks is cleared, and `finishedAt` is cleared until the run finishes.
fn status_patch(status: &PatrolStatus, previous: Option<&PatrolRun>) -> Value {
    let mut patch = json!({"status": status});
    let previous = previous.and_then(|run| serde_json::to_value(run).ok()).unwrap_or_default();
    if let Some(run) = patch["status"].get_mut("lastRun").and_then(Value::as_object_mut) {
        run.entry("finishedAt").or_insert(Value::Null);
        for (field, value) in previous.as_object().into_iter().flatten() {
            let mine = run.entry(field.clone()).or_insert(Value::Null);
            // Maps (the counts) merge key by key: clear the previous run's keys too.
            if let (Some(mine), Some(theirs)) = (mine.as_object_mut(), value.as_object()) {
                for key in theirs.keys() {
                    mine.entry(key.clone()).or_insert(Value::Null);
                }
            }
        }
    }
    patch
}

/// Builds and delivers one channel's report; the result as the Patrol's status says it.
async fn send(patrol: &Patrol, ctx: &Context, id: &str, channel: &str, found: Vec<Finding>) -> PatrolDelivery {
    let mut delivery = PatrolDelivery { name: channel.to_string(), items: found.len() as i32, ..Default::default() };
    let (target, spec) = match target(ctx, channel).await {
        Ok(found) => found,
        Err(why) => {
            warn!(patrol = %patrol.name_any(), channel, %why, "channel unusable");
            delivery.result = "Failed".into();
            delivery.message = Some(why);
            return delivery;
        }
    };
    delivery.platform = Some(target.platform.as_str().to_string());
    let how = Presentation {
        keyword: spec.spec.keyword.clone(),
        max_list_length: spec.spec.max_list_length(),
        hide_amounts: spec.spec.hide_amounts,
        heartbeat: spec.spec.heartbeat(),
    };
    let Some(report) = report::build(&patrol.name_any(), id, found, &how) else {
        delivery.result = "Skipped".into();
        delivery.message = Some("nothing found and heartbeat is off".into());
        return delivery;
    };
    let outcome = deliver::deliver(&target, &report, &ctx.delivery).await;
    delivery.attempts = outcome.attempts as i32;
    delivery.result = if outcome.delivered { "Delivered" } else { "Failed" }.into();
    delivery.message = outcome.message;
    record_on_channel(ctx, &spec, patrol, id, &delivery, target.platform.as_str()).await;
    delivery
}

/// The channel and where to send, from its Secret in the operator's namespace.
async fn target(ctx: &Context, channel: &str) -> std::result::Result<(Target, NotificationChannel), String> {
    let channels: Api<NotificationChannel> = Api::all(ctx.client.clone());
    let spec = match channels.get_opt(channel).await {
        Ok(Some(spec)) => spec,
        Ok(None) => return Err(format!("NotificationChannel {channel} not found")),
        Err(error) => return Err(format!("NotificationChannel {channel} cannot be read: {error}")),
    };
    let namespace = release::operator_namespace();
    let secret_ref = &spec.spec.secret_ref;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let secret = match secrets.get_opt(&secret_ref.name).await {
        Ok(Some(secret)) => secret,
        Ok(None) => return Err(format!("Secret {namespace}/{} not found", secret_ref.name)),
        Err(error) => return Err(format!("Secret {namespace}/{} cannot be read: {error}", secret_ref.name)),
    };
    let value = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|v| String::from_utf8_lossy(&v.0).trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let Some(url) = value(secret_ref.url_key()) else {
        return Err(format!(
            "Secret {namespace}/{} has no key {:?} with the webhook URL",
            secret_ref.name,
            secret_ref.url_key()
        ));
    };
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!(
            "Secret {namespace}/{} key {:?} is not an http(s) URL",
            secret_ref.name,
            secret_ref.url_key()
        ));
    }
    let platform = format::platform(spec.spec.type_, &url);
    Ok((Target { platform, url, secret: value(secret_ref.secret_key()) }, spec))
}

/// Notes the delivery on the channel's own status (best effort: the Patrol's status is the record).
async fn record_on_channel(
    ctx: &Context,
    channel: &NotificationChannel,
    patrol: &Patrol,
    id: &str,
    delivery: &PatrolDelivery,
    platform: &str,
) {
    let status = crate::api::NotificationChannelStatus {
        platform: Some(platform.to_string()),
        last_delivery: Some(ChannelDelivery {
            patrol: patrol.name_any(),
            run: id.to_string(),
            result: delivery.result.clone(),
            at: Some(Time(ctx.clock.now())),
            message: delivery.message.clone(),
        }),
    };
    let api: Api<NotificationChannel> = Api::all(ctx.client.clone());
    let patch = json!({"status": status});
    if let Err(error) = api.patch_status(&channel.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
        warn!(channel = %channel.name_any(), %error, "could not record the delivery on the channel");
    }
}

/// Writes the schedule part of `next` (next run, conditions) when it differs from `previous`;
/// `lastRun` is written only by a run, from a fresh read.
async fn write_status(patrol: &Patrol, ctx: &Context, previous: &PatrolStatus, next: &PatrolStatus) -> Result<()> {
    if previous.next_run == next.next_run && conditions::same(&previous.conditions, &next.conditions) {
        return Ok(());
    }
    let api: Api<Patrol> = Api::all(ctx.client.clone());
    let patch = json!({"status": {"nextRun": next.next_run, "conditions": next.conditions}});
    api.patch_status(&patrol.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::TenantPatrol;

    #[test]
    fn run_ids_are_the_scheduled_time_in_the_zone() {
        let zone = cron::zone(Some("Asia/Shanghai")).unwrap();
        let at: Timestamp = "2026-12-02T01:00:00Z".parse().unwrap();
        assert_eq!(run_id(&at.to_zoned(zone)), "2026-12-02T09:00:00+08:00");
    }

    #[test]
    fn tenant_channels_get_only_their_tenants() {
        let mut patrol = Patrol::new("daily", Default::default());
        patrol.spec.channels = vec!["ops".into()];
        let tenant = |name: &str, channels: &[&str]| {
            let mut t = Tenant::new(name, Default::default());
            t.spec.patrol =
                Some(TenantPatrol { channels: channels.iter().map(|c| c.to_string()).collect(), thresholds: None });
            t
        };
        let audiences =
            audiences(&patrol, &[tenant("acme", &["acme-feishu", "ops"]), tenant("beta", &["acme-feishu"])]);
        assert_eq!(audiences["ops"], None, "the patrol's channel gets everything");
        assert_eq!(audiences["acme-feishu"], Some(vec!["acme".to_string(), "beta".to_string()]));
        assert_eq!(audiences.len(), 2);
    }

    #[test]
    fn a_new_run_replaces_the_last_one_whole() {
        let finished = PatrolRun {
            id: "day-1".into(),
            started_at: Some(Time("2026-12-01T01:00:00Z".parse().unwrap())),
            finished_at: Some(Time("2026-12-01T01:00:05Z".parse().unwrap())),
            items: 2,
            counts: [("QuotaPressure".to_string(), 1), ("Expiring".to_string(), 1)].into(),
            deliveries: vec![PatrolDelivery { name: "team".into(), result: "Failed".into(), ..Default::default() }],
        };
        let mut live = json!({"status": PatrolStatus { last_run: Some(finished.clone()), ..Default::default() }});
        let claimed = PatrolRun {
            id: "day-2".into(),
            started_at: Some(Time("2026-12-02T01:00:00Z".parse().unwrap())),
            items: 1,
            counts: [("QuotaPressure".to_string(), 1)].into(),
            deliveries: vec![PatrolDelivery { name: "team".into(), result: "Pending".into(), ..Default::default() }],
            ..Default::default()
        };
        let status = PatrolStatus { last_run: Some(claimed.clone()), ..Default::default() };
        json_patch::merge(&mut live, &status_patch(&status, Some(&finished)));
        let run: PatrolRun = serde_json::from_value(live["status"]["lastRun"].clone()).unwrap();
        assert_eq!(run, claimed, "no finishedAt, no count of the day before");
        // Without the previous run at hand (the writes after the claim), still not finished.
        let mut live = json!({"status": PatrolStatus { last_run: Some(finished), ..Default::default() }});
        json_patch::merge(&mut live, &status_patch(&status, None));
        assert!(live["status"]["lastRun"].get("finishedAt").is_none());
    }

    #[test]
    fn pending_deliveries_of_an_earlier_leader_are_interrupted_not_resent() {
        let run = PatrolRun {
            id: "r".into(),
            deliveries: vec![
                PatrolDelivery { name: "a".into(), result: "Delivered".into(), ..Default::default() },
                PatrolDelivery { name: "b".into(), result: "Pending".into(), ..Default::default() },
            ],
            ..Default::default()
        };
        let after = interrupted(Some(run)).unwrap();
        assert_eq!(after.deliveries[0].result, "Delivered");
        assert_eq!(after.deliveries[1].result, "Interrupted");
    }
}
