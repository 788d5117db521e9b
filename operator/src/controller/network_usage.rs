//! How the pods of a namespace use a network, for the SdnNetwork status: which pods attach to it
//! (their `k8s.v1.cni.cncf.io/networks` annotation names one of its attachment definitions) and
//! which fixed addresses they hold there. Read from the pods' metadata only.

use std::collections::BTreeSet;

use kube::api::ObjectMeta;
use serde_json::Value;

use crate::api::NetworkType;
use crate::builders::kube_ovn_subnet::ip_address_annotation;
use crate::builders::network_attachment::static_attachment_name;
use crate::builders::workload::pod::NETWORKS_ANNOTATION;

/// Multus' report of the pod's interfaces, with the addresses each got.
pub const NETWORK_STATUS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/network-status";

/// The attachment names (`name`, without namespace or interface) a networks annotation requests,
/// in either of Multus' forms: a JSON list of `{"name": …}`, or `name[@interface]` comma-separated
/// (a `namespace/` prefix is dropped: the admission policy refuses it in tenant namespaces anyway).
pub fn requested(annotation: &str) -> Vec<String> {
    let text = annotation.trim();
    if text.starts_with('[') || text.starts_with('{') {
        let parsed: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let entries = match parsed {
            Value::Array(entries) => entries,
            single @ Value::Object(_) => vec![single],
            _ => Vec::new(),
        };
        return entries.iter().filter_map(|e| e["name"].as_str().map(str::to_string)).collect();
    }
    text.split(',')
        .map(|entry| entry.trim())
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let name = entry.split('@').next().unwrap_or(entry);
            name.rsplit('/').next().unwrap_or(name).to_string()
        })
        .collect()
}

/// Pods of `namespace` (their metadata) attached to `network`, and the fixed addresses they hold on it.
pub fn usage(network: &str, network_type: NetworkType, namespace: &str, pods: &[ObjectMeta]) -> (i32, Vec<String>) {
    let static_name = static_attachment_name(network);
    let mut attached = 0;
    let mut addresses = BTreeSet::new();
    for pod in pods {
        let annotations = pod.annotations.clone().unwrap_or_default();
        let names = annotations.get(NETWORKS_ANNOTATION).map(|a| requested(a)).unwrap_or_default();
        if !names.iter().any(|n| *n == network || *n == static_name) {
            continue;
        }
        attached += 1;
        if network_type == NetworkType::KubeOvn {
            if let Some(fixed) = annotations.get(&ip_address_annotation(network, namespace)) {
                addresses.extend(fixed.split(',').map(|a| a.trim().to_string()).filter(|a| !a.is_empty()));
            }
            continue;
        }
        // What Multus says the `.static` attachment got.
        let reported: Value = annotations
            .get(NETWORK_STATUS_ANNOTATION)
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null);
        let wanted = format!("{namespace}/{static_name}");
        for interface in reported.as_array().into_iter().flatten().filter(|i| i["name"] == wanted.as_str()) {
            addresses.extend(
                interface["ips"].as_array().into_iter().flatten().filter_map(|ip| ip.as_str()).map(str::to_string),
            );
        }
    }
    (attached, addresses.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn pod(annotations: &[(&str, String)]) -> ObjectMeta {
        ObjectMeta {
            annotations: Some(annotations.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<BTreeMap<_, _>>()),
            ..Default::default()
        }
    }

    #[test]
    fn both_annotation_forms_name_attachments() {
        assert_eq!(
            requested(r#"[{"name":"office.static","ips":["10.0.0.5/24"]},{"name":"ovn","interface":"net2"}]"#),
            ["office.static", "ovn"]
        );
        assert_eq!(requested("office@net1, ovn"), ["office", "ovn"]);
        assert_eq!(requested("other/office"), ["office"]);
        assert_eq!(requested("[not json"), Vec::<String>::new());
        assert_eq!(requested(""), Vec::<String>::new());
    }

    #[test]
    fn pods_on_a_flat_network_and_the_addresses_multus_reports_for_its_static_attachment() {
        let status = json!([
            {"name": "k8s-pod-network", "ips": ["10.244.0.7"], "default": true},
            {"name": "acme/office.static", "interface": "net1", "ips": ["192.168.100.10"]},
        ]);
        let pods = [
            pod(&[
                (NETWORKS_ANNOTATION, r#"[{"name":"office.static","ips":["192.168.100.10/24"]}]"#.into()),
                (NETWORK_STATUS_ANNOTATION, status.to_string()),
            ]),
            pod(&[(NETWORKS_ANNOTATION, "office".into())]),
            pod(&[(NETWORKS_ANNOTATION, "lab".into())]),
            pod(&[]),
        ];
        assert_eq!(usage("office", NetworkType::Macvlan, "acme", &pods), (2, vec!["192.168.100.10".to_string()]));
        assert_eq!(usage("lab", NetworkType::Bridge, "acme", &pods), (1, vec![]));
    }

    #[test]
    fn kube_ovn_fixed_addresses_come_from_its_annotation() {
        let pods = [
            pod(&[
                (NETWORKS_ANNOTATION, r#"[{"name":"ovn-secure"}]"#.into()),
                ("ovn-secure.acme.ovn.kubernetes.io/ip_address", "10.210.3.4".into()),
            ]),
            pod(&[(NETWORKS_ANNOTATION, r#"[{"name":"ovn-secure"}]"#.into())]),
        ];
        assert_eq!(usage("ovn-secure", NetworkType::KubeOvn, "acme", &pods), (2, vec!["10.210.3.4".to_string()]));
    }
}
