//! Whether a node's accelerators run the certified stack (DESIGN.md §5, product document:
//! NVIDIA driver 450.80.02 — preinstalled and not removable — with CUDA 11.2 or older; Kunlun
//! R200-8F, no driver version named). The verdict becomes the node label
//! `scs.dev/gpu-certified=true|false` with a reason label and a message annotation, and with
//! `--require-certified-driver` an uncertified or unknown driver means nothing is advertised.

use super::device::{Access, Device, Mode, Vendor};
use super::models::is_certified_model;

/// NVIDIA driver versions certified by the product document.
pub const CERTIFIED_NVIDIA_DRIVERS: &[&str] = &["450.80.02"];

/// The CUDA version, in NVIDIA's encoding (`1000 * major + 10 * minor`), that the product document
/// certifies with each NVIDIA driver: 450.80.02 runs CUDA 11.2 and older (§1.6). NVML reports 11.0
/// for that driver; 11.1 and 11.2 run on it through CUDA's minor version compatibility.
pub const CERTIFIED_CUDA: &[(&str, u32)] = &[("450.80.02", 11020)];

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

/// The CUDA version the node's NVIDIA driver supports, for the `scs.dev/cuda-driver-version`
/// label (`None`: no label, so workloads bounding CUDA do not land here). `configured`
/// (`--cuda-version`) wins. Container mode: the higher of what NVML reports (`nvml_cuda`,
/// cuDriverGetVersion) and what the product certifies for the host driver. VFIO mode has no host
/// driver: the sandbox image carries one of the `certified` drivers (what the verdict requires),
/// so the lowest CUDA version certified for them, when every one has a known version.
pub fn cuda_driver_version(
    vendor: Vendor,
    mode: Mode,
    configured: Option<u32>,
    nvml_cuda: Option<i32>,
    driver_version: Option<&str>,
    certified: &[String],
) -> Option<u32> {
    let certified_cuda = |driver: &str| CERTIFIED_CUDA.iter().find(|(d, _)| *d == driver.trim()).map(|(_, c)| *c);
    match (vendor, mode, configured) {
        (Vendor::Kunlun, _, _) => None,
        (_, _, Some(version)) => Some(version),
        (Vendor::Nvidia, Mode::Container, None) => {
            let reported = nvml_cuda.and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0);
            reported.max(driver_version.and_then(certified_cuda))
        }
        (Vendor::Nvidia, Mode::Vfio, None) => {
            let versions: Option<Vec<u32>> = certified.iter().map(|d| certified_cuda(d)).collect();
            versions?.into_iter().min()
        }
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
    fn cuda_driver_version_from_nvml_the_certified_table_or_the_flag() {
        let nvidia = nvidia();
        let cuda = |mode, configured, nvml, driver| {
            cuda_driver_version(Vendor::Nvidia, mode, configured, nvml, driver, &nvidia)
        };
        // 450.80.02: NVML says 11.0, the product certifies 11.2 (minor version compatibility).
        assert_eq!(cuda(Mode::Container, None, Some(11000), Some("450.80.02")), Some(11020));
        // Another driver: what NVML reports.
        assert_eq!(cuda(Mode::Container, None, Some(12020), Some("535.104.05")), Some(12020));
        assert_eq!(cuda(Mode::Container, None, None, Some("450.80.02\n")), Some(11020), "NVML silent");
        assert_eq!(cuda(Mode::Container, None, Some(0), Some("535.104.05")), None, "nothing known");
        assert_eq!(cuda(Mode::Container, None, Some(-1), None), None);
        // VFIO: no host driver; the sandbox image's must be a certified one.
        assert_eq!(cuda(Mode::Vfio, None, None, None), Some(11020));
        let unknown = certified_drivers(Vendor::Nvidia, Some(&["550.54.15".to_string()]));
        assert_eq!(cuda_driver_version(Vendor::Nvidia, Mode::Vfio, None, None, None, &unknown), None);
        assert_eq!(cuda_driver_version(Vendor::Nvidia, Mode::Vfio, None, None, None, &[]), None);
        // The flag says what the node has, in either mode.
        assert_eq!(cuda_driver_version(Vendor::Nvidia, Mode::Vfio, Some(12040), None, None, &unknown), Some(12040));
        assert_eq!(cuda(Mode::Container, Some(11040), Some(12020), None), Some(11040));
        // Kunlun XPUs have no CUDA.
        assert_eq!(cuda_driver_version(Vendor::Kunlun, Mode::Container, Some(11020), None, None, &[]), None);
    }

    #[test]
    fn kunlun_has_no_certified_driver_version_to_check() {
        let xpu = [test_device("xpu0", "Kunlun R200-8F", Access::KunlunContainer { index: 0 })];
        let kunlun = certified_drivers(Vendor::Kunlun, None);
        let verdict = decide(Vendor::Kunlun, Mode::Container, None, &kunlun, &xpu);
        assert_eq!((verdict.certified, verdict.reason), (true, "DriverNotChecked"));
    }
}
