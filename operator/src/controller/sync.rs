//! Bringing live children in line with the desired ones: apply what is missing or different,
//! delete what carries our labels but is no longer desired. Objects without our labels are never
//! listed, so never touched.

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use tracing::{debug, info};

use super::diff::holds;
use super::error::{Error, Result};
use super::managed::{self, ManagedKind, Scope};
use crate::builders::Child;
use crate::builders::labels::OPERATOR;

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

/// Server-side applies `child` (field manager `scs-operator`, forced); returns the object.
pub async fn apply(client: &Client, child: &Child) -> Result<DynamicObject> {
    let kind = kind_of(child)?;
    let api = api_for(client, &kind, child.namespace.as_deref());
    let applied = api.patch(&child.name, &PatchParams::apply(OPERATOR).force(), &Patch::Apply(&child.object)).await?;
    info!(kind = %child.kind, namespace = child.namespace.as_deref().unwrap_or(""), name = %child.name, "applied");
    Ok(applied)
}

/// Applies `child` unless the live object already holds it. Returns whether it wrote.
pub async fn ensure(client: &Client, child: &Child) -> Result<bool> {
    let kind = kind_of(child)?;
    let api = api_for(client, &kind, child.namespace.as_deref());
    if let Some(live) = api.get_opt(&child.name).await?
        && holds(&serde_json::to_value(&live).unwrap_or_default(), &child.object)
    {
        return Ok(false);
    }
    apply(client, child).await?;
    Ok(true)
}

async fn delete(client: &Client, kind: &ManagedKind, object: &DynamicObject) -> Result<()> {
    let api = api_for(client, kind, object.namespace().as_deref());
    match api.delete(&object.name_any(), &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    info!(kind = %kind.resource.kind, namespace = object.namespace().unwrap_or_default(), name = %object.name_any(), "deleted");
    Ok(())
}

/// Syncs the managed kinds of `scope` against `desired`, finding live objects by `selector` (in
/// `namespace`, or cluster-wide). `keep(kind, object)` may veto the deletion of a live object no
/// longer desired.
pub async fn sync_children(
    client: &Client,
    scope: Scope,
    namespace: Option<&str>,
    selector: &str,
    desired: &[Child],
    keep: impl Fn(&str, &DynamicObject) -> bool,
) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    let kinds = managed::kinds_of(scope);
    let mut live_by_kind = Vec::new();
    let mut written_objects: Vec<(String, DynamicObject)> = Vec::new();
    let mut served = Vec::new();
    for kind in &kinds {
        // A 404 on a list means the API is not served at all (an optional CRD is not installed):
        // nothing of that kind can exist, and none can be created.
        match api_for(client, kind, namespace).list(&ListParams::default().labels(selector)).await {
            Ok(list) => {
                live_by_kind.push(list.items);
                served.push(true);
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {
                live_by_kind.push(Vec::new());
                served.push(false);
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Create and update in kind order (namespaces first) ...
    for ((kind, live), served) in kinds.iter().zip(&live_by_kind).zip(&served) {
        for child in
            desired.iter().filter(|c| c.api_version == kind.resource.api_version && c.kind == kind.resource.kind)
        {
            if !served {
                let namespace = child.namespace.as_deref().map(|ns| format!("{ns}/")).unwrap_or_default();
                report.unserved.push(format!("{} {namespace}{}", child.kind, child.name));
                continue;
            }
            let current = live.iter().find(|l| l.name_any() == child.name && l.namespace() == child.namespace);
            let wanted = match (current, &child.mutable_part) {
                (Some(_), Some(part)) => part,
                _ => &child.object,
            };
            let unchanged = current.is_some_and(|l| holds(&serde_json::to_value(l).unwrap_or_default(), wanted));
            if unchanged {
                debug!(kind = %child.kind, name = %child.name, "unchanged");
                continue;
            }
            let written = match (current, &child.mutable_part) {
                // What may still change of a mostly immutable object, as a plain merge patch.
                (Some(_), Some(part)) => {
                    let api = api_for(client, kind, child.namespace.as_deref());
                    api.patch(&child.name, &PatchParams::default(), &Patch::Merge(part)).await?
                }
                _ => apply(client, child).await?,
            };
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
            delete(client, kind, object).await?;
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
pub async fn delete_all(client: &Client, selector: &str) -> Result<usize> {
    let report = sync_children(client, Scope::Tenant, None, selector, &[], |_, _| false).await?;
    Ok(report.deleted)
}
