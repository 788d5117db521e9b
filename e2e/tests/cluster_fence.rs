//! The tenant fence on a real API server, tried the way an attacker holding a tenant role (or the
//! operator's own credentials) would: every way out named in the security review is refused by the
//! admission policies, RBAC or quota, and the ordinary ways in are still admitted. Run by
//! `e2e/localkube.sh` (or `e2e/kind.sh`) with the kind overlay installed.
#![cfg(feature = "cluster")]

use e2e::cluster::*;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ResourceQuota};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// A pod of the namespace's sandbox class passing Pod Security `restricted`, with `patch` merged in.
fn pod(name: &str, patch: Value) -> Pod {
    let mut spec = busybox_pod_spec(&["sleep", "1"]);
    spec["runtimeClassName"] = json!("kata-qemu");
    let mut manifest = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec});
    json_patch::merge(&mut manifest, &patch);
    serde_json::from_value(manifest).unwrap()
}

fn annotated(key: &str, value: &str) -> Value {
    json!({"metadata": {"annotations": {key: value}}})
}

fn spec(patch: Value) -> Value {
    json!({"spec": patch})
}

#[tokio::test]
async fn a_tenant_pod_cannot_reach_other_tenants_the_node_or_the_sandbox() {
    let client = client().await;
    ready_tenant(&client, "e2e-pods", json!({"namespaces": ["e2e-pods"]})).await;
    // A PriorityClass an admin made for the platform, above the tenant cap (1000000 by default).
    apply_dynamic(
        &client,
        &json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": "e2e-platform-critical"}, "value": 2_000_000}),
    )
    .await;
    let node = Api::<Node>::all(client.clone()).list(&Default::default()).await.unwrap().items[0].name_any();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "e2e-pods");
    let dry = PostParams { dry_run: true, ..Default::default() };

    for (name, patch) in [
        (
            "own-network-json",
            annotated(
                "k8s.v1.cni.cncf.io/networks",
                r#"[{"name":"office","interface":"net1","ips":["192.168.100.30/24"]}]"#,
            ),
        ),
        ("own-network-text", annotated("k8s.v1.cni.cncf.io/networks", "office@net1,ovn")),
        (
            "gpu-toleration",
            spec(json!({"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]})),
        ),
    ] {
        pods.create(&dry, &pod(name, patch)).await.unwrap_or_else(|e| panic!("{name} must be admitted: {e}"));
    }

    let networks = "k8s.v1.cni.cncf.io/networks";
    let own_namespace_only = ["scs-tenant-pods", "own namespace"];
    for (name, patch, expected) in [
        // Another tenant's network attachment, in each spelling Multus (Go's JSON decoder) accepts.
        (
            "cross-json",
            annotated(networks, r#"[{"name":"office-vlan","namespace":"e2e-other"}]"#),
            &own_namespace_only[..],
        ),
        ("cross-text", annotated(networks, "e2e-other/office-vlan"), &own_namespace_only),
        ("cross-case", annotated(networks, r#"[{"name":"office-vlan","NameSpace":"e2e-other"}]"#), &own_namespace_only),
        (
            "cross-escape",
            annotated(networks, r#"[{"name":"office-vlan","n\u0061mespace":"e2e-other"}]"#),
            &own_namespace_only,
        ),
        (
            "cross-fold",
            annotated(networks, "[{\"name\":\"office-vlan\",\"name\u{17f}pace\":\"e2e-other\"}]"),
            &own_namespace_only,
        ),
        (
            "default-network",
            annotated("v1.multus-cni.io/default-network", "e2e-other/flat"),
            &["scs-tenant-pods", "default-network"],
        ),
        (
            "sandbox",
            annotated("io.katacontainers.config.hypervisor.enable_debug", "true"),
            &["scs-tenant-pods", "io.katacontainers"],
        ),
        (
            "system-priority",
            spec(json!({"priorityClassName": "system-node-critical"})),
            &["scs-tenant-pods", "reserved"],
        ),
        (
            "above-cap",
            spec(json!({"priorityClassName": "e2e-platform-critical"})),
            &["scs-tenant-pods", "above the highest allowed"],
        ),
        ("placed", spec(json!({"nodeName": node})), &["scs-tenant-pods", "nodeName"]),
        ("tolerate-all", spec(json!({"tolerations": [{"operator": "Exists"}]})), &["scs-tenant-pods", "tolerations"]),
        (
            "control-plane",
            spec(json!({"tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]})),
            &["scs-tenant-pods", "control plane"],
        ),
    ] {
        refused(name, pods.create(&dry, &pod(name, patch)).await, expected);
    }
    delete_tenant(&client, "e2e-pods").await;
}

fn object(api_version: &str, kind: &str, namespace: &str, name: &str, rest: Value) -> Value {
    let mut manifest =
        json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}});
    json_patch::merge(&mut manifest, &rest);
    manifest
}

fn service(name: &str, spec: Value) -> Value {
    let mut full = json!({"selector": {"app": "x"}, "ports": [{"port": 80}]});
    json_patch::merge(&mut full, &spec);
    object("v1", "Service", "e2e-edge", name, json!({"spec": full}))
}

fn ingress(name: &str, rest: Value) -> Value {
    let backend = json!({"service": {"name": "web", "port": {"number": 80}}});
    let mut manifest = object(
        "networking.k8s.io/v1",
        "Ingress",
        "e2e-edge",
        name,
        json!({"spec": {"rules": [{"host": "shop.edge.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}]}}),
    );
    json_patch::merge(&mut manifest, &rest);
    manifest
}

fn claim(name: &str, spec: Value) -> Value {
    let mut full = json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "storageClassName": "standard"});
    json_patch::merge(&mut full, &spec);
    object("v1", "PersistentVolumeClaim", "e2e-edge", name, json!({"spec": full}))
}

#[tokio::test]
async fn services_ingresses_claims_and_endpoints_stay_inside_the_tenant() {
    let client = client().await;
    let tenant = json!({
        "namespaces": ["e2e-edge"],
        "quota": {"loadBalancers": 1},
        "ingress": {"domains": ["edge.example.com"]},
        "members": [{"kind": "User", "name": "e2e-edge-member", "role": "member"}],
    });
    ready_tenant(&client, "e2e-edge", tenant).await;
    let quota = Api::<ResourceQuota>::namespaced(client.clone(), "e2e-edge").get("scs-tenant-quota").await.unwrap();
    let hard = quota.spec.unwrap().hard.unwrap();
    assert_eq!(hard["services.nodeports"].0, "0", "no NodePorts for tenants, whatever the policy says");
    assert_eq!(hard["requests.cpu"].0, "4", "a tenant without a cpu quota gets the configured default");

    // Services: ClusterIP and a LoadBalancer without node ports, nothing else.
    dry_run(&client, &service("plain", json!({}))).await.expect("ClusterIP");
    dry_run(&client, &service("lb", json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false})))
        .await
        .expect("a LoadBalancer without node ports");
    for (name, spec, expected) in [
        ("nodeport", json!({"type": "NodePort"}), "NodePort"),
        (
            "alias",
            json!({"type": "ExternalName", "externalName": "kubernetes.default.svc", "selector": null}),
            "ExternalName",
        ),
        ("captor", json!({"externalIPs": ["8.8.8.8"]}), "externalIPs"),
        ("lb-nodeports", json!({"type": "LoadBalancer"}), "allocateLoadBalancerNodePorts"),
    ] {
        refused(name, dry_run(&client, &service(name, spec)).await, &["scs-tenant-services", expected]);
    }

    // Ingress: named hosts under the tenant's domains only.
    dry_run(&client, &ingress("shop", json!({}))).await.expect("a host under the tenant domain");
    let tls = |host: &str| json!({"spec": {"tls": [{"hosts": [host], "secretName": "tls"}]}});
    dry_run(&client, &ingress("shop-tls", tls("shop.edge.example.com"))).await.expect("TLS for the tenant's host");
    let host = |host: Value| json!({"spec": {"rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}});
    for (name, rest, expected) in [
        ("foreign", host(json!("shop.acme.example.com")), "tenant domains"),
        ("lookalike", host(json!("shopedge.example.com")), "tenant domains"),
        ("wildcard", host(json!("*.edge.example.com")), "tenant domains"),
        ("catch-all", host(Value::Null), "tenant domains"),
        (
            "default",
            json!({"spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}}),
            "default backend",
        ),
        ("foreign-tls", tls("bank.example.com"), "TLS hosts"),
        (
            "snippet",
            annotated("nginx.ingress.kubernetes.io/server-snippet", "location / { proxy_pass http://10.0.0.1; }"),
            "snippet",
        ),
    ] {
        refused(name, dry_run(&client, &ingress(name, rest)).await, &["scs-tenant-ingresses", expected]);
    }

    // Claims: a tier's class, never a named volume.
    dry_run(&client, &claim("data", json!({}))).await.expect("a claim of a storage tier");
    for (name, spec, expected) in [
        ("squatter", json!({"volumeName": "someone-elses-pv"}), "volumeName"),
        ("unlisted", json!({"storageClassName": "premium-nvme"}), "storage tiers"),
        ("classless", json!({"storageClassName": ""}), "storage tiers"),
    ] {
        refused(name, dry_run(&client, &claim(name, spec)).await, &["scs-tenant-claims", expected]);
    }

    // Endpoints and EndpointSlices: read-only for tenant roles (CVE-2021-25740).
    let member = ("e2e-edge-member", &[][..]);
    let ns = Some("e2e-edge");
    assert!(may(&client, member, "list", ("", "endpoints"), ns).await);
    assert!(may(&client, member, "list", ("discovery.k8s.io", "endpointslices"), ns).await);
    for verb in ["create", "update", "patch"] {
        assert!(!may(&client, member, verb, ("", "endpoints"), ns).await, "member may not {verb} endpoints");
        assert!(!may(&client, member, verb, ("discovery.k8s.io", "endpointslices"), ns).await);
    }
    delete_tenant(&client, "e2e-edge").await;
}

/// A client that acts as the operator's ServiceAccount (the suite's admin may impersonate).
async fn as_operator() -> Client {
    let mut config = kube::Config::infer().await.unwrap();
    config.auth_info.impersonate = Some("system:serviceaccount:scs-system:scs-operator".into());
    Client::try_from(config).unwrap()
}

#[tokio::test]
async fn the_operator_cannot_write_outside_tenant_namespaces() {
    let client = client().await;
    ready_tenant(&client, "e2e-scope", json!({"namespaces": ["e2e-scope"]})).await;
    let operator = as_operator().await;
    let deployment = |namespace: &str| {
        let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": busybox_pod_spec(&["sleep", "1"])});
        object(
            "apps/v1",
            "Deployment",
            namespace,
            "e2e-scope-probe",
            json!({"spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template}}),
        )
    };
    dry_run(&operator, &deployment("e2e-scope")).await.expect("the operator writes into tenant namespaces");
    for namespace in ["kube-system", "default", "scs-system"] {
        refused(
            namespace,
            dry_run(&operator, &deployment(namespace)).await,
            &["scs-operator-namespaced", "tenant namespaces"],
        );
    }
    let role_ref = |role: &str| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role});
    let subjects = json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}]);
    let mine = json!({"app.kubernetes.io/managed-by": "scs-operator"});
    // A role it may bind, but in kube-system: the namespace fence refuses it.
    let binding = object(
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "kube-system",
        "e2e-scope-probe",
        json!({"roleRef": role_ref("scs:member"), "subjects": subjects}),
    );
    refused("rolebinding in kube-system", dry_run(&operator, &binding).await, &["scs-operator-namespaced"]);
    // Cluster-wide: RBAC refuses scs:cloud-admin (no bind), the policy anything but storage-reader.
    let cluster_binding = |role: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": format!("e2e-scope-{}", role.replace(':', "-")), "labels": mine},
               "roleRef": role_ref(role), "subjects": subjects})
    };
    refused("bind scs:cloud-admin", dry_run(&operator, &cluster_binding("scs:cloud-admin")).await, &["forbidden"]);
    refused(
        "bind scs:member cluster-wide",
        dry_run(&operator, &cluster_binding("scs:member")).await,
        &["scs-operator-cluster", "scs:storage-reader"],
    );
    // The ClusterRoles it writes are self-view roles only, even named and labelled like one.
    let power = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "scs:tenant:e2e-scope:self", "labels": mine},
        "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create"]}]});
    refused(
        "a broad ClusterRole",
        dry_run(&operator, &power).await,
        &["scs-operator-cluster", "named Tenants and Namespaces"],
    );
    let own = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "scs:tenant:e2e-scope-probe:self", "labels": mine},
        "rules": [{"apiGroups": ["scs.dev"], "resources": ["tenants"], "resourceNames": ["e2e-scope"], "verbs": ["get"]}]});
    dry_run(&operator, &own).await.expect("a self-view role");
    // Namespaces it did not create: no label, no deletion; new ones carry its label.
    let namespaces: Api<Namespace> = Api::all(operator.clone());
    let label = json!({"metadata": {"labels": {"scs.dev/tenant": "e2e-scope"}}});
    let dry_patch = PatchParams { dry_run: true, ..Default::default() };
    refused(
        "label kube-system",
        namespaces.patch("kube-system", &dry_patch, &Patch::Merge(&label)).await,
        &["scs-operator-cluster", "only objects it created"],
    );
    let dry_delete = DeleteParams { dry_run: true, ..Default::default() };
    plain_namespace(&client, "e2e-scope-plain", json!({})).await;
    refused(
        "delete a namespace it did not create",
        namespaces.delete("e2e-scope-plain", &dry_delete).await,
        &["scs-operator-cluster", "only objects it created"],
    );
    let unlabelled = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "e2e-scope-unlabelled"}});
    refused("unlabelled namespace", dry_run(&operator, &unlabelled).await, &["scs-operator-cluster"]);
    delete_namespace(&client, "e2e-scope-plain").await;
    delete_tenant(&client, "e2e-scope").await;
}
