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
