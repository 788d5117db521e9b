//! Prometheus metrics, served on `/metrics` next to the probes.
//!
//! One registry per process: reconciles by controller and result, reconcile durations, objects
//! managed by kind, API requests by verb, and whether this replica leads.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    controller: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabel {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerbLabel {
    verb: String,
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    durations: Family<ControllerLabel, Histogram>,
    managed: Family<KindLabel, Gauge>,
    api_requests: Family<VerbLabel, Counter>,
    leader: Gauge,
    /// Children per owner and kind, so that the per-kind gauge is a sum over owners.
    owned: Mutex<Owned>,
}

#[derive(Default)]
struct Owned {
    by_owner: HashMap<String, HashMap<String, i64>>,
    /// Sum over owners, kept up to date as owners change (no pass over every owner).
    totals: HashMap<String, i64>,
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("scs_operator");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let durations = Family::<ControllerLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        let managed = Family::<KindLabel, Gauge>::default();
        let api_requests = Family::<VerbLabel, Counter>::default();
        let leader = Gauge::default();
        registry.register("reconciles", "Reconciles by controller and result", reconciles.clone());
        registry.register("reconcile_duration_seconds", "Time spent in one reconcile", durations.clone());
        registry.register("managed_objects", "Objects the operator manages, by kind", managed.clone());
        registry.register("api_requests", "Requests to the Kubernetes API by verb", api_requests.clone());
        registry.register("leader", "1 when this replica holds the lease (or runs without election)", leader.clone());
        Self { registry, reconciles, durations, managed, api_requests, leader, owned: Mutex::default() }
    }

    /// Records one reconcile.
    pub fn reconciled(&self, controller: &str, ok: bool, took: Duration) {
        let result = if ok { "success" } else { "error" };
        self.reconciles.get_or_create(&ReconcileLabels { controller: controller.into(), result: result.into() }).inc();
        self.durations.get_or_create(&ControllerLabel { controller: controller.into() }).observe(took.as_secs_f64());
    }

    /// Sets how many objects of each kind `owner` has; an empty map forgets the owner.
    pub fn owns(&self, owner: &str, counts: &HashMap<String, i64>) {
        let mut owned = self.owned.lock().expect("metrics lock");
        let Owned { by_owner, totals } = &mut *owned;
        let before = by_owner.remove(owner).unwrap_or_default();
        for (kind, count) in &before {
            *totals.entry(kind.clone()).or_default() -= count;
        }
        for (kind, count) in counts {
            *totals.entry(kind.clone()).or_default() += count;
        }
        for kind in before.keys().chain(counts.keys()) {
            self.managed.get_or_create(&KindLabel { kind: kind.clone() }).set(totals[kind]);
        }
        if !counts.is_empty() {
            by_owner.insert(owner.to_string(), counts.clone());
        }
    }

    /// Counts one API request.
    pub fn api_request(&self, verb: &str) {
        self.api_requests.get_or_create(&VerbLabel { verb: verb.into() }).inc();
    }

    /// Whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Requests of the operator's client with `verb` so far.
    pub fn api_requests(&self, verb: &str) -> u64 {
        self.api_requests.get_or_create(&VerbLabel { verb: verb.into() }).get()
    }

    /// Reconciles of `controller` so far, whatever their result.
    pub fn reconciles(&self, controller: &str) -> u64 {
        ["success", "error"]
            .iter()
            .map(|result| {
                let labels = ReconcileLabels { controller: controller.into(), result: (*result).into() };
                self.reconciles.get_or_create(&labels).get()
            })
            .sum()
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("encoding to a String");
        text
    }
}

/// Children by kind, for [`Metrics::owns`].
pub fn count_by_kind(children: &[crate::builders::Child]) -> HashMap<String, i64> {
    let mut counts = HashMap::new();
    for child in children {
        *counts.entry(child.kind.clone()).or_default() += 1;
    }
    counts
}

/// The verb of an API request, as the API server's audit log names it.
pub fn verb_of(method: &http::Method, uri: &http::Uri) -> &'static str {
    let query = uri.query().unwrap_or("");
    let watch = query.split('&').any(|p| p == "watch=true" || p == "watch=1");
    // A collection path ends in the resource: /api/v1/pods, /apis/g/v/namespaces/ns/pods.
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let after_version = if segments.first() == Some(&"api") { 2 } else { 3 };
    let rest = segments.len().saturating_sub(after_version);
    let collection = match rest {
        1 => true,
        3 => segments[after_version] == "namespaces",
        _ => false,
    };
    match *method {
        http::Method::GET if watch => "watch",
        http::Method::GET if collection => "list",
        http::Method::GET => "get",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "other",
    }
}

/// A client layer counting every request by verb.
pub fn api_request_layer<B>() -> tower::util::MapRequestLayer<fn(http::Request<B>) -> http::Request<B>> {
    fn count<B>(request: http::Request<B>) -> http::Request<B> {
        metrics().api_request(verb_of(request.method(), request.uri()));
        request
    }
    tower::util::MapRequestLayer::new(count::<B> as fn(http::Request<B>) -> http::Request<B>)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_from_requests() {
        let verb = |method: http::Method, uri: &str| verb_of(&method, &uri.parse().unwrap());
        assert_eq!(verb(http::Method::GET, "/api/v1/namespaces"), "list");
        assert_eq!(verb(http::Method::GET, "/api/v1/namespaces/acme"), "get");
        assert_eq!(verb(http::Method::GET, "/api/v1/namespaces/acme/resourcequotas"), "list");
        assert_eq!(verb(http::Method::GET, "/api/v1/namespaces/acme/resourcequotas/q"), "get");
        assert_eq!(verb(http::Method::GET, "/apis/scs.dev/v1alpha1/tenants?watch=true&resourceVersion=1"), "watch");
        assert_eq!(verb(http::Method::GET, "/apis/apps/v1/namespaces/n/deployments"), "list");
        assert_eq!(verb(http::Method::PATCH, "/apis/scs.dev/v1alpha1/tenants/acme/status"), "patch");
    }

    #[test]
    fn exposition_has_every_family() {
        let metrics = metrics();
        metrics.reconciled("tenant", true, Duration::from_millis(3));
        metrics.owns("Tenant/acme", &HashMap::from([("Namespace".to_string(), 2)]));
        metrics.api_request("get");
        metrics.set_leader(true);
        let text = metrics.encode();
        for line in [
            "scs_operator_reconciles_total{controller=\"tenant\",result=\"success\"}",
            "scs_operator_reconcile_duration_seconds_bucket{",
            "scs_operator_managed_objects{kind=\"Namespace\"} 2",
            "scs_operator_api_requests_total{verb=\"get\"}",
            "scs_operator_leader 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
