//! LimitRanges: default container requests and limits.
//!
//! A quota on cpu or memory makes the API server reject pods that declare no requests or limits,
//! so whenever the tenant's quota constrains them every namespace gets defaults, from
//! `spec.limitDefaults` or, where that is silent, from [`FALLBACK_REQUESTS`]/[`FALLBACK_LIMITS`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LimitRange, LimitRangeItem, LimitRangeSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::labels;
use crate::api::{ComputeResources, Tenant};

/// Name of the LimitRange in each tenant namespace.
pub const LIMIT_RANGE_NAME: &str = "scs-tenant-defaults";
/// Default requests when neither the tenant nor its limits say otherwise: (cpu, memory).
pub const FALLBACK_REQUESTS: (&str, &str) = ("100m", "128Mi");
/// Default limits when neither the tenant nor its requests say otherwise: (cpu, memory).
pub const FALLBACK_LIMITS: (&str, &str) = ("500m", "512Mi");

/// One LimitRange per tenant namespace: every tenant's CPU and memory are under quota (its own
/// or the configured default), so pods always need defaults.
pub fn limit_ranges(tenant: &Tenant) -> Vec<LimitRange> {
    let defaults = tenant.spec.limit_defaults.as_ref();
    let requests = defaults.and_then(|d| d.requests.as_ref());
    let limits = defaults.and_then(|d| d.limits.as_ref());
    fn cpu(r: &ComputeResources) -> Option<&Quantity> {
        r.cpu.as_ref()
    }
    fn memory(r: &ComputeResources) -> Option<&Quantity> {
        r.memory.as_ref()
    }
    let pick = |own: Option<&ComputeResources>,
                other: Option<&ComputeResources>,
                field: fn(&ComputeResources) -> Option<&Quantity>,
                fallback: &str| {
        // A side the tenant left out follows the side it gave, so a request never exceeds its limit.
        own.and_then(field).or_else(|| other.and_then(field)).cloned().unwrap_or_else(|| Quantity(fallback.into()))
    };
    let default_request = BTreeMap::from([
        ("cpu".to_string(), pick(requests, limits, cpu, FALLBACK_REQUESTS.0)),
        ("memory".to_string(), pick(requests, limits, memory, FALLBACK_REQUESTS.1)),
    ]);
    let default_limit = BTreeMap::from([
        ("cpu".to_string(), pick(limits, requests, cpu, FALLBACK_LIMITS.0)),
        ("memory".to_string(), pick(limits, requests, memory, FALLBACK_LIMITS.1)),
    ]);
    tenant
        .namespace_names()
        .into_iter()
        .map(|namespace| LimitRange {
            metadata: ObjectMeta {
                name: Some(LIMIT_RANGE_NAME.into()),
                namespace: Some(namespace),
                labels: Some(labels::tenant_owned(&tenant.name_any())),
                ..Default::default()
            },
            spec: Some(LimitRangeSpec {
                limits: vec![LimitRangeItem {
                    type_: "Container".into(),
                    default: Some(default_limit.clone()),
                    default_request: Some(default_request.clone()),
                    ..Default::default()
                }],
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{LimitDefaults, TenantQuota, TenantSpec};

    fn item(range: &LimitRange) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let item = &range.spec.as_ref().unwrap().limits[0];
        assert_eq!(item.type_, "Container");
        let strings = |m: &Option<BTreeMap<String, Quantity>>| {
            m.as_ref().unwrap().iter().map(|(k, v)| (k.clone(), v.0.clone())).collect()
        };
        (strings(&item.default_request), strings(&item.default))
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_tenant_without_quota_still_gets_defaults_as_its_default_quota_needs_them() {
        let ranges = limit_ranges(&Tenant::new("t", TenantSpec::default()));
        assert_eq!(ranges.len(), 1);
        assert_eq!(item(&ranges[0]).0, map(&[("cpu", FALLBACK_REQUESTS.0), ("memory", FALLBACK_REQUESTS.1)]));
    }

    #[test]
    fn cpu_quota_brings_fallback_defaults() {
        let spec = TenantSpec {
            namespaces: vec!["a".into(), "b".into()],
            quota: Some(TenantQuota { cpu: Some(Quantity("4".into())), ..Default::default() }),
            ..Default::default()
        };
        let ranges = limit_ranges(&Tenant::new("t", spec));
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges[1].metadata.namespace.as_deref(), Some("b"));
        let (requests, limits) = item(&ranges[0]);
        assert_eq!(requests, map(&[("cpu", "100m"), ("memory", "128Mi")]));
        assert_eq!(limits, map(&[("cpu", "500m"), ("memory", "512Mi")]));
    }

    #[test]
    fn tenant_defaults_win_and_a_missing_side_follows_the_given_one() {
        let spec = TenantSpec {
            limit_defaults: Some(LimitDefaults {
                requests: Some(ComputeResources { cpu: Some(Quantity("2".into())), memory: None }),
                limits: Some(ComputeResources { cpu: None, memory: Some(Quantity("1Gi".into())) }),
            }),
            ..Default::default()
        };
        let (requests, limits) = item(&limit_ranges(&Tenant::new("t", spec))[0]);
        assert_eq!(requests, map(&[("cpu", "2"), ("memory", "1Gi")]));
        assert_eq!(limits, map(&[("cpu", "2"), ("memory", "1Gi")]));
    }
}
