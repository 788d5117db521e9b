//! End-to-end tests of the operator.
//!
//! Planned layers (see README "Tests"): controllers run in-process against a fake API server
//! speaking the real HTTP API, a scale harness, and kind cluster tests behind a cargo feature.
//! None exists yet: the controllers they exercise have not landed. Until then the offline
//! contract (render on the examples) is tested in `operator/tests/`.
