//! Helpers of the cluster suite: the tests in `tests/cluster*.rs` run against whatever
//! `KUBECONFIG` points at (localkube through `e2e/localkube.sh`, kind through `e2e/kind.sh`), with
//! the kind overlay installed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, ValidationDirective};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use kube::{Client, Resource};
use scs_operator::api::Tenant;
use serde_json::{Value, json};

/// How long a cluster test waits for anything to converge.
pub const WAIT: Duration = Duration::from_secs(240);
/// The field manager of what the tests apply.
pub const MANAGER: &str = "scs-e2e";

pub async fn client() -> Client {
    Client::try_default().await.expect("a kube context (run through e2e/localkube.sh or e2e/kind.sh)")
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Polls `check` every second until it returns a value; panics after [`WAIT`].
pub async fn until<F, Fut, T>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Server-side apply, strict field validation (as kubectl does).
pub async fn apply<K>(api: &Api<K>, name: &str, manifest: Value) -> K
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &strict(PatchParams::apply(MANAGER).force()), &Patch::Apply(manifest))
        .await
        .unwrap_or_else(|e| panic!("apply {name}: {e}"))
}

/// Patch parameters with strict field validation: unknown fields are errors, as with kubectl.
pub fn strict(mut params: PatchParams) -> PatchParams {
    params.field_validation = Some(ValidationDirective::Strict);
    params
}

/// An API for any manifest (`apiVersion`, `kind`, optional namespace), for dynamic objects.
pub async fn dynamic_api(client: &Client, manifest: &Value) -> Api<DynamicObject> {
    let api_version = manifest["apiVersion"].as_str().expect("apiVersion");
    let kind = manifest["kind"].as_str().expect("kind");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, capabilities) =
        kube::discovery::pinned_kind(client, &gvk).await.unwrap_or_else(|e| panic!("discover {gvk:?}: {e}"));
    match (capabilities.scope, manifest["metadata"]["namespace"].as_str()) {
        (kube::discovery::Scope::Namespaced, Some(namespace)) => {
            Api::namespaced_with(client.clone(), namespace, &resource)
        }
        _ => Api::all_with(client.clone(), &resource),
    }
}

/// Server-side dry run of an apply of `manifest`: `Err` carries the API server's message.
pub async fn dry_run(client: &Client, manifest: &Value) -> Result<(), String> {
    let api = dynamic_api(client, manifest).await;
    let name = manifest["metadata"]["name"].as_str().expect("metadata.name");
    let params = strict(PatchParams::apply(MANAGER).force().dry_run());
    api.patch(name, &params, &Patch::Apply(manifest)).await.map(|_| ()).map_err(|e| e.to_string())
}

/// Applies a manifest of any kind for real.
pub async fn apply_dynamic(client: &Client, manifest: &Value) {
    let api = dynamic_api(client, manifest).await;
    let name = manifest["metadata"]["name"].as_str().expect("metadata.name");
    api.patch(name, &strict(PatchParams::apply(MANAGER).force()), &Patch::Apply(manifest))
        .await
        .unwrap_or_else(|e| panic!("apply {} {name}: {e}", manifest["kind"]));
}

/// The API resource of a custom kind of ours (`scs.dev/v1alpha1`).
pub fn scs_resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(scs_operator::api::GROUP, scs_operator::api::VERSION, kind))
}

/// Applies a Tenant and waits until it is Ready for its current generation.
pub async fn ready_tenant(client: &Client, name: &str, spec: Value) -> Tenant {
    let tenants: Api<Tenant> = Api::all(client.clone());
    apply(
        &tenants,
        name,
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": name}, "spec": spec}),
    )
    .await;
    until(&format!("Tenant {name} Ready"), || async {
        let tenant = tenants.get(name).await.ok()?;
        let status = tenant.status.clone()?;
        let ready = status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
        (ready && status.observed_generation == tenant.metadata.generation).then_some(tenant)
    })
    .await
}

/// Applies SecureWorkload `infer` in `namespace`: a busybox Deployment of `replicas` asking for
/// one NVIDIA Tesla T4 on a driver within the `cuda` bounds.
pub async fn apply_gpu_workload(client: &Client, namespace: &str, replicas: i32, cuda: Value) {
    let workloads: Api<scs_operator::api::SecureWorkload> = Api::namespaced(client.clone(), namespace);
    apply(
        &workloads,
        "infer",
        json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": "infer", "namespace": namespace},
               "spec": {"kind": "Deployment", "replicas": replicas,
                        "gpu": {"vendor": "nvidia", "count": 1, "model": "Tesla-T4", "cuda": cuda},
                        "template": {"spec": busybox_pod_spec(&["sleep", "3600"])}}}),
    )
    .await;
}

/// Deletes a Tenant (forced: workloads left behind do not hold it) and waits until it is gone.
pub async fn delete_tenant(client: &Client, name: &str) {
    let tenants: Api<Tenant> = Api::all(client.clone());
    let force = json!({"metadata": {"annotations": {scs_operator::controller::tenant::FORCE_DELETE: "true"}}});
    let _ = tenants.patch(name, &PatchParams::default(), &Patch::Merge(force)).await;
    let _ = tenants.delete(name, &DeleteParams::default()).await;
    until(&format!("Tenant {name} gone"), || async { tenants.get_opt(name).await.ok()?.is_none().then_some(()) }).await;
}

/// Creates a plain namespace (not a tenant's) with these labels, if it does not exist.
pub async fn plain_namespace(client: &Client, name: &str, labels: Value) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    until(&format!("namespace {name} not terminating"), || async {
        let existing = namespaces.get_opt(name).await.ok()?;
        existing.is_none_or(|ns| ns.metadata.deletion_timestamp.is_none()).then_some(())
    })
    .await;
    apply(
        &namespaces,
        name,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}),
    )
    .await;
}

/// Deletes a namespace and waits until it is gone.
pub async fn delete_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(name, &DeleteParams::default()).await;
    until(&format!("namespace {name} gone"), || async { namespaces.get_opt(name).await.ok()?.is_none().then_some(()) })
        .await;
}

/// Whether `user` (in `groups`) may `verb` `resource` (`group`) in `namespace`, per the API server.
pub async fn may(
    client: &Client,
    who: (&str, &[&str]),
    verb: &str,
    resource: (&str, &str),
    namespace: Option<&str>,
) -> bool {
    may_on(client, who, verb, resource, namespace, None).await
}

/// Like [`may`], for one object by name (`resourceNames` rules apply only then).
pub async fn may_on(
    client: &Client,
    (user, groups): (&str, &[&str]),
    verb: &str,
    (group, resource): (&str, &str),
    namespace: Option<&str>,
    name: Option<&str>,
) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            groups: Some(groups.iter().map(|g| g.to_string()).collect()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: namespace.map(str::to_string),
                name: name.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    api.create(&PostParams::default(), &review).await.unwrap().status.unwrap().allowed
}

/// The test image: busybox, loaded into the node by `e2e/localkube.sh` (and `e2e/kind.sh`) under
/// pinned tags, never pulled. `docker.io/library/` is public in the kind overlay's configuration,
/// so tenant pods may use it with `IfNotPresent`.
pub const BUSYBOX: &str = "docker.io/library/busybox:1.36";
/// The same image under a second tag, for a spec change that still runs.
pub const BUSYBOX_NEXT: &str = "docker.io/library/busybox:1.37";

/// A pod spec that passes Pod Security `restricted` and the tenant image rules, running
/// [`BUSYBOX`] with `command`.
pub fn busybox_pod_spec(command: &[&str]) -> Value {
    json!({
        "securityContext": {"runAsNonRoot": true, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": 1,
        "containers": [{
            "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": command,
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
        }],
    })
}

/// `kubectl` with these arguments (the bundled one first on PATH under `e2e/localkube.sh`);
/// `Err` carries stderr.
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("kubectl")
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl on PATH");
    child.stdin.take().unwrap().write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() { Ok(stdout) } else { Err(String::from_utf8_lossy(&output.stderr).into_owned()) }
}

/// Asserts the API server refuses `result` with a message containing every one of `expected`.
pub fn refused<T: std::fmt::Debug>(what: &str, result: Result<T, impl ToString>, expected: &[&str]) {
    let error = match result {
        Ok(admitted) => panic!("{what}: admitted, should be refused: {admitted:?}"),
        Err(error) => error.to_string(),
    };
    for part in expected {
        assert!(error.contains(part), "{what}: {part:?} not in {error}");
    }
}
