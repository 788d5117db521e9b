//! What the operator lists in a namespace leaving its tenant covers everything a tenant role can
//! create, and the operator may list it: through its own ClusterRole or, for the kinds that one
//! does not read, through the list-only `scs:operator-inventory` it binds to itself.

use std::collections::BTreeSet;
use std::path::Path;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::ClusterRole;
use scs_operator::builders::rbac::BOUND_CLUSTER_ROLES;
use scs_operator::controller::release::{
    DEFAULT_OPERATOR_NAMESPACE, INVENTORY, INVENTORY_ROLE, OPERATOR_SERVICE_ACCOUNT, inventory_binding,
};
use serde::Deserialize;
use serde_json::Value;

fn documents(file: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/base").join(file);
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text).map(|d| Value::deserialize(d).unwrap()).filter(|v| !v.is_null()).collect()
}

fn cluster_role(file: &str, name: &str) -> ClusterRole {
    let document = documents(file)
        .into_iter()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no ClusterRole {name} in {file}"));
    serde_json::from_value(document).unwrap()
}

/// `(group, resource)` pairs `role` grants `verb` on (no subresources, no resource names).
fn granted(role: &ClusterRole, verb: &str) -> BTreeSet<(String, String)> {
    let mut pairs = BTreeSet::new();
    for rule in role.rules.iter().flatten() {
        if !rule.verbs.iter().any(|v| v == verb) || rule.resource_names.as_ref().is_some_and(|n| !n.is_empty()) {
            continue;
        }
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten().filter(|r| !r.contains('/')) {
                pairs.insert((group.clone(), resource.clone()));
            }
        }
    }
    pairs
}

fn inventory() -> BTreeSet<(String, String)> {
    INVENTORY.iter().map(|(group, _, _, plural)| (group.to_string(), plural.to_string())).collect()
}

#[test]
fn everything_a_tenant_role_can_create_is_looked_for() {
    for role in ["scs:project-admin", "scs:member"] {
        let creatable = granted(&cluster_role("roles.yaml", role), "create");
        assert!(creatable.len() >= 10, "{role}: {creatable:?}");
        let looked_for = inventory();
        let missed: Vec<_> = creatable.difference(&looked_for).collect();
        assert!(missed.is_empty(), "{role} can create {missed:?}, which a leaving namespace is not checked for");
    }
}

#[test]
fn the_operator_may_list_what_it_looks_for_and_no_more() {
    let own = granted(&cluster_role("operator-rbac.yaml", "scs-operator"), "list");
    let role = cluster_role("roles.yaml", INVENTORY_ROLE);
    let through_binding = granted(&role, "list");
    let missing: Vec<_> =
        inventory().into_iter().filter(|k| !own.contains(k) && !through_binding.contains(k)).collect();
    assert!(missing.is_empty(), "the operator cannot list {missing:?}");
    let needless: Vec<_> = through_binding.iter().filter(|k| own.contains(*k) || !inventory().contains(*k)).collect();
    assert!(needless.is_empty(), "{INVENTORY_ROLE} grants more than needed: {needless:?}");
    for rule in role.rules.iter().flatten() {
        assert_eq!(rule.verbs, ["list"], "{INVENTORY_ROLE} lists, nothing else");
    }
    assert!(through_binding.contains(&(String::new(), "secrets".to_string())), "Secrets are only listed this way");
    assert!(!own.contains(&(String::new(), "secrets".to_string())), "never cluster-wide");
}

#[test]
fn the_binding_names_the_operators_service_account_and_may_be_made() {
    assert!(BOUND_CLUSTER_ROLES.contains(&INVENTORY_ROLE), "the operator needs bind on {INVENTORY_ROLE}");
    let account = documents("operator-rbac.yaml").into_iter().find(|d| d["kind"] == "ServiceAccount").unwrap();
    let account: ServiceAccount = serde_json::from_value(account).unwrap();
    assert_eq!(account.metadata.name.as_deref(), Some(OPERATOR_SERVICE_ACCOUNT));
    assert_eq!(account.metadata.namespace.as_deref(), Some(DEFAULT_OPERATOR_NAMESPACE));
    let binding = inventory_binding("acme", "acme-prod", DEFAULT_OPERATOR_NAMESPACE);
    assert_eq!(binding.object["subjects"][0]["name"], OPERATOR_SERVICE_ACCOUNT);
    assert_eq!(binding.object["subjects"][0]["namespace"], DEFAULT_OPERATOR_NAMESPACE);
}
