//! `PermissionGroup`: a named, reusable set of grants that systems outside the cluster (a
//! database's IP allow-list, a message-bus ACL, a CMDB) must give a pod before it starts. A
//! SecureWorkload lists groups in `spec.preAuthorization.permissionGroups`; the authorization
//! server asks each permission's provider for a grant per pod and revokes it when the pod goes.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Annotation that resets the group's circuit breaker: set it to a new value (e.g. the current
/// time; `kubectl scs authz reset pg/NAME` does) and the next request is tried again.
pub const AUTHZ_RESET_ANNOTATION: &str = "scs.dev/authz-reset";

/// Permissions a pod must be granted by external systems before its containers start.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "scs.dev",
    version = "v1alpha1",
    kind = "PermissionGroup",
    plural = "permissiongroups",
    shortname = "pg",
    category = "scs",
    namespaced,
    status = "PermissionGroupStatus",
    printcolumn(name = "Breaker", type_ = "string", json_path = ".status.breaker", description = "Closed or Open"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct PermissionGroupSpec {
    /// The permissions, each granted by one provider. Names are unique within the group.
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub permissions: Vec<Permission>,
}

/// One permission: what to ask of which provider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    /// Name of the permission, e.g. `orders-db`.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,

    /// The provider that grants it: a name of the operator configuration's
    /// `authorizationProviders` (set by the platform admins; a tenant cannot add one). The provider
    /// receives the pod's namespace and tenant with every request and must check them.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub provider: String,

    /// Parameters passed to the provider as they are, e.g. `{database: orders, port: "3306"}`.
    /// Not secret: credentials belong in the provider's Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub params: BTreeMap<String, String>,
}

/// Observed state of a PermissionGroup, written by the authorization server.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PermissionGroupStatus {
    /// `Closed` (requests go to the providers) or `Open` (3 consecutive failures: no request until
    /// the `scs.dev/authz-reset` annotation changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<String>,
    /// Consecutive failures counted by the breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<i32>,
    /// Why the last request failed (never credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    /// When the last request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<Time>,
    /// `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Pod pre-authorization: where the grants of the workload's pods stand. Written by the
/// authz-server (at most every few seconds), not by the operator.
//
// Deliberately not a field of the operator's `SecureWorkloadStatus` type: the operator applies
// that whole type as its status (server-side apply, manager `scs-operator`), so a field it carried,
// even copied from what it read, would become the operator's and be set back to the value it last
// saw. Kept apart, the authz-server applies only this field under its own manager
// (`scs-authz-server`) and neither wipes the other's. The CRD schema gets it through
// `with_pre_authorization`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PreAuthorizationSummary {
    /// Pods of the workload that have asked for their grants (and are not being deleted).
    #[serde(default)]
    pub pods: i32,
    /// Pods with every permission granted.
    #[serde(default)]
    pub granted: i32,
    /// Pods waiting on a provider (a pending grant).
    #[serde(default)]
    pub pending: i32,
    /// Pods whose last attempt failed (refused, provider unreachable and backing off, breaker
    /// open, provider not open to the tenant): they do not start until it succeeds.
    #[serde(default)]
    pub failed: i32,
    /// The workload's PermissionGroups whose circuit breaker is open (reset:
    /// `kubectl scs authz reset pg/NAME`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open_groups: Vec<String>,
    /// The newest failure among the pods' grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    /// When it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<Time>,
}

/// Name of the field in a SecureWorkload's status.
pub const PRE_AUTHORIZATION_STATUS: &str = "preAuthorization";

/// Schema transform of `SecureWorkloadStatus`: adds `preAuthorization` (see
/// [`PreAuthorizationSummary`]) so the API server keeps what the authz-server writes.
pub fn with_pre_authorization(schema: &mut schemars::Schema) {
    let generator = schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let mut summary = generator.into_root_schema_for::<PreAuthorizationSummary>();
    summary.remove("title");
    if let Some(properties) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
        properties.insert(PRE_AUTHORIZATION_STATUS.into(), summary.to_value());
    }
}
