//! What a pod template needs for the workload's `kube-ovn` networks (see
//! `builders::kube_ovn_subnet` for why): the annotation that puts the interface on the network's
//! Subnet, and fixed addresses through Kube-OVN's own annotation instead of a `.static` attachment
//! (Kube-OVN runs its own IPAM and records them, so no second definition is needed).

use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::ResourceExt;
use serde_json::Value;

use super::pod::NETWORKS_ANNOTATION;
use crate::api::{NetworkType, SdnNetwork, SecureWorkload};
use crate::builders::kube_ovn_subnet::{ip_address_annotation, logical_switch_annotation, subnet_name};

/// Adapts `template` (as `pod::pod_template` built it) for the workload's networks of `networks`
/// that are Kube-OVN ones. Networks not found are left as they are (validation reports them).
pub fn adapt(template: &mut PodTemplateSpec, workload: &SecureWorkload, networks: &[SdnNetwork]) {
    let namespace = workload.namespace().unwrap_or_default();
    let is_ovn =
        |name: &str| networks.iter().any(|n| n.name_any() == name && n.spec.network_type == NetworkType::KubeOvn);
    if !workload.spec.networks.iter().any(|n| is_ovn(&n.name)) {
        return;
    }
    let metadata = template.metadata.get_or_insert_with(Default::default);
    let annotations = metadata.annotations.get_or_insert_with(Default::default);
    let mut attachments: Vec<Value> =
        annotations.get(NETWORKS_ANNOTATION).and_then(|text| serde_json::from_str(text).ok()).unwrap_or_default();
    // pod_template writes one entry per spec.networks entry, in order.
    for (attachment, requested) in attachments.iter_mut().zip(&workload.spec.networks) {
        if !is_ovn(&requested.name) {
            continue;
        }
        attachment["name"] = Value::String(requested.name.clone());
        if let Some(entry) = attachment.as_object_mut() {
            entry.remove("ips");
        }
        annotations.insert(logical_switch_annotation(&requested.name, &namespace), subnet_name(&requested.name));
        if !requested.ips.is_empty() {
            // Kube-OVN takes bare addresses, comma-separated (one per family).
            let addresses: Vec<&str> = requested.ips.iter().map(|ip| ip.split('/').next().unwrap_or(ip)).collect();
            annotations.insert(ip_address_annotation(&requested.name, &namespace), addresses.join(","));
        }
    }
    annotations.insert(NETWORKS_ANNOTATION.into(), Value::Array(attachments).to_string());
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::{Tenant, TenantSpec};
    use crate::builders::workload::workload_children_on;
    use crate::config::OperatorConfig;

    fn network(name: &str, network_type: &str) -> SdnNetwork {
        let mut spec = json!({"type": network_type, "cidr": "10.210.0.0/16"});
        if network_type != "kube-ovn" {
            spec["master"] = json!("eth1");
        }
        serde_json::from_value(
            json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SdnNetwork", "metadata": {"name": name}, "spec": spec}),
        )
        .unwrap()
    }

    fn template_annotations(networks: serde_json::Value) -> serde_json::Map<String, Value> {
        let workload: SecureWorkload = serde_json::from_value(json!({
            "apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload",
            "metadata": {"name": "db", "namespace": "acme-prod"},
            "spec": {"kind": "StatefulSet", "networks": networks,
                     "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}}},
        }))
        .unwrap();
        let tenant = Tenant::new("acme", TenantSpec { namespaces: vec!["acme-prod".into()], ..Default::default() });
        let networks = [network("ovn-secure", "kube-ovn"), network("office", "macvlan")];
        let children = workload_children_on(&workload, &tenant, &OperatorConfig::default(), &networks);
        let set = children.iter().find(|c| c.kind == "StatefulSet").unwrap();
        set.object["spec"]["template"]["metadata"]["annotations"].as_object().unwrap().clone()
    }

    #[test]
    fn kube_ovn_interfaces_name_their_subnet_and_take_fixed_addresses_from_kube_ovns_annotation() {
        let annotations = template_annotations(json!([
            {"name": "office", "ips": ["10.210.0.30/16"]},
            {"name": "ovn-secure", "interface": "net2", "ips": ["10.210.3.4/16"]},
        ]));
        let attachments: Value = serde_json::from_str(annotations[NETWORKS_ANNOTATION].as_str().unwrap()).unwrap();
        assert_eq!(
            attachments,
            json!([
                {"name": "office.static", "ips": ["10.210.0.30/16"]},
                {"name": "ovn-secure", "interface": "net2"},
            ]),
            "Kube-OVN has no .static attachment and reads no ips from the networks annotation"
        );
        assert_eq!(annotations["ovn-secure.acme-prod.ovn.kubernetes.io/logical_switch"], "scs-ovn-secure");
        assert_eq!(annotations["ovn-secure.acme-prod.ovn.kubernetes.io/ip_address"], "10.210.3.4");
        assert!(!annotations.keys().any(|k| k.starts_with("office.")), "nothing Kube-OVN for macvlan");
    }

    #[test]
    fn without_fixed_addresses_only_the_subnet_is_named() {
        let annotations = template_annotations(json!([{"name": "ovn-secure"}]));
        assert_eq!(annotations["ovn-secure.acme-prod.ovn.kubernetes.io/logical_switch"], "scs-ovn-secure");
        assert!(!annotations.contains_key("ovn-secure.acme-prod.ovn.kubernetes.io/ip_address"));
        let plain = template_annotations(json!([{"name": "office"}]));
        assert_eq!(plain.len(), 1, "only the networks annotation: {plain:?}");
    }
}
