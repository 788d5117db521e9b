//! What a patrol run finds, and the report one channel gets: pure functions of the tenants,
//! workloads, thresholds and the time, so every rule is tested without a cluster.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use crate::api::{PatrolThresholds, SecureWorkload, Tenant, WorkloadPhase};

/// How bad a finding is; `Critical` sorts first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    Critical,
    Warning,
}

/// What a finding is about; the order is the order of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Category {
    Expiry,
    Quota,
    Gpu,
    Workload,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Expiry => "expiry",
            Category::Quota => "quota",
            Category::Gpu => "gpu",
            Category::Workload => "workload",
        }
    }
}

/// One thing worth telling.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub severity: Severity,
    pub category: Category,
    pub tenant: String,
    /// What in the tenant: a quota entry, `namespace/workload`, or empty for the tenant itself.
    pub subject: String,
    /// The finding in words, without quantities.
    pub summary: String,
    /// Quantities behind it (`15400m of 16`), left out when a channel hides amounts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    /// Order within severity and category: smaller is more urgent.
    #[serde(skip)]
    pub urgency: i64,
}

/// Thresholds with every default applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    pub expiry_days: i64,
    pub quota_warning: u32,
    pub quota_critical: u32,
    pub per_resource: BTreeMap<String, (Option<u32>, Option<u32>)>,
    pub gpu_fully_used: bool,
    pub workload_minutes: i64,
}

/// The thresholds for a tenant: its own fields win over the patrol's, which win over defaults.
pub fn resolve(patrol: Option<&PatrolThresholds>, tenant: Option<&PatrolThresholds>) -> Thresholds {
    let pick = |f: fn(&PatrolThresholds) -> Option<i32>| tenant.and_then(f).or_else(|| patrol.and_then(f));
    let mut per_resource: BTreeMap<String, (Option<u32>, Option<u32>)> = BTreeMap::new();
    for source in [patrol, tenant].into_iter().flatten() {
        for (key, percents) in &source.quota_resources {
            let entry = per_resource.entry(key.clone()).or_default();
            entry.0 = percents.warning.map(|p| p.max(0) as u32).or(entry.0);
            entry.1 = percents.critical.map(|p| p.max(0) as u32).or(entry.1);
        }
    }
    Thresholds {
        expiry_days: pick(|t| t.expiry_days).unwrap_or(7) as i64,
        quota_warning: pick(|t| t.quota_warning_percent).unwrap_or(80).max(0) as u32,
        quota_critical: pick(|t| t.quota_critical_percent).unwrap_or(95).max(0) as u32,
        per_resource,
        gpu_fully_used: tenant
            .and_then(|t| t.gpu_fully_used)
            .or_else(|| patrol.and_then(|t| t.gpu_fully_used))
            .unwrap_or(true),
        workload_minutes: pick(|t| t.workload_trouble_minutes).unwrap_or(30) as i64,
    }
}

impl Thresholds {
    /// Warning and critical percentages of quota entry `key`.
    fn quota_percents(&self, key: &str) -> (u32, u32) {
        let (warning, critical) = self.per_resource.get(key).copied().unwrap_or_default();
        (warning.unwrap_or(self.quota_warning), critical.unwrap_or(self.quota_critical))
    }
}

/// Findings about `tenant` itself: expiry, quota pressure and full GPU quota. `gpu_keys` are the
/// quota entries of accelerators (`requests.nvidia.com/gpu`, ...).
pub fn tenant_findings(tenant: &Tenant, thresholds: &Thresholds, gpu_keys: &[String], now: Timestamp) -> Vec<Finding> {
    let name = tenant.name_any();
    let mut found = Vec::new();
    if let Some(lifecycle) = crate::expiry::decide(tenant, now) {
        let date = lifecycle.expires_at.0.to_string();
        let days = lifecycle.days_left;
        let suspended = lifecycle.state == crate::api::LifecycleState::Suspended;
        let finding = if days < 0 || now >= lifecycle.expires_at.0 {
            let what = if suspended { "workloads suspended" } else { "workloads still running" };
            let ago = (now.as_second() - lifecycle.expires_at.0.as_second()) / 86_400;
            Some((Severity::Critical, format!("expired {ago} day(s) ago ({date}); {what}")))
        } else if days < 1 {
            Some((Severity::Critical, format!("expires within a day ({date})")))
        } else if days <= thresholds.expiry_days {
            Some((Severity::Warning, format!("expires in {days} day(s) ({date})")))
        } else {
            None
        };
        if let Some((severity, summary)) = finding {
            found.push(Finding {
                severity,
                category: Category::Expiry,
                tenant: name.clone(),
                subject: String::new(),
                summary,
                amount: None,
                urgency: days,
            });
        }
    }
    let Some(quota) = tenant.status.as_ref().and_then(|s| s.quota.as_ref()) else { return found };
    for (key, hard) in &quota.hard {
        let (Ok(hard_n), Some(Ok(used_n))) =
            (crate::quantity::parse(&hard.0), quota.used.get(key).map(|u| crate::quantity::parse(&u.0)))
        else {
            continue;
        };
        // A zero quota means "none allowed", not "full".
        if hard_n <= 0 {
            continue;
        }
        let percent = (used_n as f64 * 100.0 / hard_n as f64).floor() as u32;
        let used = &quota.used[key].0;
        let amount = Some(format!("{used} of {}", hard.0));
        if gpu_keys.iter().any(|g| g == key) {
            if thresholds.gpu_fully_used && used_n >= hard_n {
                found.push(Finding {
                    severity: Severity::Warning,
                    category: Category::Gpu,
                    tenant: name.clone(),
                    subject: key.clone(),
                    summary: "GPU quota fully used: no accelerator left for a new pod".into(),
                    amount,
                    urgency: 0,
                });
            }
            continue;
        }
        let (warning, critical) = thresholds.quota_percents(key);
        let severity = if percent >= critical {
            Severity::Critical
        } else if percent >= warning {
            Severity::Warning
        } else {
            continue;
        };
        found.push(Finding {
            severity,
            category: Category::Quota,
            tenant: name.clone(),
            subject: key.clone(),
            summary: format!("quota {percent}% used"),
            amount,
            urgency: -(percent as i64),
        });
    }
    found
}

/// A finding for `workload` (of `tenant`) when it has been Degraded or Failed for at least the
/// threshold, judged from its `Ready` condition's last transition.
pub fn workload_finding(
    workload: &SecureWorkload,
    tenant: &str,
    thresholds: &Thresholds,
    now: Timestamp,
) -> Option<Finding> {
    let status = workload.status.as_ref()?;
    let severity = match status.phase? {
        WorkloadPhase::Failed => Severity::Critical,
        WorkloadPhase::Degraded => Severity::Warning,
        _ => return None,
    };
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready" && c.status == "False")?;
    let minutes = now.duration_since(ready.last_transition_time.0).as_secs() / 60;
    if minutes < thresholds.workload_minutes {
        return None;
    }
    let phase = if severity == Severity::Critical { "Failed" } else { "Degraded" };
    Some(Finding {
        severity,
        category: Category::Workload,
        tenant: tenant.to_string(),
        subject: format!("{}/{}", workload.namespace().unwrap_or_default(), workload.name_any()),
        summary: format!("{phase} for {} ({}: {})", duration_words(minutes), ready.reason, ready.message),
        amount: None,
        urgency: -minutes,
    })
}

fn duration_words(minutes: i64) -> String {
    match minutes {
        m if m >= 2 * 24 * 60 => format!("{} days", m / (24 * 60)),
        m if m >= 120 => format!("{} hours", m / 60),
        m => format!("{m} min"),
    }
}

/// Most urgent first: severity, category, then the category's own measure, then names.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (a.severity, a.category, a.urgency, &a.tenant, &a.subject)
            .cmp(&(b.severity, b.category, b.urgency, &b.tenant, &b.subject))
    });
}

/// What one channel is told about one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub patrol: String,
    /// The run's identity (its scheduled time).
    pub run: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyword: Option<String>,
    /// Nothing found: the all-clear message.
    pub heartbeat: bool,
    /// Findings in total (the listed ones and the rest).
    pub total: usize,
    /// Findings per category, over all of them.
    pub counts: BTreeMap<String, usize>,
    pub critical: usize,
    /// The listed findings, most urgent first, at most the channel's `maxListLength`.
    pub items: Vec<Finding>,
    /// Findings not listed ("and N more").
    pub more: usize,
    /// Quantities left out.
    pub hide_amounts: bool,
}

/// How a channel wants its report.
#[derive(Clone, Debug, Default)]
pub struct Presentation {
    pub keyword: Option<String>,
    pub max_list_length: usize,
    pub hide_amounts: bool,
    pub heartbeat: bool,
}

/// The report of `findings` for a channel; `None` when there is nothing to say and the channel
/// wants no heartbeat.
pub fn build(patrol: &str, run: &str, mut findings: Vec<Finding>, how: &Presentation) -> Option<Report> {
    if findings.is_empty() && !how.heartbeat {
        return None;
    }
    sort(&mut findings);
    let mut counts = BTreeMap::new();
    for finding in &findings {
        *counts.entry(finding.category.as_str().to_string()).or_insert(0) += 1;
    }
    let total = findings.len();
    let critical = findings.iter().filter(|f| f.severity == Severity::Critical).count();
    let shown = total.min(how.max_list_length.max(1));
    findings.truncate(shown);
    if how.hide_amounts {
        for finding in &mut findings {
            finding.amount = None;
        }
    }
    Some(Report {
        patrol: patrol.to_string(),
        run: run.to_string(),
        keyword: how.keyword.clone(),
        heartbeat: total == 0,
        total,
        counts,
        critical,
        items: findings,
        more: total - shown,
        hide_amounts: how.hide_amounts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ExpiryPolicy, QuotaPercents, TenantQuotaStatus, TenantStatus};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn tenant(name: &str, expires: Option<&str>, quota: &[(&str, &str, &str)]) -> Tenant {
        let mut t = Tenant::new(name, Default::default());
        t.spec.expires_at = expires.map(|e| Time(at(e)));
        t.spec.expiry_policy = Some(ExpiryPolicy::Suspend);
        let q = |s: &str| Quantity(s.into());
        t.status = Some(TenantStatus {
            quota: Some(TenantQuotaStatus {
                hard: quota.iter().map(|(k, h, _)| (k.to_string(), q(h))).collect(),
                used: quota.iter().map(|(k, _, u)| (k.to_string(), q(u))).collect(),
            }),
            ..Default::default()
        });
        t
    }

    const NOW: &str = "2026-12-01T00:00:00Z";
    fn gpu() -> Vec<String> {
        vec!["requests.nvidia.com/gpu".into()]
    }

    #[test]
    fn expiry_findings_by_days_left() {
        let th = resolve(None, None);
        let finding = |expires: &str| tenant_findings(&tenant("a", Some(expires), &[]), &th, &gpu(), at(NOW)).pop();
        assert_eq!(finding("2026-12-20T00:00:00Z"), None, "19 days: beyond the default 7");
        let soon = finding("2026-12-06T00:00:00Z").unwrap();
        assert_eq!((soon.severity, soon.category), (Severity::Warning, Category::Expiry));
        assert!(soon.summary.contains("expires in 5 day(s)"), "{}", soon.summary);
        assert_eq!(finding("2026-12-01T12:00:00Z").unwrap().severity, Severity::Critical, "within a day");
        let gone = finding("2026-11-28T12:00:00Z").unwrap();
        assert_eq!(gone.severity, Severity::Critical);
        assert!(
            gone.summary.contains("expired 2 day(s) ago") && gone.summary.contains("suspended"),
            "{}",
            gone.summary
        );
    }

    #[test]
    fn quota_findings_by_percent_and_per_resource_thresholds() {
        let t = tenant(
            "a",
            None,
            &[
                ("requests.cpu", "16", "15400m"),
                ("requests.memory", "64Gi", "52Gi"),
                ("pods", "100", "10"),
                ("services.nodeports", "0", "0"),
                ("requests.storage", "1Ti", "700Gi"),
            ],
        );
        let th = resolve(None, None);
        let found = tenant_findings(&t, &th, &gpu(), at(NOW));
        let summaries: Vec<(Severity, &str)> = found.iter().map(|f| (f.severity, f.summary.as_str())).collect();
        assert_eq!(summaries, [(Severity::Critical, "quota 96% used"), (Severity::Warning, "quota 81% used")]);
        assert_eq!(found[0].amount.as_deref(), Some("15400m of 16"));
        // Storage at 68%: reported once its own warning threshold is 60.
        let patrol = PatrolThresholds {
            quota_resources: [("requests.storage".to_string(), QuotaPercents { warning: Some(60), critical: None })]
                .into(),
            ..Default::default()
        };
        let found = tenant_findings(&t, &resolve(Some(&patrol), None), &gpu(), at(NOW));
        assert!(found.iter().any(|f| f.subject == "requests.storage" && f.severity == Severity::Warning));
    }

    #[test]
    fn gpu_fully_used_is_its_own_category() {
        let t = tenant("a", None, &[("requests.nvidia.com/gpu", "2", "2")]);
        let found = tenant_findings(&t, &resolve(None, None), &gpu(), at(NOW));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].category, Category::Gpu);
        let off = PatrolThresholds { gpu_fully_used: Some(false), ..Default::default() };
        assert!(tenant_findings(&t, &resolve(Some(&off), None), &gpu(), at(NOW)).is_empty());
        let one_left = tenant("a", None, &[("requests.nvidia.com/gpu", "2", "1")]);
        assert!(tenant_findings(&one_left, &resolve(None, None), &gpu(), at(NOW)).is_empty());
    }

    #[test]
    fn tenant_thresholds_win_over_the_patrols_field_by_field() {
        let patrol = PatrolThresholds { expiry_days: Some(3), quota_warning_percent: Some(70), ..Default::default() };
        let own = PatrolThresholds { expiry_days: Some(30), ..Default::default() };
        let th = resolve(Some(&patrol), Some(&own));
        assert_eq!(th.expiry_days, 30, "the tenant's own");
        assert_eq!(th.quota_warning, 70, "the patrol's where the tenant says nothing");
        assert_eq!(th.quota_critical, 95, "the default where neither does");
        let t = tenant("a", Some("2026-12-20T00:00:00Z"), &[]);
        assert_eq!(tenant_findings(&t, &resolve(Some(&patrol), None), &gpu(), at(NOW)), vec![]);
        assert_eq!(tenant_findings(&t, &th, &gpu(), at(NOW)).len(), 1);
    }

    fn workload(phase: &str, since: &str) -> SecureWorkload {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": "web", "namespace": "a-prod"},
            "spec": {"kind": "Deployment", "template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "False", "reason": "CrashLoopBackOff",
                "message": "container app keeps crashing", "lastTransitionTime": since}]}
        }))
        .unwrap()
    }

    #[test]
    fn workload_trouble_counts_only_past_the_threshold() {
        let th = resolve(None, None);
        assert_eq!(workload_finding(&workload("Degraded", "2026-11-30T23:45:00Z"), "a", &th, at(NOW)), None, "15 min");
        let degraded = workload_finding(&workload("Degraded", "2026-11-30T23:00:00Z"), "a", &th, at(NOW)).unwrap();
        assert_eq!((degraded.severity, degraded.subject.as_str()), (Severity::Warning, "a-prod/web"));
        assert!(degraded.summary.starts_with("Degraded for 60 min (CrashLoopBackOff"), "{}", degraded.summary);
        let failed = workload_finding(&workload("Failed", "2026-11-28T00:00:00Z"), "a", &th, at(NOW)).unwrap();
        assert_eq!(failed.severity, Severity::Critical);
        assert!(failed.summary.contains("3 days"));
        assert_eq!(workload_finding(&workload("Running", "2026-11-28T00:00:00Z"), "a", &th, at(NOW)), None);
    }

    fn finding(severity: Severity, category: Category, tenant: &str, urgency: i64) -> Finding {
        Finding {
            severity,
            category,
            tenant: tenant.into(),
            subject: String::new(),
            summary: tenant.to_string(),
            amount: Some("1 of 2".into()),
            urgency,
        }
    }

    #[test]
    fn reports_sort_count_cap_and_hide() {
        let findings = vec![
            finding(Severity::Warning, Category::Workload, "w", 0),
            finding(Severity::Warning, Category::Expiry, "e5", 5),
            finding(Severity::Critical, Category::Quota, "q", -99),
            finding(Severity::Warning, Category::Expiry, "e2", 2),
            finding(Severity::Critical, Category::Expiry, "gone", -3),
        ];
        let how =
            Presentation { keyword: Some("patrol".into()), max_list_length: 3, hide_amounts: true, heartbeat: true };
        let report = build("daily", "2026-12-01T09:00:00+08:00", findings, &how).unwrap();
        let order: Vec<&str> = report.items.iter().map(|f| f.tenant.as_str()).collect();
        assert_eq!(order, ["gone", "q", "e2"], "critical first, then category, then urgency; capped at 3");
        assert_eq!((report.total, report.more, report.critical), (5, 2, 2));
        assert_eq!(report.counts, [("expiry".into(), 3), ("quota".into(), 1), ("workload".into(), 1)].into());
        assert!(report.items.iter().all(|f| f.amount.is_none()), "amounts hidden");
        assert!(!report.heartbeat);
    }

    #[test]
    fn nothing_found_is_a_heartbeat_or_nothing() {
        let how = Presentation { max_list_length: 20, heartbeat: true, ..Default::default() };
        let report = build("daily", "r", vec![], &how).unwrap();
        assert!(report.heartbeat);
        assert_eq!(report.total, 0);
        assert_eq!(build("daily", "r", vec![], &Presentation { heartbeat: false, ..how }), None);
    }
}
