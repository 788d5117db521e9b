//! Prometheus metrics, served on `/metrics` next to the probes.
//!
//! One registry per process: reconciles by controller and result, reconcile durations, objects
//! managed by kind, API requests by verb, whether this replica leads, and per tenant its
//! workloads by phase and how full each quota entry is (series of a deleted tenant are removed).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantPhase {
    tenant: String,
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabel {
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PatrolChannel {
    patrol: String,
    channel: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantResource {
    tenant: String,
    resource: String,
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
    workloads: Family<TenantPhase, Gauge>,
    /// Workload key → its (tenant, phase), so a phase change moves one count.
    workload_phases: Mutex<HashMap<String, TenantPhase>>,
    quota_used: Family<TenantResource, Gauge<f64, AtomicU64>>,
    /// Tenant → the quota entries it has series for.
    quota_resources: Mutex<HashMap<String, Vec<String>>>,
    /// Whole days until each tenant's `spec.expiresAt` (negative once expired).
    days_left: Family<TenantLabel, Gauge>,
    /// Patrol deliveries by patrol, channel and result.
    deliveries: Family<PatrolChannel, Counter>,
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
        let workloads = Family::<TenantPhase, Gauge>::default();
        registry.register("workloads", "SecureWorkloads by tenant and phase", workloads.clone());
        let quota_used = Family::<TenantResource, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "tenant_quota_used_ratio",
            "Used over hard of each tenant quota entry (1 = full; hard 0 counts as full when used)",
            quota_used.clone(),
        );
        let days_left = Family::<TenantLabel, Gauge>::default();
        registry.register(
            "tenant_expiry_days_left",
            "Whole days until the tenant's spec.expiresAt, negative once expired (only tenants with expiresAt); count(... <= 7) is the tenants expiring within 7 days",
            days_left.clone(),
        );
        let deliveries = Family::<PatrolChannel, Counter>::default();
        registry.register("patrol_deliveries", "Patrol reports by patrol, channel and result", deliveries.clone());
        Self {
            registry,
            reconciles,
            durations,
            managed,
            api_requests,
            leader,
            owned: Mutex::default(),
            workloads,
            workload_phases: Mutex::default(),
            quota_used,
            quota_resources: Mutex::default(),
            days_left,
            deliveries,
        }
    }

    /// Sets `tenant`'s whole days until expiry; `None` (no `expiresAt`, or a deleted tenant)
    /// removes the series.
    pub fn tenant_days_left(&self, tenant: &str, days: Option<i64>) {
        let labels = TenantLabel { tenant: tenant.into() };
        match days {
            Some(days) => {
                self.days_left.get_or_create(&labels).set(days);
            }
            None => {
                self.days_left.remove(&labels);
            }
        }
    }

    /// Counts one patrol delivery.
    pub fn patrol_delivery(&self, patrol: &str, channel: &str, result: &str) {
        let labels = PatrolChannel { patrol: patrol.into(), channel: channel.into(), result: result.into() };
        self.deliveries.get_or_create(&labels).inc();
    }

    /// Records the phase of workload `key` of `tenant`; `None` forgets the workload.
    pub fn workload_phase(&self, key: &str, now: Option<(&str, &str)>) {
        let mut phases = self.workload_phases.lock().expect("metrics lock");
        if let Some(before) = phases.remove(key) {
            self.workloads.get_or_create(&before).dec();
        }
        if let Some((tenant, phase)) = now {
            let labels = TenantPhase { tenant: tenant.into(), phase: phase.into() };
            self.workloads.get_or_create(&labels).inc();
            phases.insert(key.to_string(), labels);
        }
    }

    /// Sets `tenant`'s used/hard ratio per quota entry; entries no longer given (or every entry,
    /// for an empty slice: a deleted tenant) lose their series.
    pub fn tenant_quota(&self, tenant: &str, ratios: &[(String, f64)]) {
        let mut known = self.quota_resources.lock().expect("metrics lock");
        for resource in known.remove(tenant).unwrap_or_default() {
            if !ratios.iter().any(|(r, _)| *r == resource) {
                self.quota_used.remove(&TenantResource { tenant: tenant.into(), resource });
            }
        }
        for (resource, ratio) in ratios {
            let labels = TenantResource { tenant: tenant.into(), resource: resource.clone() };
            self.quota_used.get_or_create(&labels).set(*ratio);
        }
        if !ratios.is_empty() {
            known.insert(tenant.to_string(), ratios.iter().map(|(r, _)| r.clone()).collect());
        }
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

/// Used over hard for every quota entry that has both, for [`Metrics::tenant_quota`]. An entry
/// with hard 0 is full (1) as soon as anything uses it, empty (0) otherwise.
pub fn quota_ratios(quota: &crate::api::TenantQuotaStatus) -> Vec<(String, f64)> {
    let parse = |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| crate::quantity::parse(&q.0).ok();
    quota
        .hard
        .iter()
        .filter_map(|(key, hard)| {
            let (hard, used) = (parse(hard)?, parse(quota.used.get(key)?)?);
            let ratio = if hard > 0 { used as f64 / hard as f64 } else { f64::from(u8::from(used > 0)) };
            Some((key.clone(), ratio))
        })
        .collect()
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
    fn per_tenant_series_follow_phases_and_disappear_with_the_tenant() {
        let metrics = Metrics::new();
        metrics.workload_phase("globex/web", Some(("globex", "Progressing")));
        metrics.workload_phase("globex/web", Some(("globex", "Running")));
        metrics.workload_phase("globex/db", Some(("globex", "Running")));
        metrics.tenant_quota("globex", &[("pods".into(), 0.5), ("requests.cpu".into(), 1.0)]);
        let text = metrics.encode();
        assert!(text.contains("scs_operator_workloads{tenant=\"globex\",phase=\"Running\"} 2"), "{text}");
        assert!(text.contains("scs_operator_workloads{tenant=\"globex\",phase=\"Progressing\"} 0"), "{text}");
        assert!(text.contains("scs_operator_tenant_quota_used_ratio{tenant=\"globex\",resource=\"pods\"} 0.5"));
        metrics.tenant_quota("globex", &[("pods".into(), 0.75)]);
        assert!(!metrics.encode().contains("resource=\"requests.cpu\""), "a dropped entry loses its series");
        metrics.tenant_quota("globex", &[]);
        metrics.workload_phase("globex/web", None);
        let text = metrics.encode();
        assert!(!text.contains("tenant_quota_used_ratio{"), "{text}");
        assert!(text.contains("scs_operator_workloads{tenant=\"globex\",phase=\"Running\"} 1"), "{text}");
    }

    #[test]
    fn quota_ratios_from_hard_and_used() {
        let q = |s: &str| k8s_openapi::apimachinery::pkg::api::resource::Quantity(s.into());
        let status = crate::api::TenantQuotaStatus {
            hard: [("pods", "20"), ("requests.cpu", "4"), ("requests.nvidia.com/gpu", "0"), ("limits.cpu", "4")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), q(v)))
                .collect(),
            used: [("pods", "5"), ("requests.cpu", "3500m"), ("requests.nvidia.com/gpu", "0")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), q(v)))
                .collect(),
        };
        let ratios: HashMap<String, f64> = quota_ratios(&status).into_iter().collect();
        assert_eq!(ratios["pods"], 0.25);
        assert_eq!(ratios["requests.cpu"], 0.875);
        assert_eq!(ratios["requests.nvidia.com/gpu"], 0.0);
        assert!(!ratios.contains_key("limits.cpu"), "no usage reported yet: no series");
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
