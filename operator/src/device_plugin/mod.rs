//! The GPU device-plugin shim (`scs-operator device-plugin`): advertises NVIDIA GPUs or Kunlun
//! XPUs to the kubelet through the device plugin API `v1beta1`, either as host device nodes
//! (`container` mode) or as whole VFIO-bound PCI devices for Kata VMs (`vfio` mode).
//!
//! Discovery (`nvml`, `sysfs`) and answers (`allocate`, `node_labels`) are pure or file-based;
//! `service` and `kubelet` speak gRPC; `health` keeps the advertised list current.

pub mod allocate;
pub mod api;
pub mod device;
pub mod health;
pub mod kubelet;
pub mod models;
pub mod node_labels;
pub mod nvml;
pub mod service;
pub mod sysfs;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use self::device::{Device, Mode, Vendor};
use self::health::DeviceFailure;
use self::kubelet::Registration;
use self::models::ModelPolicy;
use self::service::PluginService;
use self::sysfs::HostPaths;

/// Flags of `scs-operator device-plugin`.
#[derive(clap::Parser, Clone, Debug)]
pub struct Args {
    /// Accelerator vendor.
    #[arg(long, value_enum)]
    pub vendor: Vendor,
    /// `container`: host device nodes; `vfio`: whole PCI devices bound to vfio-pci, for Kata.
    #[arg(long, value_enum, default_value = "vfio")]
    pub mode: Mode,
    /// Extended resource to advertise [default: nvidia.com/gpu or kunlunxin.com/xpu].
    #[arg(long, value_name = "NAME")]
    pub resource_name: Option<String>,
    /// The kubelet's device-plugins directory (holds kubelet.sock and our socket).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/kubelet/device-plugins")]
    pub kubelet_dir: PathBuf,
    /// Where the host's sysfs is mounted.
    #[arg(long, value_name = "DIR", default_value = "/sys")]
    pub sysfs_root: PathBuf,
    /// Where the host's /dev is mounted (device specs always name host paths under /dev).
    #[arg(long, value_name = "DIR", default_value = "/dev")]
    pub dev_root: PathBuf,
    /// Also advertise these models besides the certified ones: comma-separated model families
    /// (`NVIDIA A100`) or PCI IDs (`10de:20b5`).
    #[arg(long, value_name = "LIST", conflicts_with = "allow_any_model")]
    pub allow_models: Option<String>,
    /// Advertise every device of the vendor, certified or not.
    #[arg(long)]
    pub allow_any_model: bool,
    /// Node whose labels describe the devices (in a DaemonSet: from the downward API).
    #[arg(long, value_name = "NAME", env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Exit non-zero when no device or driver is found instead of advertising nothing.
    #[arg(long)]
    pub fail_on_init_error: bool,
    /// NVML XIDs that do not make a GPU unhealthy (application errors; default
    /// `nvml::APPLICATION_XIDS`).
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "13,31,43,45,68,109")]
    pub ignored_xids: Vec<u64>,
    /// Seconds between checks of device nodes and sysfs entries.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub health_interval: f64,
    /// Seconds between checks of kubelet.sock and our socket.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub socket_check_interval: f64,
    /// Log format: `text` or `json`.
    #[arg(long, default_value = "text", env = "SCS_LOG_FORMAT", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl Args {
    pub fn resource_name(&self) -> String {
        self.resource_name.clone().unwrap_or_else(|| self.vendor.default_resource_name().to_string())
    }

    /// `scs-<vendor>-<mode>.sock`.
    pub fn socket_name(&self) -> String {
        format!("scs-{}-{}.sock", self.vendor.name(), self.mode.name())
    }

    fn host(&self) -> HostPaths {
        HostPaths { sysfs: self.sysfs_root.clone(), dev: self.dev_root.clone() }
    }
}

/// What discovery found.
pub struct Discovery {
    /// Devices the model policy allows.
    pub advertised: Vec<Device>,
    /// Devices found but not certified or allowed.
    pub skipped: Vec<Device>,
    /// Things an operator should know (devices bound to the wrong driver, missing nodes…).
    pub notes: Vec<String>,
    /// Why nothing could be discovered, when that is the case.
    pub init_error: Option<String>,
    pub driver_version: Option<String>,
    /// NVML, kept for XID events (NVIDIA container mode only).
    pub nvml: Option<Arc<nvml_wrapper::Nvml>>,
}

/// Finds the node's devices for the vendor and mode and applies the model policy.
pub fn discover(args: &Args) -> Discovery {
    let host = args.host();
    let mut discovery = Discovery {
        advertised: vec![],
        skipped: vec![],
        notes: vec![],
        init_error: None,
        driver_version: None,
        nvml: None,
    };
    let found = match (args.vendor, args.mode) {
        (Vendor::Nvidia, Mode::Container) => match nvml::init() {
            Ok(nvml) => {
                discovery.driver_version = nvml.sys_driver_version().ok();
                let found = nvml::discover(&nvml, &host).map_err(|e| format!("NVML discovery failed: {e}"));
                discovery.nvml = Some(nvml);
                found
            }
            Err(message) => Err(message),
        },
        (vendor, Mode::Vfio) => sysfs::discover_vfio(&host, vendor)
            .map(|(devices, notes)| {
                discovery.notes.extend(notes);
                devices
            })
            .map_err(|e| format!("scanning PCI devices: {e}")),
        (Vendor::Kunlun, Mode::Container) => sysfs::discover_kunlun(&host)
            .map(|(devices, notes)| {
                discovery.notes.extend(notes);
                devices
            })
            .map_err(|e| format!("scanning Kunlun devices: {e}")),
    };
    let policy = ModelPolicy::new(args.allow_any_model, args.allow_models.as_deref());
    match found {
        Err(message) => discovery.init_error = Some(message),
        Ok(devices) => {
            let (advertised, skipped) = devices.into_iter().partition(|d| policy.allows(d));
            discovery.advertised = advertised;
            discovery.skipped = skipped;
            if discovery.advertised.is_empty() {
                let why = match discovery.skipped.len() {
                    0 => "none found".to_string(),
                    n => format!("{n} found, none of a certified or allowed model"),
                };
                discovery.init_error =
                    Some(format!("no {} devices to advertise in {} mode: {why}", args.vendor.name(), args.mode.name()));
            }
        }
    }
    discovery
}

/// Runs the plugin until `shutdown` resolves, with a client inferred from the environment (in
/// cluster or kubeconfig) for node labels. Errors only for `--fail-on-init-error` and for
/// failures to serve our socket at all.
pub async fn run(args: Args, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    run_with_client(args, None, shutdown).await
}

/// [`run`] with the API client for node labels given (tests pass one for a fake API server).
pub async fn run_with_client(
    args: Args,
    client: Option<kube::Client>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let discovery = discover(&args);
    for note in &discovery.notes {
        tracing::warn!("{note}");
    }
    for device in &discovery.skipped {
        tracing::warn!(device = %device, "not a certified model: not advertised (see --allow-models)");
    }
    if let Some(message) = &discovery.init_error {
        if args.fail_on_init_error {
            anyhow::bail!("{message}");
        }
        tracing::warn!("{message}; advertising no devices");
    }
    for device in &discovery.advertised {
        tracing::info!(device = %device, numa = ?device.numa_node, "advertising");
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let (devices_tx, devices_rx) = watch::channel(discovery.advertised.clone());
    let (failures_tx, failures_rx) = mpsc::unbounded_channel::<DeviceFailure>();

    let xid_stop = Arc::new(AtomicBool::new(false));
    let xid_thread = discovery.nvml.clone().map(|nvml| {
        let (ignored, stop) = (args.ignored_xids.clone(), xid_stop.clone());
        std::thread::spawn(move || {
            if let Err(e) = nvml::watch_xids(&nvml, &ignored, failures_tx, &stop) {
                tracing::warn!(error = %e, "NVML XID events unavailable; health relies on device nodes only");
            }
        })
    });
    let health = tokio::spawn(health::watch_health(
        devices_tx,
        failures_rx,
        Duration::from_secs_f64(args.health_interval),
        stop_rx.clone(),
    ));

    let labels = node_labels::node_labels(args.vendor, &discovery.advertised, discovery.driver_version.as_deref());
    let labelling = tokio::spawn(label_node(args.node_name.clone(), client, labels, stop_rx.clone()));

    let registration = Registration {
        kubelet_dir: args.kubelet_dir.clone(),
        socket_name: args.socket_name(),
        resource_name: args.resource_name(),
        poll: Duration::from_secs_f64(args.socket_check_interval),
    };
    let service = PluginService {
        resource_name: registration.resource_name.clone(),
        devices: devices_rx,
        host: args.host(),
        stop: stop_rx.clone(),
    };
    let serving = kubelet::serve(registration, service, stop_rx);
    tokio::pin!(serving);
    let result = tokio::select! {
        result = &mut serving => result,
        _ = shutdown => {
            tracing::info!("shutting down: stop serving and remove our socket");
            let _ = stop_tx.send(true);
            serving.await
        }
    };
    let _ = stop_tx.send(true);
    xid_stop.store(true, Ordering::Relaxed);
    let _ = health.await;
    let _ = labelling.await;
    if let Some(thread) = xid_thread {
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    Ok(result?)
}

/// Writes the node labels when a node name is known and an API server is reachable, retrying
/// with a capped backoff until it succeeds or the plugin stops; says once why not otherwise.
async fn label_node(
    node: Option<String>,
    client: Option<kube::Client>,
    labels: std::collections::BTreeMap<String, String>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(node) = node else {
        tracing::info!("no --node-name / NODE_NAME: node labels not written");
        return;
    };
    let client = match client {
        Some(client) => client,
        None => match kube::Client::try_default().await {
            Ok(client) => client,
            Err(e) => {
                tracing::info!(error = %e, "no API server reachable: node labels not written");
                return;
            }
        },
    };
    let mut delay = Duration::from_secs(1);
    loop {
        match node_labels::apply(client.clone(), &node, &labels).await {
            Ok(()) => {
                tracing::info!(%node, ?labels, "node labels written");
                return;
            }
            Err(e) => tracing::warn!(%node, error = %e, retry_in = ?delay, "writing node labels failed"),
        }
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(60));
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn default_ignored_xids_are_the_application_ones() {
        let args = Args::parse_from(["device-plugin", "--vendor", "nvidia"]);
        assert_eq!(args.ignored_xids, nvml::APPLICATION_XIDS);
        assert_eq!(
            (args.mode, args.socket_name(), args.resource_name()),
            (Mode::Vfio, "scs-nvidia-vfio.sock".to_string(), "nvidia.com/gpu".to_string())
        );
    }
}
