//! Copies of the cloud admin's image pull Secrets (Tenant `spec.images.pullSecrets`) for each
//! tenant namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};

use super::labels;
use crate::api::Tenant;

/// The only Secret type the operator copies (and the admission policy lets it write).
pub const PULL_SECRET_TYPE: &str = "kubernetes.io/dockerconfigjson";

/// Why a listed source Secret cannot be copied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceProblem {
    Missing,
    WrongType(String),
}

/// Checks a source Secret: it must be an image pull Secret.
pub fn check_source(source: Option<&Secret>) -> Result<&Secret, SourceProblem> {
    let source = source.ok_or(SourceProblem::Missing)?;
    match source.type_.as_deref() {
        Some(PULL_SECRET_TYPE) => Ok(source),
        other => Err(SourceProblem::WrongType(other.unwrap_or("Opaque").to_string())),
    }
}

/// The copy of `source` in `namespace`: same name, type and data, the tenant's labels and owner.
pub fn copy(tenant: &Tenant, namespace: &str, source: &Secret) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(source.name_any()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels::tenant_owned(&tenant.name_any())),
            owner_references: tenant.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some(PULL_SECRET_TYPE.to_string()),
        data: source.data.clone(),
        immutable: None,
        string_data: None,
    }
}

/// A digest of what a copy carries (type, data, labels, owner), hex: when it changes, write again.
pub fn fingerprint(secret: &Secret) -> String {
    let content = (
        &secret.type_,
        secret.data.as_ref().map(|d| d.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect::<BTreeMap<_, _>>()),
        &secret.metadata.labels,
        secret.metadata.owner_references.as_ref().map(|o| o.iter().map(|r| r.uid.clone()).collect::<Vec<_>>()),
    );
    let bytes = serde_json::to_vec(&content).expect("plain data serializes");
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    digest.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;

    use super::*;
    use crate::api::TenantSpec;

    fn source(type_: &str, auth: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("acme-registry".into()),
                namespace: Some("scs-system".into()),
                ..Default::default()
            },
            type_: Some(type_.into()),
            data: Some(BTreeMap::from([(".dockerconfigjson".to_string(), ByteString(auth.as_bytes().to_vec()))])),
            ..Default::default()
        }
    }

    #[test]
    fn a_copy_carries_the_data_and_the_tenants_ownership() {
        let mut tenant = Tenant::new("acme", TenantSpec::default());
        tenant.metadata.uid = Some("u1".into());
        let copy = copy(&tenant, "acme-prod", &source(PULL_SECRET_TYPE, "{}"));
        assert_eq!(copy.metadata.namespace.as_deref(), Some("acme-prod"));
        assert_eq!(copy.metadata.name.as_deref(), Some("acme-registry"));
        assert_eq!(copy.metadata.labels.as_ref().unwrap()[labels::TENANT], "acme");
        assert_eq!(copy.metadata.owner_references.as_ref().unwrap()[0].uid, "u1");
        assert_eq!(copy.type_.as_deref(), Some(PULL_SECRET_TYPE));
        assert_eq!(copy.data, source(PULL_SECRET_TYPE, "{}").data);
    }

    #[test]
    fn the_fingerprint_follows_the_data() {
        let tenant = Tenant::new("acme", TenantSpec::default());
        let one = fingerprint(&copy(&tenant, "a", &source(PULL_SECRET_TYPE, "{\"auths\":{}}")));
        assert_eq!(one, fingerprint(&copy(&tenant, "a", &source(PULL_SECRET_TYPE, "{\"auths\":{}}"))));
        assert_ne!(one, fingerprint(&copy(&tenant, "a", &source(PULL_SECRET_TYPE, "{\"auths\":{\"r\":{}}}"))));
        assert_eq!(one.len(), 32);
    }

    #[test]
    fn only_image_pull_secrets_are_copied() {
        assert_eq!(check_source(None), Err(SourceProblem::Missing));
        assert_eq!(check_source(Some(&source("Opaque", "x"))), Err(SourceProblem::WrongType("Opaque".into())));
        assert!(check_source(Some(&source(PULL_SECRET_TYPE, "x"))).is_ok());
    }
}
