//! Scale harness: `cargo run --release -p e2e --bin scale -- --tenants N --workloads M`.
//!
//! Starts the fake API server in a separate process, runs the controllers in this one, creates N
//! tenants (two namespaces each) and M SecureWorkloads spread over them, plays the Deployment
//! controller until every workload runs, waits until everything is Ready, then restarts the
//! controllers to force a full resync. Prints exactly one JSON line on stdout; progress on stderr.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, future, stream};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use scs_operator::api::{SecureWorkload, Tenant};
use scs_operator::config::OperatorConfig;
use scs_operator::controller::managed::managed_kinds;
use scs_operator::controller::metrics::{api_request_layer, metrics};
use serde_json::{Value, json};

const MANAGED: &str = "app.kubernetes.io/managed-by=scs-operator";
const WRITE_VERBS: [&str; 4] = ["create", "update", "patch", "delete"];
const ALL_VERBS: [&str; 8] = ["get", "list", "watch", "create", "update", "patch", "delete", "other"];

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn client(address: &str, counted: bool) -> Client {
    let mut config = kube::Config::new(format!("http://{address}").parse().unwrap());
    config.read_timeout = Some(Duration::from_secs(120));
    let builder = kube::client::ClientBuilder::try_from(config).unwrap();
    if counted { builder.with_layer(&api_request_layer()).build() } else { builder.build() }
}

fn writes() -> u64 {
    WRITE_VERBS.iter().map(|v| metrics().api_requests(v)).sum()
}

fn requests() -> u64 {
    ALL_VERBS.iter().map(|v| metrics().api_requests(v)).sum()
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn tenant(i: usize) -> Value {
    json!({"apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": format!("t{i}")},
        "spec": {"namespaces": [format!("t{i}-a"), format!("t{i}-b")],
                 "quota": {"cpu": "64", "memory": "128Gi", "pods": 200},
                 "members": [{"kind": "Group", "name": format!("t{i}-admins"), "role": "projectAdmin"},
                             {"kind": "User", "name": format!("dev{i}"), "role": "member"}]}})
}

fn workload(j: usize, tenants: usize) -> Value {
    let namespace = format!("t{}-{}", j % tenants, if (j / tenants).is_multiple_of(2) { "a" } else { "b" });
    let mut spec = json!({"kind": "Deployment", "replicas": 1,
        "template": {"spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1",
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}}}]}}});
    if j.is_multiple_of(2) {
        spec["expose"] = json!({"ports": [{"port": 80}]});
    }
    json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload",
        "metadata": {"name": format!("w{j}"), "namespace": namespace}, "spec": spec})
}

/// Desired objects built per second by the builders alone, on this thread.
fn build_rate(tenants: usize, workloads: usize) -> f64 {
    let config = OperatorConfig::default();
    let catalog = scs_operator::catalog::Catalog {
        tenants: (0..tenants).map(|i| serde_json::from_value(tenant(i)).unwrap()).collect(),
        networks: Vec::new(),
        workloads: (0..workloads).map(|j| serde_json::from_value(workload(j, tenants)).unwrap()).collect(),
    };
    // Each workload's tenant is looked up before the clock starts: only the builders are timed.
    let pairs: Vec<_> = catalog
        .workloads
        .iter()
        .map(|w| (w, catalog.tenant_of_namespace(w.metadata.namespace.as_deref().unwrap()).unwrap()))
        .collect();
    let started = Instant::now();
    let mut built = 0usize;
    while started.elapsed() < Duration::from_secs(2) {
        for tenant in &catalog.tenants {
            built += scs_operator::builders::tenant_children(tenant, &catalog, &config).len();
        }
        for (workload, tenant) in &pairs {
            built += scs_operator::builders::workload::workload_children(workload, tenant, &config).len();
        }
    }
    built as f64 / started.elapsed().as_secs_f64()
}

/// Objects counted by the fake server's test-only `/_fake/count` endpoint: cheap for thousands of
/// objects (nothing is listed, so the harness adds nothing to the operator's memory).
async fn count(harness: &Client, path: &str, filters: &[(&str, &str)]) -> usize {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("path", path);
    for (key, value) in filters {
        query.append_pair(key, value);
    }
    let request = http::Request::get(format!("/_fake/count?{}", query.finish())).body(Vec::new()).unwrap();
    let answer: Value = harness.request(request).await.unwrap_or_default();
    answer["count"].as_u64().unwrap_or(0) as usize
}

/// Tenants Ready for their latest generation, and workloads Running.
async fn all_ready(harness: &Client) -> (usize, usize) {
    let tenants = count(harness, "/apis/scs.dev/v1alpha1/tenants", &[("condition", "Ready")]).await;
    let running = count(harness, "/apis/scs.dev/v1alpha1/secureworkloads", &[("phase", "Running")]).await;
    (tenants, running)
}

/// Plays the Deployment controller: every Deployment of ours reports its replicas ready for its
/// latest generation, as soon as it is created or changed (a watch, not a poll).
async fn roll_out(harness: Client) {
    let deployments: Api<Deployment> = Api::all(harness.clone());
    let config = watcher::Config::default().labels(MANAGED);
    watcher(deployments, config)
        .default_backoff()
        .applied_objects()
        .filter_map(|d| future::ready(d.ok()))
        .filter(|d| {
            let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let done = d
                .status
                .as_ref()
                .is_some_and(|s| s.observed_generation == d.metadata.generation && s.ready_replicas == Some(replicas));
            future::ready(!done)
        })
        .for_each_concurrent(16, |d| {
            let harness = harness.clone();
            async move {
                let api: Api<Deployment> = Api::namespaced(harness, &d.namespace().unwrap());
                let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let status = json!({"status": {"observedGeneration": d.metadata.generation, "replicas": replicas,
                    "readyReplicas": replicas, "updatedReplicas": replicas, "availableReplicas": replicas,
                    "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}});
                let _ = api.patch_status(&d.name_any(), &PatchParams::default(), &Patch::Merge(status)).await;
            }
        })
        .await;
}

/// With SCALE_DEBUG, a stalled run names a few workloads that are not running and why.
async fn report_stalled(harness: &Client) {
    let api: Api<SecureWorkload> = Api::all(harness.clone());
    let Ok(list) = api.list(&Default::default()).await else { return };
    let stalled = list
        .items
        .iter()
        .filter(|w| w.status.as_ref().and_then(|s| s.phase.clone()) != Some(scs_operator::api::WorkloadPhase::Running));
    for w in stalled.take(5) {
        eprintln!(
            "stalled {}/{}: {}",
            w.namespace().unwrap_or_default(),
            w.name_any(),
            serde_json::to_string(&w.status).unwrap_or_default()
        );
    }
}

async fn children(harness: &Client) -> usize {
    let mut total = 0;
    for kind in managed_kinds() {
        let plural = &kind.resource.plural;
        let path = match kind.resource.group.as_str() {
            "" => format!("/api/{}/{plural}", kind.resource.version),
            group => format!("/apis/{group}/{}/{plural}", kind.resource.version),
        };
        total += count(harness, &path, &[("labelSelector", MANAGED)]).await;
    }
    total
}

fn start_controllers(client: Client) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(scs_operator::controller::run(client, OperatorConfig::default(), None, async {
        let _ = stopped.await;
    }));
    (stop, task)
}

#[tokio::main]
async fn main() {
    let tenants = arg("--tenants", 100);
    let workloads = arg("--workloads", 1000);
    let server_binary = std::env::current_exe().unwrap().with_file_name("fake-apiserver");
    let mut server = Command::new(&server_binary).stdout(Stdio::piped()).spawn().unwrap_or_else(|e| {
        panic!("cannot start {}: {e} (build it: cargo build --release -p e2e)", server_binary.display())
    });
    let mut address = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut address).unwrap();
    let address = address.trim().to_string();
    let operator = client(&address, true);
    let harness = client(&address, false);

    let (stop, task) = start_controllers(operator.clone());
    let started = Instant::now();
    eprintln!("creating {tenants} tenants and {workloads} workloads");
    let tenant_api: Api<Tenant> = Api::all(harness.clone());
    stream::iter(0..tenants)
        .for_each_concurrent(32, |i| {
            let api = tenant_api.clone();
            async move {
                let object: Tenant = serde_json::from_value(tenant(i)).unwrap();
                api.create(&PostParams::default(), &object).await.unwrap();
            }
        })
        .await;
    stream::iter(0..workloads)
        .for_each_concurrent(32, |j| {
            let harness = harness.clone();
            async move {
                let object: SecureWorkload = serde_json::from_value(workload(j, tenants)).unwrap();
                let api: Api<SecureWorkload> = Api::namespaced(harness, object.metadata.namespace.as_deref().unwrap());
                api.create(&PostParams::default(), &object).await.unwrap();
            }
        })
        .await;
    let deployment_controller = tokio::spawn(roll_out(harness.clone()));
    let mut progress = (0, 0, Instant::now());
    loop {
        let (ready, running) = all_ready(&harness).await;
        if (ready, running) != (progress.0, progress.1) {
            progress = (ready, running, Instant::now());
        } else if progress.2.elapsed() > Duration::from_secs(15) && std::env::var_os("SCALE_DEBUG").is_some() {
            report_stalled(&harness).await;
            progress.2 = Instant::now();
        }
        eprintln!(
            "{:>6.1}s: {ready}/{tenants} tenants ready, {running}/{workloads} workloads running",
            started.elapsed().as_secs_f64()
        );
        if ready == tenants && running == workloads {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let seconds_to_ready = started.elapsed().as_secs_f64();
    deployment_controller.abort();
    // Let the last status writes and events land before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes_first_pass = writes();
    eprintln!("peak RSS so far (first pass): {:.1} MiB", peak_rss_mib());
    if std::env::var_os("SCALE_DEBUG").is_some() {
        let url = format!("http://{address}/_fake/writes");
        let request = http::Request::get(url).body(Vec::new()).unwrap();
        let breakdown: Value = harness.request(request).await.unwrap_or_default();
        eprintln!("writes by method and resource (operator and harness): {breakdown}");
    }

    // A full resync: new controllers reconcile every object once more.
    eprintln!("restarting the controllers for a full resync");
    let _ = stop.send(());
    task.await.unwrap();
    let before = writes();
    let (tenant_passes, workload_passes) = (metrics().reconciles("tenant"), metrics().reconciles("secureworkload"));
    let (stop, task) = start_controllers(operator.clone());
    while metrics().reconciles("tenant") < tenant_passes + tenants as u64
        || metrics().reconciles("secureworkload") < workload_passes + workloads as u64
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        eprintln!(
            "resync: {} tenant and {} workload reconciles",
            metrics().reconciles("tenant") - tenant_passes,
            metrics().reconciles("secureworkload") - workload_passes
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes_resync = writes() - before;
    let _ = stop.send(());
    task.await.unwrap();

    let children = children(&harness).await;
    let peak = peak_rss_mib();
    let requests_total = requests();
    let _ = server.kill();
    let _ = server.wait();
    let build_rate = build_rate(tenants, workloads);
    // Written by hand to keep the documented key order.
    println!(
        "{{\"tenants\":{tenants},\"workloads\":{workloads},\"children\":{children},\"seconds_to_ready\":{seconds_to_ready:.1},\"requests_total\":{requests_total},\"writes_first_pass\":{writes_first_pass},\"writes_resync\":{writes_resync},\"operator_peak_rss_mib\":{peak:.1},\"build_objects_per_sec\":{build_rate:.0}}}"
    );
}
