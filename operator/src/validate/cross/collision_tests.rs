//! Two workloads of a namespace producing a child of the same name.

use serde_json::{Value, json};

use super::*;
use crate::api::TenantSpec;

const NS: &str = "acme-prod";

fn tenant() -> Tenant {
    Tenant::new("acme", TenantSpec { namespaces: vec![NS.into()], ..Default::default() })
}

fn workload(name: &str, created: Option<&str>, spec: Value) -> SecureWorkload {
    let mut spec = spec;
    spec["template"] = json!({"spec": {"containers": [{"name": "app", "image": "app:1"}]}});
    let mut metadata = json!({"name": name, "namespace": NS});
    if let Some(created) = created {
        metadata["creationTimestamp"] = json!(created);
    }
    serde_json::from_value(
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": metadata, "spec": spec}),
    )
    .unwrap()
}

fn volume(name: &str) -> Value {
    json!({"name": name, "size": "1Gi", "tier": "capacity", "mountPath": format!("/{name}")})
}

fn errors_of(workloads: Vec<SecureWorkload>) -> Vec<String> {
    let catalog = Catalog { tenants: vec![tenant()], networks: Vec::new(), workloads };
    check(&catalog, &OperatorConfig::default()).into_iter().map(|(key, error)| format!("{key}: {error}")).collect()
}

fn exposed() -> Value {
    json!({"type": "ClusterIP", "ports": [{"name": "http", "port": 80}]})
}

#[test]
fn a_statefulsets_headless_service_and_a_workload_named_like_it() {
    let db = workload("db", None, json!({"kind": "StatefulSet"}));
    let headless = workload("db-headless", None, json!({"kind": "Deployment", "expose": exposed()}));
    // Whatever order the files come in, the later by name is the one in error.
    for workloads in [vec![db.clone(), headless.clone()], vec![headless, db]] {
        assert_eq!(
            errors_of(workloads),
            [
                r#"SecureWorkload acme-prod/db-headless: metadata.name: Service "db-headless" is also produced by SecureWorkload "db""#
            ]
        );
    }
}

#[test]
fn claims_of_a_workload_and_its_volume_against_a_longer_name_and_a_shorter_volume() {
    let app = workload("app", None, json!({"kind": "Deployment", "volumes": [volume("cache-data")]}));
    let app_cache = workload("app-cache", None, json!({"kind": "Deployment", "volumes": [volume("data")]}));
    assert_eq!(
        errors_of(vec![app_cache, app]),
        [
            r#"SecureWorkload acme-prod/app-cache: metadata.name: PersistentVolumeClaim "app-cache-data" is also produced by SecureWorkload "app""#
        ]
    );
}

#[test]
fn the_older_workload_keeps_the_name() {
    let db = workload("db", Some("2025-01-02T00:00:00Z"), json!({"kind": "StatefulSet"}));
    let headless =
        workload("db-headless", Some("2025-01-01T00:00:00Z"), json!({"kind": "Deployment", "expose": exposed()}));
    let errors = errors_of(vec![db, headless]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("SecureWorkload acme-prod/db: ")
            && errors[0].ends_with(r#"Service "db-headless" is also produced by SecureWorkload "db-headless""#),
        "{errors:?}"
    );
}

#[test]
fn related_names_without_a_shared_child_are_fine() {
    let web = workload("web", None, json!({"kind": "Deployment", "expose": exposed(), "volumes": [volume("data")]}));
    let api =
        workload("web-api", None, json!({"kind": "StatefulSet", "expose": exposed(), "volumes": [volume("data")]}));
    let other_namespace = {
        let mut w = workload("web", None, json!({"kind": "Deployment", "expose": exposed()}));
        w.metadata.namespace = Some("acme-dev".into());
        w
    };
    let catalog = Catalog {
        tenants: vec![Tenant::new(
            "acme",
            TenantSpec { namespaces: vec![NS.into(), "acme-dev".into()], ..Default::default() },
        )],
        networks: Vec::new(),
        workloads: vec![web, api, other_namespace],
    };
    assert_eq!(check(&catalog, &OperatorConfig::default()), vec![]);
}

#[test]
fn only_names_extending_one_another_may_collide() {
    assert!(may_collide("db", "db-headless"));
    assert!(may_collide("app-cache", "app"));
    assert!(!may_collide("app", "app"), "one workload");
    assert!(!may_collide("app", "apple"), "no dash after the shorter name");
    assert!(!may_collide("web", "api"));
}

/// What [`may_collide`] relies on: every child is named like its workload or `<workload>-...`.
#[test]
fn every_child_name_starts_with_its_workloads_name() {
    let full = |kind: &str| {
        json!({"kind": kind, "schedule": "0 1 * * *", "volumes": [volume("data"), volume("logs")],
               "expose": {"type": "ClusterIP", "ports": [{"name": "http", "port": 80}], "ingress": {"host": "web.acme.example.com"}},
               "autoscaling": {"minReplicas": 1, "maxReplicas": 3, "cpuUtilization": 80}})
    };
    for kind in ["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"] {
        let workload = workload("web", None, full(kind));
        let children = workload_children(&workload, &tenant(), &OperatorConfig::default());
        assert!(children.len() >= 3, "{kind}: {children:?}");
        for child in children {
            assert!(child.name == "web" || child.name.starts_with("web-"), "{kind}: {} {}", child.kind, child.name);
        }
    }
}

#[test]
fn collision_errors_name_the_first_producer() {
    let config = OperatorConfig::default();
    let children = |w: &SecureWorkload| workload_children(w, &tenant(), &config);
    let db = workload("db", None, json!({"kind": "StatefulSet"}));
    let db2 = workload("db-headless", None, json!({"kind": "StatefulSet", "expose": exposed()}));
    let late = workload("db-headless", None, json!({"kind": "Deployment", "expose": exposed()}));
    let earlier = vec![("db".to_string(), children(&db)), ("db-headless-x".to_string(), children(&db2))];
    let errors = collision_errors(&children(&late), &earlier);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].message, r#"Service "db-headless" is also produced by SecureWorkload "db""#);
    assert!(collision_errors(&children(&late), &[]).is_empty());
}
