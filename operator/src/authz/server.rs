//! `scs-operator authz-server`: the Kubernetes side of pre-authorization. An HTTP endpoint for the
//! init containers (`POST /v1/authorize`), a pod controller that revokes the grants of deleted
//! pods and releases their finalizer, and a sweep that revokes the grants of pods that went
//! without it. Leader-free: every replica serves and revokes; records in ConfigMaps of its own
//! namespace, guarded by resourceVersion, keep them from acting twice.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{debug, info, warn};

use super::breaker::Breaker;
use super::engine::{self, Answer, Conflict, Engine, GroupSpec, Note, PodRecord, ProviderSettings, Revocation, Store};
use super::identity::{self, Claimed, Reviewed};
use super::provider::Provider;
use super::summary::{self, Dirty};
use super::tls::{self, ServingCert};
use super::tls_store;
use super::{FINALIZER, GRANTS_ANNOTATION};
use crate::api::{AUTHZ_RESET_ANNOTATION, PRE_AUTHORIZATION_STATUS, PermissionGroup, SecureWorkload};
use crate::builders::labels;
use crate::clock::Clock;
use crate::config::OperatorConfig;
use crate::controller::conditions;

/// ConfigMap holding every group's breaker.
pub const BREAKERS_CONFIGMAP: &str = "scs-authz-breakers";
/// Label of the per-pod record ConfigMaps.
pub const RECORD_LABEL: &str = "scs.dev/authz-record";
/// Key of the record in a record ConfigMap.
const RECORD_KEY: &str = "record";
/// Labels of a record ConfigMap naming the pod's namespace and SecureWorkload, so one workload's
/// records are listed by selector (not `scs.dev/workload`: the operator's child watches key on it).
pub const RECORD_NAMESPACE_LABEL: &str = "scs.dev/authz-namespace";
pub const RECORD_WORKLOAD_LABEL: &str = "scs.dev/authz-workload";
/// Field manager of the SecureWorkload status summary (server-side apply): the operator's own
/// status apply (`scs-operator`) never names `status.preAuthorization`, so neither wipes the other.
pub const SUMMARY_MANAGER: &str = "scs-authz-server";
/// Least time between two summary writes of one workload by one replica: pod events only mark
/// the workload; a flush this often writes what changed.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(5);
/// Condition on a PermissionGroup: whether every permission's provider may be used by the group's
/// tenant (`authorizationProviders.<name>.tenants`) and is configured at all.
pub const PROVIDERS_ALLOWED: &str = "ProvidersAllowed";

/// `(group, resource, verbs)` the server uses cluster-wide; `manifests/base/authz-server.yaml`
/// grants exactly these (operator/tests/manifests.rs).
pub const CLUSTER_GRANTS: &[(&str, &str, &[&str])] = &[
    ("authentication.k8s.io", "tokenreviews", &["create"]),
    ("", "pods", &["get", "list", "watch", "patch"]),
    ("", "namespaces", &["get"]),
    ("scs.dev", "secureworkloads", &["get"]),
    ("scs.dev", "permissiongroups", &["get"]),
    ("scs.dev", "permissiongroups/status", &["patch"]),
    ("scs.dev", "secureworkloads/status", &["patch"]),
    ("events.k8s.io", "events", &["create", "patch"]),
    // The CA ConfigMap's first apply is a create, which RBAC cannot limit by name: the admission
    // policy scs-authz-server-configmaps does.
    ("", "configmaps", &["create"]),
];
/// What it uses in its own namespace.
/// Secrets: providers' credentials (get) and its own certificate (create, or update to renew).
pub const NAMESPACE_GRANTS: &[(&str, &str, &[&str])] = &[
    ("", "configmaps", &["get", "list", "create", "update", "delete"]),
    ("", "secrets", &["get", "create", "update"]),
];
/// `(group, resource, verbs, names)` it uses cluster-wide on named objects only: the CA ConfigMap
/// in the namespaces of pods that call it (server-side apply; the admission policy
/// `scs-authz-server-configmaps` holds it and the create above to tenant namespaces and the CA).
pub const CLUSTER_NAMED_GRANTS: &[(&str, &str, &[&str], &[&str])] =
    &[("", "configmaps", &["patch"], &[super::tls::CA_CONFIGMAP])];

/// Settings of one server process.
#[derive(Clone, Debug)]
pub struct Settings {
    pub address: SocketAddr,
    pub namespace: String,
    pub replica: String,
    /// Refuse callers whose address is not their pod's IP. Off only when the server runs outside
    /// the pod network (tests on the host).
    pub check_peer_ip: bool,
    pub sweep_interval: Duration,
    /// The operator config file the providers came from, read again every
    /// [`PROVIDERS_RELOAD_INTERVAL`] (with the providers' Secrets) so that a changed allow-list,
    /// endpoint or credential applies without a restart. `None`: the defaults, never reloaded.
    pub config_path: Option<std::path::PathBuf>,
    /// Names of the server certificate (the host of `preAuthorization.serverUrl`); empty: plain
    /// HTTP (an `http://` server URL).
    pub tls_names: Vec<String>,
}

/// How long a caller has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the providers are read again (the kubelet refreshes a mounted ConfigMap within
/// about a minute of its change).
pub const PROVIDERS_RELOAD_INTERVAL: Duration = Duration::from_secs(30);

/// Reads the providers again from `path` and their Secrets; replaces them when they changed.
/// On an error the ones in use stay (a config being edited must not unconfigure every provider).
pub async fn reload_providers(client: &Client, settings: &Settings, current: &engine::Providers) {
    let Some(path) = &settings.config_path else { return };
    let config = match OperatorConfig::from_file(path) {
        Ok(config) => config,
        Err(error) => {
            warn!(%error, path = %path.display(), "operator config unreadable; the providers in use stay");
            return;
        }
    };
    match providers(client, &settings.namespace, &config).await {
        Ok(providers) => {
            let names: Vec<String> = providers.keys().cloned().collect();
            if current.replace(providers) {
                info!(?names, "authorization providers reloaded");
            }
        }
        Err(error) => warn!(%error, "authorization providers not reloaded; the ones in use stay"),
    }
}

/// Records and breakers in ConfigMaps of the server's namespace.
pub struct KubeStore {
    configmaps: Api<ConfigMap>,
}

fn record_name(uid: &str) -> String {
    format!("scs-authz-pod-{uid}")
}

/// The HTTP status of an API error.
pub(super) fn status_of(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

impl Store for KubeStore {
    async fn get_record(&self, uid: &str) -> Result<Option<(PodRecord, String)>, String> {
        let Some(map) = self.configmaps.get_opt(&record_name(uid)).await.map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let text = map.data.as_ref().and_then(|d| d.get(RECORD_KEY)).cloned().unwrap_or_default();
        let record = serde_json::from_str(&text).map_err(|e| format!("record of pod {uid}: {e}"))?;
        Ok(Some((record, map.resource_version().unwrap_or_default())))
    }

    async fn put_record(
        &self,
        uid: &str,
        record: &PodRecord,
        version: Option<&str>,
    ) -> Result<Result<String, Conflict>, String> {
        let mut map = ConfigMap::default();
        map.metadata.name = Some(record_name(uid));
        let mut record_labels = BTreeMap::from([
            (RECORD_LABEL.to_string(), "true".to_string()),
            (labels::MANAGED_BY.to_string(), labels::OPERATOR.to_string()),
        ]);
        // Namespace and workload names are label-sized (the workload's is a pod label already).
        for (key, value) in
            [(RECORD_NAMESPACE_LABEL, &record.pod.namespace), (RECORD_WORKLOAD_LABEL, &record.pod.workload)]
        {
            if !value.is_empty() && value.len() <= 63 {
                record_labels.insert(key.to_string(), value.clone());
            }
        }
        map.metadata.labels = Some(record_labels);
        map.metadata.resource_version = version.map(String::from);
        let text = serde_json::to_string(record).map_err(|e| e.to_string())?;
        map.data = Some(BTreeMap::from([(RECORD_KEY.to_string(), text)]));
        let result = match version {
            None => self.configmaps.create(&PostParams::default(), &map).await,
            Some(_) => self.configmaps.replace(&record_name(uid), &PostParams::default(), &map).await,
        };
        match result {
            Ok(map) => Ok(Ok(map.resource_version().unwrap_or_default())),
            Err(e) if status_of(&e) == Some(409) => Ok(Err(Conflict)),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn delete_record(&self, uid: &str) -> Result<(), String> {
        match self.configmaps.delete(&record_name(uid), &Default::default()).await {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn get_breaker(&self, key: &str) -> Result<Breaker, String> {
        let map = self.configmaps.get_opt(BREAKERS_CONFIGMAP).await.map_err(|e| e.to_string())?;
        let text = map.and_then(|m| m.data).and_then(|d| d.get(key).cloned());
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default())
    }

    async fn update_breaker(
        &self,
        key: &str,
        change: &(dyn Fn(&mut Breaker) -> bool + Send + Sync),
    ) -> Result<Breaker, String> {
        for _ in 0..8 {
            let current = self.configmaps.get_opt(BREAKERS_CONFIGMAP).await.map_err(|e| e.to_string())?;
            let exists = current.is_some();
            let mut map = current.unwrap_or_default();
            map.metadata.name = Some(BREAKERS_CONFIGMAP.into());
            map.metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .insert(labels::MANAGED_BY.into(), labels::OPERATOR.into());
            let data = map.data.get_or_insert_with(BTreeMap::new);
            let mut breaker: Breaker = data.get(key).and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
            if !change(&mut breaker) {
                return Ok(breaker);
            }
            data.insert(key.to_string(), serde_json::to_string(&breaker).map_err(|e| e.to_string())?);
            let result = if exists {
                self.configmaps.replace(BREAKERS_CONFIGMAP, &PostParams::default(), &map).await
            } else {
                self.configmaps.create(&PostParams::default(), &map).await
            };
            match result {
                Ok(_) => return Ok(breaker),
                Err(e) if status_of(&e) == Some(409) => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(format!("breaker {key}: too many concurrent updates"))
    }
}

/// What the init container sends.
#[derive(Deserialize, Serialize, Default, Debug)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthorizeRequest {
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub uid: Option<String>,
}

/// What the init container is told.
#[derive(Deserialize, Serialize, Default, Debug, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthorizeResponse {
    /// `granted`, `waiting` or `refused`.
    pub state: String,
    pub retry_after_seconds: u64,
    pub message: String,
}

struct Server {
    client: Client,
    engine: Engine<KubeStore>,
    audience: String,
    settings: Settings,
    reporter: Reporter,
    /// Workloads whose status summary is to be looked at by the next flush.
    dirty: Dirty,
    summary_writes: std::sync::atomic::AtomicU64,
    /// The certificate served (TLS only).
    serving_cert: Option<Arc<ServingCert>>,
    /// Where this replica wrote the CA ConfigMap.
    published: tls_store::Published,
}

/// Reads the providers' credentials (the `token` key of each provider's Secret).
async fn providers(
    client: &Client,
    namespace: &str,
    config: &OperatorConfig,
) -> anyhow::Result<BTreeMap<String, ProviderSettings>> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut providers = BTreeMap::new();
    for (name, provider) in &config.authorization_providers {
        let secret = secrets.get(&provider.credentials_secret).await.map_err(|e| {
            anyhow::anyhow!(
                "authorizationProviders.{name}.credentialsSecret: Secret {namespace}/{}: {e}",
                provider.credentials_secret
            )
        })?;
        let token = secret
            .data
            .as_ref()
            .and_then(|d| d.get("token"))
            .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
            .ok_or_else(|| anyhow::anyhow!("Secret {namespace}/{} has no key token", provider.credentials_secret))?;
        providers.insert(
            name.clone(),
            ProviderSettings {
                provider: Provider {
                    endpoint: provider.endpoint.clone(),
                    token,
                    request_timeout: Duration::from_secs(provider.request_timeout_seconds.into()),
                },
                poll_interval: Duration::from_secs(provider.poll_interval_seconds.into()),
                grant_timeout: Duration::from_secs(provider.grant_timeout_seconds.into()),
                tenants: provider.tenants.clone(),
            },
        );
    }
    Ok(providers)
}

/// Runs the server until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: OperatorConfig,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let providers = providers(&client, &settings.namespace, &config).await?;
    let engine = Engine {
        store: KubeStore { configmaps: Api::namespaced(client.clone(), &settings.namespace) },
        providers: engine::Providers::new(providers),
        clock: Clock::system(),
        backoff: Default::default(),
        jitter: super::backoff::random_fraction,
        replica: settings.replica.clone(),
        counters: Default::default(),
    };
    let serving_cert =
        if settings.tls_names.is_empty() { None } else { Some(first_certificate(&client, &settings).await) };
    let acceptor = match &serving_cert {
        Some(cert) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
            tls::server_config(cert.clone()).map_err(|e| anyhow::anyhow!("TLS configuration: {e}"))?,
        ))),
        None => None,
    };
    let server = Arc::new(Server {
        serving_cert,
        published: Default::default(),
        client: client.clone(),
        engine,
        audience: config.pre_authorization.token_audience.clone(),
        reporter: Reporter { controller: "scs-authz-server".into(), instance: Some(settings.replica.clone()) },
        settings: settings.clone(),
        dirty: Dirty::default(),
        summary_writes: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind(settings.address).await?;
    info!(address = %settings.address, "authz-server listening");
    let serving = {
        let server = server.clone();
        async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else { continue };
                let server = server.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        Some(acceptor) => match tls::accept(&acceptor, stream, HANDSHAKE_TIMEOUT).await {
                            Ok(stream) => serve_connection(server, stream, peer).await,
                            Err(error) => debug!(%peer, %error, "no TLS connection"),
                        },
                        None => serve_connection(server, stream, peer).await,
                    }
                });
            }
        }
    };
    let revoking = {
        let server = server.clone();
        Controller::new(Api::<Pod>::all(client.clone()), watcher::Config::default())
            .graceful_shutdown_on(shutdown)
            .run(
                |pod, server: Arc<Server>| async move { Ok::<_, kube::Error>(server.on_pod(&pod).await) },
                |_, _, _| Action::requeue(Duration::from_secs(30)),
                server,
            )
            .for_each(|_| async {})
    };
    let sweeping = {
        let server = server.clone();
        async move {
            loop {
                tokio::time::sleep(server.settings.sweep_interval).await;
                if let Err(error) = server.sweep().await {
                    warn!(%error, "sweep of grant records failed");
                }
            }
        }
    };
    let summarizing = {
        let server = server.clone();
        async move {
            loop {
                tokio::time::sleep(SUMMARY_INTERVAL).await;
                server.flush_summaries().await;
            }
        }
    };
    let reloading = {
        let server = server.clone();
        async move {
            loop {
                tokio::time::sleep(PROVIDERS_RELOAD_INTERVAL).await;
                reload_providers(&server.client, &server.settings, &server.engine.providers).await;
                if let Some(cert) = &server.serving_cert {
                    let names = &server.settings.tls_names;
                    if let Err(error) =
                        tls_store::refresh(&server.client, &server.settings.namespace, names, cert).await
                    {
                        warn!(%error, "the certificate was not read again; the one in use stays");
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = serving => {}
        _ = revoking => {}
        _ = sweeping => {}
        _ = summarizing => {}
        _ = reloading => {}
    }
    Ok(())
}

/// The certificate to serve with, before the server listens (without one it could answer nobody).
async fn first_certificate(client: &Client, settings: &Settings) -> Arc<ServingCert> {
    let cert = Arc::new(ServingCert::default());
    while let Err(error) = tls_store::refresh(client, &settings.namespace, &settings.tls_names, &cert).await {
        warn!(%error, "no certificate to serve with yet; trying again in 5s");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    cert
}

async fn serve_connection<I>(server: Arc<Server>, stream: I, peer: SocketAddr)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let server = server.clone();
        async move { Ok::<_, hyper::Error>(server.handle(request, peer).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
}

fn reply(status: u16, body: &AuthorizeResponse) -> hyper::Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .unwrap_or_default()
}

fn refused(message: String) -> hyper::Response<Full<Bytes>> {
    reply(403, &AuthorizeResponse { state: "refused".into(), retry_after_seconds: 0, message })
}

impl Server {
    async fn handle(
        &self,
        request: hyper::Request<hyper::body::Incoming>,
        peer: SocketAddr,
    ) -> hyper::Response<Full<Bytes>> {
        match (request.method().as_str(), request.uri().path()) {
            ("GET", "/healthz") => return hyper::Response::new(Full::new(Bytes::from_static(b"ok"))),
            ("GET", "/metrics") => return hyper::Response::new(Full::new(Bytes::from(self.metrics()))),
            ("POST", "/v1/authorize") => {}
            _ => return hyper::Response::builder().status(404).body(Full::default()).unwrap_or_default(),
        }
        let token = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        let Some(token) = token else { return refused("no bearer token".into()) };
        let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let claimed: AuthorizeRequest = serde_json::from_slice(&body).unwrap_or_default();
        let peer_ip = self.settings.check_peer_ip.then(|| peer.ip().to_string());
        match self.authorize(&token, claimed, peer_ip.as_deref()).await {
            Ok(Answer::Granted) => reply(200, &AuthorizeResponse { state: "granted".into(), ..Default::default() }),
            Ok(Answer::Waiting { retry_after, message }) => reply(
                202,
                &AuthorizeResponse {
                    state: "waiting".into(),
                    retry_after_seconds: retry_after.as_secs().max(1),
                    message,
                },
            ),
            Err(Refusal::Identity(message)) => {
                warn!(%message, %peer, "authorize refused");
                refused(message)
            }
            Err(Refusal::Internal(message)) => {
                warn!(%message, "authorize failed");
                reply(503, &AuthorizeResponse { state: "waiting".into(), retry_after_seconds: 10, message })
            }
        }
    }

    async fn authorize(
        &self,
        token: &str,
        claimed: AuthorizeRequest,
        peer_ip: Option<&str>,
    ) -> Result<Answer, Refusal> {
        let review = TokenReview {
            spec: TokenReviewSpec { token: Some(token.to_string()), audiences: Some(vec![self.audience.clone()]) },
            ..Default::default()
        };
        let review = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| Refusal::Internal(format!("TokenReview: {e}")))?;
        let status = review.status.unwrap_or_default();
        let user = status.user.unwrap_or_default();
        let extra = user.extra.unwrap_or_default();
        let first = |key: &str| extra.get(key).and_then(|v| v.first()).cloned();
        let reviewed = Reviewed {
            authenticated: status.authenticated == Some(true),
            audiences: status.audiences.unwrap_or_default(),
            username: user.username.unwrap_or_default(),
            pod_name: first(identity::POD_NAME_EXTRA),
            pod_uid: first(identity::POD_UID_EXTRA),
        };
        // The pod the token is bound to, in the ServiceAccount's namespace.
        let namespace = reviewed
            .username
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'))
            .map(|(ns, _)| ns.to_string())
            .ok_or_else(|| Refusal::Identity("the token is not a ServiceAccount's".into()))?;
        let pod_name =
            reviewed.pod_name.clone().ok_or_else(|| Refusal::Identity("the token is not bound to a pod".into()))?;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let pod = pods
            .get_opt(&pod_name)
            .await
            .map_err(|e| Refusal::Internal(e.to_string()))?
            .ok_or_else(|| Refusal::Identity(format!("pod {namespace}/{pod_name} does not exist")))?;
        let claimed = Claimed { namespace: claimed.namespace, name: claimed.name, uid: claimed.uid };
        let mut identity =
            identity::verify(&reviewed, &self.audience, &claimed, &pod, peer_ip).map_err(Refusal::Identity)?;

        // The groups come from the pod's SecureWorkload, never from the request.
        let workload_name = pod
            .labels()
            .get(labels::WORKLOAD)
            .cloned()
            .ok_or_else(|| Refusal::Identity(format!("pod {namespace}/{pod_name} belongs to no SecureWorkload")))?;
        let workload = Api::<SecureWorkload>::namespaced(self.client.clone(), &namespace)
            .get_opt(&workload_name)
            .await
            .map_err(|e| Refusal::Internal(e.to_string()))?
            .ok_or_else(|| Refusal::Identity(format!("SecureWorkload {namespace}/{workload_name} does not exist")))?;
        let names = workload.spec.pre_authorization.map(|p| p.permission_groups).unwrap_or_default();
        let tenant = Api::<Namespace>::all(self.client.clone())
            .get(&namespace)
            .await
            .ok()
            .and_then(|n| n.labels().get(labels::TENANT).cloned())
            .unwrap_or_default();
        identity.tenant = tenant;
        identity.workload = workload_name;

        // No grant without the finalizer that revokes it.
        if !pod.finalizers().iter().any(|f| f == FINALIZER) {
            let patch = json!({"metadata": {"finalizers": [FINALIZER]}});
            pods.patch(&pod_name, &PatchParams::default(), &Patch::Strategic(patch))
                .await
                .map_err(|e| Refusal::Internal(format!("adding the finalizer: {e}")))?;
        }

        let groups_api: Api<PermissionGroup> = Api::namespaced(self.client.clone(), &namespace);
        let mut groups = Vec::new();
        for name in &names {
            let Some(group) = groups_api.get_opt(name).await.map_err(|e| Refusal::Internal(e.to_string()))? else {
                return Ok(Answer::Waiting {
                    retry_after: Duration::from_secs(30),
                    message: format!("PermissionGroup {namespace}/{name} does not exist"),
                });
            };
            groups.push(GroupSpec {
                namespace: namespace.clone(),
                name: name.clone(),
                reset: group.annotations().get(AUTHZ_RESET_ANNOTATION).cloned(),
                permissions: group.spec.permissions,
            });
        }
        let mut notes = Vec::new();
        let answer = self.engine.authorize(&identity, &groups, &mut notes).await.map_err(Refusal::Internal)?;
        self.dirty.mark(&namespace, &identity.workload);
        let providers = self.engine.providers.current();
        for group in &groups {
            let unusable: Vec<String> = group
                .permissions
                .iter()
                .filter_map(|p| engine::unusable(&providers, group, p, &identity.tenant))
                .collect();
            self.publish_group_status(&groups_api, &namespace, &group.name, &identity.tenant, &unusable).await;
        }
        for note in notes {
            self.event(&pod, &note).await;
        }
        // Progress for `kubectl describe pod` (display only: the record is the server's).
        let summary = match &answer {
            Answer::Granted => "granted".to_string(),
            Answer::Waiting { message, .. } => format!("waiting: {}", message.chars().take(300).collect::<String>()),
        };
        if pod.annotations().get(GRANTS_ANNOTATION) != Some(&summary) {
            let patch = json!({"metadata": {"annotations": {GRANTS_ANNOTATION: summary}}});
            if let Err(error) = pods.patch(&pod_name, &PatchParams::default(), &Patch::Merge(patch)).await {
                warn!(%error, "could not annotate the pod");
            }
        }
        Ok(answer)
    }

    /// Mirrors the group's breaker (kept in scs-system) into its status, and whether its
    /// providers are open to the tenant (`ProvidersAllowed`), when either differs.
    async fn publish_group_status(
        &self,
        groups: &Api<PermissionGroup>,
        namespace: &str,
        name: &str,
        tenant: &str,
        unusable: &[String],
    ) {
        let Ok(breaker) = self.engine.store.get_breaker(&Breaker::key(namespace, name)).await else { return };
        let Ok(Some(group)) = groups.get_opt(name).await else { return };
        let status = group.status.unwrap_or_default();
        let failures = i32::try_from(breaker.failures).unwrap_or(i32::MAX);
        let allowed = if unusable.is_empty() {
            let message = format!("every provider is open to tenant {tenant:?}");
            conditions::condition(PROVIDERS_ALLOWED, true, "Allowed", message, group.metadata.generation)
        } else {
            let message = unusable.join("; ");
            conditions::condition(PROVIDERS_ALLOWED, false, "ProviderNotAllowed", message, group.metadata.generation)
        };
        // Other conditions stay as they are, in place; ours keeps its transition time while
        // unchanged.
        let allowed = conditions::merge(&status.conditions, vec![allowed]).remove(0);
        let mut next = status.conditions.clone();
        match next.iter_mut().find(|c| c.type_ == PROVIDERS_ALLOWED) {
            Some(current) => *current = allowed,
            None => next.push(allowed),
        }
        if status.breaker.as_deref() == Some(breaker.state())
            && status.consecutive_failures == Some(failures)
            && status.last_failure == breaker.last_failure
            && conditions::same(&status.conditions, &next)
        {
            return;
        }
        let patch = json!({"status": {
            "breaker": breaker.state(),
            "consecutiveFailures": failures,
            "lastFailure": breaker.last_failure,
            "conditions": next,
        }});
        if let Err(error) = groups.patch_status(name, &PatchParams::default(), &Patch::Merge(patch)).await {
            warn!(%error, group = name, "could not write the PermissionGroup status");
        }
    }

    async fn event(&self, pod: &Pod, note: &Note) {
        let event = Event {
            type_: if note.warning { EventType::Warning } else { EventType::Normal },
            reason: note.reason.into(),
            note: Some(note.message.clone()),
            action: "Authorize".into(),
            secondary: None,
        };
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        if let Err(error) = recorder.publish(&event, &pod.object_ref(&())).await {
            warn!(%error, "could not record event");
        }
    }

    /// A pod changed: when it is being deleted and carries our finalizer, revoke and release;
    /// otherwise, when it will call, see that its namespace holds the CA ConfigMap.
    async fn on_pod(&self, pod: &Pod) -> Action {
        if pod.metadata.deletion_timestamp.is_none() {
            return self.publish_ca(pod).await;
        }
        if !pod.finalizers().iter().any(|f| f == FINALIZER) {
            return Action::await_change();
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        // The pod leaves its workload's summary (counted once its record is claimed or gone).
        let workload = pod.labels().get(labels::WORKLOAD).cloned().unwrap_or_default();
        self.dirty.mark(&pod.namespace().unwrap_or_default(), &workload);
        match self.engine.revoke(&uid).await {
            Ok(Revocation::Done) => {
                self.event(
                    pod,
                    &Note { warning: false, reason: "PermissionsRevoked", message: "grants revoked".into() },
                )
                .await;
                self.release(pod).await
            }
            Ok(Revocation::Abandoned(why)) => {
                self.event(pod, &Note { warning: true, reason: "RevocationFailed", message: why }).await;
                self.release(pod).await
            }
            Ok(Revocation::Busy) => Action::requeue(Duration::from_secs(15)),
            Ok(Revocation::Retry(why)) => {
                warn!(pod = %pod.name_any(), %why, "revocation will be retried");
                Action::requeue(Duration::from_secs(10))
            }
            Err(error) => {
                warn!(%error, "revocation failed");
                Action::requeue(Duration::from_secs(10))
            }
        }
    }

    /// A pod that will call: its namespace needs the CA ConfigMap its init container mounts (the
    /// kubelet starts the pod once it exists).
    async fn publish_ca(&self, pod: &Pod) -> Action {
        let calls = pod.spec.as_ref().is_some_and(super::init::carries_init_container);
        let Some(ca) = self.serving_cert.as_ref().and_then(|c| c.ca()).filter(|_| calls) else {
            return Action::await_change();
        };
        let namespace = pod.namespace().unwrap_or_default();
        // A pod not started yet is looked at again: should its namespace's ConfigMap be deleted
        // meanwhile, it is written again for the kubelet (see `CA_REWRITE_AFTER`).
        let waiting = pod.status.as_ref().and_then(|s| s.phase.as_deref()).is_none_or(|p| p == "Pending");
        match self.published.ensure(&self.client, &namespace, &ca).await {
            Ok(()) if waiting => Action::requeue(tls_store::CA_REWRITE_AFTER),
            Ok(()) => Action::await_change(),
            // Refused by RBAC or admission (not a tenant namespace): trying again soon cannot help.
            Err(error) if matches!(status_of(&error), Some(403) | Some(422)) => {
                warn!(%namespace, %error, "the CA ConfigMap is refused in this namespace");
                Action::requeue(tls_store::CA_REWRITE_AFTER)
            }
            Err(error) => {
                warn!(%namespace, %error, "could not write the CA ConfigMap");
                Action::requeue(Duration::from_secs(10))
            }
        }
    }

    /// Removes our finalizer, guarded by the pod's resourceVersion.
    async fn release(&self, pod: &Pod) -> Action {
        let rest: Vec<&String> = pod.finalizers().iter().filter(|f| *f != FINALIZER).collect();
        let patch = json!({"metadata": {"resourceVersion": pod.resource_version(), "finalizers": rest}});
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        match pods.patch(&pod.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await {
            Ok(_) => Action::await_change(),
            Err(e) if matches!(status_of(&e), Some(404) | Some(409)) => Action::requeue(Duration::from_secs(1)),
            Err(error) => {
                warn!(%error, "could not release the finalizer");
                Action::requeue(Duration::from_secs(10))
            }
        }
    }

    /// Records whose pod is gone (its finalizer stripped, or deleted while no replica ran): revoke.
    async fn sweep(&self) -> Result<(), String> {
        let configmaps: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let records = configmaps
            .list(&ListParams::default().labels(&format!("{RECORD_LABEL}=true")))
            .await
            .map_err(|e| e.to_string())?;
        for map in records {
            let Some(text) = map.data.as_ref().and_then(|d| d.get(RECORD_KEY)) else { continue };
            let Ok(record) = serde_json::from_str::<PodRecord>(text) else { continue };
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), &record.pod.namespace);
            let live = pods.get_opt(&record.pod.name).await.map_err(|e| e.to_string())?;
            if live.is_some_and(|p| p.metadata.uid.as_deref() == Some(record.pod.uid.as_str())) {
                continue;
            }
            let result = self.engine.revoke(&record.pod.uid).await;
            self.dirty.mark(&record.pod.namespace, &record.pod.workload);
            info!(pod = %format!("{}/{}", record.pod.namespace, record.pod.name), ?result, "swept the grants of a pod that is gone");
        }
        Ok(())
    }

    /// Writes the summary of every workload marked since the last flush.
    async fn flush_summaries(&self) {
        for (namespace, name) in self.dirty.take() {
            match self.write_summary(&namespace, &name).await {
                // Look once more next time: another replica may have written from older records
                // just before this one, and its write must not be the last word.
                Ok(true) => self.dirty.mark(&namespace, &name),
                Ok(false) => {}
                Err(error) => {
                    warn!(%error, workload = %format!("{namespace}/{name}"), "could not write the pre-authorization summary");
                    self.dirty.mark(&namespace, &name);
                }
            }
        }
    }

    /// Counts the workload's records into `status.preAuthorization` and applies it when it
    /// differs from what the status says; returns whether it wrote.
    async fn write_summary(&self, namespace: &str, name: &str) -> Result<bool, kube::Error> {
        let resource = ApiResource::erase::<SecureWorkload>(&());
        // Untyped: the operator's status type does not carry the summary (see
        // `PreAuthorizationSummary`).
        let workloads: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &resource);
        let Some(workload) = workloads.get_opt(name).await? else { return Ok(false) };
        let groups: Vec<String> = workload.data["spec"]["preAuthorization"]["permissionGroups"]
            .as_array()
            .map(|names| names.iter().filter_map(|n| n.as_str().map(String::from)).collect())
            .unwrap_or_default();
        let current = workload.data["status"].get(PRE_AUTHORIZATION_STATUS).cloned();
        let configmaps: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let selector =
            format!("{RECORD_LABEL}=true,{RECORD_NAMESPACE_LABEL}={namespace},{RECORD_WORKLOAD_LABEL}={name}");
        let records: Vec<PodRecord> = configmaps
            .list(&ListParams::default().labels(&selector))
            .await?
            .items
            .iter()
            .filter_map(|map| map.data.as_ref()?.get(RECORD_KEY))
            .filter_map(|text| serde_json::from_str(text).ok())
            .collect();
        let mut open = Vec::new();
        for group in &groups {
            if self.engine.store.get_breaker(&Breaker::key(namespace, group)).await.is_ok_and(|b| b.is_open()) {
                open.push(group.clone());
            }
        }
        // A workload that names no group and has no records left carries no summary.
        let next = (!groups.is_empty() || !records.is_empty())
            .then(|| serde_json::to_value(summary::summarize(&records, open)).unwrap_or_default());
        if next == current {
            return Ok(false);
        }
        let status = match next {
            Some(summary) => json!({PRE_AUTHORIZATION_STATUS: summary}),
            // Applying without the field gives it up, and the API server drops it.
            None => json!({}),
        };
        let patch = json!({"apiVersion": crate::api::API_VERSION, "kind": "SecureWorkload", "status": status});
        workloads.patch_status(name, &PatchParams::apply(SUMMARY_MANAGER).force(), &Patch::Apply(&patch)).await?;
        self.summary_writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(true)
    }

    fn metrics(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.engine.counters;
        let mut text = String::new();
        for (name, help, value) in [
            ("scs_authz_grants_requested_total", "Grant requests sent to providers", c.requested.load(Relaxed)),
            ("scs_authz_grants_granted_total", "Grants granted", c.granted.load(Relaxed)),
            ("scs_authz_grants_failed_total", "Grant attempts that failed", c.failed.load(Relaxed)),
            ("scs_authz_grants_revoked_total", "Grants revoked", c.revoked.load(Relaxed)),
            (
                "scs_authz_revocations_abandoned_total",
                "Pods released with grants left unrevoked",
                c.revoke_abandoned.load(Relaxed),
            ),
            (
                "scs_authz_backoff_waits_total",
                "Authorize calls answered with a backoff wait",
                c.backoff_waits.load(Relaxed),
            ),
            (
                "scs_authz_breaker_refusals_total",
                "Authorize calls refused by an open breaker",
                c.breaker_refusals.load(Relaxed),
            ),
            (
                "scs_authz_provider_refusals_total",
                "Permissions refused because their provider is not open to the pod's tenant",
                c.provider_refusals.load(Relaxed),
            ),
            (
                "scs_authz_summary_writes_total",
                "SecureWorkload status summaries written",
                self.summary_writes.load(Relaxed),
            ),
        ] {
            text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"));
        }
        text
    }
}

enum Refusal {
    /// The caller is not who it must be: 403.
    Identity(String),
    /// Something on our side: the caller retries.
    Internal(String),
}
