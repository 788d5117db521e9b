//! Pod pre-authorization against a fake provider: a real HTTP server in the test speaking the
//! provider protocol, the engine of one or two authz-server replicas, and a clock the test moves.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::jiff::SignedDuration;
use scs_operator::api::Permission;
use scs_operator::authz::backoff::Params;
use scs_operator::authz::engine::{
    Answer, Engine, GroupSpec, MemoryStore, Note, PodState, ProviderSettings, Providers, Revocation, Store,
};
use scs_operator::authz::provider::{PodIdentity, Provider};
use scs_operator::authz::summary::summarize;
use scs_operator::clock::ManualClock;

/// How the fake provider answers `POST /grants`.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Grant,
    /// Pending for this many polls, then granted.
    PendingFor(u32),
    Refuse,
    Down,
}

#[derive(Default)]
struct Provided {
    mode: Option<Mode>,
    posts: Vec<serde_json::Value>,
    polls: u32,
    deletes: Vec<String>,
    /// Whether `DELETE` fails with 503.
    delete_down: bool,
    seen_tokens: Vec<String>,
}

type Shared = Arc<Mutex<Provided>>;

async fn handle(
    state: Shared,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let token = request.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = request.into_body().collect().await?.to_bytes();
    let mut s = state.lock().unwrap();
    s.seen_tokens.push(token);
    let mode = s.mode.unwrap_or(Mode::Grant);
    let (status, answer) = if mode == Mode::Down && method != hyper::Method::DELETE {
        (503, String::new())
    } else if method == hyper::Method::POST && path == "/grants" {
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        s.posts.push(json);
        let id = format!("g{}", s.posts.len());
        match mode {
            Mode::Grant => (201, format!(r#"{{"id":"{id}","state":"granted"}}"#)),
            Mode::PendingFor(_) => (202, format!(r#"{{"id":"{id}","state":"pending"}}"#)),
            Mode::Refuse => (400, "unknown database".to_string()),
            Mode::Down => unreachable!(),
        }
    } else if method == hyper::Method::GET {
        s.polls += 1;
        let id = path.trim_start_matches("/grants/");
        let state = match mode {
            Mode::PendingFor(n) if s.polls <= n => "pending",
            _ => "granted",
        };
        (200, format!(r#"{{"id":"{id}","state":"{state}"}}"#))
    } else if method == hyper::Method::DELETE {
        if s.delete_down {
            (503, String::new())
        } else {
            s.deletes.push(path.trim_start_matches("/grants/").to_string());
            (204, String::new())
        }
    } else {
        (404, String::new())
    };
    Ok(hyper::Response::builder().status(status).body(Full::new(Bytes::from(answer))).unwrap())
}

async fn fake_provider() -> (SocketAddr, Shared) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let state: Shared = Arc::default();
    let shared = state.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let state = shared.clone();
            tokio::spawn(async move {
                let service = service_fn(move |r| handle(state.clone(), r));
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    (address, state)
}

fn pod(uid: &str) -> PodIdentity {
    PodIdentity {
        namespace: "acme-prod".into(),
        name: format!("web-{uid}"),
        uid: uid.into(),
        ip: "10.244.0.7".into(),
        node: "node-1".into(),
        tenant: "acme".into(),
        workload: "web".into(),
    }
}

fn group(reset: Option<&str>) -> Vec<GroupSpec> {
    vec![GroupSpec {
        namespace: "acme-prod".into(),
        name: "orders".into(),
        reset: reset.map(String::from),
        permissions: vec![Permission {
            name: "orders-db".into(),
            provider: "cmdb".into(),
            params: BTreeMap::from([("database".to_string(), "orders".to_string())]),
        }],
    }]
}

fn engine(
    address: SocketAddr,
    store: Arc<MemoryStore>,
    clock: &ManualClock,
    replica: &str,
) -> Engine<Arc<MemoryStore>> {
    engine_for_tenants(address, store, clock, replica, &[])
}

/// Provider `cmdb` at `address`, open only to `tenants` (empty: to all).
fn cmdb(address: SocketAddr, tenants: &[&str]) -> BTreeMap<String, ProviderSettings> {
    let provider = Provider {
        endpoint: format!("http://{address}"),
        token: "provider-secret".into(),
        request_timeout: Duration::from_secs(2),
    };
    let settings = ProviderSettings {
        provider,
        poll_interval: Duration::from_secs(5),
        grant_timeout: Duration::from_secs(600),
        tenants: tenants.iter().map(|t| t.to_string()).collect(),
    };
    BTreeMap::from([("cmdb".to_string(), settings)])
}

/// An engine whose provider `cmdb` is open only to `tenants` (empty: to all).
fn engine_for_tenants(
    address: SocketAddr,
    store: Arc<MemoryStore>,
    clock: &ManualClock,
    replica: &str,
    tenants: &[&str],
) -> Engine<Arc<MemoryStore>> {
    Engine {
        store,
        providers: Providers::new(cmdb(address, tenants)),
        clock: clock.clock(),
        backoff: Params::default(),
        jitter: || 0.5,
        replica: replica.into(),
        counters: Default::default(),
    }
}

fn start() -> ManualClock {
    ManualClock::at("2026-12-02T02:00:00Z".parse().unwrap())
}

#[tokio::test]
async fn an_immediate_grant_lets_the_pod_start_and_the_provider_sees_who_asks() {
    let (address, provided) = fake_provider().await;
    let clock = start();
    let engine = engine(address, Arc::default(), &clock, "r1");
    let mut notes = Vec::new();
    assert_eq!(engine.authorize(&pod("u1"), &group(None), &mut notes).await.unwrap(), Answer::Granted);
    // A second call (an init container restarted) asks the provider nothing more.
    assert_eq!(engine.authorize(&pod("u1"), &group(None), &mut notes).await.unwrap(), Answer::Granted);
    let provided = provided.lock().unwrap();
    assert_eq!(provided.posts.len(), 1);
    let post = &provided.posts[0];
    assert_eq!(post["pod"]["uid"], "u1");
    assert_eq!(post["pod"]["ip"], "10.244.0.7");
    assert_eq!(post["pod"]["tenant"], "acme");
    assert_eq!(post["permissionGroup"], "acme-prod/orders");
    assert_eq!(post["params"]["database"], "orders");
    assert!(provided.seen_tokens.iter().all(|t| t == "Bearer provider-secret"));
    assert!(notes.iter().any(|n| n.reason == "PermissionGranted"), "{notes:?}");
}

#[tokio::test]
async fn pending_then_granted() {
    let (address, provided) = fake_provider().await;
    provided.lock().unwrap().mode = Some(Mode::PendingFor(2));
    let clock = start();
    let engine = engine(address, Arc::default(), &clock, "r1");
    let mut notes = Vec::new();
    // The request, then two polls, answer pending; the third poll grants.
    for _ in 0..3 {
        let answer = engine.authorize(&pod("u1"), &group(None), &mut notes).await.unwrap();
        assert!(
            matches!(&answer, Answer::Waiting { retry_after, message } if *retry_after == Duration::from_secs(5) && message.contains("pending")),
            "{answer:?}"
        );
        clock.advance(SignedDuration::from_secs(5));
    }
    assert_eq!(engine.authorize(&pod("u1"), &group(None), &mut notes).await.unwrap(), Answer::Granted);
    let provided = provided.lock().unwrap();
    assert_eq!((provided.posts.len(), provided.polls), (1, 3), "one request, then polls");
}

#[tokio::test]
async fn permanent_failures_open_the_breaker_after_three_until_reset() {
    let (address, provided) = fake_provider().await;
    provided.lock().unwrap().mode = Some(Mode::Refuse);
    let clock = start();
    let store: Arc<MemoryStore> = Arc::default();
    let engine = engine(address, store, &clock, "r1");
    let mut notes: Vec<Note> = Vec::new();
    // Three pods (or one pod three times) fail: the third opens the breaker.
    for uid in ["u1", "u2", "u3"] {
        let answer = engine.authorize(&pod(uid), &group(None), &mut notes).await.unwrap();
        assert!(
            matches!(&answer, Answer::Waiting { message, .. } if message.contains("unknown database")),
            "{answer:?}"
        );
    }
    assert!(notes.iter().any(|n| n.reason == "BreakerOpen" && n.warning), "{notes:?}");
    // Open: the provider is not asked again, whoever asks.
    for uid in ["u1", "u4"] {
        let answer = engine.authorize(&pod(uid), &group(None), &mut notes).await.unwrap();
        assert!(
            matches!(&answer, Answer::Waiting { message, .. } if message.contains("is open") && message.contains("authz-reset")),
            "{answer:?}"
        );
    }
    assert_eq!(provided.lock().unwrap().posts.len(), 3);
    // The parameter is fixed at the provider, and someone resets the group.
    provided.lock().unwrap().mode = Some(Mode::Grant);
    let reset = group(Some("1764640800"));
    assert_eq!(engine.authorize(&pod("u4"), &reset, &mut notes).await.unwrap(), Answer::Granted);
    assert_eq!(engine.authorize(&pod("u1"), &reset, &mut notes).await.unwrap(), Answer::Granted);
    assert!(notes.iter().any(|n| n.reason == "BreakerReset"), "{notes:?}");
    assert_eq!(provided.lock().unwrap().posts.len(), 5);
}

#[tokio::test]
async fn a_transient_outage_backs_off_by_the_clock_and_recovers() {
    let (address, provided) = fake_provider().await;
    provided.lock().unwrap().mode = Some(Mode::Down);
    let clock = start();
    let engine = engine(address, Arc::default(), &clock, "r1");
    let mut notes = Vec::new();
    // Jitter draw 0.5: each wait is 1.5 times the step (2, 4, 8, 16, 32 min, then the 1 h cap).
    let expected_minutes = [3, 6, 12, 24, 48, 90, 90];
    for (attempt, minutes) in expected_minutes.iter().enumerate() {
        let answer = engine.authorize(&pod("u1"), &group(None), &mut notes).await.unwrap();
        let Answer::Waiting { retry_after, .. } = answer else { panic!("granted during the outage") };
        assert_eq!(retry_after, Duration::from_secs(minutes * 60), "attempt {}", attempt + 1);
        // Asking again before the wait is over reaches no provider.
        clock.advance(SignedDuration::from_secs(*minutes as i64 * 60 - 1));
        let early = engine.authorize(&pod("u1"), &group(None), &mut notes).await.unwrap();
        assert!(
            matches!(&early, Answer::Waiting { retry_after, message } if *retry_after == Duration::from_secs(1) && message.contains("backing off")),
            "{early:?}"
        );
        assert_eq!(provided.lock().unwrap().seen_tokens.len(), attempt + 1);
        clock.advance(SignedDuration::from_secs(1));
    }
    // The transient failures never opened the breaker: the provider comes back, the pod goes on.
    provided.lock().unwrap().mode = Some(Mode::Grant);
    assert_eq!(engine.authorize(&pod("u1"), &group(None), &mut notes).await.unwrap(), Answer::Granted);
    assert!(engine.counters.backoff_waits.load(std::sync::atomic::Ordering::Relaxed) >= 7);
}

#[tokio::test]
async fn a_deleted_pod_is_revoked_exactly_once_by_two_replicas() {
    let (address, provided) = fake_provider().await;
    let clock = start();
    let store: Arc<MemoryStore> = Arc::default();
    let first = engine(address, store.clone(), &clock, "r1");
    let second = engine(address, store.clone(), &clock, "r2");
    let mut notes = Vec::new();
    assert_eq!(first.authorize(&pod("u1"), &group(None), &mut notes).await.unwrap(), Answer::Granted);
    // Both replicas see the deletion at the same time.
    let (a, b) = tokio::join!(first.revoke("u1"), second.revoke("u1"));
    let results = [a.unwrap(), b.unwrap()];
    assert!(results.contains(&Revocation::Done), "{results:?}");
    // Whichever lost the race saw the claim or, later, nothing left; a third look finds nothing.
    assert_eq!(second.revoke("u1").await.unwrap(), Revocation::Done);
    assert_eq!(provided.lock().unwrap().deletes, ["g1"]);
    assert_eq!(store.records(), 0);
}

#[tokio::test]
async fn a_provider_down_at_revocation_releases_the_pod_after_the_bound() {
    let (address, provided) = fake_provider().await;
    let clock = start();
    let store: Arc<MemoryStore> = Arc::default();
    let engine = engine(address, store.clone(), &clock, "r1");
    let mut notes = Vec::new();
    assert_eq!(engine.authorize(&pod("u1"), &group(None), &mut notes).await.unwrap(), Answer::Granted);
    provided.lock().unwrap().delete_down = true;
    for attempt in 1..scs_operator::authz::engine::REVOKE_ATTEMPTS {
        let result = engine.revoke("u1").await.unwrap();
        assert!(matches!(&result, Revocation::Retry(why) if why.contains("HTTP 503")), "attempt {attempt}: {result:?}");
        // A burst of watch events does not use up the attempts: they are spaced in time.
        let early = engine.revoke("u1").await.unwrap();
        assert!(matches!(&early, Revocation::Retry(why) if why.contains("waiting between")), "{early:?}");
        clock.advance(SignedDuration::from_secs(scs_operator::authz::engine::REVOKE_SPACING_SECONDS));
    }
    let last = engine.revoke("u1").await.unwrap();
    assert!(
        matches!(&last, Revocation::Abandoned(why) if why.contains("cmdb/g1") && why.contains("revoke by hand")),
        "{last:?}"
    );
    assert_eq!(engine.counters.revoke_abandoned.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(store.records(), 0);
    assert!(provided.lock().unwrap().deletes.is_empty());
}

#[tokio::test]
async fn a_provider_not_open_to_the_tenant_is_never_asked() {
    let (address, provided) = fake_provider().await;
    let clock = start();
    let store: Arc<MemoryStore> = Arc::default();
    // The platform opened cmdb to globex and initech only; acme's project admin names it anyway.
    let engine = engine_for_tenants(address, store.clone(), &clock, "r1", &["globex", "initech"]);
    let mut notes = Vec::new();
    for _ in 0..4 {
        let answer = engine.authorize(&pod("u1"), &group(None), &mut notes).await.unwrap();
        assert!(
            matches!(&answer, Answer::Waiting { message, .. }
                if message.contains("PermissionGroup acme-prod/orders") && message.contains("\"cmdb\"")
                    && message.contains("not open to tenant \"acme\"") && message.contains("authorizationProviders.cmdb.tenants")),
            "{answer:?}"
        );
    }
    assert!(provided.lock().unwrap().seen_tokens.is_empty(), "the provider was never called");
    // One Warning per change of verdict, not one per call.
    let refusals: Vec<&Note> = notes.iter().filter(|n| n.reason == "ProviderNotAllowed").collect();
    assert_eq!(refusals.len(), 1, "{notes:?}");
    assert!(refusals[0].warning && refusals[0].message.contains("permission orders-db"));
    // Not the provider's failure: the group's breaker stays closed for the tenants it serves.
    assert!(!store.get_breaker("acme-prod/orders").await.unwrap().is_open());
    assert_eq!(store.get_breaker("acme-prod/orders").await.unwrap().failures, 0);
    let record = &store.all_records()[0];
    assert_eq!(record.state, PodState::Failed);
    assert!(record.last_failure.as_deref().unwrap().contains("not open to tenant"));
    // A pod whose tenant is listed is served as usual (the pod's tenant comes from its namespace's
    // label, which tenants cannot change).
    let globex = PodIdentity { tenant: "globex".into(), ..pod("u2") };
    assert_eq!(engine.authorize(&globex, &group(None), &mut notes).await.unwrap(), Answer::Granted);
    assert_eq!(provided.lock().unwrap().posts.len(), 1);
    // The platform opens cmdb to acme too (the server reloads its providers; no restart): the
    // waiting pod goes on by itself.
    assert!(engine.providers.replace(cmdb(address, &["globex", "acme"])), "a change");
    assert!(!engine.providers.replace(cmdb(address, &["globex", "acme"])), "the same list again");
    assert_eq!(engine.authorize(&pod("u1"), &group(None), &mut notes).await.unwrap(), Answer::Granted);
    assert_eq!(store.all_records().iter().filter(|r| r.state == PodState::Granted).count(), 2);
    // And closes it to globex again: its next pod is refused at once, not after a restart.
    assert!(engine.providers.replace(cmdb(address, &["acme"])));
    let later = PodIdentity { tenant: "globex".into(), ..pod("u3") };
    assert!(matches!(engine.authorize(&later, &group(None), &mut notes).await.unwrap(), Answer::Waiting { .. }));
    assert_eq!(provided.lock().unwrap().posts.len(), 2, "only acme's pod reached the provider");
}

#[tokio::test]
async fn the_workload_summary_counts_its_pods_as_the_provider_answers() {
    let (address, provided) = fake_provider().await;
    let clock = start();
    let store: Arc<MemoryStore> = Arc::default();
    let engine = engine(address, store.clone(), &clock, "r1");
    let mut notes = Vec::new();
    // u1 granted at once; u2 pending at the provider; u3 refused; u4 meets an outage.
    assert_eq!(engine.authorize(&pod("u1"), &group(None), &mut notes).await.unwrap(), Answer::Granted);
    provided.lock().unwrap().mode = Some(Mode::PendingFor(10));
    engine.authorize(&pod("u2"), &group(None), &mut notes).await.unwrap();
    provided.lock().unwrap().mode = Some(Mode::Refuse);
    clock.advance(SignedDuration::from_secs(60));
    engine.authorize(&pod("u3"), &group(None), &mut notes).await.unwrap();
    provided.lock().unwrap().mode = Some(Mode::Down);
    clock.advance(SignedDuration::from_secs(60));
    engine.authorize(&pod("u4"), &group(None), &mut notes).await.unwrap();
    let summary = summarize(&store.all_records(), Vec::new());
    assert_eq!((summary.pods, summary.granted, summary.pending, summary.failed), (4, 1, 1, 2));
    // The newest failure is the outage, named with its pod and time.
    let last = summary.last_failure.unwrap();
    assert!(last.starts_with("pod web-u4: acme-prod/orders/orders-db: cmdb:") && last.contains("503"), "{last}");
    assert_eq!(summary.last_failure_time.unwrap().0.to_string(), "2026-12-02T02:02:00Z");
    // The pending grant is granted; u1 goes (its record is claimed, then removed).
    provided.lock().unwrap().mode = Some(Mode::Grant);
    clock.advance(SignedDuration::from_secs(5));
    assert_eq!(engine.authorize(&pod("u2"), &group(None), &mut notes).await.unwrap(), Answer::Granted);
    assert_eq!(engine.revoke("u1").await.unwrap(), Revocation::Done);
    let summary = summarize(&store.all_records(), vec!["orders".into()]);
    assert_eq!((summary.pods, summary.granted, summary.pending, summary.failed), (3, 1, 0, 2));
    assert_eq!(summary.open_groups, ["orders"]);
}
