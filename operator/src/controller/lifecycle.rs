//! Tenant expiry in the tenant controller: the decision of [`crate::expiry`] written into the
//! Tenant's status (the `lifecycle` field and the `Expired` condition), announced by an Event when
//! the state changes, and exported as a metric.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::conditions;
use super::context::Context;
use super::metrics::metrics;
use crate::api::{Tenant, TenantLifecycle, TenantStatus};
use crate::expiry;

/// Puts the tenant's lifecycle at `now` into `status` (replacing what `previous` said).
pub fn record(tenant: &Tenant, status: &mut TenantStatus, previous: &TenantStatus, now: Timestamp) {
    let lifecycle = expiry::decide(tenant, now);
    let mut next: Vec<Condition> = status.conditions.iter().filter(|c| c.type_ != expiry::CONDITION).cloned().collect();
    if let Some(lifecycle) = &lifecycle {
        next.push(expiry::condition(lifecycle, tenant.metadata.generation));
    }
    status.conditions = conditions::merge(&previous.conditions, next);
    metrics().tenant_days_left(&tenant.name_any(), lifecycle.as_ref().map(|l| l.days_left));
    status.lifecycle = lifecycle;
}

/// An Event when the lifecycle state changed from `before` to `after`.
pub async fn announce(
    tenant: &Tenant,
    ctx: &Context,
    before: Option<&TenantLifecycle>,
    after: Option<&TenantLifecycle>,
) {
    if let Some((warning, reason, message)) = expiry::transition(&tenant.name_any(), before, after) {
        ctx.event(tenant, warning, reason, message).await;
    }
}

/// Resumes a DaemonSet paused while its tenant was suspended: the pause selector is removed by a
/// merge patch, since an apply that merely omits it would leave it in place (the operator writes
/// only when the live object lacks something it wants).
pub async fn resume_daemonset(client: &kube::Client, namespace: &str, name: &str) -> super::error::Result<()> {
    let api: kube::Api<k8s_openapi::api::apps::v1::DaemonSet> = kube::Api::namespaced(client.clone(), namespace);
    let patch =
        serde_json::json!({"spec": {"template": {"spec": {"nodeSelector": {expiry::PAUSED_NODE_LABEL: null}}}}});
    let params =
        kube::api::PatchParams { field_manager: Some(crate::builders::labels::OPERATOR.into()), ..Default::default() };
    api.patch(name, &params, &kube::api::Patch::Merge(&patch)).await?;
    tracing::info!(daemonset = %format!("{namespace}/{name}"), "resumed after its tenant's renewal");
    Ok(())
}
