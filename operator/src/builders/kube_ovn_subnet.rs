//! Kube-OVN `Subnet`s: one per `kube-ovn` SdnNetwork, so Kube-OVN allocates from the CIDR, gateway,
//! range and exclusions the platform admin declared (and not from a namespace's default subnet).
//!
//! How pods find it. Kube-OVN names the provider of an attachment `<nad>.<namespace>.ovn` itself
//! (whatever the definition says) and picks the subnet from the pod annotation
//! `<provider>.kubernetes.io/logical_switch`, else the subnet whose `provider` is exactly that, else
//! the pod's *default* subnet. One Subnet serves every tenant namespace of the network, so it cannot
//! carry each namespace's provider: the workloads' pods name it through the annotation (see
//! [`logical_switch_annotation`]; the tenant admission policy lets a pod name only the Subnet of
//! the network in its key, in its own namespace), and its own provider only has to end in `.ovn`
//! (what makes Kube-OVN treat it as an OVN subnet) under a namespace no tenant can own.
//!
//! What it leaves out on purpose: `namespaces` and `namespaceSelectors`. Kube-OVN binds those
//! namespaces' *primary* interfaces to the subnet (it writes them into the namespace's
//! `ovn.kubernetes.io/logical_switch` annotation whatever the provider), which would move the
//! pods' eth0 onto the secondary network.
//!
//! Isolation between networks in OVN itself (enforced on the host, which a MultiNetworkPolicy
//! inside the sandbox's network namespace may not be): `private: true`, with `allowSubnets` the
//! networks of its isolation domain in the same security domain (see
//! [`super::multi_network_policy::isolation_domain_blocks`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{CustomResource, Resource, ResourceExt};
use serde::{Deserialize, Serialize};

use super::labels;
use super::multi_network_policy::isolation_domain_blocks;
use crate::api::{NetworkType, SdnNetwork};
use crate::catalog::Catalog;

/// Kube-OVN's `Subnet` (`kubeovn.io/v1`, cluster-scoped): the fields we set. Its CRD belongs to
/// Kube-OVN; we only write objects of it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(group = "kubeovn.io", version = "v1", kind = "Subnet", plural = "subnets", schema = "disabled")]
#[serde(rename_all = "camelCase")]
pub struct SubnetSpec {
    /// `IPv4` or `IPv6`.
    pub protocol: String,
    pub cidr_block: String,
    /// Always set (Kube-OVN would write its own default into the spec, and adds the gateway to
    /// `excludeIps`: setting both avoids a tug of war over them).
    pub gateway: String,
    /// Single addresses or `first..last` ranges Kube-OVN never hands out. Written even when empty,
    /// like `allowSubnets`: an omitted field would never be cleared from the live object.
    #[serde(default)]
    pub exclude_ips: Vec<String>,
    pub provider: String,
    /// Refuse traffic from outside the subnet except `allowSubnets`.
    pub private: bool,
    #[serde(default)]
    pub allow_subnets: Vec<String>,
    pub nat_outgoing: bool,
}

/// The namespace in Kube-OVN provider names of our Subnets: the operator's own, which no tenant
/// may own (`validate::cross::RESERVED_NAMESPACES`), so no tenant attachment's provider equals it.
const PROVIDER_NAMESPACE: &str = "scs-system";

/// Name of the Subnet of `network`. The admission policy derives it from the network name in the
/// same way: change both together.
pub fn subnet_name(network: &str) -> String {
    format!("scs-{network}")
}

/// Kube-OVN's provider of the attachment `network` in `namespace` (`<nad>.<namespace>.ovn`).
pub fn attachment_provider(network: &str, namespace: &str) -> String {
    format!("{network}.{namespace}.ovn")
}

/// The pod annotation that puts the `network` interface of a pod in `namespace` on its Subnet.
pub fn logical_switch_annotation(network: &str, namespace: &str) -> String {
    format!("{}.kubernetes.io/logical_switch", attachment_provider(network, namespace))
}

/// The pod annotation that asks Kube-OVN for fixed addresses on `network` (comma-separated, no prefix length).
pub fn ip_address_annotation(network: &str, namespace: &str) -> String {
    format!("{}.kubernetes.io/ip_address", attachment_provider(network, namespace))
}

/// `first..last`, or the address alone for a single one (Kube-OVN's excludeIps form).
fn range(first: IpAddr, last: IpAddr) -> String {
    if first == last { first.to_string() } else { format!("{first}..{last}") }
}

fn step(address: IpAddr, up: bool) -> Option<IpAddr> {
    match address {
        IpAddr::V4(v4) => {
            let n = u32::from(v4);
            (if up { n.checked_add(1) } else { n.checked_sub(1) }).map(|n| IpAddr::V4(n.into()))
        }
        IpAddr::V6(v6) => {
            let n = u128::from(v6);
            (if up { n.checked_add(1) } else { n.checked_sub(1) }).map(|n| IpAddr::V6(n.into()))
        }
    }
}

/// What Kube-OVN must never hand out: the gateway, the excluded CIDRs, and everything of the CIDR
/// outside `ipRange`.
fn exclude_ips(network: &SdnNetwork, cidr: IpNet, gateway: &str) -> Vec<String> {
    let spec = &network.spec;
    let mut excluded = vec![gateway.to_string()];
    for exclude in spec.exclude.iter().filter_map(|e| e.parse::<IpNet>().ok()) {
        excluded.push(range(exclude.network(), exclude.broadcast()));
    }
    let bounds =
        spec.ip_range.as_ref().and_then(|r| Some((r.start.parse::<IpAddr>().ok()?, r.end.parse::<IpAddr>().ok()?)));
    if let Some((start, end)) = bounds {
        if let Some(below) = step(start, false).filter(|b| start > cidr.network() && cidr.contains(b)) {
            excluded.push(range(cidr.network(), below));
        }
        if let Some(above) = step(end, true).filter(|a| end < cidr.broadcast() && cidr.contains(a)) {
            excluded.push(range(above, cidr.broadcast()));
        }
    }
    excluded
}

/// The Subnet of a `kube-ovn` network (`None` for other types or an unparsable CIDR), owned by the
/// network when it has a uid (a live object) so that deleting the network deletes it.
pub fn kube_ovn_subnet(network: &SdnNetwork, catalog: &Catalog) -> Option<Subnet> {
    if network.spec.network_type != NetworkType::KubeOvn {
        return None;
    }
    let name = network.name_any();
    let cidr = network.spec.cidr.parse::<IpNet>().ok()?.trunc();
    // Kube-OVN's own default: the first address of the CIDR.
    let gateway = network.spec.gateway.clone().or_else(|| step(cidr.network(), true).map(|g| g.to_string()))?;
    let allow_subnets: Vec<String> = isolation_domain_blocks(network, catalog)
        .into_iter()
        .map(|b| b.cidr)
        .filter(|c| *c != cidr.to_string())
        .collect();
    let owner = network.uid().map(|uid| OwnerReference {
        api_version: SdnNetwork::api_version(&()).into_owned(),
        kind: SdnNetwork::kind(&()).into_owned(),
        name: name.clone(),
        uid,
        controller: Some(true),
        block_owner_deletion: None,
    });
    let mut labels: BTreeMap<String, String> = labels::operator_owned();
    labels.insert(labels::NETWORK.into(), name.clone());
    Some(Subnet {
        metadata: ObjectMeta {
            name: Some(subnet_name(&name)),
            labels: Some(labels),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: SubnetSpec {
            protocol: if cidr.addr().is_ipv4() { "IPv4" } else { "IPv6" }.into(),
            cidr_block: cidr.to_string(),
            exclude_ips: exclude_ips(network, cidr, &gateway),
            gateway,
            provider: attachment_provider(&name, PROVIDER_NAMESPACE),
            private: true,
            allow_subnets,
            nat_outgoing: false,
        },
    })
}

/// The Subnets of every `kube-ovn` network in the catalog.
pub fn kube_ovn_subnets(catalog: &Catalog) -> Vec<Subnet> {
    catalog.networks.iter().filter_map(|network| kube_ovn_subnet(network, catalog)).collect()
}

#[cfg(test)]
mod tests;
