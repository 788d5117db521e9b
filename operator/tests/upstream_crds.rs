//! What the operator writes for other projects' APIs fits their published schemas: the
//! NetworkAttachmentDefinitions (Multus), MultiNetworkPolicies (multi-networkpolicy) and Kube-OVN
//! Subnets built for every network type and domain combination are checked against the upstream
//! CRDs vendored in `tests/fixtures/upstream-crds` (source and version in its README). The cluster
//! suite installs the same CRDs on a real API server (`e2e/tests/cluster_networks.rs`).

use std::path::Path;

use scs_operator::api::{SdnNetwork, Tenant};
use scs_operator::builders::{Child, network_children, tenant_children};
use scs_operator::catalog::Catalog;
use scs_operator::config::OperatorConfig;
use scs_operator::validate::FieldError;
use scs_operator::validate::schema;
use serde_json::{Value, json};

/// The `spec` schema of `kind`'s served version in the vendored CRD `file`.
fn spec_schema(file: &str, version: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upstream-crds").join(file);
    let crd: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let served = crd["spec"]["versions"].as_array().unwrap().iter().find(|v| v["name"] == version).cloned();
    let served = served.unwrap_or_else(|| panic!("{file} has no version {version}"));
    assert_eq!(served["served"], true, "{file} {version} is served");
    served["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

fn errors(schema: &Value, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    schema::check(schema, &object["spec"], "spec", &mut errors);
    errors
}

fn network(name: &str, network_type: &str, cidr: &str, security: Option<&str>, isolation: Option<&str>) -> SdnNetwork {
    let mut spec = json!({"type": network_type, "cidr": cidr, "gateway": cidr.replace(".0/", ".1/").split('/').next().unwrap(),
                          "ipRange": {"start": cidr.replace(".0/24", ".20"), "end": cidr.replace(".0/24", ".200")},
                          "exclude": [cidr.replace(".0/24", ".64/28")]});
    if network_type != "kube-ovn" {
        spec["master"] = json!("eth1");
        spec["vlan"] = json!(100);
    }
    if let Some(domain) = security {
        spec["securityDomain"] = json!(domain);
    }
    if let Some(domain) = isolation {
        spec["isolationDomain"] = json!(domain);
    }
    let mut object: SdnNetwork = serde_json::from_value(
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SdnNetwork", "metadata": {"name": name}, "spec": spec}),
    )
    .unwrap();
    object.metadata.uid = Some(format!("uid-{name}"));
    object
}

/// Every network type with each combination of security and isolation domain, and two tenants
/// attached to all of them.
fn everything() -> Vec<Child> {
    let mut networks = Vec::new();
    let mut index = 0;
    for network_type in ["macvlan", "ipvlan", "bridge", "kube-ovn"] {
        for security in [None, Some("office"), Some("restricted")] {
            for isolation in [None, Some("finance")] {
                index += 1;
                networks.push(network(
                    &format!("net-{index}"),
                    network_type,
                    &format!("10.{index}.0.0/24"),
                    security,
                    isolation,
                ));
            }
        }
    }
    let names: Vec<String> = networks.iter().map(|n| n.metadata.name.clone().unwrap()).collect();
    let tenant = |name: &str| -> Tenant {
        serde_json::from_value(json!({"apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": name},
                                      "spec": {"namespaces": [format!("{name}-a"), format!("{name}-b")], "networks": names}}))
        .unwrap()
    };
    let catalog = Catalog { tenants: vec![tenant("acme"), tenant("globex")], networks, workloads: Vec::new() };
    let mut children = network_children(&catalog);
    for tenant in &catalog.tenants {
        children.extend(tenant_children(tenant, &catalog, &OperatorConfig::default()));
    }
    children
}

#[test]
fn multi_network_policies_fit_the_upstream_schema() {
    let schema = spec_schema("multi-networkpolicies.yaml", "v1beta1");
    let policies: Vec<Child> = everything().into_iter().filter(|c| c.kind == "MultiNetworkPolicy").collect();
    assert_eq!(policies.len(), 2 * 2 * 24, "two tenants, two namespaces each, 24 networks");
    for policy in &policies {
        assert_eq!(policy.api_version, "k8s.cni.cncf.io/v1beta1");
        assert_eq!(
            errors(&schema, &policy.object),
            vec![],
            "{}/{}: {}",
            policy.namespace.as_deref().unwrap(),
            policy.name,
            policy.object
        );
    }
    // The check can fail: a policy without its required podSelector, or a peer of the wrong shape.
    let mut broken = policies[0].object.clone();
    broken["spec"].as_object_mut().unwrap().remove("podSelector");
    assert!(!errors(&schema, &broken).is_empty());
    let mut broken = policies[0].object.clone();
    broken["spec"]["ingress"][0]["from"][0]["ipBlock"] = json!({"except": "10.0.0.0/8"});
    assert!(!errors(&schema, &broken).is_empty());
}

#[test]
fn kube_ovn_subnets_fit_the_upstream_schema() {
    let schema = spec_schema("kube-ovn-subnets.yaml", "v1");
    let subnets: Vec<Child> = everything().into_iter().filter(|c| c.kind == "Subnet").collect();
    assert_eq!(subnets.len(), 6, "one per kube-ovn network");
    for subnet in &subnets {
        assert_eq!(subnet.api_version, "kubeovn.io/v1");
        assert!(subnet.namespace.is_none());
        assert_eq!(errors(&schema, &subnet.object), vec![], "{}: {}", subnet.name, subnet.object);
    }
    let mut broken = subnets[0].object.clone();
    broken["spec"]["private"] = json!("yes");
    assert!(!errors(&schema, &broken).is_empty());
    let mut broken = subnets[0].object.clone();
    broken["spec"]["namespace"] = json!(["acme-a"]);
    assert!(!errors(&schema, &broken).is_empty(), "unknown fields are refused");
}

#[test]
fn attachment_definitions_fit_the_upstream_schema() {
    let schema = spec_schema("network-attachment-definitions.yaml", "v1");
    let definitions: Vec<Child> =
        everything().into_iter().filter(|c| c.kind == "NetworkAttachmentDefinition").collect();
    assert_eq!(definitions.len(), 2 * 2 * (18 * 2 + 6), "a static twin for each whereabouts network");
    for definition in &definitions {
        assert_eq!(errors(&schema, &definition.object), vec![], "{}", definition.name);
    }
}
