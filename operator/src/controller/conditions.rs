//! Status conditions: built fresh each reconcile, keeping the transition time of unchanged ones.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

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
}
