//! What every reconcile shares.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::PartialObjectMeta;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use tracing::warn;

use super::backoff::Backoff;
use super::children::{Children, shows_write};
use super::workload_bodies::WorkloadBodies;
use crate::api::{SdnNetwork, SecureWorkload, SecureWorkloadStatus, Tenant, TenantStatus};
use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::config::OperatorConfig;

/// Requeue interval after a successful reconcile: a safety net, not the main trigger (watches are).
pub const RESYNC: Duration = Duration::from_secs(600);
/// First retry delay after a failed reconcile.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Shared state of the controllers.
pub struct Context {
    pub client: Client,
    pub config: OperatorConfig,
    /// The operator's own namespace (`POD_NAMESPACE`, else `scs-system`): where the cloud admin
    /// keeps the image pull Secrets tenants are given.
    pub operator_namespace: String,
    /// Every Tenant; unreadable ones are kept as errors and skipped, so they stall nothing.
    pub tenants: Store<DeserializeGuard<Tenant>>,
    pub networks: Store<DeserializeGuard<SdnNetwork>>,
    /// Every SecureWorkload's metadata (set once the workload controller is built): which
    /// workloads share a namespace, and which of them is older.
    pub workloads: OnceLock<Store<PartialObjectMeta<SecureWorkload>>>,
    /// Watch caches of every child the operator manages (see [`super::children`]); namespaces
    /// included.
    pub children: Arc<Children>,
    /// Every readable SecureWorkload as the watch delivered it (see [`super::workload_bodies`]).
    pub workload_bodies: WorkloadBodies,
    /// Workload statuses written whose watch events have not arrived yet.
    pub workload_status: Written<SecureWorkloadStatus>,
    /// Who publishes our Events. A [`Recorder`] is made per Event: its aggregation cache keeps
    /// every published Event for six minutes and scans them all on each publish, which at ten
    /// thousand workloads cost megabytes and CPU, while we publish only on transitions (there are
    /// no repeats to aggregate).
    pub reporter: Reporter,
    pub backoff: Backoff,
    pub tenant_status: Written<TenantStatus>,
    /// Tenants we added the finalizer to (the status type is unit: only the version matters).
    pub finalizer_added: Written<()>,
    /// Set once at start: why `networkIsolation.clusterCidrs` do not cover the cluster's pod and
    /// Service CIDRs (see [`super::cluster_cidrs`]); `None` when they do.
    pub cidr_mismatch: OnceLock<Option<String>>,
    /// What "now" is for expiry and patrol schedules (the system clock; tests set their own).
    pub clock: Clock,
    /// Attempts, backoff and timeout of patrol report deliveries.
    pub delivery: crate::patrol::deliver::Policy,
    /// Bumped on every change the tenant and network caches see (see [`Context::caches_changed`]).
    catalog_version: AtomicU64,
    catalog: Mutex<Option<(u64, Arc<CatalogSnapshot>)>>,
}

/// The cached tenants and networks as one [`Catalog`], built once per change of the caches and
/// shared by every reconcile and mapper until the next change: with thousands of tenants, cloning
/// and sorting them for each of tens of thousands of reconciles was most of the operator's work.
pub struct CatalogSnapshot {
    catalog: Catalog,
    /// Namespace → index of the first (oldest) tenant listing it.
    by_namespace: HashMap<String, usize>,
}

impl CatalogSnapshot {
    fn new(catalog: Catalog) -> Self {
        let mut by_namespace = HashMap::new();
        for (index, tenant) in catalog.tenants.iter().enumerate() {
            for namespace in tenant.namespace_names() {
                by_namespace.entry(namespace).or_insert(index);
            }
        }
        Self { catalog, by_namespace }
    }

    /// The tenant whose namespaces include `namespace` (the oldest when several list it), like
    /// [`Catalog::tenant_of_namespace`] but without a scan.
    pub fn tenant_of_namespace(&self, namespace: &str) -> Option<&Tenant> {
        self.by_namespace.get(namespace).map(|&index| &self.catalog.tenants[index])
    }
}

impl std::ops::Deref for CatalogSnapshot {
    type Target = Catalog;

    fn deref(&self) -> &Catalog {
        &self.catalog
    }
}

/// The statuses this operator wrote whose objects' cached copies have not caught up yet.
///
/// A reconcile triggered by a child (say, the Deployment it has just created) can start before
/// the watch has delivered the status the previous pass wrote; comparing against the stale cached
/// status would write the same status again and repeat its Event. So each written status is
/// remembered with the resource version the write produced, until the cache shows that version
/// or a later one (versions compared as numbers, as for our children's writes: see
/// [`super::children::shows_write`]; a change by someone else after our write is seen at once) or
/// [`WRITTEN_TTL`] has passed. The map holds only objects in flight.
pub struct Written<S> {
    statuses: Mutex<HashMap<String, Entry<S>>>,
}

struct Entry<S> {
    resource_version: Option<String>,
    at: Instant,
    status: S,
}

/// How long a written status may stand in for a cached copy that has not shown it.
pub const WRITTEN_TTL: Duration = Duration::from_secs(30);

impl<S: Clone> Default for Written<S> {
    fn default() -> Self {
        Self { statuses: Mutex::default() }
    }
}

impl<S: Clone> Written<S> {
    /// The status last written for `key` if the cached copy (at `cached_version`) does not show
    /// it yet; `None` once it does.
    pub fn newer_than_cache(&self, key: &str, cached_version: Option<&str>) -> Option<S> {
        let mut statuses = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
        let entry = statuses.get(key)?;
        if shows_write(cached_version, entry.resource_version.as_deref()) || entry.at.elapsed() > WRITTEN_TTL {
            statuses.remove(key);
            return None;
        }
        Some(entry.status.clone())
    }

    /// Remembers that `status` was written, producing `resource_version`.
    pub fn wrote(&self, key: String, resource_version: Option<String>, status: S) {
        let mut statuses = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
        if statuses.len() >= 1024 && statuses.len().is_power_of_two() {
            statuses.retain(|_, entry| entry.at.elapsed() <= WRITTEN_TTL);
        }
        statuses.insert(key, Entry { resource_version, at: Instant::now(), status });
    }

    /// The watch has delivered `version` of `key`: if that is what was written or later, the
    /// cache holds it and the written copy no longer stands in.
    pub fn seen(&self, key: &str, version: Option<&str>) {
        let mut statuses = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
        if statuses.get(key).is_some_and(|entry| shows_write(version, entry.resource_version.as_deref())) {
            statuses.remove(key);
        }
    }

    /// Objects whose written status the cache may not show yet.
    pub fn len(&self) -> usize {
        self.statuses.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Context {
    pub fn new(
        client: Client,
        config: OperatorConfig,
        tenants: Store<DeserializeGuard<Tenant>>,
        networks: Store<DeserializeGuard<SdnNetwork>>,
    ) -> Self {
        let reporter = Reporter { controller: "scs-operator".into(), instance: std::env::var("POD_NAME").ok() };
        Self {
            reporter,
            client,
            config,
            operator_namespace: std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "scs-system".into()),
            tenants,
            networks,
            workloads: OnceLock::new(),
            children: Arc::default(),
            workload_bodies: WorkloadBodies::default(),
            workload_status: Written::default(),
            backoff: Backoff::new(BACKOFF_BASE, BACKOFF_MAX),
            tenant_status: Written::default(),
            finalizer_added: Written::default(),
            cidr_mismatch: OnceLock::new(),
            clock: Clock::system(),
            delivery: Default::default(),
            catalog_version: AtomicU64::new(0),
            catalog: Mutex::default(),
        }
    }

    /// Called by the task that feeds the tenant and network caches on every event it passes on
    /// (after the cache has applied it): the next [`Context::catalog`] is built afresh.
    pub fn caches_changed(&self) {
        self.catalog_version.fetch_add(1, Ordering::AcqRel);
    }

    /// Tenants and networks as cached, tenants oldest first (the oldest claim on a namespace
    /// wins): one snapshot, rebuilt only after the caches change.
    pub fn catalog(&self) -> Arc<CatalogSnapshot> {
        let version = self.catalog_version.load(Ordering::Acquire);
        let mut current = self.catalog.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((built_at, snapshot)) = current.as_ref()
            && *built_at == version
        {
            return snapshot.clone();
        }
        let snapshot = Arc::new(CatalogSnapshot::new(self.build_catalog()));
        *current = Some((version, snapshot.clone()));
        snapshot
    }

    fn build_catalog(&self) -> Catalog {
        // Of a tenant's status only its lifecycle is read through the catalog (does it suspend
        // its workloads?). The rest (per-namespace quota, conditions) made each snapshot several
        // times larger, and passes in flight hold snapshots of different versions.
        let mut tenants: Vec<Tenant> = self
            .tenants
            .state()
            .iter()
            .filter_map(|t| t.0.as_ref().ok())
            .map(|t| Tenant {
                metadata: t.metadata.clone(),
                spec: t.spec.clone(),
                status: t
                    .status
                    .as_ref()
                    .map(|s| TenantStatus { lifecycle: s.lifecycle.clone(), ..Default::default() }),
            })
            .collect();
        oldest_first(&mut tenants);
        let networks = self.networks.state().iter().filter_map(|n| n.0.as_ref().ok().cloned()).collect();
        Catalog { tenants, networks, workloads: Vec::new() }
    }

    /// The cached Tenants that could be read, whole, oldest first.
    pub fn readable_tenants(&self) -> Vec<Tenant> {
        let mut tenants: Vec<Tenant> = self.tenants.state().iter().filter_map(|t| t.0.as_ref().ok().cloned()).collect();
        oldest_first(&mut tenants);
        tenants
    }

    /// Cached SdnNetworks that could not be read, as `(name, why)`: they exist (a client/CRD
    /// version skew, or an object written past validation), so they are not absent from the
    /// catalog the way a deleted network is, and what was built from them must stay.
    pub fn unreadable_networks(&self) -> Vec<(String, String)> {
        self.networks
            .state()
            .iter()
            .filter_map(|n| n.0.as_ref().err().map(|e| (e.metadata.name.clone().unwrap_or_default(), e.error.clone())))
            .collect()
    }

    /// Publishes an Event about `object`; failing to record is logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(&self, object: &K, warning: bool, reason: &str, note: String) {
        let event = Event {
            type_: if warning { EventType::Warning } else { EventType::Normal },
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        if let Err(error) = recorder.publish(&event, &object.object_ref(&())).await {
            warn!(%error, reason, "could not record event");
        }
    }
}

/// Oldest first (the oldest claim on a namespace wins), by name among equals.
fn oldest_first(tenants: &mut [Tenant]) {
    tenants.sort_by(|a, b| {
        (a.metadata.creation_timestamp.as_ref().map(|t| t.0), a.name_any())
            .cmp(&(b.metadata.creation_timestamp.as_ref().map(|t| t.0), b.name_any()))
    });
}

/// What the catalog holds of a tenant, as a digest: a tenant event that leaves it unchanged (a
/// status write, most of them) need not rebuild the catalog.
pub fn catalog_digest(tenant: &Tenant) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    let meta = &tenant.metadata;
    (&meta.uid, meta.generation, &meta.labels, &meta.annotations, &meta.deletion_timestamp.as_ref().map(|t| t.0))
        .hash(&mut hasher);
    serde_json::to_string(&tenant.status.as_ref().map(|s| &s.lifecycle)).unwrap_or_default().hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_catalog_holds_changes_its_digest() {
        let tenant: Tenant = serde_json::from_value(serde_json::json!({
            "apiVersion": "scs.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "acme", "uid": "u-1", "generation": 1, "resourceVersion": "10"},
            "spec": {"namespaces": ["acme-prod"]},
            "status": {"conditions": [], "lifecycle": {"state": "Active", "expiresAt": "2027-01-01T00:00:00Z", "daysLeft": 30}}
        }))
        .unwrap();
        let digest = catalog_digest(&tenant);
        let mut status_write = tenant.clone();
        status_write.metadata.resource_version = Some("11".into());
        status_write.status.as_mut().unwrap().observed_generation = Some(1);
        assert_eq!(catalog_digest(&status_write), digest, "a status write leaves the catalog as it is");
        let mut spec_change = tenant.clone();
        spec_change.metadata.generation = Some(2);
        assert_ne!(catalog_digest(&spec_change), digest);
        let mut suspended = tenant.clone();
        suspended.status.as_mut().unwrap().lifecycle.as_mut().unwrap().state = crate::api::LifecycleState::Suspended;
        assert_ne!(catalog_digest(&suspended), digest, "workloads read the lifecycle through the catalog");
        let mut relabelled = tenant;
        relabelled.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
        assert_ne!(catalog_digest(&relabelled), digest);
    }

    #[test]
    fn a_written_status_stands_in_until_the_cache_shows_it() {
        let written: Written<&str> = Written::default();
        assert_eq!(written.newer_than_cache("ns/w/1", Some("5")), None);
        written.wrote("ns/w/1".into(), Some("7".into()), "Running");
        // The cache is still at an older version, or an intermediate one: the written status wins.
        assert_eq!(written.newer_than_cache("ns/w/1", Some("5")), Some("Running"));
        assert_eq!(written.newer_than_cache("ns/w/1", Some("6")), Some("Running"));
        assert_eq!(written.newer_than_cache("ns/w/2", Some("5")), None, "another object");
        // Once the cache shows the write, it is the truth again.
        assert_eq!(written.newer_than_cache("ns/w/1", Some("7")), None);
        assert!(written.is_empty());
        // A cache past our write (someone changed the status after us, and the watch skipped our
        // version) is the truth at once, not after the TTL.
        written.wrote("ns/w/1".into(), Some("7".into()), "Running");
        assert_eq!(written.newer_than_cache("ns/w/1", Some("9")), None);
        written.wrote("ns/w/1".into(), Some("7".into()), "Running");
        written.seen("ns/w/1", Some("8"));
        assert!(written.is_empty(), "the watch brought a later version");
        // Versions that are not numbers: only the very version counts.
        written.wrote("ns/w/1".into(), Some("b".into()), "Running");
        assert_eq!(written.newer_than_cache("ns/w/1", Some("c")), Some("Running"));
        assert_eq!(written.newer_than_cache("ns/w/1", Some("b")), None);
    }
}
