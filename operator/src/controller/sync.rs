//! Bringing live children in line with the desired ones: apply what is missing or different,
//! delete what carries our labels but is no longer desired. Objects without our labels are never
//! listed, so never deleted; and never written: a desired child whose name is taken by an object
//! that does not carry our owner's labels is a [`Conflict`], not an update. Namespaces are created
//! create-only (POST), so one made by someone else between our check and our write is never adopted.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use tracing::{debug, info, warn};

use super::children::{APPLIED_HASH, Cached, Children, Holder, with_applied_hash};
use super::diff::holds;
use super::error::{Error, Result};
use super::managed::{self, ManagedKind, Scope};
use crate::builders::Child;
use crate::builders::labels::{MANAGED_BY, OPERATOR, TENANT, WORKLOAD};

/// What a sync did, and the live objects it saw.
#[derive(Debug, Default)]
pub struct SyncReport {
    pub applied: usize,
    pub deleted: usize,
    /// Live objects matching the selector with their kind (list items carry no kind): as the API
    /// server returned them from our writes, or as listed when unchanged.
    pub live: Vec<(String, DynamicObject)>,
    /// Live objects that should go but were kept (see `keep` in [`sync_children`]).
    pub kept: Vec<DynamicObject>,
    /// Desired children not applied because the cluster does not serve their API (an optional
    /// CRD such as Multus' NetworkAttachmentDefinition is not installed), as `Kind namespace/name`.
    pub unserved: Vec<String>,
    /// Desired children not applied because an object of the same name exists that is not ours.
    pub conflicts: Vec<Conflict>,
    /// Desired children the API server refused to take (a 4xx answer: invalid, forbidden by
    /// admission or quota, an immutable field changed). The others were still synced.
    pub refused: Vec<Refused>,
}

/// A desired child whose write the API server refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    /// The HTTP status code of the refusal.
    pub code: u16,
    /// The API server's message.
    pub message: String,
    /// Immutable fields of the live object that the desired one changes (`spec.volumeClaimTemplates`),
    /// when that is why it was refused.
    pub immutable: Vec<String>,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let namespace = self.namespace.as_deref().map(|ns| format!("{ns}/")).unwrap_or_default();
        write!(f, "{} {namespace}{} refused by the API server: {}", self.kind, self.name, self.message)
    }
}

/// The code and message of an error that is the API server refusing a write for good (until
/// something changes): 400, 403, 422 and other 4xx answers. `None` for transient failures, which
/// are retried without being reported: 5xx, timeouts and connection errors, 409 conflicts (retried
/// on a fresh read), 429 throttling, and 404 (a namespace created in the same pass not seen yet).
pub fn refusal(error: &kube::Error) -> Option<(u16, String)> {
    match error {
        kube::Error::Api(status)
            if (400..500).contains(&status.code) && ![404, 408, 409, 429].contains(&status.code) =>
        {
            Some((status.code, status.message.clone()))
        }
        _ => None,
    }
}

/// The immutable top-level spec fields of a live `kind` object that `desired` would change: for a
/// StatefulSet everything but what its update validation lets through; for a PersistentVolumeClaim
/// its class, mode and volume.
pub fn immutable_changes(kind: &str, live: &serde_json::Value, desired: &serde_json::Value) -> Vec<String> {
    let fields: &[&str] = match kind {
        "StatefulSet" => &["volumeClaimTemplates", "selector", "serviceName", "podManagementPolicy"],
        "PersistentVolumeClaim" => &["storageClassName", "accessModes", "volumeMode", "volumeName"],
        _ => &[],
    };
    fields
        .iter()
        .filter(|field| {
            let wanted = &desired["spec"][**field];
            !wanted.is_null() && !super::diff::contains(&live["spec"][**field], wanted)
        })
        .map(|field| format!("spec.{field}"))
        .collect()
}

/// A desired child whose name is taken by an object we do not own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    /// Why the existing object is not ours, e.g. `was not created by scs-operator`.
    pub why: String,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{} {}", self.kind, self.name, self.why),
            None => write!(f, "{} {} {}", self.kind, self.name, self.why),
        }
    }
}

/// What a sync does when some desired children conflict with objects that are not ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnConflict {
    /// Skip the conflicting children (and everything in a namespace that is not ours), sync the rest.
    SkipChild,
    /// Write nothing at all: the children belong together (a workload must not start with a claim
    /// or Service of someone else).
    WriteNothing,
}

/// The `key=value` requirements of a selector such as `a=b,c=d`.
pub fn requirements(selector: &str) -> BTreeMap<String, String> {
    selector
        .split(',')
        .filter_map(|r| r.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim_start_matches('=').trim().to_string()))
        .collect()
}

/// Why an existing object that our `selector` does not select is not ours to write, or `None` when
/// it is ours after all (it carries every label of the selector and no other controller).
pub fn foreign(
    labels: &BTreeMap<String, String>,
    owners: &[OwnerReference],
    selector: &str,
    desired_owner: Option<&OwnerReference>,
) -> Option<String> {
    let wanted = requirements(selector);
    let carries = |key: &str| labels.get(key) == wanted.get(key);
    if labels.get(MANAGED_BY).map(String::as_str) != Some(OPERATOR) {
        return Some("exists and was not created by scs-operator".into());
    }
    for (key, kind) in [(WORKLOAD, "SecureWorkload"), (TENANT, "Tenant")] {
        if wanted.contains_key(key) && !carries(key) {
            return Some(match labels.get(key) {
                Some(other) => format!("exists and belongs to {kind} {other:?}"),
                None => format!("exists and belongs to no {kind} of ours"),
            });
        }
    }
    if !wanted.keys().all(|key| carries(key)) {
        return Some("exists and belongs to another owner".into());
    }
    let controller = owners.iter().find(|o| o.controller == Some(true));
    match (controller, desired_owner) {
        (Some(live), Some(ours)) if live.uid != ours.uid => {
            Some(format!("exists and is controlled by {} {:?}", live.kind, live.name))
        }
        (Some(live), None) => Some(format!("exists and is controlled by {} {:?}", live.kind, live.name)),
        _ => None,
    }
}

fn desired_owner(child: &Child) -> Option<OwnerReference> {
    let owners = child.object.pointer("/metadata/ownerReferences")?;
    let owners: Vec<OwnerReference> = serde_json::from_value(owners.clone()).ok()?;
    owners.into_iter().find(|o| o.controller == Some(true))
}

impl SyncReport {
    /// Live objects of `kind`.
    pub fn live_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a DynamicObject> + 'a {
        self.live.iter().filter(move |(k, _)| k == kind).map(|(_, object)| object)
    }
}

fn api_for(client: &Client, kind: &ManagedKind, namespace: Option<&str>) -> Api<DynamicObject> {
    match (kind.namespaced, namespace) {
        (true, Some(namespace)) => Api::namespaced_with(client.clone(), namespace, &kind.resource),
        _ => Api::all_with(client.clone(), &kind.resource),
    }
}

fn kind_of(child: &Child) -> Result<ManagedKind> {
    managed::find(&child.api_version, &child.kind)
        .ok_or_else(|| Error::Other(format!("{} {} is not a managed kind", child.api_version, child.kind)))
}

/// Server-side applies `child` (field manager `scs-operator`, forced) with its applied hash;
/// returns the object.
pub async fn apply(client: &Client, child: &Child) -> Result<DynamicObject> {
    apply_object(client, child, &with_applied_hash(&child.object)).await
}

/// Server-side applies `object`, the body of `child` (carrying its applied hash).
async fn apply_object(client: &Client, child: &Child, object: &serde_json::Value) -> Result<DynamicObject> {
    let kind = kind_of(child)?;
    let api = api_for(client, &kind, child.namespace.as_deref());
    let applied = api.patch(&child.name, &PatchParams::apply(OPERATOR).force(), &Patch::Apply(object)).await?;
    info!(kind = %child.kind, namespace = child.namespace.as_deref().unwrap_or(""), name = %child.name, "applied");
    Ok(applied)
}

/// Applies `child` unless the live object already holds it or was made by someone else. Returns
/// whether it wrote.
pub async fn ensure(client: &Client, children: &Children, child: &Child) -> Result<bool> {
    let kind = kind_of(child)?;
    let desired = with_applied_hash(&child.object);
    // Ours, cached and unchanged: nothing to read. (One made by someone else is not cached: ours
    // carry our label.)
    let cached = children.get(&kind, child.namespace.as_deref(), &child.name);
    let cached =
        children.written_not_cached(&child.kind, child.namespace.as_deref(), &child.name, cached.as_deref()).or(cached);
    if cached.is_some() && matches!(children.judge(&child.kind, cached, &desired), Cached::Holds(_)) {
        return Ok(false);
    }
    let api = api_for(client, &kind, child.namespace.as_deref());
    if let Some(live) = api.get_opt(&child.name).await? {
        // One made by someone else (kata-deploy makes `kata-qemu` too) is used as it is, never
        // taken over: the admission policy would refuse the write anyway.
        if live.labels().get(MANAGED_BY).map(String::as_str) != Some(OPERATOR) {
            debug!(kind = %child.kind, name = %child.name, "exists and was not created by scs-operator; left as it is");
            return Ok(false);
        }
        if holds(&serde_json::to_value(&live).unwrap_or_default(), &desired) {
            children.remember(&child.kind, &live);
            return Ok(false);
        }
    }
    let written = apply_object(client, child, &desired).await?;
    children.remember(&child.kind, &written);
    Ok(true)
}

async fn delete(client: &Client, children: &Children, kind: &ManagedKind, object: &DynamicObject) -> Result<()> {
    let api = api_for(client, kind, object.namespace().as_deref());
    match api.delete(&object.name_any(), &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    children.forget(&kind.resource.kind, object.namespace().as_deref(), &object.name_any());
    info!(kind = %kind.resource.kind, namespace = object.namespace().unwrap_or_default(), name = %object.name_any(), "deleted");
    Ok(())
}

/// Syncs the managed kinds of `scope` against `desired`, finding live objects by `selector` (in
/// `namespace`, or cluster-wide). `keep(kind, object)` may veto the deletion of a live object no
/// longer desired. A desired child that is not among the selected live objects is checked first
/// (a GET, skipped inside a namespace this pass creates): when its name is taken by an object that
/// is not ours it is reported in [`SyncReport::conflicts`] and, as `on_conflict` says, skipped or
/// the whole sync writes nothing.
#[allow(clippy::too_many_arguments)]
pub async fn sync_children(
    client: &Client,
    children: &Children,
    scope: Scope,
    namespace: Option<&str>,
    selector: &str,
    desired: &[Child],
    on_conflict: OnConflict,
    keep: impl Fn(&str, &DynamicObject) -> bool,
) -> Result<SyncReport> {
    let kinds = managed::kinds_of(scope);
    sync_children_of(client, children, &kinds, namespace, selector, desired, on_conflict, keep).await
}

/// How a pass learnt a kind's live children.
enum Listed {
    /// From the watch cache: trimmed copies, judged by their applied hash (see [`Children::judge`]).
    Cached,
    /// From a LIST: whole objects, compared field by field.
    Read,
    /// The API server does not serve the kind.
    Unserved,
}

/// The live children of `kind` that `selector` selects: from the cache when it has listed the
/// kind, else with a LIST. A kind the API server does not serve (its watch's list or this LIST
/// answered 404: an optional CRD such as Multus' is not installed) has no objects and can have
/// none created.
async fn live_children(
    client: &Client,
    children: &Children,
    kind: &ManagedKind,
    namespace: Option<&str>,
    selector: &str,
) -> Result<(Listed, Vec<DynamicObject>)> {
    if children.unserved(kind) {
        return Ok((Listed::Unserved, Vec::new()));
    }
    if let Some(cached) = children.selected(kind, namespace, &requirements(selector)) {
        return Ok((Listed::Cached, cached.iter().map(|o| (**o).clone()).collect()));
    }
    match api_for(client, kind, namespace).list(&ListParams::default().labels(selector)).await {
        Ok(list) => Ok((Listed::Read, list.items)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok((Listed::Unserved, Vec::new())),
        Err(e) => Err(e.into()),
    }
}

/// [`sync_children`] over the managed `kinds` given: only objects of those kinds are listed, so
/// only those can be deleted as leftovers.
#[allow(clippy::too_many_arguments)]
pub async fn sync_children_of(
    client: &Client,
    children: &Children,
    kinds: &[ManagedKind],
    namespace: Option<&str>,
    selector: &str,
    desired: &[Child],
    on_conflict: OnConflict,
    keep: impl Fn(&str, &DynamicObject) -> bool,
) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    let mut live_by_kind = Vec::new();
    let mut written_objects: Vec<(String, DynamicObject)> = Vec::new();
    let mut listed = Vec::new();
    for kind in kinds {
        let (how, live) = live_children(client, children, kind, namespace, selector).await?;
        live_by_kind.push(live);
        listed.push(how);
    }
    // A child as listed or cached; for a cached kind, our write the cache does not show yet
    // stands in for it (the next pass often starts before the watch brings our own write back).
    let find_live = |live: &'_ [DynamicObject], child: &Child| -> Option<DynamicObject> {
        let found = live.iter().find(|l| l.name_any() == child.name && l.namespace() == child.namespace);
        let cached = kinds.iter().zip(&listed).any(|(kind, how)| is_of(child, kind) && matches!(how, Listed::Cached));
        match found {
            Some(found) if !cached => Some(found.clone()),
            _ if cached => children
                .written_not_cached(&child.kind, child.namespace.as_deref(), &child.name, found)
                .map(|written| (*written).clone())
                .or_else(|| found.cloned()),
            _ => None,
        }
    };
    // Namespaces this pass creates: nothing of anyone else can be in them yet.
    let new_namespaces: BTreeSet<String> = kinds
        .iter()
        .zip(&live_by_kind)
        .filter(|(kind, _)| kind.resource.kind == "Namespace")
        .flat_map(|(_, live)| {
            desired.iter().filter(|c| c.kind == "Namespace" && find_live(live, c).is_none()).map(|c| c.name.clone())
        })
        .collect();
    // Desired children whose name another object holds.
    for ((kind, live), how) in kinds.iter().zip(&live_by_kind).zip(&listed) {
        for child in desired.iter().filter(|c| is_of(c, kind)) {
            let fresh_namespace = child.namespace.as_ref().is_some_and(|ns| new_namespaces.contains(ns));
            if matches!(how, Listed::Unserved)
                || kind.resource.kind == "Namespace"
                || fresh_namespace
                || find_live(live, child).is_some()
            {
                continue;
            }
            let owner = desired_owner(child);
            let why = match children.holder(kind, child.namespace.as_deref(), &child.name) {
                Some(Holder::Free) => None,
                Some(Holder::Ours(existing)) => {
                    foreign(existing.labels(), existing.owner_references(), selector, owner.as_ref())
                }
                Some(Holder::Other) => foreign(&BTreeMap::new(), &[], selector, owner.as_ref()),
                // The caches have not listed the kind: ask.
                None => {
                    let api = api_for(client, kind, child.namespace.as_deref());
                    api.get_metadata_opt(&child.name).await?.and_then(|existing| {
                        foreign(existing.labels(), existing.owner_references(), selector, owner.as_ref())
                    })
                }
            };
            if let Some(why) = why {
                report.conflicts.push(Conflict {
                    kind: child.kind.clone(),
                    namespace: child.namespace.clone(),
                    name: child.name.clone(),
                    why,
                });
            }
        }
    }
    if on_conflict == OnConflict::WriteNothing && !report.conflicts.is_empty() {
        for (kind, live) in kinds.iter().zip(live_by_kind) {
            report.live.extend(live.into_iter().map(|object| (kind.resource.kind.clone(), object)));
        }
        return Ok(report);
    }
    // Namespaces that turned out not to be ours: nothing goes into them.
    let mut blocked: BTreeSet<String> = BTreeSet::new();
    // Create and update in kind order (namespaces first) ...
    for ((kind, live), how) in kinds.iter().zip(&live_by_kind).zip(&listed) {
        for child in desired.iter().filter(|c| is_of(c, kind)) {
            if matches!(how, Listed::Unserved) {
                let namespace = child.namespace.as_deref().map(|ns| format!("{ns}/")).unwrap_or_default();
                report.unserved.push(format!("{} {namespace}{}", child.kind, child.name));
                continue;
            }
            let conflicting = report
                .conflicts
                .iter()
                .any(|c| c.kind == child.kind && c.namespace == child.namespace && c.name == child.name);
            if conflicting || child.namespace.as_ref().is_some_and(|ns| blocked.contains(ns)) {
                continue;
            }
            let desired_object = with_applied_hash(&child.object);
            let mut current = find_live(live, child);
            // Whether `current` is the whole object (listed or read), not a trimmed cached copy.
            let mut whole = matches!(how, Listed::Read);
            if current.is_none() && child.kind == "Namespace" {
                // Create-only: a namespace someone else made meanwhile answers 409 and stays theirs.
                if let Some(why) = create_namespace(client, kind, child, selector).await? {
                    warn!(namespace = %child.name, "{why}; not taken over");
                    report.conflicts.push(Conflict {
                        kind: child.kind.clone(),
                        namespace: None,
                        name: child.name.clone(),
                        why,
                    });
                    blocked.insert(child.name.clone());
                    continue;
                }
            }
            if matches!(how, Listed::Cached) {
                // The cache holds trimmed copies: whether the child needs a write is judged by its
                // applied hash, and a whole object is read only to settle a suspicion or to patch a
                // mostly immutable one.
                let verdict = children.judge(&child.kind, current.clone().map(std::sync::Arc::new), &desired_object);
                let read = match verdict {
                    Cached::Holds(object) => {
                        debug!(kind = %child.kind, name = %child.name, "unchanged");
                        let listed = live
                            .iter()
                            .any(|l| l.name_any() == child.name && l.resource_version() == object.resource_version());
                        if !listed {
                            // Written by an earlier pass and not in the cache yet: report that.
                            written_objects.push((kind.resource.kind.clone(), (*object).clone()));
                        }
                        continue;
                    }
                    Cached::Suspect(why) => {
                        debug!(kind = %child.kind, name = %child.name, why, "reading to check for drift");
                        true
                    }
                    Cached::Changed(_) => child.mutable_part.is_some(),
                    Cached::Absent => false,
                };
                if read {
                    current = api_for(client, kind, child.namespace.as_deref()).get_opt(&child.name).await?;
                    whole = true;
                    let wanted = match (&current, &child.mutable_part) {
                        (Some(_), Some(part)) => part,
                        _ => &desired_object,
                    };
                    if let Some(live) =
                        current.as_ref().filter(|l| holds(&serde_json::to_value(l).unwrap_or_default(), wanted))
                    {
                        children.remember(&child.kind, live);
                        continue;
                    }
                }
            } else {
                let wanted = match (&current, &child.mutable_part) {
                    (Some(_), Some(part)) => part,
                    _ => &child.object,
                };
                let unchanged =
                    current.as_ref().is_some_and(|l| holds(&serde_json::to_value(l).unwrap_or_default(), wanted));
                if unchanged {
                    debug!(kind = %child.kind, name = %child.name, "unchanged");
                    continue;
                }
            }
            let wanted = match (&current, &child.mutable_part) {
                (Some(_), Some(part)) => part,
                _ => &desired_object,
            };
            let result = match (&current, &child.mutable_part) {
                // What may still change of a mostly immutable object, as a plain merge patch.
                (Some(_), Some(part)) => {
                    let api = api_for(client, kind, child.namespace.as_deref());
                    let params = PatchParams { field_manager: Some(OPERATOR.into()), ..Default::default() };
                    let mut part = part.clone();
                    part["metadata"]["annotations"][APPLIED_HASH] =
                        desired_object["metadata"]["annotations"][APPLIED_HASH].clone();
                    api.patch(&child.name, &params, &Patch::Merge(&part)).await.map_err(Error::from)
                }
                _ => apply_object(client, child, &desired_object).await,
            };
            let written = match result {
                Ok(written) => written,
                Err(Error::Kube(error)) => {
                    let Some((code, message)) = refusal(&error) else { return Err(error.into()) };
                    let immutable = match (&current, code) {
                        (Some(live), 422) if whole => {
                            immutable_changes(&child.kind, &serde_json::to_value(live).unwrap_or_default(), wanted)
                        }
                        (Some(_), 422) => {
                            // Only a trimmed copy is at hand: read the object to name the fields.
                            let api = api_for(client, kind, child.namespace.as_deref());
                            match api.get_opt(&child.name).await? {
                                Some(live) => immutable_changes(
                                    &child.kind,
                                    &serde_json::to_value(&live).unwrap_or_default(),
                                    wanted,
                                ),
                                None => Vec::new(),
                            }
                        }
                        _ => Vec::new(),
                    };
                    warn!(kind = %child.kind, namespace = child.namespace.as_deref().unwrap_or(""), name = %child.name, code, %message, "refused by the API server");
                    report.refused.push(Refused {
                        kind: child.kind.clone(),
                        namespace: child.namespace.clone(),
                        name: child.name.clone(),
                        code,
                        message,
                        immutable,
                    });
                    continue;
                }
                Err(other) => return Err(other),
            };
            children.remember(&child.kind, &written);
            written_objects.push((kind.resource.kind.clone(), written));
            report.applied += 1;
        }
    }
    // ... then delete leftovers in reverse order (namespaces last).
    for (kind, live) in kinds.iter().zip(&live_by_kind).rev() {
        for object in live {
            let wanted = desired.iter().any(|c| {
                c.kind == kind.resource.kind && c.name == object.name_any() && c.namespace == object.namespace()
            });
            if wanted || object.metadata.deletion_timestamp.is_some() || controlled_by_another(object) {
                continue;
            }
            if keep(&kind.resource.kind, object) {
                report.kept.push(object.clone());
                continue;
            }
            delete(client, children, kind, object).await?;
            report.deleted += 1;
        }
    }
    for (kind, live) in kinds.iter().zip(live_by_kind) {
        for object in live {
            let rewritten = written_objects.iter().any(|(k, w)| {
                *k == kind.resource.kind && w.name_any() == object.name_any() && w.namespace() == object.namespace()
            });
            if !rewritten {
                report.live.push((kind.resource.kind.clone(), object));
            }
        }
    }
    report.live.extend(written_objects);
    Ok(report)
}

fn is_of(child: &Child, kind: &ManagedKind) -> bool {
    child.api_version == kind.resource.api_version && child.kind == kind.resource.kind
}

/// Creates namespace `child` with POST, carrying just the labels that make it ours (the full object
/// is applied next). Returns why not when a namespace of that name exists already.
async fn create_namespace(
    client: &Client,
    kind: &ManagedKind,
    child: &Child,
    selector: &str,
) -> Result<Option<String>> {
    let mut stub = DynamicObject::new(&child.name, &kind.resource);
    stub.metadata.labels = Some(requirements(selector));
    let params = PostParams { field_manager: Some(OPERATOR.into()), ..Default::default() };
    match api_for(client, kind, None).create(&params, &stub).await {
        Ok(_) => {
            info!(namespace = %child.name, "created");
            Ok(None)
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            Ok(Some("already exists and was not created for this tenant".into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether a controller other than one of our custom resources owns `object`: the Jobs a CronJob
/// starts carry the labels of its job template, so they match our selector, but they are the
/// CronJob's to create and remove. (On a real cluster the operator deleted every scheduled Job.)
fn controlled_by_another(object: &DynamicObject) -> bool {
    object.owner_references().iter().any(|owner| {
        owner.controller == Some(true) && !owner.api_version.starts_with(&format!("{}/", crate::api::GROUP))
    })
}

/// Deletes every tenant object matching `selector`: cluster-scoped bindings and namespaced
/// objects first, namespaces last.
pub async fn delete_all(client: &Client, children: &Children, selector: &str) -> Result<usize> {
    let report =
        sync_children(client, children, Scope::Tenant, None, selector, &[], OnConflict::SkipChild, |_, _| false)
            .await?;
    Ok(report.deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKLOAD_SELECTOR: &str = "app.kubernetes.io/managed-by=scs-operator,scs.dev/workload=db-headless";

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn controller(kind: &str, name: &str, uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "scs.dev/v1alpha1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            controller: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn an_object_without_our_label_is_foreign() {
        let why = foreign(&labels(&[("app", "db")]), &[], WORKLOAD_SELECTOR, None);
        assert_eq!(why.as_deref(), Some("exists and was not created by scs-operator"));
        let why = foreign(&labels(&[(MANAGED_BY, "helm")]), &[], WORKLOAD_SELECTOR, None);
        assert_eq!(why.as_deref(), Some("exists and was not created by scs-operator"));
    }

    #[test]
    fn an_object_of_another_owner_of_ours_is_foreign() {
        let of_db = labels(&[(MANAGED_BY, OPERATOR), (WORKLOAD, "db")]);
        assert_eq!(
            foreign(&of_db, &[], WORKLOAD_SELECTOR, None).as_deref(),
            Some(r#"exists and belongs to SecureWorkload "db""#)
        );
        let of_beta = labels(&[(MANAGED_BY, OPERATOR), (TENANT, "beta")]);
        assert_eq!(
            foreign(&of_beta, &[], "app.kubernetes.io/managed-by=scs-operator,scs.dev/tenant=acme", None).as_deref(),
            Some(r#"exists and belongs to Tenant "beta""#)
        );
        let platform = labels(&[(MANAGED_BY, OPERATOR)]);
        assert_eq!(
            foreign(&platform, &[], WORKLOAD_SELECTOR, None).as_deref(),
            Some("exists and belongs to no SecureWorkload of ours")
        );
    }

    #[test]
    fn an_object_with_our_labels_but_another_controller_is_foreign() {
        let ours = labels(&[(MANAGED_BY, OPERATOR), (WORKLOAD, "db-headless")]);
        let desired = controller("SecureWorkload", "db-headless", "u-2");
        assert_eq!(foreign(&ours, &[], WORKLOAD_SELECTOR, Some(&desired)), None, "ours, not controlled: fine");
        assert_eq!(foreign(&ours, std::slice::from_ref(&desired), WORKLOAD_SELECTOR, Some(&desired)), None);
        let other = OwnerReference { api_version: "batch/v1".into(), ..controller("CronJob", "nightly", "u-9") };
        assert_eq!(
            foreign(&ours, &[other], WORKLOAD_SELECTOR, Some(&desired)).as_deref(),
            Some(r#"exists and is controlled by CronJob "nightly""#)
        );
    }

    #[test]
    fn selectors_split_into_requirements() {
        assert_eq!(
            requirements("a=b, c==d"),
            BTreeMap::from([("a".to_string(), "b".to_string()), ("c".to_string(), "d".to_string())])
        );
    }

    #[test]
    fn only_lasting_client_errors_are_refusals() {
        let status = |code: u16| {
            kube::Error::Api(kube::core::Status::failure(&format!("code {code}"), "x").with_code(code).boxed())
        };
        for code in [400, 403, 422] {
            assert_eq!(refusal(&status(code)), Some((code, format!("code {code}"))));
        }
        for code in [404, 408, 409, 429, 500, 503, 504] {
            assert_eq!(refusal(&status(code)), None, "{code} is transient");
        }
    }

    #[test]
    fn immutable_changes_name_the_fields() {
        let live = serde_json::json!({"spec": {"serviceName": "db-headless", "volumeClaimTemplates": [
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
             "spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}, "volumeMode": "Filesystem"},
             "status": {"phase": "Pending"}}]}});
        let same = serde_json::json!({"spec": {"serviceName": "db-headless", "volumeClaimTemplates": [
            {"metadata": {"name": "data"}, "spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1024Mi"}}}}]}});
        assert!(immutable_changes("StatefulSet", &live, &same).is_empty());
        let bigger = serde_json::json!({"spec": {"serviceName": "db-headless", "volumeClaimTemplates": [
            {"metadata": {"name": "data"}, "spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "2Gi"}}}}]}});
        assert_eq!(immutable_changes("StatefulSet", &live, &bigger), vec!["spec.volumeClaimTemplates"]);
        assert!(immutable_changes("Deployment", &live, &bigger).is_empty());
    }
}
