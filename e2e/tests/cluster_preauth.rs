//! Pod pre-authorization on a real API server (issue 18). What localkube can show honestly:
//! - the API server's checks of PermissionGroups and `spec.preAuthorization`;
//! - the operator's Deployment carries the `scs-authorize` init container first;
//! - tenant RBAC: members manage PermissionGroups but not their status, nor the server's records
//!   and breakers in scs-system; the admission policy stops them stripping the finalizer;
//! - the authz-server, run here as a task on the host against the real API server (the in-cluster
//!   replicas are scaled to 0 meanwhile), authenticates a real pod's token (TokenRequest bound to
//!   the pod, TokenReview), refuses another identity, grants through a fake provider in this test,
//!   puts the finalizer on, and when the SecureWorkload scales to 0 revokes exactly once and
//!   releases the pod; with the provider down at revocation it releases the next pod after the
//!   bounded retries with a Warning Event;
//! - the whole path on the kubelet: a pod made by the ReplicaSet runs the real init container (the
//!   operator image loaded into the node), which reaches the server on this host (the Service's
//!   name resolved by the pod's `hostAliases`: localkube has no DNS or kube-proxy); the server
//!   checks the call comes from the pod's own IP; the app container starts only once the provider
//!   granted, and scaling to 0 revokes.
//!
//! Not covered here: the Service and DNS in front of the in-cluster replicas, the NetworkPolicy
//! allowance (not enforced on localkube), https to a provider with a real certificate.
#![cfg(feature = "cluster")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use e2e::cluster::*;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use scs_operator::authz::server::{AuthorizeResponse, Settings};
use scs_operator::authz::{FINALIZER, INIT_CONTAINER};
use scs_operator::config::{AuthorizationProvider, OperatorConfig};
use serde_json::{Value, json};

const NS: &str = "e2e-preauth";
/// The schema and RBAC test's own tenant (tests of a file run at the same time).
const API_NS: &str = "e2e-preauth-api";
const MEMBER: &str = "e2e-preauth-member";
const SERVER_ACCOUNT: &str = "system:serviceaccount:scs-system:scs-authz-server";

#[derive(Default)]
struct Provided {
    posts: Vec<Value>,
    deletes: Vec<String>,
    /// `DELETE` answers 503 (the provider is down at revocation).
    delete_down: bool,
    /// New grants stay pending (`POST` and `GET` answer 202) until this is cleared.
    hold: bool,
    /// `GET /grants/{id}` calls (the server polling a pending grant).
    polls: usize,
}

/// A provider that grants at once (or holds grants pending) and records what it is asked.
async fn fake_provider() -> (SocketAddr, Arc<Mutex<Provided>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let state: Arc<Mutex<Provided>> = Arc::default();
    let shared = state.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let state = shared.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let state = state.clone();
                    async move {
                        let method = request.method().clone();
                        let path = request.uri().path().to_string();
                        let body = request.into_body().collect().await?.to_bytes();
                        let mut s = state.lock().unwrap();
                        let id = path.trim_start_matches("/grants/").to_string();
                        let (status, answer) = if method == hyper::Method::POST {
                            s.posts.push(serde_json::from_slice(&body).unwrap_or_default());
                            let (status, state) = if s.hold { (202, "pending") } else { (201, "granted") };
                            (status, format!(r#"{{"id":"grant-{}","state":"{state}"}}"#, s.posts.len()))
                        } else if method == hyper::Method::GET {
                            s.polls += 1;
                            let (status, state) = if s.hold { (202, "pending") } else { (200, "granted") };
                            (status, format!(r#"{{"id":"{id}","state":"{state}"}}"#))
                        } else if method == hyper::Method::DELETE && s.delete_down {
                            (503, String::new())
                        } else if method == hyper::Method::DELETE {
                            s.deletes.push(id);
                            (204, String::new())
                        } else {
                            (404, String::new())
                        };
                        Ok::<_, hyper::Error>(
                            hyper::Response::builder().status(status).body(Full::new(Bytes::from(answer))).unwrap(),
                        )
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    (address, state)
}

fn permission_group(namespace: &str, name: &str, permissions: Value) -> Value {
    json!({"apiVersion": "scs.dev/v1alpha1", "kind": "PermissionGroup",
           "metadata": {"name": name, "namespace": namespace}, "spec": {"permissions": permissions}})
}

fn workload(namespace: &str, replicas: i32, groups: Value) -> Value {
    named_workload(namespace, "web", replicas, groups)
}

fn named_workload(namespace: &str, name: &str, replicas: i32, groups: Value) -> Value {
    json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": name, "namespace": namespace},
           "spec": {"kind": "Deployment", "replicas": replicas, "preAuthorization": {"permissionGroups": groups},
                    "template": {"metadata": {"labels": {"app": name}}, "spec": busybox_pod_spec(&["sleep", "3600"])}}})
}

async fn impersonating(user: &str) -> Client {
    let mut config = kube::Config::infer().await.unwrap();
    config.auth_info.impersonate = Some(user.into());
    Client::try_from(config).unwrap()
}

async fn token(client: &Client, pod: Option<&Pod>, audience: &str) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NS);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![audience.into()],
            expiration_seconds: Some(600),
            bound_object_ref: pod.map(|p| BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(p.name_any()),
                uid: p.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let account = pod.and_then(|p| p.spec.as_ref()?.service_account_name.clone()).unwrap_or_else(|| "default".into());
    accounts.create_token_request(&account, &PostParams::default(), &request).await.unwrap().status.unwrap().token
}

/// The server as pods reach it: TLS for the Service's name, verified with the CA of the server's
/// Secret (what the CA ConfigMap in a pod's namespace carries).
struct Authz {
    address: SocketAddr,
    ca: Vec<u8>,
}

impl Authz {
    async fn at(client: &Client, address: SocketAddr) -> Self {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), "scs-system");
        let secret = secrets.get(scs_operator::authz::tls::SECRET).await.unwrap();
        let ca = secret.data.unwrap()[scs_operator::authz::tls::CA_FILE].0.clone();
        Self { address, ca }
    }

    async fn send(&self, request: hyper::Request<Full<Bytes>>) -> (u16, Bytes) {
        let stream = tokio::net::TcpStream::connect(self.address).await.unwrap();
        let config = scs_operator::authz::tls::client_config(&self.ca).unwrap();
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(server_url_host()).unwrap();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, stream).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        (status, response.into_body().collect().await.unwrap().to_bytes())
    }

    /// Calls the server as the init container would.
    async fn authorize(&self, token: &str, claimed: Value) -> (u16, AuthorizeResponse) {
        let request = hyper::Request::post("/v1/authorize")
            .header("host", "authz")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::from(claimed.to_string())))
            .unwrap();
        let (status, body) = self.send(request).await;
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }

    /// A counter of the server's `/metrics`.
    async fn metric(&self, name: &str) -> u64 {
        let request = hyper::Request::get("/metrics").header("host", "authz").body(Full::new(Bytes::new())).unwrap();
        let text = String::from_utf8_lossy(&self.send(request).await.1).to_string();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} not in {text}"))
    }
}

/// The managers of `status` fields in a live object: `(manager, [top-level status fields])`.
fn status_managers(object: &DynamicObject) -> Vec<(String, Vec<String>)> {
    object
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .map(|m| {
            let fields = m.fields_v1.as_ref().map(|f| f.0.clone()).unwrap_or_default();
            let status = fields["f:status"]
                .as_object()
                .map(|o| o.keys().filter(|k| *k != ".").cloned().collect())
                .unwrap_or_default();
            (m.manager.clone().unwrap_or_default(), status)
        })
        .collect()
}

async fn scale_in_cluster_server(client: &Client, replicas: i32) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "scs-system");
    let patch = json!({"spec": {"replicas": replicas}});
    deployments.patch("scs-authz-server", &PatchParams::default(), &Patch::Merge(patch)).await.unwrap();
    if replicas == 0 {
        let pods: Api<Pod> = Api::namespaced(client.clone(), "scs-system");
        let selector = ListParams::default().labels("app.kubernetes.io/name=scs-authz-server");
        until("in-cluster authz-server gone", || async {
            pods.list(&selector).await.ok()?.items.is_empty().then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn permission_groups_are_checked_and_fenced() {
    let client = client().await;
    ready_tenant(
        &client,
        API_NS,
        json!({"namespaces": [API_NS], "members": [{"kind": "User", "name": MEMBER, "role": "member"}]}),
    )
    .await;
    for (what, manifest, expected) in [
        (
            "provider name",
            permission_group(API_NS, "bad", json!([{"name": "db", "provider": "CMDB"}])),
            &["spec.permissions[0].provider"][..],
        ),
        (
            "duplicate permission",
            permission_group(
                API_NS,
                "dup",
                json!([{"name": "db", "provider": "cmdb"}, {"name": "db", "provider": "acl"}]),
            ),
            &["duplicate entries", "name=\"db\""],
        ),
        ("no permission", permission_group(API_NS, "empty", json!([])), &["spec.permissions"]),
        ("group name", workload(API_NS, 1, json!(["Orders_DB"])), &["spec.preAuthorization.permissionGroups[0]"]),
    ] {
        refused(what, dry_run(&client, &manifest).await, expected);
    }
    dry_run(
        &client,
        &permission_group(API_NS, "ok", json!([{"name": "db", "provider": "cmdb", "params": {"database": "orders"}}])),
    )
    .await
    .unwrap();

    let member = (MEMBER, &[][..]);
    until("member RBAC in place", || async {
        may(&client, member, "create", ("scs.dev", "permissiongroups"), Some(API_NS)).await.then_some(())
    })
    .await;
    // The breaker reset is an annotation on the group: members may.
    assert!(may(&client, member, "patch", ("scs.dev", "permissiongroups"), Some(API_NS)).await);
    // The status, and the server's records and breakers, are not theirs.
    assert!(!may(&client, member, "patch", ("scs.dev", "permissiongroups/status"), Some(API_NS)).await);
    assert!(!may(&client, member, "update", ("scs.dev", "permissiongroups/status"), Some(API_NS)).await);
    for verb in ["get", "update", "delete"] {
        assert!(!may(&client, member, verb, ("", "configmaps"), Some("scs-system")).await, "{verb} configmaps");
    }
    assert!(!may(&client, member, "get", ("", "secrets"), Some("scs-system")).await);
    // Nor the SecureWorkload's status, where the authz-server writes the pre-authorization summary.
    for verb in ["patch", "update"] {
        assert!(!may(&client, member, verb, ("scs.dev", "secureworkloads/status"), Some(API_NS)).await, "{verb}");
    }
    // The authz-server may write that status (and only patch it) but no SecureWorkload spec.
    let server = (SERVER_ACCOUNT, &[][..]);
    assert!(may(&client, server, "patch", ("scs.dev", "secureworkloads/status"), Some(API_NS)).await);
    for verb in ["update", "create", "delete"] {
        assert!(!may(&client, server, verb, ("scs.dev", "secureworkloads/status"), Some(API_NS)).await, "{verb}");
    }
    for verb in ["patch", "update"] {
        assert!(!may(&client, server, verb, ("scs.dev", "secureworkloads"), Some(API_NS)).await, "{verb}");
    }
    // Its ConfigMap right outside scs-system is the CA ConfigMap of tenant namespaces, nothing else.
    let as_server = impersonating(SERVER_ACCOUNT).await;
    let write = |namespace: &str, name: &str, data: Value| {
        let api: Api<ConfigMap> = Api::namespaced(as_server.clone(), namespace);
        let manifest = json!({"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": name, "namespace": namespace}, "data": data});
        let name = name.to_string();
        async move { api.patch(&name, &PatchParams::apply("scs-authz-server").dry_run(), &Patch::Apply(manifest)).await }
    };
    let ca = json!({"ca.crt": "-----BEGIN CERTIFICATE-----"});
    write(API_NS, scs_operator::authz::tls::CA_CONFIGMAP, ca.clone()).await.unwrap();
    refused("another ConfigMap", write(API_NS, "app-settings", ca.clone()).await, &["forbidden"]);
    refused(
        "the CA ConfigMap outside tenant namespaces",
        write("kube-system", scs_operator::authz::tls::CA_CONFIGMAP, ca).await,
        &["scs-authz-server writes ConfigMaps only in scs-system"],
    );
    refused(
        "more than the CA",
        write(API_NS, scs_operator::authz::tls::CA_CONFIGMAP, json!({"ca.crt": "x", "app.env": "y"})).await,
        &["scs-authz-server writes ConfigMaps only in scs-system"],
    );
    delete_tenant(&client, API_NS).await;
}

#[tokio::test]
async fn the_authz_server_grants_a_real_pod_and_revokes_when_it_scales_down() {
    let client = client().await;
    scale_in_cluster_server(&client, 0).await;
    let (provider, provided) = fake_provider().await;
    ready_tenant(
        &client,
        NS,
        json!({"namespaces": [NS], "members": [{"kind": "User", "name": MEMBER, "role": "member"}]}),
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "scs-system");
    apply(
        &secrets,
        "e2e-preauth-cmdb",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "e2e-preauth-cmdb", "namespace": "scs-system"},
               "stringData": {"token": "provider-secret"}}),
    )
    .await;
    apply_dynamic(
        &client,
        &permission_group(
            NS,
            "orders",
            json!([{"name": "orders-db", "provider": "cmdb", "params": {"database": "orders"}}]),
        ),
    )
    .await;
    apply_dynamic(&client, &workload(NS, 1, json!(["orders"]))).await;

    // The operator's pod template: the authorize init container first, the app untouched.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let deployment = until("Deployment web", || async { deployments.get_opt("web").await.ok()? }).await;
    let template = deployment.spec.unwrap().template.spec.unwrap();
    let inits = template.init_containers.unwrap();
    assert_eq!(inits[0].name, INIT_CONTAINER);
    assert_eq!(inits[0].args.as_deref(), Some(&["authorize".to_string()][..]));
    assert_eq!(template.containers[0].command.as_deref(), Some(&["sleep".to_string(), "3600".to_string()][..]));

    // The server, on the host, against this API server.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut config = OperatorConfig::default();
    // A provider the platform opened to another tenant only: this tenant's groups may not use it.
    config.authorization_providers.insert(
        "globex-only".into(),
        AuthorizationProvider {
            endpoint: format!("http://{provider}"),
            credentials_secret: "e2e-preauth-cmdb".into(),
            request_timeout_seconds: 5,
            poll_interval_seconds: 1,
            grant_timeout_seconds: 60,
            tenants: vec!["globex".into()],
        },
    );
    // Built directly: configuration files accept only https providers; the fake one is plain http.
    config.authorization_providers.insert(
        "cmdb".into(),
        AuthorizationProvider {
            endpoint: format!("http://{provider}"),
            credentials_secret: "e2e-preauth-cmdb".into(),
            request_timeout_seconds: 5,
            poll_interval_seconds: 1,
            grant_timeout_seconds: 60,
            tenants: Vec::new(),
        },
    );
    let settings = Settings {
        address,
        namespace: "scs-system".into(),
        replica: "e2e-host".into(),
        check_peer_ip: false,
        sweep_interval: Duration::from_secs(3600),
        // Not reloaded: configuration files accept only https providers (see above).
        config_path: None,
        // TLS as the in-cluster replicas (the default https:// server URL), with their Secret.
        tls_names: OperatorConfig::default().pre_authorization.tls_names(),
    };
    // As its own ServiceAccount: its RBAC and the admission policies are those of the real replicas.
    let as_server = impersonating(SERVER_ACCOUNT).await;
    let server = tokio::spawn(scs_operator::authz::server::run(
        as_server.clone(),
        config.clone(),
        settings.clone(),
        std::future::pending(),
    ));
    until("authz-server listening", || async { tokio::net::TcpStream::connect(address).await.ok().map(|_| ()) }).await;
    let authz = Authz::at(&client, address).await;

    // The pod exists and has an address: the kubelet set it up once the server had written the CA
    // ConfigMap its volume needs. (Its init container cannot reach the Service here: no DNS.)
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pod = until("a pod of web with an IP", || async {
        let list = pods.list(&ListParams::default().labels("scs.dev/workload=web")).await.ok()?;
        list.items.into_iter().find(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some())
    })
    .await;
    let pod_name = pod.name_any();

    // Another identity is refused: a token for another audience, one bound to no pod, and the
    // pod's own token naming another pod.
    let claimed = json!({"namespace": NS, "name": pod_name, "uid": pod.metadata.uid});
    let (status, answer) = authz.authorize(&token(&client, Some(&pod), "not-scs-authz").await, claimed.clone()).await;
    assert_eq!(status, 403, "{answer:?}");
    let (status, answer) = authz.authorize(&token(&client, None, "scs-authz").await, claimed.clone()).await;
    assert_eq!(status, 403, "{answer:?}");
    assert!(answer.message.contains("not bound to a pod"), "{answer:?}");
    let pod_token = token(&client, Some(&pod), "scs-authz").await;
    let (status, answer) = authz.authorize(&pod_token, json!({"namespace": NS, "name": "web-other"})).await;
    assert_eq!(status, 403, "{answer:?}");
    assert!(provided.lock().unwrap().posts.is_empty(), "no grant asked for a refused caller");

    // The pod's own token: granted, with the identity the API server knows.
    let (status, answer) = authz.authorize(&pod_token, claimed).await;
    assert_eq!((status, answer.state.as_str()), (200, "granted"), "{answer:?}");
    {
        let provided = provided.lock().unwrap();
        assert_eq!(provided.posts.len(), 1);
        let asked = &provided.posts[0];
        assert_eq!(asked["pod"]["uid"], json!(pod.metadata.uid));
        assert_eq!(asked["pod"]["ip"], json!(pod.status.as_ref().unwrap().pod_ip));
        assert_eq!((asked["pod"]["tenant"].as_str(), asked["pod"]["workload"].as_str()), (Some(NS), Some("web")));
        assert_eq!(asked["permissionGroup"], format!("{NS}/orders"));
    }
    // The breaker, mirrored into the group's status by the server.
    let groups: Api<scs_operator::api::PermissionGroup> = Api::namespaced(client.clone(), NS);
    let status = groups.get("orders").await.unwrap().status.unwrap_or_default();
    assert_eq!((status.breaker.as_deref(), status.consecutive_failures), (Some("Closed"), Some(0)));
    // A member resets the group's breaker (`kubectl scs authz reset pg/orders`).
    let reset =
        scs_operator::authz::reset::reset(impersonating(MEMBER).await, "pg/orders", Some(NS.into()), "e2e-1".into());
    reset.await.unwrap();
    let annotations = groups.get("orders").await.unwrap().metadata.annotations.unwrap_or_default();
    assert_eq!(annotations.get(scs_operator::api::AUTHZ_RESET_ANNOTATION).map(String::as_str), Some("e2e-1"));
    let live = pods.get(&pod_name).await.unwrap();
    assert!(live.finalizers().iter().any(|f| f == FINALIZER), "{:?}", live.finalizers());
    assert_eq!(live.annotations().get(scs_operator::authz::GRANTS_ANNOTATION).map(String::as_str), Some("granted"));
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "scs-system");
    let record = format!("scs-authz-pod-{}", pod.metadata.uid.clone().unwrap());
    assert!(configmaps.get_opt(&record).await.unwrap().is_some(), "the grant is recorded in scs-system");

    // The summary in the SecureWorkload's status, applied by the server under its own field
    // manager, beside the operator's status fields.
    let workloads: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &scs_resource("SecureWorkload"));
    let summary_of = |object: &DynamicObject| object.data["status"]["preAuthorization"].clone();
    let web = until("web's pre-authorization summary", || async {
        let web = workloads.get("web").await.ok()?;
        (summary_of(&web)["granted"] == 1).then_some(web)
    })
    .await;
    assert_eq!(
        summary_of(&web),
        json!({"pods": 1, "granted": 1, "pending": 0, "failed": 0}),
        "no failure, no open group"
    );
    assert!(web.data["status"]["phase"].is_string(), "the operator's status stays: {:?}", web.data["status"]);
    let managers = status_managers(&web);
    assert!(managers.contains(&("scs-authz-server".into(), vec!["f:preAuthorization".into()])), "{managers:?}");
    assert!(
        managers.iter().all(|(m, fields)| m == "scs-authz-server" || !fields.contains(&"f:preAuthorization".into())),
        "only the server owns the summary: {managers:?}"
    );
    // Its status rights end at the summary (scs-authz-server-status): no faked phase or counts.
    let status = Api::<DynamicObject>::namespaced_with(as_server.clone(), NS, &scs_resource("SecureWorkload"));
    for fake in [json!({"phase": "Failed"}), json!({"readyReplicas": 7}), json!({"conditions": []})] {
        let patch = Patch::Merge(json!({"status": fake}));
        refused(
            "the authz-server fakes a workload's status",
            status.patch_status("web", &PatchParams::default(), &patch).await,
            &["scs-authz-server writes only status.preAuthorization"],
        );
    }

    // A project admin names a provider the platform opened to another tenant: refused before any
    // request, said in the pod's answer, an Event, the group's status and the summary.
    apply_dynamic(&client, &permission_group(NS, "billing", json!([{"name": "ledger", "provider": "globex-only"}])))
        .await;
    apply_dynamic(&client, &named_workload(NS, "api", 1, json!(["billing"]))).await;
    let api_pod = until("a pod of api with an IP", || async {
        let list = pods.list(&ListParams::default().labels("scs.dev/workload=api")).await.ok()?;
        list.items.into_iter().find(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some())
    })
    .await;
    let claimed = json!({"namespace": NS, "name": api_pod.name_any(), "uid": api_pod.metadata.uid});
    let (status, answer) = authz.authorize(&token(&client, Some(&api_pod), "scs-authz").await, claimed).await;
    assert_eq!((status, answer.state.as_str()), (202, "waiting"), "{answer:?}");
    for words in
        [format!("PermissionGroup {NS}/billing"), "\"globex-only\"".into(), format!("not open to tenant \"{NS}\"")]
    {
        assert!(answer.message.contains(&words), "{words}: {answer:?}");
    }
    assert_eq!(provided.lock().unwrap().posts.len(), 1, "the provider was not asked");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), NS);
    let warned = events.list(&ListParams::default()).await.unwrap().items.into_iter().any(|e| {
        e.reason.as_deref() == Some("ProviderNotAllowed")
            && e.type_.as_deref() == Some("Warning")
            && e.regarding.as_ref().and_then(|r| r.uid.as_deref()) == api_pod.metadata.uid.as_deref()
            && e.note.as_deref().is_some_and(|n| n.contains("billing") && n.contains("globex-only") && n.contains(NS))
    });
    assert!(warned, "a Warning Event ProviderNotAllowed names the group, provider and tenant");
    let billing = groups.get("billing").await.unwrap().status.unwrap_or_default();
    let allowed = billing.conditions.iter().find(|c| c.type_ == "ProvidersAllowed").expect("ProvidersAllowed");
    assert_eq!((allowed.status.as_str(), allowed.reason.as_str()), ("False", "ProviderNotAllowed"));
    assert!(allowed.message.contains("globex-only"), "{allowed:?}");
    assert_eq!(billing.breaker.as_deref(), Some("Closed"), "not the provider's failure");
    let orders = groups.get("orders").await.unwrap().status.unwrap_or_default();
    assert!(orders.conditions.iter().any(|c| c.type_ == "ProvidersAllowed" && c.status == "True"), "{orders:?}");
    let api = until("api's summary", || async {
        let api = workloads.get("api").await.ok()?;
        (summary_of(&api)["failed"] == 1).then_some(api)
    })
    .await;
    assert_eq!((summary_of(&api)["pods"].as_i64(), summary_of(&api)["granted"].as_i64()), (Some(1), Some(0)));
    let last = summary_of(&api)["lastFailure"].as_str().unwrap_or_default().to_string();
    assert!(last.contains(&api_pod.name_any()) && last.contains("not open to tenant"), "{last}");
    apply_dynamic(&client, &named_workload(NS, "api", 0, json!(["billing"]))).await;
    let api_name = api_pod.name_any();
    until("the api pod released", || async { pods.get_opt(&api_name).await.ok()?.is_none().then_some(()) }).await;

    // A tenant member cannot strip the finalizer (the grant would outlive the pod).
    let strip = json!({"metadata": {"finalizers": null}});
    refused(
        "member strips the finalizer",
        Api::<Pod>::namespaced(impersonating(MEMBER).await, NS)
            .patch(&pod_name, &PatchParams::default(), &Patch::Merge(strip))
            .await,
        &["scs-tenant-pod-grants"],
    );

    // Scale down: the pod goes only after its grant is revoked, exactly once.
    apply_dynamic(&client, &workload(NS, 0, json!(["orders"]))).await;
    until("the pod gone", || async { pods.get_opt(&pod_name).await.ok()?.is_none().then_some(()) }).await;
    assert_eq!(provided.lock().unwrap().deletes, ["grant-1"]);
    assert!(configmaps.get_opt(&record).await.unwrap().is_none(), "the record goes with the grant");
    // The operator wrote its status for the new generation after the summary was first written,
    // and the server wrote the summary again after that: both stand.
    let web = until("web's summary at 0 pods, the operator's status current", || async {
        let web = workloads.get("web").await.ok()?;
        let current = web.data["status"]["observedGeneration"].as_i64() == web.metadata.generation;
        (current && summary_of(&web)["pods"] == 0).then_some(web)
    })
    .await;
    assert_eq!(summary_of(&web), json!({"pods": 0, "granted": 0, "pending": 0, "failed": 0}));
    assert!(web.data["status"]["phase"].is_string() && web.data["status"]["conditions"].is_array());
    // Writes are coalesced and only made on change: nothing more once nothing changes.
    let writes = authz.metric("scs_authz_summary_writes_total").await;
    tokio::time::sleep(scs_operator::authz::server::SUMMARY_INTERVAL * 3).await;
    assert_eq!(authz.metric("scs_authz_summary_writes_total").await, writes, "no write without a change");
    eprintln!("summary writes so far (2 workloads, 4 authorize calls, 2 revocations): {writes}");

    // The provider is down when the next pod goes: after the bounded retries the pod is released
    // anyway, with a Warning Event naming the grant to revoke by hand.
    apply_dynamic(&client, &workload(NS, 1, json!(["orders"]))).await;
    let pod = until("a new pod of web with an IP", || async {
        let list = pods.list(&ListParams::default().labels("scs.dev/workload=web")).await.ok()?;
        list.items.into_iter().find(|p| {
            p.name_any() != pod_name
                && p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some()
        })
    })
    .await;
    let claimed = json!({"namespace": NS, "name": pod.name_any(), "uid": pod.metadata.uid});
    let (status, answer) = authz.authorize(&token(&client, Some(&pod), "scs-authz").await, claimed).await;
    assert_eq!(status, 200, "{answer:?}");
    provided.lock().unwrap().delete_down = true;
    apply_dynamic(&client, &workload(NS, 0, json!(["orders"]))).await;
    let second = pod.name_any();
    until("the second pod released", || async { pods.get_opt(&second).await.ok()?.is_none().then_some(()) }).await;
    assert_eq!(provided.lock().unwrap().deletes, ["grant-1"], "grant-2 could not be revoked");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), NS);
    let warned = events.list(&ListParams::default()).await.unwrap().items.into_iter().any(|e| {
        e.reason.as_deref() == Some("RevocationFailed")
            && e.type_.as_deref() == Some("Warning")
            && e.regarding.as_ref().and_then(|r| r.uid.as_deref()) == pod.metadata.uid.as_deref()
            && e.note.as_deref().is_some_and(|n| n.contains("cmdb/grant-2"))
    });
    assert!(warned, "a Warning Event RevocationFailed names the grant left behind");

    server.abort();

    // The whole path on the kubelet: a server on this host, reachable from pods (see below), checks
    // that the call comes from the pod's own address.
    let gateway = address_from_pods(pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()).unwrap());
    let settings = Settings {
        address: SocketAddr::new(gateway, server_url_port()),
        replica: "e2e-host-pods".into(),
        check_peer_ip: true,
        ..settings
    };
    let server = tokio::spawn(scs_operator::authz::server::run(as_server, config, settings, std::future::pending()));
    provided.lock().unwrap().delete_down = false;
    if std::env::var_os("SCS_E2E_PODS_REACH_HOST").is_some() {
        app_starts_after_the_grant(&client, gateway, &provided).await;
    } else {
        eprintln!(
            "NOT RUN: the init container's path on the kubelet needs pods to reach this host from their own \
             address (e2e/localkube.sh sets SCS_E2E_PODS_REACH_HOST=1; kind's pods are masqueraded)"
        );
    }

    server.abort();
    let _ = secrets.delete("e2e-preauth-cmdb", &Default::default()).await;
    delete_tenant(&client, NS).await;
    scale_in_cluster_server(&client, 2).await;
}

/// This host's address as pods reach it: the source address of its route to a pod (localkube: the
/// bridge's gateway, not masqueraded, so the server sees the pod's own IP). `SCS_E2E_ADDRESS_FROM_PODS`
/// overrides it where pods reach the test host some other way.
fn address_from_pods(pod_ip: &str) -> std::net::IpAddr {
    if let Ok(address) = std::env::var("SCS_E2E_ADDRESS_FROM_PODS") {
        return address.parse().expect("SCS_E2E_ADDRESS_FROM_PODS is an IP address");
    }
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket.connect((pod_ip, 9)).unwrap();
    socket.local_addr().unwrap().ip()
}

/// The authz-server URL the operator writes into pods (the in-cluster Service) and its port.
fn server_url_host() -> String {
    let url = OperatorConfig::default().pre_authorization.server_url;
    url.parse::<hyper::Uri>().unwrap().host().unwrap().to_string()
}

fn server_url_port() -> u16 {
    OperatorConfig::default().pre_authorization.server_port() as u16
}

fn unix_seconds() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A SecureWorkload's pod, made by its ReplicaSet, runs the real `scs-authorize` init container
/// (the operator image loaded into the node). localkube has no DNS and no kube-proxy, so the pod's
/// `hostAliases` resolve the Service's name to this host, where the server runs; nothing else in
/// the pod or the path differs from a cluster's. The provider holds the grant pending: the init
/// container keeps asking, the app container does not start; once granted, it starts. Scaling to
/// 0 revokes that grant once.
async fn app_starts_after_the_grant(client: &Client, gateway: std::net::IpAddr, provided: &Mutex<Provided>) {
    let (posts, polls) = {
        let mut provided = provided.lock().unwrap();
        provided.hold = true;
        (provided.posts.len(), provided.polls)
    };
    let mut manifest = named_workload(NS, "checkout", 1, json!(["orders"]));
    manifest["spec"]["template"]["spec"]["hostAliases"] =
        json!([{"ip": gateway.to_string(), "hostnames": [server_url_host()]}]);
    apply_dynamic(client, &manifest).await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let of_checkout = ListParams::default().labels("scs.dev/workload=checkout");
    // Asked for and polled again: the init container called, was told to wait, and called again.
    let (pod, grant) = until("checkout's grant asked and held pending", || async {
        let pod = pods.list(&of_checkout).await.ok()?.items.into_iter().next()?;
        let provided = provided.lock().unwrap();
        let index = provided.posts[posts..].iter().position(|a| a["pod"]["uid"] == json!(pod.metadata.uid))?;
        (provided.polls >= polls + 2).then(|| (pod, format!("grant-{}", posts + index + 1)))
    })
    .await;
    let name = pod.name_any();
    let live = pods.get(&name).await.unwrap();
    let status = live.status.clone().unwrap();
    let init = &status.init_container_statuses.as_ref().unwrap()[0];
    assert_eq!(init.name, INIT_CONTAINER);
    assert!(init.state.as_ref().and_then(|s| s.running.as_ref()).is_some(), "the init container waits: {init:?}");
    let app = &status.container_statuses.as_ref().unwrap()[0];
    assert!(
        app.state.as_ref().and_then(|s| s.running.as_ref()).is_none() && app.started != Some(true),
        "the app container has not started while the grant is pending: {app:?}"
    );
    let shown = live.annotations().get(scs_operator::authz::GRANTS_ANNOTATION).cloned().unwrap_or_default();
    assert!(shown.starts_with("waiting") && shown.contains("pending"), "{shown}");
    // The init container verified the server with the CA the server wrote into the namespace.
    let server = SocketAddr::new(gateway, server_url_port());
    let authz = Authz::at(client, server).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let published = configmaps.get(scs_operator::authz::tls::CA_CONFIGMAP).await.unwrap().data.unwrap();
    assert_eq!(published[scs_operator::authz::tls::CA_FILE].as_bytes(), authz.ca, "the CA of the server's Secret");
    // The pod's own token, presented from another address (this host), is refused.
    let claimed = json!({"namespace": NS, "name": name, "uid": live.metadata.uid});
    let (status, answer) = authz.authorize(&token(client, Some(&live), "scs-authz").await, claimed).await;
    assert_eq!(status, 403, "{answer:?}");
    assert!(answer.message.contains("the call comes from"), "{answer:?}");

    let granted_at = unix_seconds();
    provided.lock().unwrap().hold = false;
    let started = until("checkout's app container running", || async {
        let status = pods.get(&name).await.ok()?.status?;
        let app = status.container_statuses?.into_iter().find(|c| c.name == "main")?;
        app.state?.running?.started_at
    })
    .await;
    assert!(started.0.as_second() >= granted_at, "the app started at {started:?}, granted at {granted_at}");
    let live = pods.get(&name).await.unwrap();
    let init = live.status.unwrap().init_container_statuses.unwrap().remove(0);
    let done = init.state.and_then(|s| s.terminated).expect("the init container ended");
    assert_eq!(done.exit_code, 0, "{done:?}");
    assert_eq!(
        live.metadata.annotations.unwrap_or_default().get(scs_operator::authz::GRANTS_ANNOTATION).map(String::as_str),
        Some("granted")
    );
    let logs = pods
        .logs(&name, &kube::api::LogParams { container: Some(INIT_CONTAINER.into()), ..Default::default() })
        .await
        .unwrap();
    assert!(logs.contains("waiting (HTTP 202)") && logs.contains("authorized"), "{logs}");

    manifest["spec"]["replicas"] = json!(0);
    apply_dynamic(client, &manifest).await;
    until("the checkout pod gone", || async { pods.get_opt(&name).await.ok()?.is_none().then_some(()) }).await;
    let revoked = provided.lock().unwrap().deletes.iter().filter(|id| **id == grant).count();
    assert_eq!(revoked, 1, "{grant} revoked once");
}
