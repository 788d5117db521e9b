//! Device health: files that must exist (device nodes, sysfs entries) are checked on an
//! interval, and vendor events (NVML XID errors) mark a device unhealthy until the plugin
//! restarts. The inventory is rescanned on a longer interval, so devices added or gone are
//! followed too. Every change is published, so ListAndWatch, the CDI spec and the node labels
//! follow it.

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

/// A scan of the node's devices (policy applied); `None` keeps the current list.
pub type Rescan = Box<dyn FnMut() -> Option<Vec<Device>> + Send>;

/// Replaces `current` with a rescan's `found` when the inventory differs (IDs or facts, health
/// aside); returns whether it did. Health is recomputed by the next [`refresh`].
pub fn merge_inventory(current: &mut Vec<Device>, found: Vec<Device>) -> bool {
    let facts = |d: &Device| Device { health: Health::Healthy, ..d.clone() };
    if current.len() == found.len() && current.iter().zip(&found).all(|(a, b)| facts(a) == facts(b)) {
        return false;
    }
    let ids = |list: &[Device]| list.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
    tracing::info!(before = ?ids(current), now = ?ids(&found), "device inventory changed");
    *current = found;
    true
}

/// Runs until `stop` turns true; with `rescan`, also scans the inventory every given interval.
pub async fn watch_health(
    devices: watch::Sender<Vec<Device>>,
    mut failures_rx: mpsc::UnboundedReceiver<DeviceFailure>,
    interval: Duration,
    rescan: Option<(Duration, Rescan)>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = BTreeMap::new();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (rescan_every, mut scan) = match rescan {
        Some((every, scan)) => (every, Some(scan)),
        None => (Duration::MAX, None),
    };
    let mut last_scan = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = ticker.tick() => {}
            Some(failure) = failures_rx.recv() => {
                failures.insert(failure.id, failure.reason);
            }
        }
        let found = match scan.as_mut() {
            Some(scan) if last_scan.elapsed() >= rescan_every => {
                last_scan = tokio::time::Instant::now();
                scan()
            }
            _ => None,
        };
        devices.send_if_modified(|devices| {
            let replaced = found.is_some_and(|found| merge_inventory(devices, found));
            refresh(devices, &failures) | replaced
        });
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

    #[test]
    fn a_rescan_replaces_the_inventory_only_when_it_differs() {
        let xpu = |id: &str, index| test_device(id, "Kunlun R200-8F", Access::KunlunContainer { index });
        let mut devices = vec![Device { health: Health::Unhealthy, ..xpu("xpu0", 0) }];
        // The same devices: health is not the scan's business.
        assert!(!merge_inventory(&mut devices, vec![xpu("xpu0", 0)]));
        assert_eq!(devices[0].health, Health::Unhealthy);
        assert!(merge_inventory(&mut devices, vec![xpu("xpu0", 0), xpu("xpu1", 1)]));
        assert_eq!(devices.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["xpu0", "xpu1"]);
        assert!(merge_inventory(&mut devices, vec![xpu("xpu1", 1)]));
        assert_eq!(devices.len(), 1);
    }
}
