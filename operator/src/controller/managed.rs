//! The kinds of object the operator creates, with what the API needs to address them.
//!
//! This is the one list of managed types: the tenant controller lists, applies and deletes
//! exactly these, and the operator's ClusterRole must cover exactly these.

use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::core::ApiResource;

use crate::builders::network_attachment::NetworkAttachmentDefinition;

/// One managed kind.
#[derive(Clone, Debug)]
pub struct ManagedKind {
    pub resource: ApiResource,
    pub namespaced: bool,
    /// Tenant children are found by the `scs.dev/tenant` label; platform objects are not.
    pub per_tenant: bool,
}

fn kind<K: kube::Resource<DynamicType = ()>>(namespaced: bool, per_tenant: bool) -> ManagedKind {
    ManagedKind { resource: ApiResource::erase::<K>(&()), namespaced, per_tenant }
}

/// Every managed kind. Namespaces first so that their contents have somewhere to go.
pub fn managed_kinds() -> Vec<ManagedKind> {
    vec![
        kind::<Namespace>(false, true),
        kind::<ResourceQuota>(true, true),
        kind::<LimitRange>(true, true),
        kind::<RoleBinding>(true, true),
        kind::<ClusterRoleBinding>(false, true),
        kind::<NetworkPolicy>(true, true),
        kind::<NetworkAttachmentDefinition>(true, true),
        kind::<RuntimeClass>(false, false),
    ]
}

/// The managed kind of `(apiVersion, kind)`.
pub fn find(api_version: &str, kind: &str) -> Option<ManagedKind> {
    managed_kinds().into_iter().find(|k| k.resource.api_version == api_version && k.resource.kind == kind)
}
