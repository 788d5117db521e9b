//! Issue 14: name rules in the CRDs, Job/CronJob options, the Deployment strategy rule. Each rule
//! is checked through what the API server runs (the CRDs' schema and CEL rules) and through
//! `render`, which must word it the same.

use scs_operator::api::{CLUSTER_NAME_MESSAGE, SCHEDULE_TZ_MESSAGE, WORKLOAD_NAME_MESSAGE};
use scs_operator::config::OperatorConfig;
use scs_operator::render::{self, Document};
use scs_operator::validate::cel::CrdSchemas;
use serde_json::{Value, json};

fn tenant(name: &str) -> Value {
    json!({"apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": name},
           "spec": {"namespaces": ["acme-prod"]}})
}

fn network(name: &str) -> Value {
    json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SdnNetwork", "metadata": {"name": name},
           "spec": {"type": "macvlan", "master": "eth1", "cidr": "192.168.100.0/24"}})
}

fn workload(name: &str, spec: Value) -> Value {
    let mut object = json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload",
        "metadata": {"name": name, "namespace": "acme-prod"},
        "spec": {"kind": "Deployment", "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}}}});
    merge(&mut object, &spec);
    object
}

/// JSON merge patch (RFC 7386) without nulls: objects merge, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// What the API server's schema and CEL rules say, as `path: message` strings.
fn crd_errors(object: &Value) -> Vec<String> {
    let schemas = CrdSchemas::new();
    let schema = schemas.get(object["kind"].as_str().unwrap()).unwrap();
    let mut errors = schemas.check_structure(schema, object);
    if errors.is_empty() {
        errors = schemas.check_rules(schema, object);
    }
    errors.iter().map(ToString::to_string).collect()
}

/// What `render` says about the objects (all checks, cross-object ones included).
fn render_errors(objects: &[Value], config: &OperatorConfig) -> Vec<String> {
    let documents = objects
        .iter()
        .enumerate()
        .map(|(i, v)| Document { source: "t".into(), index: i + 1, value: v.clone() })
        .collect();
    let schemas = CrdSchemas::new();
    let result = render::load(documents, &schemas).and_then(|loaded| render::render(&loaded, config));
    result.err().unwrap_or_default().iter().map(|e| e.error.to_string()).collect()
}

#[test]
fn names_are_checked_by_the_crds_as_render_checks_them() {
    let long = |n: usize| "a".repeat(n);
    for (object, message) in [
        (tenant(&long(64)), CLUSTER_NAME_MESSAGE),
        (tenant("acme.prod"), CLUSTER_NAME_MESSAGE),
        (network(&long(64)), CLUSTER_NAME_MESSAGE),
        (workload(&long(53), json!({})), WORKLOAD_NAME_MESSAGE),
        (workload("web.v2", json!({})), WORKLOAD_NAME_MESSAGE),
    ] {
        assert_eq!(crd_errors(&object), vec![message.to_string()], "{}", object["metadata"]["name"]);
        let rendered = render_errors(std::slice::from_ref(&object), &OperatorConfig::default());
        assert_eq!(rendered, vec![message.to_string()], "render words it as the CRD does");
    }
    for object in [tenant(&long(63)), network(&long(63)), workload(&long(52), json!({}))] {
        assert_eq!(crd_errors(&object), Vec::<String>::new(), "{}", object["metadata"]["name"]);
    }
}

#[test]
fn job_and_cronjob_options_belong_to_their_kinds() {
    let ok = |spec: Value| assert_eq!(crd_errors(&workload("w", spec.clone())), Vec::<String>::new(), "{spec}");
    let refused = |spec: Value, expected: &str| {
        let errors = crd_errors(&workload("w", spec.clone()));
        assert!(errors.iter().any(|e| e.contains(expected)), "{spec}: {errors:?}, expected {expected:?}");
    };
    ok(json!({"spec": {"kind": "Job", "job": {"completions": 3, "backoffLimit": 0, "activeDeadlineSeconds": 60}}}));
    ok(json!({"spec": {"kind": "CronJob", "schedule": "0 3 * * *", "job": {"ttlSecondsAfterFinished": 0},
        "cronJob": {"timeZone": "Asia/Shanghai", "concurrencyPolicy": "Allow", "startingDeadlineSeconds": 60}}}));
    refused(json!({"spec": {"job": {"completions": 3}}}), "spec.job: job applies to kind Job and CronJob only");
    refused(
        json!({"spec": {"kind": "Job", "cronJob": {"concurrencyPolicy": "Allow"}}}),
        "spec.cronJob: cronJob applies to kind CronJob only",
    );
    refused(
        json!({"spec": {"kind": "Job", "job": {"ttlSecondsAfterFinished": 60}}}),
        "spec.job.ttlSecondsAfterFinished: ttlSecondsAfterFinished would delete the Job",
    );
    // Schema bounds.
    refused(json!({"spec": {"kind": "Job", "job": {"completions": 0}}}), "spec.job.completions");
    refused(json!({"spec": {"kind": "Job", "job": {"backoffLimit": -1}}}), "spec.job.backoffLimit");
    refused(
        json!({"spec": {"kind": "CronJob", "schedule": "@daily", "cronJob": {"concurrencyPolicy": "Sometimes"}}}),
        "spec.cronJob.concurrencyPolicy",
    );
    refused(
        json!({"spec": {"kind": "CronJob", "schedule": "@daily", "cronJob": {"timeZone": "Asia/../etc"}}}),
        "spec.cronJob.timeZone",
    );
}

#[test]
fn a_time_zone_in_the_schedule_points_at_time_zone() {
    for schedule in ["TZ=Asia/Shanghai 0 3 * * *", "CRON_TZ=UTC 0 3 * * *"] {
        let object = workload("w", json!({"spec": {"kind": "CronJob", "schedule": schedule}}));
        let expected = format!("spec.schedule: {SCHEDULE_TZ_MESSAGE}");
        assert_eq!(crd_errors(&object), vec![expected.clone()], "{schedule}");
        assert_eq!(render_errors(&[object], &OperatorConfig::default()), vec![expected], "one error, not two");
    }
}

#[test]
fn rolling_settings_are_refused_where_the_deployment_must_recreate() {
    let rolling = json!({"maxSurge": 1});
    let static_ip = workload(
        "w",
        json!({"spec": {"updateStrategy": rolling, "networks": [{"name": "office", "ips": ["192.168.100.5/24"]}]}}),
    );
    let errors = crd_errors(&static_ip);
    assert!(
        errors.iter().any(|e| e.starts_with("spec.updateStrategy: a Deployment with static ips is replaced")),
        "{errors:?}"
    );

    let mut config = OperatorConfig::default();
    config.storage_tiers.get_mut("capacity").unwrap().read_write_many = true;
    let volume = |tier: &str| {
        workload(
            "w",
            json!({"spec": {"updateStrategy": rolling, "volumes": [{"name": "data", "size": "1Gi", "tier": tier, "mountPath": "/data"}]}}),
        )
    };
    let strategy_errors = |object: Value| -> Vec<String> {
        render_errors(&[tenant("acme"), object], &config).into_iter().filter(|e| e.contains("updateStrategy")).collect()
    };
    assert_eq!(
        strategy_errors(volume("performance")),
        vec![
            "spec.updateStrategy: volume \"data\" has the ReadWriteOnce tier \"performance\": the old and the new pod \
             cannot both mount it, so the Deployment replaces its pods (Recreate) and maxSurge/maxUnavailable do not \
             apply; remove them or use a ReadWriteMany tier"
                .to_string()
        ]
    );
    assert_eq!(strategy_errors(volume("capacity")), Vec::<String>::new(), "ReadWriteMany tiers keep rolling");
    let without = workload(
        "w",
        json!({"spec": {"volumes": [{"name": "data", "size": "1Gi", "tier": "performance", "mountPath": "/data"}]}}),
    );
    assert_eq!(strategy_errors(without), Vec::<String>::new(), "no settings asked for, nothing dropped");
}
