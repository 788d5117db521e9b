//! MultiNetworkPolicies fencing a tenant's secondary interfaces.
//!
//! Kubernetes NetworkPolicy does not see Multus secondary interfaces, so each network a tenant
//! attaches to gets, in each of its namespaces, one `MultiNetworkPolicy` (`k8s.cni.cncf.io/v1beta1`)
//! whose `k8s.v1.cni.cncf.io/policy-for` annotation names the network's attachment definitions.
//! It selects every pod and isolates it both ways on that interface, then allows:
//! - the tenant's own pods on the network (namespaces labelled with the tenant), and
//! - when the network has an `isolationDomain`: every address of the networks of that domain that
//!   share its `securityDomain` (the network itself included: its other tenants and its hosts),
//!   never a network of another security domain, whose CIDR is excepted where it lies inside.
//!
//! Implementations (multi-networkpolicy-iptables and -nftables) only look at peers' interfaces of
//! the networks the policy names, so `policy-for` lists the definitions of every namespace of the
//! tenant, `namespace/name`: a pod of another namespace of the tenant is then a peer too. The
//! pods the policy applies to are still only those of its own namespace (its `podSelector`).

use std::collections::BTreeMap;

use ipnet::IpNet;
use k8s_openapi::api::networking::v1::{IPBlock, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::{CustomResource, ResourceExt};
use serde::{Deserialize, Serialize};

use super::labels;
use super::network_attachment::attachment_names;
use crate::api::{SdnNetwork, Tenant};
use crate::catalog::Catalog;

/// The `MultiNetworkPolicy` of k8snetworkplumbingwg/multi-networkpolicy (`k8s.cni.cncf.io/v1beta1`):
/// a NetworkPolicy spec that applies to the interfaces of the attachment definitions named by
/// [`POLICY_FOR`]. Its CRD belongs to the policy implementation; we only write objects of it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "k8s.cni.cncf.io",
    version = "v1beta1",
    kind = "MultiNetworkPolicy",
    plural = "multi-networkpolicies",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct MultiNetworkPolicySpec {
    /// The pods the policy applies to; empty: all of the namespace.
    pub pod_selector: LabelSelector,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<NetworkPolicyIngressRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<NetworkPolicyEgressRule>,
}

/// Annotation naming the attachment definitions (`name` or `namespace/name`, comma-separated) a
/// MultiNetworkPolicy applies to.
pub const POLICY_FOR: &str = "k8s.v1.cni.cncf.io/policy-for";

/// Name of the policy for `network` in each tenant namespace.
pub fn policy_name(network: &str) -> String {
    format!("scs-network-{network}")
}

/// The addresses a network's `isolationDomain` lets its pods exchange traffic with: every network
/// of the domain in the same security domain, each without the networks of other security
/// domains that lie inside it. Empty without an isolation domain.
pub fn isolation_domain_blocks(network: &SdnNetwork, catalog: &Catalog) -> Vec<IPBlock> {
    let Some(domain) = &network.spec.isolation_domain else { return Vec::new() };
    let security = &network.spec.security_domain;
    let foreign: Vec<IpNet> = catalog
        .networks
        .iter()
        .filter(|other| other.spec.security_domain != *security)
        .filter_map(|other| other.spec.cidr.parse::<IpNet>().ok())
        .collect();
    // This network first, then the others of the domain by name.
    let mut members: Vec<&SdnNetwork> = catalog
        .networks
        .iter()
        .filter(|other| other.name_any() != network.name_any())
        .filter(|other| other.spec.isolation_domain.as_ref() == Some(domain) && other.spec.security_domain == *security)
        .collect();
    members.sort_by_key(|other| other.name_any());
    members.insert(0, network);
    let mut blocks: Vec<IPBlock> = Vec::new();
    for member in members {
        let Ok(cidr) = member.spec.cidr.parse::<IpNet>() else { continue };
        let cidr = cidr.trunc();
        // Inside (or equal to) a network of another security domain: never reachable.
        if foreign.iter().any(|f| f.trunc().contains(&cidr)) || blocks.iter().any(|b| b.cidr == cidr.to_string()) {
            continue;
        }
        let mut except: Vec<String> =
            foreign.iter().map(IpNet::trunc).filter(|f| cidr.contains(f)).map(|f| f.to_string()).collect();
        except.sort();
        except.dedup();
        // `except` even when empty: an omitted field would never be cleared from the live object.
        blocks.push(IPBlock { cidr: cidr.to_string(), except: Some(except) });
    }
    blocks
}

/// Who may talk with the tenant's pods on `network`.
fn peers(tenant: &Tenant, network: &SdnNetwork, catalog: &Catalog) -> Vec<NetworkPolicyPeer> {
    let same_tenant = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(labels::TENANT.to_string(), tenant.name_any())])),
            match_expressions: None,
        }),
        ..Default::default()
    };
    let domain = isolation_domain_blocks(network, catalog)
        .into_iter()
        .map(|block| NetworkPolicyPeer { ip_block: Some(block), ..Default::default() });
    std::iter::once(same_tenant).chain(domain).collect()
}

/// One policy per network the tenant lists (and that exists) in each of its namespaces; none when
/// the tenant's network isolation is off (as for its NetworkPolicies).
pub fn multi_network_policies(tenant: &Tenant, catalog: &Catalog) -> Vec<MultiNetworkPolicy> {
    if !tenant.network_isolated() {
        return Vec::new();
    }
    let namespaces = tenant.namespace_names();
    let mut policies = Vec::new();
    for network in catalog.networks_of(tenant) {
        let names = attachment_names(network);
        let policy_for: Vec<String> =
            namespaces.iter().flat_map(|ns| names.iter().map(move |name| format!("{ns}/{name}"))).collect();
        let peers = peers(tenant, network, catalog);
        let mut labels = labels::tenant_owned(&tenant.name_any());
        labels.insert(labels::NETWORK.into(), network.name_any());
        for namespace in &namespaces {
            policies.push(MultiNetworkPolicy {
                metadata: ObjectMeta {
                    name: Some(policy_name(&network.name_any())),
                    namespace: Some(namespace.clone()),
                    labels: Some(labels.clone()),
                    annotations: Some(BTreeMap::from([(POLICY_FOR.to_string(), policy_for.join(","))])),
                    ..Default::default()
                },
                spec: MultiNetworkPolicySpec {
                    pod_selector: LabelSelector::default(),
                    policy_types: vec!["Ingress".into(), "Egress".into()],
                    ingress: vec![NetworkPolicyIngressRule { from: Some(peers.clone()), ports: None }],
                    egress: vec![NetworkPolicyEgressRule { to: Some(peers.clone()), ports: None }],
                },
            });
        }
    }
    policies
}

#[cfg(test)]
mod tests;
