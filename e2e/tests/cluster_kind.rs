//! Cluster tests for kind only (`e2e/kind.sh`): the device plugin as its DaemonSet, which mounts
//! the kubelet's standard `/var/lib/kubelet/device-plugins` (localkube keeps its kubelet elsewhere;
//! there `cluster_node.rs` runs the plugin on the node instead).
#![cfg(feature = "cluster")]

use e2e::cluster::{client, until};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

/// The device plugin with a real kubelet: a kind node has no GPU, so once the node carries the
/// NVIDIA PCI label the DaemonSet runs there, registers `nvidia.com/gpu` with zero devices (the
/// kubelet then reports a capacity of 0) and labels the node with a zero count.
#[tokio::test]
async fn the_device_plugin_registers_with_a_real_kubelet() {
    use k8s_openapi::api::apps::v1::DaemonSet;
    use k8s_openapi::api::core::v1::Node;

    let client = client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let workers = nodes.list(&kube::api::ListParams::default().labels("!node-role.kubernetes.io/control-plane")).await;
    let worker = workers.unwrap().items.into_iter().next().expect("a worker node").metadata.name.unwrap();
    let pci_label = "feature.node.kubernetes.io/pci-10de.present";
    let label = |value: Value| {
        let nodes = nodes.clone();
        let worker = worker.clone();
        async move {
            let patch = json!({"metadata": {"labels": {pci_label: value}}});
            nodes.patch(&worker, &PatchParams::default(), &Patch::Merge(patch)).await.unwrap();
        }
    };
    label(json!("true")).await;

    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), "scs-device-plugins");
    until("the NVIDIA device plugin pod ready on the worker", || async {
        let status = daemon_sets.get("scs-device-plugin-nvidia").await.ok()?.status?;
        (status.number_ready == 1).then_some(())
    })
    .await;
    let node = until("the kubelet reports nvidia.com/gpu and the plugin's labels", || async {
        let node = nodes.get(&worker).await.ok()?;
        let capacity = node.status.as_ref()?.capacity.as_ref()?.get("nvidia.com/gpu")?.0.clone();
        let count = node.metadata.labels.as_ref()?.get("nvidia.com/gpu.count")?.clone();
        Some((capacity, count))
    })
    .await;
    assert_eq!(node, ("0".to_string(), "0".to_string()), "no GPU on a kind node: capacity and count are zero");

    label(Value::Null).await;
    until("the plugin pod gone once the node is no longer a GPU node", || async {
        let status = daemon_sets.get("scs-device-plugin-nvidia").await.ok()?.status?;
        (status.desired_number_scheduled == 0).then_some(())
    })
    .await;
}
