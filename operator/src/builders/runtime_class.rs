//! The cluster-wide Kata RuntimeClass.

use k8s_openapi::api::node::v1::{Overhead, RuntimeClass, Scheduling};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::labels;
use crate::config::OperatorConfig;

/// The RuntimeClass from configuration: shared by all tenants, with the sandbox VM's fixed overhead
/// (charged to every pod and its quota) and a node selector for nodes that run Kata.
pub fn runtime_class(config: &OperatorConfig) -> RuntimeClass {
    let class = &config.runtime_class;
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
    fn empty_overhead_and_selector_are_omitted() {
        let mut config = OperatorConfig::default();
        config.runtime_class.overhead.clear();
        config.runtime_class.node_selector.clear();
        let class = runtime_class(&config);
        assert!(class.overhead.is_none());
        assert!(class.scheduling.is_none());
    }
}
