//! The SecureWorkload controller against the fake API server. The fake runs no Deployment or Job
//! controllers, so tests play their part by setting the status of the workload objects.

use std::time::Duration;

use e2e::harness::{Harness, eventually};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use scs_operator::api::SecureWorkload;
use serde_json::{Value, json};

const NS: &str = "acme-prod";

fn tenant() -> Value {
    json!({
        "apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "acme"},
        "spec": {"namespaces": [NS], "quota": {"cpu": "16", "memory": "64Gi", "gpu": {"nvidia": 2}, "loadBalancers": 1}}
    })
}

fn workload(name: &str, spec: Value) -> Value {
    let mut spec = spec;
    if spec.get("template").is_none() {
        spec["template"] = json!({"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]}});
    }
    json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": name, "namespace": NS}, "spec": spec})
}

struct Env {
    harness: Harness,
}

impl Env {
    async fn start() -> Self {
        let harness = Harness::start().await;
        harness.create_tenant(tenant()).await;
        eventually("tenant ready", || async { harness.is_ready("acme") }).await;
        Self { harness }
    }

    fn api(&self) -> Api<SecureWorkload> {
        Api::namespaced(self.harness.client.clone(), NS)
    }

    async fn create(&self, manifest: Value) {
        let object: SecureWorkload = serde_json::from_value(manifest).unwrap();
        self.api().create(&PostParams::default(), &object).await.unwrap();
    }

    async fn patch(&self, name: &str, patch: Value) {
        self.api().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }

    fn get(&self, path: &str) -> Option<Value> {
        self.harness.server.get(path)
    }

    fn deployment(&self, name: &str) -> Option<Value> {
        self.get(&format!("/apis/apps/v1/namespaces/{NS}/deployments/{name}"))
    }

    fn status(&self, name: &str) -> Value {
        self.get(&format!("/apis/scs.dev/v1alpha1/namespaces/{NS}/secureworkloads/{name}"))
            .map(|w| w["status"].clone())
            .unwrap_or(Value::Null)
    }

    fn condition(&self, name: &str, type_: &str) -> Option<Value> {
        self.status(name)["conditions"].as_array()?.iter().find(|c| c["type"] == type_).cloned()
    }

    /// Plays the Deployment controller: all replicas of the current spec ready.
    fn roll_out(&self, name: &str) {
        let path = format!("/apis/apps/v1/namespaces/{NS}/deployments/{name}");
        let deployment = self.get(&path).unwrap();
        let replicas = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
        self.harness.server.set_status(
            &path,
            json!({
                "observedGeneration": deployment["metadata"]["generation"],
                "replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas, "availableReplicas": replicas,
                "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}],
            }),
        );
    }

    async fn running_web(self) -> Self {
        self.create(workload("web", json!({"kind": "Deployment", "replicas": 2, "expose": {"ports": [{"port": 80}]}})))
            .await;
        eventually("deployment created", || async { self.deployment("web").is_some() }).await;
        self.roll_out("web");
        eventually("web Running", || async { self.status("web")["phase"] == "Running" }).await;
        // The phase event follows the status write; tests that count writes start after it.
        eventually("Running event", || async { self.harness.event_reasons().contains(&"Running".to_string()) }).await;
        self
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_gets_its_children_and_status() {
    let env = Env::start().await;
    env.create(workload("web", json!({"kind": "Deployment", "gpu": {"vendor": "nvidia", "count": 1}, "expose": {"type": "LoadBalancer", "ports": [{"port": 80}]}}))).await;
    env.create(workload("db", json!({"kind": "StatefulSet", "replicas": 2, "volumes": [{"name": "data", "size": "10Gi", "tier": "performance", "mountPath": "/data"}]}))).await;
    env.create(workload("agent", json!({"kind": "DaemonSet"}))).await;
    env.create(workload("migrate", json!({"kind": "Job"}))).await;
    env.create(workload("report", json!({"kind": "CronJob", "schedule": "30 2 * * *"}))).await;
    let paths = [
        "/apis/apps/v1/namespaces/acme-prod/deployments/web",
        "/api/v1/namespaces/acme-prod/services/web",
        "/apis/apps/v1/namespaces/acme-prod/statefulsets/db",
        "/api/v1/namespaces/acme-prod/services/db-headless",
        "/apis/apps/v1/namespaces/acme-prod/daemonsets/agent",
        "/apis/batch/v1/namespaces/acme-prod/jobs/migrate",
        "/apis/batch/v1/namespaces/acme-prod/cronjobs/report",
    ];
    eventually("all children exist", || async { paths.iter().all(|p| env.get(p).is_some()) }).await;
    for path in paths.iter().filter(|p| !p.contains("/services/")) {
        let object = env.get(path).unwrap();
        let pod = if path.contains("cronjobs") {
            &object["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        } else {
            &object["spec"]["template"]["spec"]
        };
        // `web` asks for a GPU: it runs in the NVIDIA sandbox class.
        let class = if path.ends_with("/deployments/web") { "kata-qemu-nvidia-gpu" } else { "kata-qemu" };
        assert_eq!(pod["runtimeClassName"], class, "{path}");
        assert_eq!(object["metadata"]["ownerReferences"][0]["kind"], "SecureWorkload", "{path}");
    }
    assert_eq!(
        env.get(paths[0]).unwrap()["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"],
        "1"
    );
    assert_eq!(env.get(paths[1]).unwrap()["spec"]["type"], "LoadBalancer");

    // Nothing runs pods here: every long-running kind waits, then reports what its object says.
    eventually("web progressing", || async { env.status("web")["phase"] == "Progressing" }).await;
    env.roll_out("web");
    eventually("web running", || async {
        env.status("web")["phase"] == "Running" && env.status("web")["ready"] == "1/1"
    })
    .await;
    assert_eq!(env.condition("web", "Ready").unwrap()["status"], "True");
    assert_eq!(
        env.status("web")["children"],
        json!([{"kind": "Deployment", "name": "web"}, {"kind": "Service", "name": "web"}])
    );
    env.harness.server.set_status(
        "/apis/batch/v1/namespaces/acme-prod/jobs/migrate",
        json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}),
    );
    eventually("job succeeded", || async { env.status("migrate")["phase"] == "Succeeded" }).await;
    assert_eq!(env.status("migrate")["succeeded"], 1);
    env.harness.server.set_status(
        "/apis/batch/v1/namespaces/acme-prod/cronjobs/report",
        json!({"lastScheduleTime": "2026-11-21T02:30:00Z"}),
    );
    eventually("cronjob scheduled", || async { env.status("report")["lastScheduleTime"] == "2026-11-21T02:30:00Z" })
        .await;
    eventually("Running event", || async { env.harness.event_reasons().contains(&"Running".to_string()) }).await;
    env.harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_workload_costs_no_writes() {
    let env = Env::start().await.running_web().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.harness.server.clear_requests();
    // The pass reads nothing (the workload and its children come from the watches), so only the
    // count of passes says it has run (other tests' passes count too: the wait below covers ours).
    let passes = scs_operator::controller::metrics::metrics().reconciles("secureworkload");
    env.harness.server.touch(
        "/apis/scs.dev/v1alpha1/namespaces/acme-prod/secureworkloads/web",
        "example.com/poke",
        "1",
    );
    eventually("a new pass over web", || async {
        scs_operator::controller::metrics::metrics().reconciles("secureworkload") > passes
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(env.harness.server.writes(""), vec![], "second pass must not write");
    // Nor read the workload or its children.
    let reads: Vec<String> = env
        .harness
        .server
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/namespaces/acme-prod/"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(reads, Vec::<String>::new(), "second pass must not read the workload or its children");
    env.harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_change_is_one_deployment_write() {
    let env = Env::start().await.running_web().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    env.harness.server.clear_requests();
    env.patch("web", json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "registry.example.com/app:2"}]}}}})).await;
    eventually("new image applied", || async {
        env.deployment("web").unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
            == "registry.example.com/app:2"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let child_writes: Vec<String> = env
        .harness
        .server
        .writes("")
        .iter()
        .filter(|r| !r.path.contains("/secureworkloads/") && !r.path.contains("/events"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    // The Deployment, and the new spec recorded as revision 2 (see workload_history.rs).
    assert_eq!(
        child_writes,
        [
            "PATCH /apis/apps/v1/namespaces/acme-prod/deployments/web",
            "POST /apis/apps/v1/namespaces/acme-prod/controllerrevisions"
        ]
    );
    env.harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_suspend_resume_and_restart() {
    let env = Env::start().await.running_web().await;
    env.patch("web", json!({"spec": {"replicas": 3}})).await;
    eventually("scaled to 3", || async { env.deployment("web").unwrap()["spec"]["replicas"] == 3 }).await;

    env.patch("web", json!({"spec": {"suspended": true}})).await;
    eventually("suspended", || async {
        env.deployment("web").unwrap()["spec"]["replicas"] == 0 && env.status("web")["phase"] == "Suspended"
    })
    .await;
    env.patch("web", json!({"spec": {"suspended": false}})).await;
    eventually("resumed", || async { env.deployment("web").unwrap()["spec"]["replicas"] == 3 }).await;

    env.patch("web", json!({"spec": {"restartedAt": "2026-11-22T08:00:00Z"}})).await;
    eventually("restart annotation", || async {
        env.deployment("web").unwrap()["spec"]["template"]["metadata"]["annotations"]["scs.dev/restartedAt"]
            == "2026-11-22T08:00:00Z"
    })
    .await;
    env.harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_deleted_by_hand_comes_back() {
    let env = Env::start().await.running_web().await;
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(env.harness.client.clone(), NS);
    services.delete("web", &DeleteParams::default()).await.unwrap();
    eventually("service recreated", || async { env.get("/api/v1/namespaces/acme-prod/services/web").is_some() }).await;
    env.harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_spec_is_reported_and_running_children_are_left_alone() {
    let env = Env::start().await.running_web().await;
    let before = env.deployment("web").unwrap();
    env.harness.server.clear_requests();
    // Passes the CRD schema, fails against the tenant: it lists no networks.
    env.patch("web", json!({"spec": {"networks": [{"name": "office"}], "replicas": 5}})).await;
    eventually("invalid spec reported", || async {
        env.condition("web", "Ready").is_some_and(|c| c["reason"] == "InvalidSpec")
    })
    .await;
    let message = env.condition("web", "Ready").unwrap()["message"].as_str().unwrap().to_string();
    assert!(message.contains("spec.networks[0].name: Tenant \"acme\" does not list network \"office\""), "{message}");
    assert_eq!(env.deployment("web").unwrap(), before, "the running Deployment is untouched");
    assert!(env.harness.server.writes("/deployments/").is_empty());
    eventually("InvalidSpec event", || async { env.harness.event_reasons().contains(&"InvalidSpec".to_string()) })
        .await;

    // Fixing the spec resumes normal work.
    env.patch("web", json!({"spec": {"networks": null}})).await;
    eventually("scaled once valid", || async { env.deployment("web").unwrap()["spec"]["replicas"] == 5 }).await;
    env.harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_expose_or_autoscaling_removes_their_children() {
    let env = Env::start().await;
    env.create(workload(
        "api",
        json!({"kind": "Deployment", "expose": {"ports": [{"port": 8080}]}, "autoscaling": {"maxReplicas": 4}}),
    ))
    .await;
    let hpa = "/apis/autoscaling/v2/namespaces/acme-prod/horizontalpodautoscalers/api";
    eventually("service and hpa", || async {
        env.get("/api/v1/namespaces/acme-prod/services/api").is_some() && env.get(hpa).is_some()
    })
    .await;
    assert!(env.deployment("api").unwrap()["spec"].get("replicas").is_none(), "the HPA owns replicas");
    env.patch("api", json!({"spec": {"expose": null, "autoscaling": null}})).await;
    eventually("both gone", || async {
        env.get("/api/v1/namespaces/acme-prod/services/api").is_none() && env.get(hpa).is_none()
    })
    .await;
    env.harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_workload_removes_its_children_but_keeps_its_volumes() {
    let env = Env::start().await;
    env.create(workload("files", json!({"kind": "Deployment", "volumes": [{"name": "data", "size": "5Gi", "tier": "capacity", "mountPath": "/srv"}]}))).await;
    env.create(workload("scratch", json!({"kind": "Deployment", "retainVolumes": false, "volumes": [{"name": "tmp", "size": "1Gi", "tier": "capacity", "mountPath": "/tmp/s"}]}))).await;
    let claim = |name: &str| format!("/api/v1/namespaces/acme-prod/persistentvolumeclaims/{name}");
    eventually("claims created", || async {
        env.get(&claim("files-data")).is_some() && env.get(&claim("scratch-tmp")).is_some()
    })
    .await;
    env.api().delete("files", &DeleteParams::default()).await.unwrap();
    env.api().delete("scratch", &DeleteParams::default()).await.unwrap();
    eventually("deployments gone", || async {
        env.deployment("files").is_none() && env.deployment("scratch").is_none()
    })
    .await;
    assert!(env.get(&claim("files-data")).is_some(), "retained by default");
    assert!(env.get(&claim("scratch-tmp")).is_none(), "retainVolumes: false");
    env.harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_outside_any_tenant_gets_nothing() {
    let env = Env::start().await;
    let orphan = json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload", "metadata": {"name": "stray", "namespace": "elsewhere"},
        "spec": {"kind": "Deployment", "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}}}});
    let api: Api<SecureWorkload> = Api::namespaced(env.harness.client.clone(), "elsewhere");
    api.create(&PostParams::default(), &serde_json::from_value(orphan).unwrap()).await.unwrap();
    let path = "/apis/scs.dev/v1alpha1/namespaces/elsewhere/secureworkloads/stray";
    eventually("NoTenant", || async {
        env.get(path).is_some_and(|w| w["status"]["conditions"][0]["reason"] == "NoTenant")
    })
    .await;
    assert!(env.get("/apis/apps/v1/namespaces/elsewhere/deployments/stray").is_none());
    env.harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_only_takes_changes_it_can() {
    let env = Env::start().await;
    env.create(workload("migrate", json!({"kind": "Job"}))).await;
    let path = "/apis/batch/v1/namespaces/acme-prod/jobs/migrate";
    eventually("job created", || async { env.get(path).is_some() }).await;
    env.patch("migrate", json!({"spec": {"suspended": true, "template": {"spec": {"containers": [{"name": "app", "image": "registry.example.com/app:9"}]}}}})).await;
    eventually("job suspended", || async { env.get(path).unwrap()["spec"]["suspend"] == true }).await;
    let job = env.get(path).unwrap();
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["image"], "registry.example.com/app:1",
        "a Job's template is immutable"
    );
    env.harness.stop().await;
}

/// The Jobs a CronJob starts carry its job template's labels, ours among them; they belong to the
/// CronJob, and the workload's sync must leave them alone (found on a real cluster, where the
/// operator deleted every scheduled Job within a second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_started_by_a_cronjob_are_left_to_it() {
    let env = Env::start().await;
    env.create(workload("report", json!({"kind": "CronJob", "schedule": "30 2 * * *"}))).await;
    let cron_path = format!("/apis/batch/v1/namespaces/{NS}/cronjobs/report");
    eventually("cronjob created", || async { env.get(&cron_path).is_some() }).await;
    let cron = env.get(&cron_path).unwrap();
    // Play the CronJob controller: a Job from the template, controlled by the CronJob.
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {
            "name": "report-29000000", "namespace": NS,
            "labels": cron["spec"]["jobTemplate"]["metadata"]["labels"],
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "report",
                "uid": cron["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": cron["spec"]["jobTemplate"]["spec"],
    });
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(env.harness.client.clone(), NS);
    jobs.create(&PostParams::default(), &serde_json::from_value(job).unwrap()).await.unwrap();
    // The Job's creation triggers the workload (its labels match); several passes go by.
    env.patch("report", json!({"spec": {"restartedAt": "2026-12-01T10:00:00Z"}})).await;
    eventually("the restart reaches the CronJob", || async {
        env.get(&cron_path).is_some_and(|c| {
            c["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["annotations"]["scs.dev/restartedAt"].is_string()
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        env.get(&format!("/apis/batch/v1/namespaces/{NS}/jobs/report-29000000")).is_some(),
        "the CronJob's Job survives"
    );
    env.harness.stop().await;
}

/// The tenant of a workload is the one whose label the live Namespace carries (only the operator
/// writes it), not the oldest Tenant that lists the namespace: an older tenant that later lists a
/// namespace another one owns gets a conflict, never that namespace's workloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespace_owner_label_decides_a_workloads_tenant() {
    let harness = Harness::start().await;
    harness
        .create_tenant(json!({
            "apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "globex"},
            "spec": {"namespaces": ["globex"], "runtimeClassName": "kata-globex"}
        }))
        .await;
    eventually("globex ready", || async { harness.is_ready("globex") }).await;
    // Created later (whole seconds), so globex stays the older tenant.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    harness.create_tenant(tenant()).await;
    eventually("acme ready", || async { harness.is_ready("acme") }).await;
    harness.patch_tenant("globex", json!({"spec": {"namespaces": ["globex", NS]}})).await;
    eventually("globex reports the conflict", || async {
        harness.condition("globex", "NamespacesReady").is_some_and(|c| c.1 == "NamespaceConflict")
    })
    .await;

    let env = Env { harness };
    env.create(workload("web", json!({"kind": "Deployment"}))).await;
    eventually("deployment created", || async { env.deployment("web").is_some() }).await;
    assert_eq!(
        env.deployment("web").unwrap()["spec"]["template"]["spec"]["runtimeClassName"],
        "kata-qemu",
        "acme's class (the namespace's owner), not globex's"
    );
    env.harness.stop().await;
}

fn office_vlan() -> Value {
    json!({
        "apiVersion": "scs.dev/v1alpha1", "kind": "SdnNetwork", "metadata": {"name": "office-vlan"},
        "spec": {"type": "macvlan", "master": "eth1", "cidr": "192.168.100.0/24", "gateway": "192.168.100.1",
                 "ipRange": {"start": "192.168.100.20", "end": "192.168.100.200"}}
    })
}

fn on_office_vlan(namespace: &str, name: &str, ip: &str) -> Value {
    let mut manifest =
        workload(name, json!({"kind": "Deployment", "networks": [{"name": "office-vlan", "ips": [ip]}]}));
    manifest["metadata"]["namespace"] = json!(namespace);
    manifest
}

/// Static addresses: checked against the network, taken through its `.static` attachment, and
/// never given to two workloads of a tenant (the older keeps it, in whichever namespace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_addresses_are_checked_and_not_shared_within_a_tenant() {
    let harness = Harness::start().await;
    harness.create_network(office_vlan()).await;
    let mut acme = tenant();
    acme["spec"]["namespaces"] = json!([NS, "acme-dev"]);
    acme["spec"]["networks"] = json!(["office-vlan"]);
    harness.create_tenant(acme).await;
    eventually("tenant ready", || async { harness.is_ready("acme") }).await;
    let env = Env { harness };
    let create = |manifest: Value| async {
        let object: SecureWorkload = serde_json::from_value(manifest).unwrap();
        let namespace = object.metadata.namespace.clone().unwrap();
        Api::<SecureWorkload>::namespaced(env.harness.client.clone(), &namespace)
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    };
    let status_of = |namespace: &str, name: &str| {
        env.get(&format!("/apis/scs.dev/v1alpha1/namespaces/{namespace}/secureworkloads/{name}"))
            .and_then(|w| w["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready").cloned())
    };

    create(on_office_vlan("acme-dev", "cache", "192.168.100.10/24")).await;
    eventually("cache deployed", || async { env.get("/apis/apps/v1/namespaces/acme-dev/deployments/cache").is_some() })
        .await;
    let deployment = env.get("/apis/apps/v1/namespaces/acme-dev/deployments/cache").unwrap();
    let networks: Value = serde_json::from_str(
        deployment["spec"]["template"]["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(
        (&networks[0]["name"], &networks[0]["ips"]),
        (&json!("office-vlan.static"), &json!(["192.168.100.10/24"]))
    );
    let fixed = env
        .get("/apis/k8s.cni.cncf.io/v1/namespaces/acme-dev/network-attachment-definitions/office-vlan.static")
        .expect("the static attachment definition");
    let config: Value = serde_json::from_str(fixed["spec"]["config"].as_str().unwrap()).unwrap();
    assert_eq!(
        (config["capabilities"].clone(), config["ipam"].clone()),
        (json!({"ips": true}), json!({"type": "static"}))
    );

    // The same address in the tenant's other namespace, one inside whereabouts' range.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    create(on_office_vlan(NS, "db", "192.168.100.10/24")).await;
    create(on_office_vlan(NS, "web", "192.168.100.30/24")).await;
    eventually("db held", || async { status_of(NS, "db").is_some_and(|c| c["reason"] == "Conflict") }).await;
    let message = status_of(NS, "db").unwrap()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("spec.networks[0].ips[0]: 192.168.100.10 on network \"office-vlan\" is already requested by SecureWorkload acme-dev/cache"),
        "{message}"
    );
    eventually("web invalid", || async { status_of(NS, "web").is_some_and(|c| c["reason"] == "InvalidSpec") }).await;
    let message = status_of(NS, "web").unwrap()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("spec.networks[0].ips[0]: 192.168.100.30 is inside network \"office-vlan\"'s ipRange"),
        "{message}"
    );
    assert!(env.deployment("db").is_none() && env.deployment("web").is_none(), "nothing applied for either");
    env.harness.stop().await;
}

/// A workload whose Tenant is known but whose namespace the Tenant has not created yet waits for
/// it (at scale a tenant's first pass can take longer than the NoTenant grace): it is not called
/// an orphan, and its children come once the namespace does — no event about the namespace exists
/// to wake it, so it must look again by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_waits_for_the_namespace_its_tenant_is_creating() {
    let harness = Harness::start().await;
    // The tenant's namespace is created well after the workload's NoTenant grace.
    let slow = scs_operator::controller::workload::NO_TENANT_GRACE + Duration::from_secs(3);
    harness.server.delay_next("POST", "/api/v1/namespaces", 1, slow);
    harness.create_tenant(tenant()).await;
    let api: Api<SecureWorkload> = Api::namespaced(harness.client.clone(), NS);
    let web: SecureWorkload = serde_json::from_value(workload("web", json!({"kind": "Deployment"}))).unwrap();
    api.create(&PostParams::default(), &web).await.unwrap();
    let path = format!("/apis/scs.dev/v1alpha1/namespaces/{NS}/secureworkloads/web");
    let deployment = format!("/apis/apps/v1/namespaces/{NS}/deployments/web");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while harness.server.get(&deployment).is_none() {
        let reason = harness.server.get(&path).map(|w| w["status"]["conditions"][0]["reason"].clone());
        assert_ne!(reason, Some(json!("NoTenant")), "the tenant is known: the workload is no orphan");
        assert!(std::time::Instant::now() < deadline, "no Deployment once the namespace came");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    harness.stop().await;
}
