//! The certified accelerator models (DESIGN.md §5, from the product document) and the PCI IDs
//! that name models where no vendor library is available (VFIO and Kunlun discovery).

use super::device::Device;

/// Model families certified for the service: NVIDIA with driver 450.80.02 (CUDA ≤ 11.2) and
/// Baidu Kunlun. A model name matches a family when it equals it or continues with a separator
/// (`Tesla V100-SXM2-16GB` is a `Tesla V100`; `Tesla V100S-PCIE-32GB` is not).
pub const CERTIFIED_FAMILIES: &[&str] = &[
    "Tesla V100",
    "Tesla P100",
    "Tesla P40",
    "Tesla P6",
    "Tesla P4",
    "Tesla M60",
    "Tesla M10",
    "Tesla M6",
    "Tesla T4",
    "Quadro RTX 8000",
    "Quadro RTX 6000",
    "Kunlun R200-8F",
];

/// Model names by PCI `vendor:device`, spelled the way NVML names the boards. Quadro RTX 6000 and
/// 8000 share device IDs, so both are named (and NVML's names are folded into the same spelling:
/// [`canonical_model`]).
const PCI_MODELS: &[(u16, u16, &str)] = &[
    (0x10de, 0x1db1, "Tesla V100-SXM2-16GB"),
    (0x10de, 0x1db4, "Tesla V100-PCIE-16GB"),
    (0x10de, 0x1db5, "Tesla V100-SXM2-32GB"),
    (0x10de, 0x1db6, "Tesla V100-PCIE-32GB"),
    (0x10de, 0x1db8, "Tesla V100-SXM3-32GB"),
    (0x10de, 0x15f7, "Tesla P100-PCIE-12GB"),
    (0x10de, 0x15f8, "Tesla P100-PCIE-16GB"),
    (0x10de, 0x15f9, "Tesla P100-SXM2-16GB"),
    (0x10de, 0x1b38, "Tesla P40"),
    (0x10de, 0x1bb3, "Tesla P4"),
    (0x10de, 0x1bb4, "Tesla P6"),
    (0x10de, 0x13f2, "Tesla M60"),
    (0x10de, 0x13bd, "Tesla M10"),
    (0x10de, 0x13f3, "Tesla M6"),
    (0x10de, 0x1eb8, "Tesla T4"),
    (0x10de, 0x1e30, "Quadro RTX 6000/8000"),
    (0x10de, 0x1e78, "Quadro RTX 6000/8000"),
    // The public PCI ID database (pciutils/pciids `pci.ids`, looked up 2026-12-02) lists
    // `1d22  Baidu Technology` with `3684  Kunlun AI Accelerator` and `3685  Kunlun2 AI
    // Accelerator [VF]`. It does not name boards, so that 3684 is the certified R200-8F board is
    // an assumption not verified on hardware: `--allow-models 1d22:<device>` covers a mismatch.
    (0x1d22, 0x3684, "Kunlun R200-8F"),
];

/// The one spelling of a model in both modes. Quadro RTX 6000 and 8000 share PCI device IDs, so
/// VFIO discovery cannot tell them apart and calls both `Quadro RTX 6000/8000`; NVML (container
/// mode) names them apart (`Quadro RTX 8000`). Folding NVML's names into the shared one gives a
/// model one node label (`Quadro-RTX-6000-8000`) whichever mode a node runs, so a workload's
/// `gpu.model` matches either; the memory label still tells the boards apart (24 vs 48 GiB).
pub fn canonical_model(name: &str) -> String {
    const SHARED: &str = "Quadro RTX 6000/8000";
    let trimmed = name.trim();
    for board in ["Quadro RTX 6000", "Quadro RTX 8000"] {
        if in_family(trimmed, board) && !in_family(trimmed, SHARED) {
            return SHARED.to_string();
        }
    }
    trimmed.to_string()
}

/// Whether a model name (as discovered) is in a certified family.
pub fn is_certified_model(model: &str) -> bool {
    CERTIFIED_FAMILIES.iter().any(|family| in_family(model, family))
}

/// The model name for a PCI device, or a generic one naming its IDs.
pub fn model_for_pci(vendor: u16, device: u16) -> String {
    PCI_MODELS
        .iter()
        .find(|(v, d, _)| *v == vendor && *d == device)
        .map(|(_, _, name)| name.to_string())
        .unwrap_or_else(|| format!("PCI device {vendor:04x}:{device:04x}"))
}

/// Which devices may be advertised.
#[derive(Clone, Debug, Default)]
pub struct ModelPolicy {
    /// Advertise every model.
    pub allow_any: bool,
    /// Extra model families or `vendor:device` PCI IDs (hex) allowed besides the certified ones.
    pub extra: Vec<String>,
}

impl ModelPolicy {
    /// Parses `--allow-models`: a comma-separated list; blanks are ignored.
    pub fn new(allow_any: bool, allow_models: Option<&str>) -> Self {
        let extra = allow_models
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        Self { allow_any, extra }
    }

    pub fn allows(&self, device: &Device) -> bool {
        self.allow_any
            || is_certified_model(&device.model)
            || self.extra.iter().any(|entry| match parse_pci_id(entry) {
                Some(id) => device.pci_id == Some(id),
                None => in_family(&device.model, entry),
            })
    }
}

/// `Tesla V100-SXM2-16GB` is in `Tesla V100`; comparison ignores case.
fn in_family(model: &str, family: &str) -> bool {
    let (model, family) = (model.to_ascii_lowercase(), family.to_ascii_lowercase());
    match model.strip_prefix(&family) {
        Some(rest) => rest.is_empty() || rest.starts_with(['-', ' ', '/']),
        None => false,
    }
}

fn parse_pci_id(entry: &str) -> Option<(u16, u16)> {
    let (vendor, device) = entry.split_once(':')?;
    let hex = |s: &str| (s.len() == 4).then(|| u16::from_str_radix(s, 16).ok()).flatten();
    Some((hex(vendor)?, hex(device)?))
}

/// A model name as a label value (`Tesla T4` → `Tesla-T4`), the way GPU Feature Discovery
/// writes `nvidia.com/gpu.product`.
pub fn label_value(model: &str) -> String {
    let value: String = model
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' })
        .collect();
    let not_alphanumeric = |c: char| !c.is_ascii_alphanumeric();
    let capped: String = value.trim_start_matches(not_alphanumeric).chars().take(63).collect();
    capped.trim_end_matches(not_alphanumeric).to_string()
}

/// Whether a model node-label value (`Tesla-V100-SXM2-16GB`, as [`label_value`] spells models)
/// belongs to a certified family and is spelled the way nodes are labelled: what `gpu.model` of
/// a SecureWorkload may name. `Quadro-RTX-8000` is refused: no node carries it (see
/// [`canonical_model`]), so a pod asking for it would never be scheduled.
pub fn is_certified_label(value: &str) -> bool {
    let folded = label_value(&canonical_model(&value.replace("-6000-8000", " 6000/8000").replace('-', " ")));
    CERTIFIED_FAMILIES.iter().any(|family| in_family(value, &label_value(family))) && folded.eq_ignore_ascii_case(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device_plugin::device::{Access, test_device};

    fn device(model: &str, pci_id: Option<(u16, u16)>) -> Device {
        Device { pci_id, ..test_device("0", model, Access::Vfio { group: 0, cdevs: vec![] }) }
    }

    #[test]
    fn certified_families_match_board_variants_only() {
        let policy = ModelPolicy::default();
        for model in ["Tesla T4", "Tesla V100-SXM2-16GB", "TESLA P4", "Quadro RTX 6000/8000", "Kunlun R200-8F"] {
            assert!(policy.allows(&device(model, None)), "{model}");
        }
        for model in ["Tesla V100S-PCIE-32GB", "NVIDIA A100-PCIE-40GB", "Tesla P40x", "Kunlun R300"] {
            assert!(!policy.allows(&device(model, None)), "{model}");
        }
    }

    #[test]
    fn extra_models_and_pci_ids_widen_the_policy() {
        let policy = ModelPolicy::new(false, Some(" NVIDIA A100, 10de:20b5 ,"));
        assert!(policy.allows(&device("NVIDIA A100-PCIE-40GB", None)));
        assert!(policy.allows(&device("PCI device 10de:20b5", Some((0x10de, 0x20b5)))));
        assert!(!policy.allows(&device("NVIDIA H100 PCIe", Some((0x10de, 0x2331)))));
        assert!(ModelPolicy::new(true, None).allows(&device("anything", None)));
    }

    #[test]
    fn pci_ids_name_models_or_say_what_they_are() {
        assert_eq!(model_for_pci(0x10de, 0x1eb8), "Tesla T4");
        assert_eq!(model_for_pci(0x10de, 0x2331), "PCI device 10de:2331");
    }

    #[test]
    fn certified_label_values() {
        for certified in ["Tesla-V100-SXM2-16GB", "Tesla-T4", "Quadro-RTX-6000-8000", "Kunlun-R200-8F", "tesla-p40"] {
            assert!(is_certified_label(certified), "{certified}");
        }
        for other in ["Tesla-V100S-PCIE-32GB", "A100-SXM4-40GB", "Tesla T4", "", "Quadro-RTX-8000", "Quadro-RTX-6000"] {
            assert!(!is_certified_label(other), "{other}");
        }
    }

    #[test]
    fn quadro_rtx_6000_and_8000_have_one_spelling_in_both_modes() {
        // VFIO: from the shared PCI IDs; container: NVML's board names.
        let vfio = model_for_pci(0x10de, 0x1e30);
        for nvml in ["Quadro RTX 8000", "Quadro RTX 6000", "quadro rtx 6000", "Quadro RTX 6000/8000"] {
            assert_eq!(canonical_model(nvml), vfio, "{nvml}");
        }
        assert_eq!(label_value(&vfio), "Quadro-RTX-6000-8000");
        // Other names pass through (trimmed); a longer number is another model.
        assert_eq!(canonical_model(" Tesla T4 "), "Tesla T4");
        assert_eq!(canonical_model("Quadro RTX 60000"), "Quadro RTX 60000");
    }

    #[test]
    fn label_values_follow_feature_discovery_spelling() {
        assert_eq!(label_value("Tesla T4"), "Tesla-T4");
        assert_eq!(label_value("Quadro RTX 6000/8000"), "Quadro-RTX-6000-8000");
        assert_eq!(label_value(" (weird) "), "weird");
        assert_eq!(label_value(&"x".repeat(80)).len(), 63);
    }
}
