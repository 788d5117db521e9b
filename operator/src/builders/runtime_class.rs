//! The cluster-wide Kata RuntimeClasses: the tenants' class and the GPU vendors' classes.

use k8s_openapi::api::node::v1::{Overhead, RuntimeClass, Scheduling};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::labels;
use crate::config::{OperatorConfig, RuntimeClassConfig};

/// The RuntimeClass from configuration: shared by all tenants, with the sandbox VM's fixed overhead
/// (charged to every pod and its quota) and a node selector for nodes that run Kata.
pub fn runtime_class(config: &OperatorConfig) -> RuntimeClass {
    build(&config.runtime_class)
}

/// Every RuntimeClass the operator keeps: the tenants' class, then each GPU vendor's own (once
/// when vendors share one).
pub fn runtime_classes(config: &OperatorConfig) -> Vec<RuntimeClass> {
    let mut classes = vec![runtime_class(config)];
    for (_, vendor) in config.gpu.vendors() {
        if let Some(class) = &vendor.runtime_class
            && !classes.iter().any(|c| c.metadata.name.as_deref() == Some(class.name.as_str()))
        {
            classes.push(build(class));
        }
    }
    classes
}

fn build(class: &RuntimeClassConfig) -> RuntimeClass {
    RuntimeClass {
        metadata: ObjectMeta {
            name: Some(class.name.clone()),
            labels: Some(labels::operator_owned()),
            ..Default::default()
        },
        handler: class.handler.clone(),
        overhead: (!class.overhead.is_empty()).then(|| Overhead { pod_fixed: Some(class.overhead.clone()) }),
        scheduling: (!class.node_selector.is_empty())
            .then(|| Scheduling { node_selector: Some(class.node_selector.clone()), tolerations: None }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_class_follows_configuration() {
        let class = runtime_class(&OperatorConfig::default());
        assert_eq!(class.metadata.name.as_deref(), Some("kata-qemu"));
        assert_eq!(class.handler, "kata-qemu");
        let overhead = class.overhead.unwrap().pod_fixed.unwrap();
        assert_eq!(overhead["memory"].0, "160Mi");
        assert_eq!(overhead["cpu"].0, "250m");
        assert_eq!(class.scheduling.unwrap().node_selector.unwrap()["katacontainers.io/kata-runtime"], "true");
        assert_eq!(class.metadata.labels.unwrap()[labels::MANAGED_BY], "scs-operator");
    }

    #[test]
    fn gpu_vendors_get_their_own_class() {
        let names = |config: &OperatorConfig| -> Vec<String> {
            runtime_classes(config).into_iter().map(|c| c.metadata.name.unwrap()).collect()
        };
        let mut config = OperatorConfig::default();
        assert_eq!(names(&config), ["kata-qemu", "kata-qemu-nvidia-gpu"]);
        let gpu = runtime_classes(&config).remove(1);
        assert_eq!(gpu.handler, "kata-qemu-nvidia-gpu");
        assert_eq!(gpu.metadata.labels.unwrap()[labels::MANAGED_BY], "scs-operator");
        config.gpu.kunlun.runtime_class = config.gpu.nvidia.runtime_class.clone();
        assert_eq!(names(&config), ["kata-qemu", "kata-qemu-nvidia-gpu"], "a shared class is made once");
        config.gpu.nvidia.runtime_class = None;
        config.gpu.kunlun.runtime_class = None;
        assert_eq!(names(&config), ["kata-qemu"]);
    }

    #[test]
    fn empty_overhead_and_selector_are_omitted() {
        let mut config = OperatorConfig::default();
        config.runtime_class.overhead.clear();
        config.runtime_class.node_selector.clear();
        let class = runtime_class(&config);
        assert!(class.overhead.is_none());
        assert!(class.scheduling.is_none());
    }
}
