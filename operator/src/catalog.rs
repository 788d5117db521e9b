//! The desired-state inputs the builders work from: tenants, networks and workloads, indexed.
//!
//! `render` fills a catalog from files; the controllers fill one from their caches.

use std::collections::BTreeMap;

use kube::ResourceExt;

use crate::api::{SdnNetwork, SecureWorkload, Tenant};

/// Tenants, SdnNetworks and SecureWorkloads, looked up by name.
#[derive(Default, Clone, Debug)]
pub struct Catalog {
    pub tenants: Vec<Tenant>,
    pub networks: Vec<SdnNetwork>,
    pub workloads: Vec<SecureWorkload>,
}

impl Catalog {
    /// The tenant that owns `namespace`, if any.
    pub fn tenant_of_namespace(&self, namespace: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.namespace_names().iter().any(|n| n == namespace))
    }

    /// The SdnNetwork called `name`.
    pub fn network(&self, name: &str) -> Option<&SdnNetwork> {
        self.networks.iter().find(|n| n.name_any() == name)
    }

    /// The SdnNetworks a tenant lists that exist.
    pub fn networks_of(&self, tenant: &Tenant) -> Vec<&SdnNetwork> {
        tenant.spec.networks.iter().filter_map(|name| self.network(name)).collect()
    }

    /// Which tenant claims each namespace first (in catalog order).
    pub fn namespace_claims(&self) -> BTreeMap<String, String> {
        let mut claims = BTreeMap::new();
        for tenant in &self.tenants {
            for namespace in tenant.namespace_names() {
                claims.entry(namespace).or_insert_with(|| tenant.name_any());
            }
        }
        claims
    }
}
