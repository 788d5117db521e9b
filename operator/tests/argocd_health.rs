//! Argo CD's health checks for our kinds, run the way Argo CD runs them: Lua 5.1 with only the
//! base, table and os libraries, the object as the global `obj`, a table `{status, message}` back.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::ConfigMap;
use mlua::serde::SerializeOptions;
use mlua::{Lua, LuaOptions, LuaSerdeExt, StdLib, Table};
use serde::Deserialize;

fn argocd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/argocd")
}

/// The scripts, from the argocd-cm patch users apply (the single source of truth).
fn script(kind: &str) -> String {
    let text = std::fs::read_to_string(argocd_dir().join("argocd-cm-health.yaml")).unwrap();
    let config_map = ConfigMap::deserialize(serde_yaml::Deserializer::from_str(&text)).unwrap();
    config_map.data.unwrap().remove(&format!("resource.customizations.health.scs.dev_{kind}")).expect("script for kind")
}

fn run(script: &str, object: &serde_json::Value) -> (String, String) {
    let lua = Lua::new_with(StdLib::TABLE | StdLib::OS, LuaOptions::new()).unwrap();
    // Argo CD hands nulls over as nil.
    let options = SerializeOptions::new().serialize_none_to_null(false).serialize_unit_to_null(false);
    lua.globals().set("obj", lua.to_value_with(object, options).unwrap()).unwrap();
    let result: Table = lua.load(script).eval().unwrap_or_else(|e| panic!("script failed: {e}"));
    (result.get("status").unwrap(), result.get("message").unwrap())
}

fn header(text: &str, name: &str) -> String {
    let raw = text.lines().find_map(|l| l.strip_prefix(&format!("# {name}: "))).unwrap_or_else(|| panic!("no {name}"));
    // Values may be quoted YAML scalars.
    serde_yaml::from_str::<String>(raw).unwrap_or_else(|_| raw.to_string())
}

#[test]
fn every_testdata_object_gets_its_status_and_message() {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(argocd_dir().join("health-testdata")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut kinds_seen = std::collections::BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let object: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        let kind = object["kind"].as_str().unwrap().to_string();
        let (status, message) = run(&script(&kind), &object);
        assert_eq!(status, header(&text, "status"), "{}", file.display());
        assert_eq!(message, header(&text, "message"), "{}", file.display());
        kinds_seen.insert(kind);
    }
    assert_eq!(kinds_seen.into_iter().collect::<Vec<_>>(), ["SdnNetwork", "SecureWorkload", "Tenant"]);
    assert!(files.len() >= 12);
}

#[test]
fn scripts_do_not_need_the_string_library() {
    // Without `string`, method calls on strings fail at run time; make sure none is used.
    for kind in ["Tenant", "SdnNetwork", "SecureWorkload"] {
        let script = script(kind);
        for forbidden in ["string.", ":sub(", ":find(", ":match(", ":gsub(", ":format(", ":lower(", ":upper("] {
            assert!(!script.contains(forbidden), "{kind} uses {forbidden}");
        }
    }
}
