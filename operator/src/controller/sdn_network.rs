//! The SdnNetwork reconciler: status lists the tenants and namespaces using the network.
//! (Attachment definitions are tenant children, written by the tenant reconciler.)

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use serde_json::json;

use super::conditions::{self, condition};
use super::context::{Context, RESYNC};
use super::error::Result;
use crate::api::{SdnNetwork, SdnNetworkStatus};
use crate::builders::labels;
use crate::validate::rules;

pub async fn reconcile(guarded: Arc<DeserializeGuard<SdnNetwork>>, ctx: Arc<Context>) -> Result<Action> {
    let Some(network) = super::readable(&guarded) else { return Ok(Action::await_change()) };
    let name = network.name_any();
    let generation = network.metadata.generation;
    let mut users: Vec<_> = ctx.readable_tenants().into_iter().filter(|t| t.spec.networks.contains(&name)).collect();
    users.sort_by_key(|t| t.name_any());
    let tenants: Vec<String> = users.iter().map(|t| t.name_any()).collect();
    let mut namespaces: Vec<String> = users.iter().flat_map(|t| t.namespace_names()).collect();
    namespaces.sort();

    let problems = rules::check_network(&network.spec);
    let ready = if problems.is_empty() {
        condition(
            "Ready",
            true,
            "Ready",
            format!("attachable in {} namespace(s) of {} tenant(s)", namespaces.len(), tenants.len()),
            generation,
        )
    } else {
        let message = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        condition("Ready", false, "InvalidSpec", message, generation)
    };
    let previous = network.status.clone().unwrap_or_default();
    let next = SdnNetworkStatus {
        observed_generation: generation,
        tenants,
        namespaces,
        conditions: conditions::merge(&previous.conditions, vec![ready]),
    };
    let unchanged = previous.observed_generation == next.observed_generation
        && previous.tenants == next.tenants
        && previous.namespaces == next.namespaces
        && conditions::same(&previous.conditions, &next.conditions);
    if !unchanged {
        let api: Api<SdnNetwork> = Api::all(ctx.client.clone());
        let patch = json!({"apiVersion": crate::api::API_VERSION, "kind": "SdnNetwork", "status": next});
        api.patch_status(&name, &PatchParams::apply(labels::OPERATOR).force(), &Patch::Apply(&patch)).await?;
    }
    Ok(Action::requeue(RESYNC))
}
