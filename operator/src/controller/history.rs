//! Revision history of SecureWorkload specs, kept as `apps/v1` ControllerRevisions (the type
//! StatefulSets and DaemonSets keep theirs in): one per distinct spec, owned by the workload (so
//! garbage collection removes them with it), numbered upwards, pruned to
//! `spec.revisionHistoryLimit` old ones. A rollback (annotation [`ROLLBACK_ANNOTATION`]) copies a
//! revision's spec back into the SecureWorkload, as `kubectl rollout undo` copies a ReplicaSet's
//! template back into its Deployment.
//!
//! What is recorded is the part of the spec that defines the workload: not `replicas` (scaled by
//! `kubectl scale` and autoscalers), `suspended`, `restartedAt` or `revisionHistoryLimit`, which a
//! rollback keeps as they are.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::error::Result;
use crate::api::{RevisionSummary, SecureWorkload, SecureWorkloadSpec, WorkloadKind};
use crate::builders::labels;
use crate::builders::workload::{DEFAULT_REVISION_HISTORY, child_labels};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// Annotation asking the operator to roll the workload back to the revision it names (a number
/// from `status.revisions`); removed once handled.
pub const ROLLBACK_ANNOTATION: &str = "scs.dev/rollback-to";
/// Annotation of a ControllerRevision: what changed from the revision before it.
pub const SUMMARY_ANNOTATION: &str = "scs.dev/change-summary";
/// Condition reporting the last rollback.
pub const CONDITION: &str = "RolledBack";
/// Verbs the operator uses on `apps` `controllerrevisions` (its ClusterRole must grant exactly these).
pub const VERBS: &[&str] = &["get", "list", "create", "patch", "delete"];
/// Spec fields that are not part of a revision.
pub const NOT_RECORDED: &[&str] = &["replicas", "suspended", "restartedAt", "revisionHistoryLimit"];
/// Field manager of the spec a rollback writes.
pub const FIELD_MANAGER: &str = "scs-operator-rollback";
/// Longest change summary kept.
const SUMMARY_MAX: usize = 256;

/// The recorded part of `spec`, as JSON.
pub fn recorded_spec(spec: &SecureWorkloadSpec) -> Value {
    let mut value = serde_json::to_value(spec).expect("a spec serializes");
    if let Some(fields) = value.as_object_mut() {
        for field in NOT_RECORDED {
            fields.remove(*field);
        }
    }
    value
}

/// A stable hash of a recorded spec (FNV-1a, 64 bits, hex): equal specs, equal names.
pub fn hash(value: &Value) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in value.to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Name of the ControllerRevision of `workload` holding the spec with `hash`.
pub fn revision_name(workload: &str, hash: &str) -> String {
    let room = 253 - hash.len() - 1;
    let base: String = workload.chars().take(room).collect();
    format!("{}-{hash}", base.trim_end_matches(['-', '.']))
}

/// `name → image` of the template's containers and init containers.
fn images(spec: &Value) -> BTreeMap<String, String> {
    let mut images = BTreeMap::new();
    for list in ["initContainers", "containers"] {
        for container in spec.pointer(&format!("/template/spec/{list}")).and_then(Value::as_array).into_iter().flatten()
        {
            let name = container["name"].as_str().unwrap_or_default().to_string();
            images.insert(name, container["image"].as_str().unwrap_or_default().to_string());
        }
    }
    images
}

/// `old → new` of an image, shortened to the tags when only the tag (or digest) changed.
fn image_change(old: &str, new: &str) -> String {
    let split = |image: &str| -> (String, String) {
        let (repository, rest) = match image.split_once('@') {
            Some((repository, digest)) => (repository.to_string(), format!("@{digest}")),
            None => match image.rfind(':').filter(|i| !image[*i..].contains('/')) {
                Some(i) => (image[..i].to_string(), image[i + 1..].to_string()),
                None => (image.to_string(), "latest".to_string()),
            },
        };
        (repository, rest)
    };
    let ((old_repository, old_tag), (new_repository, new_tag)) = (split(old), split(new));
    if old_repository == new_repository { format!("{old_tag} → {new_tag}") } else { format!("{old} → {new}") }
}

/// The spec without container images (they are summarised on their own).
fn without_images(spec: &Value) -> Value {
    let mut spec = spec.clone();
    for list in ["initContainers", "containers"] {
        if let Some(containers) = spec.pointer_mut(&format!("/template/spec/{list}")).and_then(Value::as_array_mut) {
            for container in containers {
                if let Some(fields) = container.as_object_mut() {
                    fields.remove("image");
                }
            }
        }
    }
    spec
}

/// Paths (one level into `template.spec`, else top-level fields) where `old` and `new` differ.
fn changed_fields(old: &Value, new: &Value) -> Vec<String> {
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    let mut all: Vec<String> = keys(old).into_iter().chain(keys(new)).collect();
    all.sort();
    all.dedup();
    let mut changed = Vec::new();
    for key in all {
        if old.get(&key) == new.get(&key) {
            continue;
        }
        if key == "template" {
            for part in ["metadata", "spec"] {
                let (o, n) = (&old["template"][part], &new["template"][part]);
                if o == n {
                    continue;
                }
                if part == "spec" && (o.is_object() || n.is_object()) {
                    changed.extend(changed_fields(o, n).into_iter().map(|f| format!("template.spec.{f}")));
                } else {
                    changed.push(format!("template.{part}"));
                }
            }
        } else {
            changed.push(key);
        }
    }
    changed
}

/// A short summary of what changed from `old` to `new` (recorded specs): image changes by
/// container, then the other fields that changed. `created` for the first revision.
pub fn summary(old: Option<&Value>, new: &Value) -> String {
    let Some(old) = old else { return "created".to_string() };
    let mut parts = Vec::new();
    let (old_images, new_images) = (images(old), images(new));
    for (name, image) in &new_images {
        match old_images.get(name) {
            Some(before) if before != image => parts.push(format!("image {name}: {}", image_change(before, image))),
            Some(_) => {}
            None => parts.push(format!("container {name} added")),
        }
    }
    parts.extend(old_images.keys().filter(|n| !new_images.contains_key(*n)).map(|n| format!("container {n} removed")));
    let mut fields = changed_fields(&without_images(old), &without_images(new));
    // Adding or removing a container changes `containers` anyway: said above.
    if parts.iter().any(|p| p.starts_with("container ")) {
        fields.retain(|f| f != "template.spec.containers" && f != "template.spec.initContainers");
    }
    if !fields.is_empty() {
        parts.push(format!("changed {}", fields.join(", ")));
    }
    let mut summary = if parts.is_empty() { "no change".to_string() } else { parts.join("; ") };
    if summary.chars().count() > SUMMARY_MAX {
        summary = summary.chars().take(SUMMARY_MAX - 1).collect::<String>() + "…";
    }
    summary
}

/// Names of the revisions to delete: all but `current` and the `limit` newest others.
/// `revisions` are `(revision, name)` in any order.
pub fn to_prune(revisions: &[(i64, String)], current: &str, limit: usize) -> Vec<String> {
    let mut old: Vec<&(i64, String)> = revisions.iter().filter(|(_, name)| name != current).collect();
    old.sort_by_key(|r| std::cmp::Reverse(r.0));
    old.into_iter().skip(limit).map(|(_, name)| name.clone()).collect()
}

/// The revision number an annotation value names.
pub fn parse_target(value: &str) -> std::result::Result<i64, String> {
    match value.trim().parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{ROLLBACK_ANNOTATION}: {value:?} is not a revision number (see status.revisions)")),
    }
}

/// The spec a rollback to `recorded` (a revision's recorded spec) gives `current`: the recorded
/// fields from the revision, the unrecorded ones (replicas, suspended, ...) as they are now.
pub fn restored_spec(current: &SecureWorkloadSpec, recorded: &Value) -> std::result::Result<Value, String> {
    let mut spec = recorded.clone();
    let now = serde_json::to_value(current).expect("a spec serializes");
    let Some(fields) = spec.as_object_mut() else { return Err("the revision holds no spec".to_string()) };
    for field in NOT_RECORDED {
        fields.remove(*field);
        if let Some(value) = now.get(*field) {
            fields.insert(field.to_string(), value.clone());
        }
    }
    serde_json::from_value::<SecureWorkloadSpec>(spec.clone())
        .map_err(|e| format!("the revision's spec is not a valid spec any more: {e}"))?;
    Ok(spec)
}

/// The recorded spec inside a ControllerRevision.
fn data_spec(revision: &ControllerRevision) -> Option<&Value> {
    revision.data.as_ref().map(|d| &d.0["spec"]).filter(|s| s.is_object())
}

/// The status line of a ControllerRevision.
fn summarize(revision: &ControllerRevision) -> RevisionSummary {
    RevisionSummary {
        revision: revision.revision,
        name: revision.name_any(),
        created_at: revision.metadata.creation_timestamp.clone(),
        summary: revision.annotations().get(SUMMARY_ANNOTATION).cloned().unwrap_or_default(),
    }
}

/// The ControllerRevisions of `workload` (ours, owned by this very object), oldest first.
pub async fn list(client: &kube::Client, workload: &SecureWorkload) -> Result<Vec<ControllerRevision>> {
    let name = workload.name_any();
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &workload.namespace().unwrap_or_default());
    let selector = format!("{}={},{}={}", labels::MANAGED_BY, labels::OPERATOR, labels::WORKLOAD, name);
    let uid = workload.uid().unwrap_or_default();
    let mut revisions: Vec<ControllerRevision> = api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(|r| r.owner_references().iter().any(|o| o.uid == uid))
        .collect();
    revisions.sort_by_key(|r| r.revision);
    Ok(revisions)
}

/// Whether the history in status is already up to date: its newest revision is `current` and it
/// holds no more than the limit allows. Then nothing needs reading (tenants cannot delete
/// ControllerRevisions: their roles only read them).
pub fn up_to_date(listed: &[RevisionSummary], current: &str, limit: usize) -> bool {
    listed.last().is_some_and(|r| r.name == current) && listed.len() <= limit + 1
}

/// Records the current spec of `workload` as its newest revision (creating it, or renumbering the
/// existing revision of an equal older spec), prunes old ones, and returns the history for status.
/// `listed` is the history the status holds now: when it is up to date nothing is read.
pub async fn record(
    client: &kube::Client,
    workload: &SecureWorkload,
    listed: &[RevisionSummary],
) -> Result<Vec<RevisionSummary>> {
    let name = workload.name_any();
    let spec = recorded_spec(&workload.spec);
    let current = revision_name(&name, &hash(&spec));
    let limit = workload.spec.revision_history_limit.unwrap_or(DEFAULT_REVISION_HISTORY).max(0) as usize;
    if up_to_date(listed, &current, limit) {
        return Ok(listed.to_vec());
    }
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &workload.namespace().unwrap_or_default());
    if listed.is_empty() && workload.metadata.generation == Some(1) {
        // A new workload: its first revision is created without reading the history. A spec
        // never changed cannot have other revisions; one an earlier pass made (its status write
        // lost) answers 409 and the history is read.
        let first = new_revision(workload, &current, &spec, summary(None, &spec), 1);
        match api.create(&PostParams::default(), &first).await {
            Ok(created) => return Ok(vec![summarize(&created)]),
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut revisions = list(client, workload).await?;
    let newest = revisions.last().map_or(0, |r| r.revision);
    let before = revisions.iter().rev().find(|r| r.name_any() != current).and_then(data_spec).cloned();
    match revisions.iter().position(|r| r.name_any() == current) {
        Some(i) if i + 1 == revisions.len() => {}
        Some(i) => {
            // An older spec again (a rollback, or an edit back): it becomes the newest revision.
            let patch = json!({
                "metadata": {"annotations": {SUMMARY_ANNOTATION: summary(before.as_ref(), &spec)}},
                "revision": newest + 1,
            });
            revisions[i] = api.patch(&current, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        }
        None => {
            let revision = new_revision(workload, &current, &spec, summary(before.as_ref(), &spec), newest + 1);
            revisions.push(api.create(&PostParams::default(), &revision).await?);
        }
    }
    revisions.sort_by_key(|r| r.revision);
    let numbered: Vec<(i64, String)> = revisions.iter().map(|r| (r.revision, r.name_any())).collect();
    let pruned = to_prune(&numbered, &current, limit);
    for gone in &pruned {
        match api.delete(gone, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(revisions.iter().filter(|r| !pruned.contains(&r.name_any())).map(summarize).collect())
}

/// Revision `number` of `workload`'s recorded `spec`, named `name`, with its change `summary`.
fn new_revision(
    workload: &SecureWorkload,
    name: &str,
    spec: &Value,
    summary: String,
    number: i64,
) -> ControllerRevision {
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: workload.namespace(),
            labels: Some(child_labels(&workload.name_any())),
            annotations: Some(BTreeMap::from([(SUMMARY_ANNOTATION.to_string(), summary)])),
            owner_references: workload.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        data: Some(RawExtension(json!({"spec": spec}))),
        revision: number,
    }
}

/// What a rollback request came to.
#[derive(Debug, PartialEq)]
pub enum Rollback {
    /// The spec of the revision was copied back; the message says which.
    Done(String),
    /// The request could not be honoured; the annotation is removed and the message says why.
    Refused(String),
}

/// Handles the rollback annotation of `workload`, if it has one: copies the named revision's spec
/// into the SecureWorkload and removes the annotation in one merge patch, guarded by the
/// resource version read (a concurrent change makes it fail and the next pass look again).
/// `None` without the annotation.
pub async fn rollback(client: &kube::Client, workload: &SecureWorkload) -> Result<Option<Rollback>> {
    let Some(value) = workload.annotations().get(ROLLBACK_ANNOTATION).cloned() else { return Ok(None) };
    let mut patch = json!({"metadata": {
        "resourceVersion": workload.resource_version(),
        "annotations": {ROLLBACK_ANNOTATION: null},
    }});
    let outcome = match parse_target(&value) {
        Err(message) => Rollback::Refused(message),
        Ok(target) => {
            let revisions = list(client, workload).await?;
            match revisions.iter().find(|r| r.revision == target) {
                None => {
                    let known: Vec<String> = revisions.iter().map(|r| r.revision.to_string()).collect();
                    Rollback::Refused(format!(
                        "revision {target} does not exist (kept: {})",
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    ))
                }
                Some(revision) => match data_spec(revision)
                    .ok_or_else(|| "the revision holds no spec".to_string())
                    .and_then(|recorded| restored_spec(&workload.spec, recorded))
                {
                    Err(message) => Rollback::Refused(format!("revision {target}: {message}")),
                    Ok(spec) => {
                        let now = serde_json::to_value(&workload.spec).expect("a spec serializes");
                        let change = summary(Some(&recorded_spec(&workload.spec)), &spec_recorded(&spec));
                        patch["spec"] = merge_patch(&now, &spec);
                        Rollback::Done(format!("rolled back to revision {target} ({change})"))
                    }
                },
            }
        }
    };
    let api: Api<SecureWorkload> = Api::namespaced(client.clone(), &workload.namespace().unwrap_or_default());
    api.patch(
        &workload.name_any(),
        &PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() },
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(Some(outcome))
}

/// The JSON merge patch (RFC 7386) that turns `from` into `to`: removed fields become `null`,
/// objects are patched field by field, everything else is replaced.
pub fn merge_patch(from: &Value, to: &Value) -> Value {
    match (from.as_object(), to.as_object()) {
        (Some(from), Some(to)) => {
            let mut patch = serde_json::Map::new();
            for (key, value) in to {
                match from.get(key) {
                    Some(old) if old == value => {}
                    Some(old) => drop(patch.insert(key.clone(), merge_patch(old, value))),
                    None => drop(patch.insert(key.clone(), value.clone())),
                }
            }
            for key in from.keys().filter(|k| !to.contains_key(*k)) {
                patch.insert(key.clone(), Value::Null);
            }
            Value::Object(patch)
        }
        _ => to.clone(),
    }
}

/// `next` conditions plus the last rollback's report from `previous` (it stays until the next one).
pub fn carry(previous: &[Condition], mut next: Vec<Condition>) -> Vec<Condition> {
    if !next.iter().any(|c| c.type_ == CONDITION)
        && let Some(last) = previous.iter().find(|c| c.type_ == CONDITION)
    {
        next.push(last.clone());
    }
    next
}

/// `status.replicas` for the scale subresource: the workload object's `status.replicas` for a
/// Deployment or StatefulSet, the ready pods for the other kinds.
pub fn status_replicas(kind: WorkloadKind, live: &Value, ready: Option<i32>) -> i32 {
    match kind {
        WorkloadKind::Deployment | WorkloadKind::StatefulSet => {
            live.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0) as i32
        }
        _ => ready.unwrap_or(0),
    }
}

/// The recorded part of a spec given as JSON.
fn spec_recorded(spec: &Value) -> Value {
    let mut spec = spec.clone();
    if let Some(fields) = spec.as_object_mut() {
        for field in NOT_RECORDED {
            fields.remove(*field);
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(image: &str, extra: Value) -> SecureWorkloadSpec {
        let mut value = json!({
            "kind": "Deployment",
            "template": {"spec": {"containers": [{"name": "app", "image": image}]}},
        });
        merge(&mut value, &extra);
        serde_json::from_value(value).unwrap()
    }

    /// Applies a JSON merge patch (RFC 7386).
    fn merge(target: &mut Value, patch: &Value) {
        let Some(fields) = patch.as_object() else { return *target = patch.clone() };
        if !target.is_object() {
            *target = json!({});
        }
        for (key, value) in fields {
            if value.is_null() {
                target.as_object_mut().unwrap().remove(key);
            } else {
                merge(target.as_object_mut().unwrap().entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }

    #[test]
    fn replicas_suspension_and_restarts_are_not_revisions() {
        let base = spec("registry.example.com/app:1.0", json!({}));
        let scaled = spec(
            "registry.example.com/app:1.0",
            json!({"replicas": 5, "suspended": true, "restartedAt": "2026-01-01T00:00:00Z", "revisionHistoryLimit": 3}),
        );
        assert_eq!(hash(&recorded_spec(&base)), hash(&recorded_spec(&scaled)));
        let updated = spec("registry.example.com/app:1.1", json!({}));
        assert_ne!(hash(&recorded_spec(&base)), hash(&recorded_spec(&updated)));
        assert_eq!(hash(&recorded_spec(&base)).len(), 16);
        assert!(revision_name("web", &hash(&recorded_spec(&base))).starts_with("web-"));
        assert!(revision_name(&"w".repeat(300), "0123456789abcdef").len() <= 253);
    }

    #[test]
    fn summaries_name_image_changes_and_changed_fields() {
        let old = recorded_spec(&spec("registry.example.com/app:1.0", json!({})));
        let new = recorded_spec(&spec("registry.example.com/app:1.1", json!({})));
        assert_eq!(summary(None, &old), "created");
        assert_eq!(summary(Some(&old), &new), "image app: 1.0 → 1.1");
        let moved = recorded_spec(&spec("other.example.com/app", json!({})));
        assert_eq!(summary(Some(&old), &moved), "image app: registry.example.com/app:1.0 → other.example.com/app");
        let exposed = recorded_spec(&spec(
            "registry.example.com/app:1.1",
            json!({"expose": {"ports": [{"port": 80}]}, "template": {"spec": {"nodeSelector": {"zone": "a"}}}}),
        ));
        assert_eq!(summary(Some(&old), &exposed), "image app: 1.0 → 1.1; changed expose, template.spec.nodeSelector");
        let mut two = new.clone();
        two["template"]["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "side", "image": "s:1"}));
        assert_eq!(summary(Some(&new), &two), "container side added");
        assert_eq!(summary(Some(&two), &new), "container side removed");
        assert_eq!(summary(Some(&new), &new), "no change");
        let port = recorded_spec(&spec(
            "registry.example.com/app:1.1",
            json!({"template": {"spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1.1", "ports": [{"containerPort": 80}]}]}}}),
        ));
        assert_eq!(summary(Some(&new), &port), "changed template.spec.containers");
    }

    #[test]
    fn pruning_keeps_the_current_revision_and_the_newest_old_ones() {
        let revisions: Vec<(i64, String)> = (1..=6).map(|n| (n, format!("r{n}"))).collect();
        assert_eq!(to_prune(&revisions, "r6", 2), vec!["r3", "r2", "r1"]);
        // After a rollback the current revision may be an old number's spec renumbered; it stays.
        assert_eq!(to_prune(&revisions, "r2", 2), vec!["r4", "r3", "r1"]);
        assert_eq!(to_prune(&revisions, "r6", 0).len(), 5);
        assert!(to_prune(&revisions, "r6", 10).is_empty());
        let listed = |names: &[&str]| -> Vec<RevisionSummary> {
            let at = |(i, name): (usize, &&str)| RevisionSummary {
                revision: i as i64 + 1,
                name: name.to_string(),
                created_at: None,
                summary: String::new(),
            };
            names.iter().enumerate().map(at).collect()
        };
        assert!(up_to_date(&listed(&["a", "b"]), "b", 1));
        assert!(!up_to_date(&listed(&["a", "b"]), "a", 1), "a new (or returning) spec");
        assert!(!up_to_date(&listed(&["a", "b", "c"]), "c", 1), "more than the limit keeps");
        assert!(!up_to_date(&[], "a", 10), "nothing recorded yet");
    }

    #[test]
    fn rollback_keeps_unrecorded_fields_and_checks_the_number() {
        assert_eq!(parse_target(" 3 "), Ok(3));
        assert!(parse_target("0").is_err());
        assert!(parse_target("latest").unwrap_err().contains("not a revision number"));
        let current = spec("registry.example.com/app:1.1", json!({"replicas": 4, "suspended": false}));
        let old = recorded_spec(&spec("registry.example.com/app:1.0", json!({"replicas": 1})));
        let restored = restored_spec(&current, &old).unwrap();
        assert_eq!(restored["replicas"], 4);
        assert_eq!(restored["suspended"], false);
        assert_eq!(restored["template"]["spec"]["containers"][0]["image"], "registry.example.com/app:1.0");
        assert!(restored_spec(&current, &json!({"kind": "Nonsense"})).is_err());
        // The merge patch turns the live spec into the restored one, dropping fields added since.
        let mut live = serde_json::to_value(spec(
            "registry.example.com/app:1.1",
            json!({"replicas": 4, "suspended": false, "expose": {"ports": [{"port": 80}]}}),
        ))
        .unwrap();
        let patch = merge_patch(&live, &restored);
        assert_eq!(patch["expose"], Value::Null);
        merge(&mut live, &patch);
        assert_eq!(live, restored);
    }
}
