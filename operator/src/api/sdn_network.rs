//! `SdnNetwork`: a flat or SDN network that tenants may attach secondary interfaces to.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A flat (macvlan, ipvlan, bridge) or Kube-OVN network. For every tenant that lists it the
/// operator writes a Multus NetworkAttachmentDefinition into each tenant namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "scs.dev",
    version = "v1alpha1",
    kind = "SdnNetwork",
    plural = "sdnnetworks",
    shortname = "sdn",
    category = "scs",
    status = "SdnNetworkStatus",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type", description = "CNI plugin of the network"),
    printcolumn(name = "CIDR", type_ = "string", json_path = ".spec.cidr", description = "Subnet of the network"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new(super::CLUSTER_NAME_RULE).message(super::CLUSTER_NAME_MESSAGE)
)]
#[x_kube(validation = Rule::new("self.type == 'kube-ovn' || has(self.master)")
    .message("master (host interface or bridge) is required for macvlan, ipvlan and bridge networks").field_path(".master"))]
#[x_kube(validation = Rule::new("self.type != 'kube-ovn' || !has(self.vlan)")
    .message("vlan is not set here for kube-ovn networks: configure it on the Kube-OVN provider network").field_path(".vlan"))]
#[x_kube(validation = Rule::new(
    "!has(self.mode) || (self.type == 'macvlan' && self.mode in ['bridge', 'private', 'vepa', 'passthru']) || (self.type == 'ipvlan' && self.mode in ['l2', 'l3', 'l3s'])"
).message("mode must be bridge, private, vepa or passthru for macvlan, l2, l3 or l3s for ipvlan, and is not allowed for other types").field_path(".mode"))]
#[x_kube(validation = Rule::new(
    "!has(self.gateway) || !isCIDR(self.cidr) || !isIP(self.gateway) || cidr(self.cidr).containsIP(self.gateway)"
).message("gateway must lie inside cidr").field_path(".gateway"))]
#[x_kube(validation = Rule::new(
    "!has(self.ipRange) || !isCIDR(self.cidr) || !isIP(self.ipRange.start) || !isIP(self.ipRange.end) || (cidr(self.cidr).containsIP(self.ipRange.start) && cidr(self.cidr).containsIP(self.ipRange.end))"
).message("ipRange start and end must lie inside cidr").field_path(".ipRange"))]
#[serde(rename_all = "camelCase")]
pub struct SdnNetworkSpec {
    /// CNI plugin: `macvlan`, `ipvlan` or `bridge` (with whereabouts IPAM), or `kube-ovn`.
    #[serde(rename = "type")]
    pub network_type: NetworkType,

    /// Host interface (macvlan, ipvlan) or Linux bridge (bridge) the network is built on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 15), regex(pattern = r"^[A-Za-z0-9][-A-Za-z0-9_.]*$"))]
    pub master: Option<String>,

    /// macvlan mode (`bridge` by default, `private`, `vepa`, `passthru`) or ipvlan mode (`l2` by
    /// default, `l3`, `l3s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<NetworkMode>,

    /// 802.1Q VLAN ID. For macvlan and ipvlan the interface becomes the VLAN sub-interface
    /// `<master>.<vlan>`; for bridge it is the bridge port's VLAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4094))]
    pub vlan: Option<i32>,

    /// Subnet of the network, e.g. `192.168.100.0/24`.
    #[x_kube(validation = Rule::new("isCIDR(self)").message("must be a CIDR such as 192.168.100.0/24"))]
    #[schemars(length(max = 64))]
    pub cidr: String,

    /// Default gateway of the network; must lie inside `cidr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isIP(self)").message("must be an IP address"))]
    #[schemars(length(max = 64))]
    pub gateway: Option<String>,

    /// Addresses handed out to pods; must lie inside `cidr`. Defaults to the whole subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<IpRange>,

    /// Subnets inside `cidr` that are never handed out (e.g. addresses of routers and hosts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 64)))]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("every entry must be a CIDR such as 192.168.100.0/28"))]
    pub exclude: Vec<String>,

    /// Security domain of the network, a label value that firewall policy keys on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"))]
    pub security_domain: Option<String>,

    /// Isolation domain of the network, a label value that firewall policy keys on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"))]
    pub isolation_domain: Option<String>,
}

/// CNI plugin of an SdnNetwork.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkType {
    Macvlan,
    Ipvlan,
    Bridge,
    KubeOvn,
}

impl NetworkType {
    /// The spelling used in manifests and CNI configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkType::Macvlan => "macvlan",
            NetworkType::Ipvlan => "ipvlan",
            NetworkType::Bridge => "bridge",
            NetworkType::KubeOvn => "kube-ovn",
        }
    }
}

/// macvlan or ipvlan mode.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum NetworkMode {
    Bridge,
    Private,
    Vepa,
    Passthru,
    L2,
    L3,
    L3s,
}

/// An inclusive range of addresses.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IpRange {
    /// First address handed out.
    #[x_kube(validation = Rule::new("isIP(self)").message("must be an IP address"))]
    #[schemars(length(max = 64))]
    pub start: String,
    /// Last address handed out.
    #[x_kube(validation = Rule::new("isIP(self)").message("must be an IP address"))]
    #[schemars(length(max = 64))]
    pub end: String,
}

/// Observed state of an SdnNetwork.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SdnNetworkStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Tenants that list this network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    /// Namespaces that hold an attachment definition of this network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Per namespace using the network: its tenant, the pods attached to the network and the fixed
    /// addresses they hold on it. Refreshed with every pass (at least every 10 minutes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["namespace".into()]))]
    pub attachments: Vec<NetworkAttachmentStatus>,
    /// `Ready` when every attachment definition is in place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// How one namespace uses a network.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkAttachmentStatus {
    /// The tenant owning the namespace.
    pub tenant: String,
    /// The namespace.
    pub namespace: String,
    /// Pods of the namespace that attach to the network (by its attachment definitions); absent
    /// when the operator could not list them (yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<i32>,
    /// Fixed addresses those pods hold on the network, sorted: as Multus reports them for the
    /// `.static` attachment of a macvlan, ipvlan or bridge network, as requested from Kube-OVN on a
    /// `kube-ovn` one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub static_ips: Vec<String>,
}
