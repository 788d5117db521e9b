//! The pod template every workload kind shares: the user's template, fenced and extended.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    PersistentVolumeClaimVolumeSource, PodTemplateSpec, ResourceRequirements, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use serde_json::json;

use crate::api::{CUDA_DRIVER_VERSION_LABEL, CudaRange, SecureWorkload, Tenant, WorkloadKind, cuda_version_number};
use crate::builders::network_attachment::static_attachment_name;
use crate::config::OperatorConfig;
use crate::images::ImagePolicy;

/// Pod annotation Multus reads secondary networks from.
pub const NETWORKS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks";
/// Pod-template annotation that rolls every pod when `spec.restartedAt` changes.
pub const RESTARTED_AT_ANNOTATION: &str = "scs.dev/restartedAt";
/// Node label of the CPU architecture; GPUs in containers are unsupported on Arm.
pub const ARCH_LABEL: &str = "kubernetes.io/arch";

/// Name of the claim of `volume` for kinds that use one shared claim per volume.
pub fn claim_name(workload: &str, volume: &str) -> String {
    format!("{workload}-{volume}")
}

/// The pod template of `workload`: its own template with our labels, the tenant's Kata runtime
/// class, no host namespaces, GPUs, networks, volumes and the restart annotation.
pub fn pod_template(
    workload: &SecureWorkload,
    runtime_class: &str,
    config: &OperatorConfig,
    selector: &BTreeMap<String, String>,
) -> PodTemplateSpec {
    let spec = &workload.spec;
    let mut template = spec.template.clone();
    let metadata = template.metadata.get_or_insert_with(Default::default);
    metadata.labels.get_or_insert_with(BTreeMap::new).extend(selector.clone());
    let annotations = metadata.annotations.get_or_insert_with(BTreeMap::new);
    if let Some(restarted) = &spec.restarted_at {
        annotations.insert(RESTARTED_AT_ANNOTATION.into(), restarted.0.to_string());
    }
    if !spec.networks.is_empty() {
        // No `namespace`: Multus then looks in the pod's own namespace, the only one the
        // admission policy lets a tenant pod name.
        let attachments: Vec<serde_json::Value> = spec
            .networks
            .iter()
            .map(|n| {
                // Static addresses need the network's `.static` definition: whereabouts ignores them.
                let name = if n.ips.is_empty() { n.name.clone() } else { static_attachment_name(&n.name) };
                let mut attachment = json!({"name": name});
                if let Some(interface) = &n.interface {
                    attachment["interface"] = json!(interface);
                }
                if !n.ips.is_empty() {
                    attachment["ips"] = json!(n.ips);
                }
                attachment
            })
            .collect();
        annotations.insert(NETWORKS_ANNOTATION.into(), serde_json::Value::Array(attachments).to_string());
    }
    if annotations.is_empty() {
        metadata.annotations = None;
    }

    let pod = template.spec.get_or_insert_with(Default::default);
    // Whatever the template says: the tenant's sandbox, and no host namespaces.
    pod.runtime_class_name = Some(runtime_class.to_string());
    pod.host_network = None;
    pod.host_pid = None;
    pod.host_ipc = None;
    if matches!(spec.kind, WorkloadKind::Job | WorkloadKind::CronJob) && pod.restart_policy.is_none() {
        pod.restart_policy = Some("OnFailure".into());
    }

    if let Some(gpu) = &spec.gpu {
        let vendor = config.gpu.vendor(gpu.vendor);
        // Passthrough needs the vendor's sandbox class, and the device plugin's nodes are tainted
        // with the resource name.
        if let Some(class) = &vendor.runtime_class {
            pod.runtime_class_name = Some(class.name.clone());
        }
        let tolerations = pod.tolerations.get_or_insert_with(Vec::new);
        if !tolerations.iter().any(|t| t.key.as_deref() == Some(vendor.resource_name.as_str())) {
            tolerations.push(Toleration {
                key: Some(vendor.resource_name.clone()),
                operator: Some("Exists".into()),
                effect: Some("NoSchedule".into()),
                ..Default::default()
            });
        }
        let index =
            gpu.container.as_ref().and_then(|name| pod.containers.iter().position(|c| &c.name == name)).unwrap_or(0);
        if let Some(container) = pod.containers.get_mut(index) {
            let resources = container.resources.get_or_insert_with(ResourceRequirements::default);
            let count = Quantity(gpu.count.to_string());
            resources.limits.get_or_insert_with(BTreeMap::new).insert(vendor.resource_name.clone(), count.clone());
            resources.requests.get_or_insert_with(BTreeMap::new).insert(vendor.resource_name.clone(), count);
        }
        let mut requirements = vec![NodeSelectorRequirement {
            key: ARCH_LABEL.into(),
            operator: "In".into(),
            values: Some(vec!["amd64".into()]),
        }];
        if let Some(model) = &gpu.model {
            requirements.push(NodeSelectorRequirement {
                key: vendor.model_node_label.clone(),
                operator: "In".into(),
                values: Some(vec![model.clone()]),
            });
        }
        // Only nodes whose driver and models the device plugin certified (unless configured off).
        if !vendor.certified_node_label.is_empty() {
            requirements.push(NodeSelectorRequirement {
                key: vendor.certified_node_label.clone(),
                operator: "In".into(),
                values: Some(vec!["true".into()]),
            });
        }
        if let Some(cuda) = &gpu.cuda {
            requirements.extend(cuda_requirements(cuda));
        }
        require_on_nodes(pod.affinity.get_or_insert_with(Affinity::default), requirements);
    }

    // Pre-authorization: the waiting init container first, before anything of the tenant's runs.
    if spec.pre_authorization.as_ref().is_some_and(|p| !p.permission_groups.is_empty()) {
        crate::authz::init::inject(pod, &config.pre_authorization);
    }

    // Volumes: a claim per volume, except for a StatefulSet whose claims come from templates.
    for volume in &spec.volumes {
        if spec.kind != WorkloadKind::StatefulSet {
            pod.volumes.get_or_insert_with(Vec::new).push(Volume {
                name: volume.name.clone(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim_name(&workload.name_any(), &volume.name),
                    read_only: None,
                }),
                ..Default::default()
            });
        }
        for container in pod.containers.iter_mut().filter(|c| volume.container.as_ref().is_none_or(|n| *n == c.name)) {
            container.volume_mounts.get_or_insert_with(Vec::new).push(VolumeMount {
                name: volume.name.clone(),
                mount_path: volume.mount_path.clone(),
                ..Default::default()
            });
        }
    }
    template
}

/// The tenant's pull Secrets on the pod (after the template's own), and `imagePullPolicy: Always`
/// for private images whose container sets no policy: the API server would default a tagged
/// image to `IfNotPresent`, which the admission policy refuses for private images.
pub fn pull_settings(template: &mut PodTemplateSpec, tenant: &Tenant, config: &OperatorConfig) {
    let Some(pod) = template.spec.as_mut() else { return };
    let policy = ImagePolicy::of(tenant, config);
    let containers = pod.containers.iter_mut().chain(pod.init_containers.iter_mut().flatten());
    for container in containers.filter(|c| c.image_pull_policy.is_none()) {
        if let Some(image) = &container.image {
            container.image_pull_policy = policy.default_pull_policy(image).map(String::from);
        }
    }
    let secrets = tenant.spec.images.iter().flat_map(|i| &i.pull_secrets);
    for name in secrets {
        let references = pod.image_pull_secrets.get_or_insert_with(Vec::new);
        if !references.iter().any(|r| &r.name == name) {
            references.push(LocalObjectReference { name: name.clone() });
        }
    }
}

/// `Gt`/`Lt` on the node's CUDA driver version label (integers, and strict: the bounds are moved
/// by one so both ends are included). A node without the label matches neither.
fn cuda_requirements(cuda: &CudaRange) -> Vec<NodeSelectorRequirement> {
    let bound = |version: &Option<String>, operator: &str, step: i64| {
        version.as_ref().map(|version| {
            // Unreachable past the CRD's rule; should one get here, the API server refuses the
            // child with the raw value rather than the constraint being dropped.
            let value = cuda_version_number(version).map_or(version.clone(), |n| (i64::from(n) + step).to_string());
            NodeSelectorRequirement {
                key: CUDA_DRIVER_VERSION_LABEL.into(),
                operator: operator.into(),
                values: Some(vec![value]),
            }
        })
    };
    bound(&cuda.min, "Gt", -1).into_iter().chain(bound(&cuda.max, "Lt", 1)).collect()
}

/// ANDs `requirements` into every required node-selector term (terms are ORed, so adding to each
/// keeps the user's alternatives and enforces ours in all of them).
fn require_on_nodes(affinity: &mut Affinity, requirements: Vec<NodeSelectorRequirement>) {
    let node = affinity.node_affinity.get_or_insert_with(NodeAffinity::default);
    let selector = node
        .required_during_scheduling_ignored_during_execution
        .get_or_insert_with(|| NodeSelector { node_selector_terms: vec![NodeSelectorTerm::default()] });
    if selector.node_selector_terms.is_empty() {
        selector.node_selector_terms.push(NodeSelectorTerm::default());
    }
    for term in &mut selector.node_selector_terms {
        term.match_expressions.get_or_insert_with(Vec::new).extend(requirements.iter().cloned());
    }
}
