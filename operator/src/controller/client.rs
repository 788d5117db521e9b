//! The operator's API client: every request counted (metrics) and, as configured, paced by a
//! client-side rate limit.

use std::time::Duration;

use crate::config::ApiPressure;

/// A client for `config` with the request counter and the `pressure` rate limit: on average
/// `qps` requests a second, `burst` at most at once (a window of `burst / qps` seconds).
pub fn build(config: kube::Config, pressure: &ApiPressure) -> Result<kube::Client, kube::Error> {
    let limit = window(pressure).map(|(requests, per)| tower::limit::RateLimitLayer::new(requests, per));
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&super::metrics::api_request_layer())
        .with_layer(&tower::util::option_layer(limit))
        .build())
}

/// The rate limit as `(requests, per window)`; `None` when it is off (`qps: 0`).
pub fn window(pressure: &ApiPressure) -> Option<(u64, Duration)> {
    (pressure.qps > 0).then(|| {
        let burst = u64::from(pressure.burst.max(1));
        (burst, Duration::from_secs_f64(burst as f64 / f64::from(pressure.qps)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_spreads_the_burst_over_the_rate() {
        let pressure = ApiPressure { reconcile_concurrency: 16, qps: 200, burst: 400 };
        assert_eq!(window(&pressure), Some((400, Duration::from_secs(2))));
        assert_eq!(window(&ApiPressure { qps: 0, ..pressure.clone() }), None, "qps 0 turns it off");
        assert_eq!(window(&ApiPressure { qps: 50, burst: 5, ..pressure }), Some((5, Duration::from_millis(100))));
    }
}
