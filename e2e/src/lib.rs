//! End-to-end test support for the operator.
//!
//! [`fake_api`] is an in-process Kubernetes API server speaking the real HTTP API, so the real
//! controllers run against a real `kube::Client` (real requests, real watches) without a cluster.
//! [`cluster`] (behind the `cluster` feature) supports the suite that runs against a real cluster.

#[cfg(feature = "cluster")]
pub mod cluster;
pub mod fake_api;
pub mod harness;
