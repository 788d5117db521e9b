//! Watch caches of the objects the operator manages, shared by the controllers, and how a sync
//! decides from them whether a child needs a write.
//!
//! Every managed kind is watched once, selected by our `managed-by` label: metadata only, except
//! the kinds whose status a controller reads (the workload kinds, ResourceQuota), of which status
//! and the few spec fields status reporting needs are kept. A pass reads its children here instead
//! of LISTing them, and knows a child needs no write when the child carries the hash of the very
//! object we would apply ([`APPLIED_HASH`]) and nobody else changed what we set since; only then
//! is a GET needed, to confirm a suspected drift. managedFields are what tells: they are reduced
//! in the watch to what the drift check needs (see [`summarise_managed_fields`]).

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, RwLock};

use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use kube::api::{Api, DynamicObject, PartialObjectMeta};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::Value;

use super::managed::{ManagedKind, Scope};
use crate::builders::labels::{MANAGED_BY, NETWORK, OPERATOR, TENANT, WORKLOAD};

/// How long a reconcile waits for the child caches' first lists before it LISTs itself.
pub const LIST_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Annotation holding a digest of the object the operator last applied to a child.
pub const APPLIED_HASH: &str = "scs.dev/applied-hash";

/// Kinds whose status a controller reads: cached with status (and [`KEPT_SPEC`]), not metadata only.
const WITH_STATUS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ResourceQuota"];

/// The spec fields of [`WITH_STATUS`] kinds that status reporting reads (desired replicas, a
/// Job's completions, a paused DaemonSet's node selector, a quota's limits).
const KEPT_SPEC: &[&str] =
    &["/spec/replicas", "/spec/completions", "/spec/parallelism", "/spec/template/spec/nodeSelector", "/spec/hard"];

/// The digest [`APPLIED_HASH`] holds for `object` (without the annotation itself): stable across
/// versions and restarts, unlike `std`'s hasher.
pub fn applied_hash(object: &Value) -> String {
    let mut object = object.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(annotations) = metadata.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.remove(APPLIED_HASH);
        }
        // Absent and empty are the same annotations.
        if metadata.get("annotations").and_then(Value::as_object).is_some_and(|a| a.is_empty()) {
            metadata.remove("annotations");
        }
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, object.to_string().as_bytes());
    digest.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// `object` carrying its [`applied_hash`].
pub fn with_applied_hash(object: &Value) -> Value {
    let hash = applied_hash(object);
    let mut object = object.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = metadata.entry("annotations").or_insert_with(|| Value::Object(Default::default()));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(APPLIED_HASH.into(), Value::String(hash));
        }
    }
    object
}

/// Reduces managedFields to what the drift check reads: entries for the status subresource go
/// (status is not ours); the operator's own entries keep a fingerprint of their field set instead
/// of the set; the others keep their field sets (usually a field or two: a revision annotation, a
/// volume binding). Of an entry only the manager, operation and field set are kept.
pub fn summarise_managed_fields(entries: &mut Vec<ManagedFieldsEntry>) {
    entries.retain(|entry| entry.subresource.as_deref() != Some("status"));
    for entry in entries.iter_mut() {
        (entry.time, entry.api_version, entry.fields_type) = (None, None, None);
        if entry.manager.as_deref() == Some(OPERATOR) {
            let print = fingerprint(entry.fields_v1.as_ref());
            entry.fields_v1 = Some(FieldsV1(Value::from(print)));
        }
    }
}

fn fingerprint(fields: Option<&FieldsV1>) -> u64 {
    let mut hasher = DefaultHasher::new();
    match fields.map(|f| &f.0) {
        // Already summarised.
        Some(Value::Number(n)) => return n.as_u64().unwrap_or_default(),
        Some(fields) => fields.to_string().hash(&mut hasher),
        None => 0u8.hash(&mut hasher),
    }
    hasher.finish()
}

/// The fingerprint of the field set the operator's server-side apply owns, if it has one.
fn our_fields(object: &DynamicObject) -> Option<u64> {
    object
        .managed_fields()
        .iter()
        .find(|e| e.manager.as_deref() == Some(OPERATOR) && e.operation.as_deref() == Some("Apply"))
        .map(|e| fingerprint(e.fields_v1.as_ref()))
}

/// Whether a field set of managedFields (`f:spec: {f:replicas: {}}`) owns a field that `desired`
/// sets. `.` (owning a map's existence) does not count; list items (`k:`, `v:`, `i:`) are only
/// reached below a field `desired` sets, which already counts.
pub fn owns_desired_field(fields: &Value, desired: &Value) -> bool {
    let (Some(fields), Some(desired)) = (fields.as_object(), desired.as_object()) else { return false };
    fields.iter().any(|(key, below)| {
        let Some(name) = key.strip_prefix("f:") else { return false };
        match desired.get(name) {
            None | Some(Value::Null) => false,
            Some(value @ Value::Object(map)) if !map.is_empty() => {
                below.as_object().is_none_or(|b| b.is_empty()) || owns_desired_field(below, value)
            }
            Some(_) => true,
        }
    })
}

/// Why a cached child may not hold the desired object although it carries its hash: another
/// manager owns a field we set (an edit by someone else takes the field over), or the field set
/// we own is not the one our last write left (a field of ours removed).
fn drift(cached: &DynamicObject, desired: &Value, known: Option<&Known>) -> Option<&'static str> {
    let entries = cached.managed_fields();
    if entries.is_empty() {
        // An API server that keeps no managedFields (our fake): only our memory of the last write.
        return known.map(|_| "changed since our last write");
    }
    let foreign = entries.iter().filter(|e| e.manager.as_deref() != Some(OPERATOR));
    if foreign.filter_map(|e| e.fields_v1.as_ref()).any(|f| owns_desired_field(&f.0, desired)) {
        return Some("another manager owns a field we set");
    }
    match known.and_then(|k| k.our_fields) {
        Some(ours) if our_fields(cached) != Some(ours) => Some("the fields we own changed"),
        _ => None,
    }
}

/// What a sync learnt of a child from the cache.
pub enum Cached {
    /// The child holds the desired object (as cached, or as our write returned it).
    Holds(Arc<DynamicObject>),
    /// The child may not hold it: read it to see (why, for the logs).
    Suspect(&'static str),
    /// The child was applied from another desired object (or before hashes): write.
    Changed(Arc<DynamicObject>),
    /// Not in the cache (nor written by us just now).
    Absent,
}

/// What we last saw of a child we wrote or confirmed: its version, and the fingerprint of the
/// fields we owned then.
struct Known {
    resource_version: Option<String>,
    our_fields: Option<u64>,
}

/// How long our write may stand in for a cache that does not show it.
const RECENT_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// Our writes of the last moments, until the cache shows them.
///
/// Which of two copies is newer is read from their resource versions as numbers. Kubernetes calls
/// them opaque, but every etcd-backed API server (and our fake) hands out increasing integers,
/// and only this tells a cache that is behind our write from one that has moved past it (a status
/// update right after our write: standing in then hid the status, and the workload stalled). A
/// version that is not a number never stands in: the cache is used as it is, which costs at
/// worst one write that changes nothing.
#[derive(Default)]
pub struct Recent {
    writes: Mutex<HashMap<String, RecentWrite>>,
}

/// A write's resource version (as a number), when it was made, and the object it returned.
type RecentWrite = (u64, std::time::Instant, Entry);

fn version_number(version: Option<&str>) -> Option<u64> {
    version.and_then(|v| v.parse().ok())
}

/// Whether a cached copy at `cached` shows our write at `written` (or something newer): read as
/// numbers (see [`Recent`]); where either is not a number, only the very version counts.
pub fn shows_write(cached: Option<&str>, written: Option<&str>) -> bool {
    match (version_number(cached), version_number(written)) {
        (Some(cached), Some(written)) => cached >= written,
        _ => cached.is_some() && cached == written,
    }
}

impl Recent {
    fn wrote(&self, key: String, version: Option<&str>, object: &DynamicObject) {
        let (Some(version), Some(object)) = (version_number(version), Entry::new(object)) else { return };
        let mut writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        if writes.len() >= 1024 && writes.len().is_power_of_two() {
            writes.retain(|_, (_, at, _)| at.elapsed() <= RECENT_TTL);
        }
        writes.insert(key, (version, std::time::Instant::now(), object));
    }

    /// Our write of `key` if it is newer than the cached copy (at `cached`, `None` when not cached).
    fn newer_than(&self, key: &str, cached: Option<&str>) -> Option<Arc<DynamicObject>> {
        let mut writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        let (written, at, object) = writes.get(key)?;
        let behind = match cached {
            None => true,
            Some(cached) => version_number(Some(cached)).is_some_and(|cached| cached < *written),
        };
        if behind && at.elapsed() <= RECENT_TTL {
            return object.object().map(Arc::new);
        }
        writes.remove(key);
        None
    }

    fn forget(&self, key: &str) {
        self.writes.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    /// The watch brought `key` at `version`: our write of it stands in no longer once the cache
    /// holds it or something newer (otherwise each stand-in, a second copy of the cached object,
    /// lived until a later pass of its owner asked for it).
    fn caught_up(&self, key: &str, version: Option<&str>) {
        let Some(cached) = version_number(version) else { return };
        let mut writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        if writes.get(key).is_some_and(|(written, _, _)| *written <= cached) {
            writes.remove(key);
        }
    }
}

/// The (namespace, name) a cached object is found by.
type Key = (Option<String>, String);

/// A cached child in compact form: the labels it is selected by, and its [`trimmed`] object as
/// JSON text, read back when a pass asks for it. As a `DynamicObject` a trimmed child took about
/// 3.4 KB (ObjectMeta, a B-tree node per map, a status as a tree of values); as text a fraction of
/// that, and a pass reads back only the few children of its owner.
struct Entry {
    /// The [`KEPT_LABELS`] it carries, by index there.
    labels: Box<[(u8, Box<str>)]>,
    body: Box<[u8]>,
}

/// The labels a cached child keeps (see [`trimmed`]): the owner labels (index, selectors, whose
/// a name is).
const KEPT_LABELS: [&str; 4] = [MANAGED_BY, TENANT, WORKLOAD, NETWORK];

impl Entry {
    /// `object` (already trimmed) in compact form; `None` if it cannot be written as JSON.
    fn new(object: &DynamicObject) -> Option<Entry> {
        let body = serde_json::to_vec(object).ok()?.into_boxed_slice();
        let labels = object.labels().iter();
        let labels =
            labels.filter_map(|(k, v)| Some((KEPT_LABELS.iter().position(|l| l == k)? as u8, v.as_str().into())));
        let labels = labels.collect();
        Some(Entry { labels, body })
    }

    /// The object back (`None` only if the text does not read back, never seen: the caller then
    /// treats the child as not cached, which costs a read or a write, not a wrong decision).
    fn object(&self) -> Option<DynamicObject> {
        serde_json::from_slice(&self.body).ok()
    }

    fn label(&self, key: &str) -> Option<&str> {
        let index = KEPT_LABELS.iter().position(|l| *l == key)? as u8;
        self.labels.iter().find(|(k, _)| *k == index).map(|(_, v)| &**v)
    }
}

/// One kind's cache: objects by (namespace, name), indexed by the owner labels they carry.
#[derive(Default)]
struct KindCache {
    /// The key shared with the index (one copy of the names per object).
    objects: HashMap<Arc<Key>, Entry>,
    /// Owner key (see [`owner_keys`]) to the objects carrying it; mostly one or a few each, so a
    /// vector (a B-tree set took a ~0.5 KB node for one key).
    by_owner: HashMap<String, Vec<Arc<Key>>>,
    /// Objects of a relist in progress.
    relisting: Option<Vec<(Key, Entry)>>,
    ready: bool,
    /// The first list failed (the kind is not served, or not readable): passes LIST it themselves
    /// and nobody waits for it.
    unlisted: bool,
    /// The last list answered 404: the API server does not serve the kind (an optional CRD such
    /// as Multus' is not installed). Passes take that from here rather than a LIST each; the
    /// watch keeps trying, so a CRD installed later is picked up.
    unserved: bool,
}

/// The index keys an object (at `key`) is found by: its workload (`w:ns/name`), tenant and
/// network labels.
fn owner_keys(key: &Key, entry: &Entry) -> Vec<String> {
    let mut keys = Vec::new();
    if let (Some(workload), Some(namespace)) = (entry.label(WORKLOAD), &key.0) {
        keys.push(format!("w:{namespace}/{workload}"));
    }
    if let Some(tenant) = entry.label(TENANT) {
        keys.push(format!("t:{tenant}"));
    }
    if let Some(network) = entry.label(NETWORK) {
        keys.push(format!("n:{network}"));
    }
    keys
}

fn key_of(object: &DynamicObject) -> Key {
    (object.namespace(), object.name_any())
}

impl KindCache {
    fn insert(&mut self, key: Key, entry: Entry) {
        self.remove(&key);
        let key = Arc::new(key);
        for owner in owner_keys(&key, &entry) {
            self.by_owner.entry(owner).or_default().push(key.clone());
        }
        self.objects.insert(key, entry);
    }

    fn remove(&mut self, key: &Key) {
        if let Some((key, old)) = self.objects.remove_entry(key) {
            for owner in owner_keys(&key, &old) {
                if let Some(keys) = self.by_owner.get_mut(&owner) {
                    keys.retain(|k| !Arc::ptr_eq(k, &key));
                    if keys.is_empty() {
                        self.by_owner.remove(&owner);
                    }
                }
            }
        }
    }

    /// The watch failed: until a list succeeds, passes LIST the kind themselves, or know that it
    /// is not served (the list answered 404).
    fn failed(&mut self, error: &watcher::Error) {
        self.unlisted = !self.ready;
        if let watcher::Error::InitialListFailed(kube::Error::Api(status)) = error {
            self.unserved = status.code == 404;
            if self.unserved {
                // The CRD was removed: its objects went with it.
                self.objects.clear();
                self.by_owner.clear();
            }
        }
    }

    /// Takes in a watch event of trimmed objects.
    fn apply(&mut self, event: &watcher::Event<DynamicObject>) {
        match event {
            watcher::Event::Apply(object) => match Entry::new(object) {
                Some(entry) => self.insert(key_of(object), entry),
                None => self.remove(&key_of(object)),
            },
            watcher::Event::Delete(object) => self.remove(&key_of(object)),
            watcher::Event::Init => self.relisting = Some(Vec::new()),
            watcher::Event::InitApply(object) => {
                let relisting = self.relisting.get_or_insert_default();
                relisting.extend(Entry::new(object).map(|entry| (key_of(object), entry)));
            }
            watcher::Event::InitDone => {
                self.unserved = false;
                self.objects.clear();
                self.by_owner.clear();
                for (key, entry) in self.relisting.take().unwrap_or_default() {
                    self.insert(key, entry);
                }
                self.ready = true;
            }
        }
    }
}

/// The names of one kind held by objects without our label (tenants' own, the cluster's): where
/// a new child's name is taken, known without a GET per new child.
#[derive(Default)]
struct ForeignNames {
    names: HashSet<(Option<String>, String)>,
    /// Names of a relist in progress.
    relisting: Option<HashSet<(Option<String>, String)>>,
    ready: bool,
}

impl ForeignNames {
    fn apply(&mut self, event: &watcher::Event<PartialObjectMeta<DynamicObject>>) {
        let key = |o: &PartialObjectMeta<DynamicObject>| (o.metadata.namespace.clone(), o.name_any());
        match event {
            watcher::Event::Apply(object) => {
                self.names.insert(key(object));
            }
            watcher::Event::Delete(object) => {
                self.names.remove(&key(object));
            }
            watcher::Event::Init => self.relisting = Some(HashSet::new()),
            watcher::Event::InitApply(object) => {
                self.relisting.get_or_insert_default().insert(key(object));
            }
            watcher::Event::InitDone => {
                self.names = self.relisting.take().unwrap_or_default();
                self.ready = true;
            }
        }
    }
}

/// Who holds the name a new child would take, as the caches know it.
pub enum Holder {
    /// Nobody: the name is free.
    Free,
    /// An object with our label (of this owner or another one).
    Ours(Arc<DynamicObject>),
    /// An object without our label.
    Other,
}

/// The caches of every watched managed kind, and what the operator's own writes left.
#[derive(Default)]
pub struct Children {
    kinds: RwLock<HashMap<String, Arc<RwLock<KindCache>>>>,
    /// Per kind, the names objects without our label hold.
    foreign: RwLock<HashMap<String, Arc<RwLock<ForeignNames>>>>,
    /// Children written in the last moments, until the cache shows the write.
    recent: Arc<Recent>,
    /// Per child (`kind/namespace/name`): what our last write or confirming read saw.
    known: Arc<Mutex<HashMap<String, Known>>>,
    /// Every kind has been listed once (see [`Children::wait_until_listed`]).
    listed: std::sync::atomic::AtomicBool,
}

fn kind_key(api_version: &str, kind: &str) -> String {
    format!("{api_version}/{kind}")
}

fn child_key(kind: &str, namespace: Option<&str>, name: &str) -> String {
    format!("{kind}/{}/{name}", namespace.unwrap_or(""))
}

/// The cached form of `object`: managedFields summarised, and for kinds cached with status,
/// everything but metadata, status and [`KEPT_SPEC`] dropped.
fn trimmed(mut object: DynamicObject, kind: &str) -> DynamicObject {
    let mut entries = std::mem::take(object.managed_fields_mut());
    summarise_managed_fields(&mut entries);
    *object.managed_fields_mut() = entries;
    // Of labels and annotations only what the caches are read for: the owner labels (index,
    // selectors, whose a name is) and the applied hash. The rest was most of a cached child
    // (`kubectl apply` even keeps the whole object again in an annotation).
    if let Some(annotations) = object.metadata.annotations.as_mut() {
        annotations.retain(|key, _| key == APPLIED_HASH);
    }
    if let Some(labels) = object.metadata.labels.as_mut() {
        labels.retain(|key, _| KEPT_LABELS.contains(&key.as_str()));
    }
    if WITH_STATUS.contains(&kind) {
        let mut kept = serde_json::json!({});
        if let Some(status) = object.data.get("status") {
            kept["status"] = status.clone();
        }
        for path in KEPT_SPEC {
            if let Some(value) = object.data.pointer(path) {
                set_pointer(&mut kept, path, value.clone());
            }
        }
        object.data = kept;
    } else {
        object.data = Value::Object(Default::default());
    }
    object
}

fn set_pointer(target: &mut Value, path: &str, value: Value) {
    let mut at = target;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let Some(map) = at.as_object_mut() else { return };
        if i + 1 == parts.len() {
            map.insert((*part).to_string(), value);
            return;
        }
        at = map.entry((*part).to_string()).or_insert_with(|| Value::Object(Default::default()));
    }
}

/// A new, empty cache for `kind` in `caches` (a watch that starts afresh starts from nothing).
fn register<T: Default>(caches: &RwLock<HashMap<String, Arc<RwLock<T>>>>, kind: &ManagedKind) -> Arc<RwLock<T>> {
    let cache = Arc::new(RwLock::new(T::default()));
    let key = kind_key(&kind.resource.api_version, &kind.resource.kind);
    caches.write().unwrap_or_else(|e| e.into_inner()).insert(key, cache.clone());
    cache
}

/// How the caches list: from the API server's watch cache (`resourceVersion=0`, as client-go's
/// informers do) rather than a quorum read from etcd per kind. Some 40 watches start together
/// whenever the operator starts or takes over; what a list misses the watch brings next.
fn list_config() -> watcher::Config {
    watcher::Config::default().any_semantic()
}

fn map_event<A, B>(event: watcher::Event<A>, f: impl Fn(A) -> B) -> watcher::Event<B> {
    match event {
        watcher::Event::Apply(object) => watcher::Event::Apply(f(object)),
        watcher::Event::Delete(object) => watcher::Event::Delete(f(object)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(object) => watcher::Event::InitApply(f(object)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

fn to_dynamic(meta: PartialObjectMeta<DynamicObject>, kind: &ManagedKind) -> DynamicObject {
    let mut object = DynamicObject::new("", &kind.resource);
    object.metadata = meta.metadata;
    object
}

impl Children {
    /// Children with no caches: every pass given these LISTs and GETs from the server. For passes
    /// whose outcome is final (a finalizer released), which must not miss a child just written.
    pub fn uncached() -> Self {
        Self::default()
    }

    fn cache_of(&self, api_version: &str, kind: &str) -> Option<Arc<RwLock<KindCache>>> {
        self.kinds.read().unwrap_or_else(|e| e.into_inner()).get(&kind_key(api_version, kind)).cloned()
    }

    /// Watches `kind` (objects with our label) into its cache, and the names of the kind's other
    /// objects (metadata only, kept as names); yields each changed object of ours once the cache
    /// holds the change, as a trigger for the controller that owns the kind.
    pub fn watch(
        &self,
        client: &Client,
        kind: &ManagedKind,
    ) -> impl Stream<Item = Result<DynamicObject, watcher::Error>> + Send + 'static {
        let foreign = self.watch_foreign(client, kind).filter_map(|_| futures::future::ready(None));
        futures::stream::select(self.watch_ours(client, kind), foreign)
    }

    /// Keeps the names of `kind`'s objects without our label (`managed-by!=scs-operator` selects
    /// those without the label too). Yields nothing worth acting on: errors are the ones the watch
    /// of our own objects of the kind reports, and until the first list is done nobody relies on it.
    fn watch_foreign(&self, client: &Client, kind: &ManagedKind) -> impl Stream<Item = ()> + Send + 'static {
        let names = register(&self.foreign, kind);
        let config = list_config().labels(&format!("{MANAGED_BY}!={OPERATOR}"));
        let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client.clone(), &kind.resource);
        watcher(api, config).default_backoff().map(move |event| {
            if let Ok(event) = event {
                names.write().unwrap_or_else(|e| e.into_inner()).apply(&event);
            }
        })
    }

    /// Who holds name `namespace/name` of `kind`; `None` while either cache has not listed.
    pub fn holder(&self, kind: &ManagedKind, namespace: Option<&str>, name: &str) -> Option<Holder> {
        let key = (namespace.map(str::to_string), name.to_string());
        let kind_key = kind_key(&kind.resource.api_version, &kind.resource.kind);
        let foreign = self.foreign.read().unwrap_or_else(|e| e.into_inner()).get(&kind_key).cloned()?;
        let foreign = foreign.read().unwrap_or_else(|e| e.into_inner());
        let ours = self.cache_of(&kind.resource.api_version, &kind.resource.kind)?;
        let ours = ours.read().unwrap_or_else(|e| e.into_inner());
        if !foreign.ready || !ours.ready {
            return None;
        }
        if let Some(object) = ours.objects.get(&key).and_then(Entry::object) {
            return Some(Holder::Ours(Arc::new(object)));
        }
        Some(if foreign.names.contains(&key) { Holder::Other } else { Holder::Free })
    }

    /// The cache of our own objects of `kind`.
    fn watch_ours(
        &self,
        client: &Client,
        kind: &ManagedKind,
    ) -> impl Stream<Item = Result<DynamicObject, watcher::Error>> + Send + 'static {
        let cache = register(&self.kinds, kind);
        let config = list_config().labels(&format!("{MANAGED_BY}={OPERATOR}"));
        let name = kind.resource.kind.clone();
        let (recent, known) = (self.recent.clone(), self.known.clone());
        let events = if WITH_STATUS.contains(&name.as_str()) {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.resource);
            watcher(api, config).default_backoff().boxed()
        } else {
            let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client.clone(), &kind.resource);
            let kind = kind.clone();
            watcher(api, config)
                .default_backoff()
                .map(move |e| e.map(|e| map_event(e, |m| to_dynamic(m, &kind))))
                .boxed()
        };
        events
            .map(move |event| match event {
                Ok(event) => {
                    let event = map_event(event, |object| trimmed(object, &name));
                    match &event {
                        watcher::Event::Delete(object) => {
                            // Gone: what we wrote of it must not stand in for it any more.
                            let key = child_key(&name, object.namespace().as_deref(), &object.name_any());
                            recent.forget(&key);
                            known.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
                        }
                        watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                            let key = child_key(&name, object.namespace().as_deref(), &object.name_any());
                            recent.caught_up(&key, object.resource_version().as_deref());
                        }
                        _ => {}
                    }
                    cache.write().unwrap_or_else(|e| e.into_inner()).apply(&event);
                    Ok(event)
                }
                Err(error) => {
                    cache.write().unwrap_or_else(|e| e.into_inner()).failed(&error);
                    Err(error)
                }
            })
            .touched_objects()
    }

    /// Whether the cache of `kind` has completed its first list (a kind not served by the API
    /// server never does: its children are LISTed, which answers 404).
    pub fn ready(&self, kind: &ManagedKind) -> bool {
        self.cache_of(&kind.resource.api_version, &kind.resource.kind)
            .is_some_and(|c| c.read().unwrap_or_else(|e| e.into_inner()).ready)
    }

    /// Whether the watch of `kind` found that the API server does not serve it.
    pub fn unserved(&self, kind: &ManagedKind) -> bool {
        self.cache_of(&kind.resource.api_version, &kind.resource.kind)
            .is_some_and(|c| c.read().unwrap_or_else(|e| e.into_inner()).unserved)
    }

    /// Waits until every watched kind has been listed once (or failed to be: not served), at most
    /// `limit`. Reconciles wait here rather than the controllers' start, because the caches are
    /// fed by the controllers' own trigger streams; until then a pass would LIST.
    pub async fn wait_until_listed(&self, limit: std::time::Duration) {
        if self.listed.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let waiting = self.kinds.read().unwrap_or_else(|e| e.into_inner()).values().any(|c| {
                let c = c.read().unwrap_or_else(|e| e.into_inner());
                !c.ready && !c.unlisted
            });
            if !waiting {
                self.listed.store(true, std::sync::atomic::Ordering::Release);
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The cached objects of `kind` that `selector` (`k=v,...`) selects, in `namespace` when given.
    /// `None` when the kind is not cached (yet).
    pub fn selected(
        &self,
        kind: &ManagedKind,
        namespace: Option<&str>,
        selector: &std::collections::BTreeMap<String, String>,
    ) -> Option<Vec<Arc<DynamicObject>>> {
        let cache = self.cache_of(&kind.resource.api_version, &kind.resource.kind)?;
        let cache = cache.read().unwrap_or_else(|e| e.into_inner());
        if !cache.ready {
            return None;
        }
        let owner = match (selector.get(WORKLOAD), namespace, selector.get(TENANT), selector.get(NETWORK)) {
            (Some(workload), Some(namespace), _, _) => Some(format!("w:{namespace}/{workload}")),
            (_, _, Some(tenant), _) => Some(format!("t:{tenant}")),
            (_, _, _, Some(network)) => Some(format!("n:{network}")),
            _ => None,
        };
        let matches = |(key, entry): &(&Key, &Entry)| {
            namespace.is_none_or(|ns| key.0.as_deref() == Some(ns))
                && selector.iter().all(|(k, v)| entry.label(k) == Some(v.as_str()))
        };
        let candidates: Vec<(&Key, &Entry)> = match owner {
            Some(owner) => cache
                .by_owner
                .get(&owner)
                .into_iter()
                .flatten()
                .filter_map(|key| cache.objects.get_key_value(&**key))
                .map(|(key, entry)| (&**key, entry))
                .filter(matches)
                .collect(),
            None => cache.objects.iter().map(|(key, entry)| (&**key, entry)).filter(matches).collect(),
        };
        Some(candidates.into_iter().filter_map(|(_, entry)| entry.object().map(Arc::new)).collect())
    }

    /// The cached object `namespace/name` of `kind`, if the kind is cached and holds it.
    pub fn get(&self, kind: &ManagedKind, namespace: Option<&str>, name: &str) -> Option<Arc<DynamicObject>> {
        let cache = self.cache_of(&kind.resource.api_version, &kind.resource.kind)?;
        let cache = cache.read().unwrap_or_else(|e| e.into_inner());
        cache.objects.get(&(namespace.map(str::to_string), name.to_string())).and_then(Entry::object).map(Arc::new)
    }

    /// What the cache says of a child of `kind` (its cached copy, or our write the cache does not
    /// show yet: see [`Children::written_not_cached`]), to be applied as `desired` (which carries
    /// its [`APPLIED_HASH`]).
    pub fn judge(&self, kind: &str, cached: Option<Arc<DynamicObject>>, desired: &Value) -> Cached {
        let hash = desired.pointer(&format!("/metadata/annotations/{}", APPLIED_HASH.replace('/', "~1")));
        let namespace = desired.pointer("/metadata/namespace").and_then(Value::as_str);
        let name = desired.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        let key = child_key(kind, namespace, name);
        let version = cached.as_ref().and_then(|c| c.resource_version());
        let Some(cached) = cached else { return Cached::Absent };
        if cached.annotations().get(APPLIED_HASH).map(|h| Value::String(h.clone())).as_ref() != hash {
            return Cached::Changed(cached);
        }
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let known = known.get(&key);
        if known.is_some_and(|k| k.resource_version == version) {
            return Cached::Holds(cached);
        }
        match drift(&cached, desired, known) {
            Some(why) => Cached::Suspect(why),
            None => Cached::Holds(cached),
        }
    }

    /// Our write of child `namespace/name` of `kind` that the cache (at `cached`, the cached copy if
    /// any) does not show yet.
    pub fn written_not_cached(
        &self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        cached: Option<&DynamicObject>,
    ) -> Option<Arc<DynamicObject>> {
        let key = child_key(kind, namespace, name);
        self.recent.newer_than(&key, cached.and_then(|c| c.metadata.resource_version.as_deref()))
    }

    /// Remembers `object` as written by us (or read and found holding what we want) just now.
    pub fn remember(&self, kind: &str, object: &DynamicObject) {
        let key = child_key(kind, object.namespace().as_deref(), &object.name_any());
        let known = Known { resource_version: object.resource_version(), our_fields: our_fields(object) };
        self.known.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), known);
        let trimmed = trimmed(object.clone(), kind);
        self.recent.wrote(key, object.resource_version().as_deref(), &trimmed);
    }

    /// Forgets a child we deleted.
    pub fn forget(&self, kind: &str, namespace: Option<&str>, name: &str) {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).remove(&child_key(kind, namespace, name));
    }

    /// How many children the caches hold (for the scale harness).
    pub fn len(&self) -> usize {
        let kinds = self.kinds.read().unwrap_or_else(|e| e.into_inner());
        kinds.values().map(|c| c.read().unwrap_or_else(|e| e.into_inner()).objects.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `scope`'s kinds are cached by [`Children::watch`] (platform objects are ensured
/// by name, not found by label).
pub fn cached_scope(scope: Scope) -> bool {
    scope != Scope::Platform
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    fn entry(manager: &str, operation: &str, subresource: Option<&str>, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            subresource: subresource.map(str::to_string),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }
    }

    #[test]
    fn the_hash_ignores_itself_and_follows_the_object() {
        let desired = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"}, "spec": {"hard": {"pods": "10"}}});
        let hashed = with_applied_hash(&desired);
        let hash = hashed["metadata"]["annotations"][APPLIED_HASH].as_str().unwrap().to_string();
        assert_eq!(hash.len(), 32);
        assert_eq!(applied_hash(&hashed), hash, "the annotation is not part of what it digests");
        let other = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"}, "spec": {"hard": {"pods": "11"}}});
        assert_ne!(applied_hash(&other), hash);
    }

    #[test]
    fn another_manager_owning_a_field_we_set_is_drift() {
        let desired = json!({"metadata": {"labels": {"a": "1"}, "annotations": {APPLIED_HASH: "h"}},
            "spec": {"hard": {"pods": "10"}}, "subjects": [{"kind": "User", "name": "x"}]});
        // kubectl edit of spec.hard.pods: the field moves to kubectl.
        assert!(owns_desired_field(&json!({"f:spec": {"f:hard": {"f:pods": {}}}}), &desired));
        // An atomic list we set.
        assert!(owns_desired_field(&json!({"f:subjects": {}}), &desired));
        // A label of ours taken over.
        assert!(owns_desired_field(&json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}}}), &desired));
        // Fields we do not set: a revision annotation, a binding, owning the annotations map.
        assert!(!owns_desired_field(
            &json!({"f:metadata": {"f:annotations": {".": {}, "f:deployment.kubernetes.io/revision": {}}}}),
            &desired
        ));
        assert!(!owns_desired_field(&json!({"f:spec": {"f:volumeName": {}}}), &desired));
        assert!(!owns_desired_field(&json!({"f:spec": {"f:hard": {"f:cpu": {}}}}), &desired));
    }

    #[test]
    fn managed_fields_are_summarised() {
        let mut entries = vec![
            entry(OPERATOR, "Apply", None, json!({"f:spec": {"f:hard": {"f:pods": {}}}})),
            entry("kube-controller-manager", "Update", Some("status"), json!({"f:status": {}})),
            entry("kubectl-edit", "Update", None, json!({"f:spec": {"f:x": {}}})),
        ];
        let ours = fingerprint(entries[0].fields_v1.as_ref());
        summarise_managed_fields(&mut entries);
        assert_eq!(entries.len(), 2, "status entries go");
        assert_eq!(fingerprint(entries[0].fields_v1.as_ref()), ours, "ours keep their fingerprint");
        assert_eq!(entries[1].fields_v1.as_ref().unwrap().0, json!({"f:spec": {"f:x": {}}}));
    }

    fn quota(hash: &str, version: &str, entries: Vec<ManagedFieldsEntry>) -> DynamicObject {
        let mut quota = object(json!({"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "q", "namespace": "a", "resourceVersion": version,
                "annotations": {APPLIED_HASH: hash}, "labels": {TENANT: "acme"}}}));
        quota.metadata.managed_fields = Some(entries);
        trimmed(quota, "ResourceQuota")
    }

    #[test]
    fn children_are_judged_by_hash_and_managed_fields() {
        let children = Children::default();
        let desired = with_applied_hash(
            &json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": "a"}, "spec": {"hard": {"pods": "10"}}}),
        );
        let hash = desired["metadata"]["annotations"][APPLIED_HASH].as_str().unwrap();
        let ours = entry(OPERATOR, "Apply", None, json!({"f:spec": {"f:hard": {"f:pods": {}}}}));
        let judge = |cached: DynamicObject| children.judge("ResourceQuota", Some(Arc::new(cached)), &desired);
        assert!(matches!(children.judge("ResourceQuota", None, &desired), Cached::Absent));
        assert!(matches!(judge(quota("old", "1", vec![ours.clone()])), Cached::Changed(_)));
        assert!(matches!(judge(quota(hash, "1", vec![ours.clone()])), Cached::Holds(_)), "restart: trusted");
        let edited = entry("kubectl-edit", "Update", None, json!({"f:spec": {"f:hard": {"f:pods": {}}}}));
        assert!(matches!(judge(quota(hash, "2", vec![ours.clone(), edited])), Cached::Suspect(_)));
        // Our write remembered: a field of ours removed by someone else shows in our field set.
        let written = quota(hash, "3", vec![ours.clone()]);
        children.remember("ResourceQuota", &written);
        assert!(matches!(judge(quota(hash, "3", vec![ours])), Cached::Holds(_)));
        let shrunk = entry(OPERATOR, "Apply", None, json!({"f:spec": {"f:hard": {}}}));
        assert!(matches!(judge(quota(hash, "4", vec![shrunk])), Cached::Suspect(_)));
        // Without managedFields (an API server keeping none), a version we did not write is suspect.
        assert!(matches!(judge(quota(hash, "5", vec![])), Cached::Suspect(_)));
    }

    #[test]
    fn our_write_stands_in_until_the_cache_shows_it() {
        let children = Children::default();
        let desired = with_applied_hash(
            &json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": "a"}}),
        );
        let hash = desired["metadata"]["annotations"][APPLIED_HASH].as_str().unwrap();
        children.remember("ResourceQuota", &quota(hash, "7", vec![]));
        let written =
            |cached: Option<&DynamicObject>| children.written_not_cached("ResourceQuota", Some("a"), "q", cached);
        let standing_in = written(None).expect("not cached yet: our write stands in");
        assert!(matches!(children.judge("ResourceQuota", Some(standing_in), &desired), Cached::Holds(_)));
        let stale = quota("old", "6", vec![]);
        assert!(written(Some(&stale)).is_some(), "an older cached copy: still ours");
        assert!(written(Some(&stale)).is_some(), "asking does not use it up");
        assert!(written(Some(&quota(hash, "9", vec![]))).is_none(), "the cache is past our write (a status update)");
        assert!(written(Some(&stale)).is_none(), "and it is forgotten");
    }

    #[test]
    fn a_stand_in_goes_once_the_watch_brings_the_write() {
        let recent = Recent::default();
        let written = quota("h", "7", vec![]);
        recent.wrote("k".into(), Some("7"), &written);
        recent.caught_up("k", Some("6"));
        assert!(recent.newer_than("k", Some("6")).is_some(), "an older event leaves it");
        recent.caught_up("k", Some("7"));
        assert!(recent.writes.lock().unwrap().is_empty(), "the write itself came back");
        recent.wrote("k".into(), Some("7"), &written);
        recent.caught_up("k", Some("9"));
        assert!(recent.writes.lock().unwrap().is_empty(), "something newer came back");
    }

    #[test]
    fn a_relist_replaces_the_cache_and_the_index_finds_owners() {
        let mut cache = KindCache::default();
        let a = quota("h", "1", vec![]);
        let mut b = quota("h", "1", vec![]);
        b.metadata.name = Some("b".into());
        cache.apply(&watcher::Event::Init);
        cache.apply(&watcher::Event::InitApply(a.clone()));
        assert!(!cache.ready && cache.objects.is_empty(), "nothing until the list is complete");
        cache.apply(&watcher::Event::InitDone);
        assert!(cache.ready);
        cache.apply(&watcher::Event::Apply(b.clone()));
        assert_eq!(cache.by_owner["t:acme"].len(), 2);
        cache.apply(&watcher::Event::Init);
        cache.apply(&watcher::Event::InitApply(b));
        cache.apply(&watcher::Event::InitDone);
        assert_eq!(cache.objects.len(), 1, "a gone while the watch was down");
        cache.apply(&watcher::Event::Delete(a));
        assert_eq!(cache.by_owner["t:acme"].len(), 1);
    }

    #[test]
    fn a_cached_child_reads_back_as_it_was_trimmed() {
        let mut deployment = object(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "a", "resourceVersion": "5", "generation": 2,
                "labels": {MANAGED_BY: OPERATOR, WORKLOAD: "web", TENANT: "acme"},
                "annotations": {APPLIED_HASH: "h"},
                "ownerReferences": [{"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "name": "web",
                    "uid": "u", "controller": true}]},
            "spec": {"replicas": 3}, "status": {"readyReplicas": 2, "conditions": [{"type": "Available", "status": "True"}]}}));
        deployment.metadata.managed_fields = Some(vec![entry(OPERATOR, "Apply", None, json!({"f:spec": {}}))]);
        let kept = trimmed(deployment, "Deployment");
        let mut cache = KindCache::default();
        cache.apply(&watcher::Event::Init);
        cache.apply(&watcher::Event::InitApply(kept.clone()));
        cache.apply(&watcher::Event::InitDone);
        let entry = &cache.objects[&(Some("a".into()), "web".into())];
        let back = entry.object().expect("reads back");
        assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&kept).unwrap());
        assert_eq!(entry.label(WORKLOAD), Some("web"));
        assert_eq!(cache.by_owner["w:a/web"].len(), 1);
        assert_eq!(cache.by_owner["t:acme"].len(), 1);
        let summary = &back.managed_fields()[0];
        assert!(summary.time.is_none() && summary.api_version.is_none(), "only what the drift check reads");
    }

    #[test]
    fn a_kind_the_server_does_not_serve_is_known_until_a_list_succeeds() {
        let status = |code: u16| {
            watcher::Error::InitialListFailed(kube::Error::Api(
                kube::core::Status::failure("x", "NotFound").with_code(code).boxed(),
            ))
        };
        let mut cache = KindCache::default();
        cache.failed(&status(403));
        assert!(cache.unlisted && !cache.unserved, "forbidden: passes LIST (and are told why)");
        cache.failed(&status(404));
        assert!(cache.unserved);
        cache.apply(&watcher::Event::Init);
        cache.apply(&watcher::Event::InitDone);
        assert!(cache.ready && !cache.unserved, "the CRD was installed");
    }

    #[test]
    fn who_holds_a_name_is_known_from_both_caches() {
        let children = Children::default();
        let kind = super::super::managed::find("v1", "ResourceQuota").unwrap();
        let key = kind_key(&kind.resource.api_version, &kind.resource.kind);
        let (ours, foreign) =
            (Arc::new(RwLock::new(KindCache::default())), Arc::new(RwLock::new(ForeignNames::default())));
        children.kinds.write().unwrap().insert(key.clone(), ours.clone());
        children.foreign.write().unwrap().insert(key, foreign.clone());
        let meta = |name: &str| {
            let metadata = kube::core::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("acme-prod".into()),
                ..Default::default()
            };
            serde_json::from_value::<PartialObjectMeta<DynamicObject>>(
                json!({"apiVersion": "v1", "kind": "PartialObjectMetadata", "metadata": metadata}),
            )
            .unwrap()
        };
        foreign.write().unwrap().apply(&watcher::Event::Init);
        foreign.write().unwrap().apply(&watcher::Event::InitApply(meta("theirs")));
        assert!(children.holder(&kind, Some("acme-prod"), "theirs").is_none(), "not listed yet: unknown");
        foreign.write().unwrap().apply(&watcher::Event::InitDone);
        assert!(children.holder(&kind, Some("acme-prod"), "theirs").is_none(), "ours not listed yet either");
        let mut quota = quota("h", "1", vec![]);
        quota.metadata.namespace = Some("acme-prod".into());
        ours.write().unwrap().apply(&watcher::Event::InitDone);
        ours.write().unwrap().apply(&watcher::Event::Apply(quota));
        assert!(matches!(children.holder(&kind, Some("acme-prod"), "theirs"), Some(Holder::Other)));
        assert!(matches!(children.holder(&kind, Some("acme-prod"), "q"), Some(Holder::Ours(_))));
        assert!(matches!(children.holder(&kind, Some("acme-prod"), "free"), Some(Holder::Free)));
        assert!(
            matches!(children.holder(&kind, Some("other"), "theirs"), Some(Holder::Free)),
            "names are per namespace"
        );
        // A relist drops names gone while the watch was down.
        foreign.write().unwrap().apply(&watcher::Event::Init);
        foreign.write().unwrap().apply(&watcher::Event::InitDone);
        assert!(matches!(children.holder(&kind, Some("acme-prod"), "theirs"), Some(Holder::Free)));
        foreign.write().unwrap().apply(&watcher::Event::Apply(meta("late")));
        assert!(matches!(children.holder(&kind, Some("acme-prod"), "late"), Some(Holder::Other)));
        foreign.write().unwrap().apply(&watcher::Event::Delete(meta("late")));
        assert!(matches!(children.holder(&kind, Some("acme-prod"), "late"), Some(Holder::Free)));
    }

    #[test]
    fn status_kinds_keep_status_and_what_reporting_reads() {
        let deployment = object(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "c"}], "nodeSelector": {"x": "y"}}}},
            "status": {"readyReplicas": 2}}));
        let kept = trimmed(deployment.clone(), "Deployment");
        assert_eq!(
            kept.data,
            json!({"spec": {"replicas": 3, "template": {"spec": {"nodeSelector": {"x": "y"}}}}, "status": {"readyReplicas": 2}})
        );
        assert_eq!(trimmed(deployment, "Service").data, json!({}));
    }

    #[test]
    fn only_owner_labels_and_the_hash_are_cached() {
        let service = object(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web",
            "labels": {MANAGED_BY: OPERATOR, WORKLOAD: "web", "app.kubernetes.io/name": "web"},
            "annotations": {APPLIED_HASH: "h", "kubectl.kubernetes.io/last-applied-configuration": "{...}"}}}));
        let kept = trimmed(service, "Service");
        assert_eq!(kept.labels().keys().collect::<Vec<_>>(), [MANAGED_BY, WORKLOAD]);
        assert_eq!(kept.annotations().keys().collect::<Vec<_>>(), [APPLIED_HASH]);
    }
}
