//! `kubectl scs authz reset pg/NAME`: closes a PermissionGroup's circuit breaker by giving its
//! `scs.dev/authz-reset` annotation a new value (the current time); the authz-server honours each
//! value once.

use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use crate::api::{AUTHZ_RESET_ANNOTATION, PermissionGroup};

/// The group named by `pg/NAME`, `permissiongroup/NAME`, `permissiongroups/NAME` or `NAME`.
pub fn parse_target(target: &str) -> Result<String, String> {
    let name = match target.split_once('/') {
        Some(("pg" | "permissiongroup" | "permissiongroups", name)) => name,
        Some(_) => return Err(format!("{target}: a PermissionGroup is named pg/NAME")),
        None => target,
    };
    if name.is_empty() {
        return Err(format!("{target}: no name"));
    }
    Ok(name.to_string())
}

/// Sets the reset annotation of the group to `value`.
pub async fn reset(client: Client, target: &str, namespace: Option<String>, value: String) -> Result<String, String> {
    let name = parse_target(target)?;
    let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_string());
    let groups: Api<PermissionGroup> = Api::namespaced(client, &namespace);
    let patch = json!({"metadata": {"annotations": {AUTHZ_RESET_ANNOTATION: value}}});
    groups
        .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(|e| format!("PermissionGroup {namespace}/{name}: {e}"))?;
    Ok(format!("permissiongroup/{name} reset: the next authorize call asks its providers again\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_a_permission_group() {
        assert_eq!(parse_target("pg/orders").unwrap(), "orders");
        assert_eq!(parse_target("permissiongroup/orders").unwrap(), "orders");
        assert_eq!(parse_target("orders").unwrap(), "orders");
        assert!(parse_target("swl/web").is_err());
        assert!(parse_target("pg/").is_err());
    }
}
