//! TLS between the `scs-authorize` init container and the authz-server.
//!
//! The server's certificate lives in the Secret [`SECRET`] in its namespace. One an admin or
//! cert-manager provides (`tls.crt`, `tls.key`, `ca.crt`) is used as it is. Without one, the first
//! replica makes a CA (ten years) and a server certificate (one year) signed by it and creates the
//! Secret (the others read it: create fails for them); a month before the server certificate
//! expires a replica signs a new one with the same CA, so what pods trust does not change. Pods
//! get the CA certificate (public) from the ConfigMap [`CA_CONFIGMAP`] in their own namespace,
//! written by the server for namespaces whose pods carry the init container.
//!
//! This module makes no API calls (certificates, decisions, rustls configurations, the bounded
//! handshake); [`super::tls_store`] reads and writes the Secret and the ConfigMaps.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::{SignedDuration, Timestamp, tz::TimeZone};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The server's certificate, key and CA (type `kubernetes.io/tls`).
pub const SECRET: &str = "scs-authz-tls";
/// The CA certificate in each namespace whose pods call the server (key [`CA_FILE`]).
pub const CA_CONFIGMAP: &str = "scs-authz-ca";
/// Key of the CA certificate, in the Secret, the ConfigMap and the init container's volume.
pub const CA_FILE: &str = "ca.crt";
const CERT_FILE: &str = "tls.crt";
const KEY_FILE: &str = "tls.key";
/// The CA's private key, only in a Secret the server made itself (it signs the renewals).
const CA_KEY_FILE: &str = "ca.key";
/// `app.kubernetes.io/managed-by` of a Secret the server made (and so may renew).
pub const MANAGED_BY: &str = "scs-authz-server";
/// When the server certificate of a Secret the server made expires (RFC 3339).
pub const NOT_AFTER_ANNOTATION: &str = "scs.dev/not-after";
/// The names it was made for (comma-separated): a changed server URL gets a new certificate.
pub const NAMES_ANNOTATION: &str = "scs.dev/dns-names";

const CA_DAYS: i64 = 3650;
const SERVER_DAYS: i64 = 365;
const RENEW_DAYS_BEFORE: i64 = 30;

/// What the server serves with, as PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Material {
    pub cert: String,
    pub key: String,
    pub ca: String,
}

/// What to do with the Secret found (or not).
#[derive(Debug)]
pub enum Plan {
    /// Serve what is there.
    Use(Material),
    /// No Secret: create this one.
    Create(Secret),
    /// Ours and due (or made for other names): replace it with this one (same CA).
    Renew(Secret),
}

/// Valid from the day before `now` (clocks differ) for `days` days (whole days, UTC).
fn valid_for(params: &mut CertificateParams, now: Timestamp, days: i64) {
    let ymd = |offset_days: i64| {
        let date = (now + SignedDuration::from_hours(24 * offset_days)).to_zoned(TimeZone::UTC).date();
        rcgen::date_time_ymd(i32::from(date.year()), date.month() as u8, date.day() as u8)
    };
    params.not_before = ymd(-1);
    params.not_after = ymd(days);
}

/// The CA's parameters. Only its name and key matter when it signs again, so the same
/// parameters and the stored key make the same issuer.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "scs-authz-ca");
    name.push(DnType::OrganizationName, "scs.dev");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// A server certificate for `names` signed by the CA (`ca` is its certificate and key as PEM, or
/// `None` to make a new CA). Returns the Secret's data and when the server certificate expires.
pub fn issue(
    names: &[String],
    now: Timestamp,
    ca: Option<(&str, &str)>,
) -> Result<(BTreeMap<String, String>, Timestamp), String> {
    let fail = |what: &str, e: rcgen::Error| format!("{what}: {e}");
    let (ca_cert, ca_key) = match ca {
        Some((cert, key)) => (cert.to_string(), KeyPair::from_pem(key).map_err(|e| fail("the CA key", e))?),
        None => {
            let key = KeyPair::generate().map_err(|e| fail("a CA key", e))?;
            let mut params = ca_params();
            valid_for(&mut params, now, CA_DAYS);
            (params.self_signed(&key).map_err(|e| fail("the CA certificate", e))?.pem(), key)
        }
    };
    let issuer = Issuer::new(ca_params(), &ca_key);
    let key = KeyPair::generate().map_err(|e| fail("a server key", e))?;
    let mut params = CertificateParams::new(names.to_vec()).map_err(|e| fail("the server names", e))?;
    params.distinguished_name.push(DnType::CommonName, names.first().cloned().unwrap_or_default());
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    valid_for(&mut params, now, SERVER_DAYS);
    let cert = params.signed_by(&key, &issuer).map_err(|e| fail("the server certificate", e))?;
    let data = BTreeMap::from([
        (CERT_FILE.to_string(), cert.pem()),
        (KEY_FILE.to_string(), key.serialize_pem()),
        (CA_FILE.to_string(), ca_cert),
        (CA_KEY_FILE.to_string(), ca_key.serialize_pem()),
    ]);
    Ok((data, now + SignedDuration::from_hours(24 * SERVER_DAYS)))
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok().filter(|t| !t.trim().is_empty())
}

fn made_by_us(secret: &Secret) -> bool {
    secret.metadata.labels.as_ref().and_then(|l| l.get("app.kubernetes.io/managed-by")).map(String::as_str)
        == Some(MANAGED_BY)
}

/// The Secret the server makes: `data` from [`issue`], marked as its own.
pub fn secret(namespace: &str, names: &[String], data: BTreeMap<String, String>, not_after: Timestamp) -> Secret {
    let mut secret = Secret {
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v.into_bytes()))).collect()),
        ..Default::default()
    };
    secret.metadata.name = Some(SECRET.into());
    secret.metadata.namespace = Some(namespace.into());
    secret.metadata.labels = Some(BTreeMap::from([
        ("app.kubernetes.io/managed-by".to_string(), MANAGED_BY.to_string()),
        ("app.kubernetes.io/name".to_string(), super::SERVER_APP.to_string()),
    ]));
    secret.metadata.annotations = Some(BTreeMap::from([
        (NOT_AFTER_ANNOTATION.to_string(), not_after.to_string()),
        (NAMES_ANNOTATION.to_string(), names.join(",")),
    ]));
    secret
}

/// What to do with `found` (the Secret [`SECRET`], if any) to serve `names` at `now`. A Secret
/// someone else made is used as it is, and must hold `tls.crt`, `tls.key` and `ca.crt`.
pub fn plan(found: Option<&Secret>, namespace: &str, names: &[String], now: Timestamp) -> Result<Plan, String> {
    let Some(found) = found else {
        let (data, not_after) = issue(names, now, None)?;
        return Ok(Plan::Create(secret(namespace, names, data, not_after)));
    };
    let material = |s: &Secret| -> Result<Material, String> {
        let get = |key: &str| text(s, key).ok_or_else(|| format!("Secret {namespace}/{SECRET} has no {key}"));
        Ok(Material { cert: get(CERT_FILE)?, key: get(KEY_FILE)?, ca: get(CA_FILE)? })
    };
    if !made_by_us(found) {
        return material(found).map(Plan::Use);
    }
    let annotations = found.metadata.annotations.clone().unwrap_or_default();
    let not_after = annotations.get(NOT_AFTER_ANNOTATION).and_then(|t| t.parse::<Timestamp>().ok());
    let due = not_after.is_none_or(|t| t < now + SignedDuration::from_hours(24 * RENEW_DAYS_BEFORE));
    let same_names = annotations.get(NAMES_ANNOTATION).map(String::as_str) == Some(names.join(",").as_str());
    if !due && same_names {
        return material(found).map(Plan::Use);
    }
    // Signed by the same CA; ours but without its CA key (edited by hand): a new CA.
    let ca = text(found, CA_FILE).zip(text(found, CA_KEY_FILE));
    let (data, not_after) = issue(names, now, ca.as_ref().map(|(cert, key)| (cert.as_str(), key.as_str())))?;
    let mut renewed = secret(namespace, names, data, not_after);
    renewed.metadata.resource_version = found.metadata.resource_version.clone();
    Ok(Plan::Renew(renewed))
}

/// The material a Secret holds (after a create or a renewal).
pub fn material_of(secret: &Secret) -> Option<Material> {
    Some(Material { cert: text(secret, CERT_FILE)?, key: text(secret, KEY_FILE)?, ca: text(secret, CA_FILE)? })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate the server presents, replaced in place when the Secret changes.
#[derive(Debug, Default)]
pub struct ServingCert {
    current: RwLock<Option<(Material, Arc<CertifiedKey>)>>,
}

impl ServingCert {
    /// Serves `material` from now on; `Ok(false)` when it is what is served already.
    pub fn set(&self, material: Material) -> Result<bool, String> {
        if self.current.read().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|(m, _)| *m == material) {
            return Ok(false);
        }
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(material.cert.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("tls.crt: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(material.key.as_bytes()).map_err(|e| format!("tls.key: {e}"))?;
        let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| format!("tls.crt/tls.key: {e}"))?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some((material, Arc::new(certified)));
        Ok(true)
    }

    /// The CA certificate pods should trust, once a certificate is served.
    pub fn ca(&self) -> Option<String> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(m, _)| m.ca.clone())
    }
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(_, k)| k.clone())
    }
}

/// The server's TLS configuration, presenting whatever `cert` holds at each handshake.
pub fn server_config(cert: Arc<ServingCert>) -> Result<rustls::ServerConfig, String> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The server side of a handshake, bounded by `timeout`: a caller that opens connections and
/// says nothing holds no task.
pub async fn accept<S>(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: S,
    timeout: std::time::Duration,
) -> Result<tokio_rustls::server::TlsStream<S>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(result) => result.map_err(|e| format!("TLS handshake failed: {e}")),
        Err(_) => Err(format!("no TLS handshake within {}s", timeout.as_secs_f32())),
    }
}

/// A client configuration trusting only the CA certificates in `ca_pem`.
pub fn client_config(ca_pem: &[u8]) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.map_err(|e| format!("CA certificate: {e}"))?).map_err(|e| format!("CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("no CA certificate".into());
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "scs-authz.scs-system.svc";

    fn names() -> Vec<String> {
        vec![NAME.to_string()]
    }

    /// Handshakes check validity against the real clock.
    fn now() -> Timestamp {
        Timestamp::now()
    }

    fn days(n: i64) -> SignedDuration {
        SignedDuration::from_hours(24 * n)
    }

    fn created(at: Timestamp) -> Secret {
        match plan(None, "scs-system", &names(), at).unwrap() {
            Plan::Create(secret) => secret,
            other => panic!("{other:?}"),
        }
    }

    /// A TLS handshake over a local socket: the client trusts `ca` and asks for `name`.
    async fn handshake(material: Material, ca: &str, name: &str) -> Result<(), String> {
        let cert = Arc::new(ServingCert::default());
        cert.set(material)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config(cert)?));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let serving = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = accept(&acceptor, stream, std::time::Duration::from_secs(5)).await;
        });
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(ca.as_bytes())?));
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let server_name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let result = connector.connect(server_name, stream).await.map(|_| ()).map_err(|e| e.to_string());
        serving.abort();
        result
    }

    #[tokio::test]
    async fn a_made_certificate_is_trusted_through_its_ca_for_its_name_only() {
        let secret = created(now());
        let material = material_of(&secret).unwrap();
        handshake(material.clone(), &material.ca, NAME).await.unwrap();
        let refused = handshake(material.clone(), &material.ca, "evil.example.com").await.unwrap_err();
        assert!(refused.contains("not valid for name"), "{refused}");
        let stranger = material_of(&created(now())).unwrap();
        let refused = handshake(material, &stranger.ca, NAME).await.unwrap_err();
        // Another CA of the same name: its signature does not verify.
        assert!(refused.contains("invalid peer certificate: BadSignature"), "{refused}");
    }

    #[tokio::test]
    async fn a_renewal_keeps_the_ca_so_pods_trust_the_new_certificate() {
        // Made 340 days ago: not due the day after, due now (30 days before it expires).
        let made = now() - days(340);
        let secret = created(made);
        let first = material_of(&secret).unwrap();
        let next_day = plan(Some(&secret), "scs-system", &names(), made + days(1)).unwrap();
        assert!(matches!(next_day, Plan::Use(m) if m == first));
        let Plan::Renew(renewed) = plan(Some(&secret), "scs-system", &names(), now()).unwrap() else { panic!() };
        let second = material_of(&renewed).unwrap();
        assert_eq!(second.ca, first.ca, "the same CA");
        assert_ne!(second.cert, first.cert);
        let annotations = renewed.metadata.annotations.clone().unwrap();
        let not_after: Timestamp = annotations[NOT_AFTER_ANNOTATION].parse().unwrap();
        assert!(not_after > now() + days(364), "{not_after}");
        // A pod holding the CA from the first Secret trusts the renewed certificate.
        handshake(second, &first.ca, NAME).await.unwrap();
        // Other names (a changed server URL): a new certificate at once.
        let other = vec!["authz.example.internal".to_string()];
        assert!(matches!(plan(Some(&secret), "scs-system", &other, made + days(1)).unwrap(), Plan::Renew(_)));
    }

    #[tokio::test]
    async fn a_caller_that_never_says_hello_is_dropped_after_the_timeout() {
        let cert = Arc::new(ServingCert::default());
        cert.set(material_of(&created(now())).unwrap()).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config(cert).unwrap()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _silent = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let error = accept(&acceptor, stream, std::time::Duration::from_millis(200)).await.err().unwrap();
        assert_eq!(error, "no TLS handshake within 0.2s");
    }

    #[test]
    fn a_secret_someone_else_made_is_used_as_it_is_or_named_as_incomplete() {
        let mut theirs = created(now());
        theirs.metadata.labels = None;
        theirs.metadata.annotations = None;
        let far = now() + days(5000);
        assert!(matches!(plan(Some(&theirs), "scs-system", &names(), far).unwrap(), Plan::Use(_)), "never renewed");
        theirs.data.as_mut().unwrap().remove(CA_FILE);
        let error = plan(Some(&theirs), "scs-system", &names(), now()).unwrap_err();
        assert_eq!(error, "Secret scs-system/scs-authz-tls has no ca.crt");
    }
}
