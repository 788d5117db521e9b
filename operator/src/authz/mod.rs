//! Pod pre-authorization (issue 18): grants from permission systems outside the cluster before a
//! sandboxed pod's containers start, revoked when the pod goes.
//!
//! - [`provider`]: the provider protocol (HTTP/JSON) and its client.
//! - [`breaker`]: the circuit breaker per PermissionGroup (3 consecutive failures → open).
//! - [`backoff`]: the per-pod exponential backoff with jitter.
//! - [`init`]: the init container the SecureWorkload builder puts first in the pod.
//! - [`engine`]: the server's core (grant steps, revocation), with a store trait.
//! - [`identity`]: who is calling, from a TokenReview and the live pod.
//! - [`server`]: `scs-operator authz-server` (HTTP endpoint, revocation controller, sweep).
//! - [`client`]: `scs-operator authorize`, the init container's loop.
//! - [`summary`]: `status.preAuthorization` of a SecureWorkload, counted from the records.
//! - [`tls`], [`tls_store`]: the server's certificate and CA (made and renewed by the server
//!   unless provided), and the CA ConfigMap pods verify it with.
//!
//! Not done: the server watches every pod in full.

pub mod backoff;
pub mod breaker;
pub mod client;
pub mod engine;
pub mod identity;
pub mod init;
pub mod provider;
pub mod reset;
pub mod server;
pub mod summary;
pub mod tls;
pub mod tls_store;

/// Finalizer on pods that carry the authorize init container: their grants are revoked before
/// the pod object goes.
pub const FINALIZER: &str = "scs.dev/permission-protection";
/// Name of the init container; the authz-server only serves pods that carry it, first.
pub const INIT_CONTAINER: &str = "scs-authorize";
/// `app.kubernetes.io/name` of the authz-server's pods (the tenant NetworkPolicy allows them).
pub const SERVER_APP: &str = "scs-authz-server";
/// Pod annotation with the progress of the pod's grants (JSON), written by the authz-server.
pub const GRANTS_ANNOTATION: &str = "scs.dev/authz-grants";
