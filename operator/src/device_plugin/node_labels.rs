//! Node labels describing the node's accelerators, named like GPU Feature Discovery's where it
//! has them, so workloads' `gpu.model` affinity and existing tooling both work.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::json;

use super::certify::{CERTIFIED_LABEL, MESSAGE_ANNOTATION, REASON_LABEL, Verdict};
use super::device::{Device, Vendor};
use super::models::label_value;
use crate::api::CUDA_DRIVER_VERSION_LABEL;

/// Field manager of the labels, one per vendor: server-side apply removes what a manager stops
/// setting, so two vendors' plugins on one node must not share one (each would remove the
/// other's labels). Both do write `scs.dev/gpu-certified*`: there the last writer wins.
pub fn field_manager(vendor: Vendor) -> String {
    format!("scs-device-plugin-{}", vendor.name())
}

/// Devices found but not advertised (IOMMU groups shared with other devices, functions on
/// another driver, …), one per line: operators see on the Node why a GPU is missing.
pub const NOT_ADVERTISED_ANNOTATION: &str = "scs.dev/gpu-not-advertised";
/// Annotation values are capped so a node with many findings still patches.
const ANNOTATION_LIMIT: usize = 4096;

/// Labels and annotations the plugin owns on its node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeMetadata {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// Everything the plugin says about its node: the feature labels of the healthy `devices`, the
/// certification verdict, and what was found but not advertised.
pub fn node_metadata(
    vendor: Vendor,
    devices: &[Device],
    driver_version: Option<&str>,
    cuda_driver_version: Option<u32>,
    verdict: &Verdict,
    not_advertised: &[String],
) -> NodeMetadata {
    let mut labels = node_labels(vendor, devices, driver_version);
    if let Some(cuda) = cuda_driver_version {
        // An integer, so workloads' `gpu.cuda` bounds can use node affinity's Gt and Lt.
        labels.insert(CUDA_DRIVER_VERSION_LABEL.into(), cuda.to_string());
    }
    labels.insert(CERTIFIED_LABEL.into(), verdict.certified.to_string());
    labels.insert(REASON_LABEL.into(), verdict.reason.into());
    let mut annotations = BTreeMap::from([(MESSAGE_ANNOTATION.to_string(), verdict.message.clone())]);
    if !not_advertised.is_empty() {
        let mut text = not_advertised.join("\n");
        if text.len() > ANNOTATION_LIMIT {
            let mut end = ANNOTATION_LIMIT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str("\n… (more in the plugin's log)");
        }
        annotations.insert(NOT_ADVERTISED_ANNOTATION.into(), text);
    }
    NodeMetadata { labels, annotations }
}

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

/// Applies the labels and annotations to the node (server-side apply: what we stop setting is
/// removed); failures are logged by the caller, never fatal (the plugin serves the kubelet with or
/// without an API server).
pub async fn apply(
    client: kube::Client,
    vendor: Vendor,
    node: &str,
    metadata: &NodeMetadata,
) -> Result<Node, kube::Error> {
    let nodes: Api<Node> = Api::all(client);
    let patch = json!({"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": node, "labels": metadata.labels, "annotations": metadata.annotations,
    }});
    nodes.patch(node, &PatchParams::apply(&field_manager(vendor)).force(), &Patch::Apply(patch)).await
}

/// Reason of the Warning Events for devices found but not advertised.
pub const NOT_ADVERTISED_REASON: &str = "DeviceNotAdvertised";
/// At most this many findings become Events (the annotation and the log have them all).
const MAX_EVENTS: usize = 10;

/// Records each finding as a Warning Event on the Node (kube files a cluster-scoped object's
/// Events in `default`; the DaemonSets' Role allows exactly that). Failures are logged only.
pub async fn report_not_advertised(client: kube::Client, vendor: Vendor, node: &Node, findings: &[String]) {
    let reporter =
        Reporter { controller: format!("scs-device-plugin-{}", vendor.name()), instance: node.metadata.name.clone() };
    let recorder = Recorder::new(client, reporter);
    let reference = node.object_ref(&());
    for finding in findings.iter().take(MAX_EVENTS) {
        let event = Event {
            type_: EventType::Warning,
            reason: NOT_ADVERTISED_REASON.into(),
            // Events hold at most 1 kB of note.
            note: Some(finding.chars().take(1000).collect()),
            action: "Discover".into(),
            secondary: None,
        };
        if let Err(error) = recorder.publish(&event, &reference).await {
            tracing::warn!(%error, "could not record an Event on the Node");
            return;
        }
    }
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
    fn metadata_carries_the_verdict_and_what_was_not_advertised() {
        let verdict =
            Verdict { certified: false, reason: "UncertifiedDriver", message: "driver 535 is not certified".into() };
        let devices = [gpu("Tesla T4", 15109)];
        let metadata = node_metadata(Vendor::Nvidia, &devices, Some("535.1.2"), Some(12020), &verdict, &[]);
        assert_eq!(metadata.labels["scs.dev/cuda-driver-version"], "12020");
        assert_eq!(metadata.labels["scs.dev/gpu-certified"], "false");
        assert_eq!(metadata.labels["scs.dev/gpu-certified-reason"], "UncertifiedDriver");
        assert_eq!(metadata.labels["nvidia.com/gpu.count"], "1");
        assert_eq!(metadata.annotations.len(), 1);
        assert_eq!(metadata.annotations["scs.dev/gpu-certification"], "driver 535 is not certified");
        let notes = vec!["IOMMU group 77 is not advertised: it also holds …".to_string(), "ü".repeat(3000)];
        let metadata = node_metadata(Vendor::Nvidia, &[], None, None, &verdict, &notes);
        assert!(!metadata.labels.contains_key("scs.dev/cuda-driver-version"), "unknown: no label");
        let text = &metadata.annotations["scs.dev/gpu-not-advertised"];
        assert!(text.starts_with("IOMMU group 77 is not advertised") && text.ends_with("(more in the plugin's log)"));
        assert!(text.len() < 4200, "{}", text.len());
        assert_eq!(field_manager(Vendor::Kunlun), "scs-device-plugin-kunlun");
    }

    #[test]
    fn no_devices_means_a_zero_count_and_no_product() {
        let labels = node_labels(Vendor::Kunlun, &[], None);
        assert_eq!(labels, BTreeMap::from([("kunlunxin.com/xpu.count".to_string(), "0".to_string())]));
    }
}
