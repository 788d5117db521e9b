//! API Priority and Fairness on a real API server: the optional component
//! (`manifests/components/apf`, which the kind overlay installs) is accepted as written, the API
//! server classifies every request of the ServiceAccounts it names into its own FlowSchema and
//! priority level (impersonated, and with a real token from the TokenRequest API as the deployed
//! pods authenticate), and no tenant request lands there — neither a tenant user's nor one of a
//! tenant namespace's ServiceAccount named like the operator's. No tenant role may change flow
//! control or impersonate the operator to get in. Run by `e2e/localkube.sh` (or `e2e/kind.sh`).
#![cfg(feature = "cluster")]

use e2e::cluster::*;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::flowcontrol::v1::{FlowSchema, PriorityLevelConfiguration};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// The response headers naming the matched FlowSchema and priority level by uid.
const FLOW_SCHEMA_UID: &str = "x-kubernetes-pf-flowschema-uid";
const PRIORITY_LEVEL_UID: &str = "x-kubernetes-pf-prioritylevel-uid";

/// The component's objects, as written in the repository (the files its kustomization lists).
fn component() -> Vec<Value> {
    let dir = repo().join("manifests/components/apf");
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let kustomization: Value = serde_yaml::from_str(&read("kustomization.yaml")).unwrap();
    let mut objects = Vec::new();
    for file in kustomization["resources"].as_array().unwrap() {
        let text = read(file.as_str().unwrap());
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = <Value as k8s_openapi::serde::Deserialize>::deserialize(document).unwrap();
            if !value.is_null() {
                objects.push(value);
            }
        }
    }
    objects
}

fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects.iter().find(|o| o["kind"] == kind).unwrap_or_else(|| panic!("no {kind} in the component"))
}

/// A client of the suite's admin that acts as `user` (in `groups`; none given: the API server adds
/// a ServiceAccount's own groups, as for its token).
async fn impersonating(user: &str, groups: &[&str]) -> Client {
    let mut config = kube::Config::infer().await.unwrap();
    config.auth_info.impersonate = Some(user.into());
    config.auth_info.impersonate_groups = (!groups.is_empty()).then(|| groups.iter().map(|g| g.to_string()).collect());
    Client::try_from(config).unwrap()
}

/// A client holding a real token of ServiceAccount `namespace/name` (TokenRequest, 10 minutes),
/// authenticated as the deployed pods are, instead of the admin's token; `None` when the
/// ServiceAccount does not exist.
async fn with_token_of(admin: &Client, namespace: &str, name: &str) -> Option<Client> {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    accounts.get_opt(name).await.unwrap()?;
    let request = TokenRequest {
        spec: TokenRequestSpec { expiration_seconds: Some(600), ..Default::default() },
        ..Default::default()
    };
    let token = accounts.create_token_request(name, &PostParams::default(), &request).await.unwrap();
    let mut config = kube::Config::infer().await.unwrap();
    config.auth_info = kube::config::AuthInfo { token: Some(token.status.unwrap().token.into()), ..Default::default() };
    Some(Client::try_from(config).unwrap())
}

/// How the API server classified a GET of `path` by `client`: the HTTP status and the uids of the
/// FlowSchema and priority level (classification comes before authorization, so a refused
/// request carries them too).
async fn classified(client: &Client, path: &str) -> (u16, String, String) {
    let request = http::Request::get(path).body(kube::client::Body::from(Vec::new())).unwrap();
    let response = client.send(request).await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let header = |name: &str| {
        let value = response.headers().get(name).and_then(|v| v.to_str().ok());
        value.unwrap_or_else(|| panic!("GET {path} ({}): no {name} header", response.status())).to_string()
    };
    (response.status().as_u16(), header(FLOW_SCHEMA_UID), header(PRIORITY_LEVEL_UID))
}

async fn uids(client: &Client, schema: &str, level: &str) -> (String, String) {
    let schemas: Api<FlowSchema> = Api::all(client.clone());
    let levels: Api<PriorityLevelConfiguration> = Api::all(client.clone());
    let schema = schemas.get(schema).await.unwrap_or_else(|e| panic!("FlowSchema {schema}: {e}"));
    let level = levels.get(level).await.unwrap_or_else(|e| panic!("PriorityLevelConfiguration {level}: {e}"));
    (schema.uid().unwrap(), level.uid().unwrap())
}

#[tokio::test]
async fn the_api_server_accepts_the_component_and_the_kind_overlay_installed_it() {
    let client = client().await;
    let objects = component();
    assert_eq!(objects.len(), 2, "a FlowSchema and its priority level");
    for object in &objects {
        let name = object["metadata"]["name"].as_str().unwrap();
        // Strict field validation: a misspelt field would be refused, not dropped.
        dry_run(&client, object).await.unwrap_or_else(|e| panic!("{} {name} refused: {e}", object["kind"]));
        let installed = dynamic_api(&client, object).await.get(name).await.unwrap_or_else(|e| {
            panic!("{} {name} not installed (kind overlay without the component?): {e}", object["kind"])
        });
        let installed = serde_json::to_value(installed).unwrap();
        assert!(
            scs_operator::controller::diff::contains(&installed["spec"], &object["spec"]),
            "{} {name} as installed differs from the file: {}",
            object["kind"],
            installed["spec"]
        );
    }
    // The API server found the level the schema names (not Dangling).
    let name = find(&objects, "FlowSchema")["metadata"]["name"].as_str().unwrap().to_string();
    let schemas: Api<FlowSchema> = Api::all(client.clone());
    until("the FlowSchema's Dangling condition", || async {
        let conditions = schemas.get(&name).await.ok()?.status?.conditions?;
        let dangling = conditions.into_iter().find(|c| c.type_.as_deref() == Some("Dangling"))?;
        Some(dangling.status)
    })
    .await
    .filter(|status| status == "False")
    .unwrap_or_else(|| panic!("FlowSchema {name} is dangling: its priority level is missing"));
}

#[tokio::test]
async fn the_operator_has_a_level_of_its_own_that_tenants_do_not_share() {
    let admin = client().await;
    let objects = component();
    let schema = find(&objects, "FlowSchema");
    let level = find(&objects, "PriorityLevelConfiguration");
    let ours =
        uids(&admin, schema["metadata"]["name"].as_str().unwrap(), level["metadata"]["name"].as_str().unwrap()).await;
    let global_default = uids(&admin, "global-default", "global-default").await;
    let service_accounts = uids(&admin, "service-accounts", "workload-low").await;

    // Every ServiceAccount the schema names: resource requests, cluster-wide and namespaced, and
    // non-resource ones alike. The operator's own requests are also allowed.
    let accounts: Vec<(String, String)> = schema["spec"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rule| rule["subjects"].as_array().unwrap().iter())
        .map(|s| {
            let account = &s["serviceAccount"];
            (account["namespace"].as_str().unwrap().to_string(), account["name"].as_str().unwrap().to_string())
        })
        .collect();
    assert!(accounts.contains(&("scs-system".into(), "scs-operator".into())), "{accounts:?}");
    for (namespace, name) in &accounts {
        // Impersonated (the ServiceAccount need not exist), and with its own token where it does.
        let mut clients =
            vec![("impersonated", impersonating(&format!("system:serviceaccount:{namespace}:{name}"), &[]).await)];
        match with_token_of(&admin, namespace, name).await {
            Some(client) => clients.push(("token", client)),
            None => assert_ne!(name, "scs-operator", "the kind overlay installs the operator's ServiceAccount"),
        }
        for (how, account) in &clients {
            for path in [
                "/apis/scs.dev/v1alpha1/tenants?limit=1",
                "/apis/coordination.k8s.io/v1/namespaces/scs-system/leases/scs-operator",
                "/version",
            ] {
                let (status, schema_uid, level_uid) = classified(account, path).await;
                assert_eq!((schema_uid, level_uid), ours, "{namespace}/{name} ({how}): GET {path} ({status})");
                if name == "scs-operator" && path.contains("tenants") {
                    assert_eq!(status, 200, "the operator lists tenants ({how})");
                }
            }
        }
    }

    // A tenant's project admin (a group member) working in its namespace: the built-in default.
    let tenant = "e2e-apf";
    let team = "e2e-apf-team";
    ready_tenant(
        &admin,
        tenant,
        json!({"namespaces": [tenant], "members": [{"kind": "Group", "name": team, "role": "projectAdmin"}]}),
    )
    .await;
    let user = "e2e-apf-dev";
    let member = impersonating(user, &[team]).await;
    let (status, schema_uid, level_uid) = classified(&member, &format!("/api/v1/namespaces/{tenant}/pods")).await;
    assert_eq!(status, 200, "the project admin lists its pods");
    assert_eq!((schema_uid, level_uid), global_default, "a tenant user's request");
    // A pod's ServiceAccount of the tenant, named like the operator's: a tenant may create it, but
    // the schema names the namespace, so it stays with every other ServiceAccount (workload-low).
    let lookalike = impersonating(&format!("system:serviceaccount:{tenant}:scs-operator"), &[]).await;
    let (_, schema_uid, level_uid) = classified(&lookalike, &format!("/api/v1/namespaces/{tenant}/pods")).await;
    assert_eq!((schema_uid, level_uid), service_accounts, "a tenant ServiceAccount named scs-operator");

    // Nor can the project admin move itself in: no flow control writes, no impersonation.
    let who = (user, &[team][..]);
    let flowcontrol = "flowcontrol.apiserver.k8s.io";
    for verb in ["create", "update", "patch", "delete"] {
        for resource in ["flowschemas", "prioritylevelconfigurations"] {
            assert!(
                !may(&admin, who, verb, (flowcontrol, resource), None).await,
                "a project admin may {verb} {resource}"
            );
        }
    }
    assert!(!may_on(&admin, who, "patch", (flowcontrol, "flowschemas"), None, Some("scs-operator")).await);
    for (namespace, name) in &accounts {
        let impersonate =
            may_on(&admin, who, "impersonate", ("", "serviceaccounts"), Some(namespace), Some(name)).await;
        assert!(!impersonate, "a project admin may impersonate {namespace}/{name}");
        let as_user = format!("system:serviceaccount:{namespace}:{name}");
        assert!(!may_on(&admin, who, "impersonate", ("", "users"), None, Some(&as_user)).await, "{as_user}");
    }
    delete_tenant(&admin, tenant).await;
}
