//! End-to-end test support for the operator.
//!
//! [`fake_api`] is an in-process Kubernetes API server speaking the real HTTP API, so the real
//! controllers run against a real `kube::Client` (real requests, real watches) without a cluster.
//! Kind cluster tests (behind a cargo feature) and the scale harness are still to come.

pub mod fake_api;
pub mod harness;
