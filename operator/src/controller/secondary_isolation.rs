//! `SecondaryNetworksIsolated` on a Tenant: whether its secondary interfaces are fenced by
//! MultiNetworkPolicies. The policies need a MultiNetworkPolicy implementation (and its CRD),
//! which an install may lack; then they are skipped and this condition says so plainly, without
//! making the tenant un-Ready (its primary network is fenced either way).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::conditions::condition;
use crate::api::Tenant;

/// The condition type.
pub const TYPE: &str = "SecondaryNetworksIsolated";

/// Whether an entry of `SyncReport::unserved` (`Kind namespace/name`) is a MultiNetworkPolicy.
fn is_policy(unserved: &str) -> bool {
    unserved.starts_with("MultiNetworkPolicy ")
}

/// The unserved children the tenant cannot do without (all but the MultiNetworkPolicies).
pub fn required(unserved: &[String]) -> Vec<String> {
    unserved.iter().filter(|u| !is_policy(u)).cloned().collect()
}

/// The condition for `tenant`, given the children its sync found unserved; `None` when the tenant
/// attaches to no network or has network isolation off (nothing to isolate, or asked not to).
pub fn condition_of(tenant: &Tenant, unserved: &[String], generation: Option<i64>) -> Option<Condition> {
    if !tenant.network_isolated() || tenant.spec.networks.is_empty() {
        return None;
    }
    let networks = tenant.spec.networks.join(", ");
    Some(if unserved.iter().any(|u| is_policy(u)) {
        condition(
            TYPE,
            false,
            "MultiNetworkPolicyNotServed",
            format!(
                "the cluster does not serve MultiNetworkPolicy (k8s.cni.cncf.io/v1beta1), so the secondary interfaces on \
                 {networks} are NOT isolated from other tenants' pods on those networks; install a MultiNetworkPolicy \
                 implementation (README: Network model)"
            ),
            generation,
        )
    } else {
        condition(
            TYPE,
            true,
            "Applied",
            format!(
                "MultiNetworkPolicies deny all but the tenant's own peers (and its networks' isolation domains) on {networks}"
            ),
            generation,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Isolation, TenantSpec};

    fn tenant(networks: &[&str], isolated: bool) -> Tenant {
        Tenant::new(
            "acme",
            TenantSpec {
                networks: networks.iter().map(|n| n.to_string()).collect(),
                isolation: Some(Isolation { network: isolated, pod_security: None }),
                ..Default::default()
            },
        )
    }

    #[test]
    fn an_absent_policy_api_is_said_plainly_and_does_not_hide_other_gaps() {
        let unserved = vec![
            "MultiNetworkPolicy acme/scs-network-office".to_string(),
            "NetworkAttachmentDefinition acme/office".to_string(),
        ];
        assert_eq!(required(&unserved), vec!["NetworkAttachmentDefinition acme/office".to_string()]);
        let c = condition_of(&tenant(&["office"], true), &unserved, Some(3)).unwrap();
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
            (TYPE, "False", "MultiNetworkPolicyNotServed")
        );
        assert!(c.message.contains("office") && c.message.contains("NOT isolated"), "{}", c.message);
        let c = condition_of(&tenant(&["office"], true), &[], Some(3)).unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "Applied"));
    }

    #[test]
    fn nothing_to_say_without_networks_or_with_isolation_off() {
        assert!(condition_of(&tenant(&[], true), &[], None).is_none());
        assert!(condition_of(&tenant(&["office"], false), &[], None).is_none());
    }
}
