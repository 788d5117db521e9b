//! The SdnNetwork reconciler: the network's own children (the Kube-OVN Subnet of a `kube-ovn`
//! network, owned by the network so that deleting it deletes the Subnet) and a status listing the
//! tenants and namespaces using the network. (Attachment definitions and MultiNetworkPolicies are
//! tenant children, written by the tenant reconciler.)

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use serde_json::json;

use super::conditions::{self, condition};
use super::context::{Context, RESYNC};
use super::error::Result;
use super::managed::Scope;
use super::{network_usage, sync};
use crate::api::{NetworkAttachmentStatus, NetworkType, SdnNetwork, SdnNetworkStatus, Tenant};
use crate::builders::kube_ovn_subnet::{kube_ovn_subnet, subnet_name};
use crate::builders::{Child, labels};
use crate::validate::rules;

/// How soon a network whose namespaces could not all be listed looks again.
const UNLISTED_RECHECK: std::time::Duration = std::time::Duration::from_secs(20);

/// Selector of the network's own children.
fn selector(network: &str) -> String {
    format!("{}={},{}={}", labels::MANAGED_BY, labels::OPERATOR, labels::NETWORK, network)
}

pub async fn reconcile(guarded: Arc<DeserializeGuard<SdnNetwork>>, ctx: Arc<Context>) -> Result<Action> {
    let Some(network) = super::readable(&guarded) else { return Ok(Action::await_change()) };
    ctx.children.wait_until_listed(super::children::LIST_WAIT).await;
    let name = network.name_any();
    let generation = network.metadata.generation;
    let catalog = ctx.catalog();
    let mut users: Vec<_> = catalog.tenants.iter().filter(|t| t.spec.networks.contains(&name)).collect();
    users.sort_by_key(|t| t.name_any());
    let tenants: Vec<String> = users.iter().map(|t| t.name_any()).collect();
    let mut namespaces: Vec<String> = users.iter().flat_map(|t| t.namespace_names()).collect();
    namespaces.sort();

    let problems = rules::check_network(&network.spec);
    // A broken spec leaves the Subnet as it is (as the tenant controller leaves attachments).
    let subnet = if problems.is_empty() { Some(sync_subnet(network, &catalog, &ctx).await?) } else { None };
    let ready = if problems.is_empty() {
        match subnet.iter().flatten().find(|c| c.status != "True") {
            Some(failing) => condition("Ready", false, &failing.reason, failing.message.clone(), generation),
            None => condition(
                "Ready",
                true,
                "Ready",
                format!("attachable in {} namespace(s) of {} tenant(s)", namespaces.len(), tenants.len()),
                generation,
            ),
        }
    } else {
        let message = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        condition("Ready", false, "InvalidSpec", message, generation)
    };
    let attachments = attachments(network, &users, &ctx).await;
    // A namespace just created has no inventory binding yet: look again soon rather than at resync.
    // So does a network whose Subnet kind is not served: Kube-OVN installed later triggers nothing.
    let unserved = subnet.as_ref().and_then(|c| c.as_ref()).is_some_and(|c| c.reason == "ApiNotServed");
    let recheck = if unserved || attachments.iter().any(|a| a.pods.is_none()) { UNLISTED_RECHECK } else { RESYNC };
    let previous = network.status.clone().unwrap_or_default();
    let mut next_conditions = vec![ready];
    next_conditions.extend(subnet.into_iter().flatten());
    let next = SdnNetworkStatus {
        observed_generation: generation,
        tenants,
        namespaces,
        attachments,
        conditions: conditions::merge(&previous.conditions, next_conditions),
    };
    let unchanged = previous.observed_generation == next.observed_generation
        && previous.tenants == next.tenants
        && previous.namespaces == next.namespaces
        && previous.attachments == next.attachments
        && conditions::same(&previous.conditions, &next.conditions);
    if !unchanged {
        let api: Api<SdnNetwork> = Api::all(ctx.client.clone());
        let patch = json!({"apiVersion": crate::api::API_VERSION, "kind": "SdnNetwork", "status": next});
        api.patch_status(&name, &PatchParams::apply(labels::OPERATOR).force(), &Patch::Apply(&patch)).await?;
    }
    Ok(Action::requeue(recheck))
}

/// How each namespace of the network's tenants uses it, from its pods' metadata (listed through the
/// operator's inventory binding there; a namespace it cannot list yet has no pod count).
async fn attachments(network: &SdnNetwork, users: &[&Tenant], ctx: &Context) -> Vec<NetworkAttachmentStatus> {
    let name = network.name_any();
    let mut attachments = Vec::new();
    for tenant in users {
        for namespace in tenant.namespace_names() {
            let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
            let (count, static_ips) = match pods.list_metadata(&ListParams::default()).await {
                Ok(list) => {
                    let metadata: Vec<_> = list.items.into_iter().map(|p| p.metadata).collect();
                    let (count, ips) = network_usage::usage(&name, network.spec.network_type, &namespace, &metadata);
                    (Some(count), ips)
                }
                Err(error) => {
                    tracing::debug!(network = %name, %namespace, %error, "cannot list pods for the network status");
                    (None, Vec::new())
                }
            };
            attachments.push(NetworkAttachmentStatus { tenant: tenant.name_any(), namespace, pods: count, static_ips });
        }
    }
    attachments.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    attachments
}

/// Brings the network's Subnet in line (and removes one a network that changed type left behind);
/// returns the `SubnetReady` condition for a `kube-ovn` network.
async fn sync_subnet(
    network: &SdnNetwork,
    catalog: &crate::catalog::Catalog,
    ctx: &Context,
) -> Result<Option<Condition>> {
    let name = network.name_any();
    let generation = network.metadata.generation;
    let desired: Vec<Child> = kube_ovn_subnet(network, catalog).iter().map(Child::from_resource).collect();
    let report = sync::sync_children(
        &ctx.client,
        &ctx.children,
        Scope::Network,
        None,
        &selector(&name),
        &desired,
        sync::OnConflict::SkipChild,
        |_, _| false,
    )
    .await?;
    if network.spec.network_type != NetworkType::KubeOvn {
        return Ok(None);
    }
    let subnet = subnet_name(&name);
    Ok(Some(if let Some(conflict) = report.conflicts.first() {
        condition("SubnetReady", false, "Conflict", format!("not taken over: {conflict}"), generation)
    } else if let Some(refused) = report.refused.first() {
        condition("SubnetReady", false, "ApplyFailed", refused.to_string(), generation)
    } else if !report.unserved.is_empty() {
        condition(
            "SubnetReady",
            false,
            "ApiNotServed",
            format!(
                "the cluster does not serve Kube-OVN Subnets (kubeovn.io/v1): is Kube-OVN installed? Subnet {subnet} is not created"
            ),
            generation,
        )
    } else {
        condition("SubnetReady", true, "Applied", format!("Kube-OVN Subnet {subnet} is in place"), generation)
    }))
}
