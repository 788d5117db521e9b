//! Rules between objects, and between objects and the operator configuration.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::FieldError;
use crate::api::{SdnNetwork, SecureWorkload, ServiceType, Tenant, WorkloadKind};
use crate::builders::Child;
use crate::builders::network_attachment::uses_whereabouts;
use crate::builders::workload::workload_children;
use crate::catalog::Catalog;
use crate::config::OperatorConfig;
use crate::images::ImagePolicy;

/// Which object a cross-object error belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: &'static str,
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Namespaces no tenant may own.
pub const RESERVED_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease", "scs-system", "scs-device-plugins"];

/// Checks tenants, networks and workloads against each other and `config`.
pub fn check(catalog: &Catalog, config: &OperatorConfig) -> Vec<(ObjectKey, FieldError)> {
    let mut errors = Vec::new();
    check_tenants(catalog, config, &mut errors);
    check_workloads(catalog, config, &mut errors);
    check_static_ips(catalog, &mut errors);
    errors
}

fn check_tenants(catalog: &Catalog, config: &OperatorConfig, errors: &mut Vec<(ObjectKey, FieldError)>) {
    errors.extend(claim_errors(catalog));
    for tenant in &catalog.tenants {
        let key = ObjectKey { kind: "Tenant", namespace: None, name: tenant.name_any() };
        let found = tenant_spec_errors(tenant, config).into_iter().chain(missing_networks(tenant, catalog));
        errors.extend(found.map(|error| (key.clone(), error)));
    }
}

/// Where a tenant's namespace `index` is named: its `spec.namespaces` entry, or its own name.
fn namespace_path(tenant: &Tenant, index: usize) -> String {
    if tenant.spec.namespaces.is_empty() { "metadata.name".to_string() } else { format!("spec.namespaces[{index}]") }
}

/// Problems of a tenant's spec against the configuration alone: reserved namespaces, unknown tiers.
pub fn tenant_spec_errors(tenant: &Tenant, config: &OperatorConfig) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (index, namespace) in tenant.namespace_names().iter().enumerate() {
        if RESERVED_NAMESPACES.contains(&namespace.as_str()) || namespace.starts_with("kube-") {
            errors.push(FieldError::new(
                namespace_path(tenant, index),
                format!("namespace {namespace:?} is reserved for the platform"),
            ));
        }
    }
    let tiers = tenant.spec.quota.as_ref().and_then(|q| q.storage.as_ref()).map(|s| &s.classes);
    for tier in tiers.into_iter().flat_map(|classes| classes.keys()) {
        if !config.storage_tiers.contains_key(tier) {
            errors.push(FieldError::new(format!("spec.quota.storage.classes.{tier}"), unknown_tier(tier, config)));
        }
    }
    errors
}

/// Networks the tenant lists that do not exist.
pub fn missing_networks(tenant: &Tenant, catalog: &Catalog) -> Vec<FieldError> {
    tenant
        .spec
        .networks
        .iter()
        .enumerate()
        .filter(|(_, network)| catalog.network(network).is_none())
        .map(|(index, network)| {
            FieldError::new(format!("spec.networks[{index}]"), format!("no SdnNetwork named {network:?}"))
        })
        .collect()
}

/// Namespaces claimed by more than one tenant: every claim after the first is an error.
pub fn claim_errors(catalog: &Catalog) -> Vec<(ObjectKey, FieldError)> {
    let claims = catalog.namespace_claims();
    let mut errors = Vec::new();
    for tenant in &catalog.tenants {
        for (index, namespace) in tenant.namespace_names().iter().enumerate() {
            if let Some(owner) = claims.get(namespace)
                && *owner != tenant.name_any()
            {
                errors.push((
                    ObjectKey { kind: "Tenant", namespace: None, name: tenant.name_any() },
                    FieldError::new(
                        namespace_path(tenant, index),
                        format!("namespace {namespace:?} is already claimed by Tenant {owner:?}"),
                    ),
                ));
            }
        }
    }
    errors
}

fn unknown_tier(tier: &str, config: &OperatorConfig) -> String {
    let known: Vec<&str> = config.storage_tiers.keys().map(String::as_str).collect();
    format!("unknown storage tier {tier:?}; the operator configuration defines: {}", known.join(", "))
}

fn check_workloads(catalog: &Catalog, config: &OperatorConfig, errors: &mut Vec<(ObjectKey, FieldError)>) {
    // Earlier workloads of each namespace with their children, in claim order.
    let mut ordered: Vec<&SecureWorkload> = catalog.workloads.iter().collect();
    ordered.sort_by_key(|w| (w.namespace(), claim_order(&w.metadata)));
    let mut earlier: BTreeMap<String, Vec<(String, Vec<Child>)>> = BTreeMap::new();
    for workload in ordered {
        let namespace = workload.namespace().unwrap_or_default();
        let key = ObjectKey { kind: "SecureWorkload", namespace: Some(namespace.clone()), name: workload.name_any() };
        match catalog.tenant_of_namespace(&namespace) {
            None => errors.push((
                key,
                FieldError::new("metadata.namespace", format!("namespace {namespace:?} belongs to no Tenant")),
            )),
            Some(tenant) => {
                errors.extend(workload_errors(workload, tenant, config).into_iter().map(|e| (key.clone(), e)));
                let children = workload_children(workload, tenant, config);
                let before = earlier.entry(namespace).or_default();
                errors.extend(collision_errors(&children, before).into_iter().map(|e| (key.clone(), e)));
                before.push((workload.name_any(), children));
            }
        }
    }
}

/// The order in which the workloads of a namespace claim the names of their children: the older
/// first, then by name. A workload whose child name an earlier one produces gets an error.
pub fn claim_order(metadata: &ObjectMeta) -> (Option<Timestamp>, String) {
    (metadata.creation_timestamp.as_ref().map(|t| t.0), metadata.name.clone().unwrap_or_default())
}

/// Whether two workloads of a namespace may produce a child of the same name at all: every child
/// name is the workload's name or starts with it and `-` (checked by the builders' tests), so
/// distinct workloads can only collide when one name extends the other that way.
pub fn may_collide(a: &str, b: &str) -> bool {
    let extends = |long: &str, short: &str| long.strip_prefix(short).is_some_and(|rest| rest.starts_with('-'));
    extends(a, b) || extends(b, a)
}

/// An error for each of `children` (of one workload) that a workload in `earlier` (of the same
/// namespace, each with its children) already produces, naming the first that does.
pub fn collision_errors(children: &[Child], earlier: &[(String, Vec<Child>)]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for child in children {
        let first = earlier.iter().find(|(_, theirs)| {
            theirs.iter().any(|c| c.kind == child.kind && c.name == child.name && c.namespace == child.namespace)
        });
        if let Some((owner, _)) = first {
            errors.push(FieldError::new(
                "metadata.name",
                format!("{} {:?} is also produced by SecureWorkload {owner:?}", child.kind, child.name),
            ));
        }
    }
    errors
}

/// Problems of a workload against its tenant and the configuration: networks the tenant does not
/// list, GPUs beyond the quota, unknown or unshareable storage tiers, LoadBalancers without quota.
pub fn workload_errors(workload: &SecureWorkload, tenant: &Tenant, config: &OperatorConfig) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let namespace = workload.namespace().unwrap_or_default();
    let mut push = |path: String, message: String| errors.push(FieldError::new(path, message));
    let tenant_name = tenant.name_any();
    let spec = &workload.spec;
    for error in super::images::template_errors(&spec.template, &ImagePolicy::of(tenant, config)) {
        push(error.path, format!("{} (Tenant {tenant_name:?})", error.message));
    }
    for (index, network) in spec.networks.iter().enumerate() {
        if !tenant.spec.networks.contains(&network.name) {
            push(
                format!("spec.networks[{index}].name"),
                format!("Tenant {tenant_name:?} does not list network {:?} in spec.networks", network.name),
            );
        }
    }
    let quota = tenant.spec.quota.as_ref();
    if let Some(gpu) = &spec.gpu {
        let vendor = gpu.vendor.as_str();
        if let Some(model) = gpu.model.as_deref()
            && !crate::device_plugin::models::is_certified_label(model)
            && !config.gpu.allowed_models.iter().any(|m| m == model)
        {
            push(
                "spec.gpu.model".into(),
                format!(
                    "{model:?} is not in a certified family (node label spelling, e.g. Tesla-T4, Tesla-V100-SXM2-16GB) nor in the operator's gpu.allowedModels"
                ),
            );
        }
        let granted = quota.and_then(|q| q.gpu.as_ref()).and_then(|g| match gpu.vendor {
            crate::api::GpuVendor::Nvidia => g.nvidia,
            crate::api::GpuVendor::Kunlun => g.kunlun,
        });
        let resource = format!("requests.{}", config.gpu.vendor(gpu.vendor).resource_name);
        let share = crate::builders::quota::namespace_hard(tenant, config, &namespace)
            .get(&resource)
            .and_then(|q| crate::quantity::parse(&q.0).ok())
            .map_or(0, |nanos| (nanos / 1_000_000_000) as i64);
        if granted.unwrap_or(0) == 0 {
            push(
                "spec.gpu.vendor".into(),
                format!("Tenant {tenant_name:?} has no {vendor} GPU quota (spec.quota.gpu.{vendor})"),
            );
        } else if i64::from(gpu.count) > share {
            push(
                "spec.gpu.count".into(),
                format!(
                    "{} {vendor} GPUs per pod exceed namespace {namespace:?}'s share ({share}) of Tenant {tenant_name:?}'s GPU quota",
                    gpu.count
                ),
            );
        }
    }
    let shares_pods =
        spec.kind == WorkloadKind::Deployment && (spec.replicas.unwrap_or(1) > 1 || spec.autoscaling.is_some());
    for (index, volume) in spec.volumes.iter().enumerate() {
        match config.storage_tiers.get(&volume.tier) {
            None => push(format!("spec.volumes[{index}].tier"), unknown_tier(&volume.tier, config)),
            Some(tier) if shares_pods && !tier.read_write_many => push(
                format!("spec.volumes[{index}].tier"),
                format!(
                    "tier {:?} is ReadWriteOnce, so a Deployment with more than one pod cannot share it; use a StatefulSet for per-pod volumes or a ReadWriteMany tier",
                    volume.tier
                ),
            ),
            Some(_) => {}
        }
    }
    // The builder replaces the pods of a Deployment holding a ReadWriteOnce volume (Recreate):
    // rolling-update settings the user asked for would be dropped, so they are refused. (Static
    // ips do the same; the CRD's own rule refuses those.)
    let rolling = spec.update_strategy.as_ref().is_some_and(|s| s.max_surge.is_some() || s.max_unavailable.is_some());
    if spec.kind == WorkloadKind::Deployment && rolling {
        let single_attach =
            spec.volumes.iter().find(|v| config.storage_tiers.get(&v.tier).is_some_and(|t| !t.read_write_many));
        if let Some(volume) = single_attach {
            push(
                "spec.updateStrategy".into(),
                format!(
                    "volume {:?} has the ReadWriteOnce tier {:?}: the old and the new pod cannot both mount it, so the Deployment replaces its pods (Recreate) and maxSurge/maxUnavailable do not apply; remove them or use a ReadWriteMany tier",
                    volume.name, volume.tier
                ),
            );
        }
    }
    if let Some(host) = spec.expose.as_ref().and_then(|e| e.ingress.as_ref()).map(|i| i.host.as_str()) {
        let domains = tenant.spec.ingress.as_ref().map(|i| i.domains.as_slice()).unwrap_or_default();
        if !domains.iter().any(|d| host_in_domain(host, d)) {
            push(
                "spec.expose.ingress.host".into(),
                format!(
                    "host {host:?} is not under Tenant {tenant_name:?}'s ingress domains (spec.ingress.domains: {})",
                    if domains.is_empty() { "none".to_string() } else { domains.join(", ") }
                ),
            );
        }
    }
    if let Some(expose) = &spec.expose
        && expose.service_type == ServiceType::LoadBalancer
        && quota.and_then(|q| q.load_balancers).unwrap_or(0) == 0
    {
        push(
            "spec.expose.type".into(),
            format!("Tenant {tenant_name:?} has no LoadBalancer quota (spec.quota.loadBalancers)"),
        );
    }
    errors
}

/// Whether `host` is `domain` or a name under it (what the Ingress admission policy checks).
pub fn host_in_domain(host: &str, domain: &str) -> bool {
    !domain.is_empty() && (host == domain || host.strip_suffix(domain).is_some_and(|rest| rest.ends_with('.')))
}

/// Static addresses `spec.networks[i].ips[j]` of `workload` against the SdnNetworks they are on:
/// inside the network's CIDR and with its prefix length, not its network or broadcast address, not
/// the gateway, not excluded. On macvlan, ipvlan and bridge networks (their `<network>.static`
/// attachment assigns them with the `static` IPAM plugin, which records nothing in whereabouts'
/// pool) they must lie outside the `ipRange` whereabouts hands out by itself, else another pod
/// could get the same address; on Kube-OVN networks (Kube-OVN's IPAM records fixed addresses from
/// its pod annotation) inside it, since the Subnet excludes everything else. Networks that do not
/// exist, or whose own spec is broken, are reported elsewhere.
pub fn static_ip_errors(workload: &SecureWorkload, catalog: &Catalog) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, attachment) in workload.spec.networks.iter().enumerate() {
        let Some(network) = catalog.network(&attachment.name) else { continue };
        for (j, requested) in attachment.ips.iter().enumerate() {
            if let Some(problem) = static_ip_problem(network, requested) {
                errors.push(FieldError::new(format!("spec.networks[{i}].ips[{j}]"), problem));
            }
        }
    }
    errors
}

/// What is wrong with `requested` (CIDR form) as a static address on `network`, if anything.
fn static_ip_problem(network: &SdnNetwork, requested: &str) -> Option<String> {
    let spec = &network.spec;
    let name = network.name_any();
    let kube_ovn = !uses_whereabouts(spec.network_type);
    let Ok(net) = spec.cidr.parse::<IpNet>() else { return None };
    let Ok(ip) = requested.parse::<IpNet>() else {
        return Some(format!("{requested:?} is not an address in CIDR form, e.g. 192.168.100.20/24"));
    };
    let address = ip.addr();
    if !net.contains(&address) {
        return Some(format!("{address} is outside network {name:?}'s CIDR {net}"));
    }
    if ip.prefix_len() != net.prefix_len() {
        return Some(format!("must carry network {name:?}'s prefix length: {address}/{}", net.prefix_len()));
    }
    if matches!(net, IpNet::V4(v4) if v4.prefix_len() < 31) && (address == net.network() || address == net.broadcast())
    {
        return Some(format!("{address} is network {name:?}'s own network or broadcast address"));
    }
    if spec.gateway.as_deref().and_then(|g| g.parse::<IpAddr>().ok()) == Some(address) {
        return Some(format!("{address} is network {name:?}'s gateway"));
    }
    if let Some(excluded) = spec.exclude.iter().filter_map(|e| e.parse::<IpNet>().ok()).find(|e| e.contains(&address)) {
        return Some(format!("{address} is in network {name:?}'s excluded range {excluded}"));
    }
    let range =
        spec.ip_range.as_ref().and_then(|r| Some((r.start.parse::<IpAddr>().ok()?, r.end.parse::<IpAddr>().ok()?)));
    if kube_ovn {
        return match range {
            Some((start, end)) if address < start || end < address => Some(format!(
                "{address} is outside network {name:?}'s ipRange {start}-{end}, the only addresses its Kube-OVN Subnet \
                 hands out"
            )),
            _ => None,
        };
    }
    match (&spec.ip_range, range) {
        (None, _) => Some(format!(
            "network {name:?} has no ipRange, so whereabouts may hand any address of {net} to another pod; \
             static addresses need an ipRange that leaves room for them"
        )),
        (Some(_), Some((start, end))) if start <= address && address <= end => Some(format!(
            "{address} is inside network {name:?}'s ipRange {start}-{end}, which whereabouts hands out to other \
             pods; choose an address of {net} outside it"
        )),
        _ => None,
    }
}

/// Static addresses `workload` requests that it requests twice itself, or that one of `earlier`
/// (the workloads of the same tenant that claim addresses before it, see [`static_ip_order`])
/// requests on the same network: the first keeps the address, this one gets an error naming it.
pub fn static_ip_conflicts(workload: &SecureWorkload, earlier: &[&SecureWorkload]) -> Vec<FieldError> {
    let claimed_by = |network: &str, address: IpAddr| {
        earlier.iter().find(|other| {
            other
                .spec
                .networks
                .iter()
                .any(|n| n.name == network && n.ips.iter().any(|ip| static_address(ip) == Some(address)))
        })
    };
    let mut mine: Vec<(&str, IpAddr)> = Vec::new();
    let mut errors = Vec::new();
    for (i, attachment) in workload.spec.networks.iter().enumerate() {
        for (j, requested) in attachment.ips.iter().enumerate() {
            let Some(address) = static_address(requested) else { continue };
            let path = format!("spec.networks[{i}].ips[{j}]");
            let network = attachment.name.as_str();
            if mine.contains(&(network, address)) {
                errors.push(FieldError::new(path, format!("{address} on network {network:?} is requested twice")));
            } else if let Some(other) = claimed_by(network, address) {
                let owner = format!("{}/{}", other.namespace().unwrap_or_default(), other.name_any());
                errors.push(FieldError::new(
                    path,
                    format!("{address} on network {network:?} is already requested by SecureWorkload {owner}"),
                ));
            }
            mine.push((network, address));
        }
    }
    errors
}

/// Static addresses `workload` requests that a workload of another tenant (in `others`, those
/// that claim addresses before it, see [`static_ip_order`]) requests on the same network: a shared
/// network is one address space, and the first keeps the address. The other tenant's workload is
/// not named (tenants do not learn of each other).
pub fn foreign_static_ip_conflicts(workload: &SecureWorkload, others: &[&SecureWorkload]) -> Vec<FieldError> {
    let taken = |network: &str, address: IpAddr| {
        others.iter().any(|other| {
            other
                .spec
                .networks
                .iter()
                .any(|n| n.name == network && n.ips.iter().any(|ip| static_address(ip) == Some(address)))
        })
    };
    let mut errors = Vec::new();
    for (i, attachment) in workload.spec.networks.iter().enumerate() {
        for (j, requested) in attachment.ips.iter().enumerate() {
            let Some(address) = static_address(requested) else { continue };
            if taken(&attachment.name, address) {
                errors.push(FieldError::new(
                    format!("spec.networks[{i}].ips[{j}]"),
                    format!(
                        "{address} on network {:?} is already requested by a workload of another tenant",
                        attachment.name
                    ),
                ));
            }
        }
    }
    errors
}

/// The order in which a tenant's workloads claim static addresses: the older first, then by
/// namespace and name.
pub fn static_ip_order(workload: &SecureWorkload) -> (Option<Timestamp>, String, String) {
    (
        workload.metadata.creation_timestamp.as_ref().map(|t| t.0),
        workload.namespace().unwrap_or_default(),
        workload.name_any(),
    )
}

/// Whether `workload` asks for any static address.
pub fn has_static_ips(workload: &SecureWorkload) -> bool {
    workload.spec.networks.iter().any(|n| !n.ips.is_empty())
}

fn static_address(requested: &str) -> Option<IpAddr> {
    requested.parse::<IpNet>().ok().map(|ip| ip.addr())
}

/// Static address conflicts between the workloads of each tenant, and with other tenants' on the
/// same networks (render's view: every workload).
fn check_static_ips(catalog: &Catalog, errors: &mut Vec<(ObjectKey, FieldError)>) {
    let mut ordered: Vec<&SecureWorkload> = catalog.workloads.iter().filter(|w| has_static_ips(w)).collect();
    ordered.sort_by_key(|w| static_ip_order(w));
    for (index, workload) in ordered.iter().enumerate() {
        let namespace = workload.namespace().unwrap_or_default();
        let Some(tenant) = catalog.tenant_of_namespace(&namespace) else { continue };
        let key = ObjectKey { kind: "SecureWorkload", namespace: Some(namespace.clone()), name: workload.name_any() };
        errors.extend(static_ip_errors(workload, catalog).into_iter().map(|e| (key.clone(), e)));
        let tenant_namespaces = tenant.namespace_names();
        let earlier: Vec<&SecureWorkload> = ordered[..index]
            .iter()
            .copied()
            .filter(|w| tenant_namespaces.contains(&w.namespace().unwrap_or_default()))
            .collect();
        errors.extend(static_ip_conflicts(workload, &earlier).into_iter().map(|e| (key.clone(), e)));
        let foreign: Vec<&SecureWorkload> = ordered[..index]
            .iter()
            .copied()
            .filter(|w| {
                let namespace = w.namespace().unwrap_or_default();
                !tenant_namespaces.contains(&namespace) && catalog.tenant_of_namespace(&namespace).is_some()
            })
            .collect();
        errors.extend(foreign_static_ip_conflicts(workload, &foreign).into_iter().map(|e| (key.clone(), e)));
    }
}

#[cfg(test)]
mod collision_tests;
#[cfg(test)]
mod static_ip_tests;
