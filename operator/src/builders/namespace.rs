//! Tenant namespaces: ownership, Pod Security Admission, the runtime-class label and the
//! annotations the admission policies read (ingress domains, storage classes, priority cap).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::labels;
use crate::api::{GpuVendor, Tenant};
use crate::config::OperatorConfig;
use crate::images::ImagePolicy;

/// Pod Security Admission labels pin their policy version so a cluster upgrade cannot silently
/// change what is enforced; this is our minimum supported Kubernetes release.
pub const POD_SECURITY_VERSION: &str = "v1.33";

/// The tenant's RuntimeClass: its own choice or the configured Kata class.
pub fn runtime_class_of(tenant: &Tenant, config: &OperatorConfig) -> String {
    tenant.spec.runtime_class_name.clone().unwrap_or_else(|| config.runtime_class.name.clone())
}

/// The RuntimeClass of the tenant's pods using `vendor`'s devices: the vendor's own class when one
/// is configured, else the tenant's.
pub fn gpu_runtime_class_of(tenant: &Tenant, config: &OperatorConfig, vendor: GpuVendor) -> String {
    config
        .gpu
        .vendor(vendor)
        .runtime_class
        .as_ref()
        .map_or_else(|| runtime_class_of(tenant, config), |c| c.name.clone())
}

/// `<extended resource>=<class>` for each vendor the tenant has GPU quota for.
fn gpu_runtime_classes(tenant: &Tenant, config: &OperatorConfig) -> String {
    let gpu = tenant.spec.quota.as_ref().and_then(|q| q.gpu.clone()).unwrap_or_default();
    let granted = |vendor: GpuVendor| match vendor {
        GpuVendor::Nvidia => gpu.nvidia,
        GpuVendor::Kunlun => gpu.kunlun,
    };
    (config.gpu.vendors().into_iter())
        .filter(|(vendor, _)| granted(*vendor).unwrap_or(0) > 0)
        .map(|(vendor, spec)| format!("{}={}", spec.resource_name, gpu_runtime_class_of(tenant, config, vendor)))
        .collect::<Vec<_>>()
        .join(",")
}

/// One Namespace per tenant namespace.
pub fn namespaces(tenant: &Tenant, config: &OperatorConfig) -> Vec<Namespace> {
    let level =
        tenant.spec.isolation.as_ref().and_then(|i| i.pod_security).unwrap_or(config.default_pod_security).as_str();
    let mut labels = labels::tenant_owned(&tenant.name_any());
    labels.insert(labels::RUNTIME_CLASS.into(), runtime_class_of(tenant, config));
    for mode in ["enforce", "audit", "warn"] {
        labels.insert(format!("pod-security.kubernetes.io/{mode}"), level.into());
        labels.insert(format!("pod-security.kubernetes.io/{mode}-version"), POD_SECURITY_VERSION.into());
    }
    let annotations = fence_annotations(tenant, config);
    tenant
        .namespace_names()
        .into_iter()
        .map(|name| Namespace {
            metadata: ObjectMeta {
                name: Some(name),
                labels: Some(labels.clone()),
                annotations: Some(annotations.clone()),
                ..Default::default()
            },
            ..Default::default()
        })
        .collect()
}

/// What the admission policies allow in the tenant's namespaces, as comma-separated lists.
fn fence_annotations(tenant: &Tenant, config: &OperatorConfig) -> BTreeMap<String, String> {
    let domains = tenant.spec.ingress.as_ref().map(|i| i.domains.join(",")).unwrap_or_default();
    let classes: BTreeSet<&str> = config.storage_tiers.values().map(|t| t.storage_class_name.as_str()).collect();
    let images = ImagePolicy::of(tenant, config);
    BTreeMap::from([
        (labels::INGRESS_DOMAINS.to_string(), domains),
        (labels::STORAGE_CLASSES.to_string(), classes.into_iter().collect::<Vec<_>>().join(",")),
        (labels::MAX_PRIORITY.to_string(), config.max_pod_priority.to_string()),
        (labels::IMAGE_REGISTRIES.to_string(), images.registries.join(",")),
        (labels::IMAGE_PUBLIC_PREFIXES.to_string(), images.public_prefixes.join(",")),
        (labels::IMAGE_PINNING.to_string(), images.pinning.as_str().to_string()),
        (labels::GPU_RUNTIME_CLASSES.to_string(), gpu_runtime_classes(tenant, config)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Isolation, PodSecurityLevel, TenantSpec};

    fn tenant(spec: TenantSpec) -> Tenant {
        Tenant::new("acme", spec)
    }

    #[test]
    fn default_namespace_is_named_like_the_tenant() {
        let namespaces = namespaces(&tenant(TenantSpec::default()), &OperatorConfig::default());
        assert_eq!(namespaces.len(), 1);
        let labels = namespaces[0].metadata.labels.as_ref().unwrap();
        assert_eq!(namespaces[0].metadata.name.as_deref(), Some("acme"));
        assert_eq!(labels[labels::TENANT], "acme");
        assert_eq!(labels[labels::MANAGED_BY], "scs-operator");
        assert_eq!(labels[labels::RUNTIME_CLASS], "kata-qemu");
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(labels["pod-security.kubernetes.io/enforce-version"], "v1.33");
        assert_eq!(labels["pod-security.kubernetes.io/warn"], "restricted");
        assert_eq!(labels["pod-security.kubernetes.io/audit"], "restricted");
        let annotations = namespaces[0].metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations[labels::INGRESS_DOMAINS], "", "no domains: no Ingress host is allowed");
        assert_eq!(annotations[labels::STORAGE_CLASSES], "performance,standard");
        assert_eq!(annotations[labels::MAX_PRIORITY], "1000000");
        assert_eq!(annotations[labels::IMAGE_REGISTRIES], "", "no registries configured: any registry");
        assert_eq!(annotations[labels::IMAGE_PUBLIC_PREFIXES], "");
        assert_eq!(annotations[labels::IMAGE_PINNING], "Tag");
    }

    #[test]
    fn gpu_quota_opens_the_vendors_runtime_class() {
        let annotation = |spec: TenantSpec, config: &OperatorConfig| {
            namespaces(&tenant(spec), config).remove(0).metadata.annotations.unwrap()[labels::GPU_RUNTIME_CLASSES]
                .clone()
        };
        let config = OperatorConfig::default();
        assert_eq!(annotation(TenantSpec::default(), &config), "", "no GPU quota: no GPU pods");
        let gpu = |nvidia, kunlun| TenantSpec {
            quota: Some(crate::api::TenantQuota {
                gpu: Some(crate::api::GpuQuota { nvidia, kunlun }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(annotation(gpu(Some(2), Some(0)), &config), "nvidia.com/gpu=kata-qemu-nvidia-gpu");
        assert_eq!(
            annotation(gpu(Some(1), Some(1)), &config),
            "nvidia.com/gpu=kata-qemu-nvidia-gpu,kunlunxin.com/xpu=kata-qemu",
            "a vendor without a class of its own runs in the tenant's"
        );
    }

    #[test]
    fn image_rules_reach_the_admission_policy() {
        let mut config = OperatorConfig::default();
        config.images.public_prefixes = vec!["docker.io/library/".into(), "registry.example.com/base/".into()];
        let spec = TenantSpec {
            images: Some(crate::api::TenantImages {
                registries: vec!["registry.example.com/acme/".into(), "localhost:5000/".into()],
                pinning: Some(crate::api::ImagePinning::Digest),
                ..Default::default()
            }),
            ..Default::default()
        };
        let annotations = namespaces(&tenant(spec), &config).remove(0).metadata.annotations.unwrap();
        assert_eq!(annotations[labels::IMAGE_REGISTRIES], "registry.example.com/acme/,localhost:5000/");
        assert_eq!(annotations[labels::IMAGE_PUBLIC_PREFIXES], "docker.io/library/,registry.example.com/base/");
        assert_eq!(annotations[labels::IMAGE_PINNING], "Digest");
    }

    #[test]
    fn ingress_domains_reach_the_admission_policy() {
        let spec = TenantSpec {
            ingress: Some(crate::api::TenantIngress { domains: vec!["acme.example.com".into(), "acme.io".into()] }),
            ..Default::default()
        };
        let namespace = namespaces(&tenant(spec), &OperatorConfig::default()).remove(0);
        assert_eq!(namespace.metadata.annotations.unwrap()[labels::INGRESS_DOMAINS], "acme.example.com,acme.io");
    }

    #[test]
    fn explicit_namespaces_level_and_runtime_class() {
        let spec = TenantSpec {
            namespaces: vec!["acme-prod".into(), "acme-dev".into()],
            isolation: Some(Isolation { network: true, pod_security: Some(PodSecurityLevel::Baseline) }),
            runtime_class_name: Some("kata-clh".into()),
            ..Default::default()
        };
        let namespaces = namespaces(&tenant(spec), &OperatorConfig::default());
        let names: Vec<_> = namespaces.iter().map(|n| n.metadata.name.clone().unwrap()).collect();
        assert_eq!(names, ["acme-prod", "acme-dev"]);
        for namespace in &namespaces {
            let labels = namespace.metadata.labels.as_ref().unwrap();
            assert_eq!(labels["pod-security.kubernetes.io/enforce"], "baseline");
            assert_eq!(labels[labels::RUNTIME_CLASS], "kata-clh");
        }
    }
}
