//! `Tenant`: a team's namespaces with their quota, roles, network fence and sandbox runtime.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A tenant of the secure container service: one or more namespaces fenced by quota, RBAC,
/// network isolation and Pod Security, whose pods all run in the tenant's Kata sandbox runtime.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "scs.dev",
    version = "v1alpha1",
    kind = "Tenant",
    plural = "tenants",
    shortname = "tn",
    category = "scs",
    status = "TenantStatus",
    printcolumn(
        name = "Namespaces",
        type_ = "string",
        json_path = ".status.namespaces[*].name",
        description = "Namespaces of the tenant"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether every concern of the tenant is in place"
    ),
    printcolumn(
        name = "Lifecycle",
        type_ = "string",
        json_path = ".status.lifecycle.state",
        description = "Active, Expired or Suspended (with spec.expiresAt)"
    ),
    printcolumn(
        name = "Days left",
        type_ = "integer",
        json_path = ".status.lifecycle.daysLeft",
        description = "Whole days until spec.expiresAt"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new(super::CLUSTER_NAME_RULE).message(super::CLUSTER_NAME_MESSAGE)
)]
#[x_kube(validation = Rule::new(
    "!has(self.members) || self.members.all(m, self.members.exists_one(o, o.kind == m.kind && o.name == m.name && (has(o.__namespace__) ? o.__namespace__ : '') == (has(m.__namespace__) ? m.__namespace__ : '')))"
).message("each member (kind, name, namespace) may be listed only once").field_path(".members"))]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    /// Namespaces the tenant owns. Defaults to one namespace named like the tenant. A namespace that
    /// already exists without this operator's ownership, or belongs to another tenant, is reported
    /// as a conflict in status and never taken over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 32),
        inner(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub namespaces: Vec<String>,

    /// Resource quota of the tenant, enforced per namespace by a ResourceQuota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<TenantQuota>,

    /// Default container requests and limits (a LimitRange in each namespace). Needed because a
    /// quota on cpu or memory rejects pods that declare none; sane defaults apply when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_defaults: Option<LimitDefaults>,

    /// Users, groups and service accounts that may work in the tenant's namespaces, with their role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub members: Vec<TenantMember>,

    /// Names of SdnNetworks whose secondary interfaces the tenant's pods may attach to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 32),
        inner(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub networks: Vec<String>,

    /// Network isolation and Pod Security settings. Isolation is on by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Isolation>,

    /// The Kata RuntimeClass every pod of the tenant must use. Defaults to the operator's
    /// configured RuntimeClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub runtime_class_name: Option<String>,

    /// Images: the registries the tenant's pods may pull from, the pull credentials the platform
    /// hands the tenant, and how images must be pinned. Defaults come from the operator
    /// configuration (`images`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<TenantImages>,

    /// Ingress: the DNS domains the tenant's Ingress hosts must equal or fall under. Without
    /// domains the tenant may not publish Ingresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<TenantIngress>,

    /// When the tenant's allotment ends, RFC 3339 (e.g. `2027-03-31T16:00:00Z` or
    /// `2027-04-01T00:00:00+08:00`). Status shows the days left; what happens then is
    /// `expiryPolicy`. Moving it into the future renews the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,

    /// What expiry does: `Notify` (default: status, an Event, metrics and patrol reports only) or
    /// `Suspend` (also every SecureWorkload of the tenant is stopped: Deployments and StatefulSets
    /// scaled to zero, Jobs and CronJobs suspended; nothing is deleted, volumes keep their data, and
    /// everything resumes when `expiresAt` moves into the future).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_policy: Option<ExpiryPolicy>,

    /// This tenant's own patrol settings: extra NotificationChannels that get its findings, and
    /// thresholds that override the Patrol's, field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patrol: Option<TenantPatrol>,
}

/// What expiry of a tenant does.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ExpiryPolicy {
    /// Report only.
    #[default]
    Notify,
    /// Stop every workload of the tenant (nothing deleted) until it is renewed.
    Suspend,
}

/// Per-tenant patrol settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantPatrol {
    /// NotificationChannels that receive this tenant's findings (a report of their own), besides
    /// the Patrol's channels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(min = 1, max = 253)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub channels: Vec<String>,

    /// Thresholds for this tenant; each field set here wins over the Patrol's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<super::PatrolThresholds>,
}

/// Which Ingress hosts belong to the tenant.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantIngress {
    /// DNS domains, e.g. `acme.example.com`: hosts `acme.example.com` and `*.acme.example.com`'s
    /// names (`shop.acme.example.com`) are the tenant's. No wildcards, at least two labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(
            length(min = 3, max = 253),
            regex(pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        )
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub domains: Vec<String>,
}

/// Where the tenant's images come from and how they are pulled.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantImages {
    /// Image prefixes the tenant's pods may pull from, e.g. `registry.example.com/acme/`: a
    /// registry host (with a dot or a port, or `localhost`), optionally a path, ending in `/`.
    /// Matched against images as written, so write images in full (`docker.io/library/nginx:1.27`).
    /// Replaces the operator's `images.allowedRegistries` for this tenant; the platform's
    /// `images.publicPrefixes` stay allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(
            length(min = 3, max = 253),
            regex(
                pattern = r"^(localhost(:[0-9]+)?|[a-z0-9-]+(\.[a-z0-9-]+)+(:[0-9]+)?|[a-z0-9-]+:[0-9]+)(/[a-z0-9._-]+)*/$"
            )
        )
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub registries: Vec<String>,

    /// Secrets of type `kubernetes.io/dockerconfigjson` in the operator's namespace that a cloud
    /// admin keeps: copied into every tenant namespace, added to its `default` ServiceAccount and
    /// to every SecureWorkload's pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 8),
        inner(
            length(min = 1, max = 253),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
        )
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub pull_secrets: Vec<String>,

    /// How images must be pinned: `Tag` (a tag other than `latest`, or a digest), `Digest`
    /// (`@sha256:` only, for production tenants) or `None`. Defaults to the operator's
    /// `images.pinning`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinning: Option<ImagePinning>,
}

/// How images must be pinned.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ImagePinning {
    /// No rule: bare names and `:latest` are allowed.
    None,
    /// A tag other than `latest`, or a digest.
    #[default]
    Tag,
    /// A digest (`@sha256:`): the image cannot change under the same reference.
    Digest,
}

impl ImagePinning {
    /// The value of the `scs.dev/image-pinning` namespace annotation.
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePinning::None => "None",
            ImagePinning::Tag => "Tag",
            ImagePinning::Digest => "Digest",
        }
    }
}

/// Tenant quota. Every namespace of the tenant gets these limits in its ResourceQuota. Kata pod
/// overhead (the RuntimeClass `overhead.podFixed`) counts against cpu and memory.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantQuota {
    /// CPU, as both the `requests.cpu` and `limits.cpu` quota (e.g. `16` or `500m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = super::QUANTITY_MAX_LENGTH))]
    #[x_kube(validation = Rule::new(super::QUANTITY_RULE).message(super::QUANTITY_MESSAGE))]
    pub cpu: Option<Quantity>,

    /// Memory, as both the `requests.memory` and `limits.memory` quota (e.g. `64Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = super::QUANTITY_MAX_LENGTH))]
    #[x_kube(validation = Rule::new(super::QUANTITY_RULE).message(super::QUANTITY_MESSAGE))]
    pub memory: Option<Quantity>,

    /// Maximum number of pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub pods: Option<i32>,

    /// Persistent storage, in total and per storage tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageQuota>,

    /// Accelerators by vendor (`requests.<extended resource>` quota).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuQuota>,

    /// Maximum number of Services of type LoadBalancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub load_balancers: Option<i32>,
}

/// Storage quota.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageQuota {
    /// Total requested storage over all PersistentVolumeClaims (`requests.storage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = super::QUANTITY_MAX_LENGTH))]
    #[x_kube(validation = Rule::new(super::QUANTITY_RULE).message(super::QUANTITY_MESSAGE))]
    pub total: Option<Quantity>,

    /// Requested storage per storage tier, e.g. `capacity: 1Ti`, `performance: 200Gi`. A tier maps
    /// to a StorageClass through the operator configuration.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "super::quantity_map_schema", extend("maxProperties" = 16))]
    #[x_kube(validation = Rule::new("self.all(tier, tier.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(tier) <= 63)").message("tier names must be DNS-1123 labels, e.g. capacity or performance"))]
    pub classes: BTreeMap<String, Quantity>,
}

/// Accelerator quota by vendor.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GpuQuota {
    /// NVIDIA GPUs (`requests.nvidia.com/gpu` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub nvidia: Option<i32>,

    /// Baidu Kunlun XPUs (`requests.kunlunxin.com/xpu` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub kunlun: Option<i32>,
}

/// Default container resources, written as a LimitRange in each tenant namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new(
    "!has(self.requests) || !has(self.limits) || !has(self.requests.cpu) || !has(self.limits.cpu) || quantity(string(self.requests.cpu)).compareTo(quantity(string(self.limits.cpu))) <= 0"
).message("the default cpu request must not exceed the default cpu limit").field_path(".requests.cpu"))]
#[x_kube(validation = Rule::new(
    "!has(self.requests) || !has(self.limits) || !has(self.requests.memory) || !has(self.limits.memory) || quantity(string(self.requests.memory)).compareTo(quantity(string(self.limits.memory))) <= 0"
).message("the default memory request must not exceed the default memory limit").field_path(".requests.memory"))]
#[serde(rename_all = "camelCase")]
pub struct LimitDefaults {
    /// Requests given to containers that declare none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ComputeResources>,

    /// Limits given to containers that declare none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ComputeResources>,
}

/// A cpu and memory pair.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ComputeResources {
    /// CPU, e.g. `250m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = super::QUANTITY_MAX_LENGTH))]
    #[x_kube(validation = Rule::new(super::QUANTITY_RULE).message(super::QUANTITY_MESSAGE))]
    pub cpu: Option<Quantity>,

    /// Memory, e.g. `512Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = super::QUANTITY_MAX_LENGTH))]
    #[x_kube(validation = Rule::new(super::QUANTITY_RULE).message(super::QUANTITY_MESSAGE))]
    pub memory: Option<Quantity>,
}

/// A user, group or service account with a role in the tenant.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.kind == 'ServiceAccount' ? has(self.__namespace__) : !has(self.__namespace__)")
    .message("namespace is required for a ServiceAccount member and not allowed for a User or Group").field_path(".namespace"))]
#[x_kube(validation = Rule::new("self.kind == 'ServiceAccount' || !(self.name in ['system:authenticated', 'system:unauthenticated', 'system:anonymous', 'system:serviceaccounts', 'system:nodes'])")
    .message("a built-in system user or group stands for everyone (or every node or service account): it cannot be a tenant member").field_path(".name"))]
#[serde(rename_all = "camelCase")]
pub struct TenantMember {
    /// What the name refers to.
    pub kind: MemberKind,

    /// User name, group name or service account name, as the cluster's authenticator reports it.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Namespace of a ServiceAccount member (e.g. the Argo CD namespace for a GitOps owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: Option<String>,

    /// The role: `projectAdmin` (workloads plus read access to storage classes and volumes),
    /// `member` (workloads) or `viewer` (read-only, no Secrets).
    pub role: TenantRole,
}

/// Kind of an RBAC subject.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MemberKind {
    User,
    Group,
    ServiceAccount,
}

/// Role of a member inside the tenant's namespaces.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub enum TenantRole {
    ProjectAdmin,
    Member,
    Viewer,
}

/// Network isolation and Pod Security of the tenant's namespaces.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Isolation {
    /// Default-deny ingress NetworkPolicies that admit only the tenant's own namespaces (and allow
    /// DNS egress). On by default. They do not cover Multus secondary interfaces.
    #[serde(default = "default_true")]
    pub network: bool,

    /// Pod Security Admission level enforced in the tenant's namespaces. Defaults to the operator's
    /// configured level (`restricted` unless changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security: Option<PodSecurityLevel>,
}

impl Default for Isolation {
    fn default() -> Self {
        Self { network: true, pod_security: None }
    }
}

fn default_true() -> bool {
    true
}

/// Pod Security Standards level. `privileged` is deliberately not offered.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum PodSecurityLevel {
    Restricted,
    Baseline,
}

impl PodSecurityLevel {
    /// The value of the `pod-security.kubernetes.io/*` namespace labels.
    pub fn as_str(self) -> &'static str {
        match self {
            PodSecurityLevel::Restricted => "restricted",
            PodSecurityLevel::Baseline => "baseline",
        }
    }
}

/// Observed state of a Tenant.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Each namespace of the tenant and its state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<TenantNamespaceStatus>,

    /// Tenant-wide quota: hard limits and usage summed over the tenant's namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<TenantQuotaStatus>,

    /// Pull Secrets copied into the tenant's namespaces (`spec.images.pullSecrets`): what the
    /// operator wrote, so it rewrites only what changed and deletes only its own copies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_secrets: Vec<PullSecretCopy>,

    /// `Ready` plus one condition per concern: `NamespacesReady`, `QuotaReady`, `RbacReady`,
    /// `NetworksReady`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Where the tenant stands with `spec.expiresAt` (absent without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<TenantLifecycle>,
}

/// A tenant's expiry state.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantLifecycle {
    /// `Active`, `Expired` (policy Notify) or `Suspended` (policy Suspend: workloads stopped).
    pub state: LifecycleState,
    /// `spec.expiresAt` this state was decided from.
    pub expires_at: Time,
    /// Whole days until expiry, rounded down; negative once expired (days since).
    pub days_left: i64,
}

/// Expiry state of a tenant.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifecycleState {
    Active,
    Expired,
    Suspended,
}

/// A pull Secret copied into a tenant namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct PullSecretCopy {
    /// Namespace of the copy.
    pub namespace: String,
    /// Name of the copy (the source Secret's name).
    pub name: String,
    /// UID of the copy: deletion is conditional on it, so a Secret someone else made under the
    /// same name later is never deleted.
    pub uid: String,
    /// Digest of what was written (type and data), to write again only when the source changes.
    pub fingerprint: String,
}

/// State of one tenant namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantNamespaceStatus {
    /// Namespace name.
    pub name: String,
    /// `Ready`, `Pending`, `Conflict` (exists without our ownership or belongs to another tenant)
    /// or `Terminating`.
    pub state: String,
    /// Why the namespace is in this state, when it is not Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Quota summed over a tenant's namespaces, keyed like ResourceQuota entries.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantQuotaStatus {
    /// Hard limits summed over namespaces.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hard: BTreeMap<String, Quantity>,
    /// Current usage summed over namespaces.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub used: BTreeMap<String, Quantity>,
}

impl Tenant {
    /// Whether the tenant's namespaces are fenced by NetworkPolicies (`isolation.network`, on by
    /// default).
    pub fn network_isolated(&self) -> bool {
        self.spec.isolation.as_ref().is_none_or(|i| i.network)
    }

    /// The tenant's namespaces, applying the default (one namespace named like the tenant).
    pub fn namespace_names(&self) -> Vec<String> {
        if self.spec.namespaces.is_empty() {
            self.metadata.name.iter().cloned().collect()
        } else {
            self.spec.namespaces.clone()
        }
    }
}
