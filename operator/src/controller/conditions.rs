//! Status conditions: built fresh each reconcile, keeping the transition time of unchanged ones.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::sync::Refused;

/// A condition without a transition time yet.
pub fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    }
}

/// Sets each new condition's transition time: kept from `previous` when its status did not change,
/// now otherwise.
pub fn merge(previous: &[Condition], mut next: Vec<Condition>) -> Vec<Condition> {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    for condition in &mut next {
        condition.last_transition_time = previous
            .iter()
            .find(|p| p.type_ == condition.type_ && p.status == condition.status)
            .map_or_else(|| now.clone(), |p| p.last_transition_time.clone());
    }
    next
}

/// Whether two condition lists say the same (ignoring transition times).
pub fn same(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            (x.type_.as_str(), x.status.as_str(), x.reason.as_str(), x.message.as_str(), x.observed_generation)
                == (y.type_.as_str(), y.status.as_str(), y.reason.as_str(), y.message.as_str(), y.observed_generation)
        })
}

/// The status of condition `type_`, if present.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

/// The annotation that lets the operator recreate a StatefulSet whose immutable fields changed
/// (deleted with orphan propagation: its pods and claims stay; see the README).
pub const RECREATE_ANNOTATION: &str = "scs.dev/recreate-on-immutable-change";

/// How long a refusal message may be in a condition (and an Event note, which must stay under 1 kB).
const MESSAGE_LIMIT: usize = 900;

/// `ChildrenReady`: `True` when every desired child was taken, else `False` with reason
/// `ImmutableChange` (a live object's immutable field would change) or `ApplyFailed` (any other
/// refusal), the message naming each refused child with the API server's message.
pub fn children_ready(refused: &[Refused], generation: Option<i64>) -> Condition {
    if refused.is_empty() {
        return condition("ChildrenReady", true, "Applied", "every child is applied", generation);
    }
    let immutable = refused.iter().any(|r| !r.immutable.is_empty());
    let parts: Vec<String> = refused
        .iter()
        .map(|r| {
            if r.immutable.is_empty() {
                return r.to_string();
            }
            let namespace = r.namespace.as_deref().map(|ns| format!("{ns}/")).unwrap_or_default();
            let hint = if r.kind == "StatefulSet" {
                format!(
                    "; the running StatefulSet is left as it is: annotate the SecureWorkload with \
                     {RECREATE_ANNOTATION}=true to recreate it (pods and claims are kept)"
                )
            } else {
                String::new()
            };
            format!(
                "{} {namespace}{}: {} cannot change on the live object (API server: {}){hint}",
                r.kind,
                r.name,
                r.immutable.join(", "),
                r.message
            )
        })
        .collect();
    let mut message = parts.join("; ");
    if message.len() > MESSAGE_LIMIT {
        let mut end = MESSAGE_LIMIT;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    condition("ChildrenReady", false, if immutable { "ImmutableChange" } else { "ApplyFailed" }, message, generation)
}

/// Whether `next` says something about condition `type_` that `previous` did not (a new status,
/// reason or message): what deserves an Event.
pub fn changed(previous: &[Condition], next: &Condition) -> bool {
    !previous.iter().any(|p| {
        p.type_ == next.type_ && p.status == next.status && p.reason == next.reason && p.message == next.message
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_kept_only_while_status_holds() {
        let old = merge(&[], vec![condition("Ready", true, "Ready", "ok", Some(1))]);
        let kept = merge(&old, vec![condition("Ready", true, "Ready", "still ok", Some(2))]);
        assert_eq!(kept[0].last_transition_time, old[0].last_transition_time);
        let flipped = merge(&old, vec![condition("Ready", false, "Broken", "no", Some(2))]);
        assert_ne!(flipped[0].last_transition_time, Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert!(!same(&old, &flipped));
        assert!(same(&old, &merge(&[], vec![condition("Ready", true, "Ready", "ok", Some(1))])));
    }

    #[test]
    fn children_ready_names_each_refusal_and_caps_the_message() {
        let refusal = |kind: &str, message: String| Refused {
            kind: kind.into(),
            namespace: None,
            name: "x".into(),
            code: 403,
            message,
            immutable: Vec::new(),
        };
        let ok = children_ready(&[], Some(2));
        assert_eq!((ok.status.as_str(), ok.reason.as_str()), ("True", "Applied"));
        let failed = children_ready(&[refusal("ResourceQuota", "forbidden: denied by policy".into())], Some(2));
        assert_eq!((failed.status.as_str(), failed.reason.as_str()), ("False", "ApplyFailed"));
        assert_eq!(failed.message, "ResourceQuota x refused by the API server: forbidden: denied by policy");
        let long = children_ready(&[refusal("Role", "é".repeat(2000))], None);
        assert!(long.message.len() <= MESSAGE_LIMIT + 3 && long.message.ends_with("..."));
        assert!(changed(std::slice::from_ref(&ok), &failed));
        assert!(!changed(std::slice::from_ref(&failed), &failed));
    }
}
