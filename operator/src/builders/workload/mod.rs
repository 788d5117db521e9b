//! Children of a SecureWorkload: the workload object of its kind, and its Services, Ingress, HPA
//! and PersistentVolumeClaims.
//!
//! Children carry `app.kubernetes.io/managed-by` and `scs.dev/workload` (never `scs.dev/tenant`:
//! tenant cleanup must not mistake them for its own) and, when the workload has a UID, a
//! controller owner reference so garbage collection removes them with it. Claims are owned only
//! when `retainVolumes` is false: user data outlives its workload by default.

mod expose;
mod kinds;
mod kube_ovn;
pub mod pod;
mod volumes;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::{Resource, ResourceExt};

use super::{Child, labels, namespace::runtime_class_of};
use crate::api::{SdnNetwork, SecureWorkload, Tenant, WorkloadKind};
use crate::config::OperatorConfig;

pub use kinds::DEFAULT_REVISION_HISTORY;

/// Name of a StatefulSet's headless Service.
pub fn headless_service_name(workload: &str) -> String {
    format!("{workload}-headless")
}

/// Labels that select the workload's pods. Selectors are immutable, so this never changes.
pub fn selector_labels(workload: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(labels::WORKLOAD.to_string(), workload.to_string())])
}

/// Ownership labels of every child of a workload.
pub fn child_labels(workload: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(workload);
    labels.insert(labels::MANAGED_BY.into(), labels::OPERATOR.into());
    labels
}

/// Whether a label of a SecureWorkload is the platform's, not the user's: `scs.dev/` (and its
/// subdomains), `kubernetes.io/`, `k8s.io/` and `app.kubernetes.io/managed-by`.
pub fn is_reserved_label(key: &str) -> bool {
    let prefix = key.split_once('/').map_or("", |(prefix, _)| prefix);
    key == labels::MANAGED_BY
        || ["scs.dev", "kubernetes.io", "k8s.io"].contains(&prefix)
        || prefix.ends_with(".scs.dev")
}

/// The SecureWorkload's own labels that its children and pods carry too (reserved ones left out).
/// They never enter a selector: selectors are immutable.
pub fn copied_labels(workload: &SecureWorkload) -> BTreeMap<String, String> {
    workload.labels().iter().filter(|(key, _)| !is_reserved_label(key)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Everything the operator creates for `workload` of `tenant`, as if none of its networks were a
/// Kube-OVN one (enough for the children's names; see [`workload_children_on`]).
pub fn workload_children(workload: &SecureWorkload, tenant: &Tenant, config: &OperatorConfig) -> Vec<Child> {
    workload_children_on(workload, tenant, config, &[])
}

/// Everything the operator creates for `workload` of `tenant`; `networks` (the SdnNetworks) tell
/// which of its networks are Kube-OVN ones, whose pods take their Subnet and fixed addresses from
/// annotations.
pub fn workload_children_on(
    workload: &SecureWorkload,
    tenant: &Tenant,
    config: &OperatorConfig,
    networks: &[SdnNetwork],
) -> Vec<Child> {
    let name = workload.name_any();
    let namespace = workload.namespace();
    let owner = workload.controller_owner_ref(&());
    let user_labels = copied_labels(workload);
    let mut labels = user_labels.clone();
    labels.extend(child_labels(&name));
    let metadata = |child_name: String, owned: bool| ObjectMeta {
        name: Some(child_name),
        namespace: namespace.clone(),
        labels: Some(labels.clone()),
        owner_references: owner.clone().filter(|_| owned).map(|o| vec![o]),
        ..Default::default()
    };
    let selector = selector_labels(&name);
    let spec = &workload.spec;
    let mut template = pod::pod_template(workload, &runtime_class_of(tenant, config), config, &selector);
    kube_ovn::adapt(&mut template, workload, networks);
    pod::pull_settings(&mut template, tenant, config);
    // The template's own labels (and the selector's) win over the workload's.
    let pod_labels = template.metadata.get_or_insert_with(Default::default).labels.get_or_insert_with(BTreeMap::new);
    for (key, value) in user_labels {
        pod_labels.entry(key).or_insert(value);
    }
    let headless = headless_service_name(&name);

    let mut main = kinds::workload_object(
        workload,
        metadata(name.clone(), true),
        LabelSelector { match_labels: Some(selector.clone()), match_expressions: None },
        template,
        config,
        &headless,
    );
    if spec.kind == WorkloadKind::Job {
        // A Job's template and completions are immutable: only suspension and parallelism change.
        let job_spec = &main.object["spec"];
        main.mutable_part =
            Some(serde_json::json!({"spec": {"suspend": job_spec["suspend"], "parallelism": job_spec["parallelism"]}}));
    }
    let mut children = vec![main];
    if spec.kind == WorkloadKind::StatefulSet {
        children.push(Child::from_resource(&expose::headless_service(
            spec.expose.as_ref(),
            metadata(headless, true),
            &selector,
        )));
    }
    if let Some(exposed) = &spec.expose {
        children.push(Child::from_resource(&expose::service(exposed, metadata(name.clone(), true), &selector)));
        if let Some(ingress) = expose::ingress(exposed, metadata(name.clone(), true), &name) {
            children.push(Child::from_resource(&ingress));
        }
    }
    if let Some(autoscaling) = &spec.autoscaling
        && spec.suspended != Some(true)
    {
        let hpa = expose::autoscaler(autoscaling, metadata(name.clone(), true), spec.kind.as_str(), &name);
        children.push(Child::from_resource(&hpa));
    }
    if spec.kind != WorkloadKind::StatefulSet {
        for volume in &spec.volumes {
            let claim_metadata = metadata(pod::claim_name(&name, &volume.name), !spec.retain_volumes);
            children.push(Child::from_resource(&volumes::claim(volume, config, claim_metadata)));
        }
    }
    children
}

#[cfg(test)]
mod tests;
