//! Secondary networks on a real API server (issue 16): with the upstream CRDs of Multus
//! (NetworkAttachmentDefinition), multi-networkpolicy (MultiNetworkPolicy) and Kube-OVN (Subnet)
//! installed from `operator/tests/fixtures/upstream-crds`, the operator's MultiNetworkPolicies and
//! Subnets are admitted by those schemas, follow spec changes, and go with their Tenant and
//! SdnNetwork; no tenant role may write them; the tenant pod policy lets a pod ask Kube-OVN only
//! for its own network's Subnet and fixed addresses. The test removes the CRDs again. Run by
//! `e2e/localkube.sh` (or `e2e/kind.sh`) with the kind overlay installed.
#![cfg(feature = "cluster")]

use e2e::cluster::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use scs_operator::api::{SdnNetwork, Tenant};
use serde_json::{Value, json};

const CRDS: [&str; 3] = ["network-attachment-definitions", "multi-networkpolicies", "kube-ovn-subnets"];
const CRD_NAMES: [&str; 3] =
    ["network-attachment-definitions.k8s.cni.cncf.io", "multi-networkpolicies.k8s.cni.cncf.io", "subnets.kubeovn.io"];

fn fixture(name: &str) -> String {
    repo().join(format!("operator/tests/fixtures/upstream-crds/{name}.yaml")).display().to_string()
}

async fn install_upstream_crds() {
    for name in CRDS {
        kubectl(&["apply", "--server-side", "--force-conflicts", "-f", &fixture(name)], None)
            .unwrap_or_else(|e| panic!("install {name}: {e}"));
    }
    let mut args = vec!["wait", "--for=condition=Established", "--timeout=60s"];
    let crds: Vec<String> = CRD_NAMES.iter().map(|c| format!("crd/{c}")).collect();
    args.extend(crds.iter().map(String::as_str));
    kubectl(&args, None).unwrap();
}

fn remove_upstream_crds() {
    for crd in CRD_NAMES {
        let _ = kubectl(&["delete", "crd", crd, "--ignore-not-found", "--timeout=120s"], None);
    }
}

async fn api(client: &Client, api_version: &str, kind: &str, namespace: Option<&str>) -> Api<DynamicObject> {
    let mut manifest = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}});
    if let Some(namespace) = namespace {
        manifest["metadata"]["namespace"] = json!(namespace);
    }
    dynamic_api(client, &manifest).await
}

fn network(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SdnNetwork", "metadata": {"name": name}, "spec": spec})
}

fn flat(isolation: Option<&str>) -> Value {
    let mut spec = json!({
        "type": "macvlan", "master": "eth1", "cidr": "192.168.150.0/24", "gateway": "192.168.150.1",
        "ipRange": {"start": "192.168.150.20", "end": "192.168.150.200"}, "securityDomain": "e2e-office",
    });
    if let Some(domain) = isolation {
        spec["isolationDomain"] = json!(domain);
    }
    network("e2e-net-flat", spec)
}

fn ovn(exclude: &[&str]) -> Value {
    network(
        "e2e-net-ovn",
        json!({
            "type": "kube-ovn", "cidr": "10.251.0.0/16", "gateway": "10.251.0.1",
            "ipRange": {"start": "10.251.1.0", "end": "10.251.9.255"}, "exclude": exclude,
            "securityDomain": "e2e-office", "isolationDomain": "e2e-finance",
        }),
    )
}

fn condition(conditions: &Value, type_: &str) -> Option<(String, String, String)> {
    let found = conditions.as_array()?.iter().find(|c| c["type"] == type_)?;
    Some((
        found["status"].as_str()?.to_string(),
        found["reason"].as_str()?.to_string(),
        found["message"].as_str()?.to_string(),
    ))
}

/// A pod of the namespace's sandbox class passing Pod Security `restricted`, with `annotations`.
fn pod(name: &str, annotations: Value) -> Pod {
    let mut spec = busybox_pod_spec(&["sleep", "3600"]);
    spec["runtimeClassName"] = json!("kata-qemu");
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
                                  "metadata": {"name": name, "annotations": annotations}, "spec": spec}))
    .unwrap()
}

async fn impersonating(user: &str, groups: &[&str]) -> Client {
    let mut config = kube::Config::infer().await.unwrap();
    config.auth_info.impersonate = Some(user.into());
    config.auth_info.impersonate_groups = (!groups.is_empty()).then(|| groups.iter().map(|g| g.to_string()).collect());
    Client::try_from(config).unwrap()
}

#[tokio::test]
async fn policies_and_subnets_are_admitted_follow_the_spec_and_go_with_their_owners() {
    let client = client().await;
    // Whatever an earlier run left behind goes first.
    delete_tenant(&client, "e2e-net").await;
    let networks: Api<SdnNetwork> = Api::all(client.clone());
    for name in ["e2e-net-flat", "e2e-net-ovn", "e2e-net-open"] {
        let _ = networks.delete(name, &DeleteParams::default()).await;
    }
    // Without the MultiNetworkPolicy API (left over from an earlier run or not), the tenant says so.
    remove_upstream_crds();
    tenant_without_the_policy_api_says_its_secondary_interfaces_are_open(&client).await;
    install_upstream_crds().await;
    apply(&networks, "e2e-net-flat", flat(Some("e2e-finance"))).await;
    apply(&networks, "e2e-net-ovn", ovn(&["10.251.5.0/24"])).await;
    let members = json!([
        {"kind": "User", "name": "e2e-net-admin", "role": "projectAdmin"},
        {"kind": "User", "name": "e2e-net-member", "role": "member"},
        {"kind": "User", "name": "e2e-net-viewer", "role": "viewer"},
    ]);
    let tenant = ready_tenant(
        &client,
        "e2e-net",
        json!({"namespaces": ["e2e-net-a", "e2e-net-b"], "networks": ["e2e-net-flat", "e2e-net-ovn"], "members": members}),
    )
    .await;
    let isolated =
        condition(&serde_json::to_value(tenant.status.unwrap().conditions).unwrap(), "SecondaryNetworksIsolated");
    assert_eq!(isolated.map(|c| (c.0, c.1)), Some(("True".into(), "Applied".into())));

    // One MultiNetworkPolicy per namespace and network, admitted by the upstream schema.
    let policies = api(&client, "k8s.cni.cncf.io/v1beta1", "MultiNetworkPolicy", Some("e2e-net-a")).await;
    // The isolation domain, one security domain: both networks' CIDRs.
    let flat_policy =
        until("MultiNetworkPolicy e2e-net-a/scs-network-e2e-net-flat with the domain's CIDRs", || async {
            let policy = policies.get_opt("scs-network-e2e-net-flat").await.ok().flatten()?;
            let peers = policy.data["spec"]["ingress"][0]["from"].as_array()?.clone();
            let blocks: Vec<&str> = peers[1..].iter().filter_map(|p| p["ipBlock"]["cidr"].as_str()).collect();
            (blocks == ["192.168.150.0/24", "10.251.0.0/16"]).then_some(policy.clone())
        })
        .await;
    assert_eq!(
        flat_policy.annotations()["k8s.v1.cni.cncf.io/policy-for"],
        "e2e-net-a/e2e-net-flat,e2e-net-a/e2e-net-flat.static,e2e-net-b/e2e-net-flat,e2e-net-b/e2e-net-flat.static"
    );
    assert_eq!(flat_policy.labels()["scs.dev/tenant"], "e2e-net");
    assert_eq!(
        flat_policy.data["spec"]["ingress"][0]["from"][0],
        json!({"namespaceSelector": {"matchLabels": {"scs.dev/tenant": "e2e-net"}}})
    );
    assert_eq!(flat_policy.data["spec"]["egress"][0]["to"], flat_policy.data["spec"]["ingress"][0]["from"]);
    assert_eq!(flat_policy.data["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    let ovn_policy = until("MultiNetworkPolicy for the Kube-OVN network", || async {
        policies.get_opt("scs-network-e2e-net-ovn").await.ok().flatten()
    })
    .await;
    assert_eq!(
        ovn_policy.annotations()["k8s.v1.cni.cncf.io/policy-for"],
        "e2e-net-a/e2e-net-ovn,e2e-net-b/e2e-net-ovn"
    );

    // The Kube-OVN Subnet, owned by its network.
    let subnets = api(&client, "kubeovn.io/v1", "Subnet", None).await;
    let subnet =
        until("Subnet scs-e2e-net-ovn", || async { subnets.get_opt("scs-e2e-net-ovn").await.ok().flatten() }).await;
    let owner = &subnet.owner_references()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("SdnNetwork", "e2e-net-ovn"));
    assert_eq!(subnet.data["spec"]["cidrBlock"], "10.251.0.0/16");
    assert_eq!(subnet.data["spec"]["provider"], "e2e-net-ovn.scs-system.ovn");
    assert_eq!(subnet.data["spec"]["allowSubnets"], json!(["192.168.150.0/24"]));
    assert!(subnet.data["spec"].get("namespaces").is_none());
    until("SdnNetwork e2e-net-ovn SubnetReady", || async {
        let status = serde_json::to_value(networks.get("e2e-net-ovn").await.ok()?.status?).ok()?;
        (condition(&status["conditions"], "SubnetReady")?.0 == "True").then_some(())
    })
    .await;

    // The network's status: per namespace, its tenant, the pods attached (none yet) and fixed addresses.
    until("SdnNetwork e2e-net-flat attachments", || async {
        let status = serde_json::to_value(networks.get("e2e-net-flat").await.ok()?.status?).ok()?;
        let expected = json!([
            {"tenant": "e2e-net", "namespace": "e2e-net-a", "pods": 0},
            {"tenant": "e2e-net", "namespace": "e2e-net-b", "pods": 0},
        ]);
        (status["attachments"] == expected).then_some(())
    })
    .await;

    // Updates follow the spec: a new exclusion reaches the Subnet; the flat network leaving the
    // isolation domain closes its addresses in the policy.
    apply(&networks, "e2e-net-ovn", ovn(&["10.251.5.0/24", "10.251.6.0/24"])).await;
    until("Subnet excludes 10.251.6.0/24", || async {
        let subnet = subnets.get("scs-e2e-net-ovn").await.ok()?;
        subnet.data["spec"]["excludeIps"].as_array()?.iter().any(|e| e == "10.251.6.0..10.251.6.255").then_some(())
    })
    .await;
    apply(&networks, "e2e-net-flat", flat(None)).await;
    until("the flat network's policy without address blocks", || async {
        let policy = policies.get("scs-network-e2e-net-flat").await.ok()?;
        (policy.data["spec"]["ingress"][0]["from"].as_array()?.len() == 1).then_some(())
    })
    .await;
    until("Subnet without the flat network", || async {
        let subnet = subnets.get("scs-e2e-net-ovn").await.ok()?;
        (subnet.data["spec"]["allowSubnets"] == json!([])).then_some(())
    })
    .await;
    // Someone else's edit of a policy is put back.
    policies
        .patch("scs-network-e2e-net-flat", &PatchParams::default(), &Patch::Merge(json!({"spec": {"ingress": [{}]}})))
        .await
        .unwrap();
    // The tenant is re-synced on its own children's changes.
    until("the policy restored", || async {
        let policy = policies.get("scs-network-e2e-net-flat").await.ok()?;
        policy.data["spec"]["ingress"][0]["from"].is_array().then_some(())
    })
    .await;

    // The operator's own account writes them only as its own and only in tenant namespaces.
    let operator = "system:serviceaccount:scs-system:scs-operator";
    let as_operator = impersonating(operator, &[]).await;
    let dry = PatchParams::apply("scs-operator").force().dry_run();
    let operator_subnets = api(&as_operator, "kubeovn.io/v1", "Subnet", None).await;
    let unlabelled = json!({"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": "e2e-net-foreign"},
                            "spec": {"cidrBlock": "10.253.0.0/16", "protocol": "IPv4", "provider": "ovn"}});
    let refused =
        operator_subnets.patch("e2e-net-foreign", &dry, &Patch::Apply(&unlabelled)).await.unwrap_err().to_string();
    assert!(refused.contains("managed-by: scs-operator"), "{refused}");
    let in_system = json!({"apiVersion": "k8s.cni.cncf.io/v1beta1", "kind": "MultiNetworkPolicy",
                           "metadata": {"name": "e2e-net-probe", "namespace": "kube-system", "labels": {"app.kubernetes.io/managed-by": "scs-operator"}},
                           "spec": {"podSelector": {}}});
    let system_policies = api(&as_operator, "k8s.cni.cncf.io/v1beta1", "MultiNetworkPolicy", Some("kube-system")).await;
    let refused =
        system_policies.patch("e2e-net-probe", &dry, &Patch::Apply(&in_system)).await.unwrap_err().to_string();
    assert!(refused.contains("only into tenant namespaces"), "{refused}");

    // Removal: the network takes its Subnet and the tenant's policies for it; the tenant the rest.
    networks.delete("e2e-net-ovn", &DeleteParams::default()).await.unwrap();
    until("Subnet gone with its network", || async {
        subnets.get_opt("scs-e2e-net-ovn").await.ok()?.is_none().then_some(())
    })
    .await;
    until("policy of the deleted network gone", || async {
        policies.get_opt("scs-network-e2e-net-ovn").await.ok()?.is_none().then_some(())
    })
    .await;
    delete_tenant(&client, "e2e-net").await;
    let everywhere = api(&client, "k8s.cni.cncf.io/v1beta1", "MultiNetworkPolicy", None).await;
    until("no MultiNetworkPolicy of the tenant left", || async {
        let left = everywhere.list(&kube::api::ListParams::default().labels("scs.dev/tenant=e2e-net")).await.ok()?;
        left.items.is_empty().then_some(())
    })
    .await;
    networks.delete("e2e-net-flat", &DeleteParams::default()).await.unwrap();
    remove_upstream_crds();
}

/// A tenant attached to a network while the cluster does not serve MultiNetworkPolicy.
async fn tenant_without_the_policy_api_says_its_secondary_interfaces_are_open(client: &Client) {
    let networks: Api<SdnNetwork> = Api::all(client.clone());
    apply(&networks, "e2e-net-open", network("e2e-net-open", json!({"type": "kube-ovn", "cidr": "10.252.0.0/16"})))
        .await;
    let tenants: Api<Tenant> = Api::all(client.clone());
    apply(
        &tenants,
        "e2e-net-open",
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "e2e-net-open"},
               "spec": {"namespaces": ["e2e-net-open"], "networks": ["e2e-net-open"]}}),
    )
    .await;
    let message = until("SecondaryNetworksIsolated=False", || async {
        let status = serde_json::to_value(tenants.get("e2e-net-open").await.ok()?.status?).ok()?;
        let (state, reason, message) = condition(&status["conditions"], "SecondaryNetworksIsolated")?;
        (state == "False" && reason == "MultiNetworkPolicyNotServed").then_some(message)
    })
    .await;
    assert!(message.contains("NOT isolated") && message.contains("e2e-net-open"), "{message}");
    delete_tenant(client, "e2e-net-open").await;
    networks.delete("e2e-net-open", &DeleteParams::default()).await.unwrap();
}

#[tokio::test]
async fn no_tenant_role_writes_policies_attachments_or_subnets() {
    let client = client().await;
    ready_tenant(
        &client,
        "e2e-net-rbac",
        json!({"namespaces": ["e2e-net-rbac"], "members": [
            {"kind": "User", "name": "e2e-netr-admin", "role": "projectAdmin"},
            {"kind": "User", "name": "e2e-netr-member", "role": "member"},
            {"kind": "User", "name": "e2e-netr-viewer", "role": "viewer"},
        ]}),
    )
    .await;
    for user in ["e2e-netr-admin", "e2e-netr-member", "e2e-netr-viewer"] {
        for verb in ["create", "update", "patch", "delete", "deletecollection"] {
            for (group, resource) in
                [("k8s.cni.cncf.io", "multi-networkpolicies"), ("k8s.cni.cncf.io", "network-attachment-definitions")]
            {
                assert!(
                    !may(&client, (user, &[]), verb, (group, resource), Some("e2e-net-rbac")).await,
                    "{user} may {verb} {resource}"
                );
            }
            assert!(
                !may(&client, (user, &[]), verb, ("kubeovn.io", "subnets"), None).await,
                "{user} may {verb} subnets"
            );
        }
    }
    // The operator's own account may (the admission policies hold it to its own objects).
    let operator = "system:serviceaccount:scs-system:scs-operator";
    assert!(may(&client, (operator, &[]), "create", ("kubeovn.io", "subnets"), None).await);
    assert!(
        may(&client, (operator, &[]), "create", ("k8s.cni.cncf.io", "multi-networkpolicies"), Some("kube-system"))
            .await
    );
    delete_tenant(&client, "e2e-net-rbac").await;
}

#[tokio::test]
async fn a_tenant_pod_asks_kube_ovn_only_for_its_own_networks_subnet_and_addresses() {
    let client = client().await;
    let namespace = "e2e-net-pods";
    ready_tenant(
        &client,
        namespace,
        json!({"namespaces": [namespace], "members": [{"kind": "User", "name": "e2e-netp-member", "role": "member"}]}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let dry = PostParams { dry_run: true, ..Default::default() };
    let own = |key: &str| format!("e2e-net-ovn.{namespace}.ovn.kubernetes.io/{key}");
    for (name, annotations) in [
        ("fixed", json!({own("ip_address"): "10.251.1.5"})),
        ("subnet", json!({own("logical_switch"): "scs-e2e-net-ovn", own("ip_address"): "10.251.1.6"})),
        ("unrelated", json!({"kubectl.kubernetes.io/default-container": "main"})),
    ] {
        pods.create(&dry, &pod(name, annotations)).await.unwrap_or_else(|e| panic!("{name}: refused: {e}"));
    }
    let message = "Kube-OVN annotations in tenant namespaces may only request fixed addresses";
    for (name, annotations) in [
        ("primary-switch", json!({"ovn.kubernetes.io/logical_switch": "join"})),
        ("primary-address", json!({"ovn.kubernetes.io/ip_address": "10.16.0.9"})),
        ("vip", json!({"ovn.kubernetes.io/vip": "someone-elses"})),
        ("other-subnet", json!({own("logical_switch"): "ovn-default"})),
        ("other-namespace", json!({"e2e-net-ovn.e2e-other.ovn.kubernetes.io/ip_address": "10.251.1.7"})),
        ("allocated", json!({own("allocated"): "true", own("ip_address"): "10.251.1.8"})),
        ("pool", json!({own("ip_pool"): "10.251.1.9"})),
    ] {
        let refused = pods.create(&dry, &pod(name, annotations)).await.unwrap_err().to_string();
        assert!(refused.contains(message), "{name}: {refused}");
    }

    // Updates: a member may not add one later; a pod keeps what it was admitted with when it is
    // changed otherwise; Kube-OVN itself (a kube-system service account) writes its own.
    let _ = pods.delete("e2e-net-probe", &DeleteParams::default()).await;
    until("no probe pod left from an earlier run", || async {
        pods.get_opt("e2e-net-probe").await.ok()?.is_none().then_some(())
    })
    .await;
    pods.create(&PostParams::default(), &pod("e2e-net-probe", json!({own("ip_address"): "10.251.1.5"}))).await.unwrap();
    let member = impersonating("e2e-netp-member", &[]).await;
    let as_member: Api<Pod> = Api::namespaced(member, namespace);
    let add = json!({"metadata": {"annotations": {"ovn.kubernetes.io/logical_switch": "join"}}});
    let refused =
        as_member.patch("e2e-net-probe", &PatchParams::default(), &Patch::Merge(&add)).await.unwrap_err().to_string();
    assert!(refused.contains(message), "{refused}");
    let relabel = json!({"metadata": {"labels": {"e2e": "relabelled"}}});
    as_member.patch("e2e-net-probe", &PatchParams::default(), &Patch::Merge(&relabel)).await.unwrap();
    let change = json!({"metadata": {"annotations": {own("ip_address"): "10.251.1.99"}}});
    let refused = as_member
        .patch("e2e-net-probe", &PatchParams::default(), &Patch::Merge(&change))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains(message), "changing an admitted address later: {refused}");
    // Kube-OVN's controller, impersonated with a role allowing it to patch pods here.
    let kube_ovn = "system:serviceaccount:kube-system:e2e-kube-ovn";
    apply_dynamic(
        &client,
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "e2e-kube-ovn", "namespace": namespace},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                "subjects": [{"kind": "ServiceAccount", "name": "e2e-kube-ovn", "namespace": "kube-system"}]}),
    )
    .await;
    let controller = impersonating(kube_ovn, &["system:serviceaccounts", "system:serviceaccounts:kube-system"]).await;
    let as_kube_ovn: Api<Pod> = Api::namespaced(controller, namespace);
    let allocated = json!({"metadata": {"annotations": {"ovn.kubernetes.io/allocated": "true", own("logical_switch"): "scs-e2e-net-ovn"}}});
    until("Kube-OVN may annotate (RBAC in place)", || async {
        as_kube_ovn.patch("e2e-net-probe", &PatchParams::default(), &Patch::Merge(&allocated)).await.ok()
    })
    .await;
    pods.delete("e2e-net-probe", &DeleteParams::default()).await.unwrap();
    delete_tenant(&client, namespace).await;
}
