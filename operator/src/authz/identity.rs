//! Who is calling: the authz-server trusts only what the API server says. The init container's
//! projected token is checked with a TokenReview (audience-bound); the review names the pod the
//! token was issued for (the `authentication.kubernetes.io/pod-name` and `pod-uid` extra fields),
//! and that pod, read live, must be the caller: same uid, carrying the authorize init container
//! first, not being deleted, and (when the peer address is checked) calling from its own IP. So a
//! pod cannot ask for another pod's grants, even with that pod's name in its request.

use k8s_openapi::api::core::v1::Pod;

use super::init::carries_init_container;
use super::provider::PodIdentity;

/// TokenReview extra field with the pod's name.
pub const POD_NAME_EXTRA: &str = "authentication.kubernetes.io/pod-name";
/// TokenReview extra field with the pod's uid.
pub const POD_UID_EXTRA: &str = "authentication.kubernetes.io/pod-uid";

/// What the TokenReview said about the token.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reviewed {
    pub authenticated: bool,
    pub audiences: Vec<String>,
    pub username: String,
    pub pod_name: Option<String>,
    pub pod_uid: Option<String>,
}

/// What the caller claims about itself (downward API values, for a clearer refusal only).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Claimed {
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub uid: Option<String>,
}

/// Checks the caller against the reviewed token and the live pod; `peer_ip` is `None` when the
/// server does not check addresses (it runs outside the pod network, as in the cluster test).
/// Returns the identity sent to providers (tenant and workload filled in by the caller).
pub fn verify(
    reviewed: &Reviewed,
    audience: &str,
    claimed: &Claimed,
    pod: &Pod,
    peer_ip: Option<&str>,
) -> Result<PodIdentity, String> {
    if !reviewed.authenticated {
        return Err("the token is not valid".into());
    }
    if !reviewed.audiences.iter().any(|a| a == audience) {
        return Err(format!("the token is not for audience {audience:?}"));
    }
    let (Some(pod_name), Some(pod_uid)) = (&reviewed.pod_name, &reviewed.pod_uid) else {
        return Err("the token is not bound to a pod".into());
    };
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let account = spec.service_account_name.clone().unwrap_or_else(|| "default".into());
    if reviewed.username != format!("system:serviceaccount:{namespace}:{account}") {
        return Err(format!("the token's user {} is not pod {namespace}/{name}'s ServiceAccount", reviewed.username));
    }
    if *pod_name != name || *pod_uid != uid {
        return Err(format!("the token was issued for pod {pod_name} ({pod_uid}), not {namespace}/{name}"));
    }
    for (what, said, real) in
        [("namespace", &claimed.namespace, &namespace), ("name", &claimed.name, &name), ("uid", &claimed.uid, &uid)]
    {
        if said.as_ref().is_some_and(|s| s != real) {
            return Err(format!(
                "the request names pod {what} {:?}, the token is pod {namespace}/{name}'s",
                said.as_deref().unwrap_or("")
            ));
        }
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return Err(format!("pod {namespace}/{name} is being deleted"));
    }
    if !carries_init_container(&spec) {
        return Err(format!(
            "pod {namespace}/{name} does not carry the {} init container first",
            super::INIT_CONTAINER
        ));
    }
    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
    if let Some(peer) = peer_ip
        && peer != ip
    {
        return Err(format!("the call comes from {peer}, pod {namespace}/{name} has {ip:?}"));
    }
    Ok(PodIdentity {
        namespace,
        name,
        uid,
        ip,
        node: spec.node_name.clone().unwrap_or_default(),
        tenant: String::new(),
        workload: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, uid: &str, ip: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "acme-prod", "uid": uid},
            "spec": {"serviceAccountName": "web", "nodeName": "n1",
                     "initContainers": [{"name": "scs-authorize"}], "containers": [{"name": "app"}]},
            "status": {"podIP": ip}
        }))
        .unwrap()
    }

    fn review(name: &str, uid: &str) -> Reviewed {
        Reviewed {
            authenticated: true,
            audiences: vec!["scs-authz".into()],
            username: "system:serviceaccount:acme-prod:web".into(),
            pod_name: Some(name.into()),
            pod_uid: Some(uid.into()),
        }
    }

    #[test]
    fn the_right_pod_is_served() {
        let identity = verify(
            &review("web-1", "u1"),
            "scs-authz",
            &Claimed::default(),
            &pod("web-1", "u1", "10.0.0.5"),
            Some("10.0.0.5"),
        )
        .unwrap();
        assert_eq!((identity.name.as_str(), identity.ip.as_str(), identity.node.as_str()), ("web-1", "10.0.0.5", "n1"));
    }

    #[test]
    fn a_pod_presenting_another_pods_identity_is_refused() {
        let victim = pod("web-2", "u2", "10.0.0.6");
        // Pod web-1's token, asking as web-2 (the server looks up the pod the request names).
        let err =
            verify(&review("web-1", "u1"), "scs-authz", &Claimed::default(), &victim, Some("10.0.0.5")).unwrap_err();
        assert!(err.contains("issued for pod web-1"), "{err}");
        // web-2's stolen token, used from web-1's address.
        let err =
            verify(&review("web-2", "u2"), "scs-authz", &Claimed::default(), &victim, Some("10.0.0.5")).unwrap_err();
        assert!(err.contains("comes from 10.0.0.5"), "{err}");
        // A recreated pod of the same name has a new uid: an old token is refused.
        let err = verify(&review("web-2", "old"), "scs-authz", &Claimed::default(), &victim, None).unwrap_err();
        assert!(err.contains("issued for pod"), "{err}");
        // Downward-API claims that disagree with the token.
        let claimed = Claimed { name: Some("web-3".into()), ..Default::default() };
        let err = verify(&review("web-2", "u2"), "scs-authz", &claimed, &victim, None).unwrap_err();
        assert!(err.contains("names pod name"), "{err}");
        // A token for another audience (e.g. the API server's own) is refused.
        let err = verify(&review("web-2", "u2"), "other", &Claimed::default(), &victim, None).unwrap_err();
        assert!(err.contains("audience"), "{err}");
        // Another ServiceAccount's token bound to this pod's name cannot exist, but is refused too.
        let mut foreign = review("web-2", "u2");
        foreign.username = "system:serviceaccount:other:web".into();
        assert!(verify(&foreign, "scs-authz", &Claimed::default(), &victim, None).is_err());
    }

    #[test]
    fn pods_without_the_init_container_or_being_deleted_get_nothing() {
        let mut plain = pod("web-1", "u1", "10.0.0.5");
        plain.spec.as_mut().unwrap().init_containers = None;
        let err = verify(&review("web-1", "u1"), "scs-authz", &Claimed::default(), &plain, None).unwrap_err();
        assert!(err.contains("init container"), "{err}");
        let mut going = pod("web-1", "u1", "10.0.0.5");
        going.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert!(verify(&review("web-1", "u1"), "scs-authz", &Claimed::default(), &going, None).is_err());
    }
}
