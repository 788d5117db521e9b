//! The authorization server's core, free of Kubernetes: one `authorize` call advances a pod's
//! grants by one step (request, poll, or wait), one `revoke` call takes them back. Every replica
//! is stateless: state lives in a [`Store`] (ConfigMaps in the operator's namespace in a cluster,
//! memory in tests) guarded by versions, so replicas never act twice on the same record.
//!
//! Failures: a permanent one (4xx) counts against the group's breaker — a wrong parameter never
//! heals by itself, so after 3 no request goes out until a reset. A transient one (5xx, timeout,
//! no connection) puts the pod into exponential backoff instead — an outage heals by itself, and
//! the pod tries once more when its wait is over. (The source article let backoff override an
//! open breaker; keeping the two apart means an outage never needs a person to reset anything.)

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::backoff::{self, PodBackoff};
use super::breaker::Breaker;
use super::provider::{GrantRequest, Outcome, PodIdentity, Provider};
use crate::api::Permission;
use crate::clock::Clock;

/// Revocation attempts before the finalizer is released anyway (with a Warning Event).
pub const REVOKE_ATTEMPTS: u32 = 5;
/// Least time between two revocation attempts of one pod: a terminating pod changes several times
/// in a few seconds, and the bound must cover a provider's blip, not a burst of watch events.
pub const REVOKE_SPACING_SECONDS: i64 = 10;
/// How long a replica's claim on a revocation holds before another may take over.
pub const CLAIM_SECONDS: i64 = 60;

/// One permission of a pod, as recorded.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GrantRecord {
    /// `namespace/group`.
    pub group: String,
    pub permission: String,
    pub provider: String,
    /// The provider's id, once it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `Granted`, `Pending`, `Failed`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the current request was first made (pending grants time out from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<Timestamp>,
}

/// Everything the server knows about one pod's grants: kept in the operator's namespace (never on
/// the pod, where a tenant could edit it into someone else's grant ids).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodRecord {
    pub pod: PodIdentity,
    #[serde(default)]
    pub grants: Vec<GrantRecord>,
    /// Every id a provider ever gave for this pod, `(provider, id)`: all are revoked, including a
    /// pending one that timed out (it may still be granted later).
    #[serde(default)]
    pub issued: Vec<(String, String)>,
    #[serde(default)]
    pub backoff: PodBackoff,
    /// `replica@time` of the replica revoking the grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoking: Option<String>,
    #[serde(default)]
    pub revoke_attempts: u32,
    /// When the last revocation attempt began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_revoke_at: Option<Timestamp>,
    /// Where the pod stands after its last step (for the SecureWorkload's summary).
    #[serde(default)]
    pub state: PodState,
    /// The newest failure of the pod's grants, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_at: Option<Timestamp>,
}

/// Where a pod's grants stand after its last step.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PodState {
    /// Waiting on a provider (a pending grant), or not stepped yet.
    #[default]
    Pending,
    /// Every permission granted: the pod may start.
    Granted,
    /// The last step failed: refused, an outage (backing off), an open breaker, a provider the
    /// tenant may not use.
    Failed,
}

/// A write lost against a concurrent one.
#[derive(Debug, PartialEq, Eq)]
pub struct Conflict;

/// Where records and breakers live. `version` is opaque (a resourceVersion); `None` on put means
/// "create, must not exist".
pub trait Store: Send + Sync {
    fn get_record(&self, uid: &str) -> impl Future<Output = Result<Option<(PodRecord, String)>, String>> + Send;
    fn put_record(
        &self,
        uid: &str,
        record: &PodRecord,
        version: Option<&str>,
    ) -> impl Future<Output = Result<Result<String, Conflict>, String>> + Send;
    fn delete_record(&self, uid: &str) -> impl Future<Output = Result<(), String>> + Send;
    fn get_breaker(&self, key: &str) -> impl Future<Output = Result<Breaker, String>> + Send;
    /// Read-modify-write of one breaker, retried by the store on conflicts.
    fn update_breaker(
        &self,
        key: &str,
        change: &(dyn Fn(&mut Breaker) -> bool + Send + Sync),
    ) -> impl Future<Output = Result<Breaker, String>> + Send;
}

/// A provider and how long to wait on it.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderSettings {
    pub provider: Provider,
    pub poll_interval: Duration,
    pub grant_timeout: Duration,
    /// Tenants that may use it (operator config `authorizationProviders.<name>.tenants`); empty:
    /// all.
    pub tenants: Vec<String>,
}

impl ProviderSettings {
    /// Whether pods of `tenant` may be granted through this provider.
    pub fn allows(&self, tenant: &str) -> bool {
        self.tenants.is_empty() || self.tenants.iter().any(|t| t == tenant)
    }
}

/// The configured providers by name, replaceable while the server runs: a provider's tenant
/// allow-list, endpoint or credentials changed in the operator config or its Secret take effect
/// at the next call, without a restart (the server reloads them, see `server::reload_providers`).
#[derive(Default)]
pub struct Providers(std::sync::RwLock<Arc<BTreeMap<String, ProviderSettings>>>);

impl Providers {
    pub fn new(providers: BTreeMap<String, ProviderSettings>) -> Self {
        Self(std::sync::RwLock::new(Arc::new(providers)))
    }

    /// The providers as configured now (a call holds on to one set throughout).
    pub fn current(&self) -> Arc<BTreeMap<String, ProviderSettings>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the providers; whether anything changed.
    pub fn replace(&self, providers: BTreeMap<String, ProviderSettings>) -> bool {
        let mut current = self.0.write().unwrap_or_else(|e| e.into_inner());
        let changed = **current != providers;
        if changed {
            *current = Arc::new(providers);
        }
        changed
    }
}

/// Why a permission of `group` cannot be asked for at all for pods of `tenant`: its provider is
/// not configured or not open to the tenant. Checked before any request, and mirrored into the
/// group's status by the server.
pub fn unusable(
    providers: &BTreeMap<String, ProviderSettings>,
    group: &GroupSpec,
    permission: &Permission,
    tenant: &str,
) -> Option<String> {
    let name = &permission.provider;
    match providers.get(name) {
        None => Some(format!(
            "PermissionGroup {}/{} permission {}: provider {name:?} is not configured (operator config authorizationProviders)",
            group.namespace, group.name, permission.name
        )),
        Some(settings) if !settings.allows(tenant) => Some(format!(
            "PermissionGroup {}/{} permission {}: provider {name:?} is not open to tenant {tenant:?} (operator config authorizationProviders.{name}.tenants)",
            group.namespace, group.name, permission.name
        )),
        Some(_) => None,
    }
}

/// A group of the pod's SecureWorkload, as read from the cluster.
#[derive(Clone, Debug)]
pub struct GroupSpec {
    pub namespace: String,
    pub name: String,
    /// The `scs.dev/authz-reset` annotation.
    pub reset: Option<String>,
    pub permissions: Vec<Permission>,
}

/// What the init container is told.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// Every permission granted: the init container exits 0.
    Granted,
    /// Ask again after `retry_after`.
    Waiting { retry_after: Duration, message: String },
}

/// Something worth an Event on the pod (the server glue emits them).
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// Counters the server exports as metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub requested: std::sync::atomic::AtomicU64,
    pub granted: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
    pub revoked: std::sync::atomic::AtomicU64,
    pub revoke_abandoned: std::sync::atomic::AtomicU64,
    pub backoff_waits: std::sync::atomic::AtomicU64,
    pub breaker_refusals: std::sync::atomic::AtomicU64,
    /// Permissions refused because their provider is not open to the pod's tenant.
    pub provider_refusals: std::sync::atomic::AtomicU64,
}

fn bump(counter: &std::sync::atomic::AtomicU64) {
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// The outcome of one revocation pass.
#[derive(Clone, Debug, PartialEq)]
pub enum Revocation {
    /// Nothing (left) to revoke: release the finalizer.
    Done,
    /// Another replica is on it: leave the pod alone.
    Busy,
    /// Some grants could not be revoked yet: try again after a while.
    Retry(String),
    /// Gave up after [`REVOKE_ATTEMPTS`]: release the finalizer and warn.
    Abandoned(String),
}

/// The engine of one replica.
pub struct Engine<S> {
    pub store: S,
    pub providers: Providers,
    pub clock: Clock,
    pub backoff: backoff::Params,
    /// Jitter draws (random in production, fixed in tests).
    pub jitter: fn() -> f64,
    /// Name of this replica, for revocation claims.
    pub replica: String,
    pub counters: Counters,
}

impl<S: Store> Engine<S> {
    /// One step of the pod's grants. `notes` collects what deserves an Event.
    pub async fn authorize(
        &self,
        pod: &PodIdentity,
        groups: &[GroupSpec],
        notes: &mut Vec<Note>,
    ) -> Result<Answer, String> {
        let now = self.clock.now();
        let providers = self.providers.current();
        let (mut record, mut version) = match self.store.get_record(&pod.uid).await? {
            Some((record, version)) => (record, Some(version)),
            None => (PodRecord { pod: pod.clone(), ..Default::default() }, None),
        };
        if record.revoking.is_some() {
            return Ok(waiting(Duration::from_secs(30), "the pod is being deleted"));
        }
        let wait = record.backoff.remaining(now);
        if !wait.is_zero() {
            bump(&self.counters.backoff_waits);
            let message = format!(
                "backing off after {} failed attempt(s): next try at {}",
                record.backoff.failures,
                record.backoff.next_attempt.map(|t| t.to_string()).unwrap_or_default()
            );
            return Ok(waiting(wait, &message));
        }

        let mut answer = Answer::Granted;
        let mut transient = None;
        // The newest failure of this step, for the pod's state and the workload's summary.
        let mut failure: Option<String> = None;
        for group in groups {
            let key = Breaker::key(&group.namespace, &group.name);
            let reset = group.reset.clone();
            let mut breaker = self.store.get_breaker(&key).await?;
            if reset.is_some() && reset != breaker.reset {
                breaker = self.store.update_breaker(&key, &move |b| b.observe_reset(reset.as_deref())).await?;
                notes.push(Note {
                    warning: false,
                    reason: "BreakerReset",
                    message: format!("PermissionGroup {}: breaker reset", group.name),
                });
            }
            if breaker.is_open() {
                bump(&self.counters.breaker_refusals);
                failure = Some(format!(
                    "PermissionGroup {}/{} is open: {}",
                    group.namespace,
                    group.name,
                    breaker.last_failure.as_deref().unwrap_or("unknown")
                ));
                let message = format!(
                    "PermissionGroup {} is open after {} consecutive failures ({}): fix it, then `kubectl annotate pg/{} scs.dev/authz-reset=$(date +%s) --overwrite`",
                    group.name,
                    breaker.failures,
                    breaker.last_failure.as_deref().unwrap_or("unknown"),
                    group.name
                );
                answer = merge(answer, waiting(Duration::from_secs(30), &message));
                continue;
            }
            for permission in &group.permissions {
                let group_ref = format!("{}/{}", group.namespace, group.name);
                let index =
                    match record.grants.iter().position(|g| g.group == group_ref && g.permission == permission.name) {
                        Some(index) => index,
                        None => {
                            record.grants.push(GrantRecord {
                                group: group_ref.clone(),
                                permission: permission.name.clone(),
                                provider: permission.provider.clone(),
                                state: "Pending".into(),
                                ..Default::default()
                            });
                            record.grants.len() - 1
                        }
                    };
                let grant = &mut record.grants[index];
                if grant.state == "Granted" {
                    continue;
                }
                let Some(settings) = providers.get(&permission.provider) else {
                    let why = format!(
                        "provider {:?} is not configured (operator config authorizationProviders)",
                        permission.provider
                    );
                    self.fail_permanently(&key, grant, &why, notes).await?;
                    failure = Some(why.clone());
                    answer = merge(answer, waiting(Duration::from_secs(30), &why));
                    continue;
                };
                // A provider of another tenant's: refused before any request. Not counted against
                // the breaker (the provider was never asked; the platform's list must change).
                if !settings.allows(&record.pod.tenant) {
                    let why = unusable(&providers, group, permission, &record.pod.tenant).unwrap_or_default();
                    if grant.state != "Failed" || grant.message.as_deref() != Some(why.as_str()) {
                        notes.push(Note { warning: true, reason: "ProviderNotAllowed", message: why.clone() });
                    }
                    grant.state = "Failed".into();
                    grant.message = Some(why.clone());
                    grant.requested_at = None;
                    bump(&self.counters.provider_refusals);
                    failure = Some(why.clone());
                    answer = merge(answer, waiting(Duration::from_secs(60), &why));
                    continue;
                }
                let outcome = match (&grant.id, grant.requested_at) {
                    (Some(id), Some(since)) if grant.state == "Pending" => {
                        if now.duration_since(since).unsigned_abs() > settings.grant_timeout {
                            // The stale id stays in `issued` and is revoked with the pod.
                            grant.id = None;
                            grant.requested_at = None;
                            Outcome::Transient(format!("still pending after {}s", settings.grant_timeout.as_secs()))
                        } else {
                            settings.provider.poll(id).await
                        }
                    }
                    _ => {
                        bump(&self.counters.requested);
                        grant.requested_at = Some(now);
                        let request = GrantRequest {
                            pod: record.pod.clone(),
                            permission_group: group_ref.clone(),
                            permission: permission.name.clone(),
                            params: permission.params.clone(),
                        };
                        settings.provider.request(&request).await
                    }
                };
                match outcome {
                    Outcome::Granted { id } => {
                        remember(&mut record.issued, &permission.provider, &id);
                        grant.id = Some(id);
                        grant.state = "Granted".into();
                        grant.message = None;
                        bump(&self.counters.granted);
                        notes.push(Note {
                            warning: false,
                            reason: "PermissionGranted",
                            message: format!("{group_ref}/{} granted by {}", permission.name, permission.provider),
                        });
                        let succeeded = self.store.get_breaker(&key).await?.failures != 0;
                        if succeeded {
                            self.store.update_breaker(&key, &|b| b.record_success()).await?;
                        }
                    }
                    Outcome::Pending { id } => {
                        remember(&mut record.issued, &permission.provider, &id);
                        grant.id = Some(id);
                        grant.state = "Pending".into();
                        let message = format!("{group_ref}/{}: pending at {}", permission.name, permission.provider);
                        grant.message = Some(message.clone());
                        answer = merge(answer, waiting(settings.poll_interval, &message));
                    }
                    Outcome::Permanent(why) => {
                        let why = format!("{group_ref}/{}: {} refused: {why}", permission.name, permission.provider);
                        self.fail_permanently(&key, grant, &why, notes).await?;
                        failure = Some(why.clone());
                        answer = merge(answer, waiting(Duration::from_secs(30), &why));
                    }
                    Outcome::Transient(why) => {
                        let why = format!("{group_ref}/{}: {}: {why}", permission.name, permission.provider);
                        // A pending grant is polled again after the wait; a failed request is
                        // made again.
                        grant.state = if grant.id.is_some() { "Pending" } else { "Failed" }.into();
                        grant.message = Some(why.clone());
                        bump(&self.counters.failed);
                        failure = Some(why.clone());
                        transient = Some(why);
                    }
                }
            }
        }
        if let Some(why) = transient {
            let wait = record.backoff.record_failure(&self.backoff, now, (self.jitter)());
            let message = format!("{why}; attempt {} failed, next in {}s", record.backoff.failures, wait.as_secs());
            notes.push(Note { warning: true, reason: "AuthorizationBackoff", message: message.clone() });
            answer = merge(answer, waiting(wait, &message));
        } else if answer == Answer::Granted {
            record.backoff.reset();
        }
        record.state = match (&answer, &failure) {
            (Answer::Granted, _) => PodState::Granted,
            (_, Some(_)) => PodState::Failed,
            (_, None) => PodState::Pending,
        };
        if let Some(why) = failure {
            record.last_failure = Some(why);
            record.last_failure_at = Some(now);
        }
        match self.store.put_record(&pod.uid, &record, version.as_deref()).await? {
            Ok(new) => version = Some(new),
            // Another replica stepped the same pod at the same time: its write stands; ask again.
            Err(Conflict) => return Ok(waiting(Duration::from_secs(1), "concurrent update, retrying")),
        }
        let _ = version;
        Ok(answer)
    }

    async fn fail_permanently(
        &self,
        key: &str,
        grant: &mut GrantRecord,
        why: &str,
        notes: &mut Vec<Note>,
    ) -> Result<(), String> {
        grant.state = "Failed".into();
        grant.message = Some(why.to_string());
        grant.requested_at = None;
        bump(&self.counters.failed);
        let owned = why.to_string();
        let breaker = self
            .store
            .update_breaker(key, &move |b| {
                b.record_failure(&owned);
                true
            })
            .await?;
        notes.push(Note { warning: true, reason: "PermissionRefused", message: why.to_string() });
        if breaker.failures == super::breaker::THRESHOLD {
            notes.push(Note {
                warning: true,
                reason: "BreakerOpen",
                message: format!("{key}: {} consecutive failures, no more requests until reset", breaker.failures),
            });
        }
        Ok(())
    }

    /// One revocation pass for a deleted pod.
    pub async fn revoke(&self, uid: &str) -> Result<Revocation, String> {
        let now = self.clock.now();
        let providers = self.providers.current();
        let Some((mut record, version)) = self.store.get_record(uid).await? else {
            return Ok(Revocation::Done);
        };
        if let Some(claim) = &record.revoking
            && let Some((who, at)) = claim.rsplit_once('@')
            && who != self.replica
            && at.parse::<Timestamp>().is_ok_and(|at| now.duration_since(at) < SignedDuration::from_secs(CLAIM_SECONDS))
        {
            return Ok(Revocation::Busy);
        }
        if let Some(last) = record.last_revoke_at
            && now.duration_since(last) < SignedDuration::from_secs(REVOKE_SPACING_SECONDS)
        {
            return Ok(Revocation::Retry("waiting between revocation attempts".into()));
        }
        record.revoking = Some(format!("{}@{now}", self.replica));
        record.revoke_attempts += 1;
        record.last_revoke_at = Some(now);
        let version = match self.store.put_record(uid, &record, Some(&version)).await? {
            Ok(version) => version,
            Err(Conflict) => return Ok(Revocation::Busy),
        };
        let mut left = Vec::new();
        let mut last_error = String::new();
        for (provider, id) in std::mem::take(&mut record.issued) {
            let result = match providers.get(&provider) {
                Some(settings) => settings.provider.revoke(&id).await,
                None => Err(format!("provider {provider:?} is no longer configured")),
            };
            match result {
                Ok(()) => bump(&self.counters.revoked),
                Err(why) => {
                    last_error = format!("{provider} grant {id}: {why}");
                    left.push((provider, id));
                }
            }
        }
        if left.is_empty() {
            self.store.delete_record(uid).await?;
            return Ok(Revocation::Done);
        }
        if record.revoke_attempts >= REVOKE_ATTEMPTS {
            bump(&self.counters.revoke_abandoned);
            self.store.delete_record(uid).await?;
            let ids: Vec<String> = left.iter().map(|(p, id)| format!("{p}/{id}")).collect();
            return Ok(Revocation::Abandoned(format!(
                "gave up revoking {} after {} attempts ({last_error}): revoke by hand",
                ids.join(", "),
                record.revoke_attempts
            )));
        }
        // Keep what is left and release the claim, so the next pass (any replica) retries.
        record.issued = left;
        record.revoking = None;
        let _ = self.store.put_record(uid, &record, Some(&version)).await?;
        Ok(Revocation::Retry(last_error))
    }
}

fn remember(issued: &mut Vec<(String, String)>, provider: &str, id: &str) {
    if !issued.iter().any(|(p, i)| p == provider && i == id) {
        issued.push((provider.to_string(), id.to_string()));
    }
}

fn waiting(retry_after: Duration, message: &str) -> Answer {
    Answer::Waiting { retry_after, message: message.to_string() }
}

/// Combines answers: any wait wins over granted; the longer wait and the first message stay.
fn merge(a: Answer, b: Answer) -> Answer {
    match (a, b) {
        (Answer::Granted, other) | (other, Answer::Granted) => other,
        (Answer::Waiting { retry_after: x, message }, Answer::Waiting { retry_after: y, .. }) => {
            Answer::Waiting { retry_after: x.max(y), message }
        }
    }
}

impl<T: Store> Store for std::sync::Arc<T> {
    async fn get_record(&self, uid: &str) -> Result<Option<(PodRecord, String)>, String> {
        (**self).get_record(uid).await
    }
    async fn put_record(
        &self,
        uid: &str,
        record: &PodRecord,
        version: Option<&str>,
    ) -> Result<Result<String, Conflict>, String> {
        (**self).put_record(uid, record, version).await
    }
    async fn delete_record(&self, uid: &str) -> Result<(), String> {
        (**self).delete_record(uid).await
    }
    async fn get_breaker(&self, key: &str) -> Result<Breaker, String> {
        (**self).get_breaker(key).await
    }
    async fn update_breaker(
        &self,
        key: &str,
        change: &(dyn Fn(&mut Breaker) -> bool + Send + Sync),
    ) -> Result<Breaker, String> {
        (**self).update_breaker(key, change).await
    }
}

/// A [`Store`] in memory, with versions like the API server's (tests; one process).
#[derive(Default)]
pub struct MemoryStore {
    records: std::sync::Mutex<BTreeMap<String, (PodRecord, u64)>>,
    breakers: std::sync::Mutex<BTreeMap<String, Breaker>>,
    next: std::sync::atomic::AtomicU64,
}

impl MemoryStore {
    fn bump(&self) -> u64 {
        self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
    }

    /// Number of records (tests).
    pub fn records(&self) -> usize {
        self.records.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Every record (tests: what a workload's summary is counted from).
    pub fn all_records(&self) -> Vec<PodRecord> {
        self.records.lock().map(|r| r.values().map(|(record, _)| record.clone()).collect()).unwrap_or_default()
    }
}

impl Store for MemoryStore {
    async fn get_record(&self, uid: &str) -> Result<Option<(PodRecord, String)>, String> {
        let records = self.records.lock().map_err(|e| e.to_string())?;
        Ok(records.get(uid).map(|(r, v)| (r.clone(), v.to_string())))
    }

    async fn put_record(
        &self,
        uid: &str,
        record: &PodRecord,
        version: Option<&str>,
    ) -> Result<Result<String, Conflict>, String> {
        let next = self.bump();
        let mut records = self.records.lock().map_err(|e| e.to_string())?;
        let current = records.get(uid).map(|(_, v)| v.to_string());
        if current.as_deref() != version {
            return Ok(Err(Conflict));
        }
        records.insert(uid.to_string(), (record.clone(), next));
        Ok(Ok(next.to_string()))
    }

    async fn delete_record(&self, uid: &str) -> Result<(), String> {
        self.records.lock().map_err(|e| e.to_string())?.remove(uid);
        Ok(())
    }

    async fn get_breaker(&self, key: &str) -> Result<Breaker, String> {
        Ok(self.breakers.lock().map_err(|e| e.to_string())?.get(key).cloned().unwrap_or_default())
    }

    async fn update_breaker(
        &self,
        key: &str,
        change: &(dyn Fn(&mut Breaker) -> bool + Send + Sync),
    ) -> Result<Breaker, String> {
        let mut breakers = self.breakers.lock().map_err(|e| e.to_string())?;
        let breaker = breakers.entry(key.to_string()).or_default();
        change(breaker);
        Ok(breaker.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(tenants: &[&str]) -> ProviderSettings {
        ProviderSettings {
            provider: Provider {
                endpoint: "https://perm.example.com".into(),
                token: String::new(),
                request_timeout: Duration::from_secs(1),
            },
            poll_interval: Duration::from_secs(1),
            grant_timeout: Duration::from_secs(1),
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn a_permission_is_unusable_when_its_provider_is_missing_or_not_open_to_the_tenant() {
        let providers =
            BTreeMap::from([("cmdb".to_string(), settings(&[])), ("acl".to_string(), settings(&["globex"]))]);
        let group =
            GroupSpec { namespace: "acme-prod".into(), name: "orders".into(), reset: None, permissions: vec![] };
        let permission =
            |provider: &str| Permission { name: "db".into(), provider: provider.into(), ..Default::default() };
        assert_eq!(unusable(&providers, &group, &permission("cmdb"), "acme"), None, "open to all");
        assert_eq!(unusable(&providers, &group, &permission("acl"), "globex"), None, "listed");
        let refused = unusable(&providers, &group, &permission("acl"), "acme").unwrap();
        assert_eq!(
            refused,
            "PermissionGroup acme-prod/orders permission db: provider \"acl\" is not open to tenant \"acme\" (operator config authorizationProviders.acl.tenants)"
        );
        // A namespace without a tenant label gets nothing from a listed provider.
        assert!(unusable(&providers, &group, &permission("acl"), "").is_some());
        let missing = unusable(&providers, &group, &permission("ldap"), "acme").unwrap();
        assert!(missing.contains("\"ldap\" is not configured"), "{missing}");
    }
}
