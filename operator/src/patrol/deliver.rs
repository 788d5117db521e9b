//! Sending a report: one HTTPS POST per attempt, retried with exponential backoff on 5xx, 429,
//! timeouts and connection failures; a platform's own error code (DingTalk `errcode`, Feishu
//! `code`) is a failure even with HTTP 200. Messages never carry the URL or the secret.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::format;
use super::report::Report;
use super::sign;
use crate::api::ChannelType;

/// Where and how to send.
#[derive(Clone)]
pub struct Target {
    pub platform: ChannelType,
    pub url: String,
    pub secret: Option<String>,
}

impl std::fmt::Debug for Target {
    // Never print the URL (it holds the access token) or the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("platform", &self.platform).field("signed", &self.secret.is_some()).finish()
    }
}

/// Attempts, backoff and per-attempt timeout.
#[derive(Clone, Debug)]
pub struct Policy {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub timeout: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self { attempts: 4, first_backoff: Duration::from_secs(2), timeout: Duration::from_secs(10) }
    }
}

/// How a delivery ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub delivered: bool,
    pub attempts: u32,
    pub message: Option<String>,
}

/// What one attempt says about the next.
#[derive(Debug, PartialEq)]
enum Attempt {
    Delivered,
    Retry(String),
    Failed(String),
}

/// The request body and URL of one attempt (signatures are made fresh per attempt, with the real
/// time: the platforms refuse a timestamp more than an hour off theirs).
fn request(target: &Target, report: &Report, now: Timestamp) -> (String, Vec<(&'static str, String)>, Vec<u8>) {
    let mut body = format::body(target.platform, report);
    let mut url = target.url.clone();
    let mut headers = vec![("content-type", "application/json".to_string())];
    match (&target.secret, target.platform) {
        (Some(secret), ChannelType::Dingtalk) => url = sign::dingtalk_url(&url, secret, now.as_millisecond()),
        (Some(secret), ChannelType::Feishu) => {
            body["timestamp"] = Value::String(now.as_second().to_string());
            body["sign"] = Value::String(sign::feishu(secret, now.as_second()));
        }
        _ => {}
    }
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    if let (Some(secret), ChannelType::Webhook) = (&target.secret, target.platform) {
        headers.push(("x-scs-timestamp", now.as_second().to_string()));
        headers.push(("x-scs-signature", sign::webhook(secret, now.as_second(), &bytes)));
    }
    (url, headers, bytes)
}

/// What an answer means, per platform.
fn classify(platform: ChannelType, status: u16, body: &[u8]) -> Attempt {
    if status == 429 || status >= 500 {
        return Attempt::Retry(format!("HTTP {status}"));
    }
    if !(200..300).contains(&status) {
        return Attempt::Failed(format!("HTTP {status}: {}", snippet(body)));
    }
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let field = |names: &[&str]| names.iter().find_map(|n| json.as_ref()?.get(*n)?.as_i64());
    let text = |names: &[&str]| names.iter().find_map(|n| json.as_ref()?.get(*n)?.as_str().map(str::to_string));
    match platform {
        ChannelType::Webhook => Attempt::Delivered,
        ChannelType::Dingtalk => match field(&["errcode"]) {
            Some(0) => Attempt::Delivered,
            // "Sending too fast": the robot's rate limit.
            Some(130101) => Attempt::Retry("DingTalk errcode 130101 (rate limited)".into()),
            Some(code) => {
                Attempt::Failed(format!("DingTalk errcode {code}: {}", text(&["errmsg"]).unwrap_or_default()))
            }
            None => Attempt::Failed(format!("DingTalk answered without errcode: {}", snippet(body))),
        },
        ChannelType::Feishu => match field(&["code", "StatusCode"]) {
            Some(0) => Attempt::Delivered,
            Some(11232) => Attempt::Retry("Feishu code 11232 (rate limited)".into()),
            Some(code) => {
                Attempt::Failed(format!("Feishu code {code}: {}", text(&["msg", "StatusMessage"]).unwrap_or_default()))
            }
            None => Attempt::Failed(format!("Feishu answered without code: {}", snippet(body))),
        },
    }
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
}

async fn attempt(target: &Target, report: &Report, timeout: Duration) -> Attempt {
    let (url, headers, body) = request(target, report, Timestamp::now());
    let mut builder = http::Request::post(url.as_str());
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let Ok(request) = builder.body(Full::new(Bytes::from(body))) else {
        return Attempt::Failed("the URL in the Secret is not a valid http(s) URL".into());
    };
    match crate::outbound::exchange(request, timeout).await {
        Err(crate::outbound::NoAnswer::Unsendable(why)) => Attempt::Failed(why),
        Err(crate::outbound::NoAnswer::Lost(why)) => Attempt::Retry(why),
        Ok((status, body)) => classify(target.platform, status, &body),
    }
}

/// Sends `report`, retrying as [`Policy`] says.
pub async fn deliver(target: &Target, report: &Report, policy: &Policy) -> Outcome {
    let mut last = String::new();
    for n in 1..=policy.attempts.max(1) {
        match attempt(target, report, policy.timeout).await {
            Attempt::Delivered => return Outcome { delivered: true, attempts: n, message: None },
            Attempt::Failed(why) => return Outcome { delivered: false, attempts: n, message: Some(why) },
            Attempt::Retry(why) => last = why,
        }
        if n < policy.attempts {
            tokio::time::sleep(policy.first_backoff.saturating_mul(1 << (n - 1).min(16))).await;
        }
    }
    Outcome {
        delivered: false,
        attempts: policy.attempts.max(1),
        message: Some(format!("gave up after {} attempt(s): {last}", policy.attempts.max(1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_errors_are_failures_and_overload_is_retried() {
        use ChannelType::*;
        assert_eq!(classify(Dingtalk, 200, br#"{"errcode":0,"errmsg":"ok"}"#), Attempt::Delivered);
        assert_eq!(
            classify(Dingtalk, 200, br#"{"errcode":310000,"errmsg":"keywords not in content"}"#),
            Attempt::Failed("DingTalk errcode 310000: keywords not in content".into())
        );
        assert!(matches!(classify(Dingtalk, 200, br#"{"errcode":130101}"#), Attempt::Retry(_)));
        assert!(matches!(classify(Dingtalk, 200, b"<html>"), Attempt::Failed(_)));
        assert_eq!(classify(Feishu, 200, br#"{"code":0,"msg":"success"}"#), Attempt::Delivered);
        assert_eq!(classify(Feishu, 200, br#"{"StatusCode":0}"#), Attempt::Delivered);
        assert_eq!(
            classify(
                Feishu,
                200,
                br#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}"#
            ),
            Attempt::Failed(
                "Feishu code 19021: sign match fail or timestamp is not within one hour from current time".into()
            )
        );
        assert_eq!(classify(Webhook, 204, b""), Attempt::Delivered);
        assert!(matches!(classify(Webhook, 503, b""), Attempt::Retry(_)));
        assert!(matches!(classify(Webhook, 429, b""), Attempt::Retry(_)));
        assert!(matches!(classify(Webhook, 404, b"no"), Attempt::Failed(_)));
    }

    #[test]
    fn a_target_never_prints_its_url_or_secret() {
        let target = Target {
            platform: ChannelType::Dingtalk,
            url: "https://oapi.dingtalk.com/robot/send?access_token=TOKEN".into(),
            secret: Some("SECRET".into()),
        };
        let shown = format!("{target:?}");
        assert!(!shown.contains("TOKEN") && !shown.contains("SECRET"), "{shown}");
    }
}
