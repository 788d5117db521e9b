use serde_json::json;

use super::*;

fn network(name: &str, spec: serde_json::Value) -> SdnNetwork {
    serde_json::from_value(
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SdnNetwork", "metadata": {"name": name}, "spec": spec}),
    )
    .unwrap()
}

fn ovn(spec: serde_json::Value) -> SdnNetwork {
    let mut full = json!({"type": "kube-ovn", "cidr": "10.210.0.0/16", "gateway": "10.210.0.1"});
    for (key, value) in spec.as_object().unwrap() {
        full[key] = value.clone();
    }
    network("ovn-secure", full)
}

#[test]
fn a_kube_ovn_network_becomes_a_private_subnet_with_what_the_admin_declared() {
    let secure = ovn(json!({
        "ipRange": {"start": "10.210.1.0", "end": "10.210.9.255"},
        "exclude": ["10.210.5.0/24", "10.210.7.7/32"],
    }));
    let catalog = Catalog { networks: vec![secure.clone()], ..Default::default() };
    let subnet = kube_ovn_subnet(&secure, &catalog).unwrap();
    assert_eq!(subnet.name_any(), "scs-ovn-secure");
    assert_eq!(subnet.labels()[labels::NETWORK], "ovn-secure");
    assert_eq!(subnet.labels()[labels::MANAGED_BY], labels::OPERATOR);
    assert!(subnet.metadata.namespace.is_none(), "cluster-scoped");
    assert!(subnet.owner_references().is_empty(), "no uid (render): no owner");
    assert_eq!(
        serde_json::to_value(&subnet.spec).unwrap(),
        json!({
            "protocol": "IPv4",
            "cidrBlock": "10.210.0.0/16",
            "gateway": "10.210.0.1",
            // The gateway, the exclusions, and everything outside ipRange.
            "excludeIps": ["10.210.0.1", "10.210.5.0..10.210.5.255", "10.210.7.7", "10.210.0.0..10.210.0.255", "10.210.10.0..10.210.255.255"],
            "provider": "ovn-secure.scs-system.ovn",
            "private": true,
            "natOutgoing": false,
            "allowSubnets": [],
        }),
        "no namespaces: Kube-OVN would move those namespaces' primary interfaces onto it"
    );
}

#[test]
fn a_live_network_owns_its_subnet_and_other_types_get_none() {
    let mut secure = ovn(json!({}));
    secure.metadata.uid = Some("u-1".into());
    let catalog = Catalog { networks: vec![secure.clone()], ..Default::default() };
    let owner = &kube_ovn_subnet(&secure, &catalog).unwrap().metadata.owner_references.unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()), ("SdnNetwork", "ovn-secure", "u-1"));
    assert_eq!(owner.api_version, "scs.dev/v1alpha1");
    assert_eq!(owner.controller, Some(true));
    assert_eq!(owner.block_owner_deletion, None, "would need update on sdnnetworks/finalizers");
    for other in ["macvlan", "ipvlan", "bridge"] {
        let flat = network("lan", json!({"type": other, "master": "eth1", "cidr": "10.1.0.0/24"}));
        assert!(kube_ovn_subnet(&flat, &catalog).is_none(), "{other}");
    }
}

#[test]
fn an_isolation_domain_allows_the_same_security_domains_networks_only() {
    let secure = ovn(json!({"securityDomain": "office", "isolationDomain": "finance"}));
    let networks = vec![
        secure.clone(),
        network(
            "office",
            json!({"type": "macvlan", "master": "eth1", "cidr": "192.168.100.0/24", "securityDomain": "office", "isolationDomain": "finance"}),
        ),
        network(
            "vault",
            json!({"type": "macvlan", "master": "eth1", "cidr": "10.220.0.0/16", "securityDomain": "restricted", "isolationDomain": "finance"}),
        ),
    ];
    let catalog = Catalog { networks, ..Default::default() };
    let subnet = kube_ovn_subnet(&secure, &catalog).unwrap();
    assert_eq!(subnet.spec.allow_subnets, ["192.168.100.0/24"]);
    assert!(subnet.spec.private);
    let alone = ovn(json!({"isolationDomain": "finance"}));
    assert!(
        kube_ovn_subnet(&alone, &Catalog { networks: vec![alone.clone()], ..Default::default() })
            .unwrap()
            .spec
            .allow_subnets
            .is_empty()
    );
}

#[test]
fn ipv6_and_ranges_at_the_edges() {
    let v6 = network(
        "v6",
        json!({"type": "kube-ovn", "cidr": "fd00:10::/64", "ipRange": {"start": "fd00:10::", "end": "fd00:10::ffff"}}),
    );
    let subnet = kube_ovn_subnet(&v6, &Catalog::default()).unwrap();
    assert_eq!(subnet.spec.protocol, "IPv6");
    assert_eq!(
        subnet.spec.exclude_ips,
        ["fd00:10::1", "fd00:10::1:0..fd00:10::ffff:ffff:ffff:ffff"],
        "the default gateway, nothing below a range starting at the network"
    );
    assert_eq!(subnet.spec.gateway, "fd00:10::1", "Kube-OVN's default, written by us");
}

#[test]
fn pod_annotations_name_the_attachment_provider_kube_ovn_derives() {
    assert_eq!(
        logical_switch_annotation("ovn-secure", "acme-prod"),
        "ovn-secure.acme-prod.ovn.kubernetes.io/logical_switch"
    );
    assert_eq!(ip_address_annotation("ovn-secure", "acme-prod"), "ovn-secure.acme-prod.ovn.kubernetes.io/ip_address");
}
