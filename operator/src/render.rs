//! The offline pipeline: manifests in, validated, every child object out.
//!
//! `scs-operator render` is the GitOps preview and the quick start; the controllers use the same
//! validation and builders on objects from the API server.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::api::{self, SdnNetwork, SecureWorkload, Tenant};
use crate::builders::{self, Child};
use crate::catalog::Catalog;
use crate::config::OperatorConfig;
use crate::validate::cel::CrdSchemas;
use crate::validate::cross::{self, ObjectKey};
use crate::validate::{FieldError, rules};

/// One YAML document and where it came from.
#[derive(Debug, Clone)]
pub struct Document {
    /// File name as given (`-` for stdin).
    pub source: String,
    /// 1-based position in the file.
    pub index: usize,
    pub value: Value,
}

/// A problem with the input, located as precisely as possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub source: String,
    /// `Kind namespace/name`, or the document position when the object has no usable identity.
    pub object: Option<String>,
    pub error: FieldError,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.object {
            Some(object) => write!(f, "{}: {object}: {}", self.source, self.error),
            None => write!(f, "{}: {}", self.source, self.error),
        }
    }
}

/// Reads every YAML document from `paths` (files, directories, `-` for stdin). Directories are
/// read like `kubectl apply -f`: their `*.yaml`/`*.yml`/`*.json` files, and subdirectories only
/// when `recursive`.
pub fn read_documents(paths: &[PathBuf], recursive: bool) -> Result<Vec<Document>, Vec<InputError>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        collect_files(path, recursive, true, &mut files, &mut errors);
    }
    let mut documents = Vec::new();
    for file in files {
        let source = file.display().to_string();
        let text = if file == Path::new("-") {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map(|_| text)
        } else {
            std::fs::read_to_string(&file)
        };
        match text {
            Ok(text) => parse_documents(&source, &text, &mut documents, &mut errors),
            Err(e) => errors.push(file_error(&source, format!("cannot read: {e}"))),
        }
    }
    if errors.is_empty() { Ok(documents) } else { Err(errors) }
}

fn file_error(source: &str, message: String) -> InputError {
    InputError { source: source.to_string(), object: None, error: FieldError::new("", message) }
}

fn collect_files(path: &Path, recursive: bool, top: bool, files: &mut Vec<PathBuf>, errors: &mut Vec<InputError>) {
    if path == Path::new("-") {
        files.push(path.to_path_buf());
        return;
    }
    if !path.is_dir() {
        if top && !path.exists() {
            errors.push(file_error(&path.display().to_string(), "no such file or directory".into()));
        } else {
            files.push(path.to_path_buf());
        }
        return;
    }
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            errors.push(file_error(&path.display().to_string(), format!("cannot read directory: {e}")));
            return;
        }
    };
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            if recursive {
                collect_files(&entry, recursive, false, files, errors);
            }
        } else if entry.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json") {
            files.push(entry);
        }
    }
}

fn parse_documents(source: &str, text: &str, documents: &mut Vec<Document>, errors: &mut Vec<InputError>) {
    for (position, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = position + 1;
        match UniqueKeys::deserialize(document).map(|unique| unique.0) {
            Ok(Value::Null) => {}
            // A `kind: List` (as `kubectl get -o yaml` prints) contributes its items.
            Ok(value) if value.get("kind").and_then(Value::as_str) == Some("List") => {
                for item in value.get("items").and_then(Value::as_array).into_iter().flatten() {
                    documents.push(Document { source: source.to_string(), index, value: item.clone() });
                }
            }
            Ok(value) => documents.push(Document { source: source.to_string(), index, value }),
            Err(e) => {
                errors.push(file_error(source, format!("document {index}: not valid YAML: {e}")));
                // The YAML stream cannot be resynchronised after a syntax error.
                return;
            }
        }
    }
}

/// A JSON value read from YAML that refuses a mapping key given twice, as `kubectl` does:
/// `serde_json::Value` would silently keep the last one, so what render validates could differ
/// from what the author meant (or from what another tool reads).
struct UniqueKeys(Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeysVisitor).map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        UniqueKeys::deserialize(deserializer).map(|unique| unique.0)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if fields.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("mapping key {key:?} is given more than once")));
            }
            let UniqueKeys(value) = map.next_value()?;
            fields.insert(key, value);
        }
        Ok(Value::Object(fields))
    }
}

/// Validated input objects, and what was skipped.
#[derive(Debug, Default)]
pub struct Loaded {
    pub catalog: Catalog,
    /// `(source, description)` of documents that are not ours and were skipped.
    pub skipped: Vec<(String, String)>,
    /// Source file of each object, for error messages.
    sources: Vec<(ObjectKey, String)>,
}

impl Loaded {
    fn source_of(&self, key: &ObjectKey) -> String {
        self.sources.iter().find(|(k, _)| k == key).map(|(_, s)| s.clone()).unwrap_or_default()
    }
}

/// Validates documents one by one (schema, CEL rules, extra rules) and collects our objects.
pub fn load(documents: Vec<Document>, schemas: &CrdSchemas) -> Result<Loaded, Vec<InputError>> {
    let mut loaded = Loaded::default();
    let mut errors = Vec::new();
    for document in documents {
        let api_version = document.value.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string();
        let kind = document.value.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
        if api_version.is_empty() || kind.is_empty() {
            errors.push(InputError {
                source: document.source.clone(),
                object: Some(format!("document {}", document.index)),
                error: FieldError::new(
                    if api_version.is_empty() { "apiVersion" } else { "kind" },
                    "required field is missing",
                ),
            });
            continue;
        }
        if !api_version.starts_with(&format!("{}/", api::GROUP)) {
            loaded.skipped.push((document.source.clone(), format!("{kind} ({api_version})")));
            continue;
        }
        if matches!(kind.as_str(), "Patrol" | "NotificationChannel") {
            // Patrol objects act at run time (schedules, deliveries): checked like the others,
            // nothing to render.
            match check_patrol_object(&document, &kind, schemas) {
                Ok(()) => {}
                Err(mut e) => errors.append(&mut e),
            }
            continue;
        }
        match load_one(&document, &api_version, &kind, schemas) {
            Ok((key, object)) => {
                if loaded.sources.iter().any(|(k, _)| *k == key) {
                    errors.push(InputError {
                        source: document.source.clone(),
                        object: Some(key.to_string()),
                        error: FieldError::new("metadata.name", "defined more than once in the input"),
                    });
                    continue;
                }
                loaded.sources.push((key, document.source.clone()));
                match object {
                    Object::Tenant(t) => loaded.catalog.tenants.push(*t),
                    Object::Network(n) => loaded.catalog.networks.push(*n),
                    Object::Workload(w) => loaded.catalog.workloads.push(*w),
                }
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() { Ok(loaded) } else { Err(errors) }
}

enum Object {
    Tenant(Box<Tenant>),
    Network(Box<SdnNetwork>),
    Workload(Box<SecureWorkload>),
}

fn load_one(
    document: &Document,
    api_version: &str,
    kind: &str,
    schemas: &CrdSchemas,
) -> Result<(ObjectKey, Object), Vec<InputError>> {
    let value = &document.value;
    let metadata = value.get("metadata");
    let name = metadata.and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or_default().to_string();
    let namespace = metadata.and_then(|m| m.get("namespace")).and_then(Value::as_str).map(str::to_string);
    let located = |object: String, errors: Vec<FieldError>| -> Vec<InputError> {
        errors
            .into_iter()
            .map(|error| InputError { source: document.source.clone(), object: Some(object.clone()), error })
            .collect()
    };
    let Some(schema) = schemas.get(kind) else {
        let known: Vec<&str> = schemas.iter().map(|s| s.kind()).collect();
        return Err(located(
            format!("document {}", document.index),
            vec![FieldError::new(
                "kind",
                format!("unknown kind {kind:?} in {}; known kinds: {}", api::GROUP, known.join(", ")),
            )],
        ));
    };
    let static_kind: &'static str = match kind {
        "Tenant" => "Tenant",
        "SdnNetwork" => "SdnNetwork",
        _ => "SecureWorkload",
    };
    let namespaced = static_kind == "SecureWorkload";
    let key = ObjectKey {
        kind: static_kind,
        namespace: if namespaced { namespace.clone() } else { None },
        name: name.clone(),
    };
    let object_name = if name.is_empty() { format!("{kind} (document {})", document.index) } else { key.to_string() };

    let mut errors = Vec::new();
    if api_version != api::API_VERSION {
        errors.push(FieldError::new(
            "apiVersion",
            format!("unsupported version {api_version:?}; use {}", api::API_VERSION),
        ));
    }
    errors.extend(check_metadata(&name, namespace.as_deref(), namespaced));
    errors.extend(schemas.check_structure(schema, value));
    if !errors.is_empty() {
        return Err(located(object_name, errors));
    }
    // Metadata and spec are structurally sound: the rules can run without tripping on types.
    errors.extend(schemas.check_rules(schema, value));
    let object = match static_kind {
        "Tenant" => decode::<Tenant>(value).map(|t| Object::Tenant(Box::new(t))),
        "SdnNetwork" => decode::<SdnNetwork>(value).map(|n| {
            errors.extend(rules::check_network(&n.spec));
            Object::Network(Box::new(n))
        }),
        _ => decode::<SecureWorkload>(value).map(|w| {
            errors.extend(rules::check_workload(&w.spec));
            Object::Workload(Box::new(w))
        }),
    };
    match object {
        Ok(object) if errors.is_empty() => Ok((key, object)),
        Ok(_) => Err(located(object_name, errors)),
        Err(e) => {
            errors.push(e);
            Err(located(object_name, errors))
        }
    }
}

/// Schema and rules of a Patrol or NotificationChannel, and a Patrol's schedule and time zone as
/// the patrol controller reads them.
fn check_patrol_object(document: &Document, kind: &str, schemas: &CrdSchemas) -> Result<(), Vec<InputError>> {
    let value = &document.value;
    let name = value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let mut errors = Vec::new();
    if let Some(schema) = schemas.get(kind) {
        errors.extend(schemas.check_structure(schema, value));
        if errors.is_empty() {
            errors.extend(schemas.check_rules(schema, value));
        }
    }
    if name.is_empty() {
        errors.push(FieldError::new("metadata.name", "required field is missing"));
    }
    if kind == "Patrol" && errors.is_empty() {
        if let Some(Err(e)) = value.pointer("/spec/schedule").and_then(Value::as_str).map(crate::patrol::cron::parse) {
            errors.push(FieldError::new("spec.schedule", e));
        }
        if let Err(e) = crate::patrol::cron::zone(value.pointer("/spec/timeZone").and_then(Value::as_str)) {
            errors.push(FieldError::new("spec.timeZone", e));
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    let object = format!("{kind} {name}");
    Err(errors
        .into_iter()
        .map(|error| InputError { source: document.source.clone(), object: Some(object.clone()), error })
        .collect())
}

/// Names as the API server checks them for our kinds: tenant and network names become namespace
/// names and label values (DNS-1123 labels); workload names prefix child names, and a CronJob's
/// name may have at most 52 characters.
fn check_metadata(name: &str, namespace: Option<&str>, namespaced: bool) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let max = if namespaced { 52 } else { 63 };
    if name.is_empty() {
        errors.push(FieldError::new("metadata.name", "required field is missing"));
    } else if !is_dns_label(name, max) {
        // The CRDs' own rules on the name say the same (see `api::CLUSTER_NAME_MESSAGE`).
        let message = if namespaced { api::WORKLOAD_NAME_MESSAGE } else { api::CLUSTER_NAME_MESSAGE };
        errors.push(FieldError::new("metadata.name", message.trim_start_matches("metadata.name: ")));
    }
    if namespaced {
        match namespace {
            None => errors.push(FieldError::new(
                "metadata.namespace",
                "required: render has no current namespace to fall back on",
            )),
            Some(ns) if !is_dns_label(ns, 63) => {
                errors.push(FieldError::new("metadata.namespace", format!("{ns:?} is not a valid namespace name")))
            }
            Some(_) => {}
        }
    }
    errors
}

fn is_dns_label(name: &str, max: usize) -> bool {
    name.len() <= max
        && !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn decode<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value)
        .map_err(|e| FieldError::new(e.path().to_string(), e.into_inner().to_string()))
}

/// Cross-object validation, then the builders.
pub fn render(loaded: &Loaded, config: &OperatorConfig) -> Result<Vec<Child>, Vec<InputError>> {
    let errors: Vec<InputError> = cross::check(&loaded.catalog, config)
        .into_iter()
        .map(|(key, error)| InputError { source: loaded.source_of(&key), object: Some(key.to_string()), error })
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(builders::desired_children(&loaded.catalog, config))
}

/// Multi-document YAML of the children, in the given order.
pub fn to_yaml(children: &[Child]) -> String {
    let mut out = String::new();
    for child in children {
        out.push_str("---\n");
        let yaml = serde_yaml::to_string(&child.object).expect("JSON values serialize to YAML");
        out.push_str(&yaml);
        if !yaml.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (Vec<Document>, Vec<InputError>) {
        let (mut documents, mut errors) = (Vec::new(), Vec::new());
        parse_documents("dup.yaml", text, &mut documents, &mut errors);
        (documents, errors)
    }

    #[test]
    fn a_mapping_key_given_twice_is_refused_naming_file_and_key() {
        // kubectl refuses this; serde_json would have kept the second `runtimeClassName` silently.
        let text = "apiVersion: scs.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: acme\nspec:\n  \
                    runtimeClassName: kata-qemu\n  runtimeClassName: runc\n";
        let (documents, errors) = parsed(text);
        assert!(documents.is_empty());
        assert_eq!(errors.len(), 1);
        let message = errors[0].to_string();
        assert!(message.starts_with("dup.yaml: document 1: not valid YAML"), "{message}");
        assert!(message.contains("spec: mapping key \"runtimeClassName\" is given more than once"), "{message}");
        assert!(message.contains("at line 6"), "where the mapping is: {message}");
        // Top level too.
        let (_, errors) = parsed("kind: Tenant\nkind: SdnNetwork\n");
        assert!(errors[0].to_string().contains("mapping key \"kind\""), "{}", errors[0]);
    }

    #[test]
    fn the_same_key_in_different_mappings_and_documents_is_fine() {
        let text = "metadata:\n  name: a\nspec:\n  name: b\n  list:\n    - {name: c}\n    - {name: d}\n---\nmetadata: {name: e}\n";
        let (documents, errors) = parsed(text);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(documents.len(), 2);
        assert_eq!(documents[0].value["spec"]["list"][1]["name"], "d");
        let (documents, _) = parsed("n: 1\nf: 1.5\nb: true\nz: ~\nbig: 18446744073709551615\n");
        assert_eq!(documents[0].value, serde_json::json!({"n": 1, "f": 1.5, "b": true, "z": null, "big": u64::MAX}));
    }
}
