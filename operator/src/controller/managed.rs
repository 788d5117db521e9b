//! The kinds of object the operator creates, with what the API needs to address them.
//!
//! This is the one list of managed types: the tenant controller lists, applies and deletes
//! exactly these, and the operator's ClusterRole must cover exactly these.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{LimitRange, Namespace, PersistentVolumeClaim, ResourceQuota, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::core::ApiResource;

use crate::builders::kube_ovn_subnet::Subnet;
use crate::builders::multi_network_policy::MultiNetworkPolicy;
use crate::builders::network_attachment::NetworkAttachmentDefinition;

/// Who a managed object belongs to, which decides how it is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Shared by all tenants (the RuntimeClass); ensured, never listed for cleanup.
    Platform,
    /// Found by the `scs.dev/tenant` label.
    Tenant,
    /// Found by the `scs.dev/workload` label in the workload's namespace.
    Workload,
    /// Found by the `scs.dev/network` label (cluster-scoped, owned by their SdnNetwork).
    Network,
}

/// One managed kind.
#[derive(Clone, Debug)]
pub struct ManagedKind {
    pub resource: ApiResource,
    pub namespaced: bool,
    pub scope: Scope,
}

fn kind<K: kube::Resource<DynamicType = ()>>(namespaced: bool, scope: Scope) -> ManagedKind {
    ManagedKind { resource: ApiResource::erase::<K>(&()), namespaced, scope }
}

/// Every managed kind. Namespaces first so that their contents have somewhere to go; claims
/// before the workloads that mount them.
pub fn managed_kinds() -> Vec<ManagedKind> {
    vec![
        kind::<Namespace>(false, Scope::Tenant),
        kind::<ResourceQuota>(true, Scope::Tenant),
        kind::<LimitRange>(true, Scope::Tenant),
        kind::<RoleBinding>(true, Scope::Tenant),
        kind::<ClusterRole>(false, Scope::Tenant),
        kind::<ClusterRoleBinding>(false, Scope::Tenant),
        kind::<NetworkPolicy>(true, Scope::Tenant),
        kind::<NetworkAttachmentDefinition>(true, Scope::Tenant),
        kind::<MultiNetworkPolicy>(true, Scope::Tenant),
        kind::<RuntimeClass>(false, Scope::Platform),
        kind::<Subnet>(false, Scope::Network),
        kind::<PersistentVolumeClaim>(true, Scope::Workload),
        kind::<Deployment>(true, Scope::Workload),
        kind::<StatefulSet>(true, Scope::Workload),
        kind::<DaemonSet>(true, Scope::Workload),
        kind::<Job>(true, Scope::Workload),
        kind::<CronJob>(true, Scope::Workload),
        kind::<Service>(true, Scope::Workload),
        kind::<Ingress>(true, Scope::Workload),
        kind::<HorizontalPodAutoscaler>(true, Scope::Workload),
    ]
}

/// The managed kinds of one scope, in apply order.
pub fn kinds_of(scope: Scope) -> Vec<ManagedKind> {
    managed_kinds().into_iter().filter(|k| k.scope == scope).collect()
}

/// The managed kind of `(apiVersion, kind)`.
pub fn find(api_version: &str, kind: &str) -> Option<ManagedKind> {
    managed_kinds().into_iter().find(|k| k.resource.api_version == api_version && k.resource.kind == kind)
}
