//! Discovery from sysfs and /dev: VFIO-bound PCI functions (both vendors) and Kunlun's
//! `/dev/xpuN` nodes. Roots are parameters so tests run against fake trees in temp dirs.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::device::{Access, Device, Health, Vendor, natural_cmp};
use super::models::model_for_pci;

/// Where the host's sysfs and /dev are visible to the plugin.
#[derive(Clone, Debug)]
pub struct HostPaths {
    pub sysfs: PathBuf,
    pub dev: PathBuf,
}

impl HostPaths {
    fn pci_devices(&self) -> PathBuf {
        self.sysfs.join("bus/pci/devices")
    }

    /// The entry that exists while the function at `address` is bound to vfio-pci.
    pub fn vfio_binding(&self, address: &str) -> PathBuf {
        self.sysfs.join("bus/pci/drivers/vfio-pci").join(address)
    }

    /// The version of the kernel module driving the PCI function at `address`
    /// (`…/driver/module/version`), when the module declares one.
    pub fn driver_module_version(&self, address: &str) -> Option<String> {
        let path = self.pci_devices().join(address).join("driver/module/version");
        let version = fs::read_to_string(path).ok()?.trim().to_string();
        (!version.is_empty()).then_some(version)
    }

    /// iommufd is available when the kernel exposes `/dev/iommu`.
    pub fn has_iommufd(&self) -> bool {
        self.dev.join("iommu").exists()
    }
}

/// One PCI function as sysfs describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciFunction {
    pub address: String,
    pub vendor: u16,
    pub device: u16,
    pub driver: Option<String>,
    pub iommu_group: Option<u32>,
    pub numa_node: Option<i64>,
    pub root: Option<String>,
    /// iommufd character device names (`vfioN`) under the function's `vfio-dev` directory.
    pub vfio_cdevs: Vec<String>,
    pub sysfs_dir: PathBuf,
}

/// Reads every PCI function of `vendor`, sorted by address.
pub fn pci_functions(host: &HostPaths, vendor: u16) -> io::Result<Vec<PciFunction>> {
    let dir = host.pci_devices();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(io::Error::new(e.kind(), format!("reading {}: {e}", dir.display()))),
    };
    let mut functions = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let Some(function) = read_function(&path)? else { continue };
        if function.vendor == vendor {
            functions.push(function);
        }
    }
    functions.sort_by(|a, b| a.address.cmp(&b.address));
    Ok(functions)
}

fn read_function(dir: &Path) -> io::Result<Option<PciFunction>> {
    let (Some(vendor), Some(device)) = (read_hex(&dir.join("vendor")), read_hex(&dir.join("device"))) else {
        return Ok(None);
    };
    let address = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let link_name = |name: &str| {
        fs::read_link(dir.join(name))
            .ok()
            .and_then(|target| target.file_name().map(|n| n.to_string_lossy().into_owned()))
    };
    let numa_node = fs::read_to_string(dir.join("numa_node"))
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|node| *node >= 0);
    // The canonical path runs through the root complex: /sys/devices/pci0000:3a/…/0000:3b:00.0.
    let root = fs::canonicalize(dir).ok().and_then(|path| {
        path.components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .find(|c| c.starts_with("pci") && c.contains(':'))
    });
    let mut vfio_cdevs: Vec<String> = fs::read_dir(dir.join("vfio-dev"))
        .map(|entries| entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    vfio_cdevs.sort_by(|a, b| natural_cmp(a, b));
    Ok(Some(PciFunction {
        address,
        vendor,
        device,
        driver: link_name("driver"),
        iommu_group: link_name("iommu_group").and_then(|g| g.parse().ok()),
        numa_node,
        root,
        vfio_cdevs,
        sysfs_dir: dir.to_path_buf(),
    }))
}

fn read_hex(path: &Path) -> Option<u16> {
    let text = fs::read_to_string(path).ok()?;
    u16::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()
}

/// PCI class of bridges (`0x0604xx`, the top 16 bits of the 24-bit class): not endpoints, so the
/// kernel lets a group holding them go to VFIO whatever driver (`pcieport`) holds them.
const PCI_BRIDGE_CLASS: u32 = 0x0604;

/// Why IOMMU `group` must not be advertised: VFIO hands a group to the sandbox whole, so every
/// device in it must be one of `vendor`'s functions bound to `vfio-pci` (or a PCI bridge). A NIC
/// or disk controller sharing the GPU's group would otherwise go to the tenant's VM with it, or be
/// torn from the host. `None` when the group holds nothing else; members that cannot be read are a
/// reason too.
fn foreign_group_members(host: &HostPaths, group: u32, vendor: u16) -> Option<String> {
    let dir = host.sysfs.join(format!("kernel/iommu_groups/{group}/devices"));
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => return Some(format!("IOMMU group {group} is not advertised: cannot list {}: {e}", dir.display())),
    };
    let mut foreign: Vec<String> = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let address = entry.file_name().to_string_lossy().into_owned();
        let class = fs::read_to_string(path.join("class"))
            .ok()
            .and_then(|c| u32::from_str_radix(c.trim().trim_start_matches("0x"), 16).ok());
        if class.is_some_and(|c| c >> 8 == PCI_BRIDGE_CLASS) {
            continue;
        }
        let member_vendor = read_hex(&path.join("vendor"));
        let driver = fs::read_link(path.join("driver"))
            .ok()
            .and_then(|target| target.file_name().map(|n| n.to_string_lossy().into_owned()));
        if member_vendor == Some(vendor) && driver.as_deref() == Some("vfio-pci") {
            continue;
        }
        let vendor_text = member_vendor.map_or("unknown vendor".to_string(), |v| format!("vendor 0x{v:04x}"));
        let driver_text = driver.map_or("no driver".to_string(), |d| format!("bound to {d}"));
        foreign.push(format!("{address} ({vendor_text}, {driver_text})"));
    }
    if foreign.is_empty() {
        return None;
    }
    foreign.sort();
    Some(format!(
        "IOMMU group {group} is not advertised: it also holds {}, and VFIO hands a group to the sandbox whole; \
         every device in it must be a function of this vendor bound to vfio-pci (use a slot with its own IOMMU group)",
        foreign.join(", ")
    ))
}

/// VFIO mode: one device per IOMMU group holding functions of `vendor` bound to `vfio-pci`, and
/// nothing else (see [`foreign_group_members`]). Functions of the vendor bound elsewhere, and
/// groups shared with other devices, are reported in the returned notes, not advertised.
pub fn discover_vfio(host: &HostPaths, vendor: Vendor) -> io::Result<(Vec<Device>, Vec<String>)> {
    let mut notes = Vec::new();
    let mut groups: BTreeMap<u32, Vec<PciFunction>> = BTreeMap::new();
    for function in pci_functions(host, vendor.pci_vendor_id())? {
        match (function.driver.as_deref(), function.iommu_group) {
            (Some("vfio-pci"), Some(group)) => groups.entry(group).or_default().push(function),
            (Some("vfio-pci"), None) => notes.push(format!(
                "{} is bound to vfio-pci but has no IOMMU group (is the IOMMU enabled?)",
                function.address
            )),
            (driver, _) => notes.push(format!(
                "{} is bound to {}, not vfio-pci; not advertised in vfio mode",
                function.address,
                driver.unwrap_or("no driver")
            )),
        }
    }
    let iommufd = host.has_iommufd();
    groups.retain(|group, _| match foreign_group_members(host, *group, vendor.pci_vendor_id()) {
        Some(why) => {
            notes.push(why);
            false
        }
        None => true,
    });
    let devices = groups
        .into_iter()
        .map(|(group, functions)| {
            let first = &functions[0];
            let mut health_paths = vec![host.dev.join(format!("vfio/{group}"))];
            health_paths.extend(functions.iter().map(|f| f.sysfs_dir.clone()));
            // The kernel lists a driver's devices under it: a function rebound to a host driver
            // leaves vfio-pci's list, and must not go to a VM any more.
            health_paths.extend(functions.iter().map(|f| host.vfio_binding(&f.address)));
            let cdevs: Vec<String> =
                if iommufd { functions.iter().flat_map(|f| f.vfio_cdevs.iter().cloned()).collect() } else { vec![] };
            Device {
                id: group.to_string(),
                model: model_for_pci(first.vendor, first.device),
                pci_id: Some((first.vendor, first.device)),
                pci_addresses: functions.iter().map(|f| f.address.clone()).collect(),
                numa_node: first.numa_node,
                pci_root: first.root.clone(),
                memory_mib: None,
                access: Access::Vfio { group, cdevs },
                health_paths,
                health: Health::Healthy,
            }
        })
        .collect();
    Ok((devices, notes))
}

/// Kunlun container mode: `/dev/xpuN` nodes, each matched to its PCI function through
/// `/sys/class/xpu/xpuN/device` when the driver provides that link, else by position among the
/// vendor's non-VFIO functions in address order (the driver numbers them that way).
pub fn discover_kunlun(host: &HostPaths) -> io::Result<(Vec<Device>, Vec<String>)> {
    let mut notes = Vec::new();
    let mut indices: Vec<u32> = match fs::read_dir(&host.dev) {
        Ok(entries) => {
            entries.flatten().filter_map(|e| e.file_name().to_str()?.strip_prefix("xpu")?.parse::<u32>().ok()).collect()
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => vec![],
        Err(e) => return Err(io::Error::new(e.kind(), format!("reading {}: {e}", host.dev.display()))),
    };
    indices.sort_unstable();
    if !indices.is_empty() && !host.dev.join("xpuctrl").exists() {
        notes.push(format!("{} is missing: the Kunlun driver is not fully loaded", host.dev.join("xpuctrl").display()));
    }
    let by_position: Vec<PciFunction> = pci_functions(host, Vendor::Kunlun.pci_vendor_id())?
        .into_iter()
        .filter(|f| f.driver.as_deref() != Some("vfio-pci"))
        .collect();
    let devices = indices
        .into_iter()
        .enumerate()
        .map(|(position, index)| {
            let linked = host.sysfs.join(format!("class/xpu/xpu{index}/device"));
            let function = read_function(&linked).ok().flatten().or_else(|| by_position.get(position).cloned());
            let mut health_paths = vec![host.dev.join(format!("xpu{index}"))];
            let (model, pci_id) = match &function {
                Some(f) => {
                    health_paths.push(f.sysfs_dir.clone());
                    (model_for_pci(f.vendor, f.device), Some((f.vendor, f.device)))
                }
                None => {
                    notes.push(format!("no PCI function found for xpu{index}; its model is unknown"));
                    ("Kunlun XPU (unknown board)".to_string(), None)
                }
            };
            Device {
                id: format!("xpu{index}"),
                model,
                pci_id,
                pci_addresses: function.iter().map(|f| f.address.clone()).collect(),
                numa_node: function.as_ref().and_then(|f| f.numa_node),
                pci_root: function.as_ref().and_then(|f| f.root.clone()),
                memory_mib: None,
                access: Access::KunlunContainer { index },
                health_paths,
                health: Health::Healthy,
            }
        })
        .collect();
    Ok((devices, notes))
}

/// Fake sysfs trees for tests (here and in `tests/device_plugin.rs`) and local demos.
pub mod fake {
    use std::fs;
    use std::io;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    /// A PCI function to lay out under `<sysfs>/devices/<root>/<address>` with the
    /// `bus/pci/devices/<address>` link the kernel provides.
    #[derive(Clone, Copy)]
    pub struct FakeFunction<'a> {
        pub address: &'a str,
        pub root: &'a str,
        pub vendor: u16,
        pub device: u16,
        pub driver: &'a str,
        pub iommu_group: Option<u32>,
        pub numa_node: i64,
        pub vfio_cdev: Option<&'a str>,
    }

    impl<'a> FakeFunction<'a> {
        /// The usual test subject: a Tesla T4 bound to vfio-pci, alone in IOMMU group `group`.
        pub fn t4_vfio(address: &'a str, root: &'a str, group: u32, numa_node: i64) -> Self {
            FakeFunction {
                address,
                root,
                vendor: 0x10de,
                device: 0x1eb8,
                driver: "vfio-pci",
                iommu_group: Some(group),
                numa_node,
                vfio_cdev: None,
            }
        }
    }

    pub fn add_function(sysfs: &Path, f: &FakeFunction) -> io::Result<()> {
        let dir = sysfs.join("devices").join(f.root).join(f.address);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("vendor"), format!("0x{:04x}\n", f.vendor))?;
        fs::write(dir.join("device"), format!("0x{:04x}\n", f.device))?;
        fs::write(dir.join("numa_node"), format!("{}\n", f.numa_node))?;
        // A 3D controller, as data-centre GPUs are; tests overwrite it for bridges.
        fs::write(dir.join("class"), "0x030200\n")?;
        symlink(format!("../../../bus/pci/drivers/{}", f.driver), dir.join("driver"))?;
        if let Some(group) = f.iommu_group {
            symlink(format!("../../../kernel/iommu_groups/{group}"), dir.join("iommu_group"))?;
            // The kernel lists every member of a group under it.
            let members = sysfs.join(format!("kernel/iommu_groups/{group}/devices"));
            fs::create_dir_all(&members)?;
            symlink(format!("../../../../devices/{}/{}", f.root, f.address), members.join(f.address))?;
        }
        if let Some(cdev) = f.vfio_cdev {
            fs::create_dir_all(dir.join("vfio-dev").join(cdev))?;
        }
        // The driver lists the functions bound to it.
        let driver = sysfs.join("bus/pci/drivers").join(f.driver);
        fs::create_dir_all(&driver)?;
        symlink(format!("../../../../devices/{}/{}", f.root, f.address), driver.join(f.address))?;
        let bus = sysfs.join("bus/pci/devices");
        fs::create_dir_all(&bus)?;
        symlink(format!("../../../devices/{}/{}", f.root, f.address), bus.join(f.address))
    }

    /// Gives `driver`'s kernel module a version, as `/sys/module/<module>/version` shows it.
    pub fn set_driver_version(sysfs: &Path, driver: &str, version: &str) -> io::Result<()> {
        let module = sysfs.join("module").join(driver);
        fs::create_dir_all(&module)?;
        fs::write(module.join("version"), format!("{version}\n"))?;
        let link = sysfs.join("bus/pci/drivers").join(driver).join("module");
        fs::create_dir_all(link.parent().unwrap_or(sysfs))?;
        let _ = fs::remove_file(&link);
        symlink(format!("../../../../module/{driver}"), link)
    }

    /// Unbinds the function at `address` from `driver` (and binds it to `to`), as writing to the
    /// driver's `unbind` file and `driver_override`/`bind` would.
    pub fn rebind(sysfs: &Path, address: &str, driver: &str, to: &str) -> io::Result<()> {
        fs::remove_file(sysfs.join("bus/pci/drivers").join(driver).join(address))?;
        let dir = fs::canonicalize(sysfs.join("bus/pci/devices").join(address))?;
        let _ = fs::remove_file(dir.join("driver"));
        symlink(format!("../../../bus/pci/drivers/{to}"), dir.join("driver"))?;
        let target = sysfs.join("bus/pci/drivers").join(to);
        fs::create_dir_all(&target)?;
        let root =
            dir.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        symlink(format!("../../../../devices/{root}/{address}"), target.join(address))
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{FakeFunction, add_function};
    use super::*;

    fn add_function_ok(sysfs: &Path, f: &FakeFunction) {
        add_function(sysfs, f).unwrap();
    }

    fn host() -> (tempfile::TempDir, HostPaths) {
        let tmp = tempfile::tempdir().unwrap();
        let host = HostPaths { sysfs: tmp.path().join("sys"), dev: tmp.path().join("dev") };
        fs::create_dir_all(&host.dev).unwrap();
        (tmp, host)
    }

    fn t4(
        address: &'static str,
        root: &'static str,
        driver: &'static str,
        group: u32,
        numa: i64,
    ) -> FakeFunction<'static> {
        FakeFunction { driver, ..FakeFunction::t4_vfio(address, root, group, numa) }
    }

    #[test]
    fn vfio_discovery_groups_functions_and_reports_other_drivers() {
        let (_tmp, host) = host();
        add_function_ok(&host.sysfs, &t4("0000:3b:00.0", "pci0000:3a", "vfio-pci", 41, 0));
        add_function_ok(&host.sysfs, &t4("0000:86:00.0", "pci0000:85", "vfio-pci", 77, 1));
        // The GPU's audio function shares its IOMMU group.
        add_function_ok(
            &host.sysfs,
            &FakeFunction { device: 0x10f8, ..t4("0000:86:00.1", "pci0000:85", "vfio-pci", 77, 1) },
        );
        add_function_ok(&host.sysfs, &t4("0000:af:00.0", "pci0000:ae", "nvidia", 90, 1));
        // Another vendor's device is ignored entirely.
        add_function_ok(
            &host.sysfs,
            &FakeFunction { vendor: 0x8086, ..t4("0000:00:1f.0", "pci0000:00", "vfio-pci", 5, 0) },
        );

        let (devices, notes) = discover_vfio(&host, Vendor::Nvidia).unwrap();
        assert_eq!(devices.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["41", "77"]);
        let second = &devices[1];
        assert_eq!(second.model, "Tesla T4");
        assert_eq!(second.pci_addresses, ["0000:86:00.0", "0000:86:00.1"]);
        assert_eq!(second.numa_node, Some(1));
        assert_eq!(second.pci_root.as_deref(), Some("pci0000:85"));
        assert_eq!(second.access, Access::Vfio { group: 77, cdevs: vec![] });
        assert!(second.health_paths.contains(&host.dev.join("vfio/77")));
        assert_eq!(notes, ["0000:af:00.0 is bound to nvidia, not vfio-pci; not advertised in vfio mode"]);
    }

    #[test]
    fn a_group_shared_with_anything_but_our_vfio_functions_is_not_advertised() {
        let (_tmp, host) = host();
        add_function_ok(&host.sysfs, &t4("0000:3b:00.0", "pci0000:3a", "vfio-pci", 41, 0));
        // A NIC in the second GPU's group: the VM would get it too.
        add_function_ok(&host.sysfs, &t4("0000:86:00.0", "pci0000:85", "vfio-pci", 77, 1));
        let nic = FakeFunction { vendor: 0x8086, device: 0x10fb, ..t4("0000:86:00.2", "pci0000:85", "ixgbe", 77, 1) };
        add_function_ok(&host.sysfs, &nic);
        // Our own audio function, left on the host driver.
        add_function_ok(&host.sysfs, &t4("0000:90:00.0", "pci0000:8f", "vfio-pci", 80, 1));
        add_function_ok(
            &host.sysfs,
            &FakeFunction { device: 0x10f8, ..t4("0000:90:00.1", "pci0000:8f", "snd_hda_intel", 80, 1) },
        );
        // Another vendor's device bound to vfio-pci is still not ours to hand out.
        add_function_ok(&host.sysfs, &t4("0000:a0:00.0", "pci0000:9f", "vfio-pci", 90, 1));
        add_function_ok(
            &host.sysfs,
            &FakeFunction { vendor: 0x15b3, ..t4("0000:a0:00.1", "pci0000:9f", "vfio-pci", 90, 1) },
        );

        let (devices, notes) = discover_vfio(&host, Vendor::Nvidia).unwrap();
        assert_eq!(devices.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["41"]);
        let group_notes: Vec<&String> = notes.iter().filter(|n| n.starts_with("IOMMU group")).collect();
        assert_eq!(group_notes.len(), 3, "{notes:#?}");
        assert!(group_notes[0].starts_with(
            "IOMMU group 77 is not advertised: it also holds 0000:86:00.2 (vendor 0x8086, bound to ixgbe)"
        ));
        assert!(group_notes[1].contains("0000:90:00.1 (vendor 0x10de, bound to snd_hda_intel)"), "{}", group_notes[1]);
        assert!(group_notes[2].contains("0000:a0:00.1 (vendor 0x15b3, bound to vfio-pci)"), "{}", group_notes[2]);
    }

    #[test]
    fn bridges_may_share_the_group_and_unreadable_groups_are_not_advertised() {
        let (_tmp, host) = host();
        add_function_ok(&host.sysfs, &t4("0000:3b:00.0", "pci0000:3a", "vfio-pci", 41, 0));
        let bridge =
            FakeFunction { vendor: 0x8086, device: 0x2030, ..t4("0000:3a:00.0", "pci0000:3a", "pcieport", 41, 0) };
        add_function_ok(&host.sysfs, &bridge);
        fs::write(host.sysfs.join("devices/pci0000:3a/0000:3a:00.0/class"), "0x060400\n").unwrap();
        add_function_ok(&host.sysfs, &t4("0000:86:00.0", "pci0000:85", "vfio-pci", 77, 1));
        fs::remove_dir_all(host.sysfs.join("kernel/iommu_groups/77")).unwrap();

        let (devices, notes) = discover_vfio(&host, Vendor::Nvidia).unwrap();
        assert_eq!(devices.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["41"]);
        assert_eq!(devices[0].pci_addresses, ["0000:3b:00.0"], "the bridge is not passed through");
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("IOMMU group 77 is not advertised: cannot list"), "{}", notes[0]);
    }

    #[test]
    fn iommufd_character_devices_are_used_when_the_kernel_has_them() {
        let (_tmp, host) = host();
        add_function_ok(
            &host.sysfs,
            &FakeFunction { vfio_cdev: Some("vfio3"), ..t4("0000:3b:00.0", "pci0000:3a", "vfio-pci", 41, 0) },
        );
        let (devices, _) = discover_vfio(&host, Vendor::Nvidia).unwrap();
        assert_eq!(devices[0].access, Access::Vfio { group: 41, cdevs: vec![] }, "no /dev/iommu: legacy groups");
        fs::write(host.dev.join("iommu"), "").unwrap();
        let (devices, _) = discover_vfio(&host, Vendor::Nvidia).unwrap();
        assert_eq!(devices[0].access, Access::Vfio { group: 41, cdevs: vec!["vfio3".into()] });
    }

    #[test]
    fn kunlun_nodes_are_matched_to_pci_functions_in_address_order() {
        let (_tmp, host) = host();
        for name in ["xpu0", "xpu1", "xpuctrl"] {
            fs::write(host.dev.join(name), "").unwrap();
        }
        let xpu = |address, numa| FakeFunction {
            vendor: 0x1d22,
            device: 0x3684,
            driver: "kunlun",
            ..t4(address, "pci0000:17", "kunlun", 0, numa)
        };
        add_function_ok(&host.sysfs, &xpu("0000:19:00.0", 1));
        add_function_ok(&host.sysfs, &xpu("0000:18:00.0", 0));
        let (devices, notes) = discover_kunlun(&host).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(devices.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["xpu0", "xpu1"]);
        assert_eq!(devices[0].pci_addresses, ["0000:18:00.0"]);
        assert_eq!(devices[1].numa_node, Some(1));
        assert_eq!(devices[0].model, "Kunlun R200-8F");
        assert_eq!(devices[1].access, Access::KunlunContainer { index: 1 });
    }

    #[test]
    fn a_function_leaving_vfio_pci_fails_its_health_path_and_module_versions_are_read() {
        use super::fake::{rebind, set_driver_version};
        let (_tmp, host) = host();
        add_function_ok(&host.sysfs, &t4("0000:3b:00.0", "pci0000:3a", "vfio-pci", 41, 0));
        add_function_ok(&host.sysfs, &t4("0000:af:00.0", "pci0000:ae", "nvidia", 90, 1));
        let (devices, _) = discover_vfio(&host, Vendor::Nvidia).unwrap();
        let binding = host.vfio_binding("0000:3b:00.0");
        assert!(devices[0].health_paths.contains(&binding));
        assert!(binding.exists());
        rebind(&host.sysfs, "0000:3b:00.0", "vfio-pci", "nvidia").unwrap();
        assert!(!binding.exists(), "rebound to the host driver");
        assert_eq!(host.driver_module_version("0000:af:00.0"), None, "no version declared");
        set_driver_version(&host.sysfs, "nvidia", "450.80.02").unwrap();
        assert_eq!(host.driver_module_version("0000:af:00.0").as_deref(), Some("450.80.02"));
        assert_eq!(host.driver_module_version("0000:3b:00.0").as_deref(), Some("450.80.02"), "now on nvidia");
    }

    #[test]
    fn missing_trees_mean_no_devices_not_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let host = HostPaths { sysfs: tmp.path().join("nope"), dev: tmp.path().join("nodev") };
        assert!(discover_vfio(&host, Vendor::Kunlun).unwrap().0.is_empty());
        assert!(discover_kunlun(&host).unwrap().0.is_empty());
    }
}
