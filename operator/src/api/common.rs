//! Schema fragments shared by the resources.

/// DNS-1123 label: names of namespaces, networks, volumes, ports.
pub const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// DNS-1123 subdomain: names of cluster objects such as RuntimeClasses.
pub const DNS_SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A Kubernetes label value (may be empty in Kubernetes, but we never want an empty one).
pub const LABEL_VALUE: &str = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$";

/// CEL rule for a `Quantity` field (int-or-string): a well-formed, non-negative quantity.
pub const QUANTITY_RULE: &str = "isQuantity(string(self)) && quantity(string(self)).sign() >= 0";
/// Message shown by the API server when [`QUANTITY_RULE`] fails.
pub const QUANTITY_MESSAGE: &str = "must be a non-negative Kubernetes quantity such as 500m, 4, 16Gi or 1.5T";
/// CEL rule for a `Quantity` that must be strictly positive (sizes).
pub const POSITIVE_QUANTITY_RULE: &str = "isQuantity(string(self)) && quantity(string(self)).sign() > 0";
/// Message shown by the API server when [`POSITIVE_QUANTITY_RULE`] fails.
pub const POSITIVE_QUANTITY_MESSAGE: &str = "must be a positive Kubernetes quantity such as 10Gi";
