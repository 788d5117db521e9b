//! `Patrol`: a scheduled check of every tenant (expiry, quota pressure, workload trouble) whose
//! findings are sent to NotificationChannels. Cluster-scoped, for cloud admins only.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A scheduled patrol over all tenants, reporting to chat groups and webhooks.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "scs.dev",
    version = "v1alpha1",
    kind = "Patrol",
    plural = "patrols",
    shortname = "ptl",
    category = "scs",
    status = "PatrolStatus",
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule", description = "Cron schedule"),
    printcolumn(name = "Zone", type_ = "string", json_path = ".spec.timeZone", description = "Time zone"),
    printcolumn(
        name = "Last run",
        type_ = "string",
        json_path = ".status.lastRun.id",
        description = "The scheduled time of the last run"
    ),
    printcolumn(name = "Items", type_ = "integer", json_path = ".status.lastRun.items", description = "Findings"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the schedule and channels are usable"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct PatrolSpec {
    /// Standard five-field cron schedule (minute hour day-of-month month day-of-week), e.g.
    /// `0 9 * * 1-5`, or `@daily`/`@hourly`/`@weekly`/`@monthly`. Read in `timeZone`.
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(validation = Rule::new("!self.contains('TZ=')").message("put the time zone in spec.timeZone, not in the schedule"))]
    pub schedule: String,

    /// IANA time zone of the schedule, e.g. `Asia/Shanghai`. Default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z][-+_/A-Za-z0-9]*$"))]
    pub time_zone: Option<String>,

    /// NotificationChannels that receive the full report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 253)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub channels: Vec<String>,

    /// What counts as a finding. A Tenant's `spec.patrol.thresholds` overrides these, field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<PatrolThresholds>,

    /// A run missed by more than this (the operator was down) is skipped rather than sent late.
    /// Default 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 86400))]
    pub starting_deadline_seconds: Option<i32>,

    /// Stop running (the status keeps the last run).
    #[serde(default)]
    pub suspend: bool,
}

/// Thresholds of a patrol. Unset fields take the defaults (or, in a Tenant, the Patrol's value).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new(
    "!has(self.quotaWarningPercent) || !has(self.quotaCriticalPercent) || self.quotaWarningPercent <= self.quotaCriticalPercent"
).message("quotaWarningPercent must not exceed quotaCriticalPercent").field_path(".quotaWarningPercent"))]
#[serde(rename_all = "camelCase")]
pub struct PatrolThresholds {
    /// Report tenants whose `expiresAt` is this many days away or less (expired ones always).
    /// Default 7; expiring within a day is critical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3650))]
    pub expiry_days: Option<i32>,

    /// A quota resource used at this percentage or more is a warning. Default 80.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub quota_warning_percent: Option<i32>,

    /// A quota resource used at this percentage or more is critical. Default 95.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub quota_critical_percent: Option<i32>,

    /// Per quota resource (as in a ResourceQuota: `requests.storage`, `pods`,
    /// `requests.nvidia.com/gpu`), its own warning and critical percentages.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub quota_resources: BTreeMap<String, QuotaPercents>,

    /// Report a tenant whose GPU quota is fully used (no GPU left for a new pod). Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_fully_used: Option<bool>,

    /// Report SecureWorkloads Degraded or Failed for at least this many minutes. Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub workload_trouble_minutes: Option<i32>,
}

/// Warning and critical percentages of one quota resource.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QuotaPercents {
    /// Used percentage from which the entry is a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub warning: Option<i32>,
    /// Used percentage from which the entry is critical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub critical: Option<i32>,
}

/// Observed state of a Patrol.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PatrolStatus {
    /// The last run (claimed before anything is sent, so a restarted or new leader never sends
    /// the same run twice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<PatrolRun>,

    /// When the next run is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<Time>,

    /// `Ready`: the schedule, time zone and channels are usable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// One run of a patrol.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PatrolRun {
    /// The run's identity: its scheduled time, RFC 3339 in the patrol's time zone.
    pub id: String,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When every delivery ended (absent while sending).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Findings over all tenants.
    #[serde(default)]
    pub items: i32,
    /// Findings per category (`expiry`, `quota`, `gpu`, `workload`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, i32>,
    /// Delivery per channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub deliveries: Vec<PatrolDelivery>,
}

/// How a report reached (or did not reach) one channel.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PatrolDelivery {
    /// The NotificationChannel.
    pub name: String,
    /// `Pending`, `Delivered`, `Failed`, `Skipped` (nothing to say and no heartbeat) or
    /// `Interrupted` (the operator stopped while sending; not resent, to avoid a duplicate).
    pub result: String,
    /// Platform used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Findings in this channel's report.
    #[serde(default)]
    pub items: i32,
    /// HTTP attempts made.
    #[serde(default)]
    pub attempts: i32,
    /// Why it failed (never the URL or secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
