//! NVIDIA container mode: discovery and XID health events through NVML (`nvml-wrapper`, which
//! loads `libnvidia-ml.so.1` at run time, so the binary runs on nodes without the driver).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nvml_wrapper::Nvml;
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::NvmlError;
use tokio::sync::mpsc;

use super::device::{Access, Device, Health};
use super::health::DeviceFailure;
use super::sysfs::HostPaths;

/// XIDs caused by applications (illegal address, MMU faults from user code, preemption…), not by
/// the hardware: they must not take a GPU out of service. The set the NVIDIA device plugin skips.
pub const APPLICATION_XIDS: &[u64] = &[13, 31, 43, 45, 68, 109];

/// Loads NVML; the error explains what is missing on the node.
pub fn init() -> Result<Arc<Nvml>, String> {
    Nvml::init().map(Arc::new).map_err(|e| match e {
        NvmlError::LibloadingError(_) | NvmlError::LibraryNotFound => {
            format!("NVML is not available ({e}): libnvidia-ml.so.1 was not found; is the NVIDIA driver installed on this node?")
        }
        NvmlError::DriverNotLoaded => "the NVIDIA kernel driver is not loaded on this node".to_string(),
        other => format!("NVML failed to initialise: {other}"),
    })
}

/// Every GPU NVML sees, with the facts the plugin advertises and labels.
pub fn discover(nvml: &Nvml, host: &HostPaths) -> Result<Vec<Device>, NvmlError> {
    let mut devices = Vec::new();
    for index in 0..nvml.device_count()? {
        let gpu = nvml.device_by_index(index)?;
        let uuid = gpu.uuid()?;
        let minor = gpu.minor_number()?;
        // NVML spells bus IDs `00000000:3B:00.0`; sysfs `0000:3b:00.0`.
        let bus_id = gpu.pci_info()?.bus_id.to_ascii_lowercase();
        let address = bus_id.get(bus_id.len().saturating_sub(12)..).unwrap_or(&bus_id).to_string();
        let sysfs_dir = host.sysfs.join("bus/pci/devices").join(&address);
        let function = super::sysfs::pci_functions(host, super::device::Vendor::Nvidia.pci_vendor_id())
            .ok()
            .and_then(|functions| functions.into_iter().find(|f| f.address == address));
        devices.push(Device {
            id: uuid.clone(),
            // One spelling per model across modes (Quadro RTX 6000/8000).
            model: super::models::canonical_model(&gpu.name()?),
            pci_id: function.as_ref().map(|f| (f.vendor, f.device)),
            pci_addresses: vec![address],
            numa_node: function.as_ref().and_then(|f| f.numa_node),
            pci_root: function.as_ref().and_then(|f| f.root.clone()),
            memory_mib: gpu.memory_info().ok().map(|m| m.total / (1024 * 1024)),
            access: Access::NvidiaContainer { minor, uuid },
            health_paths: vec![host.dev.join(format!("nvidia{minor}")), sysfs_dir],
            health: Health::Healthy,
        });
    }
    Ok(devices)
}

/// Waits for XID critical errors on every GPU (blocking; run on its own thread) and reports
/// those not in `ignored` until `stop` is set.
pub fn watch_xids(
    nvml: &Nvml,
    ignored: &[u64],
    failures: mpsc::UnboundedSender<DeviceFailure>,
    stop: &AtomicBool,
) -> Result<(), NvmlError> {
    let mut set = nvml.create_event_set()?;
    for index in 0..nvml.device_count()? {
        let gpu = nvml.device_by_index(index)?;
        set = gpu.register_events(EventTypes::CRITICAL_XID_ERROR, set).map_err(|e| e.error)?;
    }
    while !stop.load(Ordering::Relaxed) {
        let event = match set.wait(1000) {
            Ok(event) => event,
            Err(NvmlError::Timeout) => continue,
            Err(e) => return Err(e),
        };
        let xid = match event.event_data {
            Some(XidError::Value(xid)) => Some(xid),
            _ => None,
        };
        let Some(reason) = xid_failure(xid, ignored) else {
            tracing::info!(?xid, "application XID ignored");
            continue;
        };
        let id = event.device.uuid()?;
        if failures.send(DeviceFailure { id, reason }).is_err() {
            break;
        }
    }
    Ok(())
}

/// Whether an XID takes the GPU out of service, and why. An XID NVML cannot decode counts.
pub fn xid_failure(xid: Option<u64>, ignored: &[u64]) -> Option<String> {
    match xid {
        Some(xid) if ignored.contains(&xid) => None,
        Some(xid) => Some(format!("XID {xid} critical error")),
        None => Some("unknown XID critical error".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_xids_are_skipped_and_others_fail_the_gpu() {
        assert_eq!(xid_failure(Some(13), APPLICATION_XIDS), None);
        assert_eq!(xid_failure(Some(109), APPLICATION_XIDS), None);
        assert_eq!(xid_failure(Some(79), APPLICATION_XIDS).as_deref(), Some("XID 79 critical error"));
        assert_eq!(xid_failure(Some(13), &[]).as_deref(), Some("XID 13 critical error"), "the list is configurable");
        assert!(xid_failure(None, APPLICATION_XIDS).is_some());
    }

    /// Real NVML discovery: run on a GPU machine with `cargo test -p scs-operator nvml -- --ignored --nocapture`.
    #[test]
    #[ignore = "needs an NVIDIA GPU and driver"]
    fn real_nvml_discovery() {
        let nvml = init().expect("NVML");
        let host = HostPaths { sysfs: "/sys".into(), dev: "/dev".into() };
        println!("driver version: {:?}", nvml.sys_driver_version());
        let cuda = nvml.sys_cuda_driver_version();
        println!("CUDA driver version (cuDriverGetVersion): {cuda:?}");
        let certified = super::super::certify::certified_drivers(super::super::device::Vendor::Nvidia, None);
        let label = super::super::certify::cuda_driver_version(
            super::super::device::Vendor::Nvidia,
            super::super::device::Mode::Container,
            None,
            cuda.as_ref().ok().copied(),
            nvml.sys_driver_version().ok().as_deref(),
            &certified,
        );
        println!("scs.dev/cuda-driver-version label: {label:?}");
        assert!(cuda.is_ok_and(|v| v >= 1000), "NVML reports no CUDA version");
        let devices = discover(&nvml, &host).expect("discovery");
        assert!(!devices.is_empty(), "NVML reports no GPUs");
        for device in &devices {
            println!("{device:?}");
            assert!(device.id.starts_with("GPU-"), "{}", device.id);
            assert!(device.health_paths.iter().all(|p| p.exists()), "{:?}", device.health_paths);
        }
        let policy = super::super::models::ModelPolicy::default();
        for device in &devices {
            println!("{}: certified = {}", device.model, policy.allows(device));
        }
    }

    #[test]
    fn missing_library_is_explained() {
        // No NVIDIA driver on CI machines: init must fail with a clear message, not panic.
        if let Err(message) = init() {
            assert!(message.contains("NVIDIA") || message.contains("NVML"), "{message}");
        }
    }
}
