//! The circuit breaker of a permission group: after [`THRESHOLD`] consecutive failures no request
//! goes to the providers until someone resets it (a permission that can never be granted, such as
//! a wrong database name, must not hammer the provider with every pod restart). Kept in a
//! ConfigMap in the operator's namespace so every authz-server replica agrees, and reset by
//! changing the group's `scs.dev/authz-reset` annotation.

use serde::{Deserialize, Serialize};

/// Consecutive failures that open the breaker.
pub const THRESHOLD: u32 = 3;

/// One group's breaker, as stored (JSON) under the key `<namespace>.<group>` of the ConfigMap.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Breaker {
    /// Consecutive failures since the last success or reset.
    #[serde(default)]
    pub failures: u32,
    /// The reset annotation value last honoured; a different one closes the breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<String>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

impl Breaker {
    /// The ConfigMap key of a group.
    pub fn key(namespace: &str, group: &str) -> String {
        format!("{namespace}.{group}")
    }

    pub fn is_open(&self) -> bool {
        self.failures >= THRESHOLD
    }

    /// Applies the group's reset annotation: a value not seen before clears the count. Returns
    /// whether anything changed (and so must be written back).
    pub fn observe_reset(&mut self, annotation: Option<&str>) -> bool {
        match annotation {
            Some(value) if self.reset.as_deref() != Some(value) => {
                self.reset = Some(value.to_string());
                self.failures = 0;
                self.last_failure = None;
                true
            }
            _ => false,
        }
    }

    /// A grant failed (permanently, or transiently past its own retries).
    pub fn record_failure(&mut self, why: &str) {
        self.failures = self.failures.saturating_add(1);
        self.last_failure = Some(why.chars().take(200).collect());
    }

    /// A grant succeeded: the count starts again. Returns whether anything changed.
    pub fn record_success(&mut self) -> bool {
        let changed = self.failures != 0 || self.last_failure.is_some();
        self.failures = 0;
        self.last_failure = None;
        changed
    }

    /// `Open` or `Closed`, for status and metrics.
    pub fn state(&self) -> &'static str {
        if self.is_open() { "Open" } else { "Closed" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_failures_open_it_and_only_a_new_reset_value_closes_it() {
        let mut breaker = Breaker::default();
        assert!(!breaker.observe_reset(None));
        for n in 1..=3 {
            assert!(!breaker.is_open(), "open after {} failures", n - 1);
            breaker.record_failure("HTTP 400: unknown database");
        }
        assert!(breaker.is_open());
        assert_eq!(breaker.state(), "Open");
        // More failures keep it open; the first reset value closes it.
        breaker.record_failure("again");
        assert!(breaker.observe_reset(Some("2026-12-02T03:00:00Z")));
        assert!(!breaker.is_open());
        assert_eq!(breaker.last_failure, None);
        // The same value again is not a new reset.
        for _ in 0..3 {
            breaker.record_failure("x");
        }
        assert!(!breaker.observe_reset(Some("2026-12-02T03:00:00Z")));
        assert!(breaker.is_open());
        assert!(breaker.observe_reset(Some("2026-12-02T03:05:00Z")));
        assert!(!breaker.is_open());
    }

    #[test]
    fn a_success_clears_the_count() {
        let mut breaker = Breaker::default();
        breaker.record_failure("x");
        breaker.record_failure("x");
        assert!(breaker.record_success());
        breaker.record_failure("x");
        breaker.record_failure("x");
        assert!(!breaker.is_open());
        assert!(!Breaker::default().record_success());
        assert_eq!(Breaker::key("acme-prod", "db"), "acme-prod.db");
    }
}
