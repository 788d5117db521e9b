//! Scale harness: `cargo run --release -p e2e --bin scale -- --tenants N --workloads M`.
//!
//! Starts the fake API server in a separate process, runs the controllers in this one, creates N
//! tenants (two namespaces each) and M SecureWorkloads spread over them, plays the Deployment
//! controller until every workload runs, waits until everything is Ready, then restarts the
//! controllers to force a full resync. Prints exactly one JSON line on stdout; progress on stderr.
//!
//! With `--kubeconfig PATH` it runs against that cluster instead (see `e2e/scale-localkube.sh`):
//! the controllers run here as the operator's ServiceAccount (impersonated, so its RBAC and its
//! API Priority and Fairness flow apply), the cluster's own Deployment controller rolls out
//! workloads of zero replicas (no pods: the API server and etcd are measured, not the node), and
//! the API server's request counters and the CPU seconds of the local `kube-apiserver` and `etcd`
//! processes are added to the line. The tenants are deleted at the end.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, future, stream};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use scs_operator::api::{SecureWorkload, Tenant};
use scs_operator::config::OperatorConfig;
use scs_operator::controller::managed::managed_kinds;
use scs_operator::controller::metrics::{api_request_layer, metrics};
use serde_json::{Value, json};

const MANAGED: &str = "app.kubernetes.io/managed-by=scs-operator";
const WRITE_VERBS: [&str; 4] = ["create", "update", "patch", "delete"];
const READ_VERBS: [&str; 3] = ["get", "list", "watch"];
const ALL_VERBS: [&str; 8] = ["get", "list", "watch", "create", "update", "patch", "delete", "other"];

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The operator's identity on a real cluster (manifests/base/operator-rbac.yaml).
const OPERATOR_USER: &str = "system:serviceaccount:scs-system:scs-operator";

fn text_arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// Clients for the operator (counted, paced, and impersonating the operator's ServiceAccount) and
/// for the harness, from a kubeconfig.
async fn kubeconfig_clients(path: &str, pressure: &scs_operator::config::ApiPressure) -> (Client, Client) {
    let kubeconfig = kube::config::Kubeconfig::read_from(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    let harness = Client::try_from(config.clone()).unwrap();
    let mut operator = config;
    operator.auth_info.impersonate = Some(OPERATOR_USER.into());
    operator.auth_info.impersonate_groups = Some(
        ["system:serviceaccounts", "system:serviceaccounts:scs-system", "system:authenticated"]
            .map(String::from)
            .into(),
    );
    // Paced as the operator paces itself (`apiPressure`); the fake server runs unpaced.
    let operator = scs_operator::controller::client::build(operator, pressure).unwrap();
    (operator, harness)
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

fn reads() -> u64 {
    READ_VERBS.iter().map(|v| metrics().api_requests(v)).sum()
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

fn workload(j: usize, tenants: usize, replicas: i32) -> Value {
    let namespace = format!("t{}-{}", j % tenants, if (j / tenants).is_multiple_of(2) { "a" } else { "b" });
    let mut spec = json!({"kind": "Deployment", "replicas": replicas,
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
        workloads: (0..workloads).map(|j| serde_json::from_value(workload(j, tenants, 1)).unwrap()).collect(),
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
async fn all_ready(harness: &Client, real: bool) -> (usize, usize) {
    if real {
        return listed_ready(harness).await;
    }
    let tenants = count(harness, "/apis/scs.dev/v1alpha1/tenants", &[("condition", "Ready")]).await;
    let running = count(harness, "/apis/scs.dev/v1alpha1/secureworkloads", &[("phase", "Running")]).await;
    (tenants, running)
}

/// Whether `name` is one the harness gives (`t12`, `w345`): a real cluster may hold others.
fn ours(name: &str, prefix: char) -> bool {
    name.strip_prefix(prefix).is_some_and(|n| n.parse::<usize>().is_ok())
}

/// [`all_ready`] on a real cluster, which has no counting endpoint: the harness lists (its
/// requests are not the operator's and are not counted as such).
async fn listed_ready(harness: &Client) -> (usize, usize) {
    let tenants: Api<Tenant> = Api::all(harness.clone());
    let ready = tenants.list(&Default::default()).await.map_or(0, |list| {
        list.items
            .iter()
            .filter(|t| ours(&t.name_any(), 't'))
            .filter(|t| {
                let status = t.status.as_ref();
                status.and_then(|s| s.observed_generation) == t.metadata.generation
                    && status.is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count()
    });
    let workloads: Api<SecureWorkload> = Api::all(harness.clone());
    let running = workloads.list(&Default::default()).await.map_or(0, |list| {
        list.items
            .iter()
            .filter(|w| ours(&w.name_any(), 'w'))
            .filter(|w| w.status.as_ref().and_then(|s| s.phase) == Some(scs_operator::api::WorkloadPhase::Running))
            .count()
    });
    (ready, running)
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
        .filter(|w| w.status.as_ref().and_then(|s| s.phase) != Some(scs_operator::api::WorkloadPhase::Running));
    for w in stalled.take(5) {
        eprintln!(
            "stalled {}/{}: {}",
            w.namespace().unwrap_or_default(),
            w.name_any(),
            serde_json::to_string(&w.status).unwrap_or_default()
        );
    }
}

async fn children(harness: &Client, real: bool) -> usize {
    let mut total = 0;
    for kind in managed_kinds() {
        if real {
            let api: Api<DynamicObject> = Api::all_with(harness.clone(), &kind.resource);
            let listed = api.list_metadata(&kube::api::ListParams::default().labels(MANAGED)).await;
            total += listed.map_or(0, |l| l.items.len());
            continue;
        }
        let plural = &kind.resource.plural;
        let path = match kind.resource.group.as_str() {
            "" => format!("/api/{}/{plural}", kind.resource.version),
            group => format!("/apis/{group}/{}/{plural}", kind.resource.version),
        };
        total += count(harness, &path, &[("labelSelector", MANAGED)]).await;
    }
    total
}

fn start_controllers(
    client: Client,
    config: OperatorConfig,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(scs_operator::controller::run(client, config, None, async {
        let _ = stopped.await;
    }));
    (stop, task)
}

/// The API server's `apiserver_request_total` summed by verb, and requests its API Priority and
/// Fairness dispatched for flow schemas named `scs-*` (the operator's, when the apf component is
/// installed), from its `/metrics`. Every client's requests count, the control plane's included.
async fn apiserver_requests(harness: &Client) -> BTreeMap<String, f64> {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = harness.request_text(request).await.unwrap_or_default();
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        let label = |name: &str| {
            let start = series.find(&format!("{name}=\""))? + name.len() + 2;
            series[start..].split('"').next().map(str::to_string)
        };
        if series.starts_with("apiserver_request_total{") {
            *counts.entry(label("verb").unwrap_or_default()).or_default() += value;
        } else if series.starts_with("apiserver_flowcontrol_dispatched_requests_total{")
            && label("flow_schema").is_some_and(|f| f.starts_with("scs"))
        {
            *counts.entry("apf_dispatched_scs".to_string()).or_default() += value;
        }
    }
    counts
}

fn difference(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> Value {
    let by_key: serde_json::Map<String, Value> = after
        .iter()
        .map(|(key, value)| (key.clone(), json!((value - before.get(key).unwrap_or(&0.0)).round() as u64)))
        .filter(|(_, value)| value != &json!(0))
        .collect();
    Value::Object(by_key)
}

/// CPU seconds used so far by the local processes called `name` (localkube runs the control plane
/// as processes on this machine); `None` when there is none.
fn cpu_seconds(name: &str) -> Option<f64> {
    let ticks_per_second = 100.0; // USER_HZ, 100 on Linux
    let mut total = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
        let fields: Vec<&str> =
            stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        let used: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
        *total.get_or_insert(0.0) += used / ticks_per_second;
    }
    total
}

fn control_plane_cpu() -> (Option<f64>, Option<f64>) {
    (cpu_seconds("kube-apiserver"), cpu_seconds("etcd"))
}

fn cpu_used(after: Option<f64>, before: Option<f64>) -> Value {
    match (after, before) {
        (Some(after), Some(before)) => json!(((after - before) * 10.0).round() / 10.0),
        _ => Value::Null,
    }
}

/// Deletes the harness's tenants (the controllers must still run: their finalizer needs them) and
/// waits until they are gone.
async fn remove_tenants(harness: &Client, tenants: usize) {
    let api: Api<Tenant> = Api::all(harness.clone());
    stream::iter(0..tenants)
        .for_each_concurrent(16, |i| {
            let api = api.clone();
            async move {
                // Their namespaces hold workloads: without force a tenant's deletion waits for them.
                let force =
                    json!({"metadata": {"annotations": {scs_operator::controller::tenant::FORCE_DELETE: "true"}}});
                let _ = api.patch(&format!("t{i}"), &PatchParams::default(), &Patch::Merge(&force)).await;
                let _ = api.delete(&format!("t{i}"), &DeleteParams::background()).await;
            }
        })
        .await;
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        let left = api
            .list(&Default::default())
            .await
            .map_or(0, |l| l.items.iter().filter(|t| ours(&t.name_any(), 't')).count());
        eprintln!("cleaning up: {left} tenants left");
        if left == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

#[tokio::main]
async fn main() {
    // As the operator binary does, so the peak RSS measured here is the one it would have.
    scs_operator::allocator::limit_fragmentation();
    // RUST_LOG=scs_operator=info shows what the controllers write (on stderr).
    if std::env::var_os("RUST_LOG").is_some() {
        let filter = tracing_subscriber::EnvFilter::from_default_env();
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    let tenants = arg("--tenants", 100);
    let workloads = arg("--workloads", 1000);
    let kubeconfig = text_arg("--kubeconfig");
    // The operator configuration the cluster's install uses (e.g. its RuntimeClass handler).
    let config = match text_arg("--config") {
        Some(path) => OperatorConfig::from_file(std::path::Path::new(&path)).unwrap_or_else(|e| panic!("{path}: {e}")),
        None => OperatorConfig::default(),
    };
    let real = kubeconfig.is_some();
    let mut server = None;
    let (operator, harness, address) = match &kubeconfig {
        Some(path) => {
            let (operator, harness) = kubeconfig_clients(path, &config.api_pressure).await;
            (operator, harness, String::new())
        }
        None => {
            let server_binary = std::env::current_exe().unwrap().with_file_name("fake-apiserver");
            let mut process = Command::new(&server_binary).stdout(Stdio::piped()).spawn().unwrap_or_else(|e| {
                panic!("cannot start {}: {e} (build it: cargo build --release -p e2e)", server_binary.display())
            });
            let mut address = String::new();
            BufReader::new(process.stdout.take().unwrap()).read_line(&mut address).unwrap();
            server = Some(process);
            let address = address.trim().to_string();
            (client(&address, true), client(&address, false), address)
        }
    };
    // Workloads on a real cluster ask for no pods: a one-node cluster runs 110 at most, and the
    // figures are about the control plane.
    let replicas = if real { 0 } else { 1 };
    let apiserver_before = if real { apiserver_requests(&harness).await } else { BTreeMap::new() };
    let cpu_before = control_plane_cpu();

    let (stop, task) = start_controllers(operator.clone(), config.clone());
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
                let object: SecureWorkload = serde_json::from_value(workload(j, tenants, replicas)).unwrap();
                let api: Api<SecureWorkload> = Api::namespaced(harness, object.metadata.namespace.as_deref().unwrap());
                // A real API server refuses objects in a namespace that does not exist yet (the
                // tenant's first pass creates it): try again until it does.
                loop {
                    match api.create(&PostParams::default(), &object).await {
                        Err(kube::Error::Api(status)) if status.code == 404 => {
                            tokio::time::sleep(Duration::from_millis(500)).await
                        }
                        result => break result.map(drop).unwrap(),
                    }
                }
            }
        })
        .await;
    let deployment_controller = (!real).then(|| tokio::spawn(roll_out(harness.clone())));
    let mut progress = (0, 0, Instant::now());
    loop {
        let (ready, running) = all_ready(&harness, real).await;
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
        tokio::time::sleep(Duration::from_secs(if real { 2 } else { 1 })).await;
    }
    let seconds_to_ready = started.elapsed().as_secs_f64();
    if let Some(task) = deployment_controller {
        task.abort();
    }
    // Let the last status writes and events land before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes_first_pass = writes();
    let reads_first_pass = reads();
    let apiserver_ready = if real { apiserver_requests(&harness).await } else { BTreeMap::new() };
    let cpu_ready = control_plane_cpu();
    eprintln!("peak RSS so far (first pass): {:.1} MiB", peak_rss_mib());
    if std::env::var_os("SCALE_DEBUG").is_some() && !real {
        for what in ["writes", "reads"] {
            let url = format!("http://{address}/_fake/{what}");
            let request = http::Request::get(url).body(Vec::new()).unwrap();
            let breakdown: Value = harness.request(request).await.unwrap_or_default();
            eprintln!("{what} by method and resource (operator and harness): {breakdown}");
        }
    }

    // A full resync: new controllers reconcile every object once more.
    eprintln!("restarting the controllers for a full resync");
    let _ = stop.send(());
    task.await.unwrap();
    let (before, reads_before) = (writes(), reads());
    let (tenant_passes, workload_passes) = (metrics().reconciles("tenant"), metrics().reconciles("secureworkload"));
    let resync_started = Instant::now();
    let (stop, task) = start_controllers(operator.clone(), config.clone());
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
    let seconds_resync = resync_started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes_resync = writes() - before;
    let reads_resync = reads() - reads_before;
    let apiserver_resynced = if real { apiserver_requests(&harness).await } else { BTreeMap::new() };
    let cpu_resynced = control_plane_cpu();
    let children = children(&harness, real).await;
    if real {
        remove_tenants(&harness, tenants).await;
    }
    let _ = stop.send(());
    task.await.unwrap();

    let peak = peak_rss_mib();
    let requests_total = requests();
    if let Some(mut server) = server {
        let _ = server.kill();
        let _ = server.wait();
    }
    let build_rate = build_rate(tenants, workloads);
    // Written by hand to keep the documented key order.
    let mut line = format!(
        "{{\"tenants\":{tenants},\"workloads\":{workloads},\"children\":{children},\"seconds_to_ready\":{seconds_to_ready:.1},\"requests_total\":{requests_total},\"writes_first_pass\":{writes_first_pass},\"writes_resync\":{writes_resync},\"reads_first_pass\":{reads_first_pass},\"reads_resync\":{reads_resync},\"operator_peak_rss_mib\":{peak:.1},\"build_objects_per_sec\":{build_rate:.0}"
    );
    if real {
        let figures = json!({
            "seconds_resync": (seconds_resync * 10.0).round() / 10.0,
            "operator_requests_by_verb": ALL_VERBS.iter().map(|v| (v.to_string(), json!(metrics().api_requests(v)))).collect::<serde_json::Map<_, _>>(),
            "apiserver_requests_first_pass": difference(&apiserver_ready, &apiserver_before),
            "apiserver_requests_resync": difference(&apiserver_resynced, &apiserver_ready),
            "apiserver_cpu_seconds_first_pass": cpu_used(cpu_ready.0, cpu_before.0),
            "apiserver_cpu_seconds_resync": cpu_used(cpu_resynced.0, cpu_ready.0),
            "etcd_cpu_seconds_first_pass": cpu_used(cpu_ready.1, cpu_before.1),
            "etcd_cpu_seconds_resync": cpu_used(cpu_resynced.1, cpu_ready.1),
        });
        for (key, value) in figures.as_object().unwrap() {
            line.push_str(&format!(",\"{key}\":{value}"));
        }
    }
    println!("{line}}}");
}
