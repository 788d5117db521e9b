//! Validation of custom resources, offline and at reconcile time.
//!
//! The CRD schema is the single source of truth: [`schema`] checks a manifest against the
//! OpenAPI part of the generated schema (types, enums, bounds, patterns, list keys, unknown
//! fields) and [`cel`] evaluates its `x-kubernetes-validations` rules with the same CEL libraries
//! the API server uses. [`rules`] adds what a schema cannot express (e.g. privileged containers
//! anywhere in a pod template) [`fence`] refuses pod templates the
//! tenant admission policies would refuse, and [`cross`] checks objects against each other and the
//! operator configuration.

pub mod cel;
pub mod cross;
pub mod fence;
pub mod images;
pub mod rules;
pub mod schema;

use std::fmt;

/// A problem with one field of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.gpu.count` or `spec.networks[0].ips`.
    pub path: String,
    /// What is wrong and, where useful, how to fix it.
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { write!(f, "{}", self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}
