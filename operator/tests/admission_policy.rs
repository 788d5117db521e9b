//! The ValidatingAdmissionPolicy's CEL, evaluated offline with the Kubernetes CEL libraries for
//! the pods it must admit and the pods it must deny.

use std::path::Path;

use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding};
use kube::core::cel::{VapEvaluator, VapExpression};
use serde::Deserialize;
use serde_json::{Value, json};

/// Every policy of the manifest with its binding, in file order (a policy, then its binding).
fn policies() -> Vec<(ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/base/admission-policy.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let documents: Vec<_> = serde_yaml::Deserializer::from_str(&text).map(serde_yaml::Value::deserialize).collect();
    documents
        .chunks(2)
        .map(|pair| {
            let policy = ValidatingAdmissionPolicy::deserialize(pair[0].as_ref().unwrap()).unwrap();
            let binding = ValidatingAdmissionPolicyBinding::deserialize(pair[1].as_ref().unwrap()).unwrap();
            (policy, binding)
        })
        .collect()
}

/// The pod policy (the first in the file).
fn policy() -> (ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding) {
    policies().remove(0)
}

fn tenant_namespace() -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme-prod", "labels": {
        "scs.dev/tenant": "acme", "scs.dev/runtime-class": "kata-qemu", "app.kubernetes.io/managed-by": "scs-operator"}}})
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "acme-prod"}, "spec": spec})
}

/// The API server types `namespaceObject`, so label keys stay as written; the offline evaluator
/// sees schemaless JSON and escapes every key the way CEL escapes field names. Spell the one label
/// key the policy reads the evaluator's way; the logic under test is unchanged.
fn as_schemaless_key(expression: String) -> String {
    expression.replace("'scs.dev/runtime-class'", "'scs__dot__dev__slash__runtime__dash__class'")
}

/// Messages of the failed validations (empty: admitted).
fn denials(pod: Value, namespace: Value) -> Vec<String> {
    let (policy, _) = policy();
    let expressions: Vec<VapExpression> = policy
        .spec
        .unwrap()
        .validations
        .unwrap()
        .into_iter()
        .map(|v| {
            let [expression, message_expression] =
                [Some(v.expression), v.message_expression].map(|e| e.map(as_schemaless_key));
            serde_json::from_value(
                json!({"expression": expression, "message": v.message, "messageExpression": message_expression}),
            )
            .unwrap()
        })
        .collect();
    let evaluator = VapEvaluator::builder().object(pod).namespace_object(namespace).build();
    evaluator
        .evaluate(&expressions)
        .into_iter()
        .filter(|r| !r.passed)
        .map(|r| r.message.unwrap_or_else(|| format!("(no message) {}", r.expression)))
        .collect()
}

fn container(extra: Value) -> Value {
    let mut c = json!({"name": "app", "image": "app:1"});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    c
}

#[test]
fn a_pod_in_the_tenant_sandbox_is_admitted() {
    let admitted = pod(json!({"runtimeClassName": "kata-qemu", "containers": [container(json!({}))]}));
    assert_eq!(denials(admitted, tenant_namespace()), Vec::<String>::new());
}

#[test]
fn a_pod_without_the_tenants_runtime_class_is_denied() {
    for spec in [
        json!({"containers": [container(json!({}))]}),
        json!({"runtimeClassName": "runc", "containers": [container(json!({}))]}),
    ] {
        assert_eq!(
            denials(pod(spec), tenant_namespace()),
            ["pods in tenant namespace acme-prod must set runtimeClassName: kata-qemu"]
        );
    }
    let unlabelled = json!({"metadata": {"name": "acme-prod", "labels": {"scs.dev/tenant": "acme"}}});
    let denied =
        denials(pod(json!({"runtimeClassName": "kata-qemu", "containers": [container(json!({}))]})), unlabelled);
    assert_eq!(denied.len(), 1);
    assert!(denied[0].contains("namespace has no scs.dev/runtime-class label"), "{denied:?}");
}

#[test]
fn host_namespaces_and_privileged_containers_are_denied() {
    let base = |extra: Value| {
        let mut spec = json!({"runtimeClassName": "kata-qemu", "containers": [container(json!({}))]});
        spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        pod(spec)
    };
    for (field, message) in [
        ("hostNetwork", "hostNetwork is not allowed in tenant namespaces"),
        ("hostPID", "hostPID is not allowed in tenant namespaces"),
        ("hostIPC", "hostIPC is not allowed in tenant namespaces"),
    ] {
        assert_eq!(denials(base(json!({field: true})), tenant_namespace()), [message]);
        assert!(denials(base(json!({field: false})), tenant_namespace()).is_empty());
    }
    let privileged = container(json!({"securityContext": {"privileged": true}}));
    for extra in [
        json!({"containers": [container(json!({})), privileged.clone()]}),
        json!({"initContainers": [privileged.clone()]}),
        json!({"ephemeralContainers": [privileged.clone()]}),
    ] {
        assert_eq!(
            denials(base(extra), tenant_namespace()),
            ["privileged containers are not allowed in tenant namespaces"]
        );
    }
}

#[test]
fn the_policy_applies_to_tenant_namespaces_only_and_denies() {
    let (policy, binding) = policy();
    let spec = policy.spec.unwrap();
    assert_eq!(spec.failure_policy.as_deref(), Some("Fail"));
    let constraints = spec.match_constraints.unwrap();
    let selector = constraints.namespace_selector.unwrap().match_expressions.unwrap();
    assert_eq!((selector[0].key.as_str(), selector[0].operator.as_str()), ("scs.dev/tenant", "Exists"));
    let rules = constraints.resource_rules.unwrap();
    assert!(rules[0].resources.as_ref().unwrap().contains(&"pods".to_string()));
    let binding = binding.spec.unwrap();
    assert_eq!(binding.policy_name.as_deref(), Some("scs-tenant-pods"));
    assert_eq!(binding.validation_actions.as_deref(), Some(&["Deny".to_string()][..]));
}

#[test]
fn namespaces_the_operator_builds_carry_the_labels_the_policy_reads() {
    use scs_operator::api::{Tenant, TenantSpec};
    use scs_operator::builders::namespace::namespaces;
    let namespace =
        namespaces(&Tenant::new("acme", TenantSpec::default()), &scs_operator::config::OperatorConfig::default())
            .pop()
            .unwrap();
    let admitted = pod(json!({"runtimeClassName": "kata-qemu", "containers": [container(json!({}))]}));
    assert!(denials(admitted, serde_json::to_value(namespace).unwrap()).is_empty());
}

#[test]
fn every_policy_is_bound_fails_closed_and_denies() {
    let policies = policies();
    let names: Vec<String> = policies.iter().map(|(p, _)| p.metadata.name.clone().unwrap()).collect();
    assert_eq!(
        names,
        [
            "scs-tenant-pods",
            "scs-tenant-gpu-pods",
            "scs-tenant-images",
            "scs-tenant-services",
            "scs-tenant-ingresses",
            "scs-tenant-claims",
            "scs-operator-namespaced",
            "scs-operator-cluster",
            "scs-tenant-pod-grants",
            "scs-authz-server-status",
            "scs-authz-server-configmaps"
        ]
    );
    for (policy, binding) in policies {
        let name = policy.metadata.name.unwrap();
        let spec = policy.spec.unwrap();
        assert_eq!(spec.failure_policy.as_deref(), Some("Fail"), "{name}");
        let binding = binding.spec.unwrap();
        assert_eq!(binding.policy_name.as_deref(), Some(name.as_str()));
        assert_eq!(binding.validation_actions.as_deref(), Some(&["Deny".to_string()][..]), "{name}");
        let constraints = spec.match_constraints.unwrap();
        if name.starts_with("scs-tenant-") {
            // Tenant namespaces only: the rest of the cluster is not ours to fence.
            let selector = constraints.namespace_selector.unwrap().match_expressions.unwrap();
            assert_eq!((selector[0].key.as_str(), selector[0].operator.as_str()), ("scs.dev/tenant", "Exists"));
        } else {
            // The operator's (or the authz-server's) own requests only.
            let account = if name.starts_with("scs-authz-server") { "scs-authz-server" } else { "scs-operator" };
            let conditions = spec.match_conditions.unwrap();
            let only = format!("request.userInfo.username == 'system:serviceaccount:scs-system:{account}'");
            assert_eq!(conditions[0].expression, only, "{name}");
        }
    }
}

#[test]
fn the_pod_rules_that_read_no_map_keys_hold_offline() {
    let base = |extra: Value| {
        let mut spec = json!({"runtimeClassName": "kata-qemu", "containers": [container(json!({}))]});
        spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        pod(spec)
    };
    let admitted =
        json!({"priorityClassName": "batch-low", "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]});
    assert_eq!(denials(base(admitted), tenant_namespace()), Vec::<String>::new());
    assert_eq!(
        denials(base(json!({"priorityClassName": "system-node-critical"})), tenant_namespace()),
        ["priority class system-node-critical is reserved for the cluster itself"]
    );
    for tolerations in [json!([{"operator": "Exists"}]), json!([{"key": "node-role.kubernetes.io/control-plane"}])] {
        let denied = denials(base(json!({"tolerations": tolerations})), tenant_namespace());
        assert_eq!(denied.len(), 1, "{denied:?}");
        assert!(denied[0].starts_with("tolerations in tenant namespaces must name a taint key"), "{denied:?}");
    }
}

#[test]
fn only_the_authz_server_releases_the_permission_finalizer() {
    use kube::core::cel::AdmissionRequest;
    let (policy, _) =
        policies().into_iter().find(|(p, _)| p.metadata.name.as_deref() == Some("scs-tenant-pod-grants")).unwrap();
    let expressions: Vec<VapExpression> = policy
        .spec
        .unwrap()
        .validations
        .unwrap()
        .into_iter()
        .map(|v| serde_json::from_value(json!({"expression": v.expression, "message": v.message})).unwrap())
        .collect();
    let with = |finalizers: &[&str]| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "acme-prod", "finalizers": finalizers}});
    let allowed = |user: &str, groups: &[&str], old: Value, new: Value| {
        let request = AdmissionRequest {
            operation: "UPDATE".into(),
            username: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        };
        let evaluator = VapEvaluator::builder().object(new).old_object(old).request(request).build();
        evaluator.evaluate(&expressions).iter().all(|r| r.passed)
    };
    let protected = with(&["scs.dev/permission-protection", "example.com/other"]);
    let stripped = with(&["example.com/other"]);
    let member = "alice@example.com";
    assert!(!allowed(member, &["system:authenticated"], protected.clone(), stripped.clone()), "a tenant strips it");
    assert!(!allowed(
        member,
        &[],
        protected.clone(),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})
    ));
    assert!(allowed("system:serviceaccount:scs-system:scs-authz-server", &[], protected.clone(), stripped.clone()));
    assert!(allowed("admin", &["system:masters"], protected.clone(), stripped.clone()));
    // Everything else about the pod stays the tenant's: other finalizers, labels.
    assert!(allowed(member, &[], protected.clone(), with(&["scs.dev/permission-protection"])));
    assert!(allowed(member, &[], stripped.clone(), with(&[])));
    assert!(allowed(member, &[], json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}), with(&[])));
}

/// The authz-server's status policy: its one validation, as the offline evaluator takes it.
fn authz_server_status_rule() -> (String, Vec<VapExpression>) {
    let (policy, _) =
        policies().into_iter().find(|(p, _)| p.metadata.name.as_deref() == Some("scs-authz-server-status")).unwrap();
    let validations = policy.spec.unwrap().validations.unwrap();
    let expression = validations[0].expression.clone();
    let expressions = validations
        .into_iter()
        .map(|v| serde_json::from_value(json!({"expression": v.expression, "message": v.message})).unwrap())
        .collect();
    (expression, expressions)
}

#[test]
fn the_authz_server_status_rule_names_every_status_field_but_its_own() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/scs.dev_secureworkloads.yaml");
    let crd: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let status = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
    let fields: Vec<&String> = status.as_object().unwrap().keys().filter(|k| *k != "preAuthorization").collect();
    assert!(fields.len() > 10, "{fields:?}");
    let (expression, _) = authz_server_status_rule();
    for field in fields {
        for kept in [
            format!("has(object.status.{field}) == has(oldObject.status.{field})"),
            format!("object.status.{field} == oldObject.status.{field}"),
            format!("!has(object.status.{field})"),
        ] {
            assert!(expression.contains(&kept), "the rule does not keep status.{field}: add `{kept}`");
        }
    }
    assert!(!expression.contains("preAuthorization"), "the summary is the server's to write");
}

#[test]
fn the_authz_server_writes_only_the_summary_offline() {
    let (_, expressions) = authz_server_status_rule();
    let workload = |status: Value| json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": "web", "namespace": "acme-prod"}, "status": status});
    let allowed = |old: Value, new: Value| {
        let evaluator = VapEvaluator::builder().object(new).old_object(old).build();
        evaluator.evaluate(&expressions).iter().all(|r| r.passed)
    };
    let current = json!({"phase": "Running", "readyReplicas": 2, "conditions": [{"type": "Ready", "status": "True"}]});
    let mut summarised = current.clone();
    summarised["preAuthorization"] = json!({"pods": 2, "granted": 2});
    assert!(allowed(workload(current.clone()), workload(summarised.clone())));
    let unwritten = json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": "web"}});
    assert!(allowed(unwritten.clone(), workload(json!({"preAuthorization": {"pods": 0}}))), "before the operator's");
    assert!(!allowed(unwritten, workload(json!({"phase": "Running"}))), "a phase before the operator's");
    for (field, value) in [("phase", json!("Failed")), ("readyReplicas", json!(0)), ("conditions", json!([]))] {
        let mut faked = summarised.clone();
        faked[field] = value;
        assert!(!allowed(workload(current.clone()), workload(faked)), "{field} changed");
    }
    let mut dropped = summarised.clone();
    dropped.as_object_mut().unwrap().remove("phase");
    assert!(!allowed(workload(current), workload(dropped)), "phase removed");
}
