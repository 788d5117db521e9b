//! The device plugin labels its node through the API server (here the fake one).

use std::fs;

use clap::Parser;
use e2e::fake_api::FakeApiServer;
use e2e::harness::eventually;
use scs_operator::device_plugin::sysfs::fake::{FakeFunction, add_function};
use scs_operator::device_plugin::{Args, run_with_client};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_plugin_labels_its_node_with_the_advertised_devices() {
    let server = FakeApiServer::start().await;
    let node_path = "/api/v1/nodes/gpu-1";
    server.insert(
        node_path,
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-1", "labels": {"kubernetes.io/hostname": "gpu-1"}}}),
    );
    let tmp = tempfile::tempdir().unwrap();
    let (sysfs, dev, kubelet) = (tmp.path().join("sys"), tmp.path().join("dev"), tmp.path().join("kubelet"));
    fs::create_dir_all(dev.join("vfio")).unwrap();
    fs::create_dir_all(&kubelet).unwrap();
    for (address, group) in [("0000:3b:00.0", 41), ("0000:3c:00.0", 42)] {
        add_function(&sysfs, &FakeFunction::t4_vfio(address, "pci0000:3a", group, 0)).unwrap();
        fs::write(dev.join(format!("vfio/{group}")), "").unwrap();
    }
    let args = Args::parse_from([
        "device-plugin".to_string(),
        "--vendor=nvidia".to_string(),
        "--node-name=gpu-1".to_string(),
        format!("--sysfs-root={}", sysfs.display()),
        format!("--dev-root={}", dev.display()),
        format!("--kubelet-dir={}", kubelet.display()),
    ]);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // No kubelet here: the plugin waits for kubelet.sock and labels its node meanwhile.
    let plugin = tokio::spawn(run_with_client(args, Some(server.client()), async {
        let _ = stopped.await;
    }));
    eventually("the node carries the GPU labels", || async {
        let labels = server.get(node_path).map(|node| node["metadata"]["labels"].clone()).unwrap_or_default();
        labels["nvidia.com/gpu.product"] == "Tesla-T4" && labels["nvidia.com/gpu.count"] == "2"
    })
    .await;
    let node = server.get(node_path).unwrap();
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], "gpu-1", "other labels are kept");
    let applies: Vec<_> = server.writes("/nodes/gpu-1");
    assert!(
        applies.iter().all(|r| r.method == "PATCH" && r.query.contains("fieldManager=scs-device-plugin")),
        "{applies:?}"
    );
    stop.send(()).unwrap();
    plugin.await.unwrap().unwrap();
}
