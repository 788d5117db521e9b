//! Whether a node's accelerators run the certified stack (DESIGN.md §5, product document:
//! NVIDIA driver 450.80.02 — preinstalled and not removable — with CUDA 11.2 or older; Kunlun
//! R200-8F, no driver version named). The verdict becomes the node label
//! `scs.dev/gpu-certified=true|false` with a reason label and a message annotation, and with
//! `--require-certified-driver` an uncertified or unknown driver means nothing is advertised.

use super::device::{Access, Device, Mode, Vendor};
use super::models::is_certified_model;

/// NVIDIA driver versions certified by the product document.
pub const CERTIFIED_NVIDIA_DRIVERS: &[&str] = &["450.80.02"];

pub const CERTIFIED_LABEL: &str = "scs.dev/gpu-certified";
pub const REASON_LABEL: &str = "scs.dev/gpu-certified-reason";
pub const MESSAGE_ANNOTATION: &str = "scs.dev/gpu-certification";

/// The decision: `reason` is a label value (CamelCase), `message` says it in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub certified: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Verdict {
    /// Only driver reasons make `--require-certified-driver` withhold devices: models outside
    /// the certified families are advertised only when the operator allowed them by name.
    pub fn is_driver_problem(&self) -> bool {
        matches!(self.reason, "UncertifiedDriver" | "DriverUnknown")
    }
}

/// The certified driver versions for `vendor` unless `--certified-drivers` gives a list; an
/// empty list means the vendor's driver version is not checked.
pub fn certified_drivers(vendor: Vendor, configured: Option<&[String]>) -> Vec<String> {
    match (configured, vendor) {
        (Some(list), _) => list.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
        (None, Vendor::Nvidia) => CERTIFIED_NVIDIA_DRIVERS.iter().map(|s| s.to_string()).collect(),
        (None, Vendor::Kunlun) => vec![],
    }
}

/// Decides for the devices that would be advertised (healthy ones, when refreshing).
/// `driver_version` is the host driver's in container mode (NVML, or the PCI driver's module
/// version in sysfs); VFIO mode has no host GPU driver: there the binding to `vfio-pci` is what
/// is checked, and the driver is the sandbox image's.
pub fn decide(
    vendor: Vendor,
    mode: Mode,
    driver_version: Option<&str>,
    certified: &[String],
    devices: &[Device],
) -> Verdict {
    let verdict = |certified, reason, message: String| Verdict { certified, reason, message };
    if devices.is_empty() {
        return verdict(false, "NoDevices", format!("no healthy {} device is advertised", vendor.name()));
    }
    let uncertified: Vec<&str> =
        devices.iter().filter(|d| !is_certified_model(&d.model)).map(|d| d.model.as_str()).collect();
    if !uncertified.is_empty() {
        return verdict(
            false,
            "UncertifiedModel",
            format!("advertised by --allow-models but not certified: {}", dedup(uncertified).join(", ")),
        );
    }
    match mode {
        Mode::Vfio => {
            // Discovery only takes functions bound to vfio-pci, and health drops a function that
            // leaves it; anything else here is a bug worth saying.
            if let Some(other) = devices.iter().find(|d| !matches!(d.access, Access::Vfio { .. })) {
                return verdict(false, "NotVfioBound", format!("{other} is not bound to vfio-pci"));
            }
            verdict(
                true,
                "VfioPassthrough",
                format!(
                    "{} certified {} device(s) bound to vfio-pci; the GPU driver runs in the sandbox image{}",
                    devices.len(),
                    vendor.name(),
                    match certified {
                        [] => String::new(),
                        list => format!(", which must carry driver {}", list.join(" or ")),
                    }
                ),
            )
        }
        Mode::Container => match (driver_version.map(str::trim), certified) {
            (_, []) => verdict(
                true,
                "DriverNotChecked",
                format!(
                    "{} certified device(s); no certified {} driver version is configured (driver {})",
                    devices.len(),
                    vendor.name(),
                    driver_version.unwrap_or("unknown")
                ),
            ),
            (None, list) => verdict(
                false,
                "DriverUnknown",
                format!("the {} driver version could not be read; certified: {}", vendor.name(), list.join(", ")),
            ),
            (Some(version), list) if list.iter().any(|c| c == version) => {
                verdict(true, "CertifiedDriver", format!("driver {version} with {} certified device(s)", devices.len()))
            }
            (Some(version), list) => verdict(
                false,
                "UncertifiedDriver",
                format!("driver {version} is not certified (certified: {})", list.join(", ")),
            ),
        },
    }
}

fn dedup(mut items: Vec<&str>) -> Vec<&str> {
    items.sort_unstable();
    items.dedup();
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device_plugin::device::test_device;

    fn vfio(model: &str) -> Device {
        test_device("41", model, Access::Vfio { group: 41, cdevs: vec![] })
    }

    fn nvml(model: &str) -> Device {
        test_device("GPU-a", model, Access::NvidiaContainer { minor: 0, uuid: "GPU-a".into() })
    }

    fn nvidia() -> Vec<String> {
        certified_drivers(Vendor::Nvidia, None)
    }

    #[test]
    fn container_mode_checks_the_driver_version() {
        let t4 = [nvml("Tesla T4")];
        let ok = decide(Vendor::Nvidia, Mode::Container, Some("450.80.02\n"), &nvidia(), &t4);
        assert_eq!((ok.certified, ok.reason), (true, "CertifiedDriver"));
        let newer = decide(Vendor::Nvidia, Mode::Container, Some("535.104.05"), &nvidia(), &t4);
        assert_eq!((newer.certified, newer.reason), (false, "UncertifiedDriver"));
        assert_eq!(newer.message, "driver 535.104.05 is not certified (certified: 450.80.02)");
        assert!(newer.is_driver_problem());
        let unknown = decide(Vendor::Nvidia, Mode::Container, None, &nvidia(), &t4);
        assert_eq!((unknown.certified, unknown.reason, unknown.is_driver_problem()), (false, "DriverUnknown", true));
        // A configured list replaces the product's.
        let configured = certified_drivers(Vendor::Nvidia, Some(&["535.104.05".to_string(), " ".to_string()]));
        assert!(decide(Vendor::Nvidia, Mode::Container, Some("535.104.05"), &configured, &t4).certified);
    }

    #[test]
    fn vfio_mode_checks_the_binding_not_a_host_driver() {
        let verdict =
            decide(Vendor::Nvidia, Mode::Vfio, None, &nvidia(), &[vfio("Tesla T4"), vfio("Tesla V100-SXM2-16GB")]);
        assert_eq!((verdict.certified, verdict.reason), (true, "VfioPassthrough"));
        assert!(verdict.message.contains("must carry driver 450.80.02"), "{}", verdict.message);
        let odd = decide(Vendor::Nvidia, Mode::Vfio, None, &nvidia(), &[nvml("Tesla T4")]);
        assert_eq!((odd.certified, odd.reason), (false, "NotVfioBound"));
    }

    #[test]
    fn models_and_emptiness_come_first() {
        let none = decide(Vendor::Nvidia, Mode::Container, Some("450.80.02"), &nvidia(), &[]);
        assert_eq!((none.certified, none.reason, none.is_driver_problem()), (false, "NoDevices", false));
        let allowed = [nvml("NVIDIA A100-PCIE-40GB"), nvml("Tesla T4"), nvml("NVIDIA A100-PCIE-40GB")];
        let verdict = decide(Vendor::Nvidia, Mode::Container, Some("450.80.02"), &nvidia(), &allowed);
        assert_eq!(
            (verdict.certified, verdict.reason, verdict.is_driver_problem()),
            (false, "UncertifiedModel", false)
        );
        assert_eq!(verdict.message, "advertised by --allow-models but not certified: NVIDIA A100-PCIE-40GB");
    }

    #[test]
    fn kunlun_has_no_certified_driver_version_to_check() {
        let xpu = [test_device("xpu0", "Kunlun R200-8F", Access::KunlunContainer { index: 0 })];
        let kunlun = certified_drivers(Vendor::Kunlun, None);
        let verdict = decide(Vendor::Kunlun, Mode::Container, None, &kunlun, &xpu);
        assert_eq!((verdict.certified, verdict.reason), (true, "DriverNotChecked"));
    }
}
