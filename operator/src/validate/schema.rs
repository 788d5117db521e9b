//! Structural validation of a manifest against a CRD's OpenAPI v3 schema.
//!
//! Covers the keywords our CRDs use, with the API server's meaning: `type`, `nullable`, `enum`,
//! `minimum`/`maximum`, `minLength`/`maxLength`, `pattern`, `minItems`/`maxItems`,
//! `maxProperties`, `required`, `x-kubernetes-list-type` (set and map uniqueness),
//! `x-kubernetes-int-or-string`, `x-kubernetes-preserve-unknown-fields` and unknown fields (which
//! `kubectl apply` rejects with its default strict field validation).

use serde_json::{Map, Value};

use super::FieldError;

/// Checks `value` against `schema`; `path` names `value` in messages (e.g. `spec`).
pub fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if value.is_null() {
        if !flag(schema, "nullable") {
            errors.push(FieldError::new(path, "must not be null"));
        }
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            errors.push(FieldError::new(path, "must be an integer or a string"));
        }
        return;
    }
    let expected = schema.get("type").and_then(Value::as_str);
    if let Some(expected) = expected
        && !has_type(value, expected)
    {
        errors.push(FieldError::new(path, format!("must be of type {expected}, not {}", type_name(value))));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
        errors.push(FieldError::new(path, format!("unsupported value {value}: must be one of {}", names.join(", "))));
        return;
    }
    match value {
        Value::String(text) => check_string(schema, text, path, errors),
        Value::Number(number) => check_number(schema, number.as_f64().unwrap_or_default(), path, errors),
        Value::Array(items) => check_array(schema, items, path, errors),
        Value::Object(fields) => check_object(schema, fields, path, errors),
        Value::Bool(_) | Value::Null => {}
    }
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn has_type(value: &Value, expected: &str) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn bound(schema: &Value, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

fn check_string(schema: &Value, text: &str, path: &str, errors: &mut Vec<FieldError>) {
    let length = text.chars().count() as f64;
    if let Some(min) = bound(schema, "minLength")
        && length < min
    {
        let message = if min == 1.0 {
            "must not be empty".to_string()
        } else {
            format!("must be at least {min} characters long")
        };
        errors.push(FieldError::new(path, message));
    }
    if let Some(max) = bound(schema, "maxLength")
        && length > max
    {
        errors.push(FieldError::new(path, format!("must be at most {max} characters long")));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match regex::Regex::new(pattern) {
            Ok(re) if !re.is_match(text) => {
                errors.push(FieldError::new(path, format!("{text:?} does not match the pattern {pattern}")));
            }
            Ok(_) => {}
            Err(e) => errors.push(FieldError::new(path, format!("schema pattern {pattern:?} is invalid: {e}"))),
        }
    }
}

fn check_number(schema: &Value, number: f64, path: &str, errors: &mut Vec<FieldError>) {
    if let Some(min) = bound(schema, "minimum")
        && number < min
    {
        errors.push(FieldError::new(path, format!("must be at least {min}")));
    }
    if let Some(max) = bound(schema, "maximum")
        && number > max
    {
        errors.push(FieldError::new(path, format!("must be at most {max}")));
    }
}

fn check_array(schema: &Value, items: &[Value], path: &str, errors: &mut Vec<FieldError>) {
    let count = items.len() as f64;
    if let Some(min) = bound(schema, "minItems")
        && count < min
    {
        errors.push(FieldError::new(path, format!("must have at least {min} item(s)")));
    }
    if let Some(max) = bound(schema, "maxItems")
        && count > max
    {
        errors.push(FieldError::new(path, format!("must have at most {max} items")));
    }
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            for (index, item) in items.iter().enumerate() {
                if items[..index].contains(item) {
                    errors.push(FieldError::new(format!("{path}[{index}]"), format!("duplicate entry {item}")));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|keys| keys.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let key_of =
                |item: &Value| keys.iter().map(|k| item.get(*k).cloned().unwrap_or(Value::Null)).collect::<Vec<_>>();
            for (index, item) in items.iter().enumerate() {
                let key = key_of(item);
                if items[..index].iter().any(|earlier| key_of(earlier) == key) {
                    let shown: Vec<String> = keys.iter().zip(&key).map(|(k, v)| format!("{k}={v}")).collect();
                    errors.push(FieldError::new(
                        format!("{path}[{index}]"),
                        format!("duplicate entry with {}", shown.join(", ")),
                    ));
                }
            }
        }
        _ => {}
    }
    if let Some(item_schema) = schema.get("items") {
        for (index, item) in items.iter().enumerate() {
            check(item_schema, item, &format!("{path}[{index}]"), errors);
        }
    }
}

fn check_object(schema: &Value, fields: &Map<String, Value>, path: &str, errors: &mut Vec<FieldError>) {
    let child = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    if let Some(max) = bound(schema, "maxProperties")
        && fields.len() as f64 > max
    {
        errors.push(FieldError::new(path, format!("must have at most {max} entries")));
    }
    for required in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        if !fields.contains_key(required) {
            errors.push(FieldError::new(child(required), "required field is missing"));
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    for (key, value) in fields {
        if let Some(property) = properties.and_then(|p| p.get(key)) {
            check(property, value, &child(key), errors);
        } else if let Some(additional) = additional {
            check(additional, value, &child(key), errors);
        } else if !preserve && (properties.is_some() || schema.get("type").and_then(Value::as_str) == Some("object")) {
            // An object schema with neither properties nor additionalProperties (e.g. `metadata`
            // inside a template) is opaque to CRD validation; only reject keys next to known ones.
            if properties.is_some() {
                errors.push(FieldError::new(child(key), "unknown field"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(schema: Value, value: Value) -> Vec<String> {
        let mut errors = Vec::new();
        check(&schema, &value, "spec", &mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn bounds_and_patterns() {
        let schema = json!({"type": "object", "properties": {
            "count": {"type": "integer", "minimum": 1, "maximum": 16},
            "name": {"type": "string", "maxLength": 5, "pattern": "^[a-z]+$"},
        }});
        assert_eq!(errors(schema.clone(), json!({"count": 0})), ["spec.count: must be at least 1"]);
        assert_eq!(errors(schema.clone(), json!({"count": 17})), ["spec.count: must be at most 16"]);
        assert_eq!(
            errors(schema.clone(), json!({"name": "Abcdef"})),
            [
                "spec.name: must be at most 5 characters long",
                "spec.name: \"Abcdef\" does not match the pattern ^[a-z]+$"
            ]
        );
        assert!(errors(schema, json!({"count": 3, "name": "ok"})).is_empty());
    }

    #[test]
    fn types_enums_required_and_unknown_fields() {
        let schema = json!({"type": "object", "required": ["kind"], "properties": {
            "kind": {"type": "string", "enum": ["Job", "CronJob"]},
            "replicas": {"type": "integer", "nullable": true},
        }});
        assert_eq!(errors(schema.clone(), json!({})), ["spec.kind: required field is missing"]);
        assert_eq!(
            errors(schema.clone(), json!({"kind": "Pod"})),
            ["spec.kind: unsupported value \"Pod\": must be one of \"Job\", \"CronJob\""]
        );
        assert_eq!(
            errors(schema.clone(), json!({"kind": "Job", "replicas": "two"})),
            ["spec.replicas: must be of type integer, not string"]
        );
        assert_eq!(errors(schema.clone(), json!({"kind": "Job", "replica": 2})), ["spec.replica: unknown field"]);
        assert!(errors(schema, json!({"kind": "Job", "replicas": null})).is_empty());
    }

    #[test]
    fn list_types_and_int_or_string() {
        let schema = json!({"type": "object", "properties": {
            "names": {"type": "array", "maxItems": 2, "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "nets": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                     "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "size": {"x-kubernetes-int-or-string": true},
        }});
        assert_eq!(
            errors(schema.clone(), json!({"names": ["a", "b", "a"]})),
            ["spec.names: must have at most 2 items", "spec.names[2]: duplicate entry \"a\""]
        );
        assert_eq!(
            errors(schema.clone(), json!({"nets": [{"name": "x"}, {"name": "x"}]})),
            ["spec.nets[1]: duplicate entry with name=\"x\""]
        );
        assert_eq!(errors(schema.clone(), json!({"size": true})), ["spec.size: must be an integer or a string"]);
        assert!(errors(schema, json!({"size": 3})).is_empty());
    }

    #[test]
    fn preserved_and_opaque_objects_accept_anything() {
        let schema = json!({"type": "object", "properties": {
            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "metadata": {"type": "object"},
        }});
        assert!(
            errors(schema.clone(), json!({"extra": {"a": 1}, "metadata": {"x": 1}, "labels": {"a": "b"}})).is_empty()
        );
        assert_eq!(errors(schema, json!({"labels": {"a": 1}})), ["spec.labels.a: must be of type string, not integer"]);
    }
}
