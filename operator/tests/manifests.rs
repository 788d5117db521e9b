//! Every manifest in `manifests/` is a well-formed object of its kind, the kustomizations point at
//! files that exist, and the operator's ClusterRole grants exactly what the controllers use.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::flowcontrol::v1::{FlowSchema, PriorityLevelConfiguration};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use scs_operator::builders::rbac::BOUND_CLUSTER_ROLES;
use scs_operator::config::OperatorConfig;
use scs_operator::controller::managed::{Scope, managed_kinds};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

/// Parses `value` as `K` and checks that nothing was dropped on the way (a misspelt field would be).
fn typed<K: DeserializeOwned + serde::Serialize>(value: &Value, path: &Path) -> K {
    let object: K = serde_path_to_error::deserialize(value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let back = serde_json::to_value(&object).unwrap();
    assert!(
        scs_operator::controller::diff::contains(&back, value),
        "{}: fields were not recognised (misspelt?) in {}",
        path.display(),
        value["metadata"]["name"]
    );
    object
}

#[test]
fn every_manifest_is_a_well_formed_object() {
    let mut checked = 0;
    for path in yaml_files(&root().join("manifests")) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.components().any(|c| c.as_os_str() == "health-testdata") {
            continue; // objects of our own CRDs for the health tests, status only
        }
        for document in documents(&path) {
            let kind = document["kind"].as_str().unwrap_or_default();
            match kind {
                "Namespace" => drop(typed::<Namespace>(&document, &path)),
                "ServiceAccount" => drop(typed::<ServiceAccount>(&document, &path)),
                "ConfigMap" => drop(typed::<ConfigMap>(&document, &path)),
                "ClusterRole" => drop(typed::<ClusterRole>(&document, &path)),
                "ClusterRoleBinding" => drop(typed::<ClusterRoleBinding>(&document, &path)),
                "Role" => drop(typed::<Role>(&document, &path)),
                "RoleBinding" => drop(typed::<RoleBinding>(&document, &path)),
                "PodDisruptionBudget" => drop(typed::<PodDisruptionBudget>(&document, &path)),
                "Deployment" => drop(typed::<Deployment>(&document, &path)),
                "DaemonSet" => drop(typed::<DaemonSet>(&document, &path)),
                "ValidatingAdmissionPolicy" => drop(typed::<ValidatingAdmissionPolicy>(&document, &path)),
                "ValidatingAdmissionPolicyBinding" => drop(typed::<ValidatingAdmissionPolicyBinding>(&document, &path)),
                "Kustomization" | "Component" => assert_eq!(name, "kustomization.yaml", "{}", path.display()),
                "Service" => drop(typed::<k8s_openapi::api::core::v1::Service>(&document, &path)),
                "FlowSchema" => drop(typed::<FlowSchema>(&document, &path)),
                "PriorityLevelConfiguration" => drop(typed::<PriorityLevelConfiguration>(&document, &path)),
                // The Prometheus Operator's types: checked against our metrics below.
                "ServiceMonitor" | "PrometheusRule" => {
                    assert_eq!(document["apiVersion"], "monitoring.coreos.com/v1", "{}", path.display())
                }
                "Application" => {
                    // Argo CD's own type: the fields Argo CD needs, and a path that exists here when
                    // the source is this repository.
                    assert_eq!(document["apiVersion"], "argoproj.io/v1alpha1");
                    let source_path = document["spec"]["source"]["path"].as_str().unwrap();
                    assert!(document["spec"]["destination"]["server"].is_string());
                    if document["metadata"]["name"] == "scs-operator" {
                        assert!(root().join(source_path).join("kustomization.yaml").exists(), "{source_path}");
                    }
                }
                other => panic!("{}: unexpected kind {other:?}", path.display()),
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} documents");
}

#[test]
fn kustomizations_reference_what_exists() {
    for path in yaml_files(&root().join("manifests")).into_iter().filter(|p| p.ends_with("kustomization.yaml")) {
        let dir = path.parent().unwrap();
        let document = &documents(&path)[0];
        for resource in document["resources"].as_array().unwrap() {
            let target = dir.join(resource.as_str().unwrap());
            let is_kustomization = ["kustomization.yaml", "Kustomization"].iter().any(|f| target.join(f).exists());
            assert!(target.is_file() || is_kustomization, "{}: {} does not exist", path.display(), target.display());
        }
        for component in document["components"].as_array().into_iter().flatten() {
            let target = dir.join(component.as_str().unwrap()).join("kustomization.yaml");
            assert!(target.is_file(), "{}: component {} does not exist", path.display(), target.display());
            assert_eq!(documents(&target)[0]["kind"], "Component", "{}", target.display());
        }
        for patch in document["patches"].as_array().into_iter().flatten() {
            if let Some(file) = patch["path"].as_str() {
                assert!(dir.join(file).is_file(), "{}: patch {file} does not exist", path.display());
            } else {
                assert!(patch["patch"].is_string() && patch["target"]["kind"].is_string(), "{}", path.display());
            }
        }
    }
}

#[test]
fn configurations_in_manifests_load() {
    let base = &documents(&root().join("manifests/base/operator-config.yaml"))[0];
    let config = OperatorConfig::from_yaml(base["data"]["operator-config.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(config, OperatorConfig::default(), "the base ConfigMap shows the defaults");
    let kind = &documents(&root().join("manifests/overlays/kind/operator-config.yaml"))[0];
    let config = OperatorConfig::from_yaml(kind["data"]["operator-config.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(config.runtime_class.handler, "runc", "pods must really run on kind");
    assert!(config.runtime_class.node_selector.is_empty());
}

#[test]
fn leader_election_may_use_its_lease_and_nothing_else() {
    let documents = documents(&root().join("manifests/base/operator-rbac.yaml"));
    let role: Role = typed(documents.iter().find(|d| d["kind"] == "Role").unwrap(), Path::new("rbac"));
    assert_eq!(role.metadata.namespace.as_deref(), Some("scs-system"));
    let mut grants: Vec<(Vec<String>, Option<Vec<String>>)> =
        role.rules.unwrap().into_iter().map(|r| (r.verbs, r.resource_names)).collect();
    grants.sort();
    assert_eq!(
        grants,
        [
            (vec!["create".to_string()], None),
            (vec!["get".to_string(), "patch".to_string()], Some(vec!["scs-operator".to_string()])),
        ]
    );
}

#[test]
fn operator_deployment_is_locked_down() {
    let deployment: Deployment =
        typed(&documents(&root().join("manifests/base/operator-deployment.yaml"))[0], Path::new("deployment"));
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("scs-operator"));
    assert_eq!(pod.security_context.as_ref().unwrap().run_as_non_root, Some(true));
    let container = &pod.containers[0];
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.capabilities.as_ref().unwrap().drop.as_deref(), Some(&["ALL".to_string()][..]));
    assert!(container.resources.as_ref().unwrap().limits.is_some());
    assert_eq!(container.liveness_probe.as_ref().unwrap().http_get.as_ref().unwrap().path.as_deref(), Some("/healthz"));
    assert_eq!(container.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap().path.as_deref(), Some("/readyz"));
    let args = container.args.clone().unwrap().join(" ");
    assert!(
        args.contains("--config /etc/scs/operator-config.yaml") && args.contains("--health-addr 0.0.0.0:8080"),
        "{args}"
    );
    assert!(args.contains("--leader-elect"), "several replicas need leader election: {args}");
    let env: Vec<&str> = container.env.iter().flatten().map(|e| e.name.as_str()).collect();
    assert!(env.contains(&"POD_NAME") && env.contains(&"POD_NAMESPACE"), "{env:?}");
    assert_eq!(container.ports.as_ref().unwrap()[0].container_port, 8080);
    assert_eq!(container.volume_mounts.as_ref().unwrap()[0].mount_path, "/etc/scs");
}

#[test]
fn device_plugin_daemonsets_run_the_binary_as_configured() {
    use clap::Parser;
    use scs_operator::device_plugin::Args;

    let documents = documents(&root().join("manifests/base/device-plugin.yaml"));
    let role: ClusterRole = typed(documents.iter().find(|d| d["kind"] == "ClusterRole").unwrap(), Path::new("rbac"));
    let expected: BTreeSet<_> =
        ["get", "patch"].map(|verb| (String::new(), "nodes".to_string(), verb.to_string())).into_iter().collect();
    assert_eq!(granted(&role), expected, "labelling its node is all the plugin does with the API");
    let daemon_sets: Vec<DaemonSet> =
        documents.iter().filter(|d| d["kind"] == "DaemonSet").map(|d| typed(d, Path::new("daemonset"))).collect();
    assert_eq!(daemon_sets.len(), 2, "one per vendor");
    // hostPath volumes and root pass Pod Security only at `privileged`: the plugin has its own
    // namespace so the operator's stays `restricted`.
    let namespace = documents.iter().find(|d| d["kind"] == "Namespace").unwrap();
    assert_eq!(namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "privileged");
    for daemon_set in daemon_sets {
        assert_eq!(
            daemon_set.metadata.namespace.as_ref(),
            namespace["metadata"]["name"].as_str().map(String::from).as_ref()
        );
        let pod = daemon_set.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("scs-device-plugin"));
        let container = &pod.containers[0];
        let mut argv = vec!["scs-operator".to_string()];
        argv.extend(container.args.clone().unwrap().into_iter().skip(1));
        let args = Args::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        let vendor_label = format!("feature.node.kubernetes.io/pci-{:04x}.present", args.vendor.pci_vendor_id());
        assert_eq!(pod.node_selector.as_ref().unwrap().get(&vendor_label).map(String::as_str), Some("true"));
        let tolerated: Vec<_> = pod.tolerations.iter().flatten().filter_map(|t| t.key.as_deref()).collect();
        let resource = args.resource_name();
        assert!(tolerated.contains(&resource.as_str()), "{tolerated:?} must tolerate the {resource} taint");

        // Each path the plugin reads is a host path mounted there (sysfs and /dev read-only).
        let volumes = pod.volumes.as_ref().unwrap();
        let host_path_of = |mount_path: &Path| {
            let mount = container.volume_mounts.iter().flatten().find(|m| Path::new(&m.mount_path) == mount_path);
            let mount = mount.unwrap_or_else(|| panic!("nothing mounted at {}", mount_path.display()));
            let volume = volumes.iter().find(|v| v.name == mount.name).unwrap();
            (volume.host_path.as_ref().unwrap().path.clone(), mount.read_only.unwrap_or(false))
        };
        assert_eq!(host_path_of(&args.kubelet_dir), (args.kubelet_dir.display().to_string(), false));
        assert_eq!(host_path_of(&args.sysfs_root), ("/sys".to_string(), true));
        assert_eq!(host_path_of(&args.dev_root), ("/dev".to_string(), true));
        // The CDI spec is written where the runtime reads it, on the host.
        assert!(!args.no_cdi);
        assert_eq!(host_path_of(&args.cdi_dir), ("/var/run/cdi".to_string(), false));
        let env: Vec<&str> = container.env.iter().flatten().map(|e| e.name.as_str()).collect();
        assert!(env.contains(&"NODE_NAME"), "node labels need the node name: {env:?}");
        let security = container.security_context.as_ref().unwrap();
        assert_eq!(security.capabilities.as_ref().unwrap().drop.as_deref(), Some(&["ALL".to_string()][..]));
        assert_eq!((security.privileged, security.allow_privilege_escalation), (None, Some(false)));
    }
}

/// `(group, resource, verb)` granted by the operator's ClusterRole (without `bind`).
fn granted(role: &ClusterRole) -> BTreeSet<(String, String, String)> {
    let mut granted = BTreeSet::new();
    for rule in role.rules.iter().flatten().filter(|r| !r.verbs.contains(&"bind".to_string())) {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    granted.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    granted
}

#[test]
fn operator_cluster_role_grants_exactly_what_the_code_uses() {
    let documents = documents(&root().join("manifests/base/operator-rbac.yaml"));
    let role: ClusterRole = typed(documents.iter().find(|d| d["kind"] == "ClusterRole").unwrap(), Path::new("rbac"));
    let mut needed = BTreeSet::new();
    let mut need = |group: &str, resource: &str, verbs: &[&str]| {
        for verb in verbs {
            needed.insert((group.to_string(), resource.to_string(), verb.to_string()));
        }
    };
    for kind in managed_kinds() {
        let verbs: &[&str] = match kind.scope {
            // Watched into the child caches, so that tenants need not read them each pass.
            Scope::Platform => &["get", "list", "watch", "create", "patch"],
            Scope::Tenant | Scope::Workload | Scope::Network => &["get", "list", "watch", "create", "patch", "delete"],
        };
        need(&kind.resource.group, &kind.resource.plural, verbs);
    }
    // PermissionGroups are the authz-server's alone (its own ServiceAccount and ClusterRole).
    for crd in scs_operator::api::crds().into_iter().filter(|c| c.spec.names.kind != "PermissionGroup") {
        need("scs.dev", &crd.spec.names.plural, &["get", "list", "watch", "patch"]);
        need("scs.dev", &format!("{}/status", crd.spec.names.plural), &["get", "patch"]);
    }
    need("events.k8s.io", "events", &["create", "patch"]);
    need("apps", "controllerrevisions", scs_operator::controller::history::VERBS);
    for (group, resource, verb) in scs_operator::controller::cluster_cidrs::READS {
        need(group, resource, &[verb]);
    }
    for (group, resource, verbs) in scs_operator::controller::pull_secrets::CLUSTER_GRANTS {
        need(group, resource, verbs);
    }
    assert_eq!(granted(&role), needed, "the ClusterRole must match the code's managed kinds exactly");

    for rule in role.rules.iter().flatten() {
        assert!(!rule.verbs.iter().any(|v| v == "*" || v == "escalate" || v == "impersonate"), "{rule:?}");
        assert!(!rule.resources.iter().flatten().any(|r| r == "*"), "{rule:?}");
        assert!(!rule.api_groups.iter().flatten().any(|g| g == "*"), "{rule:?}");
    }
    let bind = role.rules.iter().flatten().find(|r| r.verbs == ["bind"]).expect("a bind rule");
    let mut names = bind.resource_names.clone().unwrap();
    names.sort();
    let mut bound: Vec<String> = BOUND_CLUSTER_ROLES.iter().map(|s| s.to_string()).collect();
    bound.sort();
    assert_eq!(names, bound, "bind exactly on the role ClusterRoles the operator hands out");
    assert_eq!(bind.resources.as_deref(), Some(&["clusterroles".to_string()][..]));
}

/// `(group, resource, verb)` of rules (any kind of role).
/// `(group, resource, verb)` triples.
type Grants = BTreeSet<(String, String, String)>;

fn rules_of(rules: &[k8s_openapi::api::rbac::v1::PolicyRule]) -> Grants {
    let mut granted = BTreeSet::new();
    for rule in rules {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    granted.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    granted
}

fn expand(grants: &[(&str, &str, &[&str])]) -> Grants {
    grants
        .iter()
        .flat_map(|(g, r, verbs)| verbs.iter().map(move |v| (g.to_string(), r.to_string(), v.to_string())))
        .collect()
}

#[test]
fn authz_server_roles_grant_exactly_what_the_code_uses() {
    use k8s_openapi::api::rbac::v1::Role;
    use scs_operator::authz::server::{CLUSTER_GRANTS, CLUSTER_NAMED_GRANTS, NAMESPACE_GRANTS};
    let path = root().join("manifests/base/authz-server.yaml");
    let documents = documents(&path);
    let cluster: ClusterRole = typed(documents.iter().find(|d| d["kind"] == "ClusterRole").unwrap(), &path);
    let role: Role = typed(documents.iter().find(|d| d["kind"] == "Role").unwrap(), &path);
    // Rules on named objects apart: each must name exactly the objects the code writes.
    let (named, unnamed): (Vec<_>, Vec<_>) =
        cluster.rules.clone().unwrap_or_default().into_iter().partition(|r| r.resource_names.is_some());
    assert_eq!(rules_of(&unnamed), expand(CLUSTER_GRANTS));
    let expected: Vec<(Grants, Vec<String>)> = CLUSTER_NAMED_GRANTS
        .iter()
        .map(|(g, r, verbs, names)| (expand(&[(g, r, verbs)]), names.iter().map(|n| n.to_string()).collect()))
        .collect();
    let found: Vec<_> =
        named.iter().map(|r| (rules_of(std::slice::from_ref(r)), r.resource_names.clone().unwrap())).collect();
    assert_eq!(found, expected);
    assert_eq!(rules_of(role.rules.as_deref().unwrap_or_default()), expand(NAMESPACE_GRANTS));
    assert_eq!(role.metadata.namespace.as_deref(), Some("scs-system"));
    for rule in cluster.rules.iter().flatten().chain(role.rules.iter().flatten()) {
        assert!(rule.resource_names.is_none() || rule.verbs != ["get"], "{rule:?}");
        assert!(!rule.verbs.iter().any(|v| v == "*" || v == "escalate" || v == "bind" || v == "impersonate"));
    }
    // Nothing in tenant namespaces but reading pods, workloads and groups and marking pods: no
    // Secrets, no writes to PermissionGroups or SecureWorkloads.
    // Cluster-wide ConfigMaps: the CA ConfigMap by name (above), and create, which RBAC cannot
    // name (the admission policy scs-authz-server-configmaps limits it; admission_policy.rs).
    let everywhere = rules_of(cluster.rules.as_deref().unwrap_or_default());
    assert!(!everywhere.iter().any(|(_, r, _)| r == "secrets"));
    let configmaps: Vec<_> = rules_of(&unnamed).into_iter().filter(|(_, r, _)| r == "configmaps").collect();
    assert_eq!(configmaps, [("".to_string(), "configmaps".to_string(), "create".to_string())]);
    // On scs.dev objects it reads; it writes only the status subresources (patch), never a spec.
    let scs_writes: BTreeSet<(String, String)> = everywhere
        .iter()
        .filter(|(g, _, v)| g == "scs.dev" && !["get", "list", "watch"].contains(&v.as_str()))
        .map(|(_, r, v)| (r.clone(), v.clone()))
        .collect();
    let expected: BTreeSet<(String, String)> =
        [("permissiongroups/status", "patch"), ("secureworkloads/status", "patch")]
            .iter()
            .map(|(r, v)| (r.to_string(), v.to_string()))
            .collect();
    assert_eq!(scs_writes, expected);
    let deployment: Deployment = typed(documents.iter().find(|d| d["kind"] == "Deployment").unwrap(), &path);
    let labels = deployment.spec.unwrap().template.metadata.unwrap().labels.unwrap();
    assert_eq!(
        labels["app.kubernetes.io/name"],
        scs_operator::authz::SERVER_APP,
        "the tenant NetworkPolicy selects this"
    );
}

#[test]
fn cloud_admins_are_bound_statically_and_never_to_a_system_group() {
    let path = root().join("manifests/base/cloud-admin-binding.yaml");
    let binding: ClusterRoleBinding = typed(&documents(&path)[0], &path);
    assert_eq!(binding.role_ref.name, scs_operator::builders::rbac::CLOUD_ADMIN_ROLE);
    let subjects = binding.subjects.unwrap();
    assert!(!subjects.is_empty());
    for subject in subjects {
        // system:authenticated, system:serviceaccounts, ... would make whole populations admins.
        assert!(!subject.name.starts_with("system:"), "cloud admins bound to {}", subject.name);
        assert_eq!(subject.kind, "Group");
    }
    assert!(
        !BOUND_CLUSTER_ROLES.contains(&scs_operator::builders::rbac::CLOUD_ADMIN_ROLE),
        "the operator must not be able to bind scs:cloud-admin"
    );
}

/// Metric names (`scs_operator_...`) in `text`, without the `_total`/`_bucket`/`_sum`/`_count`
/// suffixes the exposition adds.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (start, _) in text.match_indices("scs_operator_") {
        let name: String =
            text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
        let base = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .fold(name, |n, suffix| n.strip_suffix(suffix).map(str::to_string).unwrap_or(n));
        names.insert(base);
    }
    names
}

#[test]
fn alerts_and_dashboard_use_metrics_the_operator_exports() {
    // Families show in the exposition once they have a sample: give each one.
    let metrics = scs_operator::controller::metrics::metrics();
    metrics.reconciled("tenant", false, std::time::Duration::from_millis(1));
    metrics.owns("Tenant/probe", &std::collections::HashMap::from([("Namespace".to_string(), 1)]));
    metrics.api_request("get");
    metrics.workload_phase("probe/web", Some(("probe", "Degraded")));
    metrics.tenant_quota("probe", &[("pods".to_string(), 0.5)]);
    metrics.tenant_days_left("probe", Some(3));
    metrics.patrol_delivery("probe", "ops", "Failed");
    let exported = metric_names(&metrics.encode());
    let rules = std::fs::read_to_string(root().join("manifests/monitoring/prometheusrule.yaml")).unwrap();
    let dashboard = std::fs::read_to_string(root().join("manifests/monitoring/scs-operator-dashboard.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| p.len() >= 6));
    let alerts = &documents(&root().join("manifests/monitoring/prometheusrule.yaml"))[0]["spec"]["groups"][0]["rules"];
    let names: Vec<&str> = alerts.as_array().unwrap().iter().filter_map(|r| r["alert"].as_str()).collect();
    assert_eq!(
        names,
        [
            "ScsOperatorNoLeader",
            "ScsOperatorReconcileErrors",
            "ScsWorkloadsDegraded",
            "ScsTenantQuotaNearlyFull",
            "ScsTenantExpiringSoon",
            "ScsPatrolDeliveryFailing"
        ]
    );
    for (what, text) in [("prometheusrule.yaml", rules), ("dashboard", dashboard)] {
        let used = metric_names(&text);
        assert!(!used.is_empty(), "{what} uses no metric");
        for name in used {
            assert!(exported.contains(&name), "{what} uses {name}, which the operator does not export: {exported:?}");
        }
    }
}

/// The built-in FlowSchemas the operator's must sit between (their `matchingPrecedence` on
/// Kubernetes v1.36): the last system one, and the one that takes every other ServiceAccount.
const KUBE_SYSTEM_SERVICE_ACCOUNTS_PRECEDENCE: i32 = 900;
const SERVICE_ACCOUNTS_PRECEDENCE: i32 = 9000;

#[test]
fn the_apf_component_gives_every_control_plane_service_account_its_own_level() {
    let dir = root().join("manifests/components/apf");
    let mut schemas = Vec::new();
    let mut levels = Vec::new();
    for path in yaml_files(&dir).into_iter().filter(|p| !p.ends_with("kustomization.yaml")) {
        for document in documents(&path) {
            match document["kind"].as_str() {
                Some("FlowSchema") => schemas.push(typed::<FlowSchema>(&document, &path)),
                Some("PriorityLevelConfiguration") => {
                    levels.push(typed::<PriorityLevelConfiguration>(&document, &path))
                }
                other => panic!("{}: unexpected kind {other:?}", path.display()),
            }
        }
    }
    assert_eq!((schemas.len(), levels.len()), (1, 1), "one FlowSchema and its level");
    let (schema, level) = (schemas[0].spec.clone().unwrap(), levels[0].clone());
    assert_eq!(Some(&schema.priority_level_configuration.name), level.metadata.name.as_ref());

    // Limited (never exempt), queuing, with a bounded share.
    let spec = level.spec.unwrap();
    assert_eq!(spec.type_, "Limited");
    let limited = spec.limited.unwrap();
    assert!(limited.nominal_concurrency_shares.is_some_and(|n| n > 0));
    assert!(limited.lendable_percent.is_some_and(|p| (0..=100).contains(&p)));
    assert!(limited.borrowing_limit_percent.is_some(), "a resync may not borrow without bound");
    let response = limited.limit_response.unwrap();
    assert_eq!(response.type_, "Queue");
    let queuing = response.queuing.unwrap();
    assert!(queuing.hand_size.unwrap() <= queuing.queues.unwrap());

    // Wins over service-accounts (workload-low), never over the system schemas.
    let precedence = schema.matching_precedence.unwrap();
    assert!(
        KUBE_SYSTEM_SERVICE_ACCOUNTS_PRECEDENCE < precedence && precedence < SERVICE_ACCOUNTS_PRECEDENCE,
        "matchingPrecedence {precedence}"
    );
    assert_eq!(schema.distinguisher_method.unwrap().type_, "ByUser");

    // The ServiceAccounts the base's Deployments run as (ours only), everything they request.
    let mut wanted = BTreeSet::new();
    for path in yaml_files(&root().join("manifests/base")) {
        for document in documents(&path).into_iter().filter(|d| d["kind"] == "Deployment") {
            let deployment: Deployment = typed(&document, &path);
            let namespace = deployment.metadata.namespace.clone().unwrap();
            let account = deployment.spec.unwrap().template.spec.unwrap().service_account_name.unwrap();
            wanted.insert((namespace, account));
        }
    }
    assert!(wanted.contains(&("scs-system".to_string(), "scs-operator".to_string())), "{wanted:?}");
    let mut subjects = BTreeSet::new();
    for rule in schema.rules.unwrap() {
        for subject in rule.subjects {
            assert_eq!(subject.kind, "ServiceAccount", "only our ServiceAccounts, no users or groups");
            let account = subject.service_account.unwrap();
            assert_ne!(account.name, "*", "not every ServiceAccount of the namespace");
            subjects.insert((account.namespace, account.name));
        }
        let resources = rule.resource_rules.unwrap();
        assert!(
            resources
                .iter()
                .any(|r| r.cluster_scope == Some(true) && r.namespaces.as_deref() == Some(&["*".to_string()][..]))
        );
        assert!(rule.non_resource_rules.is_some_and(|r| !r.is_empty()), "discovery too");
    }
    // (Every base Deployment's; the authz-server's may be listed before its Deployment lands.)
    assert!(wanted.is_subset(&subjects), "every base Deployment's ServiceAccount: {wanted:?}, listed {subjects:?}");
    assert!(subjects.iter().all(|(namespace, _)| namespace == "scs-system"), "{subjects:?}");

    // Optional: the kind overlay (the cluster suite) uses it, the base and production do not.
    let components =
        |overlay: &str| documents(&root().join(overlay).join("kustomization.yaml"))[0]["components"].clone();
    assert_eq!(components("manifests/overlays/kind"), serde_json::json!(["../../components/apf"]));
    assert!(components("manifests/base").is_null() && components("manifests/overlays/production").is_null());
}
