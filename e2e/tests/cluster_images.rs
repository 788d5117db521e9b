//! Tenant images on a real API server: the `scs-tenant-images` admission policy refuses images
//! from other registries, unpinned images and private images that could be started from another
//! tenant's cached copy, on creation, on image changes and for ephemeral containers; the pull
//! Secrets a cloud admin lists on the Tenant are copied, kept in sync and removed. Run by
//! `e2e/localkube.sh` (or `e2e/kind.sh`) with the kind overlay installed.
#![cfg(feature = "cluster")]

use std::collections::BTreeMap;

use e2e::cluster::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use scs_operator::api::{SecureWorkload, Tenant};
use serde_json::json;

const DIGEST: &str = "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A pod of the namespace's sandbox class passing Pod Security `restricted`, running `image`.
fn pod(name: &str, image: &str, pull: &str) -> Pod {
    let mut spec = busybox_pod_spec(&["sleep", "3600"]);
    spec["runtimeClassName"] = json!("kata-qemu");
    spec["containers"][0]["image"] = json!(image);
    spec["containers"][0]["imagePullPolicy"] = json!(pull);
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}))
        .unwrap()
}

#[tokio::test]
async fn foreign_unpinned_and_cached_private_images_are_refused() {
    let client = client().await;
    let ns = "e2e-images";
    ready_tenant(&client, ns, json!({"images": {"registries": ["registry.example.com/acme/"]}})).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let dry = PostParams { dry_run: true, ..Default::default() };
    let private = "registry.example.com/acme/app:1.0";

    for (what, image, pull, expected) in [
        ("another registry", "registry.example.com/other/app:1.0", "Always", "is not from a registry allowed"),
        ("a look-alike host", "registry.example.com.evil.io/acme/app:1.0", "Always", "is not from a registry allowed"),
        ("a short name", "app:1.0", "Always", "is not from a registry allowed"),
        ("latest", "registry.example.com/acme/app:latest", "Always", "must be pinned"),
        ("no tag", "registry.example.com/acme/app", "Always", "must be pinned"),
        ("a cached private image", private, "IfNotPresent", "imagePullPolicy must be Always"),
        ("never pulled", private, "Never", "imagePullPolicy must be Always"),
    ] {
        refused(what, pods.create(&dry, &pod("p", image, pull)).await, &[expected]);
    }
    let mut init = pod("p", private, "Always");
    let mut sidecar = init.spec.as_ref().unwrap().containers[0].clone();
    sidecar.name = "init".into();
    sidecar.image = Some("evil.io/tool:1.0".into());
    init.spec.as_mut().unwrap().init_containers = Some(vec![sidecar]);
    refused("an init container", pods.create(&dry, &init).await, &["evil.io/tool:1.0 is not from a registry"]);

    // Admitted: the tenant's registry pulled Always (by tag or digest), a public image cached.
    pods.create(&dry, &pod("private", private, "Always")).await.expect("private image pulled Always");
    pods.create(&dry, &pod("digest", &format!("registry.example.com/acme/app{DIGEST}"), "Always"))
        .await
        .expect("digest");
    let _ = pods.delete("public", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await;
    until("no pod left from an earlier run", || async { pods.get_opt("public").await.ok()?.is_none().then_some(()) })
        .await;
    pods.create(&PostParams::default(), &pod("public", BUSYBOX, "IfNotPresent")).await.expect("public image");

    // A running pod cannot switch to a foreign image, nor get an ephemeral container with one.
    let swap = json!({"spec": {"containers": [{"name": "main", "image": "evil.io/app:1.0"}]}});
    refused(
        "an image change",
        pods.patch("public", &PatchParams::default(), &Patch::Strategic(swap)).await,
        &["evil.io/app:1.0"],
    );
    let debug = json!({"spec": {"ephemeralContainers": [{"name": "debug", "image": "evil.io/debug:1.0",
        "imagePullPolicy": "Always", "command": ["sh"],
        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}});
    refused(
        "an ephemeral container",
        pods.patch_subresource("ephemeralcontainers", "public", &PatchParams::default(), &Patch::Strategic(debug))
            .await,
        &["evil.io/debug:1.0"],
    );
    // Other updates of the pod are not held to the image rules again.
    let labelled = json!({"metadata": {"labels": {"checked": "yes"}}});
    pods.patch("public", &PatchParams::default(), &Patch::Merge(labelled)).await.expect("label change");

    // The tenant asks for digests: the namespace annotation follows, tags are refused.
    let tenant = ready_tenant(
        &client,
        ns,
        json!({"images": {"registries": ["registry.example.com/acme/"], "pinning": "Digest"}}),
    )
    .await;
    assert_eq!(tenant.spec.images.unwrap().pinning.map(|p| p.as_str()), Some("Digest"));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    until("namespace pinning Digest", || async {
        let annotations = namespaces.get(ns).await.ok()?.metadata.annotations?;
        (annotations.get("scs.dev/image-pinning")? == "Digest").then_some(())
    })
    .await;
    refused("a tag under Digest", pods.create(&dry, &pod("p", private, "Always")).await, &["must be pinned by digest"]);
    pods.create(&dry, &pod("digest", &format!("registry.example.com/acme/app{DIGEST}"), "Always"))
        .await
        .expect("digest under Digest");

    // A SecureWorkload with a foreign image is an invalid spec naming the field; nothing is made.
    let workloads: Api<SecureWorkload> = Api::namespaced(client.clone(), ns);
    let mut template = busybox_pod_spec(&["sleep", "3600"]);
    template["containers"][0]["image"] =
        json!("evil.io/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    apply(
        &workloads,
        "foreign",
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": "foreign", "namespace": ns},
               "spec": {"kind": "Deployment", "replicas": 1, "template": {"spec": template}}}),
    )
    .await;
    let message = until("foreign workload InvalidSpec", || async {
        let status = workloads.get("foreign").await.ok()?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (ready.reason == "InvalidSpec").then(|| ready.message.clone())
    })
    .await;
    assert!(message.contains("spec.template.spec.containers[0].image"), "{message}");
    assert!(message.contains("evil.io/app"), "{message}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    assert!(deployments.get_opt("foreign").await.unwrap().is_none(), "nothing is made for an invalid spec");

    workloads.delete("foreign", &DeleteParams::default()).await.unwrap();
    let _ = pods.delete("public", &DeleteParams::default()).await;
    delete_tenant(&client, ns).await;
}

fn docker_config(auth: &str) -> BTreeMap<String, ByteString> {
    let config = json!({"auths": {"registry.example.com": {"auth": auth}}}).to_string();
    BTreeMap::from([(".dockerconfigjson".to_string(), ByteString(config.into_bytes()))])
}

async fn source(client: &kube::Client, name: &str, type_: &str, auth: &str) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "scs-system");
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": type_,
        "data": serde_json::to_value(docker_config(auth)).unwrap()});
    let _ = secrets.delete(name, &DeleteParams::default()).await;
    until(&format!("old {name} gone"), || async { secrets.get_opt(name).await.ok()?.is_none().then_some(()) }).await;
    secrets.create(&PostParams::default(), &serde_json::from_value(secret).unwrap()).await.unwrap();
}

async fn images_condition(tenants: &Api<Tenant>, name: &str, status: &str) -> String {
    until(&format!("Tenant {name} ImagesReady={status}"), || async {
        let tenant = tenants.get(name).await.ok()?;
        let found = tenant.status?.conditions.into_iter().find(|c| c.type_ == "ImagesReady")?;
        (found.status == status && found.observed_generation == tenant.metadata.generation).then_some(found.message)
    })
    .await
}

async fn default_pull_secrets(accounts: &Api<ServiceAccount>) -> Vec<String> {
    let account = accounts.get("default").await.unwrap();
    account.image_pull_secrets.into_iter().flatten().map(|r| r.name).collect()
}

#[tokio::test]
async fn pull_secrets_are_copied_kept_in_sync_and_removed() {
    let client = client().await;
    let ns = "e2e-pull";
    source(&client, "e2e-registry", "kubernetes.io/dockerconfigjson", "dXNlcjpvbmU=").await;
    source(&client, "e2e-opaque", "Opaque", "eA==").await;
    let tenants: Api<Tenant> = Api::all(client.clone());
    ready_tenant(&client, ns, json!({"images": {"pullSecrets": ["e2e-registry"]}})).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);

    let copy = until("copy of e2e-registry", || async { secrets.get_opt("e2e-registry").await.ok()? }).await;
    assert_eq!(copy.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
    assert_eq!(copy.data, Some(docker_config("dXNlcjpvbmU=")));
    assert_eq!(copy.metadata.labels.as_ref().unwrap()["scs.dev/tenant"], ns);
    assert_eq!(copy.metadata.owner_references.as_ref().unwrap()[0].kind, "Tenant");
    until("default ServiceAccount lists it", || async {
        default_pull_secrets(&accounts).await.contains(&"e2e-registry".to_string()).then_some(())
    })
    .await;

    // What a project admin added to the default ServiceAccount stays.
    let theirs = json!({"imagePullSecrets": [{"name": "e2e-registry"}, {"name": "their-own"}]});
    accounts.patch("default", &PatchParams::default(), &Patch::Merge(theirs)).await.unwrap();

    // A SecureWorkload's pods get the Secret, and Always for the private image.
    let workloads: Api<SecureWorkload> = Api::namespaced(client.clone(), ns);
    let mut template = busybox_pod_spec(&["sleep", "3600"]);
    template["containers"][0]["image"] = json!("registry.example.com/acme/app:1.0");
    template["containers"][0].as_object_mut().unwrap().remove("imagePullPolicy");
    apply(
        &workloads,
        "app",
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": "app", "namespace": ns},
               "spec": {"kind": "Deployment", "replicas": 0, "template": {"spec": template}}}),
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let deployment = until("Deployment app", || async { deployments.get_opt("app").await.ok()? }).await;
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.image_pull_secrets.unwrap()[0].name, "e2e-registry");
    assert_eq!(pod.containers[0].image_pull_policy.as_deref(), Some("Always"));

    // The source changes: the copy follows (the operator watches the sources' metadata).
    source(&client, "e2e-registry", "kubernetes.io/dockerconfigjson", "dXNlcjp0d28=").await;
    until("copy updated", || async {
        (secrets.get("e2e-registry").await.ok()?.data == Some(docker_config("dXNlcjp0d28="))).then_some(())
    })
    .await;

    // A missing and a non-pull Secret are named in status; the existing copy is kept.
    apply(
        &tenants,
        ns,
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": ns},
               "spec": {"images": {"pullSecrets": ["e2e-registry", "e2e-missing", "e2e-opaque"]}}}),
    )
    .await;
    let message = images_condition(&tenants, ns, "False").await;
    assert!(message.contains("spec.images.pullSecrets[1]: Secret scs-system/e2e-missing not found"), "{message}");
    assert!(
        message.contains("spec.images.pullSecrets[2]: Secret scs-system/e2e-opaque is of type Opaque"),
        "{message}"
    );
    assert!(secrets.get_opt("e2e-registry").await.unwrap().is_some());
    assert!(secrets.get_opt("e2e-opaque").await.unwrap().is_none(), "an Opaque Secret is never copied");

    // Dropped from the spec: the copy and the ServiceAccount entry go; the project admin's stays.
    // (`namespaces` keeps the applied spec from being empty, which server-side apply would drop.)
    ready_tenant(&client, ns, json!({"namespaces": [ns], "images": {"pullSecrets": []}})).await;
    images_condition(&tenants, ns, "True").await;
    until("copy removed", || async { secrets.get_opt("e2e-registry").await.ok()?.is_none().then_some(()) }).await;
    until("ServiceAccount entry removed", || async {
        (default_pull_secrets(&accounts).await == ["their-own"]).then_some(())
    })
    .await;

    // A Secret of that name someone else made is never overwritten or deleted.
    let foreign = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "e2e-registry"},
        "type": "kubernetes.io/dockerconfigjson", "data": serde_json::to_value(docker_config("b3RoZXI6eA==")).unwrap()});
    secrets.create(&PostParams::default(), &serde_json::from_value(foreign).unwrap()).await.unwrap();
    apply(
        &tenants,
        ns,
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": ns},
               "spec": {"images": {"pullSecrets": ["e2e-registry"]}}}),
    )
    .await;
    let message = images_condition(&tenants, ns, "False").await;
    assert!(message.contains("managed by someone else"), "{message}");
    assert_eq!(secrets.get("e2e-registry").await.unwrap().data, Some(docker_config("b3RoZXI6eA==")));

    // Tenant members cannot read the sources in the operator's namespace.
    let member = "e2e-pull-dev";
    ready_tenant(
        &client,
        ns,
        json!({"namespaces": [ns], "images": {"pullSecrets": []},
               "members": [{"kind": "User", "name": member, "role": "projectAdmin"}]}),
    )
    .await;
    let who = (member, &[][..]);
    assert!(may(&client, who, "get", ("", "secrets"), Some(ns)).await, "own namespace's Secrets");
    assert!(!may(&client, who, "get", ("", "secrets"), Some("scs-system")).await, "the operator's Secrets");

    workloads.delete("app", &DeleteParams::default()).await.unwrap();
    delete_tenant(&client, ns).await;
    let sources: Api<Secret> = Api::namespaced(client.clone(), "scs-system");
    for name in ["e2e-registry", "e2e-opaque"] {
        let _ = sources.delete(name, &DeleteParams::default()).await;
    }
}
