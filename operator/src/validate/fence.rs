//! What a SecureWorkload's pod template may not carry because the tenant fence (the admission
//! policies in `manifests/base/admission-policy.yaml`) would refuse its pods. Refusing it here
//! names the field at once, in `render` and in status, instead of a controller failing to create
//! pods; nothing is stripped silently.

use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::FieldError;

/// Annotation prefix of Kata's per-pod sandbox settings (hypervisor, kernel, guest seccomp).
pub const KATA_ANNOTATION_PREFIX: &str = "io.katacontainers.";
/// Multus annotation that replaces the pod's primary (fenced) network.
pub const DEFAULT_NETWORK_ANNOTATION: &str = "v1.multus-cni.io/default-network";
/// Taints of control-plane nodes, which tenant pods may not tolerate.
pub const CONTROL_PLANE_TAINTS: [&str; 2] = ["node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"];

/// Fence rules for a pod template.
pub fn template_errors(template: &PodTemplateSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let annotations = template.metadata.as_ref().and_then(|m| m.annotations.as_ref());
    for key in annotations.into_iter().flat_map(|a| a.keys()) {
        let path = format!("spec.template.metadata.annotations[{key:?}]");
        if key.starts_with(KATA_ANNOTATION_PREFIX) {
            errors.push(FieldError::new(path, "Kata sandbox annotations are the platform's, not a tenant's"));
        } else if key == DEFAULT_NETWORK_ANNOTATION {
            errors.push(FieldError::new(path, "would replace the pod's fenced primary network"));
        } else if key == crate::builders::workload::pod::NETWORKS_ANNOTATION {
            errors.push(FieldError::new(
                path,
                "attach networks with spec.networks, which checks them against the Tenant",
            ));
        }
    }
    let Some(pod) = template.spec.as_ref() else { return errors };
    if let Some(class) = pod.priority_class_name.as_deref().filter(|c| c.starts_with("system-")) {
        errors.push(FieldError::new(
            "spec.template.spec.priorityClassName",
            format!("{class:?} is reserved for the cluster itself"),
        ));
    }
    if pod.node_name.as_deref().is_some_and(|n| !n.is_empty()) {
        errors.push(FieldError::new(
            "spec.template.spec.nodeName",
            "bypasses the scheduler and its fences; use node affinity",
        ));
    }
    for (index, toleration) in pod.tolerations.iter().flatten().enumerate() {
        let path = format!("spec.template.spec.tolerations[{index}]");
        match toleration.key.as_deref() {
            None | Some("") => {
                errors.push(FieldError::new(path, "must name a taint key: an empty key tolerates every taint"))
            }
            Some(key) if CONTROL_PLANE_TAINTS.contains(&key) => {
                errors.push(FieldError::new(path, format!("may not tolerate the control plane's taint {key:?}")))
            }
            Some(_) => {}
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(template: serde_json::Value) -> Vec<String> {
        template_errors(&serde_json::from_value(template).unwrap()).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_plain_template_passes() {
        let template = json!({"metadata": {"annotations": {"prometheus.io/scrape": "true"}},
            "spec": {"containers": [{"name": "app"}], "priorityClassName": "batch-low",
                     "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]}});
        assert_eq!(errors(template), Vec::<String>::new());
    }

    #[test]
    fn each_way_out_of_the_fence_is_named() {
        let template = json!({
            "metadata": {"annotations": {
                "io.katacontainers.config.hypervisor.kernel_params": "x",
                "v1.multus-cni.io/default-network": "other/net",
                "k8s.v1.cni.cncf.io/networks": "other/office-vlan"}},
            "spec": {"containers": [{"name": "app"}], "priorityClassName": "system-node-critical", "nodeName": "node-1",
                     "tolerations": [{"operator": "Exists"}, {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]}});
        let found = errors(template);
        for expected in [
            "spec.template.metadata.annotations[\"io.katacontainers.config.hypervisor.kernel_params\"]: Kata sandbox",
            "spec.template.metadata.annotations[\"v1.multus-cni.io/default-network\"]: would replace",
            "spec.template.metadata.annotations[\"k8s.v1.cni.cncf.io/networks\"]: attach networks with spec.networks",
            "spec.template.spec.priorityClassName: \"system-node-critical\" is reserved",
            "spec.template.spec.nodeName: bypasses the scheduler",
            "spec.template.spec.tolerations[0]: must name a taint key",
            "spec.template.spec.tolerations[1]: may not tolerate the control plane's taint",
        ] {
            assert!(found.iter().any(|f| f.starts_with(expected)), "{expected} not in {found:#?}");
        }
        assert_eq!(found.len(), 7, "{found:#?}");
    }
}
