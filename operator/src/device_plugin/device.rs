//! What the plugin knows about one accelerator, independent of how it was discovered.

use std::fmt;
use std::path::PathBuf;

/// Accelerator vendors the plugin serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Vendor {
    /// NVIDIA GPUs (PCI vendor 0x10de).
    Nvidia,
    /// Baidu Kunlun XPUs (PCI vendor 0x1d22).
    Kunlun,
}

impl Vendor {
    pub fn pci_vendor_id(self) -> u16 {
        match self {
            Vendor::Nvidia => 0x10de,
            Vendor::Kunlun => 0x1d22,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Vendor::Nvidia => "nvidia",
            Vendor::Kunlun => "kunlun",
        }
    }

    /// The extended resource advertised when `--resource-name` is not given; the same names the
    /// operator's quota and workload builders use by default.
    pub fn default_resource_name(self) -> &'static str {
        match self {
            Vendor::Nvidia => "nvidia.com/gpu",
            Vendor::Kunlun => "kunlunxin.com/xpu",
        }
    }
}

/// How a device is handed to a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Device nodes of the host's driver, for runtimes that share the host kernel (runc-class
    /// nodes); the vendor's container toolkit does the rest.
    Container,
    /// The whole PCI function bound to `vfio-pci`, passed through into the Kata VM.
    Vfio,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Container => "container",
            Mode::Vfio => "vfio",
        }
    }
}

/// Health as the kubelet spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "Healthy",
            Health::Unhealthy => "Unhealthy",
        }
    }
}

/// Vendor- and mode-specific facts Allocate needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// NVIDIA driver device node `/dev/nvidia<minor>`; containers see the GPU by UUID.
    NvidiaContainer { minor: u32, uuid: String },
    /// Kunlun driver device node `/dev/xpu<index>`.
    KunlunContainer { index: u32 },
    /// An IOMMU group bound to vfio-pci; `cdevs` are the iommufd character devices
    /// (`vfioN` under `/dev/vfio/devices`) of the group's functions, when the kernel has them.
    Vfio { group: u32, cdevs: Vec<String> },
}

/// One advertised (or skipped) device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// The ID the kubelet sees: a GPU UUID, `xpuN`, or the IOMMU group number.
    pub id: String,
    /// Marketing name, e.g. `Tesla T4`.
    pub model: String,
    /// `vendor:device` PCI IDs, e.g. `10de:1eb8`.
    pub pci_id: Option<(u16, u16)>,
    /// PCI addresses of the functions behind the device, e.g. `0000:3b:00.0`.
    pub pci_addresses: Vec<String>,
    /// NUMA node of the device, when the platform reports one.
    pub numa_node: Option<i64>,
    /// PCI root complex (e.g. `pci0000:3a`), for topology-aware allocation.
    pub pci_root: Option<String>,
    pub memory_mib: Option<u64>,
    pub access: Access,
    /// Files that must exist for the device to be usable (device nodes, sysfs entries): one
    /// disappearing makes the device unhealthy.
    pub health_paths: Vec<PathBuf>,
    pub health: Health,
}

impl Device {
    pub fn is_healthy(&self) -> bool {
        self.health == Health::Healthy
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}", self.id, self.model)?;
        if let Some(address) = self.pci_addresses.first() {
            write!(f, " at {address}")?;
        }
        write!(f, ")")
    }
}

/// Orders device IDs naturally (`2` before `10`, `xpu2` before `xpu10`) so lists are stable and
/// read the way people number devices.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |s: &str| {
        let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (head, tail) = s.split_at(s.len() - digits);
        (head.to_string(), tail.parse::<u64>().ok())
    };
    split(a).cmp(&split(b)).then_with(|| a.cmp(b))
}

/// A healthy device with only an ID, a model and access facts: the base of test fixtures.
#[cfg(test)]
pub fn test_device(id: &str, model: &str, access: Access) -> Device {
    Device {
        id: id.into(),
        model: model.into(),
        pci_id: None,
        pci_addresses: vec![],
        numa_node: None,
        pci_root: None,
        memory_mib: None,
        access,
        health_paths: vec![],
        health: Health::Healthy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_compares_trailing_numbers_by_value() {
        let mut ids = vec!["xpu10", "xpu2", "xpu1", "12", "3"];
        ids.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(ids, ["3", "12", "xpu1", "xpu2", "xpu10"]);
    }
}
