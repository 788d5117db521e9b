//! Every network type with and without isolation and security domains.

use serde_json::{Value, json};

use super::*;
use crate::api::{Isolation, TenantSpec};

fn network(name: &str, network_type: &str, cidr: &str, security: Option<&str>, isolation: Option<&str>) -> SdnNetwork {
    let mut spec = json!({"type": network_type, "cidr": cidr});
    if network_type != "kube-ovn" {
        spec["master"] = json!("eth1");
    }
    if let Some(domain) = security {
        spec["securityDomain"] = json!(domain);
    }
    if let Some(domain) = isolation {
        spec["isolationDomain"] = json!(domain);
    }
    serde_json::from_value(
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SdnNetwork", "metadata": {"name": name}, "spec": spec}),
    )
    .unwrap()
}

fn tenant(name: &str, namespaces: &[&str], networks: &[&str]) -> Tenant {
    Tenant::new(
        name,
        TenantSpec {
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
            networks: networks.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        },
    )
}

fn catalog(networks: Vec<SdnNetwork>) -> Catalog {
    Catalog { networks, ..Default::default() }
}

fn peers_json(policy: &MultiNetworkPolicy) -> (Value, Value) {
    let ingress = serde_json::to_value(&policy.spec.ingress[0].from).unwrap();
    let egress = serde_json::to_value(&policy.spec.egress[0].to).unwrap();
    (ingress, egress)
}

fn same_tenant(name: &str) -> Value {
    json!({"namespaceSelector": {"matchLabels": {"scs.dev/tenant": name}}})
}

#[test]
fn each_network_type_gets_a_default_deny_policy_per_namespace_naming_its_attachments() {
    for (network_type, attachments) in [
        ("macvlan", "acme-prod/lan,acme-prod/lan.static,acme-dev/lan,acme-dev/lan.static"),
        ("ipvlan", "acme-prod/lan,acme-prod/lan.static,acme-dev/lan,acme-dev/lan.static"),
        ("bridge", "acme-prod/lan,acme-prod/lan.static,acme-dev/lan,acme-dev/lan.static"),
        ("kube-ovn", "acme-prod/lan,acme-dev/lan"),
    ] {
        let networks = catalog(vec![network("lan", network_type, "192.168.10.0/24", None, None)]);
        let policies = multi_network_policies(&tenant("acme", &["acme-prod", "acme-dev"], &["lan", "gone"]), &networks);
        let where_: Vec<_> = policies
            .iter()
            .map(|p| format!("{}/{}", p.metadata.namespace.as_deref().unwrap(), p.metadata.name.as_deref().unwrap()))
            .collect();
        assert_eq!(
            where_,
            ["acme-prod/scs-network-lan", "acme-dev/scs-network-lan"],
            "{network_type}: one per namespace, unknown networks skipped"
        );
        for policy in &policies {
            assert_eq!(policy.annotations()[POLICY_FOR], attachments, "{network_type}");
            assert_eq!(policy.labels()[labels::TENANT], "acme");
            assert_eq!(policy.labels()[labels::NETWORK], "lan");
            assert_eq!(policy.labels()[labels::MANAGED_BY], labels::OPERATOR);
            assert_eq!(policy.spec.pod_selector, LabelSelector::default(), "every pod of the namespace");
            assert_eq!(policy.spec.policy_types, ["Ingress", "Egress"], "{network_type}: isolated both ways");
            // Without an isolation domain: the tenant's own pods and nothing else.
            let (ingress, egress) = peers_json(policy);
            assert_eq!(ingress, json!([same_tenant("acme")]), "{network_type}");
            assert_eq!(egress, ingress, "{network_type}: the same peers both ways");
        }
    }
}

#[test]
fn an_isolation_domain_opens_its_networks_in_the_same_security_domain_only() {
    let networks = catalog(vec![
        network("office", "macvlan", "192.168.100.0/24", Some("office"), Some("finance")),
        // Same isolation and security domain: reachable.
        network("ledger", "kube-ovn", "10.210.0.0/16", Some("office"), Some("finance")),
        // Same isolation domain, another security domain: never.
        network("vault", "ipvlan", "10.220.0.0/16", Some("restricted"), Some("finance")),
        // Another isolation domain: not part of it.
        network("lab", "bridge", "10.230.0.0/16", Some("office"), Some("research")),
        // A network of another security domain carved out of an allowed one.
        network("hsm", "macvlan", "10.210.200.0/24", Some("restricted"), None),
    ]);
    let policies = multi_network_policies(&tenant("acme", &["acme"], &["office"]), &networks);
    let (ingress, egress) = peers_json(&policies[0]);
    assert_eq!(
        ingress,
        json!([
            same_tenant("acme"),
            {"ipBlock": {"cidr": "192.168.100.0/24", "except": []}},
            {"ipBlock": {"cidr": "10.210.0.0/16", "except": ["10.210.200.0/24"]}},
        ])
    );
    assert_eq!(egress, ingress);
    for forbidden in ["10.220.0.0/16", "10.230.0.0/16"] {
        assert!(!ingress.to_string().contains(forbidden), "{forbidden} must not be reachable: {ingress}");
    }
}

#[test]
fn security_domains_are_never_crossed_even_by_the_networks_own_cidr() {
    // Two networks of the same isolation domain: one security domain unset, one set. Unset is a
    // domain of its own, so neither reaches the other.
    let networks = catalog(vec![
        network("a", "macvlan", "10.1.0.0/24", None, Some("shared")),
        network("b", "macvlan", "10.2.0.0/24", Some("dmz"), Some("shared")),
        // The same CIDR declared again under another security domain: nothing of it is open.
        network("c", "macvlan", "10.1.0.0/24", Some("dmz"), None),
        // A bigger network of another security domain holding a's CIDR.
        network("d", "macvlan", "10.0.0.0/8", Some("core"), None),
    ]);
    assert!(isolation_domain_blocks(networks.network("a").unwrap(), &networks).is_empty(), "a lies in c and d");
    let b = isolation_domain_blocks(networks.network("b").unwrap(), &networks);
    assert!(b.is_empty(), "b lies inside d (another security domain): {b:?}");
    let only = catalog(vec![network("a", "macvlan", "10.1.0.0/24", None, Some("shared"))]);
    assert_eq!(
        isolation_domain_blocks(only.network("a").unwrap(), &only),
        vec![IPBlock { cidr: "10.1.0.0/24".into(), except: Some(vec![]) }],
        "alone in its domain: its own CIDR (its hosts and other tenants on it)"
    );
}

#[test]
fn every_domain_combination_keeps_the_same_tenant_peer_and_only_adds_addresses() {
    for network_type in ["macvlan", "ipvlan", "bridge", "kube-ovn"] {
        for security in [None, Some("office")] {
            for isolation in [None, Some("finance")] {
                let networks = catalog(vec![
                    network("n", network_type, "10.9.0.0/24", security, isolation),
                    network("peer", "macvlan", "10.8.0.0/24", security, isolation),
                ]);
                let policies = multi_network_policies(&tenant("t", &["t-a", "t-b"], &["n"]), &networks);
                assert_eq!(policies.len(), 2, "{network_type} {security:?} {isolation:?}");
                let (ingress, _) = peers_json(&policies[0]);
                let peers = ingress.as_array().unwrap();
                assert_eq!(peers[0], same_tenant("t"));
                let blocks: Vec<&str> = peers[1..].iter().map(|p| p["ipBlock"]["cidr"].as_str().unwrap()).collect();
                let expected: &[&str] = if isolation.is_some() { &["10.9.0.0/24", "10.8.0.0/24"] } else { &[] };
                assert_eq!(blocks, expected, "{network_type} {security:?} {isolation:?}");
                assert!(
                    peers[1..].iter().all(|p| p.get("namespaceSelector").is_none() && p.get("podSelector").is_none())
                );
            }
        }
    }
}

#[test]
fn no_policies_when_the_tenant_switched_network_isolation_off() {
    let networks = catalog(vec![network("lan", "macvlan", "192.168.10.0/24", None, None)]);
    let mut open = tenant("acme", &["acme"], &["lan"]);
    open.spec.isolation = Some(Isolation { network: false, pod_security: None });
    assert!(multi_network_policies(&open, &networks).is_empty());
}
