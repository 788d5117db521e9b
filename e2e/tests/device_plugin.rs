//! The device plugin labels its node through the API server (here the fake one), and keeps the
//! labels in step with the devices' health.

use std::fs;

use clap::Parser;
use e2e::fake_api::FakeApiServer;
use e2e::harness::eventually;
use scs_operator::device_plugin::sysfs::fake::{FakeFunction, add_function, rebind};
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
    // A third GPU shares its IOMMU group with a NIC: reported on the Node, not advertised.
    add_function(&sysfs, &FakeFunction::t4_vfio("0000:86:00.0", "pci0000:85", 77, 1)).unwrap();
    let nic = FakeFunction {
        vendor: 0x8086,
        device: 0x10fb,
        driver: "ixgbe",
        ..FakeFunction::t4_vfio("0000:86:00.1", "pci0000:85", 77, 1)
    };
    add_function(&sysfs, &nic).unwrap();
    fs::write(dev.join("vfio/77"), "").unwrap();
    let args = Args::parse_from([
        "device-plugin".to_string(),
        "--vendor=nvidia".to_string(),
        "--node-name=gpu-1".to_string(),
        format!("--sysfs-root={}", sysfs.display()),
        format!("--dev-root={}", dev.display()),
        format!("--kubelet-dir={}", kubelet.display()),
        format!("--cdi-dir={}", tmp.path().join("cdi").display()),
        "--health-interval=0.1".to_string(),
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
    let labels = &node["metadata"]["labels"];
    assert_eq!(labels["kubernetes.io/hostname"], "gpu-1", "other labels are kept");
    assert_eq!(
        (&labels["scs.dev/gpu-certified"], &labels["scs.dev/gpu-certified-reason"]),
        (&json!("true"), &json!("VfioPassthrough"))
    );
    // VFIO mode: the sandbox image's certified driver 450.80.02 runs CUDA up to 11.2.
    assert_eq!(labels["scs.dev/cuda-driver-version"], "11020");
    let annotations = &node["metadata"]["annotations"];
    assert!(
        annotations["scs.dev/gpu-certification"]
            .as_str()
            .unwrap()
            .contains("2 certified nvidia device(s) bound to vfio-pci")
    );
    let reported = annotations["scs.dev/gpu-not-advertised"].as_str().unwrap();
    assert!(
        reported.starts_with(
            "IOMMU group 77 is not advertised: it also holds 0000:86:00.1 (vendor 0x8086, bound to ixgbe)"
        ),
        "{reported}"
    );

    // The shared group is also a Warning Event on the Node.
    eventually("a DeviceNotAdvertised Event on the Node", || async {
        server.list("/apis/events.k8s.io/v1/namespaces/default/events").iter().any(|e| {
            e["type"] == "Warning"
                && e["reason"] == "DeviceNotAdvertised"
                && e["regarding"]["kind"] == "Node"
                && e["regarding"]["name"] == "gpu-1"
                && e["note"].as_str().unwrap_or_default().starts_with("IOMMU group 77")
        })
    })
    .await;

    // One GPU is rebound to the host driver: unhealthy, so the count drops; back, it returns.
    rebind(&sysfs, "0000:3c:00.0", "vfio-pci", "nvidia").unwrap();
    eventually("the node counts one GPU", || async {
        server.get(node_path).is_some_and(|node| node["metadata"]["labels"]["nvidia.com/gpu.count"] == "1")
    })
    .await;
    rebind(&sysfs, "0000:3c:00.0", "nvidia", "vfio-pci").unwrap();
    eventually("the node counts two GPUs again", || async {
        server.get(node_path).is_some_and(|node| node["metadata"]["labels"]["nvidia.com/gpu.count"] == "2")
    })
    .await;
    let applies: Vec<_> = server.writes("/nodes/gpu-1");
    assert!(
        applies.iter().all(|r| r.method == "PATCH" && r.query.contains("fieldManager=scs-device-plugin-nvidia")),
        "{applies:?}"
    );
    assert_eq!(applies.len(), 3, "written at start and on each change only: {applies:?}");
    stop.send(()).unwrap();
    plugin.await.unwrap().unwrap();
}
