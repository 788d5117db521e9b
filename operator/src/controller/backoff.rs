//! Per-object exponential backoff with jitter, reset on success.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Failure counts by object key.
#[derive(Debug)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
    base: Duration,
    max: Duration,
}

impl Backoff {
    /// Delays start at `base`, double per consecutive failure and stop growing at `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self { failures: Mutex::default(), base, max }
    }

    /// Records a failure of `key` and returns how long to wait before the next try.
    pub fn next_delay(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().expect("backoff lock");
        let count = failures.entry(key.to_string()).or_insert(0);
        *count = count.saturating_add(1);
        let exponential = self.base.saturating_mul(1u32 << (*count - 1).min(20));
        let delay = exponential.min(self.max);
        // ±10% jitter so that many objects failing together do not retry in lockstep.
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let jitter = f64::from(nanos % 2001) / 10_000.0 - 0.1;
        delay.mul_f64(1.0 + jitter)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn reset(&self, key: &str) {
        self.failures.lock().expect("backoff lock").remove(key);
    }

    /// Consecutive failures of `key` so far.
    pub fn failures(&self, key: &str) -> u32 {
        self.failures.lock().expect("backoff lock").get(key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        let within = |d: Duration, secs: f64| (d.as_secs_f64() - secs).abs() <= secs * 0.1 + 1e-9;
        assert!(within(backoff.next_delay("a"), 1.0));
        assert!(within(backoff.next_delay("a"), 2.0));
        assert!(within(backoff.next_delay("a"), 4.0));
        assert!(within(backoff.next_delay("b"), 1.0), "per object");
        for _ in 0..20 {
            backoff.next_delay("a");
        }
        assert!(within(backoff.next_delay("a"), 300.0), "capped");
        backoff.reset("a");
        assert_eq!(backoff.failures("a"), 0);
        assert!(within(backoff.next_delay("a"), 1.0));
    }
}
