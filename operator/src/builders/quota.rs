//! ResourceQuotas: the tenant's quota, split over its namespaces.
//!
//! The tenant total is a tenant-wide fence, so it is divided, not copied: each namespace gets an
//! equal share, and the remainder (in the smallest sensible unit: whole pods and devices, milli-CPU,
//! bytes) goes to the first namespaces in `spec.namespaces` order. The shares add up exactly to the
//! tenant total. Accelerators and LoadBalancers are always fenced: a tenant without a grant gets a
//! hard limit of 0; NodePorts are always 0; CPU, memory, pods and storage the tenant leaves unset
//! come from the configured `defaultQuota`, so no tenant is ever unlimited.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceQuota, ResourceQuotaSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::labels;
use crate::api::{GpuVendor, Tenant};
use crate::config::OperatorConfig;
use crate::quantity::{self, Nanos};

/// Name of the ResourceQuota in each tenant namespace.
pub const QUOTA_NAME: &str = "scs-tenant-quota";

const UNIT: Nanos = 1_000_000_000;
const MILLI: Nanos = 1_000_000;

/// How a quota entry is divided and printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Whole objects or devices: pods, GPUs, LoadBalancers.
    Count,
    /// CPU, divided in milli-units.
    Cpu,
    /// Bytes, printed with binary suffixes when exact.
    Bytes,
}

/// The tenant-wide hard limits, keyed like ResourceQuota entries, in nano-units.
fn tenant_hard(tenant: &Tenant, config: &OperatorConfig) -> BTreeMap<String, (Kind, Nanos)> {
    let mut hard = BTreeMap::new();
    let parsed = |q: &Quantity| quantity::parse(&q.0).unwrap_or_default();
    let quota = tenant.spec.quota.clone().unwrap_or_default();
    // What the tenant leaves unset comes from the configured defaults: never unlimited.
    let defaults = &config.default_quota;
    let cpu = quota.cpu.as_ref().unwrap_or(&defaults.cpu);
    hard.insert("requests.cpu".to_string(), (Kind::Cpu, parsed(cpu)));
    hard.insert("limits.cpu".to_string(), (Kind::Cpu, parsed(cpu)));
    let memory = quota.memory.as_ref().unwrap_or(&defaults.memory);
    hard.insert("requests.memory".to_string(), (Kind::Bytes, parsed(memory)));
    hard.insert("limits.memory".to_string(), (Kind::Bytes, parsed(memory)));
    hard.insert("pods".to_string(), (Kind::Count, Nanos::from(quota.pods.unwrap_or(defaults.pods)) * UNIT));
    let storage = quota.storage.clone().unwrap_or_default();
    let total = storage.total.as_ref().unwrap_or(&defaults.storage);
    hard.insert("requests.storage".to_string(), (Kind::Bytes, parsed(total)));
    {
        for (tier, size) in &storage.classes {
            // Unknown tiers are rejected by validation before builders run.
            if let Some(tier) = config.storage_tiers.get(tier) {
                let key = format!("{}.storageclass.storage.k8s.io/requests.storage", tier.storage_class_name);
                hard.insert(key, (Kind::Bytes, parsed(size)));
            }
        }
    }
    let gpu = quota.gpu.unwrap_or_default();
    for (vendor, granted) in [(GpuVendor::Nvidia, gpu.nvidia), (GpuVendor::Kunlun, gpu.kunlun)] {
        let key = format!("requests.{}", config.gpu.vendor(vendor).resource_name);
        hard.insert(key, (Kind::Count, Nanos::from(granted.unwrap_or(0)) * UNIT));
    }
    hard.insert(
        "services.loadbalancers".to_string(),
        (Kind::Count, Nanos::from(quota.load_balancers.unwrap_or(0)) * UNIT),
    );
    // NodePorts open a port on every node of the shared cluster: never for tenants (LoadBalancers
    // must set allocateLoadBalancerNodePorts: false, as the operator's do).
    hard.insert("services.nodeports".to_string(), (Kind::Count, 0));
    hard
}

/// Splits `total` into `parts` shares of whole `step`s; the first shares take the remainder.
fn split(total: Nanos, parts: usize, step: Nanos) -> Vec<Nanos> {
    let parts_i = parts as Nanos;
    let steps = total / step;
    let (base, extra) = (steps / parts_i, steps % parts_i);
    (0..parts_i).map(|i| (base + Nanos::from(i < extra)) * step).collect()
}

fn format(kind: Kind, value: Nanos) -> Quantity {
    Quantity(quantity::format(value, kind == Kind::Bytes))
}

/// The tenant-wide hard limits as they appear in status.
pub fn tenant_totals(tenant: &Tenant, config: &OperatorConfig) -> BTreeMap<String, Quantity> {
    tenant_hard(tenant, config).into_iter().map(|(key, (kind, value))| (key, format(kind, value))).collect()
}

/// The hard limits of one tenant namespace (its share of the tenant total).
pub fn namespace_hard(tenant: &Tenant, config: &OperatorConfig, namespace: &str) -> BTreeMap<String, Quantity> {
    resource_quotas(tenant, config)
        .into_iter()
        .find(|q| q.metadata.namespace.as_deref() == Some(namespace))
        .and_then(|q| q.spec?.hard)
        .unwrap_or_default()
}

/// One ResourceQuota per tenant namespace.
pub fn resource_quotas(tenant: &Tenant, config: &OperatorConfig) -> Vec<ResourceQuota> {
    let namespaces = tenant.namespace_names();
    let mut shares: Vec<BTreeMap<String, Quantity>> = vec![BTreeMap::new(); namespaces.len()];
    for (key, (kind, total)) in tenant_hard(tenant, config) {
        let step = match kind {
            Kind::Count | Kind::Bytes => UNIT,
            Kind::Cpu => MILLI,
        };
        for (share, value) in shares.iter_mut().zip(split(total, namespaces.len(), step)) {
            share.insert(key.clone(), format(kind, value));
        }
    }
    namespaces
        .into_iter()
        .zip(shares)
        .map(|(namespace, hard)| ResourceQuota {
            metadata: ObjectMeta {
                name: Some(QUOTA_NAME.into()),
                namespace: Some(namespace),
                labels: Some(labels::tenant_owned(&tenant.name_any())),
                ..Default::default()
            },
            spec: Some(ResourceQuotaSpec { hard: Some(hard), ..Default::default() }),
            status: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{GpuQuota, StorageQuota, TenantQuota, TenantSpec};

    fn acme(namespaces: &[&str]) -> Tenant {
        Tenant::new(
            "acme",
            TenantSpec {
                namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
                quota: Some(TenantQuota {
                    cpu: Some(Quantity("10".into())),
                    memory: Some(Quantity("64Gi".into())),
                    pods: Some(100),
                    storage: Some(StorageQuota {
                        total: Some(Quantity("1Ti".into())),
                        classes: BTreeMap::from([("performance".to_string(), Quantity("300Gi".into()))]),
                    }),
                    gpu: Some(GpuQuota { nvidia: Some(3), kunlun: None }),
                    load_balancers: Some(2),
                }),
                ..Default::default()
            },
        )
    }

    fn hard(quota: &ResourceQuota) -> BTreeMap<String, String> {
        quota.spec.as_ref().unwrap().hard.as_ref().unwrap().iter().map(|(k, v)| (k.clone(), v.0.clone())).collect()
    }

    #[test]
    fn single_namespace_gets_every_key() {
        let quotas = resource_quotas(&acme(&[]), &OperatorConfig::default());
        assert_eq!(quotas.len(), 1);
        assert_eq!(quotas[0].metadata.namespace.as_deref(), Some("acme"));
        assert_eq!(quotas[0].metadata.name.as_deref(), Some(QUOTA_NAME));
        let expected: BTreeMap<String, String> = [
            ("requests.cpu", "10"),
            ("limits.cpu", "10"),
            ("requests.memory", "64Gi"),
            ("limits.memory", "64Gi"),
            ("pods", "100"),
            ("requests.storage", "1Ti"),
            ("performance.storageclass.storage.k8s.io/requests.storage", "300Gi"),
            ("requests.nvidia.com/gpu", "3"),
            ("requests.kunlunxin.com/xpu", "0"),
            ("services.loadbalancers", "2"),
            ("services.nodeports", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(hard(&quotas[0]), expected);
    }

    #[test]
    fn shares_add_up_to_the_tenant_total() {
        let quotas = resource_quotas(&acme(&["a", "b", "c"]), &OperatorConfig::default());
        let shares: Vec<_> = quotas.iter().map(hard).collect();
        assert_eq!(shares[0]["requests.cpu"], "3334m");
        assert_eq!(shares[1]["requests.cpu"], "3333m");
        assert_eq!(shares[2]["requests.cpu"], "3333m");
        assert_eq!(shares[0]["pods"], "34");
        assert_eq!(shares[2]["pods"], "33");
        assert_eq!(shares.iter().map(|s| s["requests.nvidia.com/gpu"].as_str()).collect::<Vec<_>>(), ["1", "1", "1"]);
        for key in shares[0].keys() {
            let sum: Nanos = shares.iter().map(|s| quantity::parse(&s[key]).unwrap()).sum();
            let total =
                quantity::parse(&tenant_totals(&acme(&["a", "b", "c"]), &OperatorConfig::default())[key].0).unwrap();
            assert_eq!(sum, total, "{key}");
        }
    }

    #[test]
    fn tenant_without_quota_gets_the_configured_defaults_never_unlimited() {
        let tenant = Tenant::new("solo", TenantSpec::default());
        let mut config = OperatorConfig::default();
        config.default_quota.cpu = Quantity("2".into());
        let quotas = resource_quotas(&tenant, &config);
        let expected: BTreeMap<String, String> = [
            ("requests.cpu", "2"),
            ("limits.cpu", "2"),
            ("requests.memory", "8Gi"),
            ("limits.memory", "8Gi"),
            ("pods", "20"),
            ("requests.storage", "50Gi"),
            ("requests.nvidia.com/gpu", "0"),
            ("requests.kunlunxin.com/xpu", "0"),
            ("services.loadbalancers", "0"),
            ("services.nodeports", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(hard(&quotas[0]), expected);
        // A partial quota keeps its own values and takes the defaults for the rest.
        let partial = Tenant::new(
            "partial",
            TenantSpec { quota: Some(TenantQuota { pods: Some(7), ..Default::default() }), ..Default::default() },
        );
        let partial = hard(&resource_quotas(&partial, &config)[0]);
        assert_eq!((partial["pods"].as_str(), partial["requests.cpu"].as_str()), ("7", "2"));
    }

    #[test]
    fn storage_tier_uses_the_configured_class() {
        let mut config = OperatorConfig::default();
        config.storage_tiers.get_mut("performance").unwrap().storage_class_name = "ceph-ssd".into();
        let quotas = resource_quotas(&acme(&[]), &config);
        assert_eq!(hard(&quotas[0])["ceph-ssd.storageclass.storage.k8s.io/requests.storage"], "300Gi");
    }
}
