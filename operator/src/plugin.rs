//! The day-2 subcommands (`status`, `history`, `rollback`), also offered as a kubectl plugin when
//! the binary is installed as `kubectl-scs`: `kubectl scs status tenant/acme`. Formatting is pure
//! (tested here); the API calls are thin.

use std::path::Path;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::api::{SecureWorkload, Tenant};
use crate::controller::history::ROLLBACK_ANNOTATION;

/// Name of the binary as a kubectl plugin (kubectl finds `kubectl-scs` on `PATH`).
pub const PLUGIN_BINARY: &str = "kubectl-scs";

/// The command name to show when the binary was started as `argv0`: `kubectl scs` for the plugin.
pub fn command_name(argv0: &std::ffi::OsStr) -> &'static str {
    let file = Path::new(argv0).file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    if file == PLUGIN_BINARY { "kubectl scs" } else { "scs-operator" }
}

/// What a `KIND/NAME` argument names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Tenant(String),
    Workload(String),
}

/// Parses `tenant/acme`, `tn/acme`, `swl/web`, `secureworkload/web` (singular, plural, short
/// name or `.scs.dev`-qualified, like kubectl).
pub fn parse_target(text: &str) -> Result<Target, String> {
    let (kind, name) = text.split_once('/').ok_or_else(|| format!("{text:?}: expected KIND/NAME, e.g. swl/web"))?;
    if name.is_empty() || name.contains('/') {
        return Err(format!("{text:?}: expected KIND/NAME, e.g. swl/web"));
    }
    match kind.trim_end_matches(".scs.dev").to_ascii_lowercase().as_str() {
        "tenant" | "tenants" | "tn" => Ok(Target::Tenant(name.to_string())),
        "secureworkload" | "secureworkloads" | "swl" => Ok(Target::Workload(name.to_string())),
        other => Err(format!("{other:?}: expected tenant (tn) or secureworkload (swl)")),
    }
}

/// Rows as columns padded to their widest cell (the last column unpadded), like kubectl's tables.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let last = row.len().saturating_sub(1);
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| if i == last { cell.clone() } else { format!("{cell:<width$}", width = widths[i]) })
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

fn conditions_table(conditions: &[Condition]) -> String {
    if conditions.is_empty() {
        return "Conditions: none yet\n".to_string();
    }
    let mut rows = vec![vec!["TYPE".into(), "STATUS".into(), "REASON".into(), "MESSAGE".into()]];
    rows.extend(
        conditions.iter().map(|c| vec![c.type_.clone(), c.status.clone(), c.reason.clone(), c.message.clone()]),
    );
    format!("Conditions:\n{}", indent(&table(&rows)))
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

fn ready(conditions: &[Condition]) -> &str {
    conditions.iter().find(|c| c.type_ == "Ready").map_or("Unknown", |c| c.status.as_str())
}

/// `kubectl scs status tenant/NAME`.
pub fn format_tenant(tenant: &Tenant) -> String {
    let status = tenant.status.clone().unwrap_or_default();
    let mut out = format!("Tenant: {}\nReady:  {}\n", tenant.name_any(), ready(&status.conditions));
    if !status.namespaces.is_empty() {
        let mut rows = vec![vec!["NAMESPACE".into(), "STATE".into(), "MESSAGE".into()]];
        rows.extend(
            status
                .namespaces
                .iter()
                .map(|n| vec![n.name.clone(), n.state.clone(), n.message.clone().unwrap_or_default()]),
        );
        out.push_str(&format!("Namespaces:\n{}", indent(&table(&rows))));
    }
    if let Some(quota) = &status.quota {
        let mut rows = vec![vec!["RESOURCE".into(), "USED".into(), "HARD".into()]];
        for (resource, hard) in &quota.hard {
            let used = quota.used.get(resource).map_or("0".to_string(), |q| q.0.clone());
            rows.push(vec![resource.clone(), used, hard.0.clone()]);
        }
        out.push_str(&format!("Quota (all namespaces):\n{}", indent(&table(&rows))));
    }
    out.push_str(&conditions_table(&status.conditions));
    out
}

/// `kubectl scs status swl/NAME`.
pub fn format_workload(workload: &SecureWorkload) -> String {
    let status = workload.status.clone().unwrap_or_default();
    let dash = || "-".to_string();
    let mut rows = vec![
        vec!["SecureWorkload:".into(), format!("{}/{}", workload.namespace().unwrap_or_default(), workload.name_any())],
        vec!["Kind:".into(), workload.spec.kind.as_str().into()],
        vec!["Phase:".into(), status.phase.map_or_else(dash, |p| format!("{p:?}"))],
        vec!["Ready:".into(), status.ready.clone().unwrap_or_else(dash)],
        vec![
            "Replicas:".into(),
            match (workload.spec.autoscaling.as_ref(), workload.spec.replicas) {
                (Some(a), _) => format!("autoscaled {}..{}", a.min_replicas.unwrap_or(1), a.max_replicas),
                (None, Some(n)) => n.to_string(),
                (None, None) => dash(),
            },
        ],
        vec!["Revision:".into(), status.revisions.last().map_or_else(dash, |r| r.revision.to_string())],
    ];
    if workload.spec.suspended == Some(true) {
        rows.push(vec!["Suspended:".into(), "true".into()]);
    }
    format!("{}{}", table(&rows), conditions_table(&status.conditions))
}

/// `kubectl scs history swl/NAME`: the revisions, oldest first, the current one marked.
pub fn format_history(workload: &SecureWorkload) -> String {
    let revisions = workload.status.as_ref().map(|s| s.revisions.clone()).unwrap_or_default();
    if revisions.is_empty() {
        return format!("{}: no revisions recorded yet\n", workload.name_any());
    }
    let last = revisions.len() - 1;
    let mut rows = vec![vec!["REVISION".into(), "CREATED".into(), "NAME".into(), "CHANGE".into()]];
    for (i, revision) in revisions.iter().enumerate() {
        let number = if i == last { format!("{} (current)", revision.revision) } else { revision.revision.to_string() };
        let created = revision.created_at.as_ref().map_or("-".to_string(), |t| t.0.to_string());
        rows.push(vec![number, created, revision.name.clone(), revision.summary.clone()]);
    }
    table(&rows)
}

/// The revision a rollback without `--to-revision` goes to: the one before the current.
pub fn previous_revision(workload: &SecureWorkload) -> Result<i64, String> {
    let revisions = workload.status.as_ref().map(|s| s.revisions.as_slice()).unwrap_or_default();
    match revisions {
        [.., previous, _] => Ok(previous.revision),
        _ => Err(format!("{}: no earlier revision to roll back to", workload.name_any())),
    }
}

/// The patch asking the operator to roll back to `revision`.
pub fn rollback_patch(revision: i64) -> serde_json::Value {
    json!({"metadata": {"annotations": {ROLLBACK_ANNOTATION: revision.to_string()}}})
}

/// The namespace to use: the flag, else the kubeconfig context's.
fn namespace_of(client: &kube::Client, namespace: Option<String>) -> String {
    namespace.unwrap_or_else(|| client.default_namespace().to_string())
}

/// `status KIND/NAME`.
pub async fn status(client: kube::Client, target: &Target, namespace: Option<String>) -> Result<String, kube::Error> {
    Ok(match target {
        Target::Tenant(name) => format_tenant(&Api::<Tenant>::all(client).get(name).await?),
        Target::Workload(name) => {
            let namespace = namespace_of(&client, namespace);
            format_workload(&Api::<SecureWorkload>::namespaced(client, &namespace).get(name).await?)
        }
    })
}

/// `history swl/NAME`.
pub async fn history(client: kube::Client, name: &str, namespace: Option<String>) -> Result<String, kube::Error> {
    let namespace = namespace_of(&client, namespace);
    Ok(format_history(&Api::<SecureWorkload>::namespaced(client, &namespace).get(name).await?))
}

/// `rollback swl/NAME [--to-revision N]`: sets the annotation the operator acts on.
pub async fn rollback(
    client: kube::Client,
    name: &str,
    namespace: Option<String>,
    to: Option<i64>,
) -> Result<String, Box<dyn std::error::Error>> {
    let namespace = namespace_of(&client, namespace);
    let api = Api::<SecureWorkload>::namespaced(client, &namespace);
    let revision = match to {
        Some(n) => n,
        None => previous_revision(&api.get(name).await?)?,
    };
    api.patch(name, &PatchParams::default(), &Patch::Merge(&rollback_patch(revision))).await?;
    Ok(format!(
        "secureworkload.scs.dev/{name} rollback to revision {revision} requested (see `status` for the RolledBack condition)\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn plugin_name_comes_from_the_file_name() {
        assert_eq!(command_name("/usr/local/bin/kubectl-scs".as_ref()), "kubectl scs");
        assert_eq!(command_name("kubectl-scs.exe".as_ref()), "kubectl scs");
        assert_eq!(command_name("/usr/bin/scs-operator".as_ref()), "scs-operator");
        assert_eq!(command_name("kubectl-scsx".as_ref()), "scs-operator");
    }

    #[test]
    fn targets_are_named_like_kubectl_does() {
        assert_eq!(parse_target("tenant/acme"), Ok(Target::Tenant("acme".into())));
        assert_eq!(parse_target("tn/acme"), Ok(Target::Tenant("acme".into())));
        assert_eq!(parse_target("swl/web"), Ok(Target::Workload("web".into())));
        assert_eq!(parse_target("secureworkloads.scs.dev/web"), Ok(Target::Workload("web".into())));
        assert!(parse_target("web").is_err());
        assert!(parse_target("deploy/web").unwrap_err().contains("tenant (tn) or secureworkload (swl)"));
        assert!(parse_target("swl/").is_err());
    }

    #[test]
    fn tables_align_columns() {
        let rows = vec![vec!["A".into(), "LONGER".into(), "x".into()], vec!["abc".into(), "b".into(), "".into()]];
        assert_eq!(table(&rows), "A     LONGER   x\nabc   b\n");
    }

    fn workload(status: Value) -> SecureWorkload {
        serde_json::from_value(json!({
            "apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload",
            "metadata": {"name": "web", "namespace": "acme-prod"},
            "spec": {"kind": "Deployment", "replicas": 3, "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn workload_status_and_history_read_well() {
        let w = workload(json!({
            "phase": "Running", "ready": "3/3",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Running", "message": "3/3 ready", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "revisions": [
                {"revision": 1, "name": "web-aaaa", "createdAt": "2026-01-01T00:00:00Z", "summary": "created"},
                {"revision": 2, "name": "web-bbbb", "createdAt": "2026-01-02T00:00:00Z", "summary": "image app: 1 → 2"},
            ],
        }));
        let status = format_workload(&w);
        assert!(
            status.starts_with(
                "SecureWorkload:   acme-prod/web\nKind:             Deployment\nPhase:            Running\n"
            ),
            "{status}"
        );
        assert!(status.contains("Replicas:         3\nRevision:         2\n"), "{status}");
        assert!(
            status.contains(
                "Conditions:\n  TYPE    STATUS   REASON    MESSAGE\n  Ready   True     Running   3/3 ready\n"
            ),
            "{status}"
        );
        let history = format_history(&w);
        assert_eq!(
            history,
            "REVISION      CREATED                NAME       CHANGE\n\
             1             2026-01-01T00:00:00Z   web-aaaa   created\n\
             2 (current)   2026-01-02T00:00:00Z   web-bbbb   image app: 1 → 2\n"
        );
        assert_eq!(previous_revision(&w), Ok(1));
        assert!(previous_revision(&workload(json!({}))).is_err());
        assert_eq!(format_history(&workload(json!({}))), "web: no revisions recorded yet\n");
        assert_eq!(rollback_patch(4)["metadata"]["annotations"]["scs.dev/rollback-to"], "4");
    }

    #[test]
    fn tenant_status_shows_quota_used_and_hard() {
        let tenant: Tenant = serde_json::from_value(json!({
            "apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "acme"},
            "spec": {},
            "status": {
                "namespaces": [{"name": "acme", "state": "Ready"}],
                "quota": {"hard": {"pods": "20", "requests.cpu": "8"}, "used": {"requests.cpu": "1500m"}},
                "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            },
        }))
        .unwrap();
        let out = format_tenant(&tenant);
        assert!(out.starts_with("Tenant: acme\nReady:  True\n"), "{out}");
        assert!(out.contains("  NAMESPACE   STATE   MESSAGE\n  acme        Ready\n"), "{out}");
        assert!(
            out.contains("  RESOURCE       USED    HARD\n  pods           0       20\n  requests.cpu   1500m   8\n"),
            "{out}"
        );
    }
}
