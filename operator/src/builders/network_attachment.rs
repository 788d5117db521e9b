//! Multus NetworkAttachmentDefinitions: one per SdnNetwork a tenant lists, in each of its
//! namespaces, so pods there can request the network by name.
//!
//! Static addresses: whereabouts ignores the addresses a pod asks for (it reads no `runtimeConfig`
//! and always allocates from its range; `ipam.addresses` or `CNI_ARGS=IP=` only add addresses next
//! to the allocated one). So each macvlan, ipvlan and bridge network gets a second definition,
//! `<network>.static`, whose plugin declares `"capabilities": {"ips": true}` (Multus then passes
//! the pod's `ips` as `runtimeConfig.ips`) and whose IPAM is the reference `static` plugin, which
//! assigns exactly those addresses. Workloads with static `ips` name that definition; the others
//! keep whereabouts. Because static addresses are not recorded in whereabouts' pool, validation
//! keeps them outside the network's `ipRange` (see `validate::cross::static_ip_errors`).

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

/// Whether pods on networks of this type get their addresses from whereabouts (macvlan, ipvlan,
/// bridge), and static ones through [`static_attachment_name`]. Kube-OVN runs its own IPAM.
pub fn uses_whereabouts(network_type: NetworkType) -> bool {
    network_type != NetworkType::KubeOvn
}

/// Name of the attachment definition that gives pods on `network` the static addresses they ask
/// for. SdnNetwork names are DNS labels (no dots), so it never collides with another network's.
pub fn static_attachment_name(network: &str) -> String {
    format!("{network}.static")
}

/// Names of the attachment definitions `network` gets in each namespace: its own, and for
/// macvlan, ipvlan and bridge the [`static_attachment_name`] one.
pub fn attachment_names(network: &SdnNetwork) -> Vec<String> {
    let name = network.name_any();
    if uses_whereabouts(network.spec.network_type) {
        vec![name.clone(), static_attachment_name(&name)]
    } else {
        vec![name]
    }
}

/// The main plugin of a macvlan, ipvlan or bridge network, with `ipam`.
fn plugin_config(network: &SdnNetwork, ipam: Value) -> Value {
    let spec = &network.spec;
    let master = spec.master.clone().unwrap_or_default();
    let mut config = json!({"cniVersion": CNI_VERSION, "name": network.name_any(), "type": spec.network_type.as_str()});
    if spec.network_type == NetworkType::Bridge {
        config["bridge"] = json!(master);
        if let Some(vlan) = spec.vlan {
            config["vlan"] = json!(vlan);
        }
    } else {
        let default_mode = if spec.network_type == NetworkType::Macvlan { "bridge" } else { "l2" };
        // A VLAN rides on the host's `<master>.<vlan>` sub-interface (created by node networking).
        config["master"] = json!(spec.vlan.map_or(master.clone(), |vlan| format!("{master}.{vlan}")));
        config["mode"] = json!(spec.mode.map_or(default_mode, mode_str));
    }
    config["ipam"] = ipam;
    config
}

/// The CNI configuration of `network` for `namespace`.
pub fn cni_config(network: &SdnNetwork, namespace: &str) -> Value {
    let name = network.name_any();
    match network.spec.network_type {
        NetworkType::Macvlan | NetworkType::Ipvlan | NetworkType::Bridge => {
            plugin_config(network, whereabouts(network))
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

/// The CNI configuration of [`static_attachment_name`]: the network's plugin with the `ips`
/// capability and the `static` IPAM plugin, which assigns the addresses Multus passes from the
/// pod's request (`runtimeConfig.ips`, CIDR form) and nothing else. `None` for Kube-OVN.
pub fn static_cni_config(network: &SdnNetwork) -> Option<Value> {
    if !uses_whereabouts(network.spec.network_type) {
        return None;
    }
    let mut config = plugin_config(network, json!({"type": "static"}));
    config["capabilities"] = json!({"ips": true});
    Some(config)
}

/// Attachment definitions for every network the tenant lists (and that exists), in each namespace.
pub fn network_attachments(tenant: &Tenant, catalog: &Catalog) -> Vec<NetworkAttachmentDefinition> {
    let mut definitions = Vec::new();
    for namespace in tenant.namespace_names() {
        for network in catalog.networks_of(tenant) {
            let mut labels = labels::tenant_owned(&tenant.name_any());
            labels.insert(labels::NETWORK.into(), network.name_any());
            let statics =
                static_cni_config(network).map(|config| (static_attachment_name(&network.name_any()), config));
            for (name, config) in std::iter::once((network.name_any(), cni_config(network, &namespace))).chain(statics)
            {
                definitions.push(NetworkAttachmentDefinition {
                    metadata: ObjectMeta {
                        name: Some(name),
                        namespace: Some(namespace.clone()),
                        labels: Some(labels.clone()),
                        ..Default::default()
                    },
                    spec: NetworkAttachmentDefinitionSpec { config: Some(config.to_string()) },
                });
            }
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
        let names: Vec<_> = definitions
            .iter()
            .map(|d| format!("{}/{}", d.metadata.namespace.as_deref().unwrap(), d.metadata.name.as_deref().unwrap()))
            .collect();
        assert_eq!(
            names,
            ["acme-prod/office", "acme-prod/office.static", "acme-dev/office", "acme-dev/office.static"],
            "two per namespace; unknown networks are skipped"
        );
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
    fn static_addresses_get_the_ips_capability_and_static_ipam() {
        // Whereabouts reads no runtimeConfig: only the static plugin assigns what the pod asks for.
        let definitions = attachments(vec![network("office", NetworkType::Macvlan)]);
        let fixed = &definitions[1];
        assert_eq!(fixed.metadata.name.as_deref(), Some("office.static"));
        assert_eq!(fixed.metadata.labels.as_ref().unwrap()[labels::NETWORK], "office");
        assert_eq!(
            parsed(fixed),
            json!({
                "cniVersion": "0.3.1",
                "name": "office",
                "type": "macvlan",
                "master": "eth1.100",
                "mode": "bridge",
                "capabilities": {"ips": true},
                "ipam": {"type": "static"},
            })
        );
        let bridge = attachments(vec![network("br", NetworkType::Bridge)]);
        assert_eq!(
            parsed(&bridge[1]),
            json!({
                "cniVersion": "0.3.1", "name": "br", "type": "bridge", "bridge": "eth1", "vlan": 100,
                "capabilities": {"ips": true}, "ipam": {"type": "static"},
            })
        );
        let mut ovn = network("ovn", NetworkType::KubeOvn);
        ovn.spec.master = None;
        assert!(static_cni_config(&ovn).is_none(), "Kube-OVN has its own IPAM");
        assert_eq!(attachments(vec![ovn]).len(), 2, "one per namespace");
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
        assert!(config.get("capabilities").is_none(), "whereabouts ignores requested addresses");
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
