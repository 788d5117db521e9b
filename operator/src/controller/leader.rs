//! Leader election on a `coordination.k8s.io/v1` Lease, so several replicas run safely: only the
//! holder reconciles; a standby takes over once the holder stops renewing (within the lease
//! duration), and a holder that is shut down releases the lease at once.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tracing::{info, warn};

use crate::config::OperatorConfig;

/// Lease settings.
#[derive(Clone, Debug)]
pub struct Election {
    /// Name and namespace of the Lease.
    pub lease: String,
    pub namespace: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// Seconds a lease stays valid without renewal.
    pub duration: Duration,
    /// Seconds before expiry at which the holder renews.
    pub grace: Duration,
}

/// How a leader-elected run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Shut down on request; the lease was released.
    Shutdown,
    /// Leadership was lost to another replica: exit and let the pod restart as a standby.
    LostLeadership,
}

/// Waits for the lease, runs the controllers while holding it, and releases it on shutdown.
pub async fn run_elected(
    client: Client,
    config: OperatorConfig,
    health: Option<SocketAddr>,
    election: Election,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> anyhow::Result<Outcome> {
    let manager = LeaseManagerBuilder::new(client.clone(), &election.lease)
        .with_namespace(&election.namespace)
        .with_identity(&election.identity)
        .with_duration(election.duration.as_secs())
        .with_grace(election.grace.as_secs())
        .build()
        .await?;
    let (mut leading, lease_task) = manager.watch().await;
    super::metrics::metrics().set_leader(false);
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));

    // Standby: healthy and ready (there is nothing to sync), waiting for the lease.
    let standby = health.map(|address| tokio::spawn(super::health::serve_standby(address)));
    info!(identity = %election.identity, lease = %election.lease, "waiting for leadership");
    let became_leader = loop {
        if *leading.borrow_and_update() {
            break true;
        }
        tokio::select! {
            changed = leading.changed() => if changed.is_err() { break false },
            _ = shutdown.clone() => break false,
        }
    };
    if let Some(standby) = standby {
        standby.abort();
        let _ = standby.await;
    }
    if !became_leader {
        drop(leading);
        let _ = lease_task.await;
        return Ok(Outcome::Shutdown);
    }

    info!(identity = %election.identity, "leading: starting the controllers");
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let mut watch_leading = leading.clone();
    let watcher = tokio::spawn(async move {
        while watch_leading.changed().await.is_ok() {
            if !*watch_leading.borrow() {
                let _ = lost_tx.send(());
                return;
            }
        }
    });
    let stop = {
        let shutdown = shutdown.clone();
        async move {
            tokio::select! {
                _ = shutdown => {},
                _ = lost_rx => {},
            }
        }
    };
    super::run(client, config, health, stop).await;
    watcher.abort();
    let lost = !*leading.borrow();
    // Closing the channel makes the lease task release the lease (if still ours) and finish.
    drop(leading);
    match lease_task.await {
        Ok(Ok(_)) => info!("lease released"),
        Ok(Err(error)) => warn!(%error, "could not release the lease"),
        Err(error) => warn!(%error, "lease task failed"),
    }
    Ok(if lost { Outcome::LostLeadership } else { Outcome::Shutdown })
}
