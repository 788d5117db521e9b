//! The HTTP clients the operator uses to reach systems outside the cluster (patrol notification
//! receivers, authorization providers): one of each per process, made on first use.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The HTTPS-only client, verifying servers with the system's CA certificates. Made on first use,
/// so an image without certificates still reaches `http://` endpoints.
pub fn https() -> Result<&'static HttpsClient, String> {
    static CLIENT: OnceLock<Result<HttpsClient, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_native_roots()
                .map_err(|e| format!("no CA certificates to verify https servers with: {e}"))?
                .https_only()
                .enable_http1()
                .build();
            Ok(Client::builder(TokioExecutor::new()).build(connector))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The plain HTTP client.
pub fn http() -> &'static HttpClient {
    static CLIENT: OnceLock<HttpClient> = OnceLock::new();
    CLIENT.get_or_init(|| Client::builder(TokioExecutor::new()).build(HttpConnector::new()))
}

/// Why an exchange brought no answer.
#[derive(Debug, PartialEq, Eq)]
pub enum NoAnswer {
    /// It cannot be sent at all (no CA certificates for `https://`): retrying will not help.
    Unsendable(String),
    /// No answer in time, no connection, or the transport failed: it may pass.
    Lost(String),
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unsendable(why) | Self::Lost(why) => f.write_str(why),
        }
    }
}

/// Sends `request` (over HTTPS when its URL says so) and reads the whole answer within `timeout`:
/// the status and the body.
pub async fn exchange(request: http::Request<Full<Bytes>>, timeout: Duration) -> Result<(u16, Bytes), NoAnswer> {
    let secure = match request.uri().scheme_str() {
        Some("https") => Some(https().map_err(NoAnswer::Unsendable)?),
        _ => None,
    };
    let exchange = async {
        let response = match secure {
            Some(client) => client.request(request).await?,
            None => http().request(request).await?,
        };
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        Ok::<_, hyper_util::client::legacy::Error>((status, body))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Err(NoAnswer::Lost(format!("no answer within {}s", timeout.as_secs_f32()))),
        Ok(Err(error)) if error.is_connect() => Err(NoAnswer::Lost("cannot connect".into())),
        // hyper's errors name no URL; the kind is enough.
        Ok(Err(error)) => Err(NoAnswer::Lost(format!("request failed: {error}"))),
        Ok(Ok(answer)) => Ok(answer),
    }
}
