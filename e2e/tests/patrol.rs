//! Patrol runs against the fake API server, reporting to fake DingTalk, Feishu and webhook
//! receivers (in-process HTTP servers) that check each platform's signature recipe independently
//! of the operator's code. Time is a clock the test sets: no waiting for the schedule.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use e2e::harness::{Harness, eventually};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use k8s_openapi::jiff::Timestamp;
use scs_operator::clock::ManualClock;
use scs_operator::controller::RunOptions;
use scs_operator::patrol::deliver::Policy;
use serde_json::{Value, json};

const PATROL: &str = "/apis/scs.dev/v1alpha1/patrols/daily";

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Received {
    query: HashMap<String, String>,
    headers: HashMap<String, String>,
    raw: Vec<u8>,
    body: Value,
}

/// What a receiver answers: a status and body, after an optional delay.
#[derive(Clone)]
struct Reply(u16, Value, Duration);

/// A fake robot: records requests, answers from a script, then with its default.
#[derive(Clone)]
struct Receiver {
    address: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
}

impl Receiver {
    async fn start(default: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let receiver = Self { address, got: Arc::default(), script: Arc::default() };
        let shared = receiver.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (shared, default) = (shared.clone(), default.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (shared, default) = (shared.clone(), default.clone());
                        async move {
                            let query = form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
                                .into_owned()
                                .collect();
                            let headers = request
                                .headers()
                                .iter()
                                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                                .collect();
                            let raw = request.into_body().collect().await.unwrap().to_bytes().to_vec();
                            let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
                            shared.got.lock().unwrap().push(Received { query, headers, raw, body });
                            let Reply(status, answer, delay) = shared
                                .script
                                .lock()
                                .unwrap()
                                .pop_front()
                                .unwrap_or(Reply(200, default, Duration::ZERO));
                            tokio::time::sleep(delay).await;
                            let response = Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(answer.to_string())))
                                .unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        receiver
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn then(&self, reply: Reply) {
        self.script.lock().unwrap().push_back(reply);
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), message).as_ref().to_vec()
}

/// DingTalk's documented check: sign == base64(HmacSHA256(secret, timestamp + "\n" + secret)),
/// timestamp in milliseconds within an hour of now.
fn dingtalk_signed(request: &Received, secret: &str) -> bool {
    let (Some(timestamp), Some(sign)) = (request.query.get("timestamp"), request.query.get("sign")) else {
        return false;
    };
    let Ok(ms) = timestamp.parse::<i64>() else { return false };
    let fresh = (Timestamp::now().as_millisecond() - ms).abs() < 3_600_000;
    fresh && *sign == STANDARD.encode(hmac(secret.as_bytes(), format!("{timestamp}\n{secret}").as_bytes()))
}

/// Feishu's documented check: sign == base64(HmacSHA256(key = timestamp + "\n" + secret, "")),
/// timestamp in seconds, both in the body.
fn feishu_signed(request: &Received, secret: &str) -> bool {
    let (Some(timestamp), Some(sign)) = (request.body["timestamp"].as_str(), request.body["sign"].as_str()) else {
        return false;
    };
    let Ok(seconds) = timestamp.parse::<i64>() else { return false };
    let fresh = (Timestamp::now().as_second() - seconds).abs() < 3600;
    fresh && sign == STANDARD.encode(hmac(format!("{timestamp}\n{secret}").as_bytes(), b""))
}

fn secret(name: &str, data: &[(&str, &str)]) -> (&'static str, Value) {
    let data: serde_json::Map<String, Value> =
        data.iter().map(|(k, v)| (k.to_string(), json!(STANDARD.encode(v)))).collect();
    (
        "/api/v1/namespaces/scs-system/secrets",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "scs-system"}, "data": data}),
    )
}

fn channel(name: &str, spec: Value) -> (&'static str, Value) {
    (
        "/apis/scs.dev/v1alpha1/notificationchannels",
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "NotificationChannel", "metadata": {"name": name}, "spec": spec}),
    )
}

fn patrol(spec: Value) -> (&'static str, Value) {
    (
        "/apis/scs.dev/v1alpha1/patrols",
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "Patrol", "metadata": {"name": "daily"}, "spec": spec}),
    )
}

fn quick() -> Policy {
    Policy { attempts: 3, first_backoff: Duration::from_millis(20), timeout: Duration::from_millis(500) }
}

/// 09:00:30 in Shanghai on 2026-12-01: just after the daily 09:00 run.
fn clock() -> ManualClock {
    ManualClock::at("2026-12-01T01:00:30Z".parse().unwrap())
}

async fn start(objects: &[(&str, Value)], clock: &ManualClock) -> Harness {
    Harness::start_seeded_with(objects, RunOptions { clock: clock.clock(), delivery: quick() }).await
}

/// Tenants e1..e5 expiring in 1..5 days, and `acme` with its cpu quota 96% used.
async fn troubled_tenants(harness: &Harness) {
    for day in 1..=5 {
        harness
            .create_tenant(
                json!({"apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": format!("e{day}")},
                "spec": {"expiresAt": format!("2026-12-{:02}T12:00:00Z", 1 + day)}}),
            )
            .await;
    }
    harness
        .create_tenant(json!({"apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "acme"},
            "spec": {"namespaces": ["acme-prod"], "quota": {"cpu": "16", "memory": "64Gi"}}}))
        .await;
    let quota = "/api/v1/namespaces/acme-prod/resourcequotas/scs-tenant-quota";
    eventually("acme's quota", || async { harness.server.get(quota).is_some() }).await;
    harness.server.set_status(quota, json!({"hard": {"requests.cpu": "16"}, "used": {"requests.cpu": "15400m"}}));
    eventually("acme's usage in its status", || async {
        harness
            .server
            .get("/apis/scs.dev/v1alpha1/tenants/acme")
            .is_some_and(|t| t["status"]["quota"]["used"]["requests.cpu"].is_string())
    })
    .await;
    for name in ["e1", "e2", "e3", "e4", "e5"] {
        eventually("tenant ready", || async { harness.is_ready(name) }).await;
    }
}

fn status(harness: &Harness) -> Value {
    harness.server.get(PATROL).map(|p| p["status"].clone()).unwrap_or_default()
}

fn delivery<'a>(status: &'a Value, channel: &str) -> &'a Value {
    status["lastRun"]["deliveries"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == channel))
        .unwrap_or(&Value::Null)
}

async fn finished(harness: &Harness, run: &str) -> Value {
    eventually(&format!("run {run} finished"), || async {
        let s = status(harness);
        s["lastRun"]["id"] == run && s["lastRun"]["finishedAt"].is_string()
    })
    .await;
    status(harness)
}

#[tokio::test]
async fn dingtalk_gets_a_signed_markdown_report_with_keyword_cap_and_hidden_amounts() {
    let ding = Receiver::start(json!({"errcode": 0, "errmsg": "ok"})).await;
    let clock = clock();
    let url = ding.url("/robot/send?access_token=TOKEN123");
    let harness = start(
        &[
            secret("ops-dingtalk", &[("url", &url), ("secret", "SECdingsecret")]),
            channel("ops", json!({"type": "dingtalk", "secretRef": {"name": "ops-dingtalk"}, "keyword": "巡检", "maxListLength": 3, "hideAmounts": true})),
        ],
        &clock,
    )
    .await;
    troubled_tenants(&harness).await;
    let (path, object) = patrol(json!({"schedule": "0 9 * * *", "timeZone": "Asia/Shanghai", "channels": ["ops"]}));
    harness.server.insert(path, object);
    let status = finished(&harness, "2026-12-01T09:00:00+08:00").await;
    let got = ding.got();
    assert_eq!(got.len(), 1, "one message");
    let request = &got[0];
    assert_eq!(request.query.get("access_token").map(String::as_str), Some("TOKEN123"));
    assert!(dingtalk_signed(request, "SECdingsecret"), "DingTalk signature: {:?}", request.query);
    assert!(!dingtalk_signed(request, "SECother"), "the check can fail");
    assert_eq!(request.body["msgtype"], "markdown");
    let title = request.body["markdown"]["title"].as_str().unwrap();
    let text = request.body["markdown"]["text"].as_str().unwrap();
    assert!(
        title.contains("巡检") && text.starts_with("### [巡检]"),
        "keyword in title and first line: {title} / {text}"
    );
    assert!(title.contains("6 finding(s), 1 critical"), "{title}");
    assert!(text.contains("expiry 5 · quota 1"), "counts cover every finding: {text}");
    let listed = text.lines().filter(|l| l.starts_with(|c: char| c.is_ascii_digit())).count();
    assert_eq!(listed, 3, "capped at maxListLength: {text}");
    assert!(text.contains("… and 3 more"), "{text}");
    assert!(text.contains("1. 🔴 **acme** requests.cpu: quota 96% used"), "most urgent first: {text}");
    assert!(!text.contains("15400m") && !text.contains(" of 16"), "amounts hidden: {text}");
    // Status: the run, its findings, the delivery; never the URL or secret.
    assert_eq!(status["lastRun"]["items"], 6);
    assert_eq!(status["lastRun"]["counts"]["expiry"], 5);
    let ops = delivery(&status, "ops");
    assert_eq!(
        (ops["result"].as_str(), ops["platform"].as_str(), ops["attempts"].as_i64()),
        (Some("Delivered"), Some("dingtalk"), Some(1))
    );
    let everything = format!(
        "{} {:?}",
        harness.server.list("/apis/scs.dev/v1alpha1/patrols")[0],
        harness.server.list("/apis/events.k8s.io/v1/events")
    );
    assert!(
        !everything.contains("TOKEN123") && !everything.contains("SECdingsecret"),
        "no credentials in status or Events"
    );
    let channel = harness.server.get("/apis/scs.dev/v1alpha1/notificationchannels/ops").unwrap();
    assert_eq!(channel["status"]["lastDelivery"]["result"], "Delivered");
    harness.stop().await;
}

#[tokio::test]
async fn feishu_gets_a_signed_card_and_a_platform_error_code_is_a_failure() {
    let feishu = Receiver::start(json!({"code": 0, "msg": "success"})).await;
    feishu.then(Reply(
        200,
        json!({"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"}),
        Duration::ZERO,
    ));
    let clock = clock();
    let harness = start(
        &[
            secret("team-feishu", &[("url", &feishu.url("/open-apis/bot/v2/hook/abc")), ("secret", "feishu-secret")]),
            channel("team", json!({"type": "feishu", "secretRef": {"name": "team-feishu"}})),
        ],
        &clock,
    )
    .await;
    troubled_tenants(&harness).await;
    let (path, object) = patrol(json!({"schedule": "0 9 * * *", "timeZone": "Asia/Shanghai", "channels": ["team"]}));
    harness.server.insert(path, object);
    let status = finished(&harness, "2026-12-01T09:00:00+08:00").await;
    let got = feishu.got();
    assert_eq!(got.len(), 1, "a platform error is not retried");
    assert!(feishu_signed(&got[0], "feishu-secret"), "Feishu signature: {}", got[0].body);
    assert!(!feishu_signed(&got[0], "other"), "the check can fail");
    assert_eq!(got[0].body["msg_type"], "interactive");
    assert_eq!(got[0].body["card"]["header"]["template"], "red");
    let text = got[0].body["card"]["elements"][2]["text"]["content"].as_str().unwrap();
    assert!(text.contains("(15400m of 16)"), "amounts shown unless hidden: {text}");
    let team = delivery(&status, "team");
    assert_eq!(team["result"], "Failed");
    assert!(team["message"].as_str().unwrap().contains("Feishu code 19021"), "{team}");
    assert!(harness.event_reasons().contains(&"DeliveryFailed".to_string()));

    // The next day's run goes through.
    clock.set("2026-12-02T01:00:30Z".parse().unwrap());
    harness.server.touch(PATROL, "test/poke", "1");
    let status = finished(&harness, "2026-12-02T09:00:00+08:00").await;
    assert_eq!(delivery(&status, "team")["result"], "Delivered");
    assert_eq!(feishu.got().len(), 2);
    harness.stop().await;
}

#[tokio::test]
async fn webhooks_are_retried_on_5xx_and_timeouts_and_signed() {
    let hook = Receiver::start(json!({})).await;
    hook.then(Reply(503, json!({}), Duration::ZERO));
    hook.then(Reply(200, json!({}), Duration::from_secs(2)));
    let clock = clock();
    let harness = start(
        &[
            secret("hook", &[("url", &hook.url("/scs")), ("secret", "hook-secret")]),
            channel("hook", json!({"secretRef": {"name": "hook"}})),
        ],
        &clock,
    )
    .await;
    troubled_tenants(&harness).await;
    let (path, object) = patrol(json!({"schedule": "0 9 * * *", "timeZone": "Asia/Shanghai", "channels": ["hook"]}));
    harness.server.insert(path, object);
    let status = finished(&harness, "2026-12-01T09:00:00+08:00").await;
    let hook_delivery = delivery(&status, "hook");
    assert_eq!(
        (hook_delivery["result"].as_str(), hook_delivery["attempts"].as_i64()),
        (Some("Delivered"), Some(3)),
        "{hook_delivery}"
    );
    assert_eq!(hook_delivery["platform"], "webhook", "recognised from the URL");
    let got = hook.got();
    assert_eq!(got.len(), 3);
    let last = &got[2];
    let timestamp = &last.headers["x-scs-timestamp"];
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(&last.raw);
    let expected: String = hmac(b"hook-secret", &signed).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(last.headers["x-scs-signature"], format!("sha256={expected}"));
    assert_eq!(last.body["total"], 6);
    assert_eq!(last.body["items"].as_array().unwrap().len(), 6, "default cap 20");
    assert_eq!(last.body["items"][0]["amount"], "15400m of 16");
    harness.stop().await;
}

#[tokio::test]
async fn a_quiet_run_sends_a_heartbeat_where_wanted_and_nothing_elsewhere() {
    let ding = Receiver::start(json!({"errcode": 0})).await;
    let hook = Receiver::start(json!({})).await;
    let clock = clock();
    let harness = start(
        &[
            secret("ding", &[("url", &ding.url("/robot/send?access_token=t"))]),
            secret("hook", &[("url", &hook.url("/x"))]),
            channel("ding", json!({"type": "dingtalk", "secretRef": {"name": "ding"}, "keyword": "patrol"})),
            channel("hook", json!({"secretRef": {"name": "hook"}, "heartbeat": false})),
        ],
        &clock,
    )
    .await;
    harness
        .create_tenant(json!({"apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "calm"},
            "spec": {"expiresAt": "2027-12-01T00:00:00Z"}}))
        .await;
    eventually("tenant ready", || async { harness.is_ready("calm") }).await;
    let (path, object) =
        patrol(json!({"schedule": "0 9 * * *", "timeZone": "Asia/Shanghai", "channels": ["ding", "hook"]}));
    harness.server.insert(path, object);
    let status = finished(&harness, "2026-12-01T09:00:00+08:00").await;
    assert_eq!(status["lastRun"]["items"], 0);
    let got = ding.got();
    assert_eq!(got.len(), 1);
    assert!(got[0].body["markdown"]["title"].as_str().unwrap().ends_with("all clear"), "{}", got[0].body);
    assert!(got[0].body["markdown"]["text"].as_str().unwrap().contains("[patrol]"), "keyword in the heartbeat too");
    assert!(!got[0].query.contains_key("sign"), "no secret, no signature");
    assert_eq!(delivery(&status, "hook")["result"], "Skipped");
    assert!(hook.got().is_empty());
    harness.stop().await;
}

#[tokio::test]
async fn a_restarted_operator_does_not_send_the_same_run_again() {
    let ding = Receiver::start(json!({"errcode": 0})).await;
    let clock = clock();
    let options = || RunOptions { clock: clock.clock(), delivery: quick() };
    let mut harness = start(
        &[
            secret("ding", &[("url", &ding.url("/robot/send?access_token=t"))]),
            channel("ding", json!({"type": "dingtalk", "secretRef": {"name": "ding"}})),
        ],
        &clock,
    )
    .await;
    troubled_tenants(&harness).await;
    let (path, object) = patrol(json!({"schedule": "0 9 * * *", "timeZone": "Asia/Shanghai", "channels": ["ding"]}));
    harness.server.insert(path, object);
    finished(&harness, "2026-12-01T09:00:00+08:00").await;
    assert_eq!(ding.got().len(), 1);

    // A new operator (restart or leader change), later that morning, within the starting deadline.
    clock.set("2026-12-01T01:20:00Z".parse().unwrap());
    harness.restart(options()).await;
    // A spec change the new operator must acknowledge in status proves it has looked at the
    // Patrol, with its run of 09:00 due and already claimed.
    let patrols: kube::Api<scs_operator::api::Patrol> = kube::Api::all(harness.client.clone());
    let change = json!({"spec": {"startingDeadlineSeconds": 7200}});
    patrols.patch("daily", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&change)).await.unwrap();
    eventually("the new operator has looked at the patrol", || async {
        let s = status(&harness);
        s["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["observedGeneration"] == 2))
    })
    .await;
    assert_eq!(ding.got().len(), 1, "no duplicate");

    // An operator that stopped while sending left a delivery Pending: it is not resent either.
    let mut status = status(&harness);
    status["lastRun"]["id"] = json!("2026-12-01T09:00:00+08:00");
    status["lastRun"]["deliveries"][0]["result"] = json!("Pending");
    status["lastRun"]["finishedAt"] = Value::Null;
    harness.server.set_status(PATROL, status);
    eventually("pending delivery marked Interrupted", || async {
        delivery(&self::status(&harness), "ding")["result"] == "Interrupted"
    })
    .await;
    assert_eq!(ding.got().len(), 1, "still no duplicate");

    // The next day's run is sent.
    clock.set("2026-12-02T01:00:30Z".parse().unwrap());
    harness.server.touch(PATROL, "test/poke", "1");
    finished(&harness, "2026-12-02T09:00:00+08:00").await;
    assert_eq!(ding.got().len(), 2);
    harness.stop().await;
}

#[tokio::test]
async fn a_tenants_own_channel_and_thresholds_win_over_the_patrols() {
    let ops = Receiver::start(json!({"errcode": 0})).await;
    let team = Receiver::start(json!({"code": 0})).await;
    let clock = clock();
    let harness = start(
        &[
            secret("ops", &[("url", &ops.url("/robot/send?access_token=t"))]),
            secret("team", &[("url", &team.url("/open-apis/bot/v2/hook/x"))]),
            channel("ops", json!({"type": "dingtalk", "secretRef": {"name": "ops"}})),
            channel("far-team", json!({"type": "feishu", "secretRef": {"name": "team"}})),
        ],
        &clock,
    )
    .await;
    // Both expire in 10 days: beyond the patrol's 3, within `far`'s own 30.
    for (name, own) in
        [("far", json!({"channels": ["far-team"], "thresholds": {"expiryDays": 30}})), ("near", Value::Null)]
    {
        let mut spec = json!({"expiresAt": "2026-12-11T12:00:00Z"});
        if !own.is_null() {
            spec["patrol"] = own;
        }
        harness
            .create_tenant(
                json!({"apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": name}, "spec": spec}),
            )
            .await;
        eventually("tenant ready", || async { harness.is_ready(name) }).await;
    }
    let (path, object) = patrol(
        json!({"schedule": "0 9 * * *", "timeZone": "Asia/Shanghai", "channels": ["ops"], "thresholds": {"expiryDays": 3}}),
    );
    harness.server.insert(path, object);
    let status = finished(&harness, "2026-12-01T09:00:00+08:00").await;
    assert_eq!(status["lastRun"]["items"], 1, "only far's own threshold reports it");
    let ops_text = ops.got()[0].body["markdown"]["text"].as_str().unwrap().to_string();
    assert!(ops_text.contains("**far**") && !ops_text.contains("**near**"), "{ops_text}");
    let team_got = team.got();
    assert_eq!(team_got.len(), 1, "far's own channel gets a report");
    let card = team_got[0].body.to_string();
    assert!(card.contains("far") && card.contains("expires in 10 day(s)"), "{card}");
    assert_eq!(delivery(&status, "far-team")["items"], 1);
    harness.stop().await;
}
