//! `/healthz` and `/readyz` for the kubelet's probes.
//!
//! Live while the process serves; ready once the Tenant and SdnNetwork caches have synced.
//! Metrics and leader status are not served yet.

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

async fn answer(
    ctx: Arc<Context>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match request.uri().path() {
        "/healthz" => reply(StatusCode::OK, "ok\n"),
        "/readyz" => {
            // `wait_until_ready` resolves at once when the store has synced.
            let synced = futures::FutureExt::now_or_never(ctx.tenants.wait_until_ready()).is_some_and(|r| r.is_ok())
                && futures::FutureExt::now_or_never(ctx.networks.wait_until_ready()).is_some_and(|r| r.is_ok());
            if synced {
                reply(StatusCode::OK, "ready\n")
            } else {
                reply(StatusCode::SERVICE_UNAVAILABLE, "caches not synced\n")
            }
        }
        _ => reply(StatusCode::NOT_FOUND, "not found\n"),
    })
}

/// Serves the probes on `address` until the task is dropped.
pub async fn serve(address: SocketAddr, ctx: Arc<Context>) {
    let listener = match TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            warn!(%address, %error, "cannot serve health probes");
            return;
        }
    };
    info!(%address, "serving /healthz and /readyz");
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(ctx.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
