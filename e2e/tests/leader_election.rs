//! Two operator replicas with leader election against the fake API server: only the holder of the
//! Lease reconciles, and the other takes over when the holder shuts down or dies.
//!
//! The replicas are told apart by their configuration: each names its own RuntimeClass, so which
//! RuntimeClass exists (and which one tenant namespaces point at) shows who reconciled.

use std::time::Duration;

use e2e::fake_api::FakeApiServer;
use e2e::harness::eventually;
use kube::api::{Api, PostParams};
use scs_operator::api::Tenant;
use scs_operator::config::OperatorConfig;
use scs_operator::controller::leader::{Election, Outcome, run_elected};
use serde_json::json;
use tokio::sync::oneshot;

/// A replica in its own runtime, as in its own process: dropping the runtime kills every task of
/// it, the Lease renewal included, like a crash would.
struct Replica {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<Outcome>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Replica {
    fn kill(mut self) {
        self.runtime.take().unwrap().shutdown_background();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn start(server: &FakeApiServer, name: &str) -> Replica {
    let mut config = OperatorConfig::default();
    config.runtime_class.name = format!("kata-{name}");
    let election = Election {
        lease: "scs-operator".into(),
        namespace: "scs-system".into(),
        identity: name.into(),
        duration: Duration::from_secs(3),
        grace: Duration::from_secs(1),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let client = {
        let _guard = runtime.enter();
        server.client()
    };
    let task = runtime.spawn(run_elected(client, config, None, election, async {
        let _ = stopped.await;
    }));
    Replica { stop: Some(stop), task, runtime: Some(runtime) }
}

fn holder(server: &FakeApiServer) -> Option<String> {
    let lease = server.get("/apis/coordination.k8s.io/v1/namespaces/scs-system/leases/scs-operator")?;
    lease["spec"]["holderIdentity"].as_str().map(str::to_string)
}

fn runtime_class_label(server: &FakeApiServer) -> Option<String> {
    let namespace = server.get("/api/v1/namespaces/acme")?;
    namespace["metadata"]["labels"]["scs.dev/runtime-class"].as_str().map(str::to_string)
}

async fn create_tenant(server: &FakeApiServer) {
    let tenant: Tenant = serde_json::from_value(json!({
        "apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "acme"}, "spec": {}
    }))
    .unwrap();
    Api::<Tenant>::all(server.client()).create(&PostParams::default(), &tenant).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_reconciles_and_a_standby_takes_over_on_shutdown() {
    let server = FakeApiServer::start().await;
    let mut a = start(&server, "a");
    eventually("a holds the lease", || async { holder(&server).as_deref() == Some("a") }).await;
    let b = start(&server, "b");
    create_tenant(&server).await;
    eventually("a reconciles the tenant", || async { runtime_class_label(&server).as_deref() == Some("kata-a") }).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(server.get("/apis/node.k8s.io/v1/runtimeclasses/kata-b").is_none(), "the standby must not reconcile");
    assert_eq!(holder(&server).as_deref(), Some("a"));

    // SIGTERM for a: it stops, releases the lease, and b takes over and converges.
    a.stop.take().unwrap().send(()).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(30), &mut a.task).await.expect("a stops").unwrap().unwrap();
    assert_eq!(outcome, Outcome::Shutdown);
    eventually("b holds the lease", || async { holder(&server).as_deref() == Some("b") }).await;
    eventually("b reconciles the tenant", || async { runtime_class_label(&server).as_deref() == Some("kata-b") }).await;
    assert!(server.get("/apis/node.k8s.io/v1/runtimeclasses/kata-b").is_some());
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_from_a_leader_that_died() {
    let server = FakeApiServer::start().await;
    let a = start(&server, "a");
    eventually("a holds the lease", || async { holder(&server).as_deref() == Some("a") }).await;
    let b = start(&server, "b");
    create_tenant(&server).await;
    eventually("a reconciles", || async { runtime_class_label(&server).as_deref() == Some("kata-a") }).await;

    // a dies without releasing anything: b must wait for the lease to expire (3 s), then lead.
    a.kill();
    let started = tokio::time::Instant::now();
    eventually("b holds the lease", || async { holder(&server).as_deref() == Some("b") }).await;
    assert!(started.elapsed() < Duration::from_secs(15), "took over within a few lease durations");
    eventually("b reconciles", || async { runtime_class_label(&server).as_deref() == Some("kata-b") }).await;
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_reconcile_in_flight_finish_then_releases_the_lease() {
    let server = FakeApiServer::start().await;
    let mut a = start(&server, "a");
    eventually("a holds the lease", || async { holder(&server).as_deref() == Some("a") }).await;
    // The tenant's status write is held by a slow API server for 3 s.
    server.delay_next("PATCH", "/tenants/acme/status", 1, Duration::from_secs(3));
    create_tenant(&server).await;
    eventually("the status write is in flight", || async {
        server.requests().iter().any(|r| r.method == "PATCH" && r.path.ends_with("/tenants/acme/status"))
    })
    .await;

    // SIGTERM while the reconcile waits on the API server: it finishes, then the replica stops.
    let signalled = tokio::time::Instant::now();
    a.stop.take().unwrap().send(()).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(30), &mut a.task).await.expect("a stops").unwrap().unwrap();
    assert_eq!(outcome, Outcome::Shutdown);
    assert!(signalled.elapsed() >= Duration::from_secs(1), "stopped before the write in flight returned");
    let tenant = server.get("/apis/scs.dev/v1alpha1/tenants/acme").unwrap();
    assert!(tenant["status"]["conditions"].as_array().is_some_and(|c| !c.is_empty()), "status written: {tenant}");
    assert_ne!(holder(&server).as_deref(), Some("a"), "the lease is released on the way out");
}
