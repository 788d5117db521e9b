//! Node labels describing the node's accelerators, named like GPU Feature Discovery's where it
//! has them, so workloads' `gpu.model` affinity and existing tooling both work.

use std::collections::BTreeMap;

use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::device::{Device, Vendor};
use super::models::label_value;

/// Field manager of the labels: server-side apply removes the ones we stop setting.
pub const FIELD_MANAGER: &str = "scs-device-plugin";

/// Labels for the advertised devices. The product is the most common model (a node normally
/// carries one); memory is in MiB, the smallest of that model's boards.
pub fn node_labels(vendor: Vendor, devices: &[Device], driver_version: Option<&str>) -> BTreeMap<String, String> {
    let prefix = match vendor {
        Vendor::Nvidia => "nvidia.com/gpu",
        Vendor::Kunlun => "kunlunxin.com/xpu",
    };
    let mut labels = BTreeMap::from([(format!("{prefix}.count"), devices.len().to_string())]);
    let mut by_model: BTreeMap<&str, usize> = BTreeMap::new();
    for device in devices {
        *by_model.entry(&device.model).or_default() += 1;
    }
    if let Some((model, _)) = by_model.into_iter().max_by_key(|(_, count)| *count) {
        labels.insert(format!("{prefix}.product"), label_value(model));
        if let Some(memory) = devices.iter().filter(|d| d.model == model).filter_map(|d| d.memory_mib).min() {
            labels.insert(format!("{prefix}.memory"), memory.to_string());
        }
    }
    if let (Vendor::Nvidia, Some(version)) = (vendor, driver_version) {
        // GFD splits the driver version `450.80.02` into major, minor and revision.
        for (part, value) in ["major", "minor", "rev"].into_iter().zip(version.trim().split('.')) {
            labels.insert(format!("nvidia.com/cuda.driver.{part}"), label_value(value));
        }
    }
    labels
}

/// Applies the labels to the node; failures are logged, never fatal (the plugin serves the
/// kubelet with or without an API server).
pub async fn apply(client: kube::Client, node: &str, labels: &BTreeMap<String, String>) -> Result<(), kube::Error> {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client);
    let patch = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "labels": labels}});
    nodes.patch(node, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(patch)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device_plugin::device::{Access, test_device};

    fn gpu(model: &str, memory: u64) -> Device {
        let access = Access::NvidiaContainer { minor: 0, uuid: String::new() };
        Device { memory_mib: Some(memory), ..test_device(&format!("GPU-{model}-{memory}"), model, access) }
    }

    #[test]
    fn nvidia_labels_follow_feature_discovery() {
        let devices = [gpu("Tesla T4", 15109), gpu("Tesla T4", 15360), gpu("Tesla P4", 7611)];
        let labels = node_labels(Vendor::Nvidia, &devices, Some("450.80.02"));
        let expected: BTreeMap<String, String> = [
            ("nvidia.com/gpu.count", "3"),
            ("nvidia.com/gpu.product", "Tesla-T4"),
            ("nvidia.com/gpu.memory", "15109"),
            ("nvidia.com/cuda.driver.major", "450"),
            ("nvidia.com/cuda.driver.minor", "80"),
            ("nvidia.com/cuda.driver.rev", "02"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(labels, expected);
    }

    #[test]
    fn no_devices_means_a_zero_count_and_no_product() {
        let labels = node_labels(Vendor::Kunlun, &[], None);
        assert_eq!(labels, BTreeMap::from([("kunlunxin.com/xpu.count".to_string(), "0".to_string())]));
    }
}
