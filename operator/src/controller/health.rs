//! `/healthz` and `/readyz` for the kubelet's probes.
//!
//! Live while the process serves; ready once the Tenant and SdnNetwork caches have synced.
//! `/metrics` serves the Prometheus metrics (see [`super::metrics`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::{info, warn};

use super::context::Context;

fn reply(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    Response::builder().status(status).body(Full::new(Bytes::from_static(text.as_bytes()))).expect("response")
}

fn metrics_reply() -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(Full::new(Bytes::from(super::metrics::metrics().encode())))
        .expect("response")
}

/// Answers a probe. `ctx` is `None` on a standby replica, which holds no caches and is ready to
/// take over at any time.
async fn answer(
    ctx: Option<Arc<Context>>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match request.uri().path() {
        "/healthz" => reply(StatusCode::OK, "ok\n"),
        "/metrics" => metrics_reply(),
        "/readyz" => match ctx {
            None => reply(StatusCode::OK, "standby\n"),
            Some(ctx) => {
                // `wait_until_ready` resolves at once when the store has synced.
                let synced = futures::FutureExt::now_or_never(ctx.tenants.wait_until_ready())
                    .is_some_and(|r| r.is_ok())
                    && futures::FutureExt::now_or_never(ctx.networks.wait_until_ready()).is_some_and(|r| r.is_ok());
                if synced {
                    reply(StatusCode::OK, "ready\n")
                } else {
                    reply(StatusCode::SERVICE_UNAVAILABLE, "caches not synced\n")
                }
            }
        },
        _ => reply(StatusCode::NOT_FOUND, "not found\n"),
    })
}

async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    // A standby server may still be letting go of the port when the leader's starts.
    let mut attempts = 0;
    loop {
        match TcpListener::bind(address).await {
            Ok(listener) => {
                info!(%address, "serving /healthz, /readyz and /metrics");
                return Ok(listener);
            }
            Err(_) if attempts < 20 => {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(error) => {
                warn!(%address, %error, "cannot serve health probes");
                return Err(error);
            }
        }
    }
}

/// Serves the probes of the leading replica on `address` until the task is dropped.
pub async fn serve(address: SocketAddr, ctx: Arc<Context>) {
    serve_with(address, Some(ctx)).await;
}

/// Serves the probes of a standby replica on `address` until the task is dropped.
pub async fn serve_standby(address: SocketAddr) {
    serve_with(address, None).await;
}

async fn serve_with(address: SocketAddr, ctx: Option<Arc<Context>>) {
    let Ok(listener) = bind(address).await else { return };
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(ctx.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
