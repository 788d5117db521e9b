//! The GPU device-plugin shim (`scs-operator device-plugin`): advertises NVIDIA GPUs or Kunlun
//! XPUs to the kubelet through the device plugin API `v1beta1`, either as host device nodes
//! (`container` mode) or as whole VFIO-bound PCI devices for Kata VMs (`vfio` mode).
//!
//! Discovery (`nvml`, `sysfs`) and answers (`allocate`, `cdi`, `certify`, `node_labels`) are
//! pure or file-based; `service` and `kubelet` speak gRPC; `health` keeps the advertised list
//! current, and the CDI spec and node labels follow it.

pub mod allocate;
pub mod api;
pub mod cdi;
pub mod certify;
pub mod device;
pub mod health;
pub mod kubelet;
pub mod models;
pub mod node_labels;
pub mod nvml;
pub mod service;
pub mod sysfs;

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use self::certify::Verdict;
use self::device::{Device, Mode, Vendor};
use self::health::DeviceFailure;
use self::kubelet::Registration;
use self::models::ModelPolicy;
use self::node_labels::NodeMetadata;
use self::service::{CdiNames, PluginService};
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
    /// Seconds between scans for devices added or gone (0: discover once, at start).
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub rescan_interval: f64,
    /// Seconds between checks of kubelet.sock and our socket.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub socket_check_interval: f64,
    /// Where the CDI spec describing the advertised devices is written (`scs-<vendor>-<mode>.json`).
    #[arg(long, value_name = "DIR", default_value = cdi::DEFAULT_DIR)]
    pub cdi_dir: PathBuf,
    /// CDI kind of the devices (`vendor.com/class`) [default: the resource name].
    #[arg(long, value_name = "KIND")]
    pub cdi_kind: Option<String>,
    /// Write no CDI spec and name no CDI devices in Allocate (device specs only).
    #[arg(long)]
    pub no_cdi: bool,
    /// Certified driver versions, comma-separated [default: nvidia 450.80.02; kunlun: not checked].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub certified_drivers: Option<Vec<String>>,
    /// Advertise nothing when the driver is not certified or its version cannot be read.
    #[arg(long)]
    pub require_certified_driver: bool,
    /// CUDA version (`major.minor`) the node's driver supports, for the label
    /// `scs.dev/cuda-driver-version` (NVIDIA only). VFIO mode: the sandbox image's driver's
    /// [default: the certified drivers', 11.2 for 450.80.02]; container mode: instead of NVML's.
    #[arg(long, value_name = "VERSION")]
    pub cuda_version: Option<String>,
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

    /// The CDI kind, checked; `None` with `--no-cdi`.
    pub fn cdi_kind(&self) -> Result<Option<String>, String> {
        if self.no_cdi {
            return Ok(None);
        }
        let kind = self.cdi_kind.clone().unwrap_or_else(|| self.resource_name());
        cdi::validate_kind(&kind).map(|()| Some(kind))
    }

    /// `scs-<vendor>-<mode>.json`.
    pub fn cdi_file_name(&self) -> String {
        format!("scs-{}-{}.json", self.vendor.name(), self.mode.name())
    }

    /// `--cuda-version` in NVIDIA's integer encoding, checked.
    pub fn cuda_version(&self) -> Result<Option<u32>, String> {
        let Some(text) = &self.cuda_version else { return Ok(None) };
        if self.vendor != Vendor::Nvidia {
            return Err("--cuda-version applies to --vendor nvidia only".into());
        }
        crate::api::cuda_version_number(text)
            .map(Some)
            .ok_or_else(|| format!("--cuda-version {text:?}: expected a CUDA version major.minor, e.g. 11.2"))
    }

    fn certified_drivers(&self) -> Vec<String> {
        certify::certified_drivers(self.vendor, self.certified_drivers.as_deref())
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
    /// The CUDA version NVML reports for the driver (NVIDIA container mode).
    pub nvml_cuda_version: Option<i32>,
    /// The certification verdict that withheld every device (`--require-certified-driver`).
    pub withheld: Option<Verdict>,
    /// NVML, kept for XID events (NVIDIA container mode only).
    pub nvml: Option<Arc<nvml_wrapper::Nvml>>,
}

/// The devices of the vendor and mode on the node, before any policy, with notes on what was
/// found but cannot be used. NVIDIA container mode needs `nvml`.
fn scan(
    args: &Args,
    host: &HostPaths,
    nvml: Option<&nvml_wrapper::Nvml>,
) -> Result<(Vec<Device>, Vec<String>), String> {
    match (args.vendor, args.mode, nvml) {
        (Vendor::Nvidia, Mode::Container, Some(nvml)) => nvml::discover(nvml, host)
            .map(|devices| (devices, vec![]))
            .map_err(|e| format!("NVML discovery failed: {e}")),
        (Vendor::Nvidia, Mode::Container, None) => Err("NVML is not loaded".into()),
        (vendor, Mode::Vfio, _) => sysfs::discover_vfio(host, vendor).map_err(|e| format!("scanning PCI devices: {e}")),
        (Vendor::Kunlun, Mode::Container, _) => {
            sysfs::discover_kunlun(host).map_err(|e| format!("scanning Kunlun devices: {e}"))
        }
    }
}

/// What a later scan would advertise (the model policy applied; nothing while the driver check
/// withholds devices, which is decided once, at start). `None` when the scan fails: the caller
/// keeps what it has.
fn rescan(args: &Args, nvml: Option<&nvml_wrapper::Nvml>, withheld: bool) -> Option<Vec<Device>> {
    if withheld {
        return Some(vec![]);
    }
    let policy = ModelPolicy::new(args.allow_any_model, args.allow_models.as_deref());
    match scan(args, &args.host(), nvml) {
        Ok((devices, _)) => Some(devices.into_iter().filter(|d| policy.allows(d)).collect()),
        Err(message) => {
            tracing::warn!("rescanning devices failed: {message}; keeping the current list");
            None
        }
    }
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
        nvml_cuda_version: None,
        withheld: None,
        nvml: None,
    };
    let found = match (args.vendor, args.mode) {
        (Vendor::Nvidia, Mode::Container) => match nvml::init() {
            Ok(nvml) => {
                discovery.driver_version = nvml.sys_driver_version().ok();
                discovery.nvml_cuda_version = nvml.sys_cuda_driver_version().ok();
                let found = scan(args, &host, Some(&nvml));
                discovery.nvml = Some(nvml);
                found
            }
            Err(message) => Err(message),
        },
        _ => scan(args, &host, None),
    }
    .map(|(devices, notes)| {
        discovery.notes.extend(notes);
        devices
    });
    let policy = ModelPolicy::new(args.allow_any_model, args.allow_models.as_deref());
    match found {
        Err(message) => discovery.init_error = Some(message),
        Ok(devices) => {
            let (advertised, skipped): (Vec<Device>, Vec<Device>) = devices.into_iter().partition(|d| policy.allows(d));
            if discovery.driver_version.is_none() && args.mode == Mode::Container {
                // NVML failed to say, or Kunlun: the PCI driver's kernel module version.
                discovery.driver_version = advertised
                    .iter()
                    .chain(&skipped)
                    .flat_map(|d| d.pci_addresses.first())
                    .find_map(|address| host.driver_module_version(address));
            }
            let verdict = certify::decide(
                args.vendor,
                args.mode,
                discovery.driver_version.as_deref(),
                &args.certified_drivers(),
                &advertised,
            );
            discovery.advertised = advertised;
            discovery.skipped = skipped;
            if args.require_certified_driver && verdict.is_driver_problem() {
                discovery.init_error = Some(format!(
                    "{} {} devices not advertised (--require-certified-driver): {}",
                    discovery.advertised.len(),
                    args.vendor.name(),
                    verdict.message
                ));
                discovery.skipped.append(&mut discovery.advertised);
                discovery.withheld = Some(verdict);
                return discovery;
            }
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
    let cdi_kind = args.cdi_kind().map_err(anyhow::Error::msg)?;
    let cuda_version = args.cuda_version().map_err(anyhow::Error::msg)?;
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
    // Inventory changes (a GPU bound to vfio-pci or hot-plugged later, one that left) are found
    // by scanning again; health in between.
    // Without NVML there is nothing to rescan with in NVIDIA container mode.
    let can_rescan = discovery.nvml.is_some() || (args.vendor, args.mode) != (Vendor::Nvidia, Mode::Container);
    let rescanner = (args.rescan_interval > 0.0 && can_rescan).then(|| {
        let (args, nvml, withheld) = (args.clone(), discovery.nvml.clone(), discovery.withheld.is_some());
        let every = Duration::from_secs_f64(args.rescan_interval);
        let scan: health::Rescan = Box::new(move || rescan(&args, nvml.as_deref(), withheld));
        (every, scan)
    });
    let health = tokio::spawn(health::watch_health(
        devices_tx,
        failures_rx,
        Duration::from_secs_f64(args.health_interval),
        rescanner,
        stop_rx.clone(),
    ));

    let mut not_advertised = discovery.notes.clone();
    not_advertised.extend(
        discovery
            .skipped
            .iter()
            .map(|d| format!("{d}: not advertised (not a certified or allowed model, or withheld)")),
    );
    let cuda_driver_version = certify::cuda_driver_version(
        args.vendor,
        args.mode,
        cuda_version,
        discovery.nvml_cuda_version,
        discovery.driver_version.as_deref(),
        &args.certified_drivers(),
    );
    let describe = Describe {
        vendor: args.vendor,
        mode: args.mode,
        driver_version: discovery.driver_version.clone(),
        cuda_driver_version,
        certified_drivers: args.certified_drivers(),
        withheld: discovery.withheld.clone(),
        not_advertised,
    };
    let labelling =
        tokio::spawn(label_node(args.node_name.clone(), client, describe, devices_rx.clone(), stop_rx.clone()));

    // The CDI spec follows the device list; Allocate names only what it describes.
    let (written_tx, written_rx) = watch::channel(BTreeSet::new());
    let cdi_writer = cdi_kind.clone().map(|kind| {
        tokio::spawn(write_cdi_specs(
            CdiTarget { dir: args.cdi_dir.clone(), file_name: args.cdi_file_name(), kind, host: args.host() },
            devices_rx.clone(),
            written_tx,
            stop_rx.clone(),
        ))
    });

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
        cdi: cdi_kind.map(|kind| CdiNames { kind, written: written_rx }),
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
    if let Some(writer) = cdi_writer {
        let _ = writer.await;
    }
    if let Some(thread) = xid_thread {
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    Ok(result?)
}

/// The fixed facts the node's labels are computed from, with the current device list.
struct Describe {
    vendor: Vendor,
    mode: Mode,
    driver_version: Option<String>,
    cuda_driver_version: Option<u32>,
    certified_drivers: Vec<String>,
    withheld: Option<Verdict>,
    not_advertised: Vec<String>,
}

impl Describe {
    /// Labels for the healthy devices: an unhealthy GPU is neither counted nor certified.
    fn metadata(&self, devices: &[Device]) -> NodeMetadata {
        let healthy: Vec<Device> = devices.iter().filter(|d| d.is_healthy()).cloned().collect();
        let verdict = self.withheld.clone().unwrap_or_else(|| {
            certify::decide(self.vendor, self.mode, self.driver_version.as_deref(), &self.certified_drivers, &healthy)
        });
        node_labels::node_metadata(
            self.vendor,
            &healthy,
            self.driver_version.as_deref(),
            self.cuda_driver_version,
            &verdict,
            &self.not_advertised,
        )
    }
}

/// Keeps the node's labels in step with the devices: written at start and again whenever the
/// list changes (health, or a rescan finding devices added or gone); the first scan's findings
/// (devices not advertised) also become Warning Events on the Node, once. UNFINISHED: later scans
/// do not update those findings (annotation or Events)., retrying with a capped backoff; says once why not when there is no
/// node name or API server.
async fn label_node(
    node: Option<String>,
    client: Option<kube::Client>,
    describe: Describe,
    mut devices: watch::Receiver<Vec<Device>>,
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
    let mut applied: Option<NodeMetadata> = None;
    let mut delay = Duration::from_secs(1);
    loop {
        let desired = describe.metadata(&devices.borrow_and_update());
        if applied.as_ref() != Some(&desired) {
            match node_labels::apply(client.clone(), describe.vendor, &node, &desired).await {
                Ok(written) => {
                    tracing::info!(%node, labels = ?desired.labels, "node labels written");
                    if applied.is_none() {
                        node_labels::report_not_advertised(
                            client.clone(),
                            describe.vendor,
                            &written,
                            &describe.not_advertised,
                        )
                        .await;
                    }
                    applied = Some(desired);
                    delay = Duration::from_secs(1);
                }
                Err(e) => {
                    tracing::warn!(%node, error = %e, retry_in = ?delay, "writing node labels failed");
                    tokio::select! {
                        _ = stop.wait_for(|stopped| *stopped) => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(60));
                    continue;
                }
            }
        }
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            changed = devices.changed() => if changed.is_err() { return },
        }
    }
}

/// Where and as what the CDI spec is written.
struct CdiTarget {
    dir: PathBuf,
    file_name: String,
    kind: String,
    host: HostPaths,
}

/// Writes the CDI spec for the current devices at start and whenever its content would change,
/// publishing the IDs it describes once it is on disk; a failed write is retried every 30 s (the
/// spec on disk, if any, stays what `written` says). The file is left in place on shutdown: the
/// kubelet re-sends the recorded CDI names when a pod's container restarts, also while the
/// plugin is being replaced.
async fn write_cdi_specs(
    target: CdiTarget,
    mut devices: watch::Receiver<Vec<Device>>,
    written: watch::Sender<BTreeSet<String>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut on_disk: Option<Vec<u8>> = None;
    loop {
        let spec = cdi::spec(&target.kind, &devices.borrow_and_update(), &target.host);
        let failed = match serde_json::to_vec_pretty(&spec) {
            Ok(bytes) if on_disk.as_ref() == Some(&bytes) => false,
            Ok(bytes) => match cdi::write_atomically(&target.dir, &target.file_name, &bytes) {
                Ok(path) => {
                    tracing::info!(path = %path.display(), kind = %spec.kind, devices = spec.devices.len(), "CDI spec written");
                    on_disk = Some(bytes);
                    written.send_replace(cdi::names(&spec));
                    false
                }
                Err(e) => {
                    tracing::warn!(dir = %target.dir.display(), error = %e, "writing the CDI spec failed: Allocate names no CDI devices until it succeeds");
                    true
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "serialising the CDI spec failed");
                true
            }
        };
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            changed = devices.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(30)), if failed => {}
        }
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
        assert_eq!(args.cdi_dir, PathBuf::from("/var/run/cdi"));
        assert_eq!(
            (args.cdi_kind(), args.cdi_file_name()),
            (Ok(Some("nvidia.com/gpu".into())), "scs-nvidia-vfio.json".into())
        );
        assert_eq!(args.certified_drivers(), ["450.80.02"]);
    }

    #[test]
    fn cdi_flags() {
        let args = Args::parse_from(["device-plugin", "--vendor", "kunlun", "--no-cdi"]);
        assert_eq!(args.cdi_kind(), Ok(None));
        let args = Args::parse_from(["device-plugin", "--vendor", "kunlun", "--cdi-kind", "Bad"]);
        assert!(args.cdi_kind().unwrap_err().contains("\"Bad\""));
        let args = Args::parse_from(["device-plugin", "--vendor", "kunlun", "--certified-drivers", "1.2,3.4"]);
        assert_eq!(args.certified_drivers(), ["1.2", "3.4"]);
        assert!(Args::parse_from(["device-plugin", "--vendor", "kunlun"]).certified_drivers().is_empty());
    }

    #[test]
    fn cuda_version_flag() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["device-plugin"];
            argv.extend(extra);
            Args::parse_from(argv).cuda_version()
        };
        assert_eq!(parse(&["--vendor", "nvidia"]), Ok(None));
        assert_eq!(parse(&["--vendor", "nvidia", "--cuda-version", "12.4"]), Ok(Some(12040)));
        let bad = parse(&["--vendor", "nvidia", "--cuda-version", "12"]).unwrap_err();
        assert!(bad.contains("--cuda-version \"12\"") && bad.contains("major.minor"), "{bad}");
        let kunlun = parse(&["--vendor", "kunlun", "--cuda-version", "11.2"]).unwrap_err();
        assert!(kunlun.contains("nvidia only"), "{kunlun}");
    }
}
