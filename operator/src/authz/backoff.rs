//! Per-pod exponential backoff with jitter: a long provider outage (minutes to hours) would open
//! every group's breaker and need people to reset them; instead each pod remembers when it last
//! failed and is let through once its wait has passed. A success forgets the pod's failures.
//!
//! Parameters as in the source article: 2 min initial, factor 2, jitter 1.0 (a wait of up to
//! twice the step), 5 steps, cap 1 h: 2, 4, 8, 16, 32 min (each plus up to as much again), then
//! 1 h (the cap, jittered the same way).

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// The backoff parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    pub initial: Duration,
    pub factor: u32,
    pub jitter: f64,
    pub steps: u32,
    pub cap: Duration,
}

impl Default for Params {
    fn default() -> Self {
        Self { initial: Duration::from_secs(120), factor: 2, jitter: 1.0, steps: 5, cap: Duration::from_secs(3600) }
    }
}

impl Params {
    /// The base wait after `failures` consecutive failures (1 or more), before jitter.
    pub fn base(&self, failures: u32) -> Duration {
        let step = failures.max(1) - 1;
        if step >= self.steps {
            return self.cap;
        }
        let multiplier = self.factor.max(1).saturating_pow(step);
        self.initial.saturating_mul(multiplier).min(self.cap)
    }

    /// The wait with jitter: `base * (1 + jitter * r)` for `r` in `[0, 1)`.
    pub fn wait(&self, failures: u32, r: f64) -> Duration {
        let r = if r.is_finite() { r.clamp(0.0, 1.0) } else { 0.0 };
        self.base(failures).mul_f64(1.0 + self.jitter * r)
    }
}

/// A pod's backoff, kept on the pod (annotation) so every replica sees it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodBackoff {
    /// Consecutive failed attempts.
    #[serde(default)]
    pub failures: u32,
    /// When the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<Timestamp>,
    /// When the next attempt may be made (last failure + jittered wait).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<Timestamp>,
}

impl PodBackoff {
    /// How long the pod must still wait at `now` (zero: it may try).
    pub fn remaining(&self, now: Timestamp) -> Duration {
        match self.next_attempt {
            Some(next) if next > now => next.duration_since(now).unsigned_abs(),
            _ => Duration::ZERO,
        }
    }

    /// An attempt failed at `now`; `r` is the jitter draw. Returns the wait.
    pub fn record_failure(&mut self, params: &Params, now: Timestamp, r: f64) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let wait = params.wait(self.failures, r);
        self.last_failure = Some(now);
        let signed = SignedDuration::try_from(wait).unwrap_or(SignedDuration::MAX);
        self.next_attempt = Some(now.checked_add(signed).unwrap_or(now));
        wait
    }

    /// An attempt succeeded: the pod starts from scratch.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// A jitter draw in `[0, 1)` from the system's random source.
pub fn random_fraction() -> f64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const MIN: u64 = 60;

    #[test]
    fn the_steps_double_from_two_minutes_then_stay_at_the_cap() {
        let params = Params::default();
        let bases: Vec<u64> = (1..=8).map(|n| params.base(n).as_secs() / MIN).collect();
        assert_eq!(bases, [2, 4, 8, 16, 32, 60, 60, 60]);
        // Jitter 1.0: anywhere from the base to twice it.
        assert_eq!(params.wait(1, 0.0), Duration::from_secs(2 * MIN));
        assert_eq!(params.wait(1, 0.5), Duration::from_secs(3 * MIN));
        assert_eq!(params.wait(6, 0.999).as_secs(), 7196);
        assert_eq!(params.wait(1, f64::NAN), Duration::from_secs(2 * MIN));
    }

    #[test]
    fn a_pod_waits_by_the_clock_and_a_success_forgets_it() {
        let clock = ManualClock::at("2026-12-02T02:00:00Z".parse().unwrap());
        let params = Params::default();
        let mut pod = PodBackoff::default();
        assert_eq!(pod.remaining(clock.now()), Duration::ZERO);
        assert_eq!(pod.record_failure(&params, clock.now(), 0.0), Duration::from_secs(2 * MIN));
        assert_eq!(pod.remaining(clock.now()), Duration::from_secs(2 * MIN));
        clock.advance(SignedDuration::from_secs(119));
        assert_eq!(pod.remaining(clock.now()), Duration::from_secs(1));
        clock.advance(SignedDuration::from_secs(1));
        assert_eq!(pod.remaining(clock.now()), Duration::ZERO);
        assert_eq!(pod.record_failure(&params, clock.now(), 0.25), Duration::from_secs(5 * MIN));
        assert_eq!(pod.last_failure, Some(clock.now()));
        pod.reset();
        assert_eq!(pod, PodBackoff::default());
        let draw = random_fraction();
        assert!((0.0..1.0).contains(&draw), "{draw}");
    }
}
