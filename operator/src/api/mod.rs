//! The custom resources of `scs.dev/v1alpha1`.
//!
//! Doc comments on every field become `kubectl explain` text, so they are written for users.
//! Validation lives in the schema itself (types, enums, patterns, bounds and CEL rules) so the
//! API server stops bad input; `crate::validate` evaluates the very same schema offline.

// Several `printcolumn(...)` entries repeat `type_ = "string"`, which clippy mistakes for
// duplicated attributes.
mod common;
#[allow(clippy::duplicated_attributes)]
mod notification_channel;
#[allow(clippy::duplicated_attributes)]
mod patrol;
#[allow(clippy::duplicated_attributes)]
mod permission_group;
#[allow(clippy::duplicated_attributes)]
mod sdn_network;
#[allow(clippy::duplicated_attributes)]
mod secure_workload;
#[allow(clippy::duplicated_attributes)]
mod tenant;

pub use common::*;
pub use notification_channel::*;
pub use patrol::*;
pub use permission_group::*;
pub use sdn_network::*;
pub use secure_workload::*;
pub use tenant::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of every custom resource of the operator.
pub const GROUP: &str = "scs.dev";
/// The one served and stored version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "scs.dev/v1alpha1";

/// All CRDs of the operator, in a stable order (the order of `crds/` files and `crdgen` output).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        NotificationChannel::crd(),
        Patrol::crd(),
        PermissionGroup::crd(),
        SdnNetwork::crd(),
        SecureWorkload::crd(),
        Tenant::crd(),
    ]
}
