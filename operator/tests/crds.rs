//! The checked-in CRDs match the code, are structural, explain every field, and their CEL rules
//! compile and fit the API server's cost budget.

use std::path::Path;

use kube::core::cel::{CompiledSchema, ScopeContext, WarningKind, analyze_rule};
use scs_operator::api;
use scs_operator::validate::cel::CrdSchemas;
use serde_json::Value;

#[test]
fn checked_in_crds_match_the_code() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    let mut expected_files = Vec::new();
    for crd in api::crds() {
        let file = format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural);
        let generated = format!("---\n{}", serde_yaml::to_string(&crd).unwrap());
        let checked_in = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
        assert!(
            generated == checked_in,
            "crds/{file} is out of date: run `cargo run -p scs-operator -- crdgen --out-dir crds`"
        );
        expected_files.push(file);
    }
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    present.sort();
    expected_files.sort();
    assert_eq!(present, expected_files, "crds/*.yaml holds exactly one file per CRD");
    let kustomization = std::fs::read_to_string(dir.join("Kustomization")).unwrap();
    for file in &expected_files {
        assert!(kustomization.contains(&format!("- {file}")), "crds/Kustomization must list {file}");
    }
}

#[test]
fn names_columns_and_subresources() {
    for crd in api::crds() {
        let names = &crd.spec.names;
        assert_eq!(crd.spec.group, "scs.dev");
        assert_eq!(names.categories.as_deref(), Some(&["scs".to_string()][..]), "{}", names.kind);
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(),
            "{} has a status subresource",
            names.kind
        );
        let columns: Vec<&str> = version.additional_printer_columns.iter().flatten().map(|c| c.name.as_str()).collect();
        let (short, scope, expected_columns): (&str, &str, &[&str]) = match names.kind.as_str() {
            "Tenant" => ("tn", "Cluster", &["Namespaces", "Ready", "Lifecycle", "Days left", "Age"]),
            "SdnNetwork" => ("sdn", "Cluster", &["Type", "CIDR", "Age"]),
            "SecureWorkload" => ("swl", "Namespaced", &["Kind", "Ready", "Phase", "Age"]),
            "NotificationChannel" => ("nch", "Cluster", &["Type", "Secret", "Last delivery", "Age"]),
            "Patrol" => ("ptl", "Cluster", &["Schedule", "Zone", "Last run", "Items", "Ready", "Age"]),
            "PermissionGroup" => ("pg", "Namespaced", &["Breaker", "Age"]),
            other => panic!("unexpected CRD {other}"),
        };
        assert_eq!(names.short_names.as_deref(), Some(&[short.to_string()][..]));
        assert_eq!(crd.spec.scope, scope);
        assert_eq!(columns, expected_columns);
    }
}

/// Walks every schema node: `(path, node)`.
fn walk<'a>(path: String, node: &'a Value, visit: &mut dyn FnMut(&str, &'a Value)) {
    visit(&path, node);
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (key, child) in properties {
            walk(format!("{path}.{key}"), child, visit);
        }
    }
    if let Some(items) = node.get("items") {
        walk(format!("{path}[]"), items, visit);
    }
    if let Some(additional) = node.get("additionalProperties").filter(|a| a.is_object()) {
        walk(format!("{path}{{}}"), additional, visit);
    }
}

#[test]
fn schemas_are_structural() {
    for schema in CrdSchemas::new().iter() {
        walk(schema.kind().to_string(), schema.openapi(), &mut |path, node| {
            let typed = node.get("type").is_some();
            let deliberate = node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
                || node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
            assert!(typed || deliberate, "{path} has no type");
            for forbidden in ["$ref", "oneOf", "anyOf", "allOf", "not", "definitions", "$defs"] {
                assert!(node.get(forbidden).is_none() || deliberate, "{path} uses {forbidden}");
            }
        });
    }
}

#[test]
fn every_field_of_ours_is_explained() {
    for schema in CrdSchemas::new().iter() {
        let spec = &schema.openapi()["properties"]["spec"];
        let status = &schema.openapi()["properties"]["status"];
        for (root, node) in [("spec", spec), ("status", status)] {
            walk(format!("{}.{root}", schema.kind()), node, &mut |path, node| {
                // The pod template is Kubernetes' own schema, documented upstream.
                if path.contains(".template.") {
                    return;
                }
                let described = node.get("description").and_then(Value::as_str).is_some_and(|d| !d.trim().is_empty());
                let is_item = path.ends_with("[]") || path.ends_with("{}");
                assert!(
                    described || is_item || path.ends_with(&format!(".{root}")),
                    "{path} has no description for kubectl explain"
                );
            });
        }
    }
}

/// Every rule compiles, references only CRD-scope variables, and its estimated cost fits the
/// API server's per-rule budget (unbounded lists would make the CRD itself be rejected).
#[test]
fn cel_rules_compile_and_fit_the_cost_budget() {
    let mut rules = 0;
    for schema in CrdSchemas::new().iter() {
        check_rules(schema.kind(), schema.openapi(), schema.compiled(), &mut rules);
    }
    assert!(rules >= 30, "only {rules} rules found");
}

fn check_rules(path: &str, node: &Value, compiled: &CompiledSchema, count: &mut usize) {
    assert!(compiled.compilation_errors().is_empty(), "{path}: {:?}", compiled.compilation_errors());
    for rule in node.get("x-kubernetes-validations").and_then(Value::as_array).into_iter().flatten() {
        let text = rule["rule"].as_str().unwrap();
        let bound = comprehension_variables(text);
        // kube-cel's scope check does not know comprehension variables (`self.all(c, ...)`).
        let warnings: Vec<_> = analyze_rule(text, compiled, ScopeContext::CrdValidation)
            .into_iter()
            .filter(|w| {
                !(w.kind == WarningKind::WrongScope && bound.iter().any(|v| w.message.contains(&format!("'{v}'"))))
            })
            .collect();
        assert!(warnings.is_empty(), "{path}: rule {text:?}: {warnings:?}");
        assert!(rule["message"].as_str().is_some_and(|m| !m.is_empty()), "{path}: rule {text:?} needs a message");
        *count += 1;
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (key, child) in properties {
            check_rules(&format!("{path}.{key}"), child, &compiled.properties[key], count);
        }
    }
    if let (Some(items), Some(compiled_items)) = (node.get("items"), compiled.items.as_deref()) {
        check_rules(&format!("{path}[]"), items, compiled_items, count);
    }
    if let (Some(additional), Some(compiled_additional)) =
        (node.get("additionalProperties").filter(|a| a.is_object()), compiled.additional_properties.as_deref())
    {
        check_rules(&format!("{path}{{}}"), additional, compiled_additional, count);
    }
}

/// Variables bound by CEL macros such as `list.all(x, ...)`.
fn comprehension_variables(rule: &str) -> Vec<String> {
    let mut variables = Vec::new();
    for macro_name in [".all(", ".exists(", ".exists_one(", ".map(", ".filter("] {
        for (start, _) in rule.match_indices(macro_name) {
            let rest = &rule[start + macro_name.len()..];
            if let Some((variable, _)) = rest.split_once(',') {
                let variable = variable.trim();
                if !variable.is_empty() && variable.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    variables.push(variable.to_string());
                }
            }
        }
    }
    variables
}

/// The API server estimates a rule's cost from the bounds of what it reads; kube-cel's estimate
/// is more lenient, and two CRDs it passed were refused by a real server ("estimated rule cost
/// exceeds budget"). So every string, list and map a rule is attached to carries a bound. (The
/// cluster suite installs the CRDs on a real server: that is the judge; this fails earlier.)
#[test]
fn everything_a_rule_reads_is_bounded() {
    fn check(path: &str, node: &Value) {
        let has_rules = node.get("x-kubernetes-validations").is_some();
        let is_string = node["type"] == "string" || node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
        if has_rules && is_string {
            assert!(node.get("maxLength").is_some(), "{path}: a rule reads this string, give it maxLength");
        }
        if has_rules && node["type"] == "array" {
            assert!(node.get("maxItems").is_some(), "{path}: a rule reads this list, give it maxItems");
            let items = &node["items"];
            if items["type"] == "string" {
                assert!(items.get("maxLength").is_some(), "{path}[]: a rule reads these strings, give them maxLength");
            }
        }
        if has_rules && node.get("additionalProperties").is_some_and(Value::is_object) {
            assert!(node.get("maxProperties").is_some(), "{path}: a rule reads this map, give it maxProperties");
        }
        for (key, child) in node.get("properties").and_then(Value::as_object).into_iter().flatten() {
            check(&format!("{path}.{key}"), child);
        }
        if let Some(items) = node.get("items") {
            check(&format!("{path}[]"), items);
        }
        if let Some(additional) = node.get("additionalProperties").filter(|a| a.is_object()) {
            check(&format!("{path}{{}}"), additional);
        }
    }
    for schema in CrdSchemas::new().iter() {
        // The pod template is Kubernetes' own schema and carries no rules of ours.
        check(schema.kind(), schema.openapi());
    }
}

/// Kubernetes' CEL quantity library declares `sign` as a global function: `q.sign()` compiled
/// offline but the API server refused the CRD. Rules compare with `compareTo` instead.
#[test]
fn quantity_rules_use_what_the_api_server_declares() {
    for schema in CrdSchemas::new().iter() {
        let text = serde_json::to_string(schema.openapi()).unwrap();
        assert!(!text.contains(").sign()"), "{}: use compareTo(quantity('0')), not .sign()", schema.kind());
    }
}
