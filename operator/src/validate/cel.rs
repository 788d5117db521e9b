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
    ///
    /// Quantity fields are first rewritten to the value the API server's parser yields (see
    /// [`canonical_quantities`]): kube-cel's own quantity arithmetic overflows (a panic, or a
    /// wrapped and wrong comparison in release builds) on long mantissas and extreme exponents
    /// that the API server takes in its stride. A panic inside the evaluator all the same is
    /// turned into an error rather than taking `render` down.
    pub fn check_rules(&self, schema: &CrdSchema, object: &Value) -> Vec<FieldError> {
        // The status is written by the operator, never by users: rules on it are not ours to judge here.
        let mut object = object.clone();
        if let Some(fields) = object.as_object_mut() {
            fields.remove("status");
        }
        canonical_quantities(&schema.openapi, &mut object);
        let context = RootContext {
            api_version: api::API_VERSION.into(),
            api_group: api::GROUP.into(),
            kind: schema.kind.clone(),
        };
        let evaluated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.validator.validate_compiled_with_context(&schema.compiled, &object, None, Some(&context))
        }));
        match evaluated {
            Ok(Ok(())) => Vec::new(),
            Ok(Err(errors)) => errors
                .into_vec()
                .into_iter()
                .map(|e| FieldError::new(e.field_path.trim_start_matches('.').to_string(), e.message))
                .collect(),
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                vec![FieldError::new(
                    "spec",
                    format!("the offline CEL evaluator failed on this object ({why}); the API server decides"),
                )]
            }
        }
    }
}

/// Stands in for a value that is not a quantity: kube-cel's `isQuantity` is false for it, so the
/// field's own rule fails with its own message, as on the API server.
const NOT_A_QUANTITY: &str = "not-a-quantity";

/// Rewrites every quantity field of `value` (a schema node whose own rule parses
/// `quantity(string(self))`) to the canonical form of the value the API server's parser yields
/// (`quantity::parse` reads the same grammar and rounds the same way, so every quantity rule
/// compares the same numbers), or to [`NOT_A_QUANTITY`] when the rule must fail anyway.
/// Canonical forms have at most 28 digits and a scale of 10⁻⁹ or more: kube-cel's arithmetic
/// handles them exactly.
pub fn canonical_quantities(schema: &Value, value: &mut Value) {
    if reads_quantity(schema) {
        let text = match value {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        };
        if let Some(text) = text {
            *value = Value::String(match crate::quantity::parse(&text) {
                Ok(nanos) => crate::quantity::format(nanos, false),
                Err(_) => NOT_A_QUANTITY.to_string(),
            });
        }
        return;
    }
    match value {
        Value::Object(fields) => {
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, field) in fields.iter_mut() {
                if let Some(child) = schema.get("properties").and_then(|p| p.get(key)).or(additional) {
                    canonical_quantities(child, field);
                }
            }
        }
        Value::Array(items) => {
            if let Some(child) = schema.get("items") {
                for item in items {
                    canonical_quantities(child, item);
                }
            }
        }
        _ => {}
    }
}

/// Whether a schema node's own rules read it as a quantity.
fn reads_quantity(schema: &Value) -> bool {
    schema["x-kubernetes-validations"].as_array().is_some_and(|rules| {
        rules.iter().any(|r| r["rule"].as_str().is_some_and(|r| r.contains("quantity(string(self))")))
    })
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::QUANTITY_MESSAGE;

    fn tenant(spec: Value) -> Value {
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "t"}, "spec": spec})
    }

    fn rule_errors(schemas: &CrdSchemas, object: &Value) -> Vec<FieldError> {
        let schema = schemas.get(object["kind"].as_str().unwrap()).unwrap();
        assert_eq!(schemas.check_structure(schema, object), vec![], "{object}");
        schemas.check_rules(schema, object)
    }

    #[test]
    fn quantities_kube_cel_cannot_compare_are_judged_without_panicking() {
        let schemas = CrdSchemas::new();
        // Issue 12, item 11: the API server takes it (rounded up to 170141184n); kube-cel's
        // compareTo overflowed on its 39-digit mantissa and took `render` down.
        for fine in ["0.170141183460469231731687303715884105727", "0.170141183460469231731687303715884105728", "1e-39"]
        {
            assert_eq!(rule_errors(&schemas, &tenant(json!({"quota": {"cpu": fine}}))), vec![], "{fine}");
        }
        let refused = |value: &str| rule_errors(&schemas, &tenant(json!({"quota": {"memory": value}})));
        for too_large in ["2e38", "1e39", "9223372036854775807", "8Ei", "99999999999999999999Ei"] {
            assert_eq!(refused(too_large), vec![FieldError::new("spec.quota.memory", QUANTITY_MESSAGE)], "{too_large}");
        }
        // Rules on a parent compare the canonical values too.
        let defaults = json!({"limitDefaults": {
            "requests": {"cpu": "0.170141183460469231731687303715884105727"},
            "limits": {"cpu": "0.1701411834604692317316873037158841057"},
        }});
        assert_eq!(rule_errors(&schemas, &tenant(defaults)), vec![], "both round up to 170141184n");
    }

    #[test]
    fn the_quantity_rule_admits_exactly_what_parse_admits() {
        let schemas = CrdSchemas::new();
        let values = "0 500m 1. .5 +1 1e3 1E-3 1e-40 16Gi 1.5Ti 9223372036854775806 -1 -0.5 Gi . - four 1e 12GB \
                      9223372036854775807 1e19 0.170141183460469231731687303715884105727";
        for value in values.split_whitespace() {
            let parsed = crate::quantity::parse(value).is_ok_and(|nanos| nanos >= 0);
            let admitted = rule_errors(&schemas, &tenant(json!({"quota": {"cpu": value}}))).is_empty();
            assert_eq!(admitted, parsed, "{value:?}: CEL rule and quantity::parse disagree");
        }
    }

    #[test]
    fn the_rules_bound_quantities_where_parse_does() {
        let bound = format!("quantity('{}')", crate::quantity::MAX_UNITS);
        assert!(crate::api::QUANTITY_RULE.contains(&bound) && crate::api::POSITIVE_QUANTITY_RULE.contains(&bound));
    }

    #[test]
    fn canonical_quantities_touch_only_quantity_fields() {
        let schemas = CrdSchemas::new();
        let schema = schemas.get("Tenant").unwrap();
        let mut object = tenant(json!({"namespaces": ["a"], "quota": {"cpu": "0.5", "pods": 3, "memory": "x"}}));
        canonical_quantities(schema.openapi(), &mut object);
        assert_eq!(object["spec"]["quota"], json!({"cpu": "500m", "pods": 3, "memory": NOT_A_QUANTITY}));
        assert_eq!(object["spec"]["namespaces"], json!(["a"]));
    }
}
