//! The HTTP clients the operator uses to reach systems outside the cluster (patrol notification
//! receivers, authorization providers): one of each per process, made on first use.

use std::sync::OnceLock;

use bytes::Bytes;
use http_body_util::Full;
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
