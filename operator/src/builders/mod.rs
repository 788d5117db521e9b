//! Pure builders: custom resources (+ operator configuration) in, desired child objects out.
//!
//! No client here. `render` prints what these return; the controllers apply the same objects
//! with server-side apply.

pub mod kube_ovn_subnet;
pub mod labels;
pub mod limit_range;
pub mod multi_network_policy;
pub mod namespace;
pub mod network_attachment;
pub mod network_policy;
pub mod pull_secret;
pub mod quota;
pub mod rbac;
pub mod runtime_class;
pub mod workload;

use std::cmp::Ordering;

use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde_json::Value;

use crate::api::Tenant;
use crate::catalog::Catalog;
use crate::config::OperatorConfig;

/// A desired object, ready to print or to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Child {
    pub api_version: String,
    pub kind: String,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
    /// The whole object, with apiVersion, kind and metadata.
    pub object: Value,
    /// For objects whose spec is mostly immutable once created (a Job's pod template): the part
    /// that may still change, applied as a merge patch to an existing object. `None`: apply all.
    pub mutable_part: Option<Value>,
}

impl Child {
    /// Wraps a typed object.
    pub fn from_resource<K>(resource: &K) -> Self
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let mut object = serde_json::to_value(resource).expect("Kubernetes objects serialize to JSON");
        // Typed structs already carry apiVersion and kind; make sure of it for any resource.
        object["apiVersion"] = Value::String(K::api_version(&()).into_owned());
        object["kind"] = Value::String(K::kind(&()).into_owned());
        Self {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            namespace: resource.namespace(),
            name: resource.name_any(),
            object,
            mutable_part: None,
        }
    }

    /// Render order: cluster-scoped first, then by namespace, kind and name.
    pub fn render_order(&self, other: &Self) -> Ordering {
        (self.namespace.is_some(), &self.namespace, &self.kind, &self.name).cmp(&(
            other.namespace.is_some(),
            &other.namespace,
            &other.kind,
            &other.name,
        ))
    }
}

/// Objects shared by all tenants: the Kata RuntimeClass.
pub fn platform_children(config: &OperatorConfig) -> Vec<Child> {
    runtime_class::runtime_classes(config).iter().map(Child::from_resource).collect()
}

/// Everything the operator creates for one tenant (networks are looked up in `catalog`).
pub fn tenant_children(tenant: &Tenant, catalog: &Catalog, config: &OperatorConfig) -> Vec<Child> {
    let mut children = Vec::new();
    children.extend(namespace::namespaces(tenant, config).iter().map(Child::from_resource));
    children.extend(quota::resource_quotas(tenant, config).iter().map(Child::from_resource));
    children.extend(limit_range::limit_ranges(tenant).iter().map(Child::from_resource));
    children.extend(rbac::role_bindings(tenant).iter().map(Child::from_resource));
    children.extend(rbac::storage_reader_binding(tenant).iter().map(Child::from_resource));
    children.extend(rbac::self_view_role(tenant).iter().map(Child::from_resource));
    children.extend(rbac::self_view_binding(tenant).iter().map(Child::from_resource));
    children.extend(network_attachment::network_attachments(tenant, catalog).iter().map(Child::from_resource));
    children.extend(network_policy::network_policies(tenant, config).iter().map(Child::from_resource));
    children.extend(multi_network_policy::multi_network_policies(tenant, catalog).iter().map(Child::from_resource));
    children
}

/// What the operator creates for the networks themselves (the SdnNetwork controller's children):
/// the Kube-OVN Subnets.
pub fn network_children(catalog: &Catalog) -> Vec<Child> {
    kube_ovn_subnet::kube_ovn_subnets(catalog).iter().map(Child::from_resource).collect()
}

/// Everything the operator would create for a (valid) catalog, in render order.
pub fn desired_children(catalog: &Catalog, config: &OperatorConfig) -> Vec<Child> {
    let mut children = platform_children(config);
    children.extend(network_children(catalog));
    for tenant in &catalog.tenants {
        children.extend(tenant_children(tenant, catalog, config));
    }
    for workload in &catalog.workloads {
        if let Some(tenant) = workload.metadata.namespace.as_deref().and_then(|ns| catalog.tenant_of_namespace(ns)) {
            children.extend(workload::workload_children_on(workload, tenant, config, &catalog.networks));
        }
    }
    children.sort_by(Child::render_order);
    children
}
