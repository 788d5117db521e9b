//! The Tenant reconciler: validate → build → apply → status, with a finalizer for cleanup.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Error as FinalizerError, Event as Finalizer, finalizer};
use serde_json::json;
use tracing::{debug, info, warn};

use super::children::{Children, Holder};
use super::conditions::{self, condition};
use super::context::{Context, RESYNC};
use super::error::{Error, Result};
use super::managed::{self, Scope};
use super::metrics::{count_by_kind, metrics};
use super::{pull_secrets, release, secondary_isolation, sync};
use crate::api::{Tenant, TenantNamespaceStatus, TenantQuotaStatus, TenantStatus};
use crate::builders::{self, Child, labels, quota};
use crate::catalog::Catalog;
use crate::quantity;
use crate::validate::{FieldError, cross};

/// Finalizer that lets the operator remove what garbage collection cannot.
pub const FINALIZER: &str = "scs.dev/tenant-cleanup";
/// Annotation that lets a tenant be deleted although its namespaces still hold what users made:
/// every namespace is deleted with everything in it.
pub const FORCE_DELETE: &str = "scs.dev/force-delete";
/// How soon a tenant with retained namespaces looks at them again.
pub const RETAINED_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);
/// How soon a tenant whose children include a kind the cluster does not serve looks again.
const UNSERVED_RECHECK: std::time::Duration = std::time::Duration::from_secs(15);

/// Entry point for the controller: unwraps the deserialization guard and runs the finalizer.
pub async fn reconcile(guarded: Arc<DeserializeGuard<Tenant>>, ctx: Arc<Context>) -> Result<Action> {
    let Some(tenant) = super::readable(&guarded) else { return Ok(Action::await_change()) };
    let tenant = Arc::new(tenant.clone());
    ctx.children.wait_until_listed(super::children::LIST_WAIT).await;
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
    let kind = managed::find("v1", "Namespace");
    let claims = catalog.namespace_claims();
    let me = tenant.name_any();
    let mut states = BTreeMap::new();
    for name in tenant.namespace_names() {
        // From the caches when they know the name (one of ours, or someone else's: no labels of
        // ours to read); a namespace we created a moment ago and they do not show yet is taken
        // for absent here, and the sync finds our write standing in for it.
        let live = match kind.as_ref().and_then(|kind| ctx.children.holder(kind, None, &name)) {
            Some(Holder::Ours(cached)) => Some(cached.metadata.clone()),
            Some(Holder::Other) => Some(Default::default()),
            Some(Holder::Free) => None,
            None => api.get_opt(&name).await?.map(|live| live.metadata),
        };
        let state = match live {
            Some(live) => {
                let labels = live.labels.unwrap_or_default();
                if labels.get(labels::MANAGED_BY).map(String::as_str) != Some(labels::OPERATOR) {
                    NamespaceState::Conflict("exists and is not managed by scs-operator".into())
                } else if labels.get(labels::TENANT) != Some(&me) {
                    let owner = labels.get(labels::TENANT).cloned().unwrap_or_default();
                    NamespaceState::Conflict(format!("belongs to Tenant {owner:?}"))
                } else if live.deletion_timestamp.is_some() {
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
/// Ensures the shared platform objects (the RuntimeClass). One the API server refuses does not
/// block the tenant: it is returned, and reported on every Tenant as `RuntimeClassReady=False`.
/// Transient failures are errors (the tenant is retried).
async fn ensure_platform(ctx: &Context) -> Result<Vec<sync::Refused>> {
    let mut refused = Vec::new();
    for child in builders::platform_children(&ctx.config) {
        match sync::ensure(&ctx.client, &ctx.children, &child).await {
            Ok(_) => {}
            Err(Error::Kube(error)) => {
                let Some((code, message)) = sync::refusal(&error) else { return Err(error.into()) };
                // RuntimeClass `handler` is immutable: a changed one in the operator config is
                // refused with 422 (`handler: Invalid value: ...: field is immutable`).
                let handler_changed = child.kind == "RuntimeClass"
                    && code == 422
                    && message.contains("handler")
                    && message.contains("immutable");
                let immutable = if handler_changed { vec!["handler".into()] } else { Vec::new() };
                warn!(kind = %child.kind, name = %child.name, code, %message, "platform object refused by the API server");
                refused.push(sync::Refused {
                    kind: child.kind.clone(),
                    namespace: None,
                    name: child.name.clone(),
                    code,
                    message,
                    immutable,
                });
            }
            Err(other) => return Err(other),
        }
    }
    Ok(refused)
}

/// `RuntimeClassReady`: the platform RuntimeClass is as the operator config says, or why not.
fn runtime_class_condition(refused: &[sync::Refused], generation: Option<i64>) -> Condition {
    let Some(refusal) = refused.iter().find(|r| r.kind == "RuntimeClass") else {
        return condition("RuntimeClassReady", true, "Applied", "the RuntimeClass is in place", generation);
    };
    if refusal.immutable.is_empty() {
        return condition("RuntimeClassReady", false, "ApplyFailed", refusal.to_string(), generation);
    }
    let message = format!(
        "RuntimeClass {name}: its handler cannot change (API server: {}); delete it (kubectl delete runtimeclass \
         {name}) and the operator recreates it with the configured handler; running pods are unaffected, new \
         pods use the old handler until then",
        refusal.message,
        name = refusal.name
    );
    condition("RuntimeClassReady", false, "ImmutableHandler", message, generation)
}

/// Children of `tenant` in the namespaces it may use (never in a conflicting one), with the
/// operator's inventory binding in each; and in each retained namespace the zero quota and the
/// inventory binding.
fn desired_children(
    tenant: &Tenant,
    ctx: &Context,
    catalog: &Catalog,
    usable: &[String],
    retained: &BTreeMap<String, Vec<String>>,
) -> Vec<Child> {
    let mut children = builders::tenant_children(tenant, catalog, &ctx.config);
    children.retain(|child| match (&child.namespace, child.kind.as_str()) {
        (Some(namespace), _) => usable.contains(namespace),
        (None, "Namespace") => usable.contains(&child.name),
        (None, _) => true,
    });
    children.extend(retained_children(tenant, ctx, usable, retained));
    children
}

/// The inventory binding in every namespace in `usable` or `retained`, and the zero quota in each
/// retained one.
fn retained_children(
    tenant: &Tenant,
    ctx: &Context,
    usable: &[String],
    retained: &BTreeMap<String, Vec<String>>,
) -> Vec<Child> {
    let operator_namespace = release::operator_namespace();
    let mut children = Vec::new();
    for namespace in usable.iter().chain(retained.keys()) {
        children.push(release::inventory_binding(&tenant.name_any(), namespace, &operator_namespace));
    }
    for namespace in retained.keys() {
        children.push(release::retained_quota(tenant, &ctx.config, namespace));
    }
    children
}

/// Of the tenant's labelled namespaces in `leaving` (not terminating), those that hold anything a
/// user made, with what they hold. Makes sure the operator may look first (its inventory binding).
async fn retained_namespaces(
    tenant: &Tenant,
    ctx: &Context,
    leaving: &[String],
) -> Result<BTreeMap<String, Vec<String>>> {
    let operator_namespace = release::operator_namespace();
    let mut retained = BTreeMap::new();
    for namespace in leaving {
        let binding = release::inventory_binding(&tenant.name_any(), namespace, &operator_namespace);
        let bindings: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), namespace);
        if bindings.get_metadata_opt(&binding.name).await?.is_none() {
            // A namespace from before the binding existed; the next pass lists once RBAC has it.
            sync::apply(&ctx.client, &binding).await?;
        }
        let left = release::leftovers(&ctx.client, namespace).await?;
        if !left.is_empty() {
            retained.insert(namespace.clone(), left);
        }
    }
    Ok(retained)
}

/// The tenant's labelled namespaces, as (name, terminating).
async fn labelled_namespaces(tenant: &Tenant, ctx: &Context, children: &Children) -> Result<Vec<(String, bool)>> {
    let kind = managed::find("v1", "Namespace");
    let cached = kind.and_then(|kind| children.selected(&kind, None, &sync::requirements(&selector(tenant))));
    let names = match cached {
        Some(cached) => cached.iter().map(|n| (n.name_any(), n.metadata.deletion_timestamp.is_some())).collect(),
        None => {
            let api: Api<Namespace> = Api::all(ctx.client.clone());
            let listed = api.list_metadata(&ListParams::default().labels(&selector(tenant))).await?;
            listed.items.iter().map(|n| (n.name_any(), n.metadata.deletion_timestamp.is_some())).collect()
        }
    };
    Ok(names)
}

/// Keep everything of ours in a retained namespace but the members' RoleBindings (and the
/// namespace itself).
fn keep_retained<'a>(retained: &'a BTreeMap<String, Vec<String>>) -> impl Fn(&str, &DynamicObject) -> bool + 'a {
    move |kind: &str, object: &DynamicObject| {
        let namespace = if kind == "Namespace" { object.name_any() } else { object.namespace().unwrap_or_default() };
        retained.contains_key(&namespace) && kind != "RoleBinding"
    }
}

/// Whether `object` is an attachment definition built from one of the `unreadable` networks
/// (`(name, why)`), which must be kept as it is rather than deleted as no longer desired.
fn attaches_unreadable_network(unreadable: &[(String, String)], kind: &str, object: &DynamicObject) -> bool {
    kind == "NetworkAttachmentDefinition"
        && object.labels().get(labels::NETWORK).is_some_and(|network| unreadable.iter().any(|(n, _)| n == network))
}

/// The `NamespacesReleased` condition: whether every namespace that left the tenant is gone.
fn released_condition(retained: &BTreeMap<String, Vec<String>>, generation: Option<i64>) -> Condition {
    if retained.is_empty() {
        return condition("NamespacesReleased", true, "Released", "no namespace left behind", generation);
    }
    let kept: Vec<String> =
        retained.iter().map(|(namespace, left)| format!("{namespace} ({})", release::some_of(left))).collect();
    condition(
        "NamespacesReleased",
        false,
        "NamespaceRetained",
        format!(
            "kept after leaving the tenant because they hold objects the operator did not make: {}; members have no access there and the quota is zero until an admin empties or deletes them",
            kept.join("; ")
        ),
        generation,
    )
}

/// Events for namespaces retained now that the previous status did not name.
async fn announce_retained(
    tenant: &Tenant,
    ctx: &Context,
    previous: &TenantStatus,
    retained: &BTreeMap<String, Vec<String>>,
) {
    let before = previous
        .conditions
        .iter()
        .find(|c| c.type_ == "NamespacesReleased" && c.status == "False")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    for (namespace, left) in retained {
        if before.contains(&format!("{namespace} (")) {
            continue;
        }
        let message = format!(
            "namespace {namespace} left the tenant but holds objects the operator did not make ({}): kept, members' RoleBindings removed, quota set to zero; empty or delete it to finish",
            release::some_of(left)
        );
        ctx.event(tenant, true, "NamespaceRetained", message).await;
    }
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

    let platform = ensure_platform(ctx).await?;
    // One snapshot of the caches for the whole pass: what is built and what status says must agree.
    let catalog = ctx.catalog();
    let states = namespace_states(tenant, ctx, &catalog).await?;
    let usable: Vec<String> = states
        .iter()
        .filter(|(_, s)| matches!(s, NamespaceState::Ours | NamespaceState::Absent))
        .map(|(n, _)| n.clone())
        .collect();
    // A namespace dropped from the spec is deleted only when it holds nothing a user made.
    let leaving: Vec<String> = labelled_namespaces(tenant, ctx, &ctx.children)
        .await?
        .into_iter()
        .filter(|(name, terminating)| !terminating && !tenant.namespace_names().contains(name))
        .map(|(name, _)| name)
        .collect();
    let retained = retained_namespaces(tenant, ctx, &leaving).await?;
    let desired = desired_children(tenant, ctx, &catalog, &usable, &retained);
    // A listed network that exists but cannot be read is not gone: its attachment definitions stay.
    let networks = NetworkState::of(tenant, &catalog, ctx);
    let keep_in_retained = keep_retained(&retained);
    let report = sync::sync_children(
        &ctx.client,
        &ctx.children,
        Scope::Tenant,
        None,
        &selector(tenant),
        &desired,
        sync::OnConflict::SkipChild,
        |kind: &str, object: &DynamicObject| {
            keep_in_retained(kind, object) || attaches_unreadable_network(&networks.unreadable, kind, object)
        },
    )
    .await?;
    if report.applied > 0 || report.deleted > 0 {
        info!(tenant = %name, applied = report.applied, deleted = report.deleted, "tenant children synced");
    }
    metrics().owns(&format!("Tenant/{name}"), &count_by_kind(&desired));
    let images = pull_secrets::sync(tenant, ctx, &usable, &previous.pull_secrets).await?;

    let mut status = compute_status(tenant, ctx, &networks, &previous, &states, &report, &retained);
    status.pull_secrets = images.copies;
    add_failures(&mut status, &previous, &platform, &report.refused, images.condition);
    super::lifecycle::record(tenant, &mut status, &previous, ctx.clock.now());
    let failure_events: Vec<Condition> = ["ChildrenReady", "RuntimeClassReady", "ImagesReady"]
        .iter()
        .filter_map(|type_| status.conditions.iter().find(|c| c.type_ == *type_))
        .filter(|c| conditions::changed(&previous.conditions, c))
        .filter(|c| {
            c.status == "False" || previous.conditions.iter().any(|p| p.type_ == c.type_ && p.status == "False")
        })
        .cloned()
        .collect();
    if let Some(quota) = &status.quota {
        metrics().tenant_quota(&name, &super::metrics::quota_ratios(quota));
    }
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
    let lifecycle = status.lifecycle.clone();
    write_status(tenant, ctx, &previous, status).await?;
    super::lifecycle::announce(tenant, ctx, previous.lifecycle.as_ref(), lifecycle.as_ref()).await;
    announce_retained(tenant, ctx, &previous, &retained).await;
    let isolation_failed_before =
        previous.conditions.iter().any(|c| c.type_ == "NetworkIsolationReady" && c.status == "False");
    if let Some(message) = ctx.cidr_mismatch.get().cloned().flatten()
        && !isolation_failed_before
        && tenant.network_isolated()
    {
        ctx.event(tenant, true, "ClusterCidrsMismatch", message).await;
    }
    let failure_announced = failure_events.iter().any(|c| c.status == "False");
    for c in failure_events {
        let reason = if c.status == "False" { c.reason.clone() } else { format!("{}Again", c.type_) };
        ctx.event(tenant, c.status == "False", &reason, c.message).await;
    }
    if !report.refused.is_empty() {
        let what = report.refused.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        return Err(Error::Refused(what));
    }
    if ready_now && !ready_before {
        ctx.event(tenant, false, "Ready", "all namespaces, quota, roles and networks are in place".into()).await;
    } else if !ready_now
        && ready_before
        && !failure_announced
        && let Some((reason, message)) = ready_message
        && reason != "NamespaceRetained"
    {
        ctx.event(tenant, true, &reason, message).await;
    }
    // Nothing watches what users keep in a retained namespace, or a new namespace's default
    // ServiceAccount: look again soon. Expiry comes back at its instant.
    // A kind the API server does not serve (Multus' CRDs not installed) is known from its watch,
    // which keeps trying; once the CRD is there nothing of ours exists to trigger this tenant.
    let recheck = if !report.unserved.is_empty() {
        UNSERVED_RECHECK
    } else if retained.is_empty() && !images.waiting {
        RESYNC
    } else {
        RETAINED_RECHECK
    };
    Ok(Action::requeue(crate::expiry::requeue(tenant, ctx.clock.now(), recheck)))
}

/// The tenant's listed networks that are missing from the catalog (no such SdnNetwork), and those
/// that exist but cannot be read, as `(name, why)`.
struct NetworkState {
    missing: Vec<FieldError>,
    unreadable: Vec<(String, String)>,
}

impl NetworkState {
    fn of(tenant: &Tenant, catalog: &Catalog, ctx: &Context) -> Self {
        let unreadable: Vec<(String, String)> = ctx
            .unreadable_networks()
            .into_iter()
            .filter(|(network, _)| tenant.spec.networks.contains(network))
            .collect();
        let unreadable_paths: Vec<String> = (tenant.spec.networks.iter().enumerate())
            .filter(|(_, network)| unreadable.iter().any(|(name, _)| name == *network))
            .map(|(index, _)| format!("spec.networks[{index}]"))
            .collect();
        let missing = cross::missing_networks(tenant, catalog)
            .into_iter()
            .filter(|e| !unreadable_paths.contains(&e.path))
            .collect();
        Self { missing, unreadable }
    }
}

fn compute_status(
    tenant: &Tenant,
    ctx: &Context,
    networks: &NetworkState,
    previous: &TenantStatus,
    states: &BTreeMap<String, NamespaceState>,
    report: &sync::SyncReport,
    retained: &BTreeMap<String, Vec<String>>,
) -> TenantStatus {
    let generation = tenant.metadata.generation;
    let namespaces: Vec<TenantNamespaceStatus> = tenant
        .namespace_names()
        .into_iter()
        .map(|name| {
            let created_by_someone_else =
                report.conflicts.iter().find(|c| c.kind == "Namespace" && c.name == name).map(|c| c.why.clone());
            let (state, message) = match &states[&name] {
                NamespaceState::Absent if created_by_someone_else.is_some() => ("Conflict", created_by_someone_else),
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
    let namespaces_message = if conflicts.is_empty() {
        format!("{} namespace(s) ready", namespaces.len())
    } else {
        format!("not usable: {}", conflicts.join("; "))
    };
    let (missing, unreadable) = (&networks.missing, &networks.unreadable);
    let mut network_problems: Vec<String> = missing.iter().map(ToString::to_string).collect();
    network_problems.extend(unreadable.iter().map(|(network, why)| {
        format!("SdnNetwork {network:?} cannot be read ({why}); its attachment definitions are left as they are")
    }));
    // MultiNetworkPolicies are optional: their absence is reported by their own condition.
    let unserved = secondary_isolation::required(&report.unserved);
    if !unserved.is_empty() {
        network_problems.push(format!(
            "the cluster does not serve the API of {} (is Multus and its NetworkAttachmentDefinition CRD installed?)",
            unserved.join(", ")
        ));
    }
    let networks_message = if network_problems.is_empty() {
        format!("{} network(s) attached", tenant.spec.networks.len())
    } else {
        network_problems.join("; ")
    };
    let has_conflict = namespaces.iter().any(|n| n.state == "Conflict");
    // Children whose name an object of someone else holds: each reported where it belongs.
    let taken = |kinds: &[&str]| -> Option<String> {
        let found: Vec<String> =
            report.conflicts.iter().filter(|c| kinds.contains(&c.kind.as_str())).map(ToString::to_string).collect();
        (!found.is_empty()).then(|| format!("not taken over: {}", found.join("; ")))
    };
    let concern = |type_: &str, kinds: &[&str], ok: Condition| match taken(kinds) {
        Some(message) => condition(type_, false, "Conflict", message, generation),
        None => ok,
    };
    let mut next = vec![
        condition(
            "NamespacesReady",
            !has_conflict,
            if has_conflict { "NamespaceConflict" } else { "Ready" },
            namespaces_message,
            generation,
        ),
        concern(
            "QuotaReady",
            &["ResourceQuota", "LimitRange"],
            condition("QuotaReady", true, "Applied", "ResourceQuotas and LimitRanges applied", generation),
        ),
        concern(
            "RbacReady",
            &["RoleBinding", "ClusterRoleBinding"],
            condition(
                "RbacReady",
                true,
                "Applied",
                format!("{} member(s) bound", tenant.spec.members.len()),
                generation,
            ),
        ),
        concern(
            "NetworksReady",
            &["NetworkPolicy", "NetworkAttachmentDefinition", "MultiNetworkPolicy"],
            condition(
                "NetworksReady",
                network_problems.is_empty(),
                match (missing.is_empty(), unreadable.is_empty(), unserved.is_empty()) {
                    (true, true, true) => "Ready",
                    (false, _, _) => "NetworkNotFound",
                    (true, false, _) => "NetworkUnreadable",
                    (true, true, false) => "ApiNotServed",
                },
                networks_message,
                generation,
            ),
        ),
        released_condition(retained, generation),
    ];
    if tenant.network_isolated() {
        next.push(isolation_condition(ctx, generation));
    }
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
    // Reported, not counted in Ready: the policies need an add-on the install may lack.
    next.extend(secondary_isolation::condition_of(tenant, &report.unserved, generation));

    TenantStatus {
        observed_generation: generation,
        namespaces,
        quota: Some(quota_status(tenant, ctx, report.live_of("ResourceQuota"))),
        conditions: conditions::merge(&previous.conditions, next),
        // Fields other concerns keep up to date (pull Secret copies): as they were.
        ..previous.clone()
    }
}

/// Adds `ChildrenReady` (children the API server refused), `RuntimeClassReady` and `ImagesReady`
/// (pull Secrets) to `status`; the first failing one makes `Ready` false when nothing else did.
fn add_failures(
    status: &mut TenantStatus,
    previous: &TenantStatus,
    platform: &[sync::Refused],
    refused: &[sync::Refused],
    images: Condition,
) {
    let generation = status.observed_generation;
    let added =
        [conditions::children_ready(refused, generation), runtime_class_condition(platform, generation), images];
    let failing = added.iter().find(|c| c.status == "False").cloned();
    let mut next: Vec<Condition> = status.conditions.clone();
    next.extend(added);
    if let Some(failing) = failing
        && let Some(ready) = next.iter_mut().find(|c| c.type_ == "Ready" && c.status == "True")
    {
        *ready = condition("Ready", false, &failing.reason, failing.message, generation);
    }
    status.conditions = conditions::merge(&previous.conditions, next);
}

/// `NetworkIsolationReady`: whether the NetworkPolicies' idea of "outside the cluster" holds.
fn isolation_condition(ctx: &Context, generation: Option<i64>) -> Condition {
    match ctx.cidr_mismatch.get().cloned().flatten() {
        Some(message) => condition("NetworkIsolationReady", false, "ClusterCidrsMismatch", message, generation),
        None => condition(
            "NetworkIsolationReady",
            true,
            "Ready",
            "default deny; clusterCidrs cover the pod and Service CIDRs the cluster reports",
            generation,
        ),
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
        && previous.pull_secrets == next.pull_secrets
        && previous.lifecycle == next.lifecycle
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
    // Read from the server, not the caches: the finalizer goes once this pass finds nothing left,
    // and a child written a moment ago may not have come back through its watch yet (on a real
    // cluster a Tenant deleted right after it was ready left its namespace behind).
    let server = Children::uncached();
    let forced = tenant.annotations().get(FORCE_DELETE).is_some_and(|v| v == "true");
    if forced {
        let deleted = sync::delete_all(&ctx.client, &server, &selector(tenant)).await?;
        metrics().owns(&format!("Tenant/{}", tenant.name_any()), &Default::default());
        metrics().tenant_quota(&tenant.name_any(), &[]);
        metrics().tenant_days_left(&tenant.name_any(), None);
        info!(tenant = %tenant.name_any(), deleted, forced, "tenant cleaned up");
        return Ok(Action::await_change());
    }
    // Every namespace leaves: those holding only what the operator made go now; the others are
    // retained (no member bindings, zero quota) and hold the deletion until an admin acts.
    let leaving: Vec<String> = labelled_namespaces(tenant, ctx, &server)
        .await?
        .into_iter()
        .filter(|(_, t)| !t)
        .map(|(name, _)| name)
        .collect();
    let retained = retained_namespaces(tenant, ctx, &leaving).await?;
    debug!(tenant = %tenant.name_any(), ?leaving, retained = ?retained.keys().collect::<Vec<_>>(), "cleaning up");
    let desired = retained_children(tenant, ctx, &[], &retained);
    let report = sync::sync_children(
        &ctx.client,
        &server,
        Scope::Tenant,
        None,
        &selector(tenant),
        &desired,
        sync::OnConflict::SkipChild,
        keep_retained(&retained),
    )
    .await?;
    if !retained.is_empty() {
        let held: Vec<String> = retained.values().flatten().cloned().collect();
        let message = format!(
            "deletion waits until these are removed (or the Tenant is annotated {FORCE_DELETE}=\"true\"): {}; members have no access and the quota is zero meanwhile",
            release::some_of(&held)
        );
        let previous = latest_status(tenant, ctx);
        let mut conditions: Vec<_> = previous
            .conditions
            .iter()
            .filter(|c| c.type_ != "Ready" && c.type_ != "NamespacesReleased")
            .cloned()
            .collect();
        conditions.push(condition("Ready", false, "DeletionBlocked", message.clone(), tenant.metadata.generation));
        conditions.push(released_condition(&retained, tenant.metadata.generation));
        let was_blocked = previous.conditions.iter().any(|c| c.reason == "DeletionBlocked");
        let status =
            TenantStatus { conditions: conditions::merge(&previous.conditions, conditions), ..previous.clone() };
        write_status(tenant, ctx, &previous, status).await?;
        if !was_blocked {
            ctx.event(tenant, true, "DeletionBlocked", message.clone()).await;
        }
        return Err(Error::DeletionHeld(message));
    }
    metrics().owns(&format!("Tenant/{}", tenant.name_any()), &Default::default());
    metrics().tenant_quota(&tenant.name_any(), &[]);
    metrics().tenant_days_left(&tenant.name_any(), None);
    info!(tenant = %tenant.name_any(), deleted = report.deleted, "tenant cleaned up");
    Ok(Action::await_change())
}
