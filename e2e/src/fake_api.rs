//! An in-process fake Kubernetes API server.
//!
//! It stores objects of any resource in memory and serves, over HTTP/1.1 on 127.0.0.1:
//! GET, LIST and WATCH (resourceVersion, label selectors, metadata-only responses), POST,
//! PUT, PATCH (server-side apply, JSON merge, strategic merge treated as JSON merge, JSON patch),
//! DELETE with finalizers and `deletionTimestamp`, and the `status` subresource. Tests can inject
//! errors (the next K requests matching a method and path fail with a status code), delay
//! requests (answered only after a while) and read a log of every request.
//!
//! What it does NOT emulate — keep this list true:
//! - admission of any kind: no schema or CEL validation, no defaulting, no RBAC, no webhooks,
//!   no Pod Security, no quota enforcement;
//! - real server-side apply field ownership: an apply is a JSON merge of the applied object into
//!   the live one, so fields dropped from an applied configuration are not removed. Conflicts are
//!   approximated: a non-forced apply that changes a leaf field (lists count as leaves) last
//!   written by another field manager fails with 409;
//! - garbage collection in full: deleting an object deletes its dependents (owner references by
//!   UID) at once, in the background style, with no orphan or foreground propagation, and
//!   namespace deletion removes the namespace's objects at once (the real namespace controller is
//!   asynchronous and honours finalizers);
//! - the controllers of built-in kinds: no Deployment ever gets pods or status unless a test sets
//!   it (`set_status`);
//! - watch details: no bookmarks; the history of changes is a window of the latest
//!   [`HISTORY_WINDOW`] events (a watch from an older version gets a `410 Gone` ERROR event, as
//!   from a real API server, and the client must list again); an object that stops matching a
//!   label selector is not reported as DELETED to that watch;
//! - discovery, field selectors, `dryRun`, and the status semantics of kinds without a status
//!   subresource;
//! - consistent pagination: lists honour `limit` and `continue` (except with
//!   `resourceVersion=0`, answered in one page as from the watch cache unless the environment has
//!   `FAKE_PAGE_ALL_LISTS=1`), but a later page shows the
//!   objects as they are when it is asked for (not as of the first page); every page carries the
//!   first page's resource version, so a watch started from it replays what changed meanwhile.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

type Body = BoxBody<Bytes, Infallible>;

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Whether it asked for a watch stream.
    pub watch: bool,
}

impl RequestRecord {
    /// POST, PUT, PATCH and DELETE.
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
    }
}

/// Where a request points.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Collection {
    /// `api/v1` or `apis/<group>/<version>`.
    group_version: String,
    /// Plural resource name.
    resource: String,
}

#[derive(Clone, Debug)]
struct Target {
    collection: Collection,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

#[derive(Clone, Debug)]
struct WatchRecord {
    resource_version: u64,
    collection: Collection,
    event_type: &'static str,
    /// Shared: every watcher receives a clone of the record.
    object: Arc<Value>,
}

/// Watch events kept for watches that resume from a resource version.
pub const HISTORY_WINDOW: usize = 100_000;

/// Labels whose values are indexed, so that lists selecting on them (`key=value`) read only the
/// matching objects instead of scanning the collection: the labels our controllers select by.
const INDEXED_LABELS: [&str; 2] = ["scs.dev/tenant", "scs.dev/workload"];

struct Failure {
    method: String,
    path_contains: String,
    remaining: usize,
    code: u16,
    /// The Status message (and reason) answered; `injected failure` when not given.
    message: Option<(String, String)>,
}

/// Requests held for a while before they are served (a slow API server).
struct Delay {
    method: String,
    path_contains: String,
    remaining: usize,
    by: Duration,
}

/// Which field manager last wrote each leaf field of an object (lists count as leaves).
type FieldOwners = BTreeMap<String, String>;

#[derive(Default)]
struct Store {
    objects: BTreeMap<Collection, BTreeMap<(String, String), Value>>,
    owners: BTreeMap<(Collection, String, String), FieldOwners>,
    resource_version: u64,
    /// The latest watch events, oldest first.
    history: VecDeque<WatchRecord>,
    /// Resource version of the newest event dropped from `history` (0: none dropped).
    history_floor: u64,
    history_window: usize,
    /// `(collection, "key=value")` → keys of the objects carrying that label (see [`INDEXED_LABELS`]).
    label_index: HashMap<(Collection, String), BTreeSet<(String, String)>>,
    uid: u64,
}

impl Store {
    fn index(&mut self, collection: &Collection, key: &(String, String), object: &Value, add: bool) {
        let Some(labels) = object["metadata"]["labels"].as_object() else { return };
        for label in INDEXED_LABELS {
            let Some(value) = labels.get(label).and_then(Value::as_str) else { continue };
            let entry = (collection.clone(), format!("{label}={value}"));
            if add {
                self.label_index.entry(entry).or_default().insert(key.clone());
            } else if let Some(keys) = self.label_index.get_mut(&entry) {
                keys.remove(key);
                if keys.is_empty() {
                    self.label_index.remove(&entry);
                }
            }
        }
    }

    /// Keys of the objects of `collection` that may match `selector`: from the label index when
    /// the selector requires an indexed label's value, else `None` (scan everything).
    fn indexed_candidates(&self, collection: &Collection, selector: &str) -> Option<Vec<(String, String)>> {
        let requirement = selector.split(',').find_map(|requirement| {
            if requirement.contains("!=") {
                return None;
            }
            let (key, value) = requirement.split_once("==").or_else(|| requirement.split_once('='))?;
            INDEXED_LABELS.contains(&key.trim()).then(|| format!("{}={}", key.trim(), value.trim()))
        })?;
        let keys = self.label_index.get(&(collection.clone(), requirement));
        Some(keys.map(|k| k.iter().cloned().collect()).unwrap_or_default())
    }
}

struct State {
    store: Mutex<Store>,
    events: broadcast::Sender<WatchRecord>,
    requests: Mutex<Vec<RequestRecord>>,
    failures: Mutex<Vec<Failure>>,
    delays: Mutex<Vec<Delay>>,
}

/// A running fake API server; stops when dropped.
pub struct FakeApiServer {
    address: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApiServer {
    /// Starts a server on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let address = listener.local_addr().expect("local address");
        let (events, _) = broadcast::channel(65_536);
        let store = Store { history_window: HISTORY_WINDOW, ..Store::default() };
        let state = Arc::new(State {
            store: Mutex::new(store),
            events,
            requests: Mutex::default(),
            failures: Mutex::default(),
            delays: Mutex::default(),
        });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(state.clone(), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { address, state, task }
    }

    /// Keeps only the latest `events` watch events (default [`HISTORY_WINDOW`]); watches from older
    /// versions are answered `410 Gone`.
    pub fn set_history_window(&self, events: usize) {
        let mut store = self.state.store.lock().unwrap();
        store.history_window = events.max(1);
        trim_history(&mut store);
    }

    /// Where the server listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// A real `kube::Client` talking to this server.
    pub fn client(&self) -> kube::Client {
        let url = format!("http://{}", self.address).parse().expect("url");
        let mut config = kube::Config::new(url);
        config.read_timeout = Some(Duration::from_secs(30));
        kube::Client::try_from(config).expect("client")
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.state.requests.lock().unwrap().clear();
    }

    /// Writes in the request log whose path contains `path_contains` (all writes for "").
    pub fn writes(&self, path_contains: &str) -> Vec<RequestRecord> {
        self.requests().into_iter().filter(|r| r.is_write() && r.path.contains(path_contains)).collect()
    }

    /// The next `count` requests with `method` whose path contains `path_contains` fail with `code`.
    pub fn fail_next(&self, method: &str, path_contains: &str, count: usize, code: u16) {
        self.state.failures.lock().unwrap().push(Failure {
            method: method.into(),
            path_contains: path_contains.into(),
            remaining: count,
            code,
            message: None,
        });
    }

    /// Like [`Self::fail_next`], answering a Status with `reason` and `message` as the API server
    /// would (e.g. 422 `Invalid` with the field that is refused).
    pub fn fail_next_with(
        &self,
        method: &str,
        path_contains: &str,
        count: usize,
        code: u16,
        reason: &str,
        message: &str,
    ) {
        self.state.failures.lock().unwrap().push(Failure {
            method: method.into(),
            path_contains: path_contains.into(),
            remaining: count,
            code,
            message: Some((reason.into(), message.into())),
        });
    }

    /// The next `count` requests with `method` whose path contains `path_contains` are answered
    /// only after `by` (they are logged at once, so a test can see them in flight).
    pub fn delay_next(&self, method: &str, path_contains: &str, count: usize, by: Duration) {
        self.state.delays.lock().unwrap().push(Delay {
            method: method.into(),
            path_contains: path_contains.into(),
            remaining: count,
            by,
        });
    }

    /// Drops every injected failure not yet used.
    pub fn clear_failures(&self) {
        self.state.failures.lock().unwrap().clear();
    }

    /// Injected failures not yet used.
    pub fn pending_failures(&self) -> usize {
        self.state.failures.lock().unwrap().iter().map(|f| f.remaining).sum()
    }

    /// The stored object at an API path such as `/api/v1/namespaces/acme`.
    pub fn get(&self, path: &str) -> Option<Value> {
        let target = parse_path(path)?;
        let store = self.state.store.lock().unwrap();
        store.objects.get(&target.collection)?.get(&(target.namespace.unwrap_or_default(), target.name?)).cloned()
    }

    /// Every stored object of a collection path such as `/apis/rbac.authorization.k8s.io/v1/rolebindings`
    /// (all namespaces).
    pub fn list(&self, path: &str) -> Vec<Value> {
        let Some(target) = parse_path(path) else { return Vec::new() };
        let store = self.state.store.lock().unwrap();
        store.objects.get(&target.collection).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// Stores an object directly (as if another client had created it), at collection `path`.
    pub fn insert(&self, path: &str, object: Value) {
        let target = parse_path(path).expect("collection path");
        let mut store = self.state.store.lock().unwrap();
        create(&mut store, &self.state.events, &target, object).expect("insert");
    }

    /// Sets an annotation on a stored object without logging a request: a change that wakes
    /// watchers but asks nothing of the operator.
    pub fn touch(&self, path: &str, annotation: &str, value: &str) {
        let target = parse_path(path).expect("object path");
        let mut store = self.state.store.lock().unwrap();
        let key = (target.namespace.clone().unwrap_or_default(), target.name.clone().expect("name"));
        let mut object =
            store.objects.get(&target.collection).and_then(|m| m.get(&key)).cloned().expect("object exists");
        object["metadata"]["annotations"][annotation] = json!(value);
        commit(&mut store, &self.state.events, &target.collection, key, object, "MODIFIED");
    }

    /// Sets `status` of a stored object, as a controller of another kind would.
    pub fn set_status(&self, path: &str, status: Value) {
        let target = parse_path(path).expect("object path");
        let mut store = self.state.store.lock().unwrap();
        let key = (target.namespace.clone().unwrap_or_default(), target.name.clone().expect("name"));
        let mut object =
            store.objects.get(&target.collection).and_then(|m| m.get(&key)).cloned().expect("object exists");
        object["status"] = status;
        commit(&mut store, &self.state.events, &target.collection, key, object, "MODIFIED");
    }
}

fn parse_path(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group_version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => (format!("api/{version}"), rest),
        ["apis", group, version, rest @ ..] => (format!("apis/{group}/{version}"), rest),
        _ => return None,
    };
    let namespaced =
        rest.len() >= 3 && rest[0] == "namespaces" && !(rest.len() == 3 && ["status", "finalize"].contains(&rest[2]));
    let (namespace, rest) = if namespaced { (Some(rest[1].to_string()), &rest[2..]) } else { (None, rest) };
    let resource = rest.first()?.to_string();
    Some(Target {
        collection: Collection { group_version, resource },
        namespace,
        name: rest.get(1).map(|s| s.to_string()),
        subresource: rest.get(2).map(|s| s.to_string()),
    })
}

/// An API error before it becomes a `Status` response.
#[derive(Debug)]
struct ApiError {
    code: u16,
    reason: &'static str,
    message: String,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into() }
    }

    fn response(&self) -> Response<Body> {
        status_error(self.code, self.reason, &self.message)
    }
}

fn status_error(code: u16, reason: &str, message: &str) -> Response<Body> {
    let body = json!({
        "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    respond(code, &body)
}

fn respond(code: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .expect("response")
}

fn labels_match(object: &Value, selector: &str) -> bool {
    let labels = object["metadata"]["labels"].as_object();
    let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
    selector.split(',').filter(|s| !s.is_empty()).all(|requirement| {
        if let Some((key, value)) = requirement.split_once("!=") {
            label(key.trim()) != Some(value.trim())
        } else if let Some((key, value)) = requirement.split_once("==").or_else(|| requirement.split_once('=')) {
            label(key.trim()) == Some(value.trim())
        } else if let Some(key) = requirement.strip_prefix('!') {
            label(key.trim()).is_none()
        } else {
            label(requirement.trim()).is_some()
        }
    })
}

/// Reduces an object to `PartialObjectMetadata`, as the API server does for metadata-only requests.
fn as_metadata(object: &Value, metadata_only: bool) -> Value {
    if metadata_only {
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": object["metadata"]})
    } else {
        object.clone()
    }
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Stores `object` under `key`, bumping the resource version and recording a watch event.
fn commit(
    store: &mut Store,
    events: &broadcast::Sender<WatchRecord>,
    collection: &Collection,
    key: (String, String),
    mut object: Value,
    event_type: &'static str,
) -> Value {
    store.resource_version += 1;
    object["metadata"]["resourceVersion"] = json!(store.resource_version.to_string());
    let objects = store.objects.entry(collection.clone()).or_default();
    let old = if event_type == "DELETED" { objects.remove(&key) } else { objects.insert(key.clone(), object.clone()) };
    if let Some(old) = old {
        store.index(collection, &key, &old, false);
    }
    if event_type != "DELETED" {
        store.index(collection, &key, &object, true);
    }
    let record = WatchRecord {
        resource_version: store.resource_version,
        collection: collection.clone(),
        event_type,
        object: Arc::new(object.clone()),
    };
    store.history.push_back(record.clone());
    trim_history(store);
    let _ = events.send(record);
    object
}

fn trim_history(store: &mut Store) {
    while store.history.len() > store.history_window {
        if let Some(dropped) = store.history.pop_front() {
            store.history_floor = dropped.resource_version;
        }
    }
}

fn create(
    store: &mut Store,
    events: &broadcast::Sender<WatchRecord>,
    target: &Target,
    mut object: Value,
) -> Result<Value, ApiError> {
    let namespace = target.namespace.clone().unwrap_or_default();
    let name = match object["metadata"]["name"].as_str() {
        Some(name) => name.to_string(),
        None => match object["metadata"]["generateName"].as_str() {
            Some(prefix) => format!("{prefix}{:05}", store.uid + 1),
            None => return Err(ApiError::new(422, "Invalid", "metadata.name: Required value")),
        },
    };
    let key = (namespace.clone(), name.clone());
    if store.objects.get(&target.collection).is_some_and(|m| m.contains_key(&key)) {
        return Err(ApiError::new(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", target.collection.resource),
        ));
    }
    store.uid += 1;
    let metadata = &mut object["metadata"];
    metadata["name"] = json!(name);
    if target.namespace.is_some() {
        metadata["namespace"] = json!(namespace);
    }
    metadata["uid"] = json!(format!("00000000-0000-0000-0000-{:012}", store.uid));
    metadata["creationTimestamp"] = json!(now());
    metadata["generation"] = json!(1);
    Ok(commit(store, events, &target.collection, key, object, "ADDED"))
}

/// Writes `next` over `current`: server-owned metadata is kept, `status` changes only through the
/// status subresource, unchanged objects are not rewritten, and an object being deleted goes away
/// once its last finalizer is removed.
fn update(
    store: &mut Store,
    events: &broadcast::Sender<WatchRecord>,
    target: &Target,
    current: Value,
    mut next: Value,
) -> Value {
    let key = (target.namespace.clone().unwrap_or_default(), target.name.clone().unwrap_or_default());
    if target.subresource.as_deref() == Some("status") {
        let status = next.get("status").cloned();
        next = current.clone();
        match status {
            Some(status) => next["status"] = status,
            None => {
                next.as_object_mut().map(|o| o.remove("status"));
            }
        }
    } else {
        match current.get("status") {
            Some(status) => next["status"] = status.clone(),
            None => {
                next.as_object_mut().map(|o| o.remove("status"));
            }
        }
    }
    for field in ["uid", "creationTimestamp", "generation", "deletionTimestamp", "resourceVersion"] {
        match current["metadata"].get(field) {
            Some(value) => next["metadata"][field] = value.clone(),
            None => {
                next["metadata"].as_object_mut().map(|m| m.remove(field));
            }
        }
    }
    if next == current {
        return current;
    }
    let spec_changed = {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("metadata");
                o.remove("status");
            }
            v
        };
        strip(&next) != strip(&current)
    };
    if spec_changed {
        let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
        next["metadata"]["generation"] = json!(generation + 1);
    }
    let deleting = next["metadata"].get("deletionTimestamp").is_some();
    let finalizers_left = next["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
    if deleting && !finalizers_left {
        return commit(store, events, &target.collection, key, next, "DELETED");
    }
    commit(store, events, &target.collection, key, next, "MODIFIED")
}

fn delete(store: &mut Store, events: &broadcast::Sender<WatchRecord>, target: &Target, current: Value) -> Value {
    let key = (target.namespace.clone().unwrap_or_default(), target.name.clone().unwrap_or_default());
    let finalizers_left = current["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
    if finalizers_left {
        if current["metadata"].get("deletionTimestamp").is_some() {
            return current;
        }
        let mut next = current;
        next["metadata"]["deletionTimestamp"] = json!(now());
        return commit(store, events, &target.collection, key, next, "MODIFIED");
    }
    let uid = current["metadata"]["uid"].clone();
    let deleted = commit(store, events, &target.collection, key.clone(), current, "DELETED");
    // Stand-in for the garbage collector: dependents go with their owner.
    let dependents: Vec<(Collection, (String, String), Value)> = store
        .objects
        .iter()
        .flat_map(|(c, objects)| objects.iter().map(move |(k, v)| (c.clone(), k.clone(), v.clone())))
        .filter(|(_, _, v)| {
            v["metadata"]["ownerReferences"].as_array().is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
        })
        .collect();
    for (collection, (namespace, name), object) in dependents {
        let target = Target {
            collection,
            namespace: (!namespace.is_empty()).then_some(namespace),
            name: Some(name),
            subresource: None,
        };
        delete(store, events, &target, object);
    }
    if target.collection.group_version == "api/v1" && target.collection.resource == "namespaces" {
        // Stand-in for the namespace controller: everything in the namespace goes with it.
        let inside: Vec<(Collection, (String, String), Value)> = store
            .objects
            .iter()
            .flat_map(|(c, objects)| {
                objects.iter().filter(|((ns, _), _)| *ns == key.1).map(|(k, v)| (c.clone(), k.clone(), v.clone()))
            })
            .collect();
        for (collection, key, object) in inside {
            commit(store, events, &collection, key, object, "DELETED");
        }
    }
    deleted
}

fn injected_failure(state: &State, method: &str, path: &str) -> Option<(u16, Option<(String, String)>)> {
    let mut failures = state.failures.lock().unwrap();
    let failure =
        failures.iter_mut().find(|f| f.remaining > 0 && f.method == method && path.contains(&f.path_contains))?;
    failure.remaining -= 1;
    Some((failure.code, failure.message.clone()))
}

async fn handle(state: Arc<State>, request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query: BTreeMap<String, String> =
        form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
    let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    state.requests.lock().unwrap().push(RequestRecord {
        method: method.to_string(),
        path: path.clone(),
        query: request.uri().query().unwrap_or("").to_string(),
        watch,
    });
    if path == "/_fake/count" {
        return Ok(count_response(&state, &query));
    }
    if path == "/_fake/writes" || path == "/_fake/reads" {
        // Requests so far by method and resource, for harnesses that run the server in a process.
        let writes = path == "/_fake/writes";
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for record in state.requests.lock().unwrap().iter().filter(|r| r.is_write() == writes) {
            let resource = parse_path(&record.path).map(|t| {
                let sub = t.subresource.map(|s| format!("/{s}")).unwrap_or_default();
                let whole = if t.name.is_none() && !record.watch {
                    " (list)"
                } else if record.watch {
                    " (watch)"
                } else {
                    ""
                };
                format!("{}{sub}{whole}", t.collection.resource)
            });
            *counts.entry(format!("{} {}", record.method, resource.unwrap_or_default())).or_default() += 1;
        }
        return Ok(respond(200, &json!(counts)));
    }
    let delay = {
        let mut delays = state.delays.lock().unwrap();
        delays
            .iter_mut()
            .find(|d| d.remaining > 0 && d.method == method.as_str() && path.contains(&d.path_contains))
            .map(|d| {
                d.remaining -= 1;
                d.by
            })
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if let Some((code, message)) = injected_failure(&state, method.as_str(), &path) {
        if let Some((reason, message)) = message {
            return Ok(status_error(code, &reason, &message));
        }
        let reason = if code == 409 { "Conflict" } else { "InternalError" };
        return Ok(status_error(code, reason, "injected failure"));
    }
    let Some(target) = parse_path(&path) else {
        return Ok(status_error(404, "NotFound", &format!("no route for {path}")));
    };
    let metadata_only = request
        .headers()
        .get("accept")
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    let content_type = request.headers().get("content-type").and_then(|c| c.to_str().ok()).unwrap_or("").to_string();
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(status_error(400, "BadRequest", "unreadable body")),
    };
    let selector = query.get("labelSelector").cloned().unwrap_or_default();

    if method == Method::GET && target.name.is_none() {
        return Ok(if watch {
            watch_response(&state, &target, &query, &selector, metadata_only)
        } else {
            list_response(&state, &target, &query, &selector, metadata_only)
        });
    }
    let mut store = state.store.lock().unwrap();
    let key = (target.namespace.clone().unwrap_or_default(), target.name.clone().unwrap_or_default());
    let current = store.objects.get(&target.collection).and_then(|m| m.get(&key)).cloned();
    let parsed = || {
        serde_json::from_slice::<Value>(&body)
            .map_err(|e| ApiError::new(400, "BadRequest", format!("body is not JSON: {e}")))
    };
    let not_found = || status_error(404, "NotFound", &format!("{} {:?} not found", target.collection.resource, key.1));
    let response = match method {
        Method::GET => match current {
            Some(object) => respond(200, &as_metadata(&object, metadata_only)),
            None => not_found(),
        },
        Method::POST => match parsed().and_then(|object| {
            let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
            let owner_key = (target.collection.clone(), target.namespace.clone().unwrap_or_default(), name.clone());
            store.owners.remove(&owner_key);
            let manager = query.get("fieldManager").cloned().unwrap_or_default();
            record_owners(&mut store, &target, &name, &object, &manager);
            create(&mut store, &state.events, &target, object)
        }) {
            Ok(created) => respond(201, &created),
            Err(error) => error.response(),
        },
        Method::PUT => match (current, parsed()) {
            (None, _) => not_found(),
            (_, Err(error)) => error.response(),
            (Some(current), Ok(next)) => {
                let stale = next["metadata"]["resourceVersion"]
                    .as_str()
                    .is_some_and(|rv| Some(rv) != current["metadata"]["resourceVersion"].as_str());
                if stale {
                    status_error(
                        409,
                        "Conflict",
                        "the object has been modified; please apply your changes to the latest version",
                    )
                } else {
                    respond(200, &update(&mut store, &state.events, &target, current, next))
                }
            }
        },
        Method::PATCH => match parsed() {
            Err(error) => error.response(),
            Ok(patch) => {
                let manager = query.get("fieldManager").cloned().unwrap_or_default();
                let force = query.get("force").is_some_and(|f| f == "true");
                patch_object(&mut store, &state, &target, current, patch, &content_type, &manager, force)
            }
        },
        Method::DELETE => match current {
            Some(current) => respond(200, &delete(&mut store, &state.events, &target, current)),
            None => not_found(),
        },
        _ => status_error(405, "MethodNotAllowed", "method not allowed"),
    };
    Ok(response)
}

/// Leaf paths of `value` with their values (objects descend, everything else is a leaf).
fn leaves(value: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
    match value.as_object() {
        Some(fields) if !fields.is_empty() => {
            for (key, child) in fields {
                leaves(child, &format!("{prefix}.{key}"), out);
            }
        }
        _ => out.push((prefix.to_string(), value.clone())),
    }
}

fn written_fields(patch: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    leaves(patch, "", &mut out);
    out.retain(|(path, _)| {
        !matches!(path.as_str(), ".apiVersion" | ".kind" | ".metadata.name" | ".metadata.namespace")
    });
    out
}

/// A non-forced apply may not change a field another manager wrote last.
fn apply_conflicts(owners: Option<&FieldOwners>, live: &Value, patch: &Value, manager: &str) -> Vec<String> {
    let Some(owners) = owners else { return Vec::new() };
    written_fields(patch)
        .into_iter()
        .filter(|(path, value)| {
            let pointer = path.replace('.', "/");
            let changes = live.pointer(&pointer) != Some(value);
            changes && owners.get(path).is_some_and(|owner| owner != manager)
        })
        .map(|(path, _)| format!("conflict with {:?}: {path}", owners[&path]))
        .collect()
}

/// Records `manager` as the writer of the fields `patch` sets, and forgets fields it removes.
fn record_owners(store: &mut Store, target: &Target, name: &str, patch: &Value, manager: &str) {
    let key = (target.collection.clone(), target.namespace.clone().unwrap_or_default(), name.to_string());
    let owners = store.owners.entry(key).or_default();
    for (path, value) in written_fields(patch) {
        if value.is_null() {
            owners.remove(&path);
        } else {
            owners.insert(path, manager.to_string());
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn patch_object(
    store: &mut Store,
    state: &State,
    target: &Target,
    current: Option<Value>,
    patch: Value,
    content_type: &str,
    manager: &str,
    force: bool,
) -> Response<Body> {
    let apply = content_type.starts_with("application/apply-patch");
    let name = target.name.clone().unwrap_or_default();
    if let Some(live) = &current
        && apply
        && !force
    {
        let owner_key = (target.collection.clone(), target.namespace.clone().unwrap_or_default(), name.clone());
        let conflicts = apply_conflicts(store.owners.get(&owner_key), live, &patch, manager);
        if !conflicts.is_empty() {
            return status_error(
                409,
                "Conflict",
                &format!("Apply failed with {} conflict(s): {}", conflicts.len(), conflicts.join("; ")),
            );
        }
    }
    if !content_type.starts_with("application/json-patch") {
        record_owners(store, target, &name, &patch, manager);
    }
    let Some(current) = current else {
        if apply && target.subresource.is_none() {
            let owner_key = (target.collection.clone(), target.namespace.clone().unwrap_or_default(), name.clone());
            store.owners.remove(&owner_key);
            record_owners(store, target, &name, &patch, manager);
            return match create(store, &state.events, target, patch) {
                Ok(created) => respond(201, &created),
                Err(error) => error.response(),
            };
        }
        return status_error(404, "NotFound", &format!("{} not found", target.collection.resource));
    };
    let mut next = current.clone();
    if content_type.starts_with("application/json-patch") {
        let operations: json_patch::Patch = match serde_json::from_value(patch) {
            Ok(operations) => operations,
            Err(e) => return status_error(400, "BadRequest", &format!("invalid JSON patch: {e}")),
        };
        // Like the API server, `test` of a missing path against null succeeds.
        let mut kept = Vec::new();
        for operation in operations.0 {
            if let json_patch::PatchOperation::Test(test) = &operation
                && test.value.is_null()
            {
                if next.pointer(test.path.as_str()).is_some_and(|v| !v.is_null()) {
                    return status_error(422, "Invalid", &format!("test failed at {}", test.path));
                }
                continue;
            }
            kept.push(operation);
        }
        let operations = json_patch::Patch(kept);
        if let Err(e) = json_patch::patch(&mut next, &operations) {
            return status_error(422, "Invalid", &format!("JSON patch failed: {e}"));
        }
    } else {
        // Server-side apply, JSON merge and strategic merge: a JSON merge (see module docs).
        json_patch::merge(&mut next, &patch);
    }
    respond(200, &update(store, &state.events, target, current, next))
}

fn in_scope(target: &Target, object: &Value, selector: &str) -> bool {
    let namespace_ok =
        target.namespace.as_deref().is_none_or(|ns| object["metadata"]["namespace"].as_str() == Some(ns));
    namespace_ok && labels_match(object, selector)
}

/// Like the API server, list items of built-in kinds carry no `apiVersion` or `kind` (custom
/// resources, stored unstructured, keep theirs).
fn without_item_types(collection: &Collection, mut item: Value) -> Value {
    let group = collection.group_version.split('/').nth(1).unwrap_or("");
    let built_in = collection.group_version.starts_with("api/")
        || ["apps", "batch", "autoscaling", "policy"].contains(&group)
        || group.ends_with(".k8s.io");
    if built_in && let Some(fields) = item.as_object_mut() {
        fields.remove("apiVersion");
        fields.remove("kind");
    }
    item
}

/// Objects of `target`'s collection (its namespace only, when namespaced) matching `selector`,
/// in key order, read under the lock: from the label index when the selector allows, else by
/// scanning.
fn select(store: &Store, target: &Target, selector: &str) -> Vec<Value> {
    select_page(store, target, selector, None, usize::MAX).0
}

/// One page of [`select`]: at most `limit` objects with keys after `after`, and whether more follow.
fn select_page(
    store: &Store,
    target: &Target,
    selector: &str,
    after: Option<&(String, String)>,
    limit: usize,
) -> (Vec<Value>, bool) {
    let empty = BTreeMap::new();
    let objects = store.objects.get(&target.collection).unwrap_or(&empty);
    let after_ok = |key: &(String, String)| after.is_none_or(|a| key > a);
    let mut matching: Box<dyn Iterator<Item = &Value>> = if let Some(keys) =
        store.indexed_candidates(&target.collection, selector)
    {
        Box::new(
            keys.into_iter()
                .filter(|key| after_ok(key) && target.namespace.as_ref().is_none_or(|want| *want == key.0))
                .filter_map(|key| objects.get(&key))
                .filter(|o| labels_match(o, selector))
                .collect::<Vec<_>>()
                .into_iter(),
        )
    } else {
        // Objects are keyed by (namespace, name): a namespaced list reads only its namespace's range.
        let candidates: Box<dyn Iterator<Item = (&(String, String), &Value)>> = match &target.namespace {
            Some(ns) => Box::new(objects.range((ns.clone(), String::new())..).take_while(move |((n, _), _)| n == ns)),
            None => Box::new(objects.iter()),
        };
        Box::new(candidates.filter(move |(k, o)| after_ok(k) && labels_match(o, selector)).map(|(_, o)| o))
    };
    let page: Vec<Value> = matching.by_ref().take(limit).cloned().collect();
    let more = matching.next().is_some();
    (page, more)
}

fn list_response(
    state: &State,
    target: &Target,
    query: &BTreeMap<String, String>,
    selector: &str,
    metadata_only: bool,
) -> Response<Body> {
    // Like the API server answering from its watch cache, `resourceVersion=0` ("any version")
    // ignores `limit`: one page (kube's watchers list this way by default). FAKE_PAGE_ALL_LISTS=1
    // pages those too, as newer API servers can.
    let from_cache =
        query.get("resourceVersion").is_some_and(|v| v == "0") && std::env::var_os("FAKE_PAGE_ALL_LISTS").is_none();
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0 && !from_cache)
        .unwrap_or(usize::MAX);
    // `continue`: "<resource version of the first page>/<namespace>/<name of the last item sent>".
    let continued = query.get("continue").filter(|c| !c.is_empty()).map(|token| {
        let mut parts = token.splitn(3, '/');
        let version = parts.next().and_then(|v| v.parse::<u64>().ok());
        let key = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        (version, key)
    });
    if let Some((None, _)) = continued {
        return status_error(400, "BadRequest", "malformed continue token");
    }
    let (selected, more, resource_version) = {
        let store = state.store.lock().unwrap();
        let after = continued.as_ref().map(|(_, key)| key);
        let (page, more) = select_page(&store, target, selector, after, limit);
        let version = continued.as_ref().and_then(|(v, _)| *v).unwrap_or(store.resource_version);
        (page, more, version)
    };
    let next = selected.last().filter(|_| more).map(|last| {
        let namespace = last["metadata"]["namespace"].as_str().unwrap_or("");
        format!("{resource_version}/{namespace}/{}", last["metadata"]["name"].as_str().unwrap_or(""))
    });
    // Encoded outside the lock: other requests need not wait for a large answer.
    let items: Vec<Value> =
        selected.iter().map(|o| without_item_types(&target.collection, as_metadata(o, metadata_only))).collect();
    let kind = if metadata_only { "PartialObjectMetadataList" } else { "List" };
    let api_version = if metadata_only { "meta.k8s.io/v1" } else { "v1" };
    respond(
        200,
        &json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"resourceVersion": resource_version.to_string(), "continue": next},
            "items": items,
        }),
    )
}

/// Test-only `GET /_fake/count?path=<collection path>[&labelSelector=..][&phase=P][&condition=T]`:
/// how many objects match, counting only those whose `status.phase` is `P` and whose condition
/// `T` is `True` (with `observedGeneration`, when the status has one, equal to the object's
/// generation). Lets a harness wait for thousands of objects without listing them.
fn count_response(state: &State, query: &BTreeMap<String, String>) -> Response<Body> {
    let Some(target) = query.get("path").and_then(|p| parse_path(p)) else {
        return status_error(400, "BadRequest", "path: a collection path is required");
    };
    let selector = query.get("labelSelector").cloned().unwrap_or_default();
    let phase = query.get("phase");
    let condition = query.get("condition");
    let store = state.store.lock().unwrap();
    let counted = |o: &Value| {
        let status = &o["status"];
        let current = status.get("observedGeneration").is_none_or(|g| *g == o["metadata"]["generation"]);
        let phase_ok = phase.is_none_or(|p| status["phase"].as_str() == Some(p.as_str()));
        let condition_ok = condition.is_none_or(|t| {
            current
                && status["conditions"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["type"] == t.as_str() && c["status"] == "True"))
        });
        phase_ok && condition_ok
    };
    let count = match store.indexed_candidates(&target.collection, &selector) {
        Some(_) => select(&store, &target, &selector).iter().filter(|o| counted(o)).count(),
        None => {
            let empty = BTreeMap::new();
            let objects = store.objects.get(&target.collection).unwrap_or(&empty);
            objects
                .values()
                .filter(|o| target.namespace.as_ref().is_none_or(|ns| o["metadata"]["namespace"] == ns.as_str()))
                .filter(|o| labels_match(o, &selector) && counted(o))
                .count()
        }
    };
    respond(200, &json!({"count": count}))
}

fn watch_response(
    state: &State,
    target: &Target,
    query: &BTreeMap<String, String>,
    selector: &str,
    metadata_only: bool,
) -> Response<Body> {
    let since: u64 = query.get("resourceVersion").and_then(|rv| rv.parse().ok()).unwrap_or(0);
    let timeout = query.get("timeoutSeconds").and_then(|t| t.parse().ok()).unwrap_or(300u64);
    // Snapshot the history and subscribe under one lock, so no event falls between them.
    let (backlog, receiver) = {
        let store = state.store.lock().unwrap();
        if since != 0 && since < store.history_floor {
            // Like a real API server: the version is older than the history kept. The client
            // must list again.
            drop(store);
            let gone = json!({"type": "ERROR", "object": {
                "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                "message": format!("too old resource version: {since}"), "reason": "Expired", "code": 410}});
            return Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(gone.to_string() + "\n")).boxed())
                .expect("response");
        }
        let backlog: Vec<WatchRecord> = if since == 0 {
            // No version: synthetic ADDED events for the current objects, then changes.
            store
                .objects
                .get(&target.collection)
                .into_iter()
                .flat_map(|m| m.values())
                .map(|o| WatchRecord {
                    resource_version: store.resource_version,
                    collection: target.collection.clone(),
                    event_type: "ADDED",
                    object: Arc::new(o.clone()),
                })
                .collect()
        } else {
            let first = store.history.partition_point(|r| r.resource_version <= since);
            store.history.range(first..).filter(|r| r.collection == target.collection).cloned().collect()
        };
        (backlog, state.events.subscribe())
    };
    let target = target.clone();
    let selector = selector.to_string();
    let matches = move |record: &WatchRecord| {
        record.collection == target.collection && in_scope(&target, &record.object, &selector)
    };
    let encode = move |record: WatchRecord| {
        let line =
            json!({"type": record.event_type, "object": as_metadata(&record.object, metadata_only)}).to_string() + "\n";
        Ok::<_, Infallible>(Frame::data(Bytes::from(line)))
    };
    let matches_live = matches.clone();
    let backlog = futures::stream::iter(backlog.into_iter().filter(move |r| matches(r)));
    // A lagging watcher ends its watch, like a real API server's "too old" answer: the client
    // watches again from its last version and the history replays what it missed.
    let live = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.ok().map(|record| (record, receiver))
    })
    .filter(move |r| futures::future::ready(matches_live(r)));
    let deadline = tokio::time::sleep(Duration::from_secs(timeout));
    let stream = backlog.chain(live).take_until(deadline).map(encode);
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .expect("response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse() {
        let t = parse_path("/api/v1/namespaces/acme").unwrap();
        assert_eq!(
            (t.collection.resource.as_str(), t.namespace, t.name.as_deref()),
            ("namespaces", None, Some("acme"))
        );
        let t = parse_path("/api/v1/namespaces/acme/resourcequotas/q").unwrap();
        assert_eq!(
            (t.collection.resource.as_str(), t.namespace.as_deref(), t.name.as_deref()),
            ("resourcequotas", Some("acme"), Some("q"))
        );
        let t = parse_path("/apis/scs.dev/v1alpha1/tenants/acme/status").unwrap();
        assert_eq!(
            (t.collection.group_version.as_str(), t.subresource.as_deref()),
            ("apis/scs.dev/v1alpha1", Some("status"))
        );
        let t = parse_path("/api/v1/namespaces/acme/status").unwrap();
        assert_eq!((t.namespace, t.name.as_deref(), t.subresource.as_deref()), (None, Some("acme"), Some("status")));
    }

    fn config_map(name: &str, tenant: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "labels": {"scs.dev/tenant": tenant, "app": name}}})
    }

    #[tokio::test]
    async fn indexed_lists_follow_label_changes() {
        use k8s_openapi::api::core::v1::ConfigMap;
        use kube::api::{Api, ListParams};
        let server = FakeApiServer::start().await;
        for (name, tenant) in [("a", "acme"), ("b", "acme"), ("c", "other")] {
            server.insert("/api/v1/namespaces/ns/configmaps", config_map(name, tenant));
        }
        server.insert("/api/v1/namespaces/elsewhere/configmaps", config_map("d", "acme"));
        let names = |list: kube::core::ObjectList<ConfigMap>| {
            list.items.into_iter().map(|c| c.metadata.name.unwrap()).collect::<Vec<_>>()
        };
        let all: Api<ConfigMap> = Api::all(server.client());
        let acme = ListParams::default().labels("scs.dev/tenant=acme");
        assert_eq!(names(all.list(&acme).await.unwrap()), ["d", "a", "b"]);
        let in_ns: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
        assert_eq!(names(in_ns.list(&acme).await.unwrap()), ["a", "b"]);
        assert_eq!(names(in_ns.list(&acme.clone().labels("scs.dev/tenant=acme,app=b")).await.unwrap()), ["b"]);
        // Relabelled and deleted objects leave the index.
        let mut moved = server.get("/api/v1/namespaces/ns/configmaps/a").unwrap();
        moved["metadata"]["labels"]["scs.dev/tenant"] = json!("other");
        let request = http::Request::put("/api/v1/namespaces/ns/configmaps/a")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&moved).unwrap())
            .unwrap();
        let _: Value = server.client().request(request).await.unwrap();
        in_ns.delete("b", &Default::default()).await.unwrap();
        assert_eq!(names(in_ns.list(&acme).await.unwrap()), Vec::<String>::new());
        let other = ListParams::default().labels("scs.dev/tenant=other");
        assert_eq!(names(in_ns.list(&other).await.unwrap()), ["a", "c"]);
    }

    #[tokio::test]
    async fn a_watch_from_a_version_older_than_the_history_is_gone() {
        use futures::TryStreamExt;
        use k8s_openapi::api::core::v1::ConfigMap;
        use kube::api::{Api, WatchEvent, WatchParams};
        let server = FakeApiServer::start().await;
        server.set_history_window(2);
        for name in ["a", "b", "c", "d"] {
            server.insert("/api/v1/namespaces/ns/configmaps", config_map(name, "acme"));
        }
        let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
        // Versions 3 and 4 are kept: a watch from 2 sees both, one from 1 missed version 2.
        let mut recent = api.watch(&WatchParams::default().timeout(1), "2").await.unwrap().boxed();
        let first = recent.try_next().await.unwrap().unwrap();
        assert!(matches!(first, WatchEvent::Added(c) if c.metadata.name.as_deref() == Some("c")));
        let mut old = api.watch(&WatchParams::default().timeout(1), "1").await.unwrap().boxed();
        match old.try_next().await.unwrap().unwrap() {
            WatchEvent::Error(status) => assert_eq!((status.code, status.reason.as_str()), (410, "Expired")),
            other => panic!("expected 410 Gone, got {other:?}"),
        }
    }

    #[test]
    fn label_selectors() {
        let object = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        assert!(labels_match(&object, "a=1,b=2"));
        assert!(labels_match(&object, "a==1,!c,b"));
        assert!(!labels_match(&object, "a=2"));
        assert!(!labels_match(&object, "b!=2"));
        assert!(labels_match(&object, ""));
    }
}
