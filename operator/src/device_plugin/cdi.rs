//! Container Device Interface (CDI): the plugin describes its devices in a CDI spec file and
//! names them in Allocate (`nvidia.com/gpu=41`), so a CDI-aware runtime (containerd ≥ 1.7 with
//! CDI enabled, CRI-O) injects exactly the nodes of the spec. Allocate keeps its device specs too:
//! runtimes without CDI use those, and CDI edits replace a device node of the same path rather
//! than adding it twice.
//!
//! Facts from the CDI specification (cncf-tags/container-device-interface SPEC.md): a spec has
//! `cdiVersion`, `kind` (`vendor.com/class`), `devices[]` with a `name` and `containerEdits`, and
//! optional top-level `containerEdits` applied when any of its devices is requested; device nodes
//! carry `path` and optionally `hostPath` (since 0.5.0) and `permissions`; device names may start
//! with a digit since 0.5.0; runtimes read `*.json`/`*.yaml` files from `/etc/cdi` and
//! `/var/run/cdi` (the latter wins). We write 0.6.0, which every runtime with CDI support reads.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::allocate::{device_nodes, host_dev_path};
use super::device::Device;
use super::sysfs::HostPaths;

pub const CDI_VERSION: &str = "0.6.0";
/// Where runtimes look for generated (non-static) specs.
pub const DEFAULT_DIR: &str = "/var/run/cdi";

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    pub cdi_version: String,
    pub kind: String,
    pub devices: Vec<SpecDevice>,
    #[serde(skip_serializing_if = "ContainerEdits::is_empty")]
    pub container_edits: ContainerEdits,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecDevice {
    pub name: String,
    pub container_edits: ContainerEdits,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerEdits {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_nodes: Vec<DeviceNode>,
}

impl ContainerEdits {
    fn is_empty(&self) -> bool {
        self.device_nodes.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceNode {
    pub path: String,
    pub host_path: String,
    pub permissions: String,
}

fn node(name: &str) -> DeviceNode {
    let path = host_dev_path(name);
    DeviceNode { host_path: path.clone(), path, permissions: "rw".into() }
}

/// `kind=id`: the fully qualified CDI name of a device.
pub fn qualified_name(kind: &str, id: &str) -> String {
    format!("{kind}={id}")
}

/// Checks a CDI kind: `vendor/class`, the vendor a DNS subdomain, the class alphanumeric with
/// `-`, `_`, `.` inside, at most 63 characters.
pub fn validate_kind(kind: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("CDI kind {kind:?}: {why} (expected vendor.com/class)"));
    let Some((vendor, class)) = kind.split_once('/') else { return bad("no '/'") };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if vendor.is_empty() || vendor.len() > 253 || !vendor.split('.').all(label_ok) {
        return bad("the vendor is not a DNS subdomain");
    }
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if class.is_empty()
        || class.len() > 63
        || !edge(class.chars().next())
        || !edge(class.chars().last())
        || !class.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return bad("the class is not 1-63 alphanumerics with '-', '_' or '.' inside");
    }
    Ok(())
}

/// Whether a device ID can be a CDI device name (alphanumerics, `-`, `_`, `.`, `:`, starting
/// and ending alphanumeric): GPU UUIDs, IOMMU group numbers and `xpuN` all can.
pub fn valid_device_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    edge(name.chars().next())
        && edge(name.chars().last())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// The spec for `devices` (healthy or not: a device's nodes do not change with its health, and a
/// restarted container of a pod that already holds it needs them again). Shared control nodes go
/// into the top-level edits, once. Devices whose ID is no valid CDI name are left out (Allocate
/// then names none for them).
pub fn spec(kind: &str, devices: &[Device], host: &HostPaths) -> Spec {
    let mut shared: Vec<&str> = Vec::new();
    let mut spec_devices = Vec::new();
    for device in devices.iter().filter(|d| valid_device_name(&d.id)) {
        let (own, common) = device_nodes(device, host);
        for name in common {
            if !shared.contains(&name) {
                shared.push(name);
            }
        }
        spec_devices.push(SpecDevice {
            name: device.id.clone(),
            container_edits: ContainerEdits { device_nodes: own.iter().map(|n| node(n)).collect() },
        });
    }
    Spec {
        cdi_version: CDI_VERSION.into(),
        kind: kind.into(),
        devices: spec_devices,
        container_edits: ContainerEdits { device_nodes: shared.into_iter().map(node).collect() },
    }
}

/// The IDs a spec describes.
pub fn names(spec: &Spec) -> BTreeSet<String> {
    spec.devices.iter().map(|d| d.name.clone()).collect()
}

/// Writes `contents` to `dir/file_name` so that a reader sees the old file or the new one, never
/// a part: a temporary file in the same directory (a name runtimes skip: it does not end in
/// `.json`), flushed to disk, then renamed over the target.
pub fn write_atomically(dir: &Path, file_name: &str, contents: &[u8]) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let target = dir.join(file_name);
    let temporary = dir.join(format!(".{file_name}.tmp"));
    let result = (|| {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temporary, &target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result.map(|()| target)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::device_plugin::device::{Access, Health, test_device};

    fn host() -> (tempfile::TempDir, HostPaths) {
        let tmp = tempfile::tempdir().unwrap();
        let host = HostPaths { sysfs: tmp.path().join("sys"), dev: tmp.path().join("dev") };
        fs::create_dir_all(&host.dev).unwrap();
        (tmp, host)
    }

    #[test]
    fn vfio_spec_names_each_group_and_the_container_node_once() {
        let (_tmp, host) = host();
        let a = test_device("41", "Tesla T4", Access::Vfio { group: 41, cdevs: vec![] });
        let b = Device {
            health: Health::Unhealthy,
            ..test_device("42", "Tesla T4", Access::Vfio { group: 42, cdevs: vec![] })
        };
        let spec = spec("nvidia.com/gpu", &[a, b], &host);
        let node = |p: &str| json!({"path": p, "hostPath": p, "permissions": "rw"});
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            json!({
                "cdiVersion": "0.6.0",
                "kind": "nvidia.com/gpu",
                "devices": [
                    {"name": "41", "containerEdits": {"deviceNodes": [node("/dev/vfio/41")]}},
                    {"name": "42", "containerEdits": {"deviceNodes": [node("/dev/vfio/42")]}},
                ],
                "containerEdits": {"deviceNodes": [node("/dev/vfio/vfio")]},
            })
        );
        assert_eq!(names(&spec), BTreeSet::from(["41".to_string(), "42".to_string()]));
        assert_eq!(qualified_name(&spec.kind, "41"), "nvidia.com/gpu=41");
    }

    #[test]
    fn spec_nodes_match_what_allocate_passes() {
        let (_tmp, host) = host();
        fs::write(host.dev.join("nvidia-uvm"), "").unwrap();
        let devices = [
            test_device("GPU-a", "Tesla T4", Access::NvidiaContainer { minor: 3, uuid: "GPU-a".into() }),
            test_device("xpu1", "Kunlun R200-8F", Access::KunlunContainer { index: 1 }),
            test_device("7", "Tesla T4", Access::Vfio { group: 7, cdevs: vec!["vfio2".into()] }),
        ];
        let spec = spec("example.com/acc", &devices, &host);
        let shared: Vec<&str> = spec.container_edits.device_nodes.iter().map(|n| n.host_path.as_str()).collect();
        for (device, in_spec) in devices.iter().zip(&spec.devices) {
            let response = crate::device_plugin::allocate::container_response(&[device], &host);
            let allocated: Vec<&str> = response.devices.iter().map(|d| d.host_path.as_str()).collect();
            let own: Vec<&str> = in_spec.container_edits.device_nodes.iter().map(|n| n.host_path.as_str()).collect();
            // The device's own nodes are allocated, and everything allocated is in the spec.
            assert!(own.iter().all(|p| allocated.contains(p)), "{}: {own:?} vs {allocated:?}", device.id);
            assert!(allocated.iter().all(|p| own.contains(p) || shared.contains(p)), "{}: {allocated:?}", device.id);
        }
        assert_eq!(shared, ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/xpuctrl", "/dev/iommu"]);
    }

    #[test]
    fn ids_that_are_no_cdi_names_are_left_out() {
        let (_tmp, host) = host();
        let odd = test_device("-x/y", "Tesla T4", Access::Vfio { group: 1, cdevs: vec![] });
        let fine =
            test_device("GPU-1b2c-3d", "Tesla T4", Access::NvidiaContainer { minor: 0, uuid: "GPU-1b2c-3d".into() });
        assert_eq!(names(&spec("nvidia.com/gpu", &[odd, fine], &host)), BTreeSet::from(["GPU-1b2c-3d".to_string()]));
    }

    #[test]
    fn kinds_are_checked() {
        for good in ["nvidia.com/gpu", "kunlunxin.com/xpu", "k8s.device-plugin.nvidia.com/gpu", "scs.dev/nvidia_gpu.v1"]
        {
            assert_eq!(validate_kind(good), Ok(()), "{good}");
        }
        for bad in ["gpu", "nvidia.com/", "Nvidia.com/gpu", "nvidia.com/gpu/x", "nvidia.com/-gpu", "/gpu"] {
            assert!(validate_kind(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn writes_replace_the_file_whole_and_leave_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cdi");
        let path = write_atomically(&dir, "scs-nvidia-vfio.json", b"{\"a\":1}").unwrap();
        assert_eq!(path, dir.join("scs-nvidia-vfio.json"));
        write_atomically(&dir, "scs-nvidia-vfio.json", b"{\"b\":2}").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"b\":2}");
        let entries: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(entries, ["scs-nvidia-vfio.json"]);
        // A directory that cannot be created is an error, not a panic.
        fs::write(tmp.path().join("file"), "").unwrap();
        assert!(write_atomically(&tmp.path().join("file/cdi"), "x.json", b"{}").is_err());
    }
}
