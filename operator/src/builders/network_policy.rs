//! NetworkPolicies fencing a tenant's namespaces.
//!
//! Every pod is isolated for ingress and egress, then allowed: traffic with the tenant's own
//! namespaces, DNS, and (when configured) addresses outside the cluster — an `ipBlock` that
//! excepts the cluster's pod and Service CIDRs, so other tenants' pods never match it, and the
//! nodes' and link-local addresses (kubelet, cloud metadata at 169.254.169.254), which are never
//! "outside" — and pods of the configured platform namespaces (ingress controller, monitoring).
//! NetworkPolicy does not cover Multus secondary interfaces; MultiNetworkPolicy is the remedy.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::labels;
use crate::api::Tenant;
use crate::config::OperatorConfig;

/// Names of the policies, in each tenant namespace.
pub const DEFAULT_DENY: &str = "scs-default-deny";
pub const ALLOW_SAME_TENANT: &str = "scs-allow-same-tenant";
pub const ALLOW_DNS: &str = "scs-allow-dns";
/// Egress to the pre-authorization server, only while providers are configured.
pub const ALLOW_AUTHZ: &str = "scs-allow-authz";
pub const ALLOW_EXTERNAL: &str = "scs-allow-external";
pub const ALLOW_PLATFORM: &str = "scs-allow-platform";

/// Link-local ranges: cloud metadata services and node-local endpoints live there.
pub const LINK_LOCAL: [&str; 2] = ["169.254.0.0/16", "fe80::/10"];

fn selector(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector { match_labels: Some(labels), match_expressions: None }
}

fn all_pods() -> LabelSelector {
    LabelSelector::default()
}

fn tenant_peer(tenant: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(selector(BTreeMap::from([(labels::TENANT.to_string(), tenant.to_string())]))),
        ..Default::default()
    }
}

/// `ipBlock`s for "outside the cluster", one per address family.
fn external_peers(config: &OperatorConfig) -> Vec<NetworkPolicyPeer> {
    let isolation = &config.network_isolation;
    let never_outside: Vec<&str> =
        (isolation.cluster_cidrs.iter().chain(&isolation.node_cidrs)).map(String::as_str).chain(LINK_LOCAL).collect();
    [("0.0.0.0/0", false), ("::/0", true)]
        .into_iter()
        .map(|(cidr, v6)| {
            let except: Vec<String> =
                never_outside.iter().filter(|c| c.contains(':') == v6).map(|c| c.to_string()).collect();
            NetworkPolicyPeer {
                ip_block: Some(IPBlock { cidr: cidr.into(), except: (!except.is_empty()).then_some(except) }),
                ..Default::default()
            }
        })
        .collect()
}

fn policy(name: &str, namespace: &str, tenant: &str, spec: NetworkPolicySpec) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some(labels::tenant_owned(tenant)),
            ..Default::default()
        },
        spec: Some(spec),
    }
}

fn both_directions() -> Option<Vec<String>> {
    Some(vec!["Ingress".into(), "Egress".into()])
}

/// The tenant's policies in every namespace; none when `isolation.network` is off.
pub fn network_policies(tenant: &Tenant, config: &OperatorConfig) -> Vec<NetworkPolicy> {
    if !tenant.network_isolated() {
        return Vec::new();
    }
    let name = tenant.name_any();
    let isolation = &config.network_isolation;
    let dns_ports = ["UDP", "TCP"]
        .map(|protocol| NetworkPolicyPort {
            protocol: Some(protocol.into()),
            port: Some(IntOrString::Int(53)),
            end_port: None,
        })
        .to_vec();
    let dns_peer = NetworkPolicyPeer {
        namespace_selector: Some(selector(BTreeMap::from([(
            "kubernetes.io/metadata.name".to_string(),
            isolation.dns_namespace.clone(),
        )]))),
        pod_selector: Some(selector(isolation.dns_pod_labels.clone())),
        ip_block: None,
    };
    let mut policies = Vec::new();
    for namespace in tenant.namespace_names() {
        policies.push(policy(
            DEFAULT_DENY,
            &namespace,
            &name,
            NetworkPolicySpec { pod_selector: Some(all_pods()), policy_types: both_directions(), ..Default::default() },
        ));
        policies.push(policy(
            ALLOW_SAME_TENANT,
            &namespace,
            &name,
            NetworkPolicySpec {
                pod_selector: Some(all_pods()),
                policy_types: both_directions(),
                ingress: Some(vec![NetworkPolicyIngressRule { from: Some(vec![tenant_peer(&name)]), ports: None }]),
                egress: Some(vec![NetworkPolicyEgressRule { to: Some(vec![tenant_peer(&name)]), ports: None }]),
            },
        ));
        policies.push(policy(
            ALLOW_DNS,
            &namespace,
            &name,
            NetworkPolicySpec {
                pod_selector: Some(all_pods()),
                policy_types: Some(vec!["Egress".into()]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(vec![dns_peer.clone()]),
                    ports: Some(dns_ports.clone()),
                }]),
                ..Default::default()
            },
        ));
        if !config.authorization_providers.is_empty() {
            // The authorize init container must reach the authz-server (it authenticates callers).
            let pre = &config.pre_authorization;
            let server = NetworkPolicyPeer {
                namespace_selector: Some(selector(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_string(),
                    pre.server_namespace.clone(),
                )]))),
                pod_selector: Some(selector(BTreeMap::from([(
                    "app.kubernetes.io/name".to_string(),
                    crate::authz::SERVER_APP.to_string(),
                )]))),
                ip_block: None,
            };
            policies.push(policy(
                ALLOW_AUTHZ,
                &namespace,
                &name,
                NetworkPolicySpec {
                    pod_selector: Some(all_pods()),
                    policy_types: Some(vec!["Egress".into()]),
                    egress: Some(vec![NetworkPolicyEgressRule {
                        to: Some(vec![server]),
                        ports: Some(vec![NetworkPolicyPort {
                            protocol: Some("TCP".into()),
                            port: Some(IntOrString::Int(pre.server_port())),
                            end_port: None,
                        }]),
                    }]),
                    ..Default::default()
                },
            ));
        }
        if !isolation.allow_from_namespaces.is_empty() {
            let platform = NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector {
                    match_labels: None,
                    match_expressions: Some(vec![LabelSelectorRequirement {
                        key: "kubernetes.io/metadata.name".into(),
                        operator: "In".into(),
                        values: Some(isolation.allow_from_namespaces.clone()),
                    }]),
                }),
                ..Default::default()
            };
            policies.push(policy(
                ALLOW_PLATFORM,
                &namespace,
                &name,
                NetworkPolicySpec {
                    pod_selector: Some(all_pods()),
                    policy_types: Some(vec!["Ingress".into()]),
                    ingress: Some(vec![NetworkPolicyIngressRule { from: Some(vec![platform]), ports: None }]),
                    ..Default::default()
                },
            ));
        }
        if isolation.allow_external {
            policies.push(policy(
                ALLOW_EXTERNAL,
                &namespace,
                &name,
                NetworkPolicySpec {
                    pod_selector: Some(all_pods()),
                    policy_types: both_directions(),
                    ingress: Some(vec![NetworkPolicyIngressRule { from: Some(external_peers(config)), ports: None }]),
                    egress: Some(vec![NetworkPolicyEgressRule { to: Some(external_peers(config)), ports: None }]),
                },
            ));
        }
    }
    policies
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Isolation, TenantSpec};

    fn tenant(network: bool) -> Tenant {
        Tenant::new(
            "acme",
            TenantSpec {
                namespaces: vec!["acme-prod".into(), "acme-dev".into()],
                isolation: Some(Isolation { network, pod_security: None }),
                ..Default::default()
            },
        )
    }

    fn by_name<'a>(policies: &'a [NetworkPolicy], namespace: &str, name: &str) -> &'a NetworkPolicySpec {
        policies
            .iter()
            .find(|p| p.metadata.namespace.as_deref() == Some(namespace) && p.metadata.name.as_deref() == Some(name))
            .and_then(|p| p.spec.as_ref())
            .unwrap_or_else(|| panic!("no {namespace}/{name}"))
    }

    #[test]
    fn default_deny_isolates_every_pod_both_ways() {
        let policies = network_policies(&tenant(true), &OperatorConfig::default());
        assert_eq!(policies.len(), 8);
        let deny = by_name(&policies, "acme-dev", DEFAULT_DENY);
        assert_eq!(deny.pod_selector, Some(LabelSelector::default()));
        assert_eq!(deny.policy_types.as_deref(), Some(&["Ingress".to_string(), "Egress".to_string()][..]));
        assert!(deny.ingress.is_none() && deny.egress.is_none());
    }

    #[test]
    fn same_tenant_namespaces_may_talk() {
        let policies = network_policies(&tenant(true), &OperatorConfig::default());
        let allow = by_name(&policies, "acme-prod", ALLOW_SAME_TENANT);
        let from = &allow.ingress.as_ref().unwrap()[0].from.as_ref().unwrap()[0];
        let to = &allow.egress.as_ref().unwrap()[0].to.as_ref().unwrap()[0];
        for peer in [from, to] {
            let labels = peer.namespace_selector.as_ref().unwrap().match_labels.as_ref().unwrap();
            assert_eq!(labels[labels::TENANT], "acme");
            assert!(peer.pod_selector.is_none() && peer.ip_block.is_none());
        }
    }

    #[test]
    fn dns_egress_to_cluster_dns_only() {
        let policies = network_policies(&tenant(true), &OperatorConfig::default());
        let dns = by_name(&policies, "acme-prod", ALLOW_DNS);
        assert_eq!(dns.policy_types.as_deref(), Some(&["Egress".to_string()][..]));
        let rule = &dns.egress.as_ref().unwrap()[0];
        let peer = &rule.to.as_ref().unwrap()[0];
        assert_eq!(
            peer.namespace_selector.as_ref().unwrap().match_labels.as_ref().unwrap()["kubernetes.io/metadata.name"],
            "kube-system"
        );
        assert_eq!(peer.pod_selector.as_ref().unwrap().match_labels.as_ref().unwrap()["k8s-app"], "kube-dns");
        let ports: Vec<_> = rule
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| (p.protocol.clone().unwrap(), p.port.clone().unwrap()))
            .collect();
        assert_eq!(ports, [("UDP".to_string(), IntOrString::Int(53)), ("TCP".to_string(), IntOrString::Int(53))]);
    }

    #[test]
    fn external_traffic_excepts_the_cluster_the_nodes_and_link_local() {
        let mut config = OperatorConfig::default();
        config.network_isolation.cluster_cidrs = vec!["10.0.0.0/8".into(), "fd00::/8".into()];
        config.network_isolation.node_cidrs = vec!["192.168.1.0/24".into()];
        let policies = network_policies(&tenant(true), &config);
        let external = by_name(&policies, "acme-prod", ALLOW_EXTERNAL);
        let blocks: Vec<_> = external.ingress.as_ref().unwrap()[0]
            .from
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.ip_block.clone().unwrap())
            .collect();
        assert_eq!(blocks[0].cidr, "0.0.0.0/0");
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(blocks[0].except, Some(strings(&["10.0.0.0/8", "192.168.1.0/24", "169.254.0.0/16"])));
        assert_eq!(blocks[1].cidr, "::/0");
        assert_eq!(blocks[1].except, Some(strings(&["fd00::/8", "fe80::/10"])));

        config.network_isolation.allow_external = false;
        assert!(
            network_policies(&tenant(true), &config).iter().all(|p| p.metadata.name.as_deref() != Some(ALLOW_EXTERNAL))
        );
    }

    #[test]
    fn platform_namespaces_may_reach_tenant_pods_when_configured() {
        let policies = network_policies(&tenant(true), &OperatorConfig::default());
        assert!(policies.iter().all(|p| p.metadata.name.as_deref() != Some(ALLOW_PLATFORM)));
        let mut config = OperatorConfig::default();
        config.network_isolation.allow_from_namespaces = vec!["ingress-nginx".into(), "monitoring".into()];
        let policies = network_policies(&tenant(true), &config);
        let platform = by_name(&policies, "acme-dev", ALLOW_PLATFORM);
        assert_eq!(platform.policy_types.as_deref(), Some(&["Ingress".to_string()][..]));
        assert!(platform.egress.is_none(), "tenant pods gain no way out");
        let selector = platform.ingress.as_ref().unwrap()[0].from.as_ref().unwrap()[0].namespace_selector.clone();
        let requirement = &selector.unwrap().match_expressions.unwrap()[0];
        assert_eq!(requirement.key, "kubernetes.io/metadata.name");
        assert_eq!(requirement.values.as_deref(), Some(&["ingress-nginx".to_string(), "monitoring".to_string()][..]));
    }

    #[test]
    fn tenant_pods_may_reach_the_authz_server_only_while_providers_exist() {
        let mut config = OperatorConfig::default();
        let policies = network_policies(&tenant(true), &config);
        assert!(policies.iter().all(|p| p.metadata.name.as_deref() != Some(ALLOW_AUTHZ)));
        config.authorization_providers.insert(
            "cmdb".into(),
            serde_yaml::from_str("endpoint: https://perm.example.com\ncredentialsSecret: cmdb\n").unwrap(),
        );
        let policies = network_policies(&tenant(true), &config);
        let authz = by_name(&policies, "acme-prod", ALLOW_AUTHZ);
        assert_eq!(authz.policy_types.as_deref(), Some(&["Egress".to_string()][..]));
        let rule = &authz.egress.as_ref().unwrap()[0];
        let peer = &rule.to.as_ref().unwrap()[0];
        assert_eq!(
            peer.namespace_selector.as_ref().unwrap().match_labels.as_ref().unwrap()["kubernetes.io/metadata.name"],
            "scs-system"
        );
        assert_eq!(
            peer.pod_selector.as_ref().unwrap().match_labels.as_ref().unwrap()["app.kubernetes.io/name"],
            "scs-authz-server"
        );
        assert_eq!(rule.ports.as_ref().unwrap()[0].port, Some(IntOrString::Int(8443)));
    }

    #[test]
    fn isolation_can_be_switched_off() {
        assert!(network_policies(&tenant(false), &OperatorConfig::default()).is_empty());
    }
}
