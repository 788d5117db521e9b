//! The Tenant reconciler: validate → build → apply → status, with a finalizer for cleanup.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Error as FinalizerError, Event as Finalizer, finalizer};
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::info;

use super::conditions::{self, condition};
use super::context::{Context, RESYNC};
use super::error::{Error, Result};
use super::managed::Scope;
use super::metrics::{count_by_kind, metrics};
use super::sync;
use crate::api::{SecureWorkload, Tenant, TenantNamespaceStatus, TenantQuotaStatus, TenantStatus};
use crate::builders::{self, Child, labels, quota};
use crate::catalog::Catalog;
use crate::quantity;
use crate::validate::cross;

/// Finalizer that lets the operator remove what garbage collection cannot.
pub const FINALIZER: &str = "scs.dev/tenant-cleanup";
/// Annotation that lets a tenant be deleted although its namespaces still hold workloads or volumes.
pub const FORCE_DELETE: &str = "scs.dev/force-delete";

/// Entry point for the controller: unwraps the deserialization guard and runs the finalizer.
pub async fn reconcile(guarded: Arc<DeserializeGuard<Tenant>>, ctx: Arc<Context>) -> Result<Action> {
    let Some(tenant) = super::readable(&guarded) else { return Ok(Action::await_change()) };
    let tenant = Arc::new(tenant.clone());
    // Namespace claims are decided against every tenant: `controller::run` starts no controller
    // before the tenant and network caches are complete.
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let tenant = match ensure_finalizer(&api, tenant, &ctx).await? {
        Some(tenant) => tenant,
        None => return Ok(Action::await_change()),
    };
    let outcome = finalizer(&api, FINALIZER, tenant, |event| async {
        match event {
            Finalizer::Apply(tenant) => apply(&tenant, &ctx).await,
            Finalizer::Cleanup(tenant) => cleanup(&tenant, &ctx).await,
        }
    })
    .await;
    match outcome {
        Ok(action) => Ok(action),
        // A second pass from a cache that still shows the deleted tenant: it is gone already
        // (seen on a real cluster as a warning and a retry after every tenant deletion).
        Err(FinalizerError::RemoveFinalizer(kube::Error::Api(status))) if status.code == 404 => {
            Ok(Action::await_change())
        }
        Err(error) => Err(Error::from(error)),
    }
}

/// Adds our finalizer to a live tenant that lacks it and goes on with the patched object, so the
/// first pass both adds the finalizer and applies (the `finalizer` helper would stop after adding
/// it). Returns `None` when we have added it already but the cache does not show it yet: its
/// watch event brings the tenant back, and adding it twice would only fail.
async fn ensure_finalizer(api: &Api<Tenant>, tenant: Arc<Tenant>, ctx: &Context) -> Result<Option<Arc<Tenant>>> {
    if tenant.metadata.deletion_timestamp.is_some() || tenant.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Some(tenant));
    }
    let key = status_key(&tenant);
    if ctx.finalizer_added.newer_than_cache(&key, tenant.metadata.resource_version.as_deref()).is_some() {
        return Ok(None);
    }
    let mut finalizers = tenant.finalizers().to_vec();
    finalizers.push(FINALIZER.to_string());
    // The resource version makes the patch fail rather than overwrite a concurrent change.
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": tenant.resource_version()}});
    let patched = api.patch(&tenant.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    ctx.finalizer_added.wrote(key, patched.metadata.resource_version.clone(), ());
    Ok(Some(Arc::new(patched)))
}

fn selector(tenant: &Tenant) -> String {
    format!("{}={},{}={}", labels::MANAGED_BY, labels::OPERATOR, labels::TENANT, tenant.name_any())
}

/// The state of one of the tenant's namespaces before we write anything.
enum NamespaceState {
    Ours,
    Absent,
    Terminating,
    Conflict(String),
}

async fn namespace_states(
    tenant: &Tenant,
    ctx: &Context,
    catalog: &Catalog,
) -> Result<BTreeMap<String, NamespaceState>> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let claims = catalog.namespace_claims();
    let me = tenant.name_any();
    let mut states = BTreeMap::new();
    for name in tenant.namespace_names() {
        let state = match api.get_opt(&name).await? {
            Some(live) => {
                let labels = live.labels();
                if labels.get(labels::MANAGED_BY).map(String::as_str) != Some(labels::OPERATOR) {
                    NamespaceState::Conflict("exists and is not managed by scs-operator".into())
                } else if labels.get(labels::TENANT) != Some(&me) {
                    let owner = labels.get(labels::TENANT).cloned().unwrap_or_default();
                    NamespaceState::Conflict(format!("belongs to Tenant {owner:?}"))
                } else if live.metadata.deletion_timestamp.is_some() {
                    NamespaceState::Terminating
                } else {
                    NamespaceState::Ours
                }
            }
            None => match claims.get(&name) {
                Some(owner) if *owner != me => NamespaceState::Conflict(format!("is claimed by Tenant {owner:?}")),
                _ => NamespaceState::Absent,
            },
        };
        states.insert(name, state);
    }
    Ok(states)
}

/// The RuntimeClass and the cloud-admin binding: shared by all tenants, ensured by every reconcile.
async fn ensure_platform(ctx: &Context) -> Result<()> {
    for child in builders::platform_children(&ctx.config) {
        sync::ensure(&ctx.client, &child).await?;
    }
    Ok(())
}

/// Children of `tenant` in the namespaces it may use (never in a conflicting one).
fn desired_children(tenant: &Tenant, ctx: &Context, catalog: &Catalog, usable: &[String]) -> Vec<Child> {
    let mut children = builders::tenant_children(tenant, catalog, &ctx.config);
    children.retain(|child| match (&child.namespace, child.kind.as_str()) {
        (Some(namespace), _) => usable.contains(namespace),
        (None, "Namespace") => usable.contains(&child.name),
        (None, _) => true,
    });
    children
}

/// Whether a namespace that left `spec.namespaces` must stay because it holds workloads or data.
async fn holds_data(client: &Client, namespace: &str) -> Result<Vec<String>> {
    let workloads: Api<SecureWorkload> = Api::namespaced(client.clone(), namespace);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let mut held: Vec<String> = workloads
        .list_metadata(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|w| format!("SecureWorkload {namespace}/{}", w.name_any()))
        .collect();
    held.extend(
        claims
            .list_metadata(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|c| format!("PersistentVolumeClaim {namespace}/{}", c.name_any())),
    );
    Ok(held)
}

/// Which object a remembered status belongs to (a tenant deleted and created again is another).
fn status_key(tenant: &Tenant) -> String {
    format!("{}/{}", tenant.name_any(), tenant.uid().unwrap_or_default())
}

/// The freshest status we know: the cached one, or the one we wrote if the cache lags behind.
fn latest_status(tenant: &Tenant, ctx: &Context) -> TenantStatus {
    ctx.tenant_status
        .newer_than_cache(&status_key(tenant), tenant.metadata.resource_version.as_deref())
        .unwrap_or_else(|| tenant.status.clone().unwrap_or_default())
}

async fn apply(tenant: &Tenant, ctx: &Context) -> Result<Action> {
    let name = tenant.name_any();
    let generation = tenant.metadata.generation;
    let previous = latest_status(tenant, ctx);

    let spec_errors = cross::tenant_spec_errors(tenant, &ctx.config);
    if !spec_errors.is_empty() {
        // Leave every existing child as it is; only say what is wrong.
        let message = spec_errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        let mut conditions: Vec<_> = previous.conditions.iter().filter(|c| c.type_ != "Ready").cloned().collect();
        conditions.push(condition("Ready", false, "InvalidSpec", message.clone(), generation));
        let conditions = conditions::merge(&previous.conditions, conditions);
        let status = TenantStatus { observed_generation: generation, conditions, ..previous.clone() };
        write_status(tenant, ctx, &previous, status).await?;
        if conditions::is_true(&previous.conditions, "Ready") || previous.conditions.is_empty() {
            ctx.event(tenant, true, "InvalidSpec", message).await;
        }
        return Ok(Action::await_change());
    }

    ensure_platform(ctx).await?;
    // One snapshot of the caches for the whole pass: what is built and what status says must agree.
    let catalog = ctx.catalog();
    let states = namespace_states(tenant, ctx, &catalog).await?;
    let usable: Vec<String> = states
        .iter()
        .filter(|(_, s)| matches!(s, NamespaceState::Ours | NamespaceState::Absent))
        .map(|(n, _)| n.clone())
        .collect();
    let desired = desired_children(tenant, ctx, &catalog, &usable);

    // A namespace dropped from the spec is deleted only when it holds no workloads or volumes.
    let mut held: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let candidates: Vec<String> = {
        let api: Api<Namespace> = Api::all(ctx.client.clone());
        api.list_metadata(&ListParams::default().labels(&selector(tenant)))
            .await?
            .items
            .iter()
            .map(|n| n.name_any())
            .filter(|n| !tenant.namespace_names().contains(n))
            .collect()
    };
    for namespace in candidates {
        let data = holds_data(&ctx.client, &namespace).await?;
        if !data.is_empty() {
            held.insert(namespace, data);
        }
    }
    let report = sync::sync_children(
        &ctx.client,
        Scope::Tenant,
        None,
        &selector(tenant),
        &desired,
        |kind: &str, object: &DynamicObject| {
            // Keep a released namespace with data, and everything of ours inside it.
            let namespace =
                if kind == "Namespace" { object.name_any() } else { object.namespace().unwrap_or_default() };
            held.contains_key(&namespace)
        },
    )
    .await?;
    if report.applied > 0 || report.deleted > 0 {
        info!(tenant = %name, applied = report.applied, deleted = report.deleted, "tenant children synced");
    }
    metrics().owns(&format!("Tenant/{name}"), &count_by_kind(&desired));

    let status = compute_status(tenant, ctx, &catalog, &previous, &states, &report, &held);
    let ready_before = conditions::is_true(&previous.conditions, "Ready");
    let ready_now = conditions::is_true(&status.conditions, "Ready");
    let conflicts_before: Vec<String> =
        previous.namespaces.iter().filter(|n| n.state == "Conflict").map(|n| n.name.clone()).collect();
    let new_conflicts: Vec<&TenantNamespaceStatus> =
        status.namespaces.iter().filter(|n| n.state == "Conflict" && !conflicts_before.contains(&n.name)).collect();
    for conflict in &new_conflicts {
        let message = format!(
            "namespace {} {}; nothing in it is touched",
            conflict.name,
            conflict.message.clone().unwrap_or_default()
        );
        ctx.event(tenant, true, "NamespaceConflict", message).await;
    }
    let ready_message =
        status.conditions.iter().find(|c| c.type_ == "Ready").map(|c| (c.reason.clone(), c.message.clone()));
    write_status(tenant, ctx, &previous, status).await?;
    if ready_now && !ready_before {
        ctx.event(tenant, false, "Ready", "all namespaces, quota, roles and networks are in place".into()).await;
    } else if !ready_now
        && ready_before
        && let Some((reason, message)) = ready_message
    {
        ctx.event(tenant, true, &reason, message).await;
    }
    Ok(Action::requeue(RESYNC))
}

fn compute_status(
    tenant: &Tenant,
    ctx: &Context,
    catalog: &Catalog,
    previous: &TenantStatus,
    states: &BTreeMap<String, NamespaceState>,
    report: &sync::SyncReport,
    held: &BTreeMap<String, Vec<String>>,
) -> TenantStatus {
    let generation = tenant.metadata.generation;
    let namespaces: Vec<TenantNamespaceStatus> = tenant
        .namespace_names()
        .into_iter()
        .map(|name| {
            let (state, message) = match &states[&name] {
                NamespaceState::Ours | NamespaceState::Absent => ("Ready", None),
                NamespaceState::Terminating => ("Terminating", Some("namespace is being deleted".to_string())),
                NamespaceState::Conflict(why) => ("Conflict", Some(why.clone())),
            };
            TenantNamespaceStatus { name, state: state.into(), message }
        })
        .collect();

    let conflicts: Vec<String> = namespaces
        .iter()
        .filter(|n| n.state != "Ready")
        .map(|n| format!("{} {}", n.name, n.message.clone().unwrap_or_default()))
        .collect();
    let mut namespaces_message = if conflicts.is_empty() {
        format!("{} namespace(s) ready", namespaces.len())
    } else {
        format!("not usable: {}", conflicts.join("; "))
    };
    if !held.is_empty() {
        let kept: Vec<String> = held.iter().map(|(ns, data)| format!("{ns} ({})", data.join(", "))).collect();
        namespaces_message
            .push_str(&format!("; kept after removal from spec because they hold data: {}", kept.join("; ")));
    }
    let missing = cross::missing_networks(tenant, catalog);
    let mut network_problems: Vec<String> = missing.iter().map(ToString::to_string).collect();
    if !report.unserved.is_empty() {
        network_problems.push(format!(
            "the cluster does not serve the API of {} (is Multus and its NetworkAttachmentDefinition CRD installed?)",
            report.unserved.join(", ")
        ));
    }
    let networks_message = if network_problems.is_empty() {
        format!("{} network(s) attached", tenant.spec.networks.len())
    } else {
        network_problems.join("; ")
    };
    let has_conflict = namespaces.iter().any(|n| n.state == "Conflict");
    let mut next = vec![
        condition(
            "NamespacesReady",
            !has_conflict,
            if has_conflict { "NamespaceConflict" } else { "Ready" },
            namespaces_message,
            generation,
        ),
        condition("QuotaReady", true, "Applied", "ResourceQuotas and LimitRanges applied", generation),
        condition("RbacReady", true, "Applied", format!("{} member(s) bound", tenant.spec.members.len()), generation),
        condition(
            "NetworksReady",
            network_problems.is_empty(),
            match (missing.is_empty(), report.unserved.is_empty()) {
                (true, true) => "Ready",
                (false, _) => "NetworkNotFound",
                (true, false) => "ApiNotServed",
            },
            networks_message,
            generation,
        ),
    ];
    let failing = next.iter().find(|c| c.status != "True").map(|c| (c.reason.clone(), c.message.clone()));
    next.insert(
        0,
        match failing {
            None => {
                condition("Ready", true, "Ready", "all namespaces, quota, roles and networks are in place", generation)
            }
            Some((reason, message)) => condition("Ready", false, &reason, message, generation),
        },
    );

    TenantStatus {
        observed_generation: generation,
        namespaces,
        quota: Some(quota_status(tenant, ctx, report.live_of("ResourceQuota"))),
        conditions: conditions::merge(&previous.conditions, next),
    }
}

/// Tenant-wide hard limits and usage summed over the live ResourceQuotas.
fn quota_status<'a>(
    tenant: &Tenant,
    ctx: &Context,
    quotas: impl Iterator<Item = &'a DynamicObject>,
) -> TenantQuotaStatus {
    let mut used: BTreeMap<String, quantity::Nanos> = BTreeMap::new();
    for object in quotas {
        let entries = object.data.get("status").and_then(|s| s.get("used")).and_then(|u| u.as_object());
        for (key, value) in entries.into_iter().flatten() {
            if let Some(value) = value.as_str().and_then(|v| quantity::parse(v).ok()) {
                *used.entry(key.clone()).or_default() += value;
            }
        }
    }
    let binary = |key: &str| key.contains("memory") || key.contains("storage");
    TenantQuotaStatus {
        hard: quota::tenant_totals(tenant, &ctx.config),
        used: used.into_iter().map(|(k, v)| (k.clone(), Quantity(quantity::format(v, binary(&k))))).collect(),
    }
}

/// Writes the status when it says something new (server-side apply of the status subresource).
async fn write_status(tenant: &Tenant, ctx: &Context, previous: &TenantStatus, next: TenantStatus) -> Result<()> {
    let unchanged = previous.observed_generation == next.observed_generation
        && previous.namespaces == next.namespaces
        && previous.quota == next.quota
        && conditions::same(&previous.conditions, &next.conditions);
    if unchanged {
        return Ok(());
    }
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let patch = json!({"apiVersion": crate::api::API_VERSION, "kind": "Tenant", "status": next});
    let written = api
        .patch_status(&tenant.name_any(), &PatchParams::apply(labels::OPERATOR).force(), &Patch::Apply(&patch))
        .await?;
    ctx.tenant_status.wrote(status_key(tenant), written.metadata.resource_version, next);
    Ok(())
}

async fn cleanup(tenant: &Tenant, ctx: &Context) -> Result<Action> {
    let forced = tenant.annotations().get(FORCE_DELETE).is_some_and(|v| v == "true");
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let ours: Vec<String> = api
        .list_metadata(&ListParams::default().labels(&selector(tenant)))
        .await?
        .items
        .iter()
        .map(|n| n.name_any())
        .collect();
    let mut data = Vec::new();
    for namespace in &ours {
        data.extend(holds_data(&ctx.client, namespace).await?);
    }
    if !data.is_empty() && !forced {
        let message = format!(
            "deletion waits until these are removed (or the Tenant is annotated {FORCE_DELETE}=\"true\"): {}",
            data.join(", ")
        );
        let previous = latest_status(tenant, ctx);
        let mut conditions: Vec<_> = previous.conditions.iter().filter(|c| c.type_ != "Ready").cloned().collect();
        conditions.push(condition("Ready", false, "DeletionBlocked", message.clone(), tenant.metadata.generation));
        let was_blocked = previous.conditions.iter().any(|c| c.reason == "DeletionBlocked");
        let status =
            TenantStatus { conditions: conditions::merge(&previous.conditions, conditions), ..previous.clone() };
        write_status(tenant, ctx, &previous, status).await?;
        if !was_blocked {
            ctx.event(tenant, true, "DeletionBlocked", message.clone()).await;
        }
        return Err(Error::DeletionHeld(message));
    }
    let deleted = sync::delete_all(&ctx.client, &selector(tenant)).await?;
    metrics().owns(&format!("Tenant/{}", tenant.name_any()), &Default::default());
    info!(tenant = %tenant.name_any(), deleted, forced, "tenant cleaned up");
    Ok(Action::await_change())
}
