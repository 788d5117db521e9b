//! What every reconcile shares.

use std::time::Duration;

use kube::Client;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use tracing::warn;

use super::backoff::Backoff;
use crate::api::{SdnNetwork, Tenant};
use crate::catalog::Catalog;
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
    /// Every Tenant; unreadable ones are kept as errors and skipped, so they stall nothing.
    pub tenants: Store<DeserializeGuard<Tenant>>,
    pub networks: Store<DeserializeGuard<SdnNetwork>>,
    pub recorder: Recorder,
    pub backoff: Backoff,
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
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            tenants,
            networks,
            backoff: Backoff::new(BACKOFF_BASE, BACKOFF_MAX),
        }
    }

    /// Tenants and networks as cached, tenants oldest first (the oldest claim on a namespace wins).
    pub fn catalog(&self) -> Catalog {
        let mut tenants = self.readable_tenants();
        tenants.sort_by(|a, b| {
            (a.metadata.creation_timestamp.as_ref().map(|t| t.0), a.name_any())
                .cmp(&(b.metadata.creation_timestamp.as_ref().map(|t| t.0), b.name_any()))
        });
        let networks = self.networks.state().iter().filter_map(|n| n.0.as_ref().ok().cloned()).collect();
        Catalog { tenants, networks, workloads: Vec::new() }
    }

    /// The cached Tenants that could be read.
    pub fn readable_tenants(&self) -> Vec<Tenant> {
        self.tenants.state().iter().filter_map(|t| t.0.as_ref().ok().cloned()).collect()
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
        if let Err(error) = self.recorder.publish(&event, &object.object_ref(&())).await {
            warn!(%error, reason, "could not record event");
        }
    }
}
