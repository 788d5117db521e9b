//! Pure answers to Allocate and GetPreferredAllocation: which device nodes and environment a
//! container gets, and which devices fit together best.

use std::collections::{BTreeMap, HashMap};

use super::api::{ContainerAllocateResponse, DeviceSpec};
use super::device::{Access, Device, natural_cmp};
use super::sysfs::HostPaths;

/// Device nodes are always reported at their host path under `/dev`, whatever `--dev-root` the
/// plugin reads them from (the kubelet resolves them on the host).
const HOST_DEV: &str = "/dev";

/// The device nodes of one device, as names under `/dev`: its own, and the shared control nodes
/// any container using a device of its kind also needs. Allocate and the CDI spec both come from
/// here, so the two always name the same nodes.
pub fn device_nodes(device: &Device, host: &HostPaths) -> (Vec<String>, Vec<&'static str>) {
    match &device.access {
        // nvidia-uvm nodes appear only once the module is loaded; a missing node in a device
        // spec would fail the container, so only present ones are passed.
        Access::NvidiaContainer { minor, .. } => (
            vec![format!("nvidia{minor}")],
            ["nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"]
                .into_iter()
                .filter(|name| *name == "nvidiactl" || host.dev.join(name).exists())
                .collect(),
        ),
        Access::KunlunContainer { index } => (vec![format!("xpu{index}")], vec!["xpuctrl"]),
        // iommufd: the functions' character devices and /dev/iommu replace the group node.
        Access::Vfio { cdevs, .. } if !cdevs.is_empty() => {
            (cdevs.iter().map(|cdev| format!("vfio/devices/{cdev}")).collect(), vec!["iommu"])
        }
        Access::Vfio { group, .. } => (vec![format!("vfio/{group}")], vec!["vfio/vfio"]),
    }
}

/// The host path of a node named by [`device_nodes`].
pub fn host_dev_path(node: &str) -> String {
    format!("{HOST_DEV}/{node}")
}

/// What the kubelet injects into one container for `devices` (all known and healthy).
pub fn container_response(devices: &[&Device], host: &HostPaths) -> ContainerAllocateResponse {
    let mut nodes: Vec<String> = Vec::new();
    let mut envs = HashMap::new();
    let mut uuids = Vec::new();
    let mut xpus = Vec::new();
    // Shared nodes (control devices) come after the per-device ones, once.
    let mut shared: Vec<&str> = Vec::new();
    for device in devices {
        let (own, common) = device_nodes(device, host);
        nodes.extend(own);
        shared.extend(common);
        match &device.access {
            Access::NvidiaContainer { uuid, .. } => uuids.push(uuid.clone()),
            Access::KunlunContainer { index } => xpus.push(index.to_string()),
            Access::Vfio { .. } => {}
        }
    }
    for name in shared {
        if !nodes.iter().any(|n| n == name) {
            nodes.push(name.to_string());
        }
    }
    if !uuids.is_empty() {
        envs.insert("NVIDIA_VISIBLE_DEVICES".to_string(), uuids.join(","));
    }
    if !xpus.is_empty() {
        envs.insert("XPU_VISIBLE_DEVICES".to_string(), xpus.join(","));
    }
    ContainerAllocateResponse {
        envs,
        devices: nodes
            .into_iter()
            .map(|node| {
                let path = host_dev_path(&node);
                DeviceSpec { container_path: path.clone(), host_path: path, permissions: "rw".into() }
            })
            .collect(),
        ..Default::default()
    }
}

/// Where a device sits: devices sharing a NUMA node, and better still a PCI root, talk faster.
type Locality = (Option<i64>, Option<String>);

fn locality(device: &Device) -> Locality {
    (device.numa_node, device.pci_root.clone())
}

/// Picks `size` devices from `available`, always including `must_include`, keeping the set on
/// one NUMA node and PCI root where possible. Without required devices it starts from the
/// smallest locality group that can hold the whole request (best fit), so large groups stay
/// whole for large requests. Unknown IDs are ignored; the result is in natural ID order.
pub fn preferred_allocation(available: &[&Device], must_include: &[String], size: usize) -> Vec<String> {
    let mut chosen: Vec<&Device> =
        must_include.iter().filter_map(|id| available.iter().copied().find(|d| &d.id == id)).collect();
    let needed = size.saturating_sub(chosen.len());
    let mut candidates: Vec<&Device> =
        available.iter().copied().filter(|d| !chosen.iter().any(|c| c.id == d.id)).collect();
    candidates.sort_by(|a, b| natural_cmp(&a.id, &b.id));

    let anchor: Option<Locality> = match chosen.first() {
        Some(first) => Some(locality(first)),
        None => best_fit_group(&candidates, needed),
    };
    if let Some((numa, root)) = anchor {
        // Stable sort: same root first, then same NUMA node, then the rest, each in ID order.
        candidates.sort_by_key(|d| (d.numa_node != numa, d.numa_node != numa || d.pci_root != root));
    }
    chosen.extend(candidates.into_iter().take(needed));
    let mut ids: Vec<String> = chosen.into_iter().map(|d| d.id.clone()).collect();
    ids.sort_by(|a, b| natural_cmp(a, b));
    ids
}

/// The smallest (NUMA, root) group holding `needed` devices; failing that the smallest NUMA
/// node that does; failing that the largest NUMA node.
fn best_fit_group(candidates: &[&Device], needed: usize) -> Option<Locality> {
    let mut by_root: BTreeMap<Locality, usize> = BTreeMap::new();
    let mut by_numa: BTreeMap<Option<i64>, usize> = BTreeMap::new();
    for device in candidates {
        *by_root.entry(locality(device)).or_default() += 1;
        *by_numa.entry(device.numa_node).or_default() += 1;
    }
    let smallest_fitting = |counts: Vec<(Locality, usize)>| {
        counts.into_iter().filter(|(_, count)| *count >= needed).min_by_key(|(_, count)| *count).map(|(key, _)| key)
    };
    smallest_fitting(by_root.into_iter().collect())
        .or_else(|| smallest_fitting(by_numa.iter().map(|(numa, count)| ((*numa, None), *count)).collect()))
        .or_else(|| by_numa.into_iter().max_by_key(|(_, count)| *count).map(|(numa, _)| (numa, None)))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::device_plugin::device::test_device;

    fn device(id: &str, numa: i64, root: &str, access: Access) -> Device {
        Device { numa_node: Some(numa), pci_root: Some(root.into()), ..test_device(id, "Tesla T4", access) }
    }

    fn vfio(group: u32, numa: i64, root: &str) -> Device {
        device(&group.to_string(), numa, root, Access::Vfio { group, cdevs: vec![] })
    }

    fn host() -> (tempfile::TempDir, HostPaths) {
        let tmp = tempfile::tempdir().unwrap();
        let host = HostPaths { sysfs: tmp.path().join("sys"), dev: tmp.path().join("dev") };
        fs::create_dir_all(&host.dev).unwrap();
        (tmp, host)
    }

    fn paths(response: &ContainerAllocateResponse) -> Vec<&str> {
        response.devices.iter().map(|d| d.host_path.as_str()).collect()
    }

    #[test]
    fn nvidia_container_gets_its_nodes_control_nodes_and_uuids() {
        let (_tmp, host) = host();
        fs::write(host.dev.join("nvidia-uvm"), "").unwrap();
        let a = device("GPU-a", 0, "r", Access::NvidiaContainer { minor: 0, uuid: "GPU-a".into() });
        let b = device("GPU-b", 0, "r", Access::NvidiaContainer { minor: 3, uuid: "GPU-b".into() });
        let response = container_response(&[&a, &b], &host);
        assert_eq!(paths(&response), ["/dev/nvidia0", "/dev/nvidia3", "/dev/nvidiactl", "/dev/nvidia-uvm"]);
        assert_eq!(response.envs["NVIDIA_VISIBLE_DEVICES"], "GPU-a,GPU-b");
        assert!(response.devices.iter().all(|d| d.container_path == d.host_path && d.permissions == "rw"));
    }

    #[test]
    fn vfio_gets_groups_or_iommufd_character_devices() {
        let (_tmp, host) = host();
        let legacy = vfio(41, 0, "r");
        assert_eq!(paths(&container_response(&[&legacy], &host)), ["/dev/vfio/41", "/dev/vfio/vfio"]);
        let cdev = device("42", 0, "r", Access::Vfio { group: 42, cdevs: vec!["vfio3".into(), "vfio4".into()] });
        let response = container_response(&[&cdev], &host);
        assert_eq!(paths(&response), ["/dev/vfio/devices/vfio3", "/dev/vfio/devices/vfio4", "/dev/iommu"]);
        assert!(response.envs.is_empty());
    }

    #[test]
    fn kunlun_gets_xpu_nodes_and_the_control_node_once() {
        let (_tmp, host) = host();
        let a = device("xpu0", 0, "r", Access::KunlunContainer { index: 0 });
        let b = device("xpu2", 0, "r", Access::KunlunContainer { index: 2 });
        let response = container_response(&[&a, &b], &host);
        assert_eq!(paths(&response), ["/dev/xpu0", "/dev/xpu2", "/dev/xpuctrl"]);
        assert_eq!(response.envs["XPU_VISIBLE_DEVICES"], "0,2");
    }

    #[test]
    fn preferred_allocation_keeps_to_one_numa_node_and_root() {
        let devices =
            [vfio(1, 0, "a"), vfio(2, 0, "b"), vfio(3, 0, "b"), vfio(4, 1, "c"), vfio(5, 1, "c"), vfio(6, 1, "c")];
        let all: Vec<&Device> = devices.iter().collect();
        // Two devices: root b holds exactly two (best fit), leaving root c's three whole.
        assert_eq!(preferred_allocation(&all, &[], 2), ["2", "3"]);
        // Three: root c.
        assert_eq!(preferred_allocation(&all, &[], 3), ["4", "5", "6"]);
        // A required device pulls the rest to its root, then its NUMA node.
        assert_eq!(preferred_allocation(&all, &["1".into()], 3), ["1", "2", "3"]);
        assert_eq!(preferred_allocation(&all, &["5".into()], 2), ["4", "5"]);
        // Four spill over from the largest NUMA node.
        assert_eq!(preferred_allocation(&all, &[], 4).len(), 4);
        assert_eq!(preferred_allocation(&all, &[], 6), ["1", "2", "3", "4", "5", "6"]);
        // Unknown IDs never appear.
        assert_eq!(preferred_allocation(&all[..2], &["99".into()], 1), ["1"]);
    }
}
