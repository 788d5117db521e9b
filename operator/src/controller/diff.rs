//! Whether a live object already holds everything we would apply.
//!
//! Server-side apply is idempotent, but a PATCH is still a write; comparing first is what makes an
//! unchanged tenant cost zero writes. The live object may carry more (defaults, other managers'
//! fields, status); we only check that our fields are there with our values.

use serde_json::Value;

use crate::quantity;

/// The live object already holds the desired one. Type fields are not compared: list items of
/// built-in kinds come without `apiVersion` and `kind`.
pub fn holds(live: &Value, desired: &Value) -> bool {
    match desired.as_object() {
        Some(fields) => fields
            .iter()
            .filter(|(key, _)| *key != "apiVersion" && *key != "kind")
            .all(|(key, value)| live.get(key).map_or(omitted(value), |l| contains(l, value))),
        None => contains(live, desired),
    }
}

/// Whether `desired` is a value the API server leaves out of what it returns (Go's `omitempty`:
/// an empty list or map, `""`, `false`, `0`, null), so a live object without the field holds it.
/// (On a real API server, a desired `ingress: []` read back without `ingress` re-applied every
/// pass; the fake server keeps what it is given.)
fn omitted(desired: &Value) -> bool {
    match desired {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
        Value::String(text) => text.is_empty(),
        Value::Bool(flag) => !flag,
        Value::Number(number) => number.as_f64() == Some(0.0),
    }
}

/// `live` contains every field of `desired` with an equal value (quantities compared by value).
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (Value::Object(live), Value::Object(desired)) => {
            desired.iter().all(|(key, value)| live.get(key).map_or(omitted(value), |l| contains(l, value)))
        }
        (Value::Array(live), Value::Array(desired)) => {
            live.len() == desired.len() && live.iter().zip(desired).all(|(l, d)| contains(l, d))
        }
        (Value::String(live), Value::String(desired)) => live == desired || same_quantity(live, desired),
        (live, desired) => live == desired,
    }
}

/// The API server canonicalises quantities (`1.5Gi` is stored as `1536Mi`).
fn same_quantity(a: &str, b: &str) -> bool {
    a.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && matches!((quantity::parse(a), quantity::parse(b)), (Ok(x), Ok(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extra_live_fields_are_fine() {
        let live = json!({"metadata": {"name": "a", "uid": "1", "labels": {"x": "1", "y": "2"}}, "status": {}});
        assert!(contains(&live, &json!({"metadata": {"name": "a", "labels": {"x": "1"}}})));
    }

    #[test]
    fn changed_or_missing_fields_are_not() {
        let live = json!({"spec": {"hard": {"pods": "10"}}});
        assert!(!contains(&live, &json!({"spec": {"hard": {"pods": "11"}}})));
        assert!(!contains(&live, &json!({"spec": {"hard": {"pods": "10", "cpu": "1"}}})));
        assert!(!contains(&json!({"list": [1, 2]}), &json!({"list": [1]})));
    }

    #[test]
    fn fields_the_server_omits_when_empty_are_held_by_their_absence() {
        let live = json!({"spec": {"podSelector": {}, "policyTypes": ["Ingress"]}});
        assert!(contains(&live, &json!({"spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": []}})));
        assert!(contains(&json!({"spec": {}}), &json!({"spec": {"paused": false, "note": "", "n": 0, "x": null}})));
        assert!(!contains(&live, &json!({"spec": {"ingress": [{"from": []}]}})), "a non-empty value must be there");
        assert!(
            !contains(&json!({"spec": {"paused": true}}), &json!({"spec": {"paused": false}})),
            "present: compared"
        );
    }

    #[test]
    fn list_items_without_types_still_hold_the_object() {
        let desired = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}});
        assert!(holds(&json!({"metadata": {"name": "a", "uid": "1"}}), &desired));
        assert!(!holds(&json!({"metadata": {"name": "b"}}), &desired));
    }

    #[test]
    fn quantities_compare_by_value() {
        assert!(contains(&json!({"q": "1536Mi"}), &json!({"q": "1.5Gi"})));
        assert!(contains(&json!({"q": "1"}), &json!({"q": "1000m"})));
        assert!(!contains(&json!({"q": "1"}), &json!({"q": "2"})));
        assert!(!contains(&json!({"name": "e1"}), &json!({"name": "10"})));
    }
}
