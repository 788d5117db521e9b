//! Request signatures, exactly as each platform documents them.
//!
//! - DingTalk custom robot: `sign = urlencode(base64(HmacSHA256(key = secret, message =
//!   timestamp_ms + "\n" + secret)))`, sent as `&timestamp=<ms>&sign=<sign>` on the webhook URL.
//! - Feishu/Lark custom bot: `sign = base64(HmacSHA256(key = timestamp_s + "\n" + secret,
//!   message = empty))`, sent in the JSON body with `"timestamp": "<seconds>"`.
//! - Generic webhooks (ours): `X-SCS-Signature: sha256=<hex HmacSHA256(key = secret, message =
//!   timestamp_s + "." + body)>` with `X-SCS-Timestamp: <seconds>`, so a receiver can refuse
//!   replays.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message).as_ref().to_vec()
}

/// DingTalk's `sign` query parameter, already URL-encoded.
pub fn dingtalk(secret: &str, timestamp_ms: i64) -> String {
    let digest = hmac_sha256(secret.as_bytes(), format!("{timestamp_ms}\n{secret}").as_bytes());
    form_urlencoded::byte_serialize(STANDARD.encode(digest).as_bytes()).collect()
}

/// `url` with DingTalk's `timestamp` and `sign` parameters appended.
pub fn dingtalk_url(url: &str, secret: &str, timestamp_ms: i64) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}timestamp={timestamp_ms}&sign={}", dingtalk(secret, timestamp_ms))
}

/// Feishu's `sign` body field.
pub fn feishu(secret: &str, timestamp_s: i64) -> String {
    STANDARD.encode(hmac_sha256(format!("{timestamp_s}\n{secret}").as_bytes(), b""))
}

/// The `X-SCS-Signature` header value of a generic webhook request.
pub fn webhook(secret: &str, timestamp_s: i64, body: &[u8]) -> String {
    let mut message = format!("{timestamp_s}.").into_bytes();
    message.extend_from_slice(body);
    let digest = hmac_sha256(secret.as_bytes(), &message);
    format!("sha256={}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values computed independently (Python: hmac.new(key, msg, hashlib.sha256),
    // base64.b64encode, urllib.parse.quote_plus) for the platforms' documented recipes.
    #[test]
    fn dingtalk_signature_matches_the_documented_recipe() {
        let sign = dingtalk("SEC000000000000000000000", 1_700_000_000_000);
        assert_eq!(sign, "1zJ%2Fw34EOSVAYr7cu7Vo8LnebmK2%2FGrCgegtr8mQrqM%3D");
        let url = dingtalk_url(
            "https://oapi.dingtalk.com/robot/send?access_token=abc",
            "SEC000000000000000000000",
            1_700_000_000_000,
        );
        assert_eq!(
            url,
            format!("https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1700000000000&sign={sign}")
        );
    }

    #[test]
    fn feishu_signature_matches_the_documented_recipe() {
        assert_eq!(feishu("demo-secret", 1_700_000_000), "mYHw2R2SOm8Rw/sne3lQdmz4sOfntKR+1P/8RKKTwmA=");
    }

    #[test]
    fn webhook_signature_covers_time_and_body() {
        let a = webhook("k", 1, b"{}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64);
        assert_ne!(a, webhook("k", 2, b"{}"));
        assert_ne!(a, webhook("k", 1, b"{ }"));
    }
}
