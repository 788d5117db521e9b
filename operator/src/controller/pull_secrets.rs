//! Image pull Secrets in tenant namespaces (Tenant `spec.images.pullSecrets`): copies of the cloud
//! admin's Secrets in the operator's namespace, and the namespaces' `default` ServiceAccounts
//! listing them.
//!
//! The operator never reads or lists Secrets outside its own namespace: what it wrote is recorded
//! in Tenant status (name, uid, fingerprint), a copy is written again only when its fingerprint
//! changes, and deleted by name on the condition that its uid is still the one written. Copies are
//! applied without force, so a Secret of the same name that someone else manages is reported, not
//! overwritten.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;

use super::conditions::condition;
use super::context::Context;
use super::error::Result;
use super::sync::refusal;
use crate::api::{PullSecretCopy, Tenant};
use crate::builders::labels::OPERATOR;
use crate::builders::pull_secret::{self, SourceProblem};

/// Cluster-wide grants this module needs (the ClusterRole must hold exactly these for it).
pub const CLUSTER_GRANTS: [(&str, &str, &[&str]); 2] =
    [("", "secrets", &["create", "patch", "delete"]), ("", "serviceaccounts", &["get", "patch"])];

/// What a pass did: the copies now in place, the `ImagesReady` condition, and whether a default
/// ServiceAccount was not there yet (the namespace is new: look again soon).
pub struct Outcome {
    pub copies: Vec<PullSecretCopy>,
    pub condition: Condition,
    pub waiting: bool,
}

/// Brings the copies and the default ServiceAccounts of `namespaces` in line with the tenant's
/// list. A listed Secret that is missing or of the wrong type is reported and its existing copies
/// are kept, so running pods lose nothing.
pub async fn sync(
    tenant: &Tenant,
    ctx: &Context,
    namespaces: &[String],
    recorded: &[PullSecretCopy],
) -> Result<Outcome> {
    let generation = tenant.metadata.generation;
    let listed: Vec<String> = tenant.spec.images.iter().flat_map(|i| i.pull_secrets.clone()).collect();
    let mut problems = Vec::new();
    let mut sources = Vec::new();
    let source_api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.operator_namespace);
    for (index, name) in listed.iter().enumerate() {
        let fetched = source_api.get_opt(name).await?;
        match pull_secret::check_source(fetched.as_ref()) {
            Ok(source) => sources.push(source.clone()),
            Err(problem) => problems.push(source_message(index, name, &ctx.operator_namespace, &problem)),
        }
    }

    let mut copies: Vec<PullSecretCopy> = Vec::new();
    for namespace in namespaces {
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
        for source in &sources {
            let desired = pull_secret::copy(tenant, namespace, source);
            let fingerprint = pull_secret::fingerprint(&desired);
            let name = source.name_any();
            let same = |c: &&PullSecretCopy| c.namespace == *namespace && c.name == name;
            if let Some(done) = recorded.iter().find(same).filter(|c| c.fingerprint == fingerprint) {
                copies.push(done.clone());
                continue;
            }
            // No force: fields someone else manages under this name are a conflict, not ours to take.
            match api.patch(&name, &PatchParams::apply(OPERATOR), &Patch::Apply(&desired)).await {
                Ok(written) => copies.push(PullSecretCopy {
                    namespace: namespace.clone(),
                    name,
                    uid: written.uid().unwrap_or_default(),
                    fingerprint,
                }),
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    problems.push(format!(
                        "Secret {namespace}/{name} exists and is managed by someone else: not overwritten ({})",
                        status.message
                    ));
                    copies.extend(recorded.iter().find(same).cloned());
                }
                Err(error) => match refusal(&error) {
                    Some((_, message)) => {
                        problems.push(format!("Secret {namespace}/{name} refused by the API server: {message}"));
                        copies.extend(recorded.iter().find(same).cloned());
                    }
                    None => return Err(error.into()),
                },
            }
        }
    }

    // Copies of names no longer listed, or in namespaces the tenant no longer has, go; a listed
    // Secret that is missing keeps its copies (see above).
    for old in recorded {
        let wanted = namespaces.contains(&old.namespace) && listed.contains(&old.name);
        if wanted {
            if !copies.iter().any(|c| c.namespace == old.namespace && c.name == old.name) {
                copies.push(old.clone());
            }
            continue;
        }
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &old.namespace);
        let params = DeleteParams {
            preconditions: Some(Preconditions { uid: Some(old.uid.clone()), resource_version: None }),
            ..Default::default()
        };
        match api.delete(&old.name, &params).await {
            Ok(_) => {}
            // Gone already, or replaced by someone else's Secret (uid precondition failed): not ours.
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(error) => return Err(error.into()),
        }
    }
    copies.sort();

    let mut waiting = false;
    for namespace in namespaces {
        let ours: BTreeSet<&str> =
            copies.iter().filter(|c| &c.namespace == namespace).map(|c| c.name.as_str()).collect();
        let dropped: BTreeSet<&str> = recorded
            .iter()
            .filter(|c| &c.namespace == namespace && !ours.contains(c.name.as_str()))
            .map(|c| c.name.as_str())
            .collect();
        waiting |= !update_default_service_account(ctx, namespace, &ours, &dropped).await?;
    }

    let condition = if problems.is_empty() {
        let message = if listed.is_empty() {
            "no image pull Secrets listed".to_string()
        } else {
            format!("{} image pull Secret(s) in each of {} namespace(s)", listed.len(), namespaces.len())
        };
        condition("ImagesReady", true, "PullSecretsReady", message, generation)
    } else {
        condition("ImagesReady", false, "PullSecretsFailed", problems.join("; "), generation)
    };
    Ok(Outcome { copies, condition, waiting })
}

fn source_message(index: usize, name: &str, namespace: &str, problem: &SourceProblem) -> String {
    match problem {
        SourceProblem::Missing => {
            format!("spec.images.pullSecrets[{index}]: Secret {namespace}/{name} not found (existing copies are kept)")
        }
        SourceProblem::WrongType(type_) => format!(
            "spec.images.pullSecrets[{index}]: Secret {namespace}/{name} is of type {type_}, not {}",
            pull_secret::PULL_SECRET_TYPE
        ),
    }
}

/// The names `default`'s `imagePullSecrets` should hold: what it has, without `dropped`, plus
/// `ours`, in order. `None` when nothing changes.
pub fn pull_secret_list(current: &[String], ours: &BTreeSet<&str>, dropped: &BTreeSet<&str>) -> Option<Vec<String>> {
    let mut next: Vec<String> = current.iter().filter(|n| !dropped.contains(n.as_str())).cloned().collect();
    for name in ours {
        if !next.iter().any(|n| n == name) {
            next.push(name.to_string());
        }
    }
    (next != current).then_some(next)
}

/// Adds `ours` to (and removes `dropped` from) the namespace's `default` ServiceAccount's
/// `imagePullSecrets`, keeping what others listed. `false` when the ServiceAccount does not exist
/// yet (the namespace was just made).
async fn update_default_service_account(
    ctx: &Context,
    namespace: &str,
    ours: &BTreeSet<&str>,
    dropped: &BTreeSet<&str>,
) -> Result<bool> {
    if ours.is_empty() && dropped.is_empty() {
        return Ok(true);
    }
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(account) = api.get_opt("default").await? else { return Ok(false) };
    let current: Vec<String> = account.image_pull_secrets.iter().flatten().map(|r| r.name.clone()).collect();
    let Some(next) = pull_secret_list(&current, ours, dropped) else { return Ok(true) };
    let references: Vec<BTreeMap<&str, &str>> = next.iter().map(|n| BTreeMap::from([("name", n.as_str())])).collect();
    // The resourceVersion makes this a compare-and-swap: an edit in between is a 409, retried.
    let patch = json!({"metadata": {"resourceVersion": account.resource_version()}, "imagePullSecrets": references});
    api.patch("default", &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_accounts_list_keeps_what_others_added() {
        let current = vec!["theirs".to_string(), "old".to_string()];
        let ours = BTreeSet::from(["new"]);
        let dropped = BTreeSet::from(["old"]);
        assert_eq!(pull_secret_list(&current, &ours, &dropped), Some(vec!["theirs".into(), "new".into()]));
        let settled = vec!["theirs".to_string(), "new".to_string()];
        assert_eq!(pull_secret_list(&settled, &ours, &BTreeSet::new()), None, "nothing to write");
    }
}
