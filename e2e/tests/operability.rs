//! The probes the operator Deployment's kubelet uses.

use std::time::Duration;

use e2e::fake_api::FakeApiServer;
use e2e::harness::eventually;
use scs_operator::config::OperatorConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(address: std::net::SocketAddr, path: &str) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    Some(response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_probes_answer() {
    let server = FakeApiServer::start().await;
    let address = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controllers =
        tokio::spawn(scs_operator::controller::run(server.client(), OperatorConfig::default(), Some(address), async {
            let _ = stopped.await;
        }));
    eventually("healthz answers 200", || async {
        get(address, "/healthz").await.is_some_and(|r| r.starts_with("HTTP/1.1 200"))
    })
    .await;
    eventually("readyz answers 200 once caches synced", || async {
        get(address, "/readyz").await.is_some_and(|r| r.starts_with("HTTP/1.1 200") && r.ends_with("ready\n"))
    })
    .await;
    assert!(get(address, "/nothing").await.unwrap().starts_with("HTTP/1.1 404"));

    // A tenant to reconcile, then the metrics show the work.
    let tenant: scs_operator::api::Tenant = serde_json::from_value(serde_json::json!({
        "apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "metered"}, "spec": {}
    }))
    .unwrap();
    kube::Api::<scs_operator::api::Tenant>::all(server.client()).create(&Default::default(), &tenant).await.unwrap();
    eventually("metrics show the reconcile", || async {
        get(address, "/metrics").await.is_some_and(|r| {
            r.contains("scs_operator_reconciles_total{controller=\"tenant\",result=\"success\"}")
                && r.contains("scs_operator_managed_objects{kind=\"Namespace\"}")
                && r.contains("scs_operator_leader 1")
                && r.contains("scs_operator_reconcile_duration_seconds_count{controller=\"tenant\"}")
        })
    })
    .await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), controllers).await.expect("stops on shutdown").unwrap();
}
