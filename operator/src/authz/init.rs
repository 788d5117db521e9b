//! The `scs-authorize` init container: an immutable trigger that only calls the authorization
//! server and waits. All logic lives in the server, so upgrading it never changes tenants' pod
//! templates (and never rolls their pods).

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapProjection, Container, EnvVar, EnvVarSource, KeyToPath, ObjectFieldSelector, PodSpec,
    ProjectedVolumeSource, ResourceRequirements, SeccompProfile, SecurityContext, ServiceAccountTokenProjection,
    Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::INIT_CONTAINER;
use super::tls::{CA_CONFIGMAP, CA_FILE};
use crate::config::PreAuthorizationConfig;

/// Volume holding the projected ServiceAccount token the init container presents.
pub const TOKEN_VOLUME: &str = "scs-authz-token";
/// Where the token is mounted.
pub const TOKEN_DIR: &str = "/var/run/secrets/scs.dev/authz";
/// File name of the token in [`TOKEN_DIR`].
pub const TOKEN_FILE: &str = "token";

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), api_version: None }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The init container. Pod identity comes from the downward API for logs and messages only: the
/// server trusts the token's claims and the live pod, never these values.
pub fn container(config: &PreAuthorizationConfig) -> Container {
    let quantity = |q: &str| Quantity(q.into());
    Container {
        name: INIT_CONTAINER.into(),
        image: Some(config.image.clone()),
        args: Some(vec!["authorize".into()]),
        env: Some(vec![
            EnvVar { name: "SCS_AUTHZ_URL".into(), value: Some(config.server_url.clone()), ..Default::default() },
            EnvVar {
                name: "SCS_AUTHZ_TOKEN_FILE".into(),
                value: Some(format!("{TOKEN_DIR}/{TOKEN_FILE}")),
                ..Default::default()
            },
            // Only read for an https:// server URL (from the CA ConfigMap in the same volume).
            EnvVar {
                name: "SCS_AUTHZ_CA_FILE".into(),
                value: Some(format!("{TOKEN_DIR}/{CA_FILE}")),
                ..Default::default()
            },
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            field_env("POD_UID", "metadata.uid"),
            field_env("POD_IP", "status.podIP"),
        ]),
        volume_mounts: Some(vec![VolumeMount {
            name: TOKEN_VOLUME.into(),
            mount_path: TOKEN_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some([("cpu".to_string(), quantity("10m")), ("memory".to_string(), quantity("16Mi"))].into()),
            limits: Some([("cpu".to_string(), quantity("100m")), ("memory".to_string(), quantity("64Mi"))].into()),
            ..Default::default()
        }),
        // Restricted Pod Security, whatever the pod's own settings.
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
            run_as_non_root: Some(true),
            run_as_user: Some(65532),
            run_as_group: Some(65532),
            read_only_root_filesystem: Some(true),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The projected volume: the audience-bound token (good for the authz-server only) and, for an
/// https:// server, the CA that verifies it. The CA ConfigMap is required: the kubelet starts
/// the pod once the server has written it into the namespace.
pub fn token_volume(config: &PreAuthorizationConfig) -> Volume {
    let mut sources = vec![VolumeProjection {
        service_account_token: Some(ServiceAccountTokenProjection {
            audience: Some(config.token_audience.clone()),
            expiration_seconds: Some(config.token_expiration_seconds),
            path: TOKEN_FILE.into(),
        }),
        ..Default::default()
    }];
    if !config.tls_names().is_empty() {
        sources.push(VolumeProjection {
            config_map: Some(ConfigMapProjection {
                name: CA_CONFIGMAP.into(),
                items: Some(vec![KeyToPath { key: CA_FILE.into(), path: CA_FILE.into(), mode: None }]),
                optional: Some(false),
            }),
            ..Default::default()
        });
    }
    Volume {
        name: TOKEN_VOLUME.into(),
        projected: Some(ProjectedVolumeSource { sources: Some(sources), default_mode: None }),
        ..Default::default()
    }
}

/// Puts the init container first and its token volume into `pod`, replacing any the template
/// brought under the same names (a template cannot smuggle in its own "authorize" step).
pub fn inject(pod: &mut PodSpec, config: &PreAuthorizationConfig) {
    let inits = pod.init_containers.get_or_insert_with(Vec::new);
    inits.retain(|c| c.name != INIT_CONTAINER);
    inits.insert(0, container(config));
    let volumes = pod.volumes.get_or_insert_with(Vec::new);
    volumes.retain(|v| v.name != TOKEN_VOLUME);
    volumes.push(token_volume(config));
}

/// Whether `pod` carries the authorize init container first: only such pods get grants and the
/// finalizer.
pub fn carries_init_container(pod: &PodSpec) -> bool {
    pod.init_containers.as_ref().and_then(|c| c.first()).is_some_and(|c| c.name == INIT_CONTAINER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_container_goes_first_and_replaces_a_lookalike() {
        let config = PreAuthorizationConfig::default();
        let mut pod = PodSpec {
            init_containers: Some(vec![
                Container { name: "migrate".into(), ..Default::default() },
                Container {
                    name: INIT_CONTAINER.into(),
                    image: Some("evil.example.com/x:1".into()),
                    ..Default::default()
                },
            ]),
            volumes: Some(vec![Volume { name: TOKEN_VOLUME.into(), ..Default::default() }]),
            ..Default::default()
        };
        assert!(!carries_init_container(&pod));
        inject(&mut pod, &config);
        let inits = pod.init_containers.as_ref().unwrap();
        assert_eq!(inits.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), [INIT_CONTAINER, "migrate"]);
        assert_eq!(inits[0].image.as_deref(), Some("scs-operator:0.1.0"));
        assert!(carries_init_container(&pod));
        let volumes = pod.volumes.as_ref().unwrap();
        assert_eq!(volumes.len(), 1);
        let projection =
            volumes[0].projected.as_ref().unwrap().sources.as_ref().unwrap()[0].service_account_token.as_ref().unwrap();
        assert_eq!(projection.audience.as_deref(), Some("scs-authz"));
        assert_eq!(projection.expiration_seconds, Some(600));
        // An https:// server (the default): the CA the init container verifies it with, required.
        let ca = volumes[0].projected.as_ref().unwrap().sources.as_ref().unwrap()[1].config_map.as_ref().unwrap();
        assert_eq!((ca.name.as_str(), ca.optional), (CA_CONFIGMAP, Some(false)));
        let env = inits[0].env.as_ref().unwrap();
        let ca_file = env.iter().find(|e| e.name == "SCS_AUTHZ_CA_FILE").and_then(|e| e.value.as_deref());
        assert_eq!(ca_file, Some("/var/run/secrets/scs.dev/authz/ca.crt"));
        // Plain http://: the token alone.
        let plain = PreAuthorizationConfig { server_url: "http://authz.example:8080".into(), ..Default::default() };
        assert_eq!(token_volume(&plain).projected.unwrap().sources.unwrap().len(), 1);
    }
}
