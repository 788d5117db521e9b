//! Static addresses against their network, and between the workloads of a tenant.

use serde_json::{Value, json};

use super::*;
use crate::api::TenantSpec;

/// The example office VLAN: 192.168.100.0/24, gateway .1, whereabouts hands out .20–.200 except
/// .64/28; .240/29 is excluded for the routers.
fn office() -> SdnNetwork {
    serde_json::from_value(json!({
        "apiVersion": "scs.dev/v1alpha1", "kind": "SdnNetwork", "metadata": {"name": "office-vlan"},
        "spec": {
            "type": "macvlan", "master": "eth1", "cidr": "192.168.100.0/24", "gateway": "192.168.100.1",
            "ipRange": {"start": "192.168.100.20", "end": "192.168.100.200"},
            "exclude": ["192.168.100.64/28", "192.168.100.240/29"],
        },
    }))
    .unwrap()
}

fn ovn() -> SdnNetwork {
    serde_json::from_value(json!({
        "apiVersion": "scs.dev/v1alpha1", "kind": "SdnNetwork", "metadata": {"name": "ovn-secure"},
        "spec": {"type": "kube-ovn", "cidr": "10.210.0.0/16", "gateway": "10.210.0.1"},
    }))
    .unwrap()
}

fn tenant(name: &str, namespaces: &[&str]) -> Tenant {
    Tenant::new(
        name,
        TenantSpec {
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
            networks: vec!["office-vlan".into(), "ovn-secure".into()],
            ..Default::default()
        },
    )
}

fn workload(namespace: &str, name: &str, networks: Value) -> SecureWorkload {
    serde_json::from_value(json!({
        "apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"kind": "StatefulSet", "networks": networks,
                 "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}}},
    }))
    .unwrap()
}

fn on_office(ip: &str) -> SecureWorkload {
    workload("acme-prod", "db", json!([{"name": "office-vlan", "ips": [ip]}]))
}

fn catalog(workloads: Vec<SecureWorkload>) -> Catalog {
    Catalog {
        tenants: vec![tenant("acme", &["acme-prod", "acme-dev"]), tenant("globex", &["globex"])],
        networks: vec![office(), ovn()],
        workloads,
    }
}

fn problem(ip: &str) -> Option<String> {
    let errors = static_ip_errors(&on_office(ip), &catalog(vec![]));
    assert!(errors.iter().all(|e| e.path == "spec.networks[0].ips[0]"), "{errors:?}");
    errors.into_iter().next().map(|e| e.message)
}

#[test]
fn a_static_address_must_fit_the_network_and_stay_out_of_whereabouts_range() {
    assert_eq!(problem("192.168.100.10/24"), None, "in the CIDR, below the dynamic range");
    assert_eq!(problem("192.168.100.210/24"), None, "above it");
    let cases = [
        ("192.168.200.10/24", "192.168.200.10 is outside network \"office-vlan\"'s CIDR 192.168.100.0/24"),
        ("192.168.100.10/32", "must carry network \"office-vlan\"'s prefix length: 192.168.100.10/24"),
        ("192.168.100.0/24", "192.168.100.0 is network \"office-vlan\"'s own network or broadcast address"),
        ("192.168.100.255/24", "192.168.100.255 is network \"office-vlan\"'s own network or broadcast address"),
        ("192.168.100.1/24", "192.168.100.1 is network \"office-vlan\"'s gateway"),
        ("192.168.100.241/24", "192.168.100.241 is in network \"office-vlan\"'s excluded range 192.168.100.240/29"),
        ("192.168.100.70/24", "192.168.100.70 is in network \"office-vlan\"'s excluded range 192.168.100.64/28"),
        ("fd00::10/64", "fd00::10 is outside network \"office-vlan\"'s CIDR 192.168.100.0/24"),
    ];
    for (ip, expected) in cases {
        assert_eq!(problem(ip).as_deref(), Some(expected), "{ip}");
    }
    let inside = problem("192.168.100.30/24").unwrap();
    assert!(inside.starts_with("192.168.100.30 is inside network \"office-vlan\"'s ipRange 192.168.100.20-192.168.100.200, which whereabouts hands out"), "{inside}");
}

#[test]
fn without_an_ip_range_whereabouts_owns_the_whole_cidr() {
    let mut network = office();
    network.spec.ip_range = None;
    let catalog = Catalog { networks: vec![network], ..catalog(vec![]) };
    let errors = static_ip_errors(&on_office("192.168.100.10/24"), &catalog);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].message.contains("has no ipRange"), "{}", errors[0]);
}

#[test]
fn kube_ovn_static_addresses_come_from_inside_its_range() {
    // Kube-OVN records fixed addresses in its own IPAM; its Subnet excludes what lies outside ipRange.
    let mut network = ovn();
    network.spec.ip_range = Some(crate::api::IpRange { start: "10.210.1.0".into(), end: "10.210.9.255".into() });
    network.spec.exclude = vec!["10.210.5.0/24".into()];
    let ranged = Catalog { networks: vec![office(), network], ..catalog(vec![]) };
    let problem = |ip: &str| {
        static_ip_errors(&workload("acme-prod", "db", json!([{"name": "ovn-secure", "ips": [ip]}])), &ranged)
            .into_iter()
            .next()
            .map(|e| e.message)
    };
    assert_eq!(problem("10.210.3.4/16"), None, "inside the range");
    assert_eq!(
        problem("10.210.20.4/16").as_deref(),
        Some(
            "10.210.20.4 is outside network \"ovn-secure\"'s ipRange 10.210.1.0-10.210.9.255, the only addresses its Kube-OVN Subnet hands out"
        )
    );
    assert_eq!(
        problem("10.210.5.9/16").as_deref(),
        Some("10.210.5.9 is in network \"ovn-secure\"'s excluded range 10.210.5.0/24")
    );
    assert_eq!(problem("10.210.0.1/16").as_deref(), Some("10.210.0.1 is network \"ovn-secure\"'s gateway"));
    assert_eq!(
        problem("10.211.0.4/16").as_deref(),
        Some("10.211.0.4 is outside network \"ovn-secure\"'s CIDR 10.210.0.0/16")
    );
    assert_eq!(
        problem("10.210.3.4/24").as_deref(),
        Some("must carry network \"ovn-secure\"'s prefix length: 10.210.3.4/16")
    );
    // Without a range: anywhere in the CIDR but the gateway and exclusions.
    assert_eq!(
        static_ip_errors(
            &workload("acme-prod", "db", json!([{"name": "ovn-secure", "ips": ["10.210.200.4/16"]}])),
            &catalog(vec![])
        ),
        vec![]
    );
}

#[test]
fn paths_name_the_attachment_and_the_address() {
    let workload = workload(
        "acme-prod",
        "db",
        json!([{"name": "ovn-secure"}, {"name": "office-vlan", "ips": ["192.168.100.10/24", "192.168.100.1/24"]}]),
    );
    let errors = static_ip_errors(&workload, &catalog(vec![]));
    assert_eq!(errors.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), ["spec.networks[1].ips[1]"]);
}

#[test]
fn two_workloads_of_a_tenant_may_not_share_an_address() {
    let first = workload("acme-dev", "cache", json!([{"name": "office-vlan", "ips": ["192.168.100.10/24"]}]));
    let second = workload("acme-prod", "db", json!([{"name": "office-vlan", "ips": ["192.168.100.10/24"]}]));
    let elsewhere = workload("acme-prod", "web", json!([{"name": "ovn-secure", "ips": ["192.168.100.10/24"]}]));
    let twice = workload(
        "acme-prod",
        "solo",
        json!([{"name": "office-vlan", "ips": ["192.168.100.11/24"]}, {"name": "office-vlan", "ips": ["192.168.100.11/24"]}]),
    );
    // Whatever the order of the input, the later workload (by namespace, then name) is in error.
    for workloads in [vec![second.clone(), first.clone()], vec![first, second]] {
        let mut all = workloads;
        all.extend([elsewhere.clone(), twice.clone()]);
        let errors: Vec<String> = check(&catalog(all), &OperatorConfig::default())
            .into_iter()
            .filter(|(_, e)| e.path.contains(".ips["))
            .map(|(key, error)| format!("{key}: {error}"))
            .collect();
        assert_eq!(
            errors,
            [
                "SecureWorkload acme-prod/db: spec.networks[0].ips[0]: 192.168.100.10 on network \"office-vlan\" is already requested by SecureWorkload acme-dev/cache",
                "SecureWorkload acme-prod/solo: spec.networks[1].ips[0]: 192.168.100.11 on network \"office-vlan\" is requested twice",
                "SecureWorkload acme-prod/web: spec.networks[0].ips[0]: 192.168.100.10 is outside network \"ovn-secure\"'s CIDR 10.210.0.0/16",
            ]
        );
    }
}

#[test]
fn a_shared_network_is_one_address_space_across_tenants() {
    // Two tenants on the same flat network: the same static address would be an ARP takeover.
    let mut ours = workload("acme-prod", "db", json!([{"name": "office-vlan", "ips": ["192.168.100.10/24"]}]));
    let mut theirs = workload("globex", "db", json!([{"name": "office-vlan", "ips": ["192.168.100.10/24"]}]));
    ours.metadata.creation_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-01-01T00:00:00Z".parse().unwrap()));
    theirs.metadata.creation_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-02-01T00:00:00Z".parse().unwrap()));
    let elsewhere = workload("globex", "web", json!([{"name": "office-vlan", "ips": ["192.168.100.11/24"]}]));
    let errors: Vec<String> =
        check(&catalog(vec![theirs.clone(), ours.clone(), elsewhere]), &OperatorConfig::default())
            .into_iter()
            .filter(|(_, e)| e.path.contains(".ips["))
            .map(|(key, error)| format!("{key}: {error}"))
            .collect();
    assert_eq!(
        errors,
        [
            "SecureWorkload globex/db: spec.networks[0].ips[0]: 192.168.100.10 on network \"office-vlan\" is already requested by a workload of another tenant"
        ],
        "the older workload keeps it; the other tenant is not named"
    );
    assert_eq!(foreign_static_ip_conflicts(&ours, &[]), vec![]);
    assert_eq!(foreign_static_ip_conflicts(&theirs, &[&ours]).len(), 1);
}

#[test]
fn the_older_workload_keeps_the_address() {
    let mut old = workload("acme-prod", "zeta", json!([{"name": "office-vlan", "ips": ["192.168.100.10/24"]}]));
    let mut new = workload("acme-prod", "alpha", json!([{"name": "office-vlan", "ips": ["192.168.100.10/24"]}]));
    old.metadata.creation_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-01-01T00:00:00Z".parse().unwrap()));
    new.metadata.creation_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-02-01T00:00:00Z".parse().unwrap()));
    assert!(static_ip_order(&old) < static_ip_order(&new));
    assert_eq!(static_ip_conflicts(&old, &[]), vec![]);
    assert_eq!(
        static_ip_conflicts(&new, &[&old])[0].message,
        "192.168.100.10 on network \"office-vlan\" is already requested by SecureWorkload acme-prod/zeta"
    );
}
