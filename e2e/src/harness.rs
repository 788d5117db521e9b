//! A test harness: the fake API server with the operator's controllers running against it.

use std::future::Future;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams, PostParams};
use scs_operator::api::{SdnNetwork, Tenant};
use scs_operator::clock::Clock;
use scs_operator::config::OperatorConfig;
use scs_operator::controller::RunOptions;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::fake_api::FakeApiServer;

/// How long a test waits for the controllers to converge.
pub const WAIT: Duration = Duration::from_secs(30);

pub struct Harness {
    pub server: FakeApiServer,
    pub client: kube::Client,
    stop: Option<oneshot::Sender<()>>,
    controllers: tokio::task::JoinHandle<()>,
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_seeded(&[]).await
    }

    /// Starts with `objects` (API path, object) already on the server, as a cluster that had
    /// them before the operator came.
    pub async fn start_seeded(objects: &[(&str, Value)]) -> Self {
        Self::start_seeded_with(objects, RunOptions::default()).await
    }

    /// Starts with the controllers reading time from `clock` (tenant expiry, patrol schedules):
    /// tests move a [`scs_operator::clock::ManualClock`] instead of waiting.
    pub async fn start_with_clock(clock: Clock) -> Self {
        Self::start_seeded_with(&[], RunOptions { clock, ..Default::default() }).await
    }

    /// Starts with `objects` seeded and these [`RunOptions`].
    pub async fn start_seeded_with(objects: &[(&str, Value)], options: RunOptions) -> Self {
        // RUST_LOG=scs_operator=debug shows the controllers at work.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let server = FakeApiServer::start().await;
        for (path, object) in objects {
            server.insert(path, object.clone());
        }
        let client = server.client();
        let (stop, stopped) = oneshot::channel::<()>();
        let controllers = tokio::spawn(scs_operator::controller::run_with(
            client.clone(),
            OperatorConfig::default(),
            options,
            None,
            async {
                let _ = stopped.await;
            },
        ));
        Self { server, client, stop: Some(stop), controllers }
    }

    /// Starts with Tenant `acme` owning `namespace` (room for a few workloads), once it is Ready.
    pub async fn with_acme(namespace: &str) -> Self {
        let harness = Self::start().await;
        harness
            .create_tenant(serde_json::json!({
                "apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "acme"},
                "spec": {"namespaces": [namespace], "quota": {"cpu": "16", "memory": "64Gi"}}
            }))
            .await;
        eventually("tenant ready", || async { harness.is_ready("acme") }).await;
        harness
    }

    /// Stops the controllers and starts new ones against the same API server, as an operator
    /// restart or a leader change would.
    pub async fn restart(&mut self, options: RunOptions) {
        let _ = self.stop.take().map(|s| s.send(()));
        tokio::time::timeout(WAIT, &mut self.controllers).await.expect("controllers stop on shutdown").unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        self.controllers = tokio::spawn(scs_operator::controller::run_with(
            self.client.clone(),
            OperatorConfig::default(),
            options,
            None,
            async {
                let _ = stopped.await;
            },
        ));
        self.stop = Some(stop);
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        tokio::time::timeout(WAIT, &mut self.controllers).await.expect("controllers stop on shutdown").unwrap();
    }

    pub fn tenants(&self) -> Api<Tenant> {
        Api::all(self.client.clone())
    }

    pub async fn create_tenant(&self, manifest: Value) {
        let tenant: Tenant = serde_json::from_value(manifest).unwrap();
        self.tenants().create(&PostParams::default(), &tenant).await.unwrap();
    }

    pub async fn create_network(&self, manifest: Value) {
        let network: SdnNetwork = serde_json::from_value(manifest).unwrap();
        Api::<SdnNetwork>::all(self.client.clone()).create(&PostParams::default(), &network).await.unwrap();
    }

    pub async fn patch_tenant(&self, name: &str, patch: Value) {
        self.tenants().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }

    /// The tenant's condition `type_` as (status, reason, message).
    pub fn condition(&self, tenant: &str, type_: &str) -> Option<(String, String, String)> {
        let object = self.server.get(&format!("/apis/scs.dev/v1alpha1/tenants/{tenant}"))?;
        let conditions = object["status"]["conditions"].as_array()?.clone();
        conditions.iter().find(|c| c["type"] == type_).map(|c| {
            let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (text("status"), text("reason"), text("message"))
        })
    }

    pub fn is_ready(&self, tenant: &str) -> bool {
        let object = self.server.get(&format!("/apis/scs.dev/v1alpha1/tenants/{tenant}"));
        let current = object.as_ref().is_some_and(|o| o["status"]["observedGeneration"] == o["metadata"]["generation"]);
        current && self.condition(tenant, "Ready").is_some_and(|c| c.0 == "True")
    }

    pub fn event_reasons(&self) -> Vec<String> {
        self.server
            .list("/apis/events.k8s.io/v1/events")
            .iter()
            .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// Polls `check` until it holds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}
