//! Role bindings: tenant members to the role ClusterRoles shipped in `manifests/base/roles.yaml`.
//!
//! One RoleBinding per role and namespace (subjects sorted, so the object is stable), a
//! ClusterRoleBinding per tenant that gives its project admins read access to storage. The operator
//! never writes Roles or ClusterRoles and never binds `scs:cloud-admin`: it needs only `bind` on
//! the tenant roles.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::labels;
use crate::api::{MemberKind, Tenant, TenantMember, TenantRole};

/// ClusterRole of cloud admins: bound by the static `manifests/base/cloud-admin-binding.yaml`,
/// never by the operator (`bind` on it would make the operator cluster-admin).
pub const CLOUD_ADMIN_ROLE: &str = "scs:cloud-admin";
/// ClusterRole giving project admins read access to StorageClasses and PersistentVolumes.
pub const STORAGE_READER_ROLE: &str = "scs:storage-reader";
/// ClusterRole the operator binds to itself in its tenant namespaces (list only; see
/// `controller::release`).
pub const INVENTORY_ROLE: &str = "scs:operator-inventory";
/// Every ClusterRole the operator binds (and so needs `bind` on).
pub const BOUND_CLUSTER_ROLES: [&str; 5] =
    ["scs:project-admin", "scs:member", "scs:viewer", STORAGE_READER_ROLE, INVENTORY_ROLE];

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The ClusterRole a tenant role is bound to.
pub fn cluster_role(role: TenantRole) -> &'static str {
    match role {
        TenantRole::ProjectAdmin => "scs:project-admin",
        TenantRole::Member => "scs:member",
        TenantRole::Viewer => "scs:viewer",
    }
}

fn subject(member: &TenantMember) -> Subject {
    let (kind, api_group) = match member.kind {
        MemberKind::User => ("User", Some(RBAC_GROUP.to_string())),
        MemberKind::Group => ("Group", Some(RBAC_GROUP.to_string())),
        MemberKind::ServiceAccount => ("ServiceAccount", Some(String::new())),
    };
    Subject { kind: kind.into(), name: member.name.clone(), namespace: member.namespace.clone(), api_group }
}

fn subjects_by_role(tenant: &Tenant) -> BTreeMap<TenantRole, Vec<Subject>> {
    let mut by_role: BTreeMap<TenantRole, Vec<Subject>> = BTreeMap::new();
    for member in &tenant.spec.members {
        by_role.entry(member.role).or_default().push(subject(member));
    }
    for subjects in by_role.values_mut() {
        subjects.sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
    }
    by_role
}

fn role_ref(name: &str) -> RoleRef {
    RoleRef { api_group: RBAC_GROUP.into(), kind: "ClusterRole".into(), name: name.into() }
}

/// RoleBindings in every tenant namespace, one per role that has members.
pub fn role_bindings(tenant: &Tenant) -> Vec<RoleBinding> {
    let by_role = subjects_by_role(tenant);
    let mut bindings = Vec::new();
    for namespace in tenant.namespace_names() {
        for (role, subjects) in &by_role {
            bindings.push(RoleBinding {
                metadata: ObjectMeta {
                    name: Some(cluster_role(*role).into()),
                    namespace: Some(namespace.clone()),
                    labels: Some(labels::tenant_owned(&tenant.name_any())),
                    ..Default::default()
                },
                role_ref: role_ref(cluster_role(*role)),
                subjects: Some(subjects.clone()),
            });
        }
    }
    bindings
}

/// Name of a tenant's storage-reader ClusterRoleBinding.
pub fn storage_reader_binding_name(tenant: &str) -> String {
    format!("scs:tenant:{tenant}:storage-reader")
}

/// Cluster-wide read access to storage for the tenant's project admins, if it has any.
pub fn storage_reader_binding(tenant: &Tenant) -> Option<ClusterRoleBinding> {
    let admins = subjects_by_role(tenant).remove(&TenantRole::ProjectAdmin)?;
    Some(ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(storage_reader_binding_name(&tenant.name_any())),
            labels: Some(labels::tenant_owned(&tenant.name_any())),
            ..Default::default()
        },
        role_ref: role_ref(STORAGE_READER_ROLE),
        subjects: Some(admins),
    })
}

/// Name of a tenant's self-view ClusterRole and of its ClusterRoleBinding.
pub fn self_view_name(tenant: &str) -> String {
    format!("scs:tenant:{tenant}:self")
}

/// Every member, whatever its role, once.
fn all_members(tenant: &Tenant) -> Vec<Subject> {
    let mut subjects: Vec<Subject> = subjects_by_role(tenant).into_values().flatten().collect();
    subjects.sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
    subjects.dedup();
    subjects
}

/// Lets the tenant's members read their own Tenant (status included: quota, conditions) and
/// their namespaces, by name. RBAC cannot filter a list, so `kubectl get tenant NAME` and
/// `kubectl get ns NAME` work while listing all tenants or namespaces stays refused.
pub fn self_view_role(tenant: &Tenant) -> Option<ClusterRole> {
    if tenant.spec.members.is_empty() {
        return None;
    }
    // Only what the operator holds itself (RBAC refuses granting more): no watch on the status.
    let read = |group: &str, resource: &str, verbs: &[&str], names: Vec<String>| PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(vec![resource.into()]),
        resource_names: Some(names),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        non_resource_urls: None,
    };
    Some(ClusterRole {
        metadata: ObjectMeta {
            name: Some(self_view_name(&tenant.name_any())),
            labels: Some(labels::tenant_owned(&tenant.name_any())),
            ..Default::default()
        },
        rules: Some(vec![
            read(crate::api::GROUP, "tenants", &["get", "watch"], vec![tenant.name_any()]),
            read(crate::api::GROUP, "tenants/status", &["get"], vec![tenant.name_any()]),
            read("", "namespaces", &["get", "watch"], tenant.namespace_names()),
        ]),
        aggregation_rule: None,
    })
}

/// Binds [`self_view_role`] to every member.
pub fn self_view_binding(tenant: &Tenant) -> Option<ClusterRoleBinding> {
    let subjects = all_members(tenant);
    (!subjects.is_empty()).then(|| ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(self_view_name(&tenant.name_any())),
            labels: Some(labels::tenant_owned(&tenant.name_any())),
            ..Default::default()
        },
        role_ref: role_ref(&self_view_name(&tenant.name_any())),
        subjects: Some(subjects),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::TenantSpec;

    fn member(kind: MemberKind, name: &str, role: TenantRole) -> TenantMember {
        let namespace = (kind == MemberKind::ServiceAccount).then(|| "argocd".to_string());
        TenantMember { kind, name: name.into(), namespace, role }
    }

    fn acme() -> Tenant {
        Tenant::new(
            "acme",
            TenantSpec {
                namespaces: vec!["acme-prod".into(), "acme-dev".into()],
                members: vec![
                    member(MemberKind::User, "zoe", TenantRole::Member),
                    member(MemberKind::Group, "acme-admins", TenantRole::ProjectAdmin),
                    member(MemberKind::ServiceAccount, "deployer", TenantRole::Member),
                    member(MemberKind::User, "alice", TenantRole::Member),
                ],
                ..Default::default()
            },
        )
    }

    #[test]
    fn one_binding_per_role_and_namespace_with_sorted_subjects() {
        let bindings = role_bindings(&acme());
        let keys: Vec<_> = bindings
            .iter()
            .map(|b| (b.metadata.namespace.clone().unwrap(), b.metadata.name.clone().unwrap()))
            .collect();
        assert_eq!(
            keys,
            [
                ("acme-prod".to_string(), "scs:project-admin".to_string()),
                ("acme-prod".to_string(), "scs:member".to_string()),
                ("acme-dev".to_string(), "scs:project-admin".to_string()),
                ("acme-dev".to_string(), "scs:member".to_string()),
            ]
        );
        let member_binding = &bindings[1];
        assert_eq!(member_binding.role_ref.name, "scs:member");
        assert_eq!(member_binding.role_ref.kind, "ClusterRole");
        let subjects: Vec<_> = member_binding
            .subjects
            .as_ref()
            .unwrap()
            .iter()
            .map(|s| (s.kind.as_str(), s.name.as_str(), s.namespace.as_deref(), s.api_group.as_deref()))
            .collect();
        assert_eq!(
            subjects,
            [
                ("ServiceAccount", "deployer", Some("argocd"), Some("")),
                ("User", "alice", None, Some(RBAC_GROUP)),
                ("User", "zoe", None, Some(RBAC_GROUP)),
            ]
        );
    }

    #[test]
    fn every_member_may_read_its_own_tenant_and_namespaces_by_name() {
        let role = self_view_role(&acme()).unwrap();
        assert_eq!(role.metadata.name.as_deref(), Some("scs:tenant:acme:self"));
        let rules = role.rules.unwrap();
        let shape: Vec<(String, Vec<String>, Vec<String>)> = rules
            .iter()
            .map(|r| (r.resources.clone().unwrap()[0].clone(), r.verbs.clone(), r.resource_names.clone().unwrap()))
            .collect();
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            shape,
            [
                ("tenants".to_string(), strings(&["get", "watch"]), strings(&["acme"])),
                ("tenants/status".to_string(), strings(&["get"]), strings(&["acme"])),
                ("namespaces".to_string(), strings(&["get", "watch"]), strings(&["acme-prod", "acme-dev"])),
            ],
            "read-only by name, never list (a list cannot be filtered), nothing the operator lacks itself"
        );
        let binding = self_view_binding(&acme()).unwrap();
        assert_eq!(binding.role_ref.name, "scs:tenant:acme:self");
        let names: Vec<_> = binding.subjects.unwrap().iter().map(|s| s.name.clone()).collect();
        assert_eq!(names, ["acme-admins", "deployer", "alice", "zoe"], "all roles, sorted by kind then name");
        let nobody = Tenant::new("empty", TenantSpec::default());
        assert!(self_view_role(&nobody).is_none() && self_view_binding(&nobody).is_none());
    }

    #[test]
    fn storage_reader_only_for_project_admins() {
        let binding = storage_reader_binding(&acme()).unwrap();
        assert_eq!(binding.metadata.name.as_deref(), Some("scs:tenant:acme:storage-reader"));
        assert_eq!(binding.role_ref.name, STORAGE_READER_ROLE);
        let subjects = binding.subjects.unwrap();
        assert_eq!(subjects.len(), 1);
        assert_eq!((subjects[0].kind.as_str(), subjects[0].name.as_str()), ("Group", "acme-admins"));

        let mut no_admins = acme();
        no_admins.spec.members.retain(|m| m.role != TenantRole::ProjectAdmin);
        assert!(storage_reader_binding(&no_admins).is_none());
    }

    #[test]
    fn removing_the_last_member_of_a_role_removes_its_bindings() {
        let mut tenant = acme();
        tenant.spec.members.retain(|m| m.role != TenantRole::Member);
        let names: Vec<_> = role_bindings(&tenant).iter().map(|b| b.metadata.name.clone().unwrap()).collect();
        assert_eq!(names, ["scs:project-admin", "scs:project-admin"]);
    }
}
