//! `scs-operator authorize`: the init container's whole job. Presents the pod's projected token
//! to the authz-server and waits until it says every grant is in place. It holds no logic of its
//! own, so the server can change without touching tenants' pod templates.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::server::{AuthorizeRequest, AuthorizeResponse};
use super::tls;

/// Longest wait between two calls, whatever the server says (a reset should be seen soon).
const MAX_WAIT: Duration = Duration::from_secs(60);

type Response = http::Response<hyper::body::Incoming>;

/// Sends `request`: over TLS, verifying the server with the CA certificates in `ca_file`, when
/// the URL is `https://` (the file is read on every call: the CA ConfigMap may change).
async fn send(request: http::Request<Full<Bytes>>, ca_file: Option<&Path>) -> Result<Response, String> {
    if request.uri().scheme_str() != Some("https") {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        return client.request(request).await.map_err(|e| e.to_string());
    }
    let ca_file = ca_file.ok_or("an https:// server needs a CA file (SCS_AUTHZ_CA_FILE)")?;
    let ca = std::fs::read(ca_file).map_err(|e| format!("cannot read the CA {}: {e}", ca_file.display()))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls::client_config(&ca)?)
        .https_only()
        .enable_http1()
        .build();
    let client = Client::builder(TokioExecutor::new()).build(connector);
    client
        .request(request)
        .await
        .map_err(|e| format!("{e} ({})", std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()))
}

/// Calls `url` until granted. `Err` when the server refuses the caller (the kubelet then restarts
/// the init container with its own backoff).
pub async fn authorize(
    url: &str,
    token_file: &Path,
    ca_file: Option<&Path>,
    claimed: AuthorizeRequest,
) -> Result<(), String> {
    let endpoint = format!("{}/v1/authorize", url.trim_end_matches('/'));
    let body = serde_json::to_vec(&claimed).unwrap_or_default();
    loop {
        // Read every time: the kubelet rotates the projected token.
        let token = std::fs::read_to_string(token_file)
            .map_err(|e| format!("cannot read the token {}: {e}", token_file.display()))?;
        let request = http::Request::post(endpoint.as_str())
            .header("authorization", format!("Bearer {}", token.trim()))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.clone())))
            .map_err(|e| format!("{endpoint}: {e}"))?;
        let answer = async {
            let response = send(request, ca_file).await?;
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            Ok::<_, String>((status, serde_json::from_slice::<AuthorizeResponse>(&bytes).unwrap_or_default()))
        };
        let wait = match tokio::time::timeout(Duration::from_secs(30), answer).await {
            Ok(Ok((200, _))) => {
                eprintln!("authorized");
                return Ok(());
            }
            Ok(Ok((403, answer))) => return Err(format!("refused: {}", answer.message)),
            Ok(Ok((status, answer))) => {
                eprintln!("waiting (HTTP {status}): {}", answer.message);
                Duration::from_secs(answer.retry_after_seconds.max(1))
            }
            Ok(Err(error)) => {
                eprintln!("authz-server not reachable ({error}), retrying");
                Duration::from_secs(5)
            }
            Err(_) => {
                eprintln!("authz-server did not answer within 30s, retrying");
                Duration::from_secs(5)
            }
        };
        tokio::time::sleep(wait.min(MAX_WAIT)).await;
    }
}
