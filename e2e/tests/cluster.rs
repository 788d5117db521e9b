//! The cluster suite: the product on a real API server, controller manager and kubelet. Run by
//! `e2e/localkube.sh` (or `e2e/kind.sh`) with the kind overlay installed:
//! `cargo test -p e2e --features cluster --test cluster`. Tests use their own names and run in
//! parallel; what restarts the kubelet lives in `cluster_node.rs`.
#![cfg(feature = "cluster")]

use std::path::{Path, PathBuf};

use e2e::cluster::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, PersistentVolumeClaim, Pod, ResourceQuota, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use scs_operator::api::{SecureWorkload, Tenant, WorkloadPhase};
use scs_operator::config::OperatorConfig;
use scs_operator::render;
use scs_operator::validate::cel::CrdSchemas;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// The install

#[tokio::test]
async fn base_and_both_overlays_apply_and_one_operator_replica_leads() {
    for overlay in ["manifests/base", "manifests/overlays/production", "manifests/overlays/kind"] {
        let built = kubectl(&["kustomize", overlay], None).unwrap_or_else(|e| panic!("kustomize {overlay}: {e}"));
        kubectl(&["apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", "-"], Some(&built))
            .unwrap_or_else(|e| panic!("{overlay} is refused by the API server: {e}"));
    }
    // The optional monitoring component builds on top of an overlay; its core objects (the metrics
    // Service, the dashboard ConfigMap) are admitted. The Prometheus Operator's CRDs are absent here.
    // (kustomize takes relative paths only: the overlay lives under target/.)
    let overlay = tempfile::tempdir_in(repo().join("target")).unwrap();
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        "resources: [../../manifests/base]\ncomponents: [../../manifests/monitoring]\n",
    )
    .unwrap();
    let built = kubectl(&["kustomize", &overlay.path().display().to_string()], None)
        .unwrap_or_else(|e| panic!("kustomize with the monitoring component: {e}"));
    for kind in
        ["kind: PrometheusRule", "kind: ServiceMonitor", "name: scs-operator-dashboard", "name: scs-operator-metrics"]
    {
        assert!(built.contains(kind), "{kind} missing from the monitoring component");
    }
    let core: Vec<&str> = built
        .split("\n---\n")
        .filter(|d| d.contains("name: scs-operator-metrics") || d.contains("name: scs-operator-dashboard"))
        .collect();
    assert_eq!(core.len(), 2);
    kubectl(&["apply", "--server-side", "--dry-run=server", "-f", "-"], Some(&core.join("\n---\n")))
        .unwrap_or_else(|e| panic!("the monitoring Service and dashboard are refused: {e}"));
    let client = client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "scs-system");
    until("two operator replicas available", || async {
        let status = deployments.get("scs-operator").await.ok()?.status?;
        (status.available_replicas == Some(2)).then_some(())
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "scs-system");
    let leases: Api<Lease> = Api::namespaced(client.clone(), "scs-system");
    until("one running operator replica holds the lease", || async {
        let holder = leases.get("scs-operator").await.ok()?.spec?.holder_identity?;
        let running = pods.list(&ListParams::default().labels("app.kubernetes.io/name=scs-operator")).await.ok()?;
        let names: Vec<String> =
            running.items.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).map(|p| p.name_any()).collect();
        names.contains(&holder).then_some(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Examples: the API server and `render` agree

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn documents(file: &Path) -> Vec<Value> {
    render::read_documents(&[file.to_path_buf()], false)
        .unwrap_or_else(|e| panic!("{}: {e:?}", file.display()))
        .into_iter()
        .map(|d| d.value)
        .collect()
}

fn header(file: &Path, name: &str) -> String {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix(&format!("# {name}: ")).map(str::to_string))
        .unwrap_or_else(|| panic!("{} has no `# {name}:` line", file.display()))
}

/// `render`'s verdict on one file: `Err` with its error lines.
fn render_verdict(file: &Path) -> Result<(), Vec<String>> {
    let schemas = CrdSchemas::new();
    let to_strings = |errors: Vec<render::InputError>| errors.iter().map(ToString::to_string).collect::<Vec<_>>();
    let documents = render::read_documents(&[file.to_path_buf()], false).map_err(to_strings)?;
    let loaded = render::load(documents, &schemas).map_err(to_strings)?;
    render::render(&loaded, &OperatorConfig::default()).map(|_| ()).map_err(to_strings)
}

/// Dry-runs every document of `file` (namespaced ones moved into `scratch`, which does not change
/// what the schema and CEL judge): the first refusal, if any.
async fn server_verdict(client: &kube::Client, file: &Path, scratch: &str) -> Result<(), String> {
    for mut document in documents(file) {
        if document["metadata"].get("namespace").is_some() {
            document["metadata"]["namespace"] = json!(scratch);
        }
        dry_run(client, &document).await?;
    }
    Ok(())
}

#[tokio::test]
async fn the_api_server_and_render_agree_on_every_example() {
    let client = client().await;
    let scratch = "e2e-examples";
    plain_namespace(&client, scratch, json!({})).await;
    let examples = repo().join("examples");
    // The valid examples refer to each other (a Tenant lists the networks of another file).
    assert_eq!(render_verdict(&examples), Ok(()), "render accepts examples/");
    for file in yaml_files(&examples) {
        if let Err(refusal) = server_verdict(&client, &file, scratch).await {
            panic!("{}: the API server refuses a valid example: {refusal}", file.display());
        }
    }
    let invalid = yaml_files(&examples.join("invalid"));
    assert!(invalid.len() >= 15);
    for file in invalid {
        let layer = header(&file, "layer");
        let expect = header(&file, "expect");
        assert!(render_verdict(&file).is_err(), "{}: render accepts it", file.display());
        let server = server_verdict(&client, &file, scratch).await;
        match layer.as_str() {
            // The schema or a CEL rule says no: so must the API server, naming the same field.
            "schema" | "cel" => {
                let refusal = server.expect_err(&format!("{}: the API server accepts it", file.display()));
                let field = expect.split(": ").nth(1).unwrap();
                assert!(
                    refusal.contains(field),
                    "{}: the server's refusal does not name {field}: {refusal}",
                    file.display()
                );
            }
            // Cross-object rules: the server admits it, the operator reports it (see below).
            "render" => {
                assert_eq!(server, Ok(()), "{}: render-layer files pass the API server", file.display())
            }
            other => panic!("{}: unknown layer {other}", file.display()),
        }
    }
    delete_namespace(&client, scratch).await;
}

/// Offline schema + CEL verdict (what `render` checks before its cross-object rules).
fn offline_verdict(schemas: &CrdSchemas, object: &Value) -> Result<(), String> {
    let schema = schemas.get(object["kind"].as_str().unwrap()).unwrap();
    let mut errors = schemas.check_structure(schema, object);
    if errors.is_empty() {
        errors = schemas.check_rules(schema, object);
    }
    if errors.is_empty() { Ok(()) } else { Err(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")) }
}

/// Parity beyond the examples: valid objects changed one field at a time, with values on both
/// sides of each rule (the offline CEL engine once accepted a function the server does not have).
/// Offline validation and the API server must agree on every one.
#[tokio::test]
async fn offline_validation_agrees_with_the_api_server_field_by_field() {
    let client = client().await;
    let scratch = "e2e-parity";
    plain_namespace(&client, scratch, json!({})).await;
    let examples = repo().join("examples");
    let first =
        |file: &str, kind: &str| documents(&examples.join(file)).into_iter().find(|d| d["kind"] == kind).unwrap();
    let tenant = first("01-tenant-acme.yaml", "Tenant");
    let network = first("00-sdn-networks.yaml", "SdnNetwork");
    let mut workload = first("11-statefulset-ledger.yaml", "SecureWorkload");
    workload["metadata"]["namespace"] = json!(scratch);
    let cases: Vec<(&Value, Value)> = vec![
        (&tenant, json!({"spec": {"quota": {"cpu": "500m"}}})),
        (&tenant, json!({"spec": {"quota": {"cpu": 4}}})),
        (&tenant, json!({"spec": {"quota": {"cpu": "0"}}})),
        (&tenant, json!({"spec": {"quota": {"cpu": "-1"}}})),
        (&tenant, json!({"spec": {"quota": {"cpu": "four"}}})),
        (&tenant, json!({"spec": {"quota": {"memory": "1.5T"}}})),
        (&tenant, json!({"spec": {"quota": {"memory": "-16Gi"}}})),
        (&tenant, json!({"spec": {"quota": {"memory": "1e3"}}})),
        (&tenant, json!({"spec": {"quota": {"memory": "x".repeat(65)}}})),
        (&tenant, json!({"spec": {"quota": {"pods": -1}}})),
        (&tenant, json!({"spec": {"quota": {"storage": {"classes": {"capacity": "2Ti"}}}}})),
        (&tenant, json!({"spec": {"quota": {"storage": {"classes": {"capacity": "-1Gi"}}}}})),
        (&tenant, json!({"spec": {"quota": {"storage": {"classes": {"Fast_Tier": "1Gi"}}}}})),
        (&tenant, json!({"spec": {"quota": {"storage": {"total": "lots"}}}})),
        // Issue 12, item 11: the server takes these (rounded up to 170141184n and 1n); kube-cel's
        // own quantity arithmetic overflowed on them, so render canonicalizes first.
        (&tenant, json!({"spec": {"quota": {"cpu": "0.170141183460469231731687303715884105727"}}})),
        (&tenant, json!({"spec": {"quota": {"cpu": "1e-39"}}})),
        (
            &tenant,
            json!({"spec": {"limitDefaults": {"requests": {"cpu": "0.170141183460469231731687303715884105727"}, "limits": {"cpu": "1"}}}}),
        ),
        // The bounds the quantity rules share with quantity::parse: below 2^63-1 units (8Ei is capped
        // to 2^63-1 by the server's parser, 2e38 is not), and a digit first ("Gi" parses as 0).
        (&tenant, json!({"spec": {"quota": {"memory": "9223372036854775806"}}})),
        (&tenant, json!({"spec": {"quota": {"memory": "9223372036854775807"}}})),
        (&tenant, json!({"spec": {"quota": {"memory": "8Ei"}}})),
        (&tenant, json!({"spec": {"quota": {"memory": "2e38"}}})),
        (&tenant, json!({"spec": {"quota": {"cpu": "Gi"}}})),
        (&tenant, json!({"spec": {"limitDefaults": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}})),
        (&tenant, json!({"spec": {"limitDefaults": {"requests": {"memory": "1Gi"}, "limits": {"memory": "1Gi"}}}})),
        (&tenant, json!({"spec": {"namespaces": ["Acme-Prod"]}})),
        (&tenant, json!({"spec": {"namespaces": ["a".repeat(64)]}})),
        (&tenant, json!({"spec": {"runtimeClassName": "kata_qemu"}})),
        (&tenant, json!({"spec": {"isolation": {"podSecurity": "privileged"}}})),
        (&tenant, json!({"spec": {"members": [{"kind": "ServiceAccount", "name": "ci", "role": "member"}]}})),
        (&tenant, json!({"spec": {"members": [{"kind": "User", "name": "ci", "namespace": "x", "role": "member"}]}})),
        (&tenant, json!({"spec": {"members": [{"kind": "Robot", "name": "ci", "role": "member"}]}})),
        (&tenant, json!({"spec": {"colour": "blue"}})),
        // Issue 12: no built-in population as members; ingress domains are plain DNS names.
        (&tenant, json!({"spec": {"members": [{"kind": "Group", "name": "system:authenticated", "role": "member"}]}})),
        (&tenant, json!({"spec": {"members": [{"kind": "User", "name": "system:anonymous", "role": "viewer"}]}})),
        (
            &tenant,
            json!({"spec": {"members": [{"kind": "Group", "name": "system:serviceaccounts:argocd", "role": "member"}]}}),
        ),
        (&tenant, json!({"spec": {"ingress": {"domains": ["acme.example.com", "shop.acme.io"]}}})),
        (&tenant, json!({"spec": {"ingress": {"domains": ["*.acme.example.com"]}}})),
        (&tenant, json!({"spec": {"ingress": {"domains": ["com"]}}})),
        (
            &workload,
            json!({"spec": {"expose": {"type": "ClusterIP", "ports": [{"port": 80}], "ingress": {"host": "*.acme.example.com"}}}}),
        ),
        (&network, json!({"spec": {"cidr": "192.168.100.0/33"}})),
        (&network, json!({"spec": {"cidr": "192.168.100.0"}})),
        (&network, json!({"spec": {"gateway": "192.168.101.1"}})),
        (&network, json!({"spec": {"ipRange": {"start": "192.168.100.20", "end": "192.168.200.1"}}})),
        (&network, json!({"spec": {"vlan": 4095}})),
        (&network, json!({"spec": {"vlan": 0}})),
        (&network, json!({"spec": {"type": "vxlan"}})),
        (&network, json!({"spec": {"exclude": ["192.168.100.64/28", "not-a-cidr"]}})),
        (&workload, json!({"spec": {"replicas": -1}})),
        (
            &workload,
            json!({"spec": {"volumes": [{"name": "data", "size": "0", "tier": "performance", "mountPath": "/data"}]}}),
        ),
        (
            &workload,
            json!({"spec": {"volumes": [{"name": "data", "size": "-1Gi", "tier": "performance", "mountPath": "/data"}]}}),
        ),
        (
            &workload,
            json!({"spec": {"volumes": [{"name": "data", "size": 10, "tier": "performance", "mountPath": "/data"}]}}),
        ),
        (
            &workload,
            json!({"spec": {"volumes": [{"name": "data", "size": "10Gi", "tier": "performance", "mountPath": "data"}]}}),
        ),
        (&workload, json!({"spec": {"kind": "ReplicaSet"}})),
        (&workload, json!({"spec": {"schedule": "*/5 * * * *"}})),
        (&workload, json!({"spec": {"updateStrategy": {"maxSurge": 1}}})),
        (&workload, json!({"spec": {"updateStrategy": {"partition": 1}}})),
        (&workload, json!({"spec": {"gpu": {"vendor": "nvidia", "count": 0}}})),
        (&workload, json!({"spec": {"gpu": {"vendor": "amd", "count": 1}}})),
        (&workload, json!({"spec": {"template": {"spec": {"hostPID": true}}}})),
        (&workload, json!({"spec": {"autoscaling": {"minReplicas": 3, "maxReplicas": 2}}})),
        // Issue 14: names (a root rule on metadata.name), Job/CronJob options, the strategy rule.
        (&tenant, json!({"metadata": {"name": "t".repeat(63)}})),
        (&tenant, json!({"metadata": {"name": "t".repeat(64)}})),
        (&tenant, json!({"metadata": {"name": "acme.prod"}})),
        (&network, json!({"metadata": {"name": "n".repeat(64)}})),
        (&workload, json!({"metadata": {"name": "w".repeat(52)}})),
        (&workload, json!({"metadata": {"name": "w".repeat(53)}})),
        (&workload, json!({"metadata": {"name": "ledger.v2"}})),
        (&workload, json!({"spec": {"job": {"backoffLimit": 1}}})),
        (
            &workload,
            json!({"spec": {"kind": "Job", "replicas": 2, "updateStrategy": null, "job": {"completions": 4, "backoffLimit": 0, "activeDeadlineSeconds": 600}}}),
        ),
        (&workload, json!({"spec": {"kind": "Job", "updateStrategy": null, "job": {"ttlSecondsAfterFinished": 60}}})),
        (&workload, json!({"spec": {"kind": "Job", "updateStrategy": null, "job": {"completions": 0}}})),
        (
            &workload,
            json!({"spec": {"kind": "Job", "updateStrategy": null, "cronJob": {"concurrencyPolicy": "Allow"}}}),
        ),
        (
            &workload,
            json!({"spec": {"kind": "CronJob", "schedule": "30 2 * * *", "updateStrategy": null, "job": {"ttlSecondsAfterFinished": 60},
                "cronJob": {"timeZone": "Asia/Shanghai", "concurrencyPolicy": "Replace", "startingDeadlineSeconds": 120, "successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 1}}}),
        ),
        (
            &workload,
            json!({"spec": {"kind": "CronJob", "schedule": "TZ=Asia/Shanghai 30 2 * * *", "updateStrategy": null}}),
        ),
        (&workload, json!({"spec": {"kind": "CronJob", "schedule": "CRON_TZ=UTC 30 2 * * *", "updateStrategy": null}})),
        (
            &workload,
            json!({"spec": {"kind": "CronJob", "schedule": "@daily", "updateStrategy": null, "cronJob": {"concurrencyPolicy": "Sometimes"}}}),
        ),
        (
            &workload,
            json!({"spec": {"kind": "Deployment", "replicas": 1, "volumes": null, "updateStrategy": {"maxSurge": 1}, "networks": [{"name": "office-vlan", "ips": ["192.168.100.30/24"]}]}}),
        ),
        (
            &workload,
            json!({"spec": {"kind": "Deployment", "replicas": 1, "volumes": null, "updateStrategy": null, "networks": [{"name": "office-vlan", "ips": ["192.168.100.30/24"]}]}}),
        ),
    ];
    let schemas = CrdSchemas::new();
    let mut disagreements = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for (base, patch) in &cases {
        let mut object = (*base).clone();
        json_patch::merge(&mut object, patch);
        let offline = offline_verdict(&schemas, &object);
        let server = dry_run(&client, &object).await;
        match (&offline, &server) {
            (Ok(()), Ok(())) => accepted += 1,
            (Err(_), Err(_)) => refused += 1,
            _ => disagreements.push(format!("{} {patch}: offline {offline:?}, server {server:?}", object["kind"])),
        }
    }
    assert!(disagreements.is_empty(), "offline validation and the API server disagree:\n{}", disagreements.join("\n"));
    assert!(accepted >= 8 && refused >= 25, "both sides of the rules: {accepted} accepted, {refused} refused");
    delete_namespace(&client, scratch).await;
}

/// A condition or namespace message of a Tenant or SecureWorkload status.
fn status_messages(object: &DynamicObject) -> Vec<String> {
    let status = &object.data["status"];
    let mut messages: Vec<String> = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["message"].as_str().map(str::to_string))
        .collect();
    messages.extend(
        status["namespaces"].as_array().into_iter().flatten().filter_map(|n| n["message"].as_str().map(str::to_string)),
    );
    messages
}

/// The rules only `render` can check offline (they need other objects) are checked by the
/// operator at reconcile time: the object is admitted and its status says what is wrong.
#[tokio::test]
async fn cross_object_rules_are_reported_in_status() {
    let client = client().await;
    for file in yaml_files(&repo().join("examples/invalid")) {
        if header(&file, "layer") != "render" {
            continue;
        }
        let expect = header(&file, "expect");
        let (subject, detail) = expect.split_once(": ").unwrap();
        let (kind, key) = subject.split_once(' ').unwrap();
        let (namespace, name) = key.split_once('/').map_or((None, key), |(ns, n)| (Some(ns), n));
        let docs = documents(&file);
        // Namespaces the file's Tenants claim (their own name when they list none).
        let claimed: Vec<String> = docs
            .iter()
            .filter(|d| d["kind"] == "Tenant")
            .flat_map(|d| match d["spec"]["namespaces"].as_array() {
                Some(names) => names.iter().map(|n| n.as_str().unwrap().to_string()).collect(),
                None => vec![d["metadata"]["name"].as_str().unwrap().to_string()],
            })
            .collect();
        let mut tenants: Vec<String> = docs
            .iter()
            .filter(|d| d["kind"] == "Tenant")
            .map(|d| d["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        // A workload whose file brings no Tenant gets one that owns its namespace; a workload in a
        // namespace no Tenant of its file claims gets a plain namespace ("belongs to no Tenant").
        let mut plain = Vec::new();
        if tenants.is_empty()
            && let Some(namespace) = namespace
        {
            ready_tenant(&client, "e2e-invalid", json!({"namespaces": [namespace]})).await;
            tenants.push("e2e-invalid".into());
        } else {
            for ns in docs.iter().filter_map(|d| d["metadata"]["namespace"].as_str()) {
                if !claimed.iter().any(|c| c == ns) && !plain.iter().any(|p| p == ns) {
                    plain_namespace(&client, ns, json!({})).await;
                    plain.push(ns.to_string());
                }
            }
        }
        for doc in &docs {
            if let Some(ns) = doc["metadata"]["namespace"].as_str() {
                until(&format!("namespace {ns}"), || async {
                    Api::<Namespace>::all(client.clone()).get_opt(ns).await.ok()?.map(|_| ())
                })
                .await;
            }
            apply_dynamic(&client, doc).await;
        }
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &scs_resource(kind)),
            None => Api::all_with(client.clone(), &scs_resource(kind)),
        };
        // What the status says: the `# status:` line where the operator words it differently from
        // render, else render's message without its field path.
        let wanted = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .find_map(|line| line.strip_prefix("# status: ").map(str::to_string))
            .unwrap_or_else(|| detail.split_once(": ").map_or(detail, |(_, message)| message).to_string())
            .replace('"', "");
        until(&format!("{}: {kind} {key} reports `{wanted}`", file.display()), || async {
            let object = api.get(name).await.ok()?;
            status_messages(&object).iter().any(|m| m.replace('"', "").contains(&wanted)).then_some(())
        })
        .await;
        // Workloads before their Tenants (which would wait for them), networks last.
        let delete_all = |kind: &'static str| {
            let (client, docs) = (&client, &docs);
            async move {
                for doc in docs.iter().filter(|d| d["kind"] == kind) {
                    let api = dynamic_api(client, doc).await;
                    let _ = api.delete(doc["metadata"]["name"].as_str().unwrap(), &DeleteParams::default()).await;
                }
            }
        };
        delete_all("SecureWorkload").await;
        for tenant in &tenants {
            delete_tenant(&client, tenant).await;
        }
        delete_all("SdnNetwork").await;
        for ns in plain {
            delete_namespace(&client, &ns).await;
        }
        for ns in claimed.iter().filter(|ns| *ns != "kube-system") {
            until(&format!("namespace {ns} gone"), || async {
                Api::<Namespace>::all(client.clone()).get_opt(ns).await.ok()?.is_none().then_some(())
            })
            .await;
        }
    }
    // The reserved namespace was never touched.
    let system = Api::<Namespace>::all(client.clone()).get("kube-system").await.unwrap();
    assert!(!system.labels().contains_key("scs.dev/tenant"), "kube-system was taken over");
}

// ---------------------------------------------------------------------------------------------
// Tenants

#[tokio::test]
async fn a_tenant_converges_and_the_role_table_holds() {
    let client = client().await;
    let spec = json!({
        "namespaces": ["e2e-roles-a", "e2e-roles-b"],
        "quota": {"cpu": "4", "memory": "8Gi", "pods": 20},
        "members": [
            {"kind": "User", "name": "e2e-admin", "role": "projectAdmin"},
            {"kind": "User", "name": "e2e-member", "role": "member"},
            {"kind": "User", "name": "e2e-viewer", "role": "viewer"},
        ],
    });
    ready_tenant(&client, "e2e-roles", spec).await;
    for namespace in ["e2e-roles-a", "e2e-roles-b"] {
        let ns = Api::<Namespace>::all(client.clone()).get(namespace).await.unwrap();
        let labels = ns.labels();
        assert_eq!(labels["scs.dev/tenant"], "e2e-roles");
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
        let quota = Api::<ResourceQuota>::namespaced(client.clone(), namespace).get("scs-tenant-quota").await.unwrap();
        assert_eq!(quota.spec.unwrap().hard.unwrap()["requests.cpu"].0, "2", "4 cpus over two namespaces");
        let limits = Api::<LimitRange>::namespaced(client.clone(), namespace).list(&Default::default()).await.unwrap();
        assert_eq!(limits.items.len(), 1, "{namespace}: one LimitRange");
        let policies =
            Api::<NetworkPolicy>::namespaced(client.clone(), namespace).list(&Default::default()).await.unwrap();
        assert!(!policies.items.is_empty(), "{namespace}: NetworkPolicies");
        for role in ["scs:project-admin", "scs:member", "scs:viewer"] {
            Api::<RoleBinding>::namespaced(client.clone(), namespace).get(role).await.unwrap();
        }
    }
    // The real quota controller fills in `used`; the Tenant sums it over its namespaces.
    let tenants: Api<Tenant> = Api::all(client.clone());
    let quota = until("tenant quota used filled in by the quota controller", || async {
        let quota = tenants.get("e2e-roles").await.ok()?.status?.quota?;
        quota.used.contains_key("pods").then_some(quota)
    })
    .await;
    assert_eq!(quota.hard["pods"].0, "20");
    assert_eq!(quota.used["pods"].0, "0");

    let ns = Some("e2e-roles-a");
    let member = ("e2e-member", &[][..]);
    let viewer = ("e2e-viewer", &[][..]);
    let admin = ("e2e-admin", &[][..]);
    // Member: workloads, exec and logs yes; the fence, namespaces, nodes and other namespaces no.
    for (verb, resource) in [
        ("create", ("apps", "deployments")),
        ("patch", ("apps", "deployments/scale")),
        ("create", ("", "pods/exec")),
        ("get", ("", "pods/log")),
        ("create", ("scs.dev", "secureworkloads")),
        ("create", ("", "secrets")),
        ("create", ("", "persistentvolumeclaims")),
    ] {
        assert!(may(&client, member, verb, resource, ns).await, "member may {verb} {resource:?}");
    }
    for (verb, resource, namespace) in [
        ("update", ("", "resourcequotas"), ns),
        ("delete", ("", "limitranges"), ns),
        ("delete", ("networking.k8s.io", "networkpolicies"), ns),
        ("create", ("rbac.authorization.k8s.io", "rolebindings"), ns),
        ("delete", ("", "namespaces"), None),
        ("get", ("", "nodes"), None),
        ("list", ("storage.k8s.io", "storageclasses"), None),
        ("create", ("apps", "deployments"), Some("default")),
        ("create", ("apps", "deployments"), Some("kube-system")),
        ("update", ("scs.dev", "tenants"), None),
    ] {
        assert!(
            !may(&client, member, verb, resource, namespace).await,
            "member may not {verb} {resource:?} in {namespace:?}"
        );
    }
    // Viewer: read-only, no Secrets.
    assert!(may(&client, viewer, "list", ("apps", "deployments"), ns).await);
    assert!(may(&client, viewer, "get", ("scs.dev", "secureworkloads"), ns).await);
    assert!(!may(&client, viewer, "get", ("", "secrets"), ns).await);
    assert!(!may(&client, viewer, "create", ("apps", "deployments"), ns).await);
    assert!(!may(&client, viewer, "create", ("", "pods/exec"), ns).await);
    // Project admin: workloads, and storage read-only; not quota, not RBAC.
    assert!(may(&client, admin, "create", ("apps", "deployments"), ns).await);
    assert!(may(&client, admin, "list", ("storage.k8s.io", "storageclasses"), None).await);
    assert!(may(&client, admin, "get", ("", "persistentvolumes"), None).await);
    assert!(!may(&client, admin, "create", ("storage.k8s.io", "storageclasses"), None).await);
    assert!(!may(&client, admin, "update", ("", "resourcequotas"), ns).await);
    assert!(!may(&client, admin, "create", ("rbac.authorization.k8s.io", "rolebindings"), ns).await);
    // Every member sees its own Tenant (quota, conditions) and namespaces by name; nothing more.
    for who in [member, viewer, admin] {
        let tenant = ("scs.dev", "tenants");
        assert!(may_on(&client, who, "get", tenant, None, Some("e2e-roles")).await, "{who:?} gets its Tenant");
        assert!(may_on(&client, who, "get", ("scs.dev", "tenants/status"), None, Some("e2e-roles")).await);
        assert!(may_on(&client, who, "get", ("", "namespaces"), None, Some("e2e-roles-b")).await, "{who:?}");
        assert!(!may_on(&client, who, "get", tenant, None, Some("e2e-bye")).await, "{who:?}: not another tenant");
        assert!(!may_on(&client, who, "get", ("", "namespaces"), None, Some("kube-system")).await);
        assert!(!may(&client, who, "list", tenant, None).await, "{who:?}: a list cannot be filtered");
        assert!(!may(&client, who, "list", ("", "namespaces"), None).await);
        assert!(!may_on(&client, who, "update", tenant, None, Some("e2e-roles")).await);
    }
    assert!(kubectl(&["get", "tenant", "e2e-roles", "--as", "e2e-viewer", "-o", "name"], None).is_ok());
    // Cloud admins: everything, nodes included.
    let cloud = ("someone", &["scs:cloud-admins"][..]);
    assert!(may(&client, cloud, "patch", ("", "nodes"), None).await);
    assert!(may(&client, cloud, "create", ("storage.k8s.io", "storageclasses"), None).await);
    assert!(may(&client, cloud, "update", ("", "resourcequotas"), ns).await);
    delete_tenant(&client, "e2e-roles").await;
}

#[tokio::test]
async fn deleting_a_tenant_waits_for_its_workloads_then_cleans_up() {
    let client = client().await;
    let spec = json!({"namespaces": ["e2e-bye"], "members": [{"kind": "User", "name": "x", "role": "projectAdmin"}]});
    ready_tenant(&client, "e2e-bye", spec).await;
    let workloads: Api<SecureWorkload> = Api::namespaced(client.clone(), "e2e-bye");
    let workload = json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": "left", "namespace": "e2e-bye"},
        "spec": {"kind": "Deployment", "replicas": 0, "template": {"spec": busybox_pod_spec(&["sleep", "3600"])}}});
    apply(&workloads, "left", workload).await;
    let tenants: Api<Tenant> = Api::all(client.clone());
    tenants.delete("e2e-bye", &DeleteParams::default()).await.unwrap();
    // Held: a workload is left, and the status says so.
    until("deletion held with a message naming the workload", || async {
        let tenant = tenants.get("e2e-bye").await.ok()?;
        let messages: Vec<String> = tenant.status?.conditions.into_iter().map(|c| c.message).collect();
        messages.iter().any(|m| m.contains("left")).then_some(())
    })
    .await;
    assert!(Api::<Namespace>::all(client.clone()).get("e2e-bye").await.unwrap().metadata.deletion_timestamp.is_none());
    workloads.delete("left", &DeleteParams::default()).await.unwrap();
    until("Tenant e2e-bye gone", || async { tenants.get_opt("e2e-bye").await.ok()?.is_none().then_some(()) }).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    until("namespace gone or terminating", || async {
        match namespaces.get_opt("e2e-bye").await.ok()? {
            None => Some(()),
            Some(ns) => ns.metadata.deletion_timestamp.map(|_| ()),
        }
    })
    .await;
    let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(client.clone());
    assert!(bindings.get_opt("scs:tenant:e2e-bye:storage-reader").await.unwrap().is_none());
}

// ---------------------------------------------------------------------------------------------
// Admission: the policy and the quota

fn pod(name: &str, spec: Value) -> Pod {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}))
        .unwrap()
}

#[tokio::test]
async fn the_admission_policy_holds_however_the_pod_is_made() {
    let client = client().await;
    // A namespace marked as a tenant's, without Pod Security labels: only the policy stands.
    let namespace = "e2e-policy";
    plain_namespace(&client, namespace, json!({"scs.dev/tenant": "e2e-policy", "scs.dev/runtime-class": "kata-qemu"}))
        .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let with = |patch: Value| {
        let mut spec = busybox_pod_spec(&["sleep", "1"]);
        spec["runtimeClassName"] = json!("kata-qemu");
        json_patch::merge(&mut spec, &patch);
        spec
    };
    let dry = PostParams { dry_run: true, ..Default::default() };
    // Until the operator has written a namespace's image rules, no pod is admitted there.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let image_rules = |value: Value| json!({"metadata": {"annotations": {"scs.dev/image-pinning": value, "scs.dev/image-public-prefixes": value.as_str().map(|_| "docker.io/library/")}}});
    namespaces.patch(namespace, &PatchParams::default(), &Patch::Merge(image_rules(Value::Null))).await.unwrap();
    let error = pods.create(&dry, &pod("fine", with(json!({})))).await.unwrap_err().to_string();
    assert!(error.contains("scs-tenant-images") && error.contains("no image rules yet"), "{error}");
    namespaces.patch(namespace, &PatchParams::default(), &Patch::Merge(image_rules(json!("Tag")))).await.unwrap();
    pods.create(&dry, &pod("fine", with(json!({})))).await.expect("a pod with the tenant's class is admitted");
    for (name, patch, reason) in [
        ("no-class", json!({"runtimeClassName": null}), "runtimeClassName"),
        ("host-net", json!({"hostNetwork": true}), "hostNetwork"),
        ("host-pid", json!({"hostPID": true}), "hostPID"),
        ("host-ipc", json!({"hostIPC": true}), "hostIPC"),
    ] {
        let error = pods.create(&dry, &pod(name, with(patch))).await.expect_err(name).to_string();
        assert!(error.contains("scs-tenant-pods") && error.contains(reason), "{name}: {error}");
    }
    let mut privileged = with(json!({}));
    privileged["containers"][0]["securityContext"] = json!({"privileged": true});
    let error = pods.create(&dry, &pod("privileged", privileged.clone())).await.unwrap_err().to_string();
    assert!(error.contains("scs-tenant-pods") && error.contains("privileged"), "{error}");
    privileged["initContainers"] = privileged["containers"].clone();
    privileged["initContainers"][0]["name"] = json!("init");
    privileged["containers"][0]["securityContext"] = json!({"privileged": false});
    let error = pods.create(&dry, &pod("privileged-init", privileged)).await.unwrap_err().to_string();
    assert!(error.contains("scs-tenant-pods") && error.contains("privileged"), "{error}");
    delete_namespace(&client, namespace).await;
}

#[tokio::test]
async fn pod_security_and_the_quota_hold_in_a_tenant_namespace() {
    let client = client().await;
    ready_tenant(
        &client,
        "e2e-fence",
        json!({"namespaces": ["e2e-fence"], "quota": {"pods": 1, "cpu": "1", "memory": "1Gi"}}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "e2e-fence");
    let mut spec = busybox_pod_spec(&["sleep", "3600"]);
    spec["runtimeClassName"] = json!("kata-qemu");
    // Pod Security restricted: a root pod is refused.
    let mut root = spec.clone();
    root["securityContext"] = json!({"seccompProfile": {"type": "RuntimeDefault"}});
    let error = pods.create(&PostParams::default(), &pod("root", root)).await.unwrap_err().to_string();
    assert!(error.contains("violates PodSecurity \"restricted"), "{error}");
    // Admitted, until the quota of one pod is used up.
    pods.create(&PostParams::default(), &pod("first", spec.clone())).await.unwrap();
    let error = pods.create(&PostParams::default(), &pod("second", spec.clone())).await.unwrap_err().to_string();
    assert!(error.contains("exceeded quota"), "{error}");
    delete_tenant(&client, "e2e-fence").await;
}

// ---------------------------------------------------------------------------------------------
// Workloads

fn workload_manifest(namespace: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": name, "namespace": namespace}, "spec": spec})
}

async fn phase_reached(workloads: &Api<SecureWorkload>, name: &str, phase: WorkloadPhase) -> SecureWorkload {
    until(&format!("workload {name} {phase:?}"), || async {
        let workload = workloads.get(name).await.ok()?;
        let status = workload.status.as_ref()?;
        (status.phase == Some(phase) && status.observed_generation == workload.metadata.generation).then_some(workload)
    })
    .await
}

async fn running_pods(client: &kube::Client, namespace: &str, workload: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("scs.dev/workload={workload}");
    let list = pods.list(&ListParams::default().labels(&selector)).await.unwrap();
    list.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .collect()
}

#[tokio::test]
async fn every_workload_kind_really_runs_in_the_sandbox_class() {
    let client = client().await;
    let ns = "e2e-kinds";
    ready_tenant(&client, ns, json!({"quota": {"cpu": "4", "memory": "4Gi", "pods": 30}})).await;
    let workloads: Api<SecureWorkload> = Api::namespaced(client.clone(), ns);
    let sleep = busybox_pod_spec(&["sleep", "3600"]);
    let mut done = busybox_pod_spec(&["sh", "-c", "echo done"]);
    done["restartPolicy"] = json!("Never");
    let specs = [
        ("deploy", json!({"kind": "Deployment", "replicas": 1, "template": {"spec": sleep}})),
        ("set", json!({"kind": "StatefulSet", "replicas": 1, "template": {"spec": sleep}})),
        ("daemons", json!({"kind": "DaemonSet", "template": {"spec": sleep}})),
        ("job", json!({"kind": "Job", "template": {"spec": done}})),
        ("cron", json!({"kind": "CronJob", "schedule": "* * * * *", "template": {"spec": done}})),
    ];
    for (name, spec) in &specs {
        apply(&workloads, name, workload_manifest(ns, name, spec.clone())).await;
    }
    for name in ["deploy", "set", "daemons", "cron"] {
        phase_reached(&workloads, name, WorkloadPhase::Running).await;
    }
    phase_reached(&workloads, "job", WorkloadPhase::Succeeded).await;
    for name in ["deploy", "set", "daemons"] {
        let pods = running_pods(&client, ns, name).await;
        assert_eq!(pods.len(), 1, "{name}: one running pod");
        assert_eq!(pods[0].spec.as_ref().unwrap().runtime_class_name.as_deref(), Some("kata-qemu"), "{name}");
    }
    // The CronJob really runs a Job to completion on its schedule (within a minute or two).
    let cron_jobs: Api<k8s_openapi::api::batch::v1::CronJob> = Api::namespaced(client.clone(), ns);
    until("the CronJob's first successful run", || async {
        cron_jobs.get("cron").await.ok()?.status?.last_successful_time.map(|_| ())
    })
    .await;
    let cron = workloads.get("cron").await.unwrap();
    assert!(cron.status.unwrap().last_schedule_time.is_some(), "the workload reports the last schedule");
    for (name, _) in &specs {
        workloads.delete(name, &DeleteParams::default()).await.unwrap();
    }
    delete_tenant(&client, ns).await;
}

#[tokio::test]
async fn a_deployment_scales_suspends_restarts_and_heals() {
    let client = client().await;
    let ns = "e2e-life";
    ready_tenant(&client, ns, json!({"quota": {"cpu": "2", "memory": "2Gi"}})).await;
    let workloads: Api<SecureWorkload> = Api::namespaced(client.clone(), ns);
    let spec = |extra: Value| {
        let mut spec = json!({"kind": "Deployment", "replicas": 1, "template": {"spec": busybox_pod_spec(&["sleep", "3600"])},
            "expose": {"type": "ClusterIP", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}});
        json_patch::merge(&mut spec, &extra);
        workload_manifest(ns, "app", spec)
    };
    apply(&workloads, "app", spec(json!({}))).await;
    phase_reached(&workloads, "app", WorkloadPhase::Running).await;

    // Scale.
    apply(&workloads, "app", spec(json!({"replicas": 2}))).await;
    until("two running pods", || async { (running_pods(&client, ns, "app").await.len() == 2).then_some(()) }).await;
    phase_reached(&workloads, "app", WorkloadPhase::Running).await;

    // Suspend, then resume.
    apply(&workloads, "app", spec(json!({"replicas": 2, "suspended": true}))).await;
    phase_reached(&workloads, "app", WorkloadPhase::Suspended).await;
    until("no running pods", || async { running_pods(&client, ns, "app").await.is_empty().then_some(()) }).await;
    apply(&workloads, "app", spec(json!({"replicas": 2}))).await;
    phase_reached(&workloads, "app", WorkloadPhase::Running).await;

    // Restart: every pod is replaced.
    let before: Vec<String> = running_pods(&client, ns, "app").await.iter().map(|p| p.name_any()).collect();
    apply(&workloads, "app", spec(json!({"replicas": 2, "restartedAt": "2026-12-01T10:00:00Z"}))).await;
    until("every pod replaced", || async {
        let now: Vec<String> = running_pods(&client, ns, "app").await.iter().map(|p| p.name_any()).collect();
        (now.len() == 2 && now.iter().all(|n| !before.contains(n))).then_some(())
    })
    .await;

    // Children deleted by hand come back.
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let old_uid = deployments.get("app").await.unwrap().uid();
    services.delete("app", &DeleteParams::default()).await.unwrap();
    deployments.delete("app", &DeleteParams::default()).await.unwrap();
    until("Service and Deployment recreated", || async {
        services.get_opt("app").await.ok()??;
        let deployment = deployments.get_opt("app").await.ok()??;
        (deployment.uid() != old_uid && deployment.metadata.deletion_timestamp.is_none()).then_some(())
    })
    .await;
    phase_reached(&workloads, "app", WorkloadPhase::Running).await;

    // Deleting the workload: the real garbage collector removes its children.
    workloads.delete("app", &DeleteParams::default()).await.unwrap();
    until("children garbage collected", || async {
        let gone = deployments.get_opt("app").await.ok()?.is_none() && services.get_opt("app").await.ok()?.is_none();
        gone.then_some(())
    })
    .await;
    delete_tenant(&client, ns).await;
}

#[tokio::test]
async fn claims_outlive_their_workload_unless_told_otherwise() {
    let client = client().await;
    let ns = "e2e-volumes";
    ready_tenant(&client, ns, json!({"quota": {"storage": {"total": "10Gi"}}})).await;
    let workloads: Api<SecureWorkload> = Api::namespaced(client.clone(), ns);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let volume = |name: &str| json!({"name": name, "size": "1Gi", "tier": "capacity", "mountPath": "/data"});
    // No provisioner on localkube: the claims stay Pending, which is all this needs.
    for (name, retain) in [("kept", true), ("dropped", false)] {
        let spec = json!({"kind": "Deployment", "replicas": 0, "retainVolumes": retain, "volumes": [volume("data")],
            "template": {"spec": busybox_pod_spec(&["sleep", "3600"])}});
        apply(&workloads, name, workload_manifest(ns, name, spec)).await;
    }
    for name in ["kept", "dropped"] {
        let claim = format!("{name}-data");
        until(&format!("claim {claim}"), || async { claims.get_opt(&claim).await.ok()?.map(|_| ()) }).await;
        workloads.delete(name, &DeleteParams::default()).await.unwrap();
    }
    until("the unretained claim collected", || async {
        claims.get_opt("dropped-data").await.ok()?.is_none().then_some(())
    })
    .await;
    let kept = claims.get("kept-data").await.expect("the retained claim outlives its workload");
    assert!(kept.metadata.deletion_timestamp.is_none());
    delete_tenant(&client, ns).await;
}
