//! Whether the configured `networkIsolation.clusterCidrs` really cover the cluster's pod and
//! Service addresses. If they do not, the "outside the cluster" NetworkPolicy rule matches other
//! tenants' pods: the fence would fail open. Checked once at start; a mismatch is logged and
//! reported on every Tenant (condition `NetworkIsolationReady=False`, reason
//! `ClusterCidrsMismatch`, and an Event) instead of being trusted silently.

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use tracing::warn;

use crate::config::OperatorConfig;

/// What the check reads, `(group, resource, verb)`: listed in the operator's ClusterRole.
pub const READS: [(&str, &str, &str); 2] = [("", "nodes", "list"), ("networking.k8s.io", "servicecidrs", "list")];

/// Observed CIDRs (with where they come from) that no configured CIDR contains.
pub fn uncovered(configured: &[String], observed: &[(String, String)]) -> Vec<String> {
    let configured: Vec<IpNet> = configured.iter().filter_map(|c| c.parse().ok()).collect();
    observed
        .iter()
        .filter(|(cidr, _)| match cidr.parse::<IpNet>() {
            Ok(net) => !configured.iter().any(|c| c.contains(&net)),
            Err(_) => true,
        })
        .map(|(cidr, source)| format!("{cidr} ({source})"))
        .collect()
}

/// The pod CIDRs of every Node and the cluster's ServiceCIDRs, as `(cidr, source)`. A cluster
/// without the ServiceCIDR API (before 1.33, or switched off) contributes only its nodes.
async fn observed(client: &Client) -> kube::Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    for node in Api::<Node>::all(client.clone()).list(&ListParams::default()).await?.items {
        let name = node.name_any();
        for cidr in node.spec.and_then(|s| s.pod_cidrs).unwrap_or_default() {
            found.push((cidr, format!("pod CIDR of node {name}")));
        }
    }
    match Api::<ServiceCIDR>::all(client.clone()).list(&ListParams::default()).await {
        Ok(list) => {
            for service_cidr in list.items {
                let name = service_cidr.name_any();
                for cidr in service_cidr.spec.and_then(|s| s.cidrs).unwrap_or_default() {
                    found.push((cidr, format!("ServiceCIDR {name}")));
                }
            }
        }
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(error) => return Err(error),
    }
    Ok(found)
}

/// The mismatch, as a message for status and Events; `None` when the configuration covers what
/// the cluster uses or isolation lets nothing out (`allowExternal: false`).
pub async fn mismatch(client: &Client, config: &OperatorConfig) -> Option<String> {
    let isolation = &config.network_isolation;
    if !isolation.allow_external {
        return None;
    }
    let observed = match observed(client).await {
        Ok(observed) => observed,
        Err(error) => {
            warn!(%error, "cannot read node pod CIDRs or ServiceCIDRs to check networkIsolation.clusterCidrs");
            return None;
        }
    };
    let missing = uncovered(&isolation.cluster_cidrs, &observed);
    if missing.is_empty() {
        return None;
    }
    let message = format!(
        "networkIsolation.clusterCidrs ({}) do not cover {}: the allow-external NetworkPolicy rule would let other tenants' pods in; fix the operator configuration",
        isolation.cluster_cidrs.join(", "),
        missing.join(", ")
    );
    warn!("{message}");
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(pairs: &[&str]) -> Vec<(String, String)> {
        pairs.iter().map(|c| (c.to_string(), "node n1".to_string())).collect()
    }

    #[test]
    fn covered_cidrs_pass_and_others_are_named() {
        let configured = vec!["10.244.0.0/16".to_string(), "10.96.0.0/12".to_string()];
        assert!(uncovered(&configured, &observed(&["10.244.1.0/24", "10.96.0.0/16"])).is_empty());
        assert_eq!(
            uncovered(&configured, &observed(&["10.200.0.0/24", "10.244.0.0/15", "fd00::/64"])),
            ["10.200.0.0/24 (node n1)", "10.244.0.0/15 (node n1)", "fd00::/64 (node n1)"]
        );
    }
}
