//! The pre-authorization summary in a SecureWorkload's status (`status.preAuthorization`), counted
//! from the server's pod records, and the coalescing of its writes: events only mark a workload
//! dirty; a periodic flush writes each dirty workload at most once per interval, and only when
//! the summary changed.

use std::collections::BTreeSet;
use std::sync::Mutex;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::engine::{PodRecord, PodState};
use crate::api::PreAuthorizationSummary;

/// Longest `lastFailure` kept in the status.
const FAILURE_CHARS: usize = 300;

/// Counts the records of one workload's pods. Records being revoked (the pod is going) do not
/// count; `open_groups` are the workload's groups whose breaker is open.
pub fn summarize(records: &[PodRecord], mut open_groups: Vec<String>) -> PreAuthorizationSummary {
    let live: Vec<&PodRecord> = records.iter().filter(|r| r.revoking.is_none()).collect();
    let count = |state: PodState| i32::try_from(live.iter().filter(|r| r.state == state).count()).unwrap_or(i32::MAX);
    let newest = live.iter().filter(|r| r.last_failure.is_some()).max_by_key(|r| r.last_failure_at);
    open_groups.sort();
    open_groups.dedup();
    PreAuthorizationSummary {
        pods: i32::try_from(live.len()).unwrap_or(i32::MAX),
        granted: count(PodState::Granted),
        pending: count(PodState::Pending),
        failed: count(PodState::Failed),
        open_groups,
        last_failure: newest.and_then(|r| {
            let why = r.last_failure.as_deref()?;
            Some(format!("pod {}: {}", r.pod.name, why.chars().take(FAILURE_CHARS).collect::<String>()))
        }),
        // Whole seconds: what a Time keeps, so an unchanged summary compares equal to the status.
        last_failure_time: newest
            .and_then(|r| r.last_failure_at)
            .map(|t| Time(Timestamp::from_second(t.as_second()).unwrap_or(t))),
    }
}

/// Workloads (`namespace`, `name`) whose summary may have changed since the last flush.
#[derive(Default)]
pub struct Dirty(Mutex<BTreeSet<(String, String)>>);

impl Dirty {
    pub fn mark(&self, namespace: &str, workload: &str) {
        if namespace.is_empty() || workload.is_empty() {
            return;
        }
        if let Ok(mut set) = self.0.lock() {
            set.insert((namespace.to_string(), workload.to_string()));
        }
    }

    /// Everything marked so far; the set starts again empty.
    pub fn take(&self) -> BTreeSet<(String, String)> {
        self.0.lock().map(|mut set| std::mem::take(&mut *set)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::provider::PodIdentity;

    fn record(name: &str, state: PodState, failure: Option<(&str, &str)>) -> PodRecord {
        PodRecord {
            pod: PodIdentity { name: name.into(), ..Default::default() },
            state,
            last_failure: failure.map(|(why, _)| why.to_string()),
            last_failure_at: failure.map(|(_, at)| at.parse::<Timestamp>().unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn counts_pods_by_state_and_keeps_the_newest_failure() {
        let mut going = record("web-d", PodState::Failed, Some(("gone", "2026-12-02T06:00:00Z")));
        going.revoking = Some("r1@2026-12-02T06:00:00Z".into());
        let records = [
            record("web-a", PodState::Granted, Some(("old refusal", "2026-12-02T04:00:00Z"))),
            record("web-b", PodState::Pending, None),
            record("web-c", PodState::Failed, Some(("acme-prod/orders/db: cmdb: HTTP 503", "2026-12-02T05:00:00.75Z"))),
            going,
        ];
        let summary = summarize(&records, vec!["orders".into(), "billing".into(), "orders".into()]);
        assert_eq!((summary.pods, summary.granted, summary.pending, summary.failed), (3, 1, 1, 1));
        assert_eq!(summary.open_groups, ["billing", "orders"]);
        assert_eq!(summary.last_failure.as_deref(), Some("pod web-c: acme-prod/orders/db: cmdb: HTTP 503"));
        assert_eq!(summary.last_failure_time.unwrap().0.to_string(), "2026-12-02T05:00:00Z");
        // Nothing asked yet: all zero, no failure.
        assert_eq!(summarize(&[], Vec::new()), PreAuthorizationSummary::default());
    }

    #[test]
    fn a_long_failure_is_cut() {
        let long = "x".repeat(2000);
        let summary = summarize(&[record("p", PodState::Failed, Some((&long, "2026-12-02T05:00:00Z")))], Vec::new());
        assert_eq!(summary.last_failure.unwrap().len(), "pod p: ".len() + FAILURE_CHARS);
    }

    #[test]
    fn marks_coalesce_until_taken() {
        let dirty = Dirty::default();
        for _ in 0..100 {
            dirty.mark("acme-prod", "web");
        }
        dirty.mark("acme-prod", "api");
        dirty.mark("", "web");
        assert_eq!(dirty.take().len(), 2);
        assert!(dirty.take().is_empty());
    }
}
