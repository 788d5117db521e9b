//! Tenant expiry: where a tenant stands with `spec.expiresAt` at a given instant, decided without
//! any API call so it is tested with any clock. The tenant controller records the decision in the
//! Tenant's status (with a condition and an Event on change); workloads follow the recorded state,
//! so one place decides and every workload of a tenant stops and resumes together.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::api::{ExpiryPolicy, LifecycleState, SecureWorkload, Tenant, TenantLifecycle};

/// The condition type on a Tenant: `True` once it has expired.
pub const CONDITION: &str = "Expired";

const DAY_SECONDS: i64 = 86_400;

/// The tenant's lifecycle at `now`; `None` without `spec.expiresAt`.
pub fn decide(tenant: &Tenant, now: Timestamp) -> Option<TenantLifecycle> {
    let expires_at = tenant.spec.expires_at.as_ref()?;
    let left = expires_at.0.as_second() - now.as_second();
    let state = if now < expires_at.0 {
        LifecycleState::Active
    } else if tenant.spec.expiry_policy.unwrap_or_default() == ExpiryPolicy::Suspend {
        LifecycleState::Suspended
    } else {
        LifecycleState::Expired
    };
    Some(TenantLifecycle { state, expires_at: expires_at.clone(), days_left: left.div_euclid(DAY_SECONDS) })
}

/// The `Expired` condition describing `lifecycle`.
pub fn condition(lifecycle: &TenantLifecycle, generation: Option<i64>) -> Condition {
    let at = lifecycle.expires_at.0;
    let (expired, reason, message) = match lifecycle.state {
        LifecycleState::Active => {
            (false, "Active", format!("expires at {at} ({} whole day(s) left)", lifecycle.days_left))
        }
        LifecycleState::Expired => (
            true,
            "Expired",
            format!(
                "expired at {at}; expiryPolicy is Notify, so workloads keep running; move spec.expiresAt into the future to renew"
            ),
        ),
        LifecycleState::Suspended => (
            true,
            "Suspended",
            format!(
                "expired at {at}; every SecureWorkload is suspended (nothing deleted) until spec.expiresAt moves into the future"
            ),
        ),
    };
    Condition {
        type_: CONDITION.into(),
        status: if expired { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
    }
}

/// The Event for a change from `before` to `after`, as `(warning, reason, message)`; `None` when
/// the state did not change (days passing are no news).
pub fn transition(
    tenant: &str,
    before: Option<&TenantLifecycle>,
    after: Option<&TenantLifecycle>,
) -> Option<(bool, &'static str, String)> {
    let was = before.map(|l| l.state);
    let now = after.map(|l| l.state);
    if was == now {
        return None;
    }
    let at = after.or(before).map(|l| l.expires_at.0.to_string()).unwrap_or_default();
    match now {
        Some(LifecycleState::Suspended) => Some((
            true,
            "TenantSuspended",
            format!("Tenant {tenant} expired at {at}: its SecureWorkloads are suspended (nothing deleted)"),
        )),
        Some(LifecycleState::Expired) => Some((
            true,
            "TenantExpired",
            format!("Tenant {tenant} expired at {at} (policy Notify: workloads keep running)"),
        )),
        Some(LifecycleState::Active) | None if was.is_some_and(|w| w != LifecycleState::Active) => {
            let resumed = if was == Some(LifecycleState::Suspended) { "; its SecureWorkloads resume" } else { "" };
            let until = after.map(|l| format!(" until {}", l.expires_at.0)).unwrap_or_default();
            Some((false, "TenantRenewed", format!("Tenant {tenant} renewed{until}{resumed}")))
        }
        _ => None,
    }
}

/// How long to wait before looking at the tenant again: `default`, or less when it expires sooner
/// (plus a second, so the next pass is past the instant), or when its whole days left change.
pub fn requeue(tenant: &Tenant, now: Timestamp, default: Duration) -> Duration {
    let Some(expires_at) = tenant.spec.expires_at.as_ref() else { return default };
    let left = expires_at.0.as_second() - now.as_second();
    if left < 0 {
        return default;
    }
    // The next instant at which the state or the whole days left change.
    let to_next = match left % DAY_SECONDS {
        0 if left > 0 => DAY_SECONDS,
        0 => return default,
        rest => rest,
    };
    default.min(Duration::from_secs(to_next as u64 + 1))
}

/// Whether the tenant's recorded state stops its workloads.
pub fn suspends_workloads(tenant: &Tenant) -> bool {
    tenant.status.as_ref().and_then(|s| s.lifecycle.as_ref()).is_some_and(|l| l.state == LifecycleState::Suspended)
}

/// What a workload controller needs to notice of a tenant's lifecycle (used as part of the
/// trigger signature: status-only writes are otherwise ignored).
pub fn trigger_marker(tenant: &Tenant) -> Option<String> {
    suspends_workloads(tenant).then(|| "suspended".to_string())
}

/// `workload` as the builders should see it while its tenant is suspended: `spec.suspended` set.
/// `None` when the tenant is not suspended (the workload is built as written).
pub fn suspended_copy(workload: &SecureWorkload, tenant: &Tenant) -> Option<SecureWorkload> {
    if !suspends_workloads(tenant) {
        return None;
    }
    let mut copy = workload.clone();
    copy.spec.suspended = Some(true);
    Some(copy)
}

/// A node label no node is meant to carry. A DaemonSet can be neither scaled nor suspended, so
/// while its tenant is suspended its pods select this label: they go, the DaemonSet stays, and
/// the next pass after renewal builds it as written again.
pub const PAUSED_NODE_LABEL: &str = "scs.dev/tenant-suspended";

/// Pauses the DaemonSets among `children` (see [`PAUSED_NODE_LABEL`]).
pub fn pause_daemonsets(children: &mut [crate::builders::Child]) {
    for child in children.iter_mut().filter(|c| c.kind == "DaemonSet") {
        child.object["spec"]["template"]["spec"]["nodeSelector"][PAUSED_NODE_LABEL] = "true".into();
    }
}

/// Whether a live DaemonSet (as JSON) is paused by [`pause_daemonsets`]. The operator only adds
/// fields by apply, so resuming removes the selector explicitly.
pub fn is_paused(daemonset: &serde_json::Value) -> bool {
    daemonset["spec"]["template"]["spec"]["nodeSelector"].get(PAUSED_NODE_LABEL).is_some()
}

/// Rewords the `Suspended` conditions built for a [`suspended_copy`]: the user did not set
/// `spec.suspended`, the tenant's expiry did.
pub fn explain_suspension(conditions: &mut [Condition], tenant: &Tenant) {
    let at = tenant.spec.expires_at.as_ref().map(|t| t.0.to_string()).unwrap_or_default();
    let message = format!(
        "stopped because Tenant {} expired at {at} (expiryPolicy Suspend); resumes when its spec.expiresAt moves into the future",
        tenant.name_any()
    );
    for condition in conditions.iter_mut().filter(|c| c.reason == "Suspended") {
        condition.reason = "TenantSuspended".into();
        condition.message = message.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::TenantStatus;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn tenant(expires: Option<&str>, policy: Option<ExpiryPolicy>) -> Tenant {
        let mut t = Tenant::new("acme", Default::default());
        t.spec.expires_at = expires.map(|e| Time(at(e)));
        t.spec.expiry_policy = policy;
        t
    }

    #[test]
    fn no_expiry_no_lifecycle() {
        assert_eq!(decide(&tenant(None, Some(ExpiryPolicy::Suspend)), at("2026-12-01T00:00:00Z")), None);
    }

    #[test]
    fn days_left_count_whole_days_and_go_negative_after_expiry() {
        let t = tenant(Some("2026-12-10T12:00:00Z"), None);
        let days = |now: &str| decide(&t, at(now)).unwrap().days_left;
        assert_eq!(days("2026-12-01T12:00:00Z"), 9);
        assert_eq!(days("2026-12-01T12:00:01Z"), 8);
        assert_eq!(days("2026-12-10T11:59:59Z"), 0);
        assert_eq!(days("2026-12-10T12:00:00Z"), 0);
        assert_eq!(days("2026-12-10T12:00:01Z"), -1);
        assert_eq!(days("2026-12-12T12:00:01Z"), -3);
    }

    #[test]
    fn the_policy_decides_between_expired_and_suspended_at_the_instant() {
        let state =
            |policy, now: &str| decide(&tenant(Some("2026-12-10T00:00:00+08:00"), policy), at(now)).unwrap().state;
        assert_eq!(state(Some(ExpiryPolicy::Suspend), "2026-12-09T15:59:59Z"), LifecycleState::Active);
        assert_eq!(state(Some(ExpiryPolicy::Suspend), "2026-12-09T16:00:00Z"), LifecycleState::Suspended);
        assert_eq!(state(None, "2026-12-09T16:00:00Z"), LifecycleState::Expired, "Notify by default");
        assert_eq!(state(Some(ExpiryPolicy::Notify), "2027-01-01T00:00:00Z"), LifecycleState::Expired);
    }

    #[test]
    fn requeue_comes_back_at_the_expiry_instant_and_at_day_boundaries() {
        let t = tenant(Some("2026-12-10T00:00:00Z"), Some(ExpiryPolicy::Suspend));
        let resync = Duration::from_secs(600);
        assert_eq!(requeue(&t, at("2026-12-09T23:58:00Z"), resync), Duration::from_secs(121));
        assert_eq!(requeue(&t, at("2026-12-01T00:00:00Z"), resync), resync);
        assert_eq!(requeue(&t, at("2026-12-10T00:00:00Z"), resync), resync, "already expired");
        assert_eq!(requeue(&t, at("2026-12-11T00:00:00Z"), resync), resync);
        assert_eq!(requeue(&tenant(None, None), at("2026-12-01T00:00:00Z"), resync), resync);
        // A day boundary (days left 3 → 2) also comes back promptly.
        assert_eq!(requeue(&t, at("2026-12-06T23:59:30Z"), resync), Duration::from_secs(31));
    }

    #[test]
    fn conditions_say_what_expiry_did() {
        let t = tenant(Some("2026-12-10T00:00:00Z"), Some(ExpiryPolicy::Suspend));
        let active = condition(&decide(&t, at("2026-12-03T00:00:00Z")).unwrap(), Some(2));
        assert_eq!((active.status.as_str(), active.reason.as_str()), ("False", "Active"));
        assert!(active.message.contains("7 whole day(s) left"), "{}", active.message);
        let suspended = condition(&decide(&t, at("2026-12-10T00:00:00Z")).unwrap(), Some(2));
        assert_eq!((suspended.status.as_str(), suspended.reason.as_str()), ("True", "Suspended"));
        assert!(suspended.message.contains("nothing deleted"));
    }

    #[test]
    fn events_only_on_state_changes() {
        let t = tenant(Some("2026-12-10T00:00:00Z"), Some(ExpiryPolicy::Suspend));
        let before = decide(&t, at("2026-12-01T00:00:00Z"));
        let later = decide(&t, at("2026-12-05T00:00:00Z"));
        let after = decide(&t, at("2026-12-10T00:00:01Z"));
        assert_eq!(transition("acme", before.as_ref(), later.as_ref()), None, "days passing are no news");
        assert_eq!(transition("acme", None, before.as_ref()), None, "a first Active is no news");
        let (warning, reason, _) = transition("acme", later.as_ref(), after.as_ref()).unwrap();
        assert!(warning);
        assert_eq!(reason, "TenantSuspended");
        let renewed =
            decide(&tenant(Some("2027-12-10T00:00:00Z"), Some(ExpiryPolicy::Suspend)), at("2026-12-11T00:00:00Z"));
        let (warning, reason, message) = transition("acme", after.as_ref(), renewed.as_ref()).unwrap();
        assert!(!warning);
        assert_eq!(reason, "TenantRenewed");
        assert!(message.contains("resume"), "{message}");
        // expiresAt removed altogether also renews.
        assert_eq!(transition("acme", after.as_ref(), None).unwrap().1, "TenantRenewed");
    }

    #[test]
    fn suspended_daemonsets_select_no_node() {
        let mut children = vec![
            crate::builders::Child::from_resource(&k8s_openapi::api::apps::v1::DaemonSet {
                metadata: kube::api::ObjectMeta {
                    name: Some("agent".into()),
                    namespace: Some("acme".into()),
                    ..Default::default()
                },
                ..Default::default()
            }),
            crate::builders::Child::from_resource(&k8s_openapi::api::core::v1::Service {
                metadata: kube::api::ObjectMeta {
                    name: Some("agent".into()),
                    namespace: Some("acme".into()),
                    ..Default::default()
                },
                ..Default::default()
            }),
        ];
        assert!(!is_paused(&children[0].object));
        pause_daemonsets(&mut children);
        assert_eq!(children[0].object["spec"]["template"]["spec"]["nodeSelector"][PAUSED_NODE_LABEL], "true");
        assert!(is_paused(&children[0].object));
        assert!(children[1].object["spec"]["template"].is_null(), "only DaemonSets");
    }

    #[test]
    fn workloads_follow_the_recorded_state_not_the_spec() {
        let mut t = tenant(Some("2020-01-01T00:00:00Z"), Some(ExpiryPolicy::Suspend));
        let workload: SecureWorkload = serde_json::from_value(serde_json::json!({
            "apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": "web", "namespace": "acme"},
            "spec": {"kind": "Deployment", "replicas": 3, "template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}}
        }))
        .unwrap();
        assert!(suspended_copy(&workload, &t).is_none(), "nothing recorded yet: the tenant controller decides first");
        t.status = Some(TenantStatus { lifecycle: decide(&t, at("2026-01-01T00:00:00Z")), ..Default::default() });
        let copy = suspended_copy(&workload, &t).unwrap();
        assert_eq!(copy.spec.suspended, Some(true));
        assert_eq!(copy.spec.replicas, Some(3), "the count to come back to is kept");
        assert_eq!(trigger_marker(&t).as_deref(), Some("suspended"));
    }
}
