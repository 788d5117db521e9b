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
            .all(|(key, value)| live.get(key).is_some_and(|l| contains(l, value))),
        None => contains(live, desired),
    }
}

/// `live` contains every field of `desired` with an equal value (quantities compared by value).
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (Value::Object(live), Value::Object(desired)) => {
            desired.iter().all(|(key, value)| live.get(key).is_some_and(|l| contains(l, value)))
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
