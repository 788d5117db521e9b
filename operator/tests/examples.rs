//! The examples are the quick start and the contract of `render`: every valid example renders,
//! every file in `examples/invalid/` is rejected with the message its `# expect:` line names.

use std::path::{Path, PathBuf};
use std::process::Command;

use scs_operator::config::OperatorConfig;
use scs_operator::render;
use scs_operator::validate::cel::CrdSchemas;
use serde::Deserialize;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn invalid_examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples().join("invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "expected a broad set of invalid examples, found {}", files.len());
    files
}

/// The `# name: value` header line of an example.
fn header(file: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("# {name}: ")))
        .unwrap_or_else(|| panic!("{} has no `# {name}:` line", file.display()))
        .to_string()
}

fn render_files(paths: &[PathBuf], config: &OperatorConfig) -> Result<String, Vec<String>> {
    let schemas = CrdSchemas::new();
    let to_strings = |errors: Vec<render::InputError>| errors.iter().map(ToString::to_string).collect::<Vec<_>>();
    let documents = render::read_documents(paths, false).map_err(to_strings)?;
    let loaded = render::load(documents, &schemas).map_err(to_strings)?;
    let children = render::render(&loaded, config).map_err(to_strings)?;
    Ok(render::to_yaml(&children))
}

fn config() -> OperatorConfig {
    OperatorConfig::from_file(&examples().join("config/operator-config.yaml")).unwrap()
}

#[test]
fn example_configuration_is_the_default() {
    assert_eq!(config(), OperatorConfig::default());
}

#[test]
fn valid_examples_render() {
    let yaml = render_files(&[examples()], &config()).expect("examples render");
    let documents: Vec<serde_json::Value> =
        serde_yaml::Deserializer::from_str(&yaml).map(|d| serde_json::Value::deserialize(d).unwrap()).collect();
    let kinds: Vec<&str> = documents.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    for kind in
        ["RuntimeClass", "ResourceQuota", "LimitRange", "RoleBinding", "NetworkPolicy", "NetworkAttachmentDefinition"]
    {
        assert!(kinds.contains(&kind), "{kind} missing");
    }
    assert_eq!(kinds.iter().filter(|k| **k == "Namespace").count(), 2);
    // A workload of each kind (two Deployments), every pod template in the Kata sandbox.
    for (kind, count) in [("Deployment", 2), ("StatefulSet", 1), ("DaemonSet", 1), ("Job", 1), ("CronJob", 1)] {
        let objects: Vec<_> = documents.iter().filter(|d| d["kind"] == kind).collect();
        assert_eq!(objects.len(), count, "{kind}");
        for object in objects {
            let pod = if kind == "CronJob" {
                &object["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            } else {
                &object["spec"]["template"]["spec"]
            };
            // GPU workloads run in the vendor's sandbox class (the inference Deployment).
            let class = if pod["containers"].to_string().contains("nvidia.com/gpu") {
                "kata-qemu-nvidia-gpu"
            } else {
                "kata-qemu"
            };
            assert_eq!(pod["runtimeClassName"], class, "{kind}");
        }
    }
    for document in &documents {
        assert!(document["apiVersion"].is_string(), "{document}");
        assert!(document["metadata"]["name"].is_string(), "{document}");
        assert_eq!(document["metadata"]["labels"]["app.kubernetes.io/managed-by"], "scs-operator", "{document}");
    }
}

#[test]
fn render_output_is_sorted_and_stable() {
    let first = render_files(&[examples()], &config()).unwrap();
    let second = render_files(&[examples()], &config()).unwrap();
    assert_eq!(first, second);
    let documents: Vec<serde_json::Value> =
        serde_yaml::Deserializer::from_str(&first).map(|d| serde_json::Value::deserialize(d).unwrap()).collect();
    let keys: Vec<(bool, String, String, String)> = documents
        .iter()
        .map(|d| {
            let namespace = d["metadata"]["namespace"].as_str().map(str::to_string);
            (
                namespace.is_some(),
                namespace.unwrap_or_default(),
                d["kind"].as_str().unwrap().into(),
                d["metadata"]["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "cluster-scoped first, then by namespace, kind, name");
}

#[test]
fn every_invalid_example_is_rejected_with_its_message() {
    for file in invalid_examples() {
        let expected = header(&file, "expect");
        let errors = render_files(std::slice::from_ref(&file), &OperatorConfig::default())
            .expect_err(&format!("{} should be rejected", file.display()));
        assert!(
            errors.iter().any(|e| e.starts_with(&format!("{}: ", file.display())) && e.contains(&expected)),
            "{}: expected an error containing {expected:?}, got {errors:#?}",
            file.display()
        );
    }
}

/// Files marked `layer: cel` must be rejected by the CRD's own CEL rules alone, i.e. by the API
/// server, not only by render's extra checks.
#[test]
fn cel_layer_examples_are_rejected_by_the_crd_rules_alone() {
    let schemas = CrdSchemas::new();
    let mut checked = 0;
    for file in invalid_examples() {
        let layer = header(&file, "layer");
        assert!(["schema", "cel", "render"].contains(&layer.as_str()), "{}: unknown layer {layer}", file.display());
        if layer != "cel" {
            continue;
        }
        let expected = header(&file, "expect");
        let message = expected.split_once(": ").map(|(_, rest)| rest).unwrap();
        let documents = render::read_documents(std::slice::from_ref(&file), false).unwrap();
        let errors: Vec<String> = documents
            .iter()
            .flat_map(|d| {
                let schema = schemas.get(d.value["kind"].as_str().unwrap()).unwrap();
                assert!(
                    schemas.check_structure(schema, &d.value).is_empty(),
                    "{} must be structurally valid",
                    file.display()
                );
                schemas.check_rules(schema, &d.value)
            })
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.iter().any(|e| e.contains(message)),
            "{}: CEL rules gave {errors:?}, expected {message:?}",
            file.display()
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} CEL examples");
}

#[test]
fn valid_examples_pass_the_crd_rules() {
    let schemas = CrdSchemas::new();
    for document in render::read_documents(&[examples()], false).unwrap() {
        // The ConfigMap and Secret a workload reads are not ours: the API server alone judges them.
        let Some(schema) = schemas.get(document.value["kind"].as_str().unwrap()) else { continue };
        assert_eq!(schemas.check_structure(schema, &document.value), vec![], "{}", document.source);
        assert_eq!(schemas.check_rules(schema, &document.value), vec![], "{}", document.source);
    }
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scs-operator"))
}

#[test]
fn cli_renders_examples_to_stdout() {
    let output = binary().args(["render", "-f"]).arg(examples()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.starts_with("---\napiVersion: "));
    assert!(String::from_utf8_lossy(&output.stderr).contains("from 1 Tenant(s), 2 SdnNetwork(s), 6 SecureWorkload(s)"));
}

#[test]
fn cli_rejects_invalid_input_with_nothing_on_stdout() {
    for file in invalid_examples() {
        let output = binary().args(["render", "-f"]).arg(&file).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{}", file.display());
        assert!(output.stdout.is_empty(), "{}: stdout must stay empty", file.display());
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.starts_with(&format!("error: {}: ", file.display())), "{stderr}");
    }
}

#[test]
fn cli_reads_stdin_and_skips_foreign_kinds() {
    use std::io::Write;
    let mut child = binary()
        .args(["render", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\napiVersion: scs.dev/v1alpha1\nkind: Tenant\nmetadata: {name: solo}\nspec: {}\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("name: solo"), "{stdout}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("warning: -: skipped ConfigMap (v1)"));
}

#[test]
fn cli_reports_a_bad_config_file_by_field() {
    let dir = std::env::temp_dir().join(format!("scs-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.yaml");
    std::fs::write(&config, "storageTiers:\n  fast:\n    storageClassName: Not_A_Name\n").unwrap();
    let output = binary().args(["render", "-f"]).arg(examples()).arg("--config").arg(&config).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("storageTiers.fast.storageClassName: must be a DNS-1123 subdomain"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn missing_file_is_named() {
    let errors = render_files(&[PathBuf::from("no/such/file.yaml")], &OperatorConfig::default()).unwrap_err();
    assert_eq!(errors, ["no/such/file.yaml: no such file or directory"]);
}

/// The full render of the examples, checked in so that every change to what the operator creates
/// shows up in review. Regenerate with `UPDATE_GOLDEN=1 cargo test -p scs-operator --test examples`.
#[test]
fn rendered_examples_match_the_golden_file() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/examples.yaml");
    let rendered = render_files(&[examples()], &config()).unwrap();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &rendered).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_default();
    assert!(
        rendered == expected,
        "render output changed; review it and regenerate with UPDATE_GOLDEN=1 (first differing line: {:?})",
        rendered.lines().zip(expected.lines()).find(|(a, b)| a != b)
    );
}
