//! Schema fragments shared by the resources.

/// DNS-1123 label: names of namespaces, networks, volumes, ports.
pub const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// DNS-1123 subdomain: names of cluster objects such as RuntimeClasses.
pub const DNS_SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A Kubernetes label value (may be empty in Kubernetes, but we never want an empty one).
pub const LABEL_VALUE: &str = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$";

/// CEL rule on the name of a cluster-scoped object whose name becomes a namespace name or a label
/// value (Tenant, SdnNetwork): a DNS-1123 label. The API server itself only asks for a subdomain.
pub const CLUSTER_NAME_RULE: &str =
    "size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')";
/// The message of [`CLUSTER_NAME_RULE`], as `render` words it (a root rule cannot name a metadata
/// field path, so the message does).
pub const CLUSTER_NAME_MESSAGE: &str =
    "metadata.name: must be a DNS-1123 label of at most 63 characters (lowercase letters, digits, '-')";

/// Longest quantity string accepted. The API server's CEL cost estimator needs a bound on every
/// string a rule reads; without one the quantity rules exceed the per-rule budget and the CRD is
/// rejected.
pub const QUANTITY_MAX_LENGTH: u32 = 64;

/// CEL rule for a `Quantity` field (int-or-string): a well-formed, non-negative quantity.
/// Kubernetes declares `sign` as a global function, not a member; `compareTo` is a member on every
/// server since 1.29, so the rules use it. Beyond `isQuantity`, the value must start with a digit
/// (the API server's parser takes a bare suffix such as `Gi`, or `.`, for zero) and stay below
/// 2^63 − 1 units (where the server caps binary-suffixed values, and beyond which it keeps decimal
/// ones the operator cannot represent): exactly what `quantity::parse` accepts, so a quota the
/// API server admits is always one the operator can split and sum.
pub const QUANTITY_RULE: &str = concat!(
    "isQuantity(string(self)) && string(self).matches('^[+-]?[.]?[0-9]') && ",
    "quantity(string(self)).compareTo(quantity('0')) >= 0 && ",
    "quantity(string(self)).compareTo(quantity('9223372036854775807')) < 0"
);
/// Message shown by the API server when [`QUANTITY_RULE`] fails.
pub const QUANTITY_MESSAGE: &str =
    "must be a non-negative Kubernetes quantity such as 500m, 4, 16Gi or 1.5T, below 9223372036854775807";
/// CEL rule for a `Quantity` that must be strictly positive (sizes); bounded like [`QUANTITY_RULE`].
pub const POSITIVE_QUANTITY_RULE: &str = concat!(
    "isQuantity(string(self)) && string(self).matches('^[+-]?[.]?[0-9]') && ",
    "quantity(string(self)).compareTo(quantity('0')) > 0 && ",
    "quantity(string(self)).compareTo(quantity('9223372036854775807')) < 0"
);
/// Message shown by the API server when [`POSITIVE_QUANTITY_RULE`] fails.
pub const POSITIVE_QUANTITY_MESSAGE: &str =
    "must be a positive Kubernetes quantity such as 10Gi, below 9223372036854775807";

/// Schema of a map from names to non-negative quantities (e.g. storage per tier): every value is
/// bounded and checked on its own, so an error names the key and the rule stays within budget.
pub fn quantity_map_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "additionalProperties": {
            "x-kubernetes-int-or-string": true,
            "maxLength": QUANTITY_MAX_LENGTH,
            "x-kubernetes-validations": [{"rule": QUANTITY_RULE, "message": QUANTITY_MESSAGE}],
        },
    })
}
