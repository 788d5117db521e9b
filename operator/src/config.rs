//! Operator configuration: a YAML file whose every field has a default.
//!
//! The same file is read by `scs-operator render --config` and, mounted from a ConfigMap, by the
//! controllers, so an offline render shows exactly what the cluster will get.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::{Deserialize, Serialize};

use crate::api::{GpuVendor, ImagePinning, PodSecurityLevel};

/// Operator configuration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct OperatorConfig {
    /// The Kata RuntimeClass the operator creates and tenants use by default.
    pub runtime_class: RuntimeClassConfig,
    /// Storage tier name → StorageClass. Tenants' quota and workloads' volumes name tiers.
    pub storage_tiers: BTreeMap<String, StorageTier>,
    /// Accelerator vendors: extended resource and model node label.
    pub gpu: GpuConfig,
    /// Removed: the cloud-admin ClusterRoleBinding is a static manifest
    /// (`manifests/base/cloud-admin-binding.yaml`), so the operator needs no `bind` on
    /// `scs:cloud-admin`. Still parsed, to say so instead of "unknown field".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_admin_group: Option<String>,
    /// Quota of a tenant that leaves a field of `spec.quota` unset: never unlimited.
    pub default_quota: DefaultQuota,
    /// Highest pod priority a tenant pod may have (PriorityClass value); system classes are
    /// refused whatever this says.
    pub max_pod_priority: i32,
    /// Pod Security level of tenant namespaces that do not choose one.
    pub default_pod_security: PodSecurityLevel,
    /// What tenant NetworkPolicies consider inside and outside the cluster.
    pub network_isolation: NetworkIsolationConfig,
    /// Where tenant images may come from and how they are pulled.
    pub images: ImagesConfig,
    /// External permission systems (PermissionGroup providers), by name.
    pub authorization_providers: BTreeMap<String, AuthorizationProvider>,
    /// The init container that waits for a pod's grants, and the server it calls.
    pub pre_authorization: PreAuthorizationConfig,
    /// How hard the controllers may press the API server.
    pub api_pressure: ApiPressure,
}

/// Bounds on the controllers' load on the API server, so that a restart with thousands of objects
/// to reconcile does not storm the control plane every tenant shares (the API server's own
/// fairness is the optional `manifests/components/apf`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ApiPressure {
    /// Reconciles in flight per controller.
    pub reconcile_concurrency: u16,
    /// Requests per second the operator's client sends on average; 0 turns the limit off.
    pub qps: u32,
    /// Requests it may send at once above that rate (the bucket size).
    pub burst: u32,
}

impl Default for ApiPressure {
    fn default() -> Self {
        // Well above controller-runtime's 20/30: until children are read from watch caches
        // (issue 17) a workload's pass costs about six reads, and a restart at 10 000 workloads
        // must finish in minutes. The API server's priority levels bound the operator as well.
        Self { reconcile_concurrency: 16, qps: 200, burst: 400 }
    }
}

/// One external permission system, spoken to with the provider protocol (README, "Pod
/// pre-authorization").
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationProvider {
    /// Base URL, `https://` only: grants are security decisions and carry a bearer credential.
    pub endpoint: String,
    /// Secret in the operator's namespace whose `token` key is sent as `Authorization: Bearer`.
    pub credentials_secret: String,
    /// Seconds one HTTP request may take before it counts as a transient failure. Default 10.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_seconds: u32,
    /// Seconds between polls of a pending grant. Default 5.
    #[serde(default = "default_poll_interval")]
    pub poll_interval_seconds: u32,
    /// Seconds a grant may stay pending before the attempt counts as a transient failure.
    /// Default 600.
    #[serde(default = "default_grant_timeout")]
    pub grant_timeout_seconds: u32,
    /// Tenants whose PermissionGroups may name this provider; empty: every tenant. Set by the
    /// platform admins here (not on the Tenant or the group), so a tenant cannot widen it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
}

fn default_request_timeout() -> u32 {
    10
}
fn default_poll_interval() -> u32 {
    5
}
fn default_grant_timeout() -> u32 {
    600
}

/// The `scs-operator authorize` init container and the authorization server it calls.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PreAuthorizationConfig {
    /// Image of the init container: the operator's own. It must start with one of
    /// `images.publicPrefixes` so every tenant may pull it (no pull Secret, any pull policy).
    pub image: String,
    /// URL of the authorization server as pods reach it (its Service). `https://` (the default):
    /// the server serves a certificate for the URL's host and pods verify it with the CA in the
    /// ConfigMap `scs-authz-ca` of their namespace; `http://` only where TLS is not wanted.
    pub server_url: String,
    /// Namespace of the authorization server: tenant NetworkPolicies let pods reach it there.
    pub server_namespace: String,
    /// Audience of the projected ServiceAccount token the init container presents; the server
    /// accepts no other, so the token is useless to any other service.
    pub token_audience: String,
    /// Seconds the projected token lives (the kubelet's minimum is 600).
    pub token_expiration_seconds: i64,
}

impl PreAuthorizationConfig {
    /// The server's port, from its URL (the scheme's default when the URL names none).
    pub fn server_port(&self) -> i32 {
        let uri = self.server_url.parse::<http::Uri>().ok();
        let https = self.server_url.starts_with("https://");
        uri.and_then(|u| u.port_u16()).map_or(if https { 443 } else { 80 }, i32::from)
    }

    /// The names the server's certificate must carry (the URL's host); none for `http://`.
    pub fn tls_names(&self) -> Vec<String> {
        let uri = self.server_url.parse::<http::Uri>().ok().filter(|_| self.server_url.starts_with("https://"));
        uri.and_then(|u| u.host().map(String::from)).into_iter().collect()
    }
}

impl Default for PreAuthorizationConfig {
    fn default() -> Self {
        Self {
            image: "scs-operator:0.1.0".into(),
            server_url: "https://scs-authz.scs-system.svc:8443".into(),
            server_namespace: "scs-system".into(),
            token_audience: "scs-authz".into(),
            token_expiration_seconds: 600,
        }
    }
}

/// The platform's image rules; a Tenant's `spec.images` overrides registries and pinning.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ImagesConfig {
    /// Image prefixes tenants without `spec.images.registries` may pull from
    /// (`registry.example.com/`). Empty: any registry (pinning and pull rules still apply).
    pub allowed_registries: Vec<String>,
    /// Prefixes of public images (the platform's base images): allowed for every tenant and
    /// pulled with any policy. Every other image must be pulled `Always`, so a pod without the
    /// credentials never starts from a private image another tenant's pod left on the node.
    pub public_prefixes: Vec<String>,
    /// Default pinning rule: `Tag` (a tag other than latest, or a digest), `Digest` or `None`.
    pub pinning: ImagePinning,
}

/// Inputs of the tenant NetworkPolicies.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NetworkIsolationConfig {
    /// Pod and Service CIDRs of the cluster. Traffic to and from outside the cluster is allowed
    /// (when `allowExternal`) by an `ipBlock` that excepts these, so other tenants' pods stay out.
    /// The defaults are kind's; set your cluster's.
    pub cluster_cidrs: Vec<String>,
    /// Allow traffic between tenant pods and addresses outside the cluster (LoadBalancer
    /// clients, external services). Default true.
    pub allow_external: bool,
    /// Namespace of the cluster DNS.
    pub dns_namespace: String,
    /// Labels of the cluster DNS pods.
    pub dns_pod_labels: BTreeMap<String, String>,
    /// Node (host) CIDRs, never reachable as "outside the cluster" (kubelet, API server on the
    /// node). Link-local 169.254.0.0/16 (cloud metadata) is always excepted as well.
    pub node_cidrs: Vec<String>,
    /// Namespaces whose pods may reach every tenant pod: the ingress controller's, monitoring's.
    /// Without them Ingress and scraping stop at the tenant fence.
    pub allow_from_namespaces: Vec<String>,
}

/// Quota of a tenant that leaves a field of `spec.quota` unset.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DefaultQuota {
    /// CPU (requests and limits).
    pub cpu: Quantity,
    /// Memory (requests and limits).
    pub memory: Quantity,
    /// Pods.
    pub pods: i32,
    /// Requested storage over all claims.
    pub storage: Quantity,
}

impl Default for DefaultQuota {
    fn default() -> Self {
        Self { cpu: Quantity("4".into()), memory: Quantity("8Gi".into()), pods: 20, storage: Quantity("50Gi".into()) }
    }
}

impl Default for NetworkIsolationConfig {
    fn default() -> Self {
        Self {
            cluster_cidrs: vec!["10.244.0.0/16".into(), "10.96.0.0/12".into()],
            allow_external: true,
            dns_namespace: "kube-system".into(),
            dns_pod_labels: BTreeMap::from([("k8s-app".to_string(), "kube-dns".to_string())]),
            node_cidrs: Vec::new(),
            allow_from_namespaces: Vec::new(),
        }
    }
}

/// The Kata RuntimeClass.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RuntimeClassConfig {
    /// RuntimeClass name (kata-deploy names them `kata-<shim>`).
    pub name: String,
    /// containerd/CRI-O handler the class maps to.
    pub handler: String,
    /// `overhead.podFixed`: resources of the sandbox VM itself, charged to every pod and its quota.
    pub overhead: BTreeMap<String, Quantity>,
    /// `scheduling.nodeSelector`: nodes that can run Kata sandboxes.
    pub node_selector: BTreeMap<String, String>,
}

/// A storage tier.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageTier {
    /// StorageClass that backs the tier.
    pub storage_class_name: String,
    /// Whether volumes of this class can be mounted by many pods at once (ReadWriteMany).
    #[serde(default)]
    pub read_write_many: bool,
}

/// Accelerator vendors.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GpuConfig {
    /// NVIDIA GPUs.
    pub nvidia: GpuVendorConfig,
    /// Baidu Kunlun XPUs.
    pub kunlun: GpuVendorConfig,
    /// Models allowed for `gpu.model` besides the certified families (node label values).
    pub allowed_models: Vec<String>,
}

/// How one accelerator vendor appears in Kubernetes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GpuVendorConfig {
    /// Extended resource name the device plugin advertises.
    pub resource_name: String,
    /// Node label carrying the device model, used for `gpu.model` node affinity.
    pub model_node_label: String,
    /// Node label that must be `"true"` on nodes this vendor's pods may use: the device plugin's
    /// driver and model certification (`scs.dev/gpu-certified`). Empty: no such requirement, for
    /// clusters whose GPU nodes are not labelled by our device plugin.
    #[serde(default = "default_certified_node_label")]
    pub certified_node_label: String,
    /// The sandbox class of pods using this vendor's devices (passthrough needs a class built for
    /// it, e.g. kata-deploy's `kata-qemu-nvidia-gpu`); the operator creates it like the plain one.
    /// Absent: such pods use the tenant's class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class: Option<RuntimeClassConfig>,
}

/// The label the device plugin writes with its certification verdict
/// (`device_plugin::certify::CERTIFIED_LABEL`).
fn default_certified_node_label() -> String {
    "scs.dev/gpu-certified".into()
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            runtime_class: RuntimeClassConfig::default(),
            storage_tiers: BTreeMap::from([
                ("capacity".to_string(), StorageTier { storage_class_name: "standard".into(), read_write_many: false }),
                (
                    "performance".to_string(),
                    StorageTier { storage_class_name: "performance".into(), read_write_many: false },
                ),
            ]),
            gpu: GpuConfig::default(),
            cloud_admin_group: None,
            default_quota: DefaultQuota::default(),
            max_pod_priority: 1_000_000,
            default_pod_security: PodSecurityLevel::Restricted,
            network_isolation: NetworkIsolationConfig::default(),
            images: ImagesConfig::default(),
            authorization_providers: BTreeMap::new(),
            pre_authorization: PreAuthorizationConfig::default(),
            api_pressure: ApiPressure::default(),
        }
    }
}

impl Default for RuntimeClassConfig {
    fn default() -> Self {
        Self {
            name: "kata-qemu".into(),
            handler: "kata-qemu".into(),
            overhead: BTreeMap::from([
                ("cpu".to_string(), Quantity("250m".into())),
                ("memory".to_string(), Quantity("160Mi".into())),
            ]),
            node_selector: BTreeMap::from([("katacontainers.io/kata-runtime".to_string(), "true".to_string())]),
        }
    }
}

impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            nvidia: GpuVendorConfig {
                resource_name: "nvidia.com/gpu".into(),
                model_node_label: "nvidia.com/gpu.product".into(),
                certified_node_label: default_certified_node_label(),
                runtime_class: Some(RuntimeClassConfig {
                    name: "kata-qemu-nvidia-gpu".into(),
                    handler: "kata-qemu-nvidia-gpu".into(),
                    ..RuntimeClassConfig::default()
                }),
            },
            kunlun: GpuVendorConfig {
                resource_name: "kunlunxin.com/xpu".into(),
                model_node_label: "kunlunxin.com/xpu.product".into(),
                certified_node_label: default_certified_node_label(),
                runtime_class: None,
            },
            allowed_models: Vec::new(),
        }
    }
}

impl GpuConfig {
    /// Configuration of one vendor.
    pub fn vendor(&self, vendor: GpuVendor) -> &GpuVendorConfig {
        match vendor {
            GpuVendor::Nvidia => &self.nvidia,
            GpuVendor::Kunlun => &self.kunlun,
        }
    }

    /// Every vendor with its configuration.
    pub fn vendors(&self) -> [(GpuVendor, &GpuVendorConfig); 2] {
        [(GpuVendor::Nvidia, &self.nvidia), (GpuVendor::Kunlun, &self.kunlun)]
    }
}

impl RuntimeClassConfig {
    /// Checks the class under `field` (e.g. `runtimeClass`).
    fn check(&self, field: &str) -> Result<(), (String, String)> {
        if !regex_lite_subdomain(&self.name) {
            return Err((format!("{field}.name"), "must be a DNS-1123 subdomain, e.g. kata-qemu".into()));
        }
        if self.handler.is_empty() {
            return Err((format!("{field}.handler"), "must not be empty".into()));
        }
        for (key, value) in &self.overhead {
            if crate::quantity::parse(&value.0).is_err() {
                return Err((format!("{field}.overhead.{key}"), format!("{:?} is not a Kubernetes quantity", value.0)));
            }
        }
        Ok(())
    }
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{file}: {path}: {message}")]
    Invalid { file: String, path: String, message: String },
}

impl OperatorConfig {
    /// Reads and checks a configuration file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { file: file.clone(), source })?;
        Self::from_yaml(&text).map_err(|(path, message)| ConfigError::Invalid { file, path, message })
    }

    /// Parses and checks configuration YAML; errors are `(field path, message)`.
    pub fn from_yaml(text: &str) -> Result<Self, (String, String)> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let deserializer = serde_yaml::Deserializer::from_str(text);
        let config: Self = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            (if path == "." { "(root)".into() } else { path }, e.into_inner().to_string())
        })?;
        config.check()?;
        Ok(config)
    }

    /// Checks values serde cannot: names must be usable as Kubernetes names and label keys.
    fn check(&self) -> Result<(), (String, String)> {
        let dns = regex_lite_subdomain;
        self.runtime_class.check("runtimeClass")?;
        for (vendor, spec) in self.gpu.vendors() {
            let Some(class) = &spec.runtime_class else { continue };
            let field = format!("gpu.{}.runtimeClass", vendor.as_str());
            class.check(&field)?;
            if class.name == self.runtime_class.name {
                return Err((
                    format!("{field}.name"),
                    "must differ from runtimeClass.name: leave gpu.<vendor>.runtimeClass out to run GPU pods in the tenant's class".into(),
                ));
            }
        }
        if self.api_pressure.reconcile_concurrency == 0 {
            return Err(("apiPressure.reconcileConcurrency".into(), "must be at least 1".into()));
        }
        if self.api_pressure.qps > 0 && self.api_pressure.burst == 0 {
            return Err((
                "apiPressure.burst".into(),
                "must be at least 1 while qps is set (qps 0 turns the limit off)".into(),
            ));
        }
        if self.storage_tiers.is_empty() {
            return Err(("storageTiers".into(), "at least one storage tier is needed".into()));
        }
        for (tier, spec) in &self.storage_tiers {
            if !dns(&spec.storage_class_name) {
                return Err((format!("storageTiers.{tier}.storageClassName"), "must be a DNS-1123 subdomain".into()));
            }
        }
        for (vendor, spec) in [("nvidia", &self.gpu.nvidia), ("kunlun", &self.gpu.kunlun)] {
            if !spec.resource_name.contains('/') {
                return Err((
                    format!("gpu.{vendor}.resourceName"),
                    "an extended resource name needs a domain, e.g. nvidia.com/gpu".into(),
                ));
            }
            if !spec.certified_node_label.is_empty() && !is_label_key(&spec.certified_node_label) {
                return Err((
                    format!("gpu.{vendor}.certifiedNodeLabel"),
                    "must be a label key (e.g. scs.dev/gpu-certified), or empty for no certification requirement"
                        .into(),
                ));
            }
        }
        let isolation = &self.network_isolation;
        for (field, cidrs) in [("clusterCidrs", &isolation.cluster_cidrs), ("nodeCidrs", &isolation.node_cidrs)] {
            for (index, cidr) in cidrs.iter().enumerate() {
                if cidr.parse::<ipnet::IpNet>().is_err() {
                    return Err((format!("networkIsolation.{field}[{index}]"), format!("{cidr:?} is not a CIDR")));
                }
            }
        }
        if isolation.allow_external && isolation.cluster_cidrs.is_empty() {
            // Without them the "outside the cluster" rule would match every other tenant's pods.
            return Err((
                "networkIsolation.clusterCidrs".into(),
                "must list the cluster's pod and Service CIDRs while allowExternal is true".into(),
            ));
        }
        for (index, namespace) in isolation.allow_from_namespaces.iter().enumerate() {
            if !dns(namespace) || namespace.contains('.') {
                return Err((
                    format!("networkIsolation.allowFromNamespaces[{index}]"),
                    "must be a namespace name".into(),
                ));
            }
        }
        if self.cloud_admin_group.is_some() {
            return Err((
                "cloudAdminGroup".into(),
                "no longer an operator setting: the cloud-admin ClusterRoleBinding is manifests/base/cloud-admin-binding.yaml (patch its group in your overlay)".into(),
            ));
        }
        let defaults = &self.default_quota;
        for (field, value) in [("cpu", &defaults.cpu), ("memory", &defaults.memory), ("storage", &defaults.storage)] {
            if crate::quantity::parse(&value.0).is_err() {
                return Err((format!("defaultQuota.{field}"), format!("{:?} is not a Kubernetes quantity", value.0)));
            }
        }
        if defaults.pods < 0 {
            return Err(("defaultQuota.pods".into(), "must not be negative".into()));
        }
        let images = &self.images;
        for (field, prefixes) in
            [("allowedRegistries", &images.allowed_registries), ("publicPrefixes", &images.public_prefixes)]
        {
            for (index, prefix) in prefixes.iter().enumerate() {
                if !crate::images::is_valid_prefix(prefix) {
                    return Err((format!("images.{field}[{index}]"), crate::images::PREFIX_MESSAGE.into()));
                }
            }
        }
        self.check_authorization()?;
        if self.max_pod_priority > 1_000_000_000 {
            return Err((
                "maxPodPriority".into(),
                "must not exceed 1000000000, the highest user-definable priority".into(),
            ));
        }
        Ok(())
    }
}

impl OperatorConfig {
    /// Providers and the init container: names usable in a PermissionGroup, https endpoints,
    /// sane timeouts, an image every tenant may pull.
    fn check_authorization(&self) -> Result<(), (String, String)> {
        for (name, provider) in &self.authorization_providers {
            let field = |f: &str| format!("authorizationProviders.{name}.{f}");
            let label = name.len() <= 63 && regex_lite_subdomain(name) && !name.contains('.');
            if !label {
                return Err((
                    format!("authorizationProviders.{name}"),
                    "a provider name must be a DNS-1123 label (PermissionGroups name it)".into(),
                ));
            }
            let Some(rest) = provider.endpoint.strip_prefix("https://") else {
                return Err((field("endpoint"), "must be an https:// URL: grants carry a credential".into()));
            };
            if rest.is_empty() || rest.starts_with('/') || provider.endpoint.parse::<http::Uri>().is_err() {
                return Err((field("endpoint"), format!("{:?} is not a URL with a host", provider.endpoint)));
            }
            if !regex_lite_subdomain(&provider.credentials_secret) {
                return Err((field("credentialsSecret"), "must be a Secret name (DNS-1123 subdomain)".into()));
            }
            for (f, value, max) in [
                ("requestTimeoutSeconds", provider.request_timeout_seconds, 300),
                ("pollIntervalSeconds", provider.poll_interval_seconds, 300),
                ("grantTimeoutSeconds", provider.grant_timeout_seconds, 86_400),
            ] {
                if value == 0 || value > max {
                    return Err((field(f), format!("must be between 1 and {max}")));
                }
            }
            for (i, tenant) in provider.tenants.iter().enumerate() {
                if tenant.len() > 63 || !regex_lite_subdomain(tenant) || tenant.contains('.') {
                    return Err((format!("{}[{i}]", field("tenants")), format!("{tenant:?} is not a Tenant name")));
                }
            }
        }
        let pre = &self.pre_authorization;
        if pre.token_audience.is_empty() {
            return Err(("preAuthorization.tokenAudience".into(), "must not be empty".into()));
        }
        if !(600..=86_400).contains(&pre.token_expiration_seconds) {
            return Err((
                "preAuthorization.tokenExpirationSeconds".into(),
                "must be between 600 (the kubelet's minimum) and 86400".into(),
            ));
        }
        if !(pre.server_url.starts_with("http://") || pre.server_url.starts_with("https://"))
            || pre.server_url.parse::<http::Uri>().is_err()
        {
            return Err(("preAuthorization.serverUrl".into(), format!("{:?} is not an http(s) URL", pre.server_url)));
        }
        // Only checked when a provider exists: without one no pod gets the init container.
        if !self.authorization_providers.is_empty()
            && !self.images.public_prefixes.iter().any(|p| pre.image.starts_with(p.as_str()))
        {
            return Err((
                "preAuthorization.image".into(),
                "must start with one of images.publicPrefixes: every tenant's pods run it, without pull Secrets".into(),
            ));
        }
        Ok(())
    }
}

/// DNS-1123 subdomain check, without pulling a regex into configuration loading.
fn regex_lite_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A label key: an optional DNS subdomain prefix and `/`, then a name of at most 63 characters
/// (alphanumerics, `-`, `_`, `.`, alphanumeric at both ends).
fn is_label_key(key: &str) -> bool {
    let (prefix, name) = key.rsplit_once('/').map_or((None, key), |(p, n)| (Some(p), n));
    let alnum = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    prefix.is_none_or(regex_lite_subdomain)
        && name.len() <= 63
        && alnum(name.as_bytes().first())
        && alnum(name.as_bytes().last())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_means_defaults() {
        assert_eq!(OperatorConfig::from_yaml("").unwrap(), OperatorConfig::default());
    }

    #[test]
    fn partial_file_keeps_other_defaults() {
        let config = OperatorConfig::from_yaml("runtimeClass:\n  name: kata-clh\n  handler: kata-clh\n").unwrap();
        assert_eq!(config.runtime_class.name, "kata-clh");
        assert_eq!(config.runtime_class.node_selector["katacontainers.io/kata-runtime"], "true");
        assert_eq!(config.gpu.nvidia.resource_name, "nvidia.com/gpu");
        assert_eq!(config.storage_tiers["capacity"].storage_class_name, "standard");
    }

    #[test]
    fn gpu_certification_label_defaults_on_and_can_be_turned_off() {
        let config = OperatorConfig::default();
        assert_eq!(config.gpu.nvidia.certified_node_label, crate::device_plugin::certify::CERTIFIED_LABEL);
        assert_eq!(config.gpu.kunlun.certified_node_label, "scs.dev/gpu-certified");
        let vendor = |extra: &str| {
            format!(
                "gpu:\n  nvidia:\n    resourceName: nvidia.com/gpu\n    modelNodeLabel: nvidia.com/gpu.product\n{extra}"
            )
        };
        // A vendor block that leaves it out keeps the default.
        let kept = OperatorConfig::from_yaml(&vendor("")).unwrap();
        assert_eq!(kept.gpu.nvidia.certified_node_label, "scs.dev/gpu-certified");
        let off = OperatorConfig::from_yaml(&vendor("    certifiedNodeLabel: \"\"\n")).unwrap();
        assert_eq!(off.gpu.nvidia.certified_node_label, "");
        let other = OperatorConfig::from_yaml(&vendor("    certifiedNodeLabel: example.com/gpu-ok\n")).unwrap();
        assert_eq!(other.gpu.nvidia.certified_node_label, "example.com/gpu-ok");
        for bad in ["Bad Label", "example.com/", "-x", "UPPER_CASE.example/x", "a/b/c"] {
            let (path, message) =
                OperatorConfig::from_yaml(&vendor(&format!("    certifiedNodeLabel: \"{bad}\"\n"))).unwrap_err();
            assert_eq!(path, "gpu.nvidia.certifiedNodeLabel", "{bad}");
            assert!(message.contains("must be a label key"), "{bad}: {message}");
        }
    }

    #[test]
    fn unknown_field_is_named() {
        let (path, message) = OperatorConfig::from_yaml("runtimeClass:\n  nmae: x\n").unwrap_err();
        assert_eq!(path, "runtimeClass.nmae");
        assert!(message.contains("unknown field `nmae`"), "{message}");
    }

    #[test]
    fn bad_values_are_named() {
        let (path, _) =
            OperatorConfig::from_yaml("storageTiers:\n  fast:\n    storageClassName: Fast_SSD\n").unwrap_err();
        assert_eq!(path, "storageTiers.fast.storageClassName");
        let (path, _) = OperatorConfig::from_yaml("runtimeClass:\n  overhead:\n    memory: lots\n").unwrap_err();
        assert_eq!(path, "runtimeClass.overhead.memory");
        let (path, _) = OperatorConfig::from_yaml("defaultPodSecurity: privileged\n").unwrap_err();
        assert_eq!(path, "defaultPodSecurity");
    }

    #[test]
    fn the_network_fence_cannot_be_configured_open() {
        let (path, message) = OperatorConfig::from_yaml("networkIsolation:\n  clusterCidrs: []\n").unwrap_err();
        assert_eq!(path, "networkIsolation.clusterCidrs");
        assert!(message.contains("allowExternal"), "{message}");
        let closed = OperatorConfig::from_yaml("networkIsolation:\n  clusterCidrs: []\n  allowExternal: false\n");
        assert!(closed.is_ok(), "{closed:?}");
        let (path, _) = OperatorConfig::from_yaml("networkIsolation:\n  nodeCidrs: [nodes]\n").unwrap_err();
        assert_eq!(path, "networkIsolation.nodeCidrs[0]");
    }

    #[test]
    fn image_prefixes_must_name_a_registry() {
        let config = OperatorConfig::from_yaml(
            "images:\n  allowedRegistries: [registry.example.com/acme/]\n  publicPrefixes: [docker.io/library/]\n  pinning: Digest\n",
        )
        .unwrap();
        assert_eq!(config.images.pinning, ImagePinning::Digest);
        assert_eq!(OperatorConfig::default().images.pinning, ImagePinning::Tag);
        for bad in ["busybox", "registry.example.com/acme", "library/", "Registry.example.com/"] {
            let (path, message) =
                OperatorConfig::from_yaml(&format!("images:\n  publicPrefixes: [ok.example/, {bad:?}]\n")).unwrap_err();
            assert_eq!(path, "images.publicPrefixes[1]", "{bad}");
            assert!(message.contains("end in /"), "{message}");
        }
    }

    #[test]
    fn authorization_providers_are_checked_field_by_field() {
        let ok = "images:\n  publicPrefixes: [registry.example.com/scs/]\npreAuthorization:\n  image: registry.example.com/scs/scs-operator:0.1.0\nauthorizationProviders:\n  cmdb:\n    endpoint: https://perm.example.com/api\n    credentialsSecret: cmdb-token\n";
        let config = OperatorConfig::from_yaml(ok).unwrap();
        let cmdb = &config.authorization_providers["cmdb"];
        assert_eq!(
            (cmdb.request_timeout_seconds, cmdb.poll_interval_seconds, cmdb.grant_timeout_seconds),
            (10, 5, 600)
        );
        for (bad, path, words) in [
            ("endpoint: http://perm.example.com", "authorizationProviders.cmdb.endpoint", "https"),
            ("endpoint: https:///x", "authorizationProviders.cmdb.endpoint", "host"),
            ("credentialsSecret: Bad_Name", "authorizationProviders.cmdb.credentialsSecret", "Secret name"),
            ("requestTimeoutSeconds: 0", "authorizationProviders.cmdb.requestTimeoutSeconds", "between 1"),
            ("grantTimeoutSeconds: 100000", "authorizationProviders.cmdb.grantTimeoutSeconds", "between 1"),
            ("tenants: [acme, Bad_Tenant]", "authorizationProviders.cmdb.tenants[1]", "not a Tenant name"),
        ] {
            let key = bad.split(':').next().unwrap();
            let text: String = ok
                .lines()
                .filter(|l| !l.trim_start().starts_with(&format!("{key}:")))
                .map(|l| format!("{l}\n"))
                .collect();
            let (got, message) = OperatorConfig::from_yaml(&format!("{text}    {bad}\n")).unwrap_err();
            assert_eq!(got, path, "{bad}");
            assert!(message.contains(words), "{bad}: {message}");
        }
        // Open to every tenant unless the platform lists some.
        assert!(cmdb.tenants.is_empty());
        let listed = OperatorConfig::from_yaml(&format!("{ok}    tenants: [acme, globex]\n")).unwrap();
        assert_eq!(listed.authorization_providers["cmdb"].tenants, ["acme", "globex"]);
        let (path, _) = OperatorConfig::from_yaml(&ok.replace("  cmdb:", "  CMDB:")).unwrap_err();
        assert_eq!(path, "authorizationProviders.CMDB");
        // The init container's image must be one every tenant may pull.
        let (path, message) =
            OperatorConfig::from_yaml(&ok.replace("  image: registry.example.com/scs/", "  image: other.example.com/"))
                .unwrap_err();
        assert_eq!(path, "preAuthorization.image");
        assert!(message.contains("publicPrefixes"), "{message}");
        let (path, _) = OperatorConfig::from_yaml("preAuthorization:\n  tokenExpirationSeconds: 60\n").unwrap_err();
        assert_eq!(path, "preAuthorization.tokenExpirationSeconds");
    }

    #[test]
    fn the_cloud_admin_group_is_no_longer_the_operators_to_bind() {
        let (path, message) = OperatorConfig::from_yaml("cloudAdminGroup: system:authenticated\n").unwrap_err();
        assert_eq!(path, "cloudAdminGroup");
        assert!(message.contains("cloud-admin-binding.yaml"), "{message}");
    }
}
