//! The role ClusterRoles in `manifests/base/roles.yaml` hold the permission table of DESIGN §3:
//! their rules are evaluated here the way the Kubernetes RBAC authorizer does, including the fact
//! that a RoleBinding can never reach cluster-scoped objects (other than its own Namespace).

use std::path::Path;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use scs_operator::builders::rbac::{BOUND_CLUSTER_ROLES, STORAGE_READER_ROLE};
use serde::Deserialize;

fn roles() -> Vec<ClusterRole> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/base/roles.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text).map(|d| ClusterRole::deserialize(d).unwrap()).collect()
}

fn role(name: &str) -> ClusterRole {
    roles().into_iter().find(|r| r.metadata.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("no {name}"))
}

/// `resource` may carry a subresource: `pods/log`.
fn rule_allows(rule: &PolicyRule, verb: &str, group: &str, resource: &str) -> bool {
    let has = |list: &Option<Vec<String>>, wanted: &str| list.iter().flatten().any(|v| v == "*" || v == wanted);
    let resource_matches = rule
        .resources
        .iter()
        .flatten()
        .any(|r| r == "*" || r == resource || (r.ends_with("/*") && resource.starts_with(r.trim_end_matches('*'))));
    rule.resource_names.as_ref().is_none_or(Vec::is_empty)
        && has(&rule.api_groups, group)
        && resource_matches
        && rule.verbs.iter().any(|v| v == "*" || v == verb)
}

const CLUSTER_SCOPED: &[&str] = &[
    "nodes",
    "namespaces",
    "persistentvolumes",
    "storageclasses",
    "customresourcedefinitions",
    "clusterroles",
    "runtimeclasses",
];

/// Whether `role`, bound by a RoleBinding in a tenant namespace, allows the request there.
/// Cluster-scoped resources are out of reach, except `get` of the binding's own Namespace.
fn namespaced_allows(role: &ClusterRole, verb: &str, group: &str, resource: &str) -> bool {
    let base = resource.split('/').next().unwrap();
    if CLUSTER_SCOPED.contains(&base) && !(base == "namespaces" && verb == "get") {
        return false;
    }
    role.rules.iter().flatten().any(|rule| rule_allows(rule, verb, group, resource))
}

/// Whether `role`, bound cluster-wide, allows the request.
fn cluster_allows(role: &ClusterRole, verb: &str, group: &str, resource: &str) -> bool {
    role.rules.iter().flatten().any(|rule| rule_allows(rule, verb, group, resource))
}

/// A normal user's and a project admin's shared abilities inside their namespaces.
const WORKLOAD_ABILITIES: &[(&str, &str, &str)] = &[
    ("create", "apps", "deployments"),
    ("patch", "apps", "deployments/scale"),
    ("update", "apps", "deployments"),
    ("delete", "apps", "statefulsets"),
    ("create", "apps", "daemonsets"),
    ("create", "batch", "jobs"),
    ("create", "batch", "cronjobs"),
    ("list", "apps", "controllerrevisions"),
    ("get", "", "pods/log"),
    ("create", "", "pods/exec"),
    ("delete", "", "pods"),
    ("create", "", "persistentvolumeclaims"),
    ("create", "", "configmaps"),
    ("create", "", "secrets"),
    ("create", "", "services"),
    ("create", "networking.k8s.io", "ingresses"),
    ("create", "autoscaling", "horizontalpodautoscalers"),
    ("create", "scs.dev", "secureworkloads"),
    ("get", "scs.dev", "secureworkloads/scale"),
    ("update", "scs.dev", "secureworkloads/scale"),
    ("patch", "scs.dev", "secureworkloads/scale"),
    ("create", "scs.dev", "permissiongroups"),
    ("patch", "scs.dev", "permissiongroups"),
    ("get", "", "resourcequotas"),
    ("list", "", "endpoints"),
    ("list", "discovery.k8s.io", "endpointslices"),
];

/// The fence and the cluster: out of reach for every tenant role.
const FORBIDDEN_TO_TENANTS: &[(&str, &str, &str)] = &[
    ("delete", "", "namespaces"),
    ("create", "", "namespaces"),
    ("update", "", "resourcequotas"),
    ("create", "", "resourcequotas"),
    ("create", "", "limitranges"),
    ("create", "networking.k8s.io", "networkpolicies"),
    ("delete", "networking.k8s.io", "networkpolicies"),
    ("create", "rbac.authorization.k8s.io", "roles"),
    ("create", "rbac.authorization.k8s.io", "rolebindings"),
    ("update", "rbac.authorization.k8s.io", "rolebindings"),
    ("get", "", "nodes"),
    ("patch", "", "nodes"),
    ("create", "apiextensions.k8s.io", "customresourcedefinitions"),
    ("create", "node.k8s.io", "runtimeclasses"),
    ("update", "scs.dev", "secureworkloads/status"),
    // The breaker and progress the authz-server reports.
    ("update", "scs.dev", "permissiongroups/status"),
    ("patch", "scs.dev", "permissiongroups/status"),
    ("create", "k8s.cni.cncf.io", "network-attachment-definitions"),
    // Hand-written endpoints could aim a Service at another tenant's pods or the node.
    ("create", "", "endpoints"),
    ("update", "", "endpoints"),
    ("patch", "", "endpoints"),
    ("create", "discovery.k8s.io", "endpointslices"),
    ("update", "discovery.k8s.io", "endpointslices"),
];

#[test]
fn every_bound_role_is_shipped() {
    let names: Vec<String> = roles().iter().filter_map(|r| r.metadata.name.clone()).collect();
    for bound in BOUND_CLUSTER_ROLES {
        assert!(names.iter().any(|n| n == bound), "{bound} missing from manifests/base/roles.yaml");
    }
}

#[test]
fn member_runs_workloads_but_not_the_fence() {
    let member = role("scs:member");
    for (verb, group, resource) in WORKLOAD_ABILITIES {
        assert!(namespaced_allows(&member, verb, group, resource), "member must {verb} {group}/{resource}");
    }
    for (verb, group, resource) in FORBIDDEN_TO_TENANTS {
        assert!(!namespaced_allows(&member, verb, group, resource), "member must not {verb} {group}/{resource}");
    }
    // No access at all to Namespace, StorageClass or PersistentVolume objects.
    assert!(!namespaced_allows(&member, "get", "", "namespaces"));
    assert!(!cluster_allows(&member, "list", "storage.k8s.io", "storageclasses"));
    assert!(!cluster_allows(&member, "list", "", "persistentvolumes"));
}

#[test]
fn project_admin_also_sees_its_namespace_and_storage() {
    let admin = role("scs:project-admin");
    let storage = role(STORAGE_READER_ROLE);
    for (verb, group, resource) in WORKLOAD_ABILITIES {
        assert!(namespaced_allows(&admin, verb, group, resource), "project admin must {verb} {group}/{resource}");
    }
    for (verb, group, resource) in FORBIDDEN_TO_TENANTS {
        assert!(!namespaced_allows(&admin, verb, group, resource), "project admin must not {verb} {group}/{resource}");
    }
    assert!(namespaced_allows(&admin, "get", "", "namespaces"));
    assert!(namespaced_allows(&admin, "list", "rbac.authorization.k8s.io", "rolebindings"));
    for verb in ["get", "list", "watch"] {
        assert!(cluster_allows(&storage, verb, "storage.k8s.io", "storageclasses"));
        assert!(cluster_allows(&storage, verb, "", "persistentvolumes"));
    }
    for verb in ["create", "update", "patch", "delete"] {
        assert!(!cluster_allows(&storage, verb, "storage.k8s.io", "storageclasses"), "storage is read-only");
        assert!(!cluster_allows(&storage, verb, "", "persistentvolumes"), "storage is read-only");
    }
}

#[test]
fn viewer_only_reads_and_never_secrets() {
    let viewer = role("scs:viewer");
    for rule in viewer.rules.iter().flatten() {
        for verb in &rule.verbs {
            assert!(["get", "list", "watch"].contains(&verb.as_str()), "viewer has {verb}");
        }
    }
    assert!(namespaced_allows(&viewer, "list", "apps", "deployments"));
    assert!(namespaced_allows(&viewer, "get", "", "pods/log"));
    assert!(namespaced_allows(&viewer, "get", "scs.dev", "secureworkloads"));
    assert!(namespaced_allows(&viewer, "get", "scs.dev", "secureworkloads/scale"));
    assert!(!namespaced_allows(&viewer, "get", "", "secrets"));
    assert!(!namespaced_allows(&viewer, "list", "", "secrets"));
    assert!(!namespaced_allows(&viewer, "create", "", "pods/exec"));
    for (verb, group, resource) in WORKLOAD_ABILITIES.iter().filter(|(verb, ..)| *verb != "get" && *verb != "list") {
        assert!(!namespaced_allows(&viewer, verb, group, resource), "viewer must not {verb} {group}/{resource}");
    }
}

#[test]
fn cloud_admin_runs_the_cluster() {
    let admin = role("scs:cloud-admin");
    assert!(cluster_allows(&admin, "patch", "", "nodes"));
    assert!(cluster_allows(&admin, "create", "apiextensions.k8s.io", "customresourcedefinitions"));
    assert!(cluster_allows(&admin, "create", "storage.k8s.io", "storageclasses"));
    assert!(cluster_allows(&admin, "delete", "", "namespaces"));
    assert!(cluster_allows(&admin, "create", "", "persistentvolumes"));
}

#[test]
fn tenant_roles_hold_no_dangerous_verbs_or_wildcards() {
    for name in ["scs:project-admin", "scs:member", "scs:viewer", STORAGE_READER_ROLE] {
        for rule in role(name).rules.iter().flatten() {
            for verb in &rule.verbs {
                assert!(
                    !["*", "escalate", "bind", "impersonate", "approve"].contains(&verb.as_str()),
                    "{name} has {verb}"
                );
            }
            for list in [&rule.api_groups, &rule.resources] {
                assert!(!list.iter().flatten().any(|v| v == "*"), "{name} uses a wildcard");
            }
        }
    }
}
