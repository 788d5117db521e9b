//! The provider protocol: one small HTTP/JSON contract every external permission system speaks
//! (directly or through an adapter).
//!
//! - `POST {endpoint}/grants` with a [`GrantRequest`] → `200/201 {"id", "state": "granted"}`,
//!   `202 {"id", "state": "pending"}`; 4xx is a permanent failure (wrong parameters, refused),
//!   5xx, 429 and no answer within the timeout are transient.
//! - `GET {endpoint}/grants/{id}` → the same answers for a pending grant.
//! - `DELETE {endpoint}/grants/{id}` → 2xx or 404 (already gone): revocation is idempotent.
//!
//! Every request carries `Authorization: Bearer <token from the provider's Secret>` and
//! `Idempotency-Key: <pod uid>/<namespace>/<group>/<permission>`, so a request repeated after a lost answer
//! does not create a second grant.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde::{Deserialize, Serialize};

/// Who the grant is for: the pod as the API server knows it (never as the pod says).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PodIdentity {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub ip: String,
    pub node: String,
    pub tenant: String,
    pub workload: String,
}

/// Body of `POST /grants`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GrantRequest {
    pub pod: PodIdentity,
    /// `namespace/group`.
    pub permission_group: String,
    pub permission: String,
    pub params: BTreeMap<String, String>,
}

/// What a provider said about a grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Granted {
        id: String,
    },
    Pending {
        id: String,
    },
    /// The provider refused (4xx): retrying the same request cannot help.
    Permanent(String),
    /// 5xx, 429, no answer, cannot connect: worth another try later.
    Transient(String),
}

/// How to reach one provider.
#[derive(Clone, Debug, PartialEq)]
pub struct Provider {
    /// Base URL without a trailing slash. `http://` only in tests: configuration accepts https.
    pub endpoint: String,
    pub token: String,
    pub request_timeout: Duration,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    state: Option<String>,
}

impl Provider {
    /// `POST /grants`.
    pub async fn request(&self, grant: &GrantRequest) -> Outcome {
        let key = format!("{}/{}/{}", grant.pod.uid, grant.permission_group, grant.permission);
        let body = serde_json::to_vec(grant).unwrap_or_default();
        match self.exchange(http::Method::POST, "/grants".into(), Some(&key), body).await {
            Ok((status, body)) => classify(status, &body, None),
            Err(why) => Outcome::Transient(why),
        }
    }

    /// `GET /grants/{id}`.
    pub async fn poll(&self, id: &str) -> Outcome {
        match self.exchange(http::Method::GET, format!("/grants/{}", encode(id)), None, Vec::new()).await {
            Ok((status, body)) => classify(status, &body, Some(id)),
            Err(why) => Outcome::Transient(why),
        }
    }

    /// `DELETE /grants/{id}`: `Ok` when the grant is gone (404 included).
    pub async fn revoke(&self, id: &str) -> Result<(), String> {
        match self.exchange(http::Method::DELETE, format!("/grants/{}", encode(id)), None, Vec::new()).await {
            Ok((status, _)) if (200..300).contains(&status) || status == 404 => Ok(()),
            Ok((status, body)) => Err(format!("HTTP {status}: {}", snippet(&body))),
            Err(why) => Err(why),
        }
    }

    async fn exchange(
        &self,
        method: http::Method,
        path: String,
        idempotency_key: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(u16, Bytes), String> {
        let url = format!("{}{path}", self.endpoint.trim_end_matches('/'));
        let mut builder = http::Request::builder()
            .method(method)
            .uri(url.as_str())
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json");
        if let Some(key) = idempotency_key {
            builder = builder.header("idempotency-key", key);
        }
        let request = builder.body(Full::new(Bytes::from(body))).map_err(|_| "not a valid URL".to_string())?;
        crate::outbound::exchange(request, self.request_timeout).await.map_err(|no_answer| no_answer.to_string())
    }
}

/// What an answer means.
fn classify(status: u16, body: &[u8], known_id: Option<&str>) -> Outcome {
    if status == 429 || status >= 500 {
        return Outcome::Transient(format!("HTTP {status}"));
    }
    if !(200..300).contains(&status) {
        return Outcome::Permanent(format!("HTTP {status}: {}", snippet(body)));
    }
    let answer: Option<Answer> = serde_json::from_slice(body).ok();
    let id = answer.as_ref().and_then(|a| a.id.clone()).or_else(|| known_id.map(String::from));
    let state = answer.as_ref().and_then(|a| a.state.clone());
    let Some(id) = id.filter(|id| !id.is_empty() && id.len() <= 256) else {
        // A provider that forgets the id could never be asked to revoke: not a grant.
        return Outcome::Transient(format!("HTTP {status} without a grant id"));
    };
    match (status, state.as_deref()) {
        (_, Some("granted")) => Outcome::Granted { id },
        (_, Some("pending")) | (202, None) => Outcome::Pending { id },
        (_, Some("failed")) => Outcome::Permanent(format!("the provider failed grant {id}: {}", snippet(body))),
        (_, None) => Outcome::Granted { id },
        (_, Some(other)) => Outcome::Transient(format!("unknown grant state {other:?}")),
    }
}

/// Ids are the provider's; keep them to one path segment.
fn encode(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_by_status_then_state() {
        let granted = br#"{"id":"g1","state":"granted"}"#;
        assert_eq!(classify(201, granted, None), Outcome::Granted { id: "g1".into() });
        assert_eq!(classify(202, br#"{"id":"g1"}"#, None), Outcome::Pending { id: "g1".into() });
        assert_eq!(classify(200, br#"{"state":"pending"}"#, Some("g1")), Outcome::Pending { id: "g1".into() });
        assert!(matches!(classify(400, b"bad database", None), Outcome::Permanent(m) if m.contains("bad database")));
        assert!(matches!(classify(403, b"", None), Outcome::Permanent(_)));
        assert!(matches!(classify(503, granted, None), Outcome::Transient(_)));
        assert!(matches!(classify(429, granted, None), Outcome::Transient(_)));
        assert!(matches!(classify(200, br#"{"id":"g1","state":"failed"}"#, None), Outcome::Permanent(_)));
        // No id: nothing could ever revoke it.
        assert!(matches!(classify(200, br#"{"state":"granted"}"#, None), Outcome::Transient(_)));
    }

    #[test]
    fn ids_stay_one_path_segment() {
        assert_eq!(encode("a/../b"), "a%2F..%2Fb");
    }
}
