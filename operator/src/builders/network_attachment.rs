//! Multus NetworkAttachmentDefinitions: one per SdnNetwork a tenant lists, in each of its
//! namespaces, so pods there can request the network by name.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{CustomResource, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::labels;
use crate::api::{NetworkMode, NetworkType, SdnNetwork, Tenant};
use crate::catalog::Catalog;

/// The Multus `NetworkAttachmentDefinition` (`k8s.cni.cncf.io/v1`). Its CRD belongs to Multus;
/// we only need the type to write objects of it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "k8s.cni.cncf.io",
    version = "v1",
    kind = "NetworkAttachmentDefinition",
    plural = "network-attachment-definitions",
    namespaced,
    schema = "disabled"
)]
pub struct NetworkAttachmentDefinitionSpec {
    /// The CNI configuration, as a JSON string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

/// CNI spec version written into every configuration; understood by macvlan, ipvlan, bridge,
/// whereabouts and Kube-OVN.
pub const CNI_VERSION: &str = "0.3.1";
/// Kube-OVN's CNI server socket on every node.
pub const KUBE_OVN_SOCKET: &str = "/run/openvswitch/kube-ovn-daemon.sock";

fn mode_str(mode: NetworkMode) -> &'static str {
    match mode {
        NetworkMode::Bridge => "bridge",
        NetworkMode::Private => "private",
        NetworkMode::Vepa => "vepa",
        NetworkMode::Passthru => "passthru",
        NetworkMode::L2 => "l2",
        NetworkMode::L3 => "l3",
        NetworkMode::L3s => "l3s",
    }
}

/// Whereabouts IPAM: cluster-wide unique addresses from the network's range.
fn whereabouts(network: &SdnNetwork) -> Value {
    let spec = &network.spec;
    let mut ipam = json!({ "type": "whereabouts", "range": spec.cidr });
    if let Some(range) = &spec.ip_range {
        ipam["range_start"] = json!(range.start);
        ipam["range_end"] = json!(range.end);
    }
    if !spec.exclude.is_empty() {
        ipam["exclude"] = json!(spec.exclude);
    }
    if let Some(gateway) = &spec.gateway {
        ipam["gateway"] = json!(gateway);
    }
    ipam
}

/// The CNI configuration of `network` for `namespace`.
pub fn cni_config(network: &SdnNetwork, namespace: &str) -> Value {
    let spec = &network.spec;
    let name = network.name_any();
    let master = spec.master.clone().unwrap_or_default();
    match spec.network_type {
        NetworkType::Macvlan | NetworkType::Ipvlan => {
            let default_mode = if spec.network_type == NetworkType::Macvlan { "bridge" } else { "l2" };
            // A VLAN rides on the host's `<master>.<vlan>` sub-interface (created by node networking).
            let master = spec.vlan.map_or(master.clone(), |vlan| format!("{master}.{vlan}"));
            json!({
                "cniVersion": CNI_VERSION,
                "name": name,
                "type": spec.network_type.as_str(),
                "master": master,
                "mode": spec.mode.map_or(default_mode, mode_str),
                "ipam": whereabouts(network),
            })
        }
        NetworkType::Bridge => {
            let mut config = json!({
                "cniVersion": CNI_VERSION,
                "name": name,
                "type": "bridge",
                "bridge": master,
                "ipam": whereabouts(network),
            });
            if let Some(vlan) = spec.vlan {
                config["vlan"] = json!(vlan);
            }
            config
        }
        NetworkType::KubeOvn => json!({
            "cniVersion": CNI_VERSION,
            "name": name,
            "type": "kube-ovn",
            "server_socket": KUBE_OVN_SOCKET,
            "provider": format!("{name}.{namespace}.ovn"),
        }),
    }
}

/// Attachment definitions for every network the tenant lists (and that exists), in each namespace.
pub fn network_attachments(tenant: &Tenant, catalog: &Catalog) -> Vec<NetworkAttachmentDefinition> {
    let mut definitions = Vec::new();
    for namespace in tenant.namespace_names() {
        for network in catalog.networks_of(tenant) {
            let mut labels = labels::tenant_owned(&tenant.name_any());
            labels.insert(labels::NETWORK.into(), network.name_any());
            let config = cni_config(network, &namespace).to_string();
            definitions.push(NetworkAttachmentDefinition {
                metadata: ObjectMeta {
                    name: Some(network.name_any()),
                    namespace: Some(namespace.clone()),
                    labels: Some(labels),
                    ..Default::default()
                },
                spec: NetworkAttachmentDefinitionSpec { config: Some(config) },
            });
        }
    }
    definitions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{IpRange, SdnNetworkSpec, TenantSpec};

    fn network(name: &str, network_type: NetworkType) -> SdnNetwork {
        SdnNetwork::new(
            name,
            SdnNetworkSpec {
                network_type,
                master: Some("eth1".into()),
                mode: None,
                vlan: Some(100),
                cidr: "192.168.100.0/24".into(),
                gateway: Some("192.168.100.1".into()),
                ip_range: Some(IpRange { start: "192.168.100.20".into(), end: "192.168.100.200".into() }),
                exclude: vec!["192.168.100.64/28".into()],
                security_domain: None,
                isolation_domain: None,
            },
        )
    }

    fn parsed(definition: &NetworkAttachmentDefinition) -> Value {
        serde_json::from_str(definition.spec.config.as_deref().unwrap()).expect("config is valid JSON")
    }

    fn expected_ipam() -> Value {
        json!({
            "type": "whereabouts",
            "range": "192.168.100.0/24",
            "range_start": "192.168.100.20",
            "range_end": "192.168.100.200",
            "exclude": ["192.168.100.64/28"],
            "gateway": "192.168.100.1",
        })
    }

    fn attachments(networks: Vec<SdnNetwork>) -> Vec<NetworkAttachmentDefinition> {
        let tenant = Tenant::new(
            "acme",
            TenantSpec {
                namespaces: vec!["acme-prod".into(), "acme-dev".into()],
                networks: networks.iter().map(|n| n.name_any()).chain(["missing".to_string()]).collect(),
                ..Default::default()
            },
        );
        network_attachments(&tenant, &Catalog { networks, ..Default::default() })
    }

    #[test]
    fn macvlan_uses_the_vlan_sub_interface_and_whereabouts() {
        let definitions = attachments(vec![network("office", NetworkType::Macvlan)]);
        assert_eq!(definitions.len(), 2, "one per namespace; unknown networks are skipped");
        assert_eq!(definitions[0].metadata.namespace.as_deref(), Some("acme-prod"));
        assert_eq!(definitions[0].metadata.labels.as_ref().unwrap()[labels::NETWORK], "office");
        assert_eq!(
            parsed(&definitions[0]),
            json!({
                "cniVersion": "0.3.1",
                "name": "office",
                "type": "macvlan",
                "master": "eth1.100",
                "mode": "bridge",
                "ipam": expected_ipam(),
            })
        );
    }

    #[test]
    fn ipvlan_defaults_to_l2_and_keeps_an_explicit_mode() {
        let mut ipvlan = network("lab", NetworkType::Ipvlan);
        ipvlan.spec.vlan = None;
        assert_eq!(parsed(&attachments(vec![ipvlan.clone()])[0])["mode"], "l2");
        assert_eq!(parsed(&attachments(vec![ipvlan.clone()])[0])["master"], "eth1");
        ipvlan.spec.mode = Some(NetworkMode::L3);
        assert_eq!(parsed(&attachments(vec![ipvlan])[0])["mode"], "l3");
    }

    #[test]
    fn bridge_carries_its_vlan() {
        let config = parsed(&attachments(vec![network("br", NetworkType::Bridge)])[0]);
        assert_eq!(
            config,
            json!({"cniVersion": "0.3.1", "name": "br", "type": "bridge", "bridge": "eth1", "vlan": 100, "ipam": expected_ipam()})
        );
    }

    #[test]
    fn kube_ovn_provider_names_the_attachment_and_namespace() {
        let mut ovn = network("ovn-secure", NetworkType::KubeOvn);
        ovn.spec.master = None;
        ovn.spec.vlan = None;
        let definitions = attachments(vec![ovn]);
        assert_eq!(
            parsed(&definitions[1]),
            json!({
                "cniVersion": "0.3.1",
                "name": "ovn-secure",
                "type": "kube-ovn",
                "server_socket": KUBE_OVN_SOCKET,
                "provider": "ovn-secure.acme-dev.ovn",
            })
        );
    }
}
