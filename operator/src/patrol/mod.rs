//! Patrol: scheduled reports of tenant expiry, quota pressure and workload trouble to DingTalk,
//! Feishu and webhooks. Pure parts here (schedule, findings, report, formats, signatures) and
//! the HTTP delivery; the controller that runs it is `controller::patrol`.

pub mod cron;
pub mod deliver;
pub mod format;
pub mod report;
pub mod sign;
