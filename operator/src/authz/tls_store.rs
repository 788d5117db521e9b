//! The API side of [`super::tls`]: the server's certificate Secret (read, made or renewed) and the
//! CA ConfigMap in the namespaces of pods that call the server.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tracing::info;

use super::tls::{self, Plan, ServingCert};

fn conflict(error: &kube::Error) -> bool {
    super::server::status_of(error) == Some(409)
}

/// Reads the certificate Secret in `namespace` (making or renewing it when that is due) and
/// serves what it holds. Two replicas doing this at once: one create or replace wins, the other
/// gets a conflict and serves what the winner wrote.
pub async fn refresh(client: &Client, namespace: &str, names: &[String], cert: &ServingCert) -> Result<(), String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let read = || async {
        secrets.get_opt(tls::SECRET).await.map_err(|e| format!("reading Secret {namespace}/{}: {e}", tls::SECRET))
    };
    let found = read().await?;
    let written = match tls::plan(found.as_ref(), namespace, names, Timestamp::now())? {
        Plan::Use(material) => return serve(cert, material),
        Plan::Create(secret) => match secrets.create(&PostParams::default(), &secret).await {
            Ok(made) => {
                info!(secret = tls::SECRET, "made the authz-server's CA and certificate");
                made
            }
            Err(error) if conflict(&error) => read().await?.unwrap_or_default(),
            Err(error) => return Err(format!("creating Secret {namespace}/{}: {error}", tls::SECRET)),
        },
        Plan::Renew(secret) => match secrets.replace(tls::SECRET, &PostParams::default(), &secret).await {
            Ok(renewed) => {
                info!(secret = tls::SECRET, "renewed the authz-server's certificate");
                renewed
            }
            Err(error) if conflict(&error) => read().await?.unwrap_or_default(),
            Err(error) => return Err(format!("renewing Secret {namespace}/{}: {error}", tls::SECRET)),
        },
    };
    let material = tls::material_of(&written)
        .ok_or_else(|| format!("Secret {namespace}/{} holds no certificate yet", tls::SECRET))?;
    serve(cert, material)
}

fn serve(cert: &ServingCert, material: tls::Material) -> Result<(), String> {
    if cert.set(material)? {
        info!(secret = tls::SECRET, "serving the certificate of the Secret");
    }
    Ok(())
}

/// How long a written CA ConfigMap is trusted to be still there: after this it is applied again
/// (a no-op when unchanged), so one someone deleted comes back for the pods waiting on it.
pub const CA_REWRITE_AFTER: Duration = Duration::from_secs(300);

/// The CA ConfigMaps this replica wrote: by namespace, the CA and when.
#[derive(Default)]
pub struct Published(Mutex<BTreeMap<String, (String, Instant)>>);

impl Published {
    /// Whether `namespace` needs the CA ConfigMap (again) at `now`.
    pub fn due(&self, namespace: &str, ca: &str, now: Instant) -> bool {
        let written = self.0.lock().unwrap_or_else(|e| e.into_inner());
        !written.get(namespace).is_some_and(|(done, at)| done == ca && now.duration_since(*at) < CA_REWRITE_AFTER)
    }

    fn record(&self, namespace: &str, ca: &str, at: Instant) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(namespace.to_string(), (ca.to_string(), at));
    }

    /// Writes the CA ConfigMap into `namespace` when [`Self::due`].
    pub async fn ensure(&self, client: &Client, namespace: &str, ca: &str) -> Result<(), kube::Error> {
        if !self.due(namespace, ca, Instant::now()) {
            return Ok(());
        }
        let configmap = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": tls::CA_CONFIGMAP, "namespace": namespace,
                         "labels": {"app.kubernetes.io/managed-by": tls::MANAGED_BY}},
            "data": {tls::CA_FILE: ca},
        });
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        api.patch(tls::CA_CONFIGMAP, &PatchParams::apply(tls::MANAGED_BY).force(), &Patch::Apply(configmap)).await?;
        self.record(namespace, ca, Instant::now());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_configmap_is_written_again_for_a_new_ca_or_after_a_while() {
        let published = Published::default();
        let start = Instant::now();
        assert!(published.due("acme-prod", "ca-1", start));
        published.record("acme-prod", "ca-1", start);
        assert!(!published.due("acme-prod", "ca-1", start + Duration::from_secs(60)));
        assert!(published.due("acme-dev", "ca-1", start), "per namespace");
        assert!(published.due("acme-prod", "ca-2", start), "a new CA at once");
        assert!(published.due("acme-prod", "ca-1", start + CA_REWRITE_AFTER), "deleted meanwhile? apply again");
    }
}
