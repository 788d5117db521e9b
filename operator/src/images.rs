//! Image rules of a tenant: which registries its pods may pull from, how images must be pinned,
//! and which images must be pulled `Always`.
//!
//! The same rules run in the API server (the `scs-tenant-images` admission policy reads them from
//! namespace annotations the operator writes) and here, so `render` and SecureWorkload status name
//! the offending field before any pod is refused. Images are matched as written, the way the
//! policy sees them: `busybox` and `docker.io/library/busybox` are different strings.

use std::sync::LazyLock;

use regex::Regex;

use crate::api::{ImagePinning, Tenant};
use crate::config::OperatorConfig;

/// What an allowed-registry or public prefix must look like, for errors.
pub const PREFIX_MESSAGE: &str = "must be a registry host (with a dot or a port, or localhost), optionally a path, and end in /, e.g. registry.example.com/acme/";

static PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(localhost(:[0-9]+)?|[a-z0-9-]+(\.[a-z0-9-]+)+(:[0-9]+)?|[a-z0-9-]+:[0-9]+)(/[a-z0-9._-]+)*/$")
        .expect("valid regex")
});
static DIGEST: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"@sha256:[0-9a-f]{64}$").expect("valid regex"));
// A tag is the text after the last `:` when no `/` follows it (else that `:` is a registry port).
static TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r":[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$").expect("valid regex"));

/// Whether `prefix` names a registry (host with a dot or port, or localhost), ends in `/`, and so
/// cannot be extended into another host (`registry.example.com` would admit
/// `registry.example.com.evil.io/x`).
pub fn is_valid_prefix(prefix: &str) -> bool {
    prefix.len() <= 253 && PREFIX.is_match(prefix)
}

/// The image rules in force in a tenant's namespaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImagePolicy {
    /// Allowed prefixes; empty: any registry.
    pub registries: Vec<String>,
    /// Public prefixes: always allowed, any pull policy.
    pub public_prefixes: Vec<String>,
    pub pinning: ImagePinning,
}

/// Why an image breaks the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageViolation {
    Registry,
    Pinning,
    PullPolicy,
}

impl ImagePolicy {
    /// The tenant's rules: its own registries and pinning, else the operator's.
    pub fn of(tenant: &Tenant, config: &OperatorConfig) -> Self {
        let own = tenant.spec.images.as_ref();
        let registries = own.map(|i| i.registries.clone()).filter(|r| !r.is_empty());
        Self {
            registries: registries.unwrap_or_else(|| config.images.allowed_registries.clone()),
            public_prefixes: config.images.public_prefixes.clone(),
            pinning: own.and_then(|i| i.pinning).unwrap_or(config.images.pinning),
        }
    }

    /// Whether `image` is one of the platform's public images.
    pub fn is_public(&self, image: &str) -> bool {
        self.public_prefixes.iter().any(|p| image.starts_with(p.as_str()))
    }

    /// The pull policy the operator gives a container that sets none: `Always` unless public.
    pub fn default_pull_policy(&self, image: &str) -> Option<&'static str> {
        (!self.is_public(image)).then_some("Always")
    }

    /// What is wrong with pulling `image` with `pull_policy` (as the API server defaults it:
    /// `Always` for `:latest` or untagged images, else `IfNotPresent`), first problem only.
    pub fn check(&self, image: &str, pull_policy: Option<&str>) -> Option<(ImageViolation, String)> {
        let allowed = self.registries.is_empty()
            || self.is_public(image)
            || self.registries.iter().any(|p| image.starts_with(p.as_str()));
        if !allowed {
            let mut allowed: Vec<&str> = self.registries.iter().map(String::as_str).collect();
            allowed.extend(self.public_prefixes.iter().map(String::as_str));
            return Some((
                ImageViolation::Registry,
                format!("image {image:?} is not from an allowed registry ({})", allowed.join(", ")),
            ));
        }
        let digest = DIGEST.is_match(image);
        let tagged = TAG.is_match(image) && !image.ends_with(":latest");
        let pinned = match self.pinning {
            ImagePinning::None => true,
            ImagePinning::Tag => digest || tagged,
            ImagePinning::Digest => digest,
        };
        if !pinned {
            let wanted = match self.pinning {
                ImagePinning::Digest => "a digest (@sha256:...)",
                _ => "a tag other than latest, or a digest",
            };
            return Some((ImageViolation::Pinning, format!("image {image:?} must be pinned by {wanted}")));
        }
        let policy = pull_policy.unwrap_or(if digest || tagged { "IfNotPresent" } else { "Always" });
        if policy != "Always" && !self.is_public(image) {
            return Some((
                ImageViolation::PullPolicy,
                format!(
                    "image {image:?} is private: imagePullPolicy must be Always (is {policy}), so a pod without the credentials never starts from a copy another tenant's pod left on the node"
                ),
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{TenantImages, TenantSpec};

    const DIGEST_REF: &str =
        "registry.example.com/acme/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn policy(registries: &[&str], public: &[&str], pinning: ImagePinning) -> ImagePolicy {
        ImagePolicy {
            registries: registries.iter().map(|s| s.to_string()).collect(),
            public_prefixes: public.iter().map(|s| s.to_string()).collect(),
            pinning,
        }
    }

    #[test]
    fn prefixes_name_a_registry_and_end_in_a_slash() {
        for good in [
            "registry.example.com/",
            "registry.example.com/acme/",
            "localhost:5000/",
            "reg:5000/a/b/",
            "docker.io/library/",
        ] {
            assert!(is_valid_prefix(good), "{good}");
        }
        for bad in [
            "registry.example.com",
            "busybox/",
            "library/",
            "Registry.example.com/",
            "reg.io//",
            "",
            "reg.io/a b/",
            "a.io/x,b.io/",
        ] {
            assert!(!is_valid_prefix(bad), "{bad}");
        }
    }

    #[test]
    fn registries_are_matched_as_written() {
        let p = policy(&["registry.example.com/acme/"], &["docker.io/library/"], ImagePinning::Tag);
        assert_eq!(p.check("registry.example.com/acme/app:1.0", Some("Always")), None);
        assert_eq!(p.check("docker.io/library/busybox:1.36", Some("IfNotPresent")), None, "public images are allowed");
        for foreign in [
            "registry.example.com/other/app:1.0",
            "evil.io/acme/app:1.0",
            "busybox:1.36",
            "registry.example.com.evil.io/acme/x:1",
        ] {
            assert_eq!(p.check(foreign, Some("Always")).map(|v| v.0), Some(ImageViolation::Registry), "{foreign}");
        }
        let any = policy(&[], &[], ImagePinning::Tag);
        assert_eq!(any.check("anywhere.io/x:1", Some("Always")), None, "no registries listed: any registry");
    }

    #[test]
    fn pinning_refuses_latest_and_bare_names() {
        let p = policy(&[], &[], ImagePinning::Tag);
        for loose in ["reg.io/app", "reg.io/app:latest", "reg.io:5000/app", "app"] {
            assert_eq!(p.check(loose, Some("Always")).map(|v| v.0), Some(ImageViolation::Pinning), "{loose}");
        }
        assert_eq!(p.check("reg.io:5000/app:1.2.3", Some("Always")), None);
        assert_eq!(p.check(DIGEST_REF, Some("Always")), None);
        let strict = policy(&[], &[], ImagePinning::Digest);
        assert_eq!(strict.check("reg.io/app:1.0", Some("Always")).map(|v| v.0), Some(ImageViolation::Pinning));
        assert_eq!(strict.check(DIGEST_REF, Some("Always")), None);
        assert_eq!(policy(&[], &[], ImagePinning::None).check("app", None), None);
    }

    #[test]
    fn private_images_are_pulled_always() {
        let p = policy(&[], &["docker.io/library/"], ImagePinning::Tag);
        let (violation, message) = p.check("reg.io/acme/app:1.0", Some("IfNotPresent")).unwrap();
        assert_eq!(violation, ImageViolation::PullPolicy);
        assert!(message.contains("must be Always (is IfNotPresent)"), "{message}");
        assert_eq!(p.check("reg.io/acme/app:1.0", Some("Never")).map(|v| v.0), Some(ImageViolation::PullPolicy));
        assert_eq!(
            p.check("reg.io/acme/app:1.0", None).map(|v| v.0),
            Some(ImageViolation::PullPolicy),
            "a tagged image defaults to IfNotPresent"
        );
        assert_eq!(p.check("docker.io/library/busybox:1.36", Some("Never")), None);
        assert_eq!(p.default_pull_policy("reg.io/acme/app:1.0"), Some("Always"));
        assert_eq!(p.default_pull_policy("docker.io/library/busybox:1.36"), None);
    }

    #[test]
    fn a_tenants_own_rules_replace_the_platform_defaults() {
        let mut config = OperatorConfig::default();
        config.images.allowed_registries = vec!["registry.example.com/".into()];
        config.images.public_prefixes = vec!["docker.io/library/".into()];
        let plain = Tenant::new("acme", TenantSpec::default());
        assert_eq!(
            ImagePolicy::of(&plain, &config),
            policy(&["registry.example.com/"], &["docker.io/library/"], ImagePinning::Tag)
        );
        let own = Tenant::new(
            "acme",
            TenantSpec {
                images: Some(TenantImages {
                    registries: vec!["registry.example.com/acme/".into()],
                    pull_secrets: vec![],
                    pinning: Some(ImagePinning::Digest),
                }),
                ..Default::default()
            },
        );
        assert_eq!(
            ImagePolicy::of(&own, &config),
            policy(&["registry.example.com/acme/"], &["docker.io/library/"], ImagePinning::Digest)
        );
    }
}
