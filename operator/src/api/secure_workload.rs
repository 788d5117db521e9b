//! `SecureWorkload`: one workload of a tenant, always run in the tenant's Kata sandbox.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A workload of a tenant: a Deployment, StatefulSet, DaemonSet, Job or CronJob whose pods always
/// run in the tenant's Kata RuntimeClass, with optional GPUs, SDN networks, volumes, a Service,
/// autoscaling and lifecycle controls.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "scs.dev",
    version = "v1alpha1",
    kind = "SecureWorkload",
    plural = "secureworkloads",
    shortname = "swl",
    category = "scs",
    namespaced,
    status = "SecureWorkloadStatus",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.kind", description = "Kind of the workload"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.ready",
        description = "Ready pods out of desired"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase", description = "Lifecycle phase"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new(WORKLOAD_NAME_RULE).message(WORKLOAD_NAME_MESSAGE)
)]
#[x_kube(validation = Rule::new("!has(self.job) || self.kind in ['Job', 'CronJob']")
    .message("job applies to kind Job and CronJob only").field_path(".job"))]
#[x_kube(validation = Rule::new("self.kind != 'Job' || !has(self.job) || !has(self.job.ttlSecondsAfterFinished)")
    .message("ttlSecondsAfterFinished would delete the Job and the operator would start it again: delete the SecureWorkload instead (it applies to the Jobs of a CronJob)")
    .field_path(".job.ttlSecondsAfterFinished"))]
#[x_kube(validation = Rule::new("!has(self.cronJob) || self.kind == 'CronJob'")
    .message("cronJob applies to kind CronJob only").field_path(".cronJob"))]
#[x_kube(validation = Rule::new(
    "self.kind != 'Deployment' || !has(self.updateStrategy) || (!has(self.updateStrategy.maxSurge) && !has(self.updateStrategy.maxUnavailable)) || !has(self.networks) || self.networks.all(n, !has(n.ips) || size(n.ips) == 0)"
).message("a Deployment with static ips is replaced with the Recreate strategy (two pods cannot hold one address): maxSurge and maxUnavailable do not apply").field_path(".updateStrategy"))]
#[x_kube(validation = Rule::new("self.kind == 'CronJob' ? has(self.schedule) : !has(self.schedule)")
    .message("schedule is required when kind is CronJob and not allowed for other kinds").field_path(".schedule"))]
#[x_kube(validation = Rule::new("self.kind != 'DaemonSet' || !has(self.replicas)")
    .message("replicas cannot be set for a DaemonSet: it runs one pod per eligible node").field_path(".replicas"))]
#[x_kube(validation = Rule::new("self.kind != 'DaemonSet' || !has(self.suspended) || !self.suspended")
    .message("a DaemonSet cannot be suspended: delete it or narrow its node selector instead").field_path(".suspended"))]
#[x_kube(validation = Rule::new("!has(self.autoscaling) || self.kind in ['Deployment', 'StatefulSet']")
    .message("autoscaling is only available for Deployment and StatefulSet").field_path(".autoscaling"))]
#[x_kube(validation = Rule::new("!has(self.volumes) || size(self.volumes) == 0 || self.kind != 'DaemonSet'")
    .message("volumes are not available for a DaemonSet: its pods cannot share one claim").field_path(".volumes"))]
#[x_kube(validation = Rule::new("!has(self.updateStrategy) || self.kind in ['Deployment', 'StatefulSet', 'DaemonSet']")
    .message("updateStrategy applies to Deployment, StatefulSet and DaemonSet only").field_path(".updateStrategy"))]
#[x_kube(validation = Rule::new("!has(self.updateStrategy) || !has(self.updateStrategy.partition) || self.kind == 'StatefulSet'")
    .message("partition applies to a StatefulSet only").field_path(".updateStrategy.partition"))]
#[x_kube(validation = Rule::new("!has(self.updateStrategy) || !has(self.updateStrategy.maxSurge) || self.kind in ['Deployment', 'DaemonSet']")
    .message("maxSurge applies to a Deployment or DaemonSet only").field_path(".updateStrategy.maxSurge"))]
#[x_kube(validation = Rule::new(
    "!has(self.networks) || self.networks.all(n, !has(n.ips) || size(n.ips) == 0) || (self.kind in ['Deployment', 'StatefulSet', 'Job'] && (!has(self.replicas) || self.replicas == 1) && !has(self.autoscaling))"
).message("static ips need exactly one pod: kind Deployment, StatefulSet or Job with replicas 1 and no autoscaling").field_path(".networks"))]
#[x_kube(validation = Rule::new("!has(self.template.spec) || !has(self.template.spec.hostNetwork) || !self.template.spec.hostNetwork")
    .message("hostNetwork is not allowed: tenant pods never share the node's network namespace").field_path(".template.spec.hostNetwork"))]
#[x_kube(validation = Rule::new("!has(self.template.spec) || !has(self.template.spec.hostPID) || !self.template.spec.hostPID")
    .message("hostPID is not allowed: tenant pods never share the node's process namespace").field_path(".template.spec.hostPID"))]
#[x_kube(validation = Rule::new("!has(self.template.spec) || !has(self.template.spec.hostIPC) || !self.template.spec.hostIPC")
    .message("hostIPC is not allowed: tenant pods never share the node's IPC namespace").field_path(".template.spec.hostIPC"))]
#[serde(rename_all = "camelCase")]
pub struct SecureWorkloadSpec {
    /// Which Kubernetes workload to create.
    pub kind: WorkloadKind,

    /// Pods to run: Deployment and StatefulSet replicas (default 1), Job and CronJob parallelism
    /// (default 1). Not allowed for a DaemonSet. With `autoscaling` the HPA owns the count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,

    /// Cron schedule of a CronJob, e.g. `30 2 * * *`. Required for, and only for, a CronJob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 128))]
    #[x_kube(validation = Rule::new(SCHEDULE_TZ_RULE).message(SCHEDULE_TZ_MESSAGE))]
    pub schedule: Option<String>,

    /// Job settings: of the Job (kind Job) or of every Job a CronJob starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobOptions>,

    /// CronJob settings (kind CronJob only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_job: Option<CronJobOptions>,

    /// The pod template, as in any Kubernetes workload. Whatever it says, pods get the tenant's Kata
    /// `runtimeClassName`; hostNetwork, hostPID, hostIPC and privileged containers are rejected.
    pub template: PodTemplateSpec,

    /// Accelerators for the workload's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuRequest>,

    /// SDN networks (secondary interfaces through Multus) to attach each pod to. The tenant must
    /// list every network named here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub networks: Vec<NetworkAttachment>,

    /// Persistent volumes: PersistentVolumeClaims (Deployment, Job, CronJob) or volume claim
    /// templates (StatefulSet) of a storage tier, mounted into the containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub volumes: Vec<WorkloadVolume>,

    /// Keep the PersistentVolumeClaims when this SecureWorkload is deleted (default true), so user
    /// data is never lost by accident.
    #[serde(default = "default_true")]
    pub retain_volumes: bool,

    /// A Service in front of the pods, optionally with an Ingress host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<Expose>,

    /// Horizontal pod autoscaling on CPU and/or memory utilization (autoscaling/v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,

    /// Rolling update settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<UpdateStrategy>,

    /// Stop the workload without deleting it: replicas 0 for a Deployment or StatefulSet,
    /// `suspend` for a Job or CronJob. Set back to false to start it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<bool>,

    /// Redeploy: changing this timestamp rolls every pod (it becomes a pod-template annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<Time>,

    /// Old revisions kept: of the workload object (ReplicaSets, StatefulSet and DaemonSet
    /// revisions) and of this SecureWorkload's own spec history (`status.revisions`, kept as
    /// ControllerRevisions; roll back with the `scs.dev/rollback-to` annotation). Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub revision_history_limit: Option<i32>,

    /// Grants from systems outside the cluster that every pod needs before its containers start
    /// (see `PermissionGroup`): the operator puts an init container first in the pod that waits
    /// for them, and they are revoked when the pod is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_authorization: Option<PreAuthorization>,
}

/// Pod pre-authorization of a workload.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PreAuthorization {
    /// Names of PermissionGroups in the workload's namespace; every permission of each is granted
    /// before the pod's containers start.
    #[schemars(
        length(min = 1, max = 8),
        inner(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub permission_groups: Vec<String>,
}

/// CEL rule on a SecureWorkload's name: children are named `<name>-headless`, StatefulSet pods
/// carry `<name>-<10-char hash>` as a label value and a CronJob's Jobs `<name>-<11 chars>`, all
/// within the 63 characters of a DNS label.
pub const WORKLOAD_NAME_RULE: &str =
    "size(self.metadata.name) <= 52 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')";
/// The message of [`WORKLOAD_NAME_RULE`], as `render` words it (a root rule cannot name a
/// metadata field path, so the message does).
pub const WORKLOAD_NAME_MESSAGE: &str =
    "metadata.name: must be a DNS-1123 label of at most 52 characters (lowercase letters, digits, '-')";

/// CEL rule on `schedule`: no time zone prefix (the API server refuses it in a CronJob since 1.29).
pub const SCHEDULE_TZ_RULE: &str = "!self.contains('TZ=')";
/// The message of [`SCHEDULE_TZ_RULE`].
pub const SCHEDULE_TZ_MESSAGE: &str =
    "TZ= and CRON_TZ= are not accepted in a schedule: set spec.cronJob.timeZone instead";

/// Job settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobOptions {
    /// Successful pods the Job needs to complete (default 1). `replicas` is how many run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub completions: Option<i32>,

    /// Retries before the Job is marked failed (Kubernetes default 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub backoff_limit: Option<i32>,

    /// Seconds the Job may run, retries included, before it is failed (at most a year).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 31536000))]
    pub active_deadline_seconds: Option<i64>,

    /// Seconds after which a finished Job (and its pods) is deleted (at most a year). For a Job of
    /// kind Job the operator would create it again: leave it unset there unless the workload is
    /// deleted with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 31536000))]
    pub ttl_seconds_after_finished: Option<i32>,
}

/// CronJob settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CronJobOptions {
    /// IANA time zone of the schedule, e.g. `Asia/Shanghai` (default: the controller manager's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$"))]
    pub time_zone: Option<String>,

    /// What to do when a run is due while the previous one still runs: `Forbid` (default: skip
    /// it; overlapping runs double the quota used), `Allow` or `Replace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_policy: Option<ConcurrencyPolicy>,

    /// Seconds after its scheduled time that a missed run may still start (at most a day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub starting_deadline_seconds: Option<i64>,

    /// Finished successful Jobs kept (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub successful_jobs_history_limit: Option<i32>,

    /// Finished failed Jobs kept (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub failed_jobs_history_limit: Option<i32>,
}

/// CronJob concurrency policy.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConcurrencyPolicy {
    Allow,
    Forbid,
    Replace,
}

impl ConcurrencyPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ConcurrencyPolicy::Allow => "Allow",
            ConcurrencyPolicy::Forbid => "Forbid",
            ConcurrencyPolicy::Replace => "Replace",
        }
    }
}

fn default_true() -> bool {
    true
}

/// Kind of workload a SecureWorkload becomes.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
}

impl WorkloadKind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
        }
    }
}

/// Accelerators for a workload.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.cuda) || self.vendor == 'nvidia'")
    .message("cuda applies to vendor nvidia only: Kunlun XPUs have no CUDA driver").field_path(".cuda"))]
#[serde(rename_all = "camelCase")]
pub struct GpuRequest {
    /// `nvidia` or `kunlun`; mapped to an extended resource through the operator configuration.
    pub vendor: GpuVendor,

    /// Devices per pod.
    #[schemars(range(min = 1, max = 16))]
    pub count: i32,

    /// Only schedule onto nodes with this GPU product (the vendor's model node label), e.g.
    /// `Tesla-T4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"))]
    pub model: Option<String>,

    /// Container that gets the devices; defaults to the first container of the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub container: Option<String>,

    /// NVIDIA only: bounds on the CUDA version the node's driver supports, from the node label
    /// `scs.dev/cuda-driver-version` the device plugin writes. `min`: the CUDA version the image is
    /// built with; `max`: e.g. `11.2` to stay on the certified stack (driver 450.80.02).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda: Option<CudaRange>,
}

/// Node label holding the CUDA version a node's NVIDIA driver supports, as NVIDIA encodes it
/// (`1000 * major + 10 * minor`: CUDA 11.2 is `11020`), so node affinity's `Gt`/`Lt`, which
/// compare integers only, can bound it. Written by the device plugin.
pub const CUDA_DRIVER_VERSION_LABEL: &str = "scs.dev/cuda-driver-version";

/// CEL rule on a CUDA version: `major.minor`, no leading zeros.
const CUDA_VERSION_RULE: &str = "self.matches('^[1-9][0-9]?[.](0|[1-9][0-9]?)$')";
const CUDA_VERSION_MESSAGE: &str = "must be a CUDA version major.minor, e.g. 11.2";

/// CUDA versions a node's driver must support, both ends included (`major.minor`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("has(self.min) || has(self.max)").message("set min, max or both"))]
// Compared only once both are versions: a malformed one has its own message.
#[x_kube(validation = Rule::new(
    "!has(self.min) || !has(self.max) || !self.min.matches('^[0-9]+[.][0-9]+$') || !self.max.matches('^[0-9]+[.][0-9]+$') || int(self.min.split('.')[0]) * 100 + int(self.min.split('.')[1]) <= int(self.max.split('.')[0]) * 100 + int(self.max.split('.')[1])"
).message("min must not exceed max").field_path(".min"))]
#[serde(rename_all = "camelCase")]
pub struct CudaRange {
    /// The node's driver must support at least this CUDA version, e.g. `11.2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 5))]
    #[x_kube(validation = Rule::new(CUDA_VERSION_RULE).message(CUDA_VERSION_MESSAGE))]
    pub min: Option<String>,

    /// The node's driver must support at most this CUDA version, e.g. `11.2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 5))]
    #[x_kube(validation = Rule::new(CUDA_VERSION_RULE).message(CUDA_VERSION_MESSAGE))]
    pub max: Option<String>,
}

/// `major.minor` in NVIDIA's integer encoding (`11.2` → `11020`), the form of
/// [`CUDA_DRIVER_VERSION_LABEL`]; `None` unless it is one (minor below 100).
pub fn cuda_version_number(version: &str) -> Option<u32> {
    let (major, minor) = version.trim().split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return None;
    }
    let (major, minor): (u32, u32) = (major.parse().ok()?, minor.parse().ok()?);
    (major > 0).then_some(major * 1000 + minor * 10)
}

/// Accelerator vendor.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub enum GpuVendor {
    Nvidia,
    Kunlun,
}

impl GpuVendor {
    /// The spelling used in manifests and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            GpuVendor::Nvidia => "nvidia",
            GpuVendor::Kunlun => "kunlun",
        }
    }
}

/// A secondary interface on an SdnNetwork.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkAttachment {
    /// Name of the SdnNetwork.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,

    /// Static addresses for the pod's interface, in CIDR form (e.g. `192.168.100.20/24`). Only
    /// when the workload runs exactly one pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4), inner(length(max = 64)))]
    #[x_kube(validation = Rule::new("self.all(ip, isCIDR(ip))").message("every address must be in CIDR form, e.g. 192.168.100.20/24"))]
    pub ips: Vec<String>,

    /// Interface name inside the pod, e.g. `net1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 15), regex(pattern = r"^[a-z][a-z0-9]*$"))]
    pub interface: Option<String>,
}

/// A persistent volume of a workload.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadVolume {
    /// Volume name (also names the PersistentVolumeClaim).
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,

    /// Requested size, e.g. `20Gi`.
    #[schemars(extend("maxLength" = super::QUANTITY_MAX_LENGTH))]
    #[x_kube(validation = Rule::new(super::POSITIVE_QUANTITY_RULE).message(super::POSITIVE_QUANTITY_MESSAGE))]
    pub size: Quantity,

    /// Storage tier (e.g. `capacity` or `performance`), mapped to a StorageClass through the
    /// operator configuration.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub tier: String,

    /// Absolute path the volume is mounted at in every container (or only in `container`).
    #[schemars(length(min = 2, max = 1024), regex(pattern = r"^/[^:]*$"))]
    pub mount_path: String,

    /// Mount only into this container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub container: Option<String>,
}

/// A Service for the workload.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("size(self.ports) <= 1 || self.ports.all(p, has(p.name))")
    .message("every port needs a name when more than one port is exposed").field_path(".ports"))]
#[serde(rename_all = "camelCase")]
pub struct Expose {
    /// `ClusterIP` (default) or `LoadBalancer` (counts against the tenant's loadBalancers quota).
    #[serde(rename = "type", default)]
    pub service_type: ServiceType,

    /// Ports of the Service.
    #[schemars(length(min = 1, max = 16))]
    pub ports: Vec<ExposePort>,

    /// An Ingress routing this host to the first port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressRule>,
}

/// Service type offered to tenants (NodePort is deliberately absent).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    LoadBalancer,
}

/// A Service port.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExposePort {
    /// Port name (required when there are several ports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 15), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: Option<String>,

    /// Port the Service listens on.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Container port (number or name); defaults to `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,

    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<PortProtocol>,
}

/// Transport protocol of a port.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
pub enum PortProtocol {
    TCP,
    UDP,
    SCTP,
}

/// An Ingress in front of the Service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    /// Host name, e.g. `ledger.acme.example.com`, under one of the Tenant's `spec.ingress.domains`.
    /// No wildcards: a tenant names the hosts it serves.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub host: String,

    /// Path prefix (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^/.*$"))]
    pub path: Option<String>,

    /// IngressClass to use; defaults to the cluster default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub class_name: Option<String>,

    /// Secret with the TLS certificate for the host, in the workload's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub tls_secret_name: Option<String>,
}

/// Horizontal pod autoscaling.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.minReplicas) || self.minReplicas <= self.maxReplicas")
    .message("minReplicas must not exceed maxReplicas").field_path(".minReplicas"))]
#[serde(rename_all = "camelCase")]
pub struct Autoscaling {
    /// Lower bound of replicas (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: Option<i32>,

    /// Upper bound of replicas.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,

    /// Target average CPU utilization in percent of requests. Defaults to 80 when no target is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub cpu_utilization: Option<i32>,

    /// Target average memory utilization in percent of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub memory_utilization: Option<i32>,
}

/// Rolling update settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategy {
    /// Pods created above the desired count during an update (number or percentage); Deployment
    /// and DaemonSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,

    /// Pods that may be unavailable during an update (number or percentage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,

    /// StatefulSet only: pods with an ordinal below this keep the old revision (staged rollout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub partition: Option<i32>,
}

/// Observed state of a SecureWorkload.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
// `preAuthorization` is the authz-server's, in the schema only (see `PreAuthorizationSummary`).
#[schemars(transform = super::permission_group::with_pre_authorization)]
pub struct SecureWorkloadStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pending, Progressing, Running, Degraded, Suspended, Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<WorkloadPhase>,
    /// Ready pods out of desired, e.g. `2/3` (for kubectl).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// Desired pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
    /// Ready pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Pods of the current revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    /// Jobs: pods that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<i32>,
    /// Jobs: pods that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<i32>,
    /// CronJobs: when a job was last scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// Pods of the workload object (its `status.replicas`; for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Label selector of the workload's pods, e.g. `scs.dev/workload=web` (for the scale
    /// subresource, so an HorizontalPodAutoscaler can target the SecureWorkload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Revisions of the spec, oldest first (kept as ControllerRevisions named here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<RevisionSummary>,
    /// Objects this workload owns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildReference>,
    /// `Ready`, `Progressing` and `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Lifecycle phase of a SecureWorkload.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadPhase {
    Pending,
    Progressing,
    Running,
    Degraded,
    Suspended,
    Succeeded,
    Failed,
}

/// A child object of a SecureWorkload.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChildReference {
    /// Kind of the child.
    pub kind: String,
    /// Name of the child (in the workload's namespace).
    pub name: String,
}

/// One revision of a SecureWorkload's spec.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSummary {
    /// Revision number (increasing; a rollback makes the restored spec the newest revision).
    pub revision: i64,
    /// Name of the ControllerRevision holding the spec.
    pub name: String,
    /// When the revision was first recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
    /// What changed from the revision before, e.g. `image app: 1.0 → 1.1`.
    #[serde(default)]
    pub summary: String,
}

#[cfg(test)]
mod tests {
    use super::cuda_version_number;

    #[test]
    fn cuda_versions_use_nvidias_integer_encoding() {
        assert_eq!(cuda_version_number("11.2"), Some(11020));
        assert_eq!(cuda_version_number("11.0"), Some(11000));
        assert_eq!(cuda_version_number("12.10"), Some(12100));
        assert_eq!(cuda_version_number(" 9.2\n"), Some(9020));
        for bad in ["", "11", "11.", ".2", "11.2.1", "x.2", "11.x", "0.5", "-1.2", "100.1", "11.100", "+1.2"] {
            assert_eq!(cuda_version_number(bad), None, "{bad:?}");
        }
    }
}
