//! The generated CRD schemas, compiled once, and evaluation of their CEL rules.

use std::collections::BTreeMap;

use kube::core::cel::{CompiledSchema, RootContext, Validator, compile_schema};
use serde_json::Value;

use super::FieldError;
use crate::api;

/// One CRD's OpenAPI schema with its CEL rules compiled.
pub struct CrdSchema {
    kind: String,
    openapi: Value,
    compiled: CompiledSchema,
}

/// The schemas of all our CRDs, by kind.
pub struct CrdSchemas {
    by_kind: BTreeMap<String, CrdSchema>,
    validator: Validator,
}

impl CrdSchemas {
    /// Generates and compiles the schemas of every CRD (a few milliseconds; do it once).
    pub fn new() -> Self {
        let by_kind = api::crds()
            .into_iter()
            .map(|crd| {
                let kind = crd.spec.names.kind.clone();
                let openapi = crd.spec.versions[0]
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .map(|s| serde_json::to_value(s).expect("CRD schema serializes"))
                    .expect("derived CRDs have a schema");
                let compiled = compile_schema(&openapi);
                (kind.clone(), CrdSchema { kind, openapi, compiled })
            })
            .collect();
        Self { by_kind, validator: Validator::new() }
    }

    /// The schema of `kind`, if it is one of ours.
    pub fn get(&self, kind: &str) -> Option<&CrdSchema> {
        self.by_kind.get(kind)
    }

    /// All schemas.
    pub fn iter(&self) -> impl Iterator<Item = &CrdSchema> {
        self.by_kind.values()
    }

    /// Structural check of `object.spec` (see [`super::schema`]).
    pub fn check_structure(&self, schema: &CrdSchema, object: &Value) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let spec_schema = &schema.openapi["properties"]["spec"];
        match object.get("spec") {
            Some(spec) => super::schema::check(spec_schema, spec, "spec", &mut errors),
            None if schema_requires_spec(&schema.openapi) => {
                errors.push(FieldError::new("spec", "required field is missing"))
            }
            None => {}
        }
        errors
    }

    /// Evaluates every `x-kubernetes-validations` rule of the schema against `object`, as the API
    /// server does on create. `object` must already pass [`Self::check_structure`].
    pub fn check_rules(&self, schema: &CrdSchema, object: &Value) -> Vec<FieldError> {
        // The status is written by the operator, never by users: rules on it are not ours to judge here.
        let mut object = object.clone();
        if let Some(fields) = object.as_object_mut() {
            fields.remove("status");
        }
        let context = RootContext {
            api_version: api::API_VERSION.into(),
            api_group: api::GROUP.into(),
            kind: schema.kind.clone(),
        };
        match self.validator.validate_compiled_with_context(&schema.compiled, &object, None, Some(&context)) {
            Ok(()) => Vec::new(),
            Err(errors) => errors
                .into_vec()
                .into_iter()
                .map(|e| FieldError::new(e.field_path.trim_start_matches('.').to_string(), e.message))
                .collect(),
        }
    }
}

impl Default for CrdSchemas {
    fn default() -> Self {
        Self::new()
    }
}

impl CrdSchema {
    /// Kind of the CRD.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The CRD's `openAPIV3Schema`.
    pub fn openapi(&self) -> &Value {
        &self.openapi
    }

    /// The compiled CEL rules.
    pub fn compiled(&self) -> &CompiledSchema {
        &self.compiled
    }
}

fn schema_requires_spec(openapi: &Value) -> bool {
    openapi["required"].as_array().is_some_and(|r| r.iter().any(|k| k == "spec"))
}
