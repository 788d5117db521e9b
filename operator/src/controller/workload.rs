//! The SecureWorkload reconciler: validate → build → apply → status. Children are owned through
//! controller owner references, so garbage collection removes them with the workload; retained
//! claims are not owned and outlive it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, PartialObjectMeta, Patch, PatchParams};
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use serde_json::json;
use tracing::info;

use super::children::Holder;
use super::conditions::{self, condition};
use super::context::{Context, RESYNC};
use super::error::Result;
use super::history;
use super::managed::{self, Scope};
use super::metrics::{count_by_kind, metrics};
use super::sync;
use super::workload_status::{assess, observe, pod_problem, with_failures};
use crate::api::{ChildReference, SecureWorkload, SecureWorkloadStatus, Tenant, WorkloadPhase};
use crate::builders::{labels, workload};
use crate::catalog::Catalog;
use crate::validate::{FieldError, cross, rules};

/// How soon a workload held by a conflict looks again (nothing watches the objects of others).
pub const CONFLICT_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);
/// How long a new workload may wait for its Tenant before it is reported as `NoTenant`.
pub const NO_TENANT_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a workload waits quietly for the namespace its Tenant is creating before its status
/// says so (at scale, tenants' first passes take a while; a status write each is waste).
const NAMESPACE_PENDING_REPORT: Duration = Duration::from_secs(30);

pub async fn reconcile(cached: Arc<PartialObjectMeta<SecureWorkload>>, ctx: Arc<Context>) -> Result<Action> {
    let owner = format!("SecureWorkload/{}/{}", cached.namespace().unwrap_or_default(), cached.name_any());
    ctx.children.wait_until_listed(super::children::LIST_WAIT).await;
    // Only metadata is cached by the controller (see `controller::run`): the workload is the text
    // the same watch event left (or, when that is not at hand, read), unless the cached copy
    // already shows it going.
    let namespace = cached.namespace().unwrap_or_default();
    let kept = ctx.workload_bodies.get(&namespace, &cached.name_any(), cached.resource_version().as_deref());
    let guarded = match (&cached.metadata.deletion_timestamp, kept) {
        (Some(_), _) => None,
        (None, Some(workload)) => Some(DeserializeGuard(Ok(workload))),
        (None, None) => {
            let api: Api<DeserializeGuard<SecureWorkload>> = Api::namespaced(ctx.client.clone(), &namespace);
            api.get_opt(&cached.name_any()).await?
        }
    };
    let Some(guarded) = guarded.filter(|g| g.0.as_ref().map_or(true, |w| w.metadata.deletion_timestamp.is_none()))
    else {
        metrics().owns(&owner, &Default::default());
        metrics().workload_phase(&owner, None);
        return Ok(Action::await_change()); // garbage collection removes the owned children
    };
    let Some(workload) = super::readable(&guarded) else { return Ok(Action::await_change()) };
    // The tenant cache is complete: `controller::run` waits for it before starting controllers.
    let namespace = workload.namespace().unwrap_or_default();
    let name = workload.name_any();
    // The status the previous pass wrote, if the watch has not brought it back yet.
    let previous = ctx
        .workload_status
        .newer_than_cache(&status_key(workload), workload.resource_version().as_deref())
        .or_else(|| workload.status.clone())
        .unwrap_or_default();
    let generation = workload.metadata.generation;
    // A rollback asked for by annotation: the revision's spec is copied back, which starts a new pass.
    if let Some(outcome) = history::rollback(&ctx.client, workload).await? {
        return report_rollback(workload, &ctx, &previous, outcome).await;
    }

    let catalog = ctx.catalog();
    let age = workload
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(NO_TENANT_GRACE, |t| k8s_openapi::jiff::Timestamp::now().duration_since(t.0).unsigned_abs());
    let tenant = match owning_tenant(&ctx, &catalog, &namespace).await? {
        Tenancy::Owned(tenant) => Some(tenant),
        Tenancy::Claimed(tenant) => {
            // Look again soon, less often the longer it takes; say so once it is no longer brief.
            if age >= NAMESPACE_PENDING_REPORT {
                let message =
                    format!("namespace {namespace} of Tenant {} is not created yet: waiting for it", tenant.name_any());
                let status = SecureWorkloadStatus {
                    observed_generation: generation,
                    phase: Some(WorkloadPhase::Pending),
                    conditions: conditions::merge(
                        &previous.conditions,
                        vec![condition("Ready", false, "NamespacePending", message, generation)],
                    ),
                    ..Default::default()
                };
                write_status(workload, &ctx, &previous, status).await?;
            }
            return Ok(Action::requeue((age / 2).clamp(Duration::from_secs(1), Duration::from_secs(60))));
        }
        Tenancy::None => None,
    };
    let Some(tenant) = tenant else {
        // A Tenant and its workloads often arrive together (one kubectl apply, one Argo CD sync):
        // give the Tenant a moment before calling the workload an orphan.
        if age < NO_TENANT_GRACE && previous.conditions.is_empty() {
            return Ok(Action::requeue(NO_TENANT_GRACE - age));
        }
        let message = format!("namespace {namespace} belongs to no Tenant: nothing is created");
        let status = SecureWorkloadStatus {
            observed_generation: generation,
            phase: Some(WorkloadPhase::Pending),
            conditions: conditions::merge(
                &previous.conditions,
                vec![condition("Ready", false, "NoTenant", message.clone(), generation)],
            ),
            ..Default::default()
        };
        if write_status(workload, &ctx, &previous, status).await? {
            ctx.event(workload, true, "NoTenant", message).await;
        }
        return Ok(Action::await_change());
    };

    let mut problems: Vec<FieldError> = rules::check_workload(&workload.spec);
    problems.extend(cross::workload_errors(workload, tenant, &ctx.config));
    problems.extend(cross::static_ip_errors(workload, &catalog));
    if !problems.is_empty() {
        // Leave whatever runs as it is; say precisely what is wrong.
        let message = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        hold(workload, &ctx, &previous, "InvalidSpec", message).await?;
        return Ok(Action::await_change());
    }
    // An older workload of the tenant asking for the same static address keeps it.
    let taken = earlier_static_ips(workload, tenant, &catalog, &ctx).await?;
    if !taken.is_empty() {
        let message = taken.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        hold(workload, &ctx, &previous, "Conflict", format!("{message}; nothing of this workload is applied")).await?;
        return Ok(Action::requeue(CONFLICT_RECHECK));
    }

    // A tenant suspended by expiry stops the workload as `spec.suspended` would, without writing
    // to the spec (Git stays the source of truth); the replica count to return to is kept.
    let suspended = crate::expiry::suspended_copy(workload, tenant);
    let built = suspended.as_ref().unwrap_or(workload);
    let mut desired = workload::workload_children_on(built, tenant, &ctx.config, &catalog.networks);
    if suspended.is_some() {
        crate::expiry::pause_daemonsets(&mut desired);
    }
    // An older workload of the namespace producing a child of the same name keeps it.
    let collisions = earlier_collisions(workload, tenant, &desired, &ctx).await?;
    if !collisions.is_empty() {
        let message = collisions.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("; ");
        hold(workload, &ctx, &previous, "Conflict", format!("{message}; nothing of this workload is applied")).await?;
        return Ok(Action::requeue(CONFLICT_RECHECK));
    }
    let selector = format!("{}={},{}={}", labels::MANAGED_BY, labels::OPERATOR, labels::WORKLOAD, name);
    // Claims no longer in the spec are kept: they hold user data.
    let keep = |kind: &str, _: &DynamicObject| kind == "PersistentVolumeClaim";
    // Only the kinds this workload has or had are listed (its status records the children of the
    // last pass): nine LISTs a pass were most of the operator's reads at scale.
    let kinds: Vec<_> = managed::kinds_of(Scope::Workload)
        .into_iter()
        .filter(|kind| {
            let of_kind = |k: &str| k == kind.resource.kind;
            desired.iter().any(|c| of_kind(&c.kind)) || previous.children.iter().any(|c| of_kind(&c.kind))
        })
        .collect();
    let report = sync::sync_children_of(
        &ctx.client,
        &ctx.children,
        &kinds,
        Some(&namespace),
        &selector,
        &desired,
        sync::OnConflict::WriteNothing,
        keep,
    )
    .await?;
    if !report.conflicts.is_empty() {
        // An object of that name exists and is not this workload's: never taken over.
        let taken: Vec<String> =
            report.conflicts.iter().map(|c| format!("{} {:?} {}", c.kind, c.name, c.why)).collect();
        let message = format!("{}; nothing of this workload is applied", taken.join("; "));
        hold(workload, &ctx, &previous, "Conflict", message).await?;
        return Ok(Action::requeue(CONFLICT_RECHECK));
    }
    if report.applied > 0 || report.deleted > 0 {
        info!(workload = %format!("{namespace}/{name}"), applied = report.applied, deleted = report.deleted, "workload children synced");
    }
    metrics().owns(&owner, &count_by_kind(&desired));
    let revisions = history::record(&ctx.client, workload, &previous.revisions).await?;

    let kind = workload.spec.kind;
    let live = report
        .live_of(kind.as_str())
        .find(|o| o.name_any() == name)
        .map(|o| serde_json::to_value(o).unwrap_or_default());
    if suspended.is_none()
        && kind == crate::api::WorkloadKind::DaemonSet
        && live.as_ref().is_some_and(crate::expiry::is_paused)
    {
        super::lifecycle::resume_daemonset(&ctx.client, &namespace, &name).await?;
    }
    let observed = live.as_ref().map(|object| observe(kind, object));
    if let Some(refused) = report.refused.iter().find(|r| r.kind == "StatefulSet" && !r.immutable.is_empty())
        && recreate_allowed(workload)
    {
        recreate(workload, &ctx, refused).await?;
        return Ok(Action::requeue(std::time::Duration::from_secs(1)));
    }
    let assessed = assess(built, observed.as_ref());
    let pods_to_check = super::workload_status::needs_pod_check(assessed.0)
        && kind != crate::api::WorkloadKind::CronJob
        && live.as_ref().is_some_and(|object| super::workload_status::may_have_pods(kind, object));
    let problem = if pods_to_check {
        let pods = workload_pods(&ctx, &namespace, &name).await?;
        pod_problem(live.as_ref(), &pods)
    } else {
        None
    };
    let (phase, ready, mut next) = with_failures(built, assessed, problem, &report.refused);
    if suspended.is_some() {
        crate::expiry::explain_suspension(&mut next, tenant);
    }
    metrics().workload_phase(&owner, Some((&tenant.name_any(), &format!("{phase:?}"))));
    let children_ready = next.iter().find(|c| c.type_ == "ChildrenReady").cloned();
    let status = SecureWorkloadStatus {
        observed_generation: generation,
        phase: Some(phase),
        ready,
        desired_replicas: observed.as_ref().filter(|_| kind.as_str() != "CronJob").map(|o| o.desired),
        ready_replicas: observed.as_ref().map(|o| o.ready).filter(|_| !matches!(kind.as_str(), "Job" | "CronJob")),
        updated_replicas: observed.as_ref().map(|o| o.updated).filter(|_| !matches!(kind.as_str(), "Job" | "CronJob")),
        succeeded: observed.as_ref().map(|o| o.succeeded).filter(|_| kind.as_str() == "Job"),
        failed: observed.as_ref().map(|o| o.failed).filter(|_| kind.as_str() == "Job"),
        last_schedule_time: observed.as_ref().and_then(|o| o.last_schedule_time.clone()),
        replicas: live.as_ref().map(|o| history::status_replicas(kind, o, observed.as_ref().map(|o| o.ready))),
        selector: Some(format!("{}={name}", labels::WORKLOAD)),
        revisions,
        children: desired.iter().map(|c| ChildReference { kind: c.kind.clone(), name: c.name.clone() }).collect(),
        conditions: conditions::merge(&previous.conditions, history::carry(&previous.conditions, next)),
    };
    // Events mark transitions: a new workload's first phase (waiting for its workload object or
    // rolling out) is said by its status alone.
    let initial = previous.phase.is_none() && matches!(phase, WorkloadPhase::Pending | WorkloadPhase::Progressing);
    let phase_changed = previous.phase != status.phase && !initial;
    let message = status.conditions.first().map(|c| c.message.clone()).unwrap_or_default();
    write_status(workload, &ctx, &previous, status).await?;
    let refused = !report.refused.is_empty();
    match children_ready.filter(|c| conditions::changed(&previous.conditions, c)) {
        Some(c) if c.status == "False" => ctx.event(workload, true, &c.reason, c.message).await,
        Some(c) if previous.conditions.iter().any(|p| p.type_ == "ChildrenReady" && p.status == "False") => {
            ctx.event(workload, false, "ChildrenApplied", c.message).await;
        }
        _ => {}
    }
    // A refusal's Event says it all; otherwise the phase change is news.
    if phase_changed && !refused {
        let warning = matches!(phase, WorkloadPhase::Degraded | WorkloadPhase::Failed);
        ctx.event(workload, warning, &format!("{phase:?}"), message).await;
    }
    if refused {
        // Retried with the controller's backoff: the refusal may go once quota frees up or the
        // spec changes.
        let what = report.refused.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        return Err(super::error::Error::Refused(what));
    }
    Ok(Action::requeue(RESYNC))
}

/// The workload's pods (label-selected; read only while it is not fully up).
async fn workload_pods(ctx: &Context, namespace: &str, name: &str) -> Result<Vec<serde_json::Value>> {
    let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let selector = format!("{}={}", labels::WORKLOAD, name);
    let pods = api.list(&ListParams::default().labels(&selector).limit(50)).await?;
    Ok(pods.items.iter().map(|p| serde_json::to_value(p).unwrap_or_default()).collect())
}

/// Whether the workload carries the annotation that allows recreating its StatefulSet.
fn recreate_allowed(workload: &SecureWorkload) -> bool {
    workload.annotations().get(conditions::RECREATE_ANNOTATION).map(String::as_str) == Some("true")
}

/// Kubernetes' way to change a StatefulSet's immutable fields: delete it with orphan propagation
/// (its pods and claims stay, and the new StatefulSet adopts the pods by their labels), wait until
/// it is gone, and let the next pass create it with the new spec. The annotation is one-shot: it is
/// removed, so a later immutable change is reported again rather than recreated unasked.
async fn recreate(workload: &SecureWorkload, ctx: &Context, refused: &sync::Refused) -> Result<()> {
    let namespace = workload.namespace().unwrap_or_default();
    let api: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
    match api.delete(&refused.name, &kube::api::DeleteParams::orphan()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    for _ in 0..30 {
        if api.get_metadata_opt(&refused.name).await?.is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let workloads: Api<SecureWorkload> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({"metadata": {"annotations": {conditions::RECREATE_ANNOTATION: null}}});
    workloads.patch_metadata(&workload.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    let message = format!(
        "StatefulSet {namespace}/{} deleted with its pods and claims kept, to be recreated with {} changed",
        refused.name,
        refused.immutable.join(", ")
    );
    info!(workload = %format!("{namespace}/{}", workload.name_any()), "{message}");
    ctx.event(workload, false, "Recreating", message).await;
    Ok(())
}

/// Sets `Ready=False` with `reason` and leaves everything else of the status (and every child) as
/// it is; publishes an Event when that is news.
async fn hold(
    workload: &SecureWorkload,
    ctx: &Context,
    previous: &SecureWorkloadStatus,
    reason: &str,
    message: String,
) -> Result<()> {
    let generation = workload.metadata.generation;
    let mut next: Vec<_> = previous.conditions.iter().filter(|c| c.type_ != "Ready").cloned().collect();
    next.push(condition("Ready", false, reason, message.clone(), generation));
    let status = SecureWorkloadStatus {
        observed_generation: generation,
        conditions: conditions::merge(&previous.conditions, next),
        ..previous.clone()
    };
    if write_status(workload, ctx, previous, status).await? {
        ctx.event(workload, true, reason, message).await;
    }
    Ok(())
}

/// Children of `workload` that an older workload of its namespace produces too (see
/// [`cross::claim_order`]). Only workloads whose name extends this one's or the other way round
/// can collide ([`cross::may_collide`]), so usually nothing is read; those are read in full.
async fn earlier_collisions(
    workload: &SecureWorkload,
    tenant: &crate::api::Tenant,
    desired: &[crate::builders::Child],
    ctx: &Context,
) -> Result<Vec<FieldError>> {
    let Some(store) = ctx.workloads.get() else { return Ok(Vec::new()) };
    let namespace = workload.namespace();
    let name = workload.name_any();
    let mine = cross::claim_order(&workload.metadata);
    let mut candidates: Vec<_> = store
        .state()
        .iter()
        .filter(|other| other.metadata.namespace == namespace && cross::may_collide(&other.name_any(), &name))
        .map(|other| cross::claim_order(&other.metadata))
        .filter(|order| *order < mine)
        .collect();
    candidates.sort();
    let api: Api<DeserializeGuard<SecureWorkload>> =
        Api::namespaced(ctx.client.clone(), namespace.as_deref().unwrap_or_default());
    let mut earlier = Vec::new();
    for (_, other) in candidates {
        if let Some(DeserializeGuard(Ok(other))) = api.get_opt(&other).await? {
            earlier.push((other.name_any(), workload::workload_children(&other, tenant, &ctx.config)));
        }
    }
    Ok(cross::collision_errors(desired, &earlier))
}

/// The tenant that owns `namespace`: the one named by the live Namespace's `scs.dev/tenant` label,
/// which only the operator writes (when it creates the namespace for that tenant), and only while
/// that tenant still lists it. Not the oldest tenant listing the namespace, as the catalog would
/// answer: a second tenant naming a namespace another one owns gets a conflict, never its
/// workloads. `None` for a namespace without our labels (or whose tenant is gone or let it go).
/// Where a workload's namespace stands with the tenants.
enum Tenancy<'a> {
    /// The namespace is the tenant's: created and labelled by the operator for it.
    Owned(&'a Tenant),
    /// A tenant claims the namespace, which does not exist yet: the tenant's pass is on the way,
    /// and no event says when it is done (namespaces are not watched).
    Claimed(&'a Tenant),
    /// No tenant claims it, or the namespace is someone else's.
    None,
}

async fn owning_tenant<'a>(ctx: &Context, catalog: &'a Catalog, namespace: &str) -> Result<Tenancy<'a>> {
    let claimant = catalog.tenant_of_namespace(namespace);
    // Only a tenant that lists the namespace can own it.
    let Some(claimant) = claimant else { return Ok(Tenancy::None) };
    let kind = managed::find("v1", "Namespace");
    let holder = kind.and_then(|kind| ctx.children.holder(&kind, None, namespace));
    let live = match holder {
        Some(Holder::Ours(cached)) => cached.metadata.clone(),
        Some(Holder::Free) => return Ok(Tenancy::Claimed(claimant)),
        Some(Holder::Other) => return Ok(Tenancy::None),
        // The caches have not listed namespaces yet: ask.
        None => {
            let api: Api<Namespace> = Api::all(ctx.client.clone());
            let Some(live) = api.get_metadata_opt(namespace).await? else {
                return Ok(Tenancy::Claimed(claimant));
            };
            live.metadata
        }
    };
    let labels = live.labels.unwrap_or_default();
    if labels.get(labels::MANAGED_BY).map(String::as_str) != Some(labels::OPERATOR) {
        return Ok(Tenancy::None);
    }
    let Some(owner) = labels.get(labels::TENANT) else { return Ok(Tenancy::None) };
    let owned =
        catalog.tenants.iter().find(|t| t.name_any() == *owner && t.namespace_names().iter().any(|n| n == namespace));
    Ok(owned.map_or(Tenancy::None, Tenancy::Owned))
}

/// Static addresses of `workload` that an older workload (see [`cross::static_ip_order`]) asks for
/// on the same network: of its tenant (in any of the tenant's namespaces), or of another tenant
/// attached to that network (a shared network is one address space; that workload is not named).
/// Workloads are listed only when this one asks for a static address at all, and only in the
/// namespaces of tenants on the networks it asks them on.
async fn earlier_static_ips(
    workload: &SecureWorkload,
    tenant: &Tenant,
    catalog: &Catalog,
    ctx: &Context,
) -> Result<Vec<FieldError>> {
    if !cross::has_static_ips(workload) {
        return Ok(Vec::new());
    }
    let mine = cross::static_ip_order(workload);
    let own = tenant.namespace_names();
    let networks: Vec<&str> =
        workload.spec.networks.iter().filter(|n| !n.ips.is_empty()).map(|n| n.name.as_str()).collect();
    let mut namespaces = own.clone();
    for other in catalog.tenants.iter().filter(|t| t.name_any() != tenant.name_any()) {
        if other.spec.networks.iter().any(|n| networks.contains(&n.as_str())) {
            namespaces.extend(other.namespace_names().into_iter().filter(|ns| !own.contains(ns)));
        }
    }
    let mut others = Vec::new();
    for namespace in &namespaces {
        let api: Api<DeserializeGuard<SecureWorkload>> = Api::namespaced(ctx.client.clone(), namespace);
        others.extend(api.list(&ListParams::default()).await?.items.into_iter().filter_map(|g| g.0.ok()));
    }
    let mut earlier: Vec<&SecureWorkload> =
        others.iter().filter(|o| cross::has_static_ips(o) && cross::static_ip_order(o) < mine).collect();
    earlier.sort_by_key(|o| cross::static_ip_order(o));
    let (same, foreign): (Vec<&SecureWorkload>, Vec<&SecureWorkload>) =
        earlier.into_iter().partition(|o| own.contains(&o.namespace().unwrap_or_default()));
    let mut conflicts = cross::static_ip_conflicts(workload, &same);
    conflicts.extend(cross::foreign_static_ip_conflicts(workload, &foreign));
    Ok(conflicts)
}

/// Writes the status when it says something new; returns whether it wrote.
async fn write_status(
    workload: &SecureWorkload,
    ctx: &Context,
    previous: &SecureWorkloadStatus,
    next: SecureWorkloadStatus,
) -> Result<bool> {
    let same = SecureWorkloadStatus { conditions: Vec::new(), ..previous.clone() }
        == SecureWorkloadStatus { conditions: Vec::new(), ..next.clone() }
        && conditions::same(&previous.conditions, &next.conditions);
    if same {
        return Ok(false);
    }
    let api: Api<SecureWorkload> = Api::namespaced(ctx.client.clone(), &workload.namespace().unwrap_or_default());
    let patch = json!({"apiVersion": crate::api::API_VERSION, "kind": "SecureWorkload", "status": next});
    let written = api
        .patch_status(&workload.name_any(), &PatchParams::apply(labels::OPERATOR).force(), &Patch::Apply(&patch))
        .await?;
    ctx.workload_status.wrote(status_key(workload), written.resource_version(), next);
    Ok(true)
}

/// The key of a workload's written status: its uid, so that a workload recreated under the same
/// name never inherits the status of the one before.
fn status_key(workload: &SecureWorkload) -> String {
    workload.uid().unwrap_or_default()
}

/// Reports a rollback request (see [`history::rollback`]) as the `RolledBack` condition and an Event.
async fn report_rollback(
    workload: &SecureWorkload,
    ctx: &Context,
    previous: &SecureWorkloadStatus,
    outcome: history::Rollback,
) -> Result<Action> {
    let (ok, reason, message) = match outcome {
        history::Rollback::Done(message) => (true, "RolledBack", message),
        history::Rollback::Refused(message) => (false, "RollbackRefused", message),
    };
    let mut next: Vec<_> = previous.conditions.iter().filter(|c| c.type_ != history::CONDITION).cloned().collect();
    next.push(condition(history::CONDITION, ok, reason, message.clone(), workload.metadata.generation));
    let status = SecureWorkloadStatus { conditions: conditions::merge(&previous.conditions, next), ..previous.clone() };
    write_status(workload, ctx, previous, status).await?;
    ctx.event(workload, !ok, reason, message).await;
    Ok(Action::await_change())
}
