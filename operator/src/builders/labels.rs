//! Labels and annotations that mark what the operator owns.

use std::collections::BTreeMap;

/// `app.kubernetes.io/managed-by` on everything we create.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Our value of [`MANAGED_BY`]; also the server-side apply field manager.
pub const OPERATOR: &str = "scs-operator";
/// The owning tenant (namespaces and everything inside them we create).
pub const TENANT: &str = "scs.dev/tenant";
/// The RuntimeClass pods of a tenant namespace must use; read by the admission policy.
pub const RUNTIME_CLASS: &str = "scs.dev/runtime-class";
/// The SdnNetwork an attachment definition comes from.
pub const NETWORK: &str = "scs.dev/network";
/// The SecureWorkload a child belongs to.
pub const WORKLOAD: &str = "scs.dev/workload";

// Namespace annotations the admission policies read (tenant roles cannot edit Namespaces).
/// DNS domains the namespace's Ingress hosts must fall under, comma-separated.
pub const INGRESS_DOMAINS: &str = "scs.dev/ingress-domains";
/// StorageClasses the namespace's claims may use (the configured tiers'), comma-separated.
pub const STORAGE_CLASSES: &str = "scs.dev/storage-classes";
/// Highest priority a pod of the namespace may have.
pub const MAX_PRIORITY: &str = "scs.dev/max-priority";
/// Image prefixes the namespace's pods may pull from, comma-separated; empty: any registry.
pub const IMAGE_REGISTRIES: &str = "scs.dev/image-registries";
/// Public image prefixes: allowed everywhere, any pull policy; comma-separated.
pub const IMAGE_PUBLIC_PREFIXES: &str = "scs.dev/image-public-prefixes";
/// The accelerators the tenant has quota for, with the RuntimeClass pods requesting them must use:
/// `<extended resource>=<class>`, comma-separated.
pub const GPU_RUNTIME_CLASSES: &str = "scs.dev/gpu-runtime-classes";
/// How images must be pinned: `None`, `Tag` or `Digest`.
pub const IMAGE_PINNING: &str = "scs.dev/image-pinning";

/// Ownership labels for an object of `tenant`.
pub fn tenant_owned(tenant: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_BY.to_string(), OPERATOR.to_string()), (TENANT.to_string(), tenant.to_string())])
}

/// Ownership labels for cluster-wide objects not tied to one tenant.
pub fn operator_owned() -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_BY.to_string(), OPERATOR.to_string())])
}
