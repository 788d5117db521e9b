//! Device health: files that must exist (device nodes, sysfs entries) are checked on an
//! interval, and vendor events (NVML XID errors) mark a device unhealthy until the plugin
//! restarts. Every change is published, so ListAndWatch pushes it to the kubelet.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::device::{Device, Health};

/// A vendor library reporting a device failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceFailure {
    pub id: String,
    pub reason: String,
}

/// Recomputes every device's health from its paths and the recorded failures; returns whether
/// anything changed. Pure apart from checking that files exist.
pub fn refresh(devices: &mut [Device], failures: &BTreeMap<String, String>) -> bool {
    let mut changed = false;
    for device in devices.iter_mut() {
        let missing = device.health_paths.iter().find(|path| !path.exists());
        let health = match (failures.get(&device.id), missing) {
            (Some(reason), _) => {
                if device.is_healthy() {
                    tracing::warn!(device = %device, %reason, "device unhealthy");
                }
                Health::Unhealthy
            }
            (None, Some(path)) => {
                if device.is_healthy() {
                    tracing::warn!(device = %device, path = %path.display(), "device unhealthy: path disappeared");
                }
                Health::Unhealthy
            }
            (None, None) => {
                if !device.is_healthy() {
                    tracing::info!(device = %device, "device healthy again");
                }
                Health::Healthy
            }
        };
        changed |= device.health != health;
        device.health = health;
    }
    changed
}

/// Runs until `stop` turns true.
pub async fn watch_health(
    devices: watch::Sender<Vec<Device>>,
    mut failures_rx: mpsc::UnboundedReceiver<DeviceFailure>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = BTreeMap::new();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = ticker.tick() => {}
            Some(failure) = failures_rx.recv() => {
                failures.insert(failure.id, failure.reason);
            }
        }
        devices.send_if_modified(|devices| refresh(devices, &failures));
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::device_plugin::device::{Access, test_device};

    #[test]
    fn missing_paths_and_failures_make_devices_unhealthy_and_paths_can_recover() {
        let tmp = tempfile::tempdir().unwrap();
        let node = tmp.path().join("xpu0");
        fs::write(&node, "").unwrap();
        let mut devices = vec![Device {
            health_paths: vec![node.clone()],
            ..test_device("xpu0", "Kunlun R200-8F", Access::KunlunContainer { index: 0 })
        }];
        let mut failures = BTreeMap::new();
        assert!(!refresh(&mut devices, &failures), "nothing changed");
        fs::remove_file(&node).unwrap();
        assert!(refresh(&mut devices, &failures));
        assert_eq!(devices[0].health, Health::Unhealthy);
        fs::write(&node, "").unwrap();
        assert!(refresh(&mut devices, &failures));
        assert_eq!(devices[0].health, Health::Healthy);
        failures.insert("xpu0".to_string(), "XID 79".to_string());
        assert!(refresh(&mut devices, &failures));
        assert_eq!(devices[0].health, Health::Unhealthy, "failures are sticky");
    }
}
