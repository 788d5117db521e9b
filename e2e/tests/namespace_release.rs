//! Namespaces leaving a tenant, against the fake API server: one that holds only what the operator
//! made (and what Kubernetes puts in every namespace) is deleted; one that holds anything a user
//! made is kept, without the members' RoleBindings, with a zero quota, and reported until an admin
//! empties it.

use e2e::harness::{Harness, eventually};
use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};

const TENANT: &str = "/apis/scs.dev/v1alpha1/tenants/acme";

fn acme() -> Value {
    json!({
        "apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "acme"},
        "spec": {
            "namespaces": ["acme-prod", "acme-dev"],
            "quota": {"cpu": "8", "memory": "32Gi", "pods": 50},
            "members": [
                {"kind": "Group", "name": "acme-admins", "role": "projectAdmin"},
                {"kind": "User", "name": "alice", "role": "member"},
            ],
        }
    })
}

async fn ready_acme() -> Harness {
    let harness = Harness::start().await;
    harness.create_tenant(acme()).await;
    eventually("acme Ready", || async { harness.is_ready("acme") }).await;
    harness
}

fn binding(namespace: &str, name: &str) -> String {
    format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings/{name}")
}

fn quota(namespace: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/resourcequotas/scs-tenant-quota")
}

/// What a user made by hand in `namespace`: a ConfigMap, a Secret and a Deployment.
fn hand_made(harness: &Harness, namespace: &str) {
    let server = &harness.server;
    server.insert(
        &format!("/api/v1/namespaces/{namespace}/configmaps"),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "prod"}}),
    );
    server.insert(
        &format!("/api/v1/namespaces/{namespace}/secrets"),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token"}, "data": {"t": "c2VjcmV0"}}),
    );
    server.insert(
        &format!("/apis/apps/v1/namespaces/{namespace}/deployments"),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}}),
    );
}

/// What Kubernetes puts in every namespace, and what the operator made with its dependents.
fn not_hand_made(harness: &Harness, namespace: &str) {
    let server = &harness.server;
    server.insert(
        &format!("/api/v1/namespaces/{namespace}/serviceaccounts"),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
    );
    server.insert(
        &format!("/api/v1/namespaces/{namespace}/configmaps"),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "x"}}),
    );
    server.insert(
        &format!("/apis/apps/v1/namespaces/{namespace}/deployments"),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "api", "labels": {"app.kubernetes.io/managed-by": "scs-operator", "scs.dev/workload": "api"}},
               "spec": {"selector": {"matchLabels": {"app": "api"}}, "template": {"spec": {"containers": []}}}}),
    );
    server.insert(
        &format!("/api/v1/namespaces/{namespace}/services"),
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "api", "labels": {"app.kubernetes.io/managed-by": "scs-operator", "scs.dev/workload": "api"}},
               "spec": {"selector": {"scs.dev/workload": "api"}, "ports": [{"port": 80}]}}),
    );
    // The endpoints controller's, for that Service: no labels, no owner.
    server.insert(
        &format!("/api/v1/namespaces/{namespace}/endpoints"),
        json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "api"}, "subsets": []}),
    );
    let deployment = server.get(&format!("/apis/apps/v1/namespaces/{namespace}/deployments/api")).unwrap();
    server.insert(
        &format!("/apis/apps/v1/namespaces/{namespace}/replicasets"),
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
               "metadata": {"name": "api-5d8f", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api",
                            "uid": deployment["metadata"]["uid"], "controller": true}]}}),
    );
    let replica_set = server.get(&format!("/apis/apps/v1/namespaces/{namespace}/replicasets/api-5d8f")).unwrap();
    server.insert(
        &format!("/api/v1/namespaces/{namespace}/pods"),
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "api-5d8f-x1", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-5d8f",
                            "uid": replica_set["metadata"]["uid"], "controller": true}]}}),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_with_hand_made_objects_is_kept_without_access_or_quota() {
    let harness = ready_acme().await;
    let server = &harness.server;
    assert!(server.get(&binding("acme-dev", "scs:member")).is_some());
    assert!(server.get(&binding("acme-dev", "scs:operator-inventory")).is_some(), "the operator may look inside");
    hand_made(&harness, "acme-dev");
    not_hand_made(&harness, "acme-dev");
    harness.patch_tenant("acme", json!({"spec": {"namespaces": ["acme-prod"]}})).await;

    eventually("acme-dev retained", || async {
        harness.condition("acme", "NamespacesReleased").is_some_and(|c| c.0 == "False" && c.1 == "NamespaceRetained")
    })
    .await;
    let (_, _, message) = harness.condition("acme", "NamespacesReleased").unwrap();
    for object in ["ConfigMap acme-dev/settings", "Secret acme-dev/token", "Deployment acme-dev/web"] {
        assert!(message.contains(object), "{object} missing from {message}");
    }
    for object in ["kube-root-ca.crt", "default", "api"] {
        assert!(!message.contains(&format!("/{object}")), "{object} does not keep a namespace: {message}");
    }
    let ready = harness.condition("acme", "Ready").unwrap();
    assert_eq!((ready.0.as_str(), ready.1.as_str()), ("False", "NamespaceRetained"));

    // Kept, with everything in it; members lose access; the quota is zero.
    assert!(server.get("/api/v1/namespaces/acme-dev").is_some());
    assert!(server.get("/api/v1/namespaces/acme-dev/configmaps/settings").is_some());
    assert!(server.writes("/configmaps/settings").is_empty() && server.writes("/deployments/web").is_empty());
    eventually("member bindings gone", || async {
        server.get(&binding("acme-dev", "scs:member")).is_none()
            && server.get(&binding("acme-dev", "scs:project-admin")).is_none()
    })
    .await;
    assert!(server.get(&binding("acme-dev", "scs:operator-inventory")).is_some(), "the operator still looks");
    let hard = server.get(&quota("acme-dev")).unwrap()["spec"]["hard"].clone();
    let hard = hard.as_object().unwrap();
    assert!(hard.len() >= 5 && hard.values().all(|v| v == "0"), "{hard:?}");
    let prod = server.get(&quota("acme-prod")).unwrap();
    assert_eq!(prod["spec"]["hard"]["requests.cpu"], "8", "acme-prod now has the whole quota");
    // The policies of the fence stay.
    assert!(server.get("/apis/networking.k8s.io/v1/namespaces/acme-dev/networkpolicies/scs-default-deny").is_some());
    eventually("NamespaceRetained event", || async {
        harness.event_reasons().contains(&"NamespaceRetained".to_string())
    })
    .await;

    // An admin empties it: the next pass deletes it.
    delete_hand_made(&harness, "acme-dev").await;
    server.touch(TENANT, "example.com/poke", "1");
    eventually("acme-dev deleted", || async { server.get("/api/v1/namespaces/acme-dev").is_none() }).await;
    eventually("released and Ready", || async {
        harness.condition("acme", "NamespacesReleased").is_some_and(|c| c.0 == "True") && harness.is_ready("acme")
    })
    .await;
    harness.stop().await;
}

async fn delete_hand_made(harness: &Harness, namespace: &str) {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    let client = harness.client.clone();
    let params = DeleteParams::default();
    Api::<ConfigMap>::namespaced(client.clone(), namespace).delete("settings", &params).await.unwrap();
    Api::<Secret>::namespaced(client.clone(), namespace).delete("token", &params).await.unwrap();
    Api::<Deployment>::namespaced(client, namespace).delete("web", &params).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_with_only_operator_and_kubernetes_objects_is_deleted() {
    let harness = ready_acme().await;
    not_hand_made(&harness, "acme-dev");
    harness.patch_tenant("acme", json!({"spec": {"namespaces": ["acme-prod"]}})).await;
    eventually("acme-dev deleted", || async { harness.server.get("/api/v1/namespaces/acme-dev").is_none() }).await;
    eventually("Ready, nothing retained", || async {
        harness.is_ready("acme") && harness.condition("acme", "NamespacesReleased").is_some_and(|c| c.0 == "True")
    })
    .await;
    assert!(harness.server.get("/api/v1/namespaces/acme-prod").is_some());
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_tenant_keeps_only_namespaces_with_hand_made_objects() {
    let harness = ready_acme().await;
    let server = &harness.server;
    server.insert(
        "/api/v1/namespaces/acme-dev/secrets",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token"}, "data": {"t": "c2VjcmV0"}}),
    );
    not_hand_made(&harness, "acme-prod");
    harness.tenants().delete("acme", &DeleteParams::default()).await.unwrap();
    eventually("deletion held by the Secret", || async {
        harness
            .condition("acme", "Ready")
            .is_some_and(|c| c.1 == "DeletionBlocked" && c.2.contains("Secret acme-dev/token"))
    })
    .await;
    eventually("acme-prod, holding nothing of a user, deleted", || async {
        server.get("/api/v1/namespaces/acme-prod").is_none()
    })
    .await;
    assert!(server.get("/api/v1/namespaces/acme-dev/secrets/token").is_some());
    eventually("no member access while held", || async {
        server.get(&binding("acme-dev", "scs:member")).is_none()
            && server
                .get("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/scs:tenant:acme:storage-reader")
                .is_none()
    })
    .await;
    let hard = server.get(&quota("acme-dev")).unwrap()["spec"]["hard"].clone();
    assert!(hard.as_object().unwrap().values().all(|v| v == "0"), "{hard}");
    let released = harness.condition("acme", "NamespacesReleased").unwrap();
    assert_eq!((released.0.as_str(), released.1.as_str()), ("False", "NamespaceRetained"));
    assert!(server.get(TENANT).is_some(), "the finalizer holds the tenant");

    // The admin removes the Secret: the deletion completes.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(harness.client.clone(), "acme-dev");
    secrets.delete("token", &DeleteParams::default()).await.unwrap();
    server.touch(TENANT, "example.com/poke", "1");
    eventually("tenant gone", || async { server.get(TENANT).is_none() }).await;
    assert!(server.get("/api/v1/namespaces/acme-dev").is_none());
    harness.stop().await;
}
