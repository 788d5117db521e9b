//! A SecureWorkload's images against its tenant's image rules (the `scs-tenant-images` admission
//! policy would refuse the pods): named in `render` and in status instead of a controller failing
//! to create pods.

use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::FieldError;
use crate::images::ImagePolicy;

/// Every image of the template (containers, init containers, image volumes) checked as the
/// operator will write it: a container without a pull policy gets `Always` for a private image.
pub fn template_errors(template: &PodTemplateSpec, policy: &ImagePolicy) -> Vec<FieldError> {
    let Some(pod) = template.spec.as_ref() else { return Vec::new() };
    let mut errors = Vec::new();
    let init = pod.init_containers.as_deref().unwrap_or_default();
    for (field, containers) in [("containers", pod.containers.as_slice()), ("initContainers", init)] {
        for (index, container) in containers.iter().enumerate() {
            let Some(image) = container.image.as_deref() else { continue };
            let pull = container.image_pull_policy.as_deref().or_else(|| policy.default_pull_policy(image));
            if let Some((_, message)) = policy.check(image, pull) {
                errors.push(FieldError::new(format!("spec.template.spec.{field}[{index}].image"), message));
            }
        }
    }
    for (index, volume) in pod.volumes.iter().flatten().enumerate() {
        let Some(source) = &volume.image else { continue };
        let Some(image) = source.reference.as_deref() else { continue };
        if let Some((_, message)) = policy.check(image, source.pull_policy.as_deref()) {
            errors.push(FieldError::new(format!("spec.template.spec.volumes[{index}].image.reference"), message));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ImagePinning;

    fn template(yaml: &str) -> PodTemplateSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn policy() -> ImagePolicy {
        ImagePolicy {
            registries: vec!["registry.example.com/acme/".into()],
            public_prefixes: vec!["docker.io/library/".into()],
            pinning: ImagePinning::Tag,
        }
    }

    #[test]
    fn compliant_templates_pass_with_the_pull_policy_the_operator_sets() {
        let ok = template(
            "spec:\n  containers:\n  - {name: app, image: registry.example.com/acme/app:1.0}\n  initContainers:\n  - {name: init, image: docker.io/library/busybox:1.36, imagePullPolicy: IfNotPresent}\n",
        );
        assert_eq!(template_errors(&ok, &policy()), vec![]);
    }

    #[test]
    fn each_offending_image_is_named_by_its_field() {
        let bad = template(
            "spec:\n  containers:\n  - {name: app, image: registry.example.com/acme/app:1.0}\n  - {name: side, image: evil.io/x:1.0}\n  initContainers:\n  - {name: init, image: registry.example.com/acme/init:latest}\n  - {name: cached, image: registry.example.com/acme/init:2.0, imagePullPolicy: IfNotPresent}\n  volumes:\n  - {name: model, image: {reference: registry.example.com/acme/model, pullPolicy: Always}}\n",
        );
        let errors = template_errors(&bad, &policy());
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.template.spec.containers[1].image",
                "spec.template.spec.initContainers[0].image",
                "spec.template.spec.initContainers[1].image",
                "spec.template.spec.volumes[0].image.reference",
            ]
        );
        assert!(errors[0].message.contains("not from an allowed registry"), "{}", errors[0].message);
        assert!(errors[1].message.contains("pinned"), "{}", errors[1].message);
        assert!(errors[2].message.contains("imagePullPolicy must be Always"), "{}", errors[2].message);
    }
}
