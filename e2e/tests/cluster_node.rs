//! Cluster tests that work on the node itself and restart its kubelet, so they run alone, after
//! `cluster.rs` (`e2e/localkube.sh` runs them with `--test-threads=1`). They need the test process
//! on the node, as root: `SCS_E2E_RESTART_KUBELET` (a shell command that restarts the kubelet) is
//! set by `e2e/localkube.sh`. The kubelet serves device plugins in `/var/lib/kubelet/device-plugins`
//! whatever its `--root-dir` (`SCS_E2E_DEVICE_PLUGIN_DIR` overrides).
#![cfg(feature = "cluster")]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use clap::Parser;
use e2e::cluster::*;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use scs_operator::device_plugin::sysfs::fake::{FakeFunction, add_function, rebind};
use scs_operator::device_plugin::{Args, run_with_client};
use serde_json::{Value, json};

fn device_plugin_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("SCS_E2E_DEVICE_PLUGIN_DIR").unwrap_or_else(|_| "/var/lib/kubelet/device-plugins".into()),
    )
}

fn restart_kubelet() {
    let command = std::env::var("SCS_E2E_RESTART_KUBELET").expect("SCS_E2E_RESTART_KUBELET");
    let status = std::process::Command::new("sh").args(["-c", &command]).status().unwrap();
    assert!(status.success(), "restarting the kubelet failed: {command}");
}

/// The node's capacity and allocatable count of `resource`.
async fn advertised(nodes: &Api<Node>, node: &str, resource: &str) -> Option<(String, String)> {
    let status = nodes.get(node).await.ok()?.status?;
    let capacity = status.capacity?.get(resource)?.0.clone();
    let allocatable = status.allocatable?.get(resource)?.0.clone();
    Some((capacity, allocatable))
}

/// The kubelet's record of what Allocate answered for a pod: its device checkpoint holds, per pod
/// and resource, the device IDs and the serialized response.
fn allocation_of(plugins: &Path, pod_uid: &str) -> Option<(Vec<String>, Vec<u8>)> {
    let text = std::fs::read_to_string(plugins.join("kubelet_internal_checkpoint")).ok()?;
    let checkpoint: Value = serde_json::from_str(&text).ok()?;
    let entry = checkpoint["Data"]["PodDeviceEntries"]
        .as_array()?
        .iter()
        .find(|e| e["PodUID"] == pod_uid && e["ResourceName"] == "nvidia.com/gpu")?;
    let ids = entry["DeviceIDs"].as_object()?.values().flat_map(|v| v.as_array().cloned().unwrap_or_default());
    let ids = ids.filter_map(|v| v.as_str().map(str::to_string)).collect();
    let response = base64::engine::general_purpose::STANDARD.decode(entry["AllocResp"].as_str()?).ok()?;
    Some((ids, response))
}

fn gpu_pod(name: &str) -> Pod {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "main", "image": "busybox:latest", "imagePullPolicy": "IfNotPresent",
            "command": ["sleep", "3600"], "resources": {"limits": {"nvidia.com/gpu": 1}}}],
    }}))
    .unwrap()
}

/// The device plugin against the real kubelet: VFIO mode over a fake sysfs tree with two T4
/// functions. It registers, the Node advertises both, a pod asking for one is admitted and the
/// kubelet records what Allocate answered; after a kubelet restart it registers again and serves
/// the next pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_plugin_serves_a_real_kubelet_and_survives_its_restart() {
    let client = client().await;
    let plugins = device_plugin_dir();
    assert!(plugins.join("kubelet.sock").exists(), "no kubelet socket in {}", plugins.display());
    let nodes: Api<Node> = Api::all(client.clone());
    let node = nodes.list(&Default::default()).await.unwrap().items[0].name_any();

    let tmp = tempfile::tempdir().unwrap();
    let (sysfs, dev) = (tmp.path().join("sys"), tmp.path().join("dev"));
    std::fs::create_dir_all(dev.join("vfio")).unwrap();
    for (address, group) in [("0000:3b:00.0", 41), ("0000:3c:00.0", 42)] {
        add_function(&sysfs, &FakeFunction::t4_vfio(address, "pci0000:3a", group, 0)).unwrap();
        std::fs::write(dev.join(format!("vfio/{group}")), "").unwrap();
    }
    let args = Args::parse_from([
        "device-plugin".to_string(),
        "--vendor=nvidia".to_string(),
        "--mode=vfio".to_string(),
        format!("--node-name={node}"),
        format!("--sysfs-root={}", sysfs.display()),
        format!("--dev-root={}", dev.display()),
        format!("--kubelet-dir={}", plugins.display()),
        // Not the host's /var/run/cdi: this node's runtime must not see the fake devices.
        format!("--cdi-dir={}", tmp.path().join("cdi").display()),
    ]);
    let socket = plugins.join(args.socket_name());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let plugin = tokio::spawn(run_with_client(args, Some(client.clone()), async {
        let _ = stopped.await;
    }));

    let counts = until("the Node advertises two nvidia.com/gpu", || async {
        advertised(&nodes, &node, "nvidia.com/gpu").await.filter(|(c, a)| c == "2" && a == "2")
    })
    .await;
    assert_eq!(counts, ("2".into(), "2".into()));
    let labels = nodes.get(&node).await.unwrap().labels().clone();
    assert_eq!(labels.get("nvidia.com/gpu.product").map(String::as_str), Some("Tesla-T4"));

    let namespace = "e2e-gpu";
    plain_namespace(&client, namespace, json!({})).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    // Admitted and allocated. Allocate answers the host's /dev/vfio/<group>, which this node does
    // not have, so the container itself cannot start here: the kubelet's checkpoint is the proof.
    let allocated = |name: &'static str| {
        let pods = pods.clone();
        let plugins = plugins.clone();
        async move {
            let pod = pods.create(&PostParams::default(), &gpu_pod(name)).await.unwrap();
            let uid = pod.uid().unwrap();
            let (ids, response) =
                until(&format!("Allocate recorded for pod {name}"), || async { allocation_of(&plugins, &uid) }).await;
            assert_eq!(ids.len(), 1, "{name}: one device: {ids:?}");
            // The group node of exactly one of the two functions, and the VFIO container node.
            let response = String::from_utf8_lossy(&response).into_owned();
            let groups = ["/dev/vfio/41", "/dev/vfio/42"].iter().filter(|g| response.contains(*g)).count();
            assert!(groups == 1 && response.contains("/dev/vfio/vfio"), "{name} ({ids:?}): {response}");
            let status = pods.get(name).await.unwrap().status.unwrap();
            assert_ne!(status.reason.as_deref(), Some("UnexpectedAdmissionError"), "{name}: {status:?}");
        }
    };
    allocated("gpu-one").await;

    // The kubelet restarts (a new kubelet.sock): the plugin sees it and registers again. Only a
    // registered plugin is asked to Allocate, so the next pod's allocation is the proof.
    let kubelet_socket = plugins.join("kubelet.sock");
    // Inode numbers are reused at once: a socket is new when its inode or change time differs.
    let identity = |m: std::fs::Metadata| (m.ino(), m.ctime(), m.ctime_nsec());
    let before = identity(std::fs::metadata(&kubelet_socket).unwrap());
    restart_kubelet();
    until("a new kubelet socket", || async {
        std::fs::metadata(&kubelet_socket).ok().map(identity).filter(|now| *now != before).map(|_| ())
    })
    .await;
    until("the Node advertises two nvidia.com/gpu again", || async {
        advertised(&nodes, &node, "nvidia.com/gpu").await.filter(|(c, a)| c == "2" && a == "2")
    })
    .await;
    pods.delete("gpu-one", &DeleteParams::default().grace_period(0)).await.unwrap();
    until("gpu-one gone", || async { pods.get_opt("gpu-one").await.ok()?.is_none().then_some(()) }).await;
    allocated("gpu-two").await;

    stop.send(()).unwrap();
    plugin.await.unwrap().unwrap();
    assert!(!socket.exists(), "the plugin removes its socket on shutdown");
    delete_namespace(&client, namespace).await;
}

/// The device plugin's CDI names, certification labels and health against the real kubelet:
/// VFIO mode over a fake sysfs/dev tree with two certified T4s (and a third sharing its IOMMU
/// group with a NIC: a Warning Event, not advertised). The Node shows 2 allocatable and
/// `scs.dev/gpu-certified=true`; a pod's recorded Allocate names its device by CDI name (and the
/// spec file describes both); a GPU rebound to its host driver, and one whose VFIO node goes, each
/// drop allocatable to 1 and the labelled count with it; one added later is found by a rescan.
/// A GPU SecureWorkload's pod, with the GPU runtime class, is allocated the other device.
/// (localkube's containerd 1.6 does not read CDI specs: the kubelet's checkpoint is where the
/// names are seen.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_plugin_names_cdi_devices_and_follows_device_health_on_a_real_kubelet() {
    let client = client().await;
    let plugins = device_plugin_dir();
    assert!(plugins.join("kubelet.sock").exists(), "no kubelet socket in {}", plugins.display());
    let nodes: Api<Node> = Api::all(client.clone());
    let node = nodes.list(&Default::default()).await.unwrap().items[0].name_any();

    let tmp = tempfile::tempdir().unwrap();
    let (sysfs, dev, cdi) = (tmp.path().join("sys"), tmp.path().join("dev"), tmp.path().join("cdi"));
    std::fs::create_dir_all(dev.join("vfio")).unwrap();
    // Groups other than the restart test's, so the kubelet's checkpoint cannot confuse the two.
    for (address, group) in [("0000:5b:00.0", 51), ("0000:5c:00.0", 52)] {
        add_function(&sysfs, &FakeFunction::t4_vfio(address, "pci0000:5a", group, 0)).unwrap();
        std::fs::write(dev.join(format!("vfio/{group}")), "").unwrap();
    }
    // A third T4 shares IOMMU group 54 with a NIC: reported (annotation, Event), not advertised.
    add_function(&sysfs, &FakeFunction::t4_vfio("0000:6b:00.0", "pci0000:6a", 54, 0)).unwrap();
    let nic = FakeFunction {
        vendor: 0x8086,
        device: 0x10fb,
        driver: "ixgbe",
        ..FakeFunction::t4_vfio("0000:6b:00.1", "pci0000:6a", 54, 0)
    };
    add_function(&sysfs, &nic).unwrap();
    std::fs::write(dev.join("vfio/54"), "").unwrap();
    let args = Args::parse_from([
        "device-plugin".to_string(),
        "--vendor=nvidia".to_string(),
        "--mode=vfio".to_string(),
        format!("--node-name={node}"),
        format!("--sysfs-root={}", sysfs.display()),
        format!("--dev-root={}", dev.display()),
        format!("--kubelet-dir={}", plugins.display()),
        format!("--cdi-dir={}", cdi.display()),
        "--health-interval=0.5".to_string(),
        "--require-certified-driver".to_string(),
    ]);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let plugin = tokio::spawn(run_with_client(args, Some(client.clone()), async {
        let _ = stopped.await;
    }));
    let allocatable = |count: &'static str| {
        let (nodes, node) = (nodes.clone(), node.clone());
        async move {
            until(&format!("the Node: {count} nvidia.com/gpu allocatable, labelled {count}"), || async {
                let (_, allocatable) = advertised(&nodes, &node, "nvidia.com/gpu").await?;
                let labels = nodes.get(&node).await.ok()?.labels().clone();
                let labelled = labels.get("nvidia.com/gpu.count").map(String::as_str);
                (allocatable == count && labelled == Some(count)).then_some(labels)
            })
            .await
        }
    };
    let labels = allocatable("2").await;
    assert_eq!(labels.get("scs.dev/gpu-certified").map(String::as_str), Some("true"), "{labels:?}");
    assert_eq!(labels.get("scs.dev/gpu-certified-reason").map(String::as_str), Some("VfioPassthrough"));
    // What workloads' `gpu.cuda` bounds compare with: CUDA 11.2 (the certified 450.80.02 driver).
    assert_eq!(labels.get("scs.dev/cuda-driver-version").map(String::as_str), Some("11020"));

    // The shared group: a Warning Event on the Node, filed in `default`, where the DaemonSets'
    // ServiceAccount may create and patch Events (and nowhere else).
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "default");
    until("a DeviceNotAdvertised Event for IOMMU group 54", || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some("DeviceNotAdvertised")
                    && e.type_.as_deref() == Some("Warning")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(node.as_str())
                    && e.note.as_deref().is_some_and(|n| n.starts_with("IOMMU group 54 is not advertised"))
            })
            .map(|_| ())
    })
    .await;
    let plugin_sa = ("system:serviceaccount:scs-device-plugins:scs-device-plugin", &["system:serviceaccounts"][..]);
    for verb in ["create", "patch"] {
        assert!(may(&client, plugin_sa, verb, ("events.k8s.io", "events"), Some("default")).await, "{verb}");
        assert!(!may(&client, plugin_sa, verb, ("events.k8s.io", "events"), Some("kube-system")).await, "{verb}");
    }
    assert!(!may(&client, plugin_sa, "delete", ("events.k8s.io", "events"), Some("default")).await);

    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(cdi.join("scs-nvidia-vfio.json")).unwrap()).unwrap();
    let names: Vec<&str> = spec["devices"].as_array().unwrap().iter().filter_map(|d| d["name"].as_str()).collect();
    assert_eq!((spec["kind"].as_str(), names), (Some("nvidia.com/gpu"), vec!["51", "52"]));

    let namespace = "e2e-gpu-cdi";
    plain_namespace(&client, namespace, json!({})).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod = pods.create(&PostParams::default(), &gpu_pod("gpu-cdi")).await.unwrap();
    let uid = pod.uid().unwrap();
    let (ids, response) = until("Allocate recorded for gpu-cdi", || async { allocation_of(&plugins, &uid) }).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let id = &ids[0];
    // The kubelet kept both the device node and the CDI name of the same device.
    assert!(response.contains(&format!("/dev/vfio/{id}")), "{response}");
    assert!(response.contains(&format!("nvidia.com/gpu={id}")), "{response}");
    let other = if id == "51" { "52" } else { "51" };
    assert!(!response.contains(&format!("nvidia.com/gpu={other}")), "{response}");

    // A GPU SecureWorkload's pod goes the same way: created by its ReplicaSet (so admitted with
    // the GPU class, the taint toleration and amd64 + model + certified + CUDA placement, which
    // the labels the plugin wrote on this node satisfy) and allocated the other device, CDI
    // name included. (Its container cannot start: the fake device node is not on the host.)
    let tenant = "e2e-gpu-workload";
    ready_tenant(&client, tenant, json!({"quota": {"cpu": "2", "memory": "2Gi", "gpu": {"nvidia": 1}}})).await;
    apply_gpu_workload(&client, tenant, 1, json!({"max": "11.2"})).await;
    let tenant_pods: Api<Pod> = Api::namespaced(client.clone(), tenant);
    let selector = ListParams::default().labels("scs.dev/workload=infer");
    let pod = until("a pod of SecureWorkload infer", || async {
        tenant_pods
            .list(&selector)
            .await
            .ok()?
            .items
            .into_iter()
            .find(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_some()))
    })
    .await;
    let pod_spec = pod.spec.as_ref().unwrap();
    assert_eq!(pod_spec.runtime_class_name.as_deref(), Some("kata-qemu-nvidia-gpu"));
    let uid = pod.uid().unwrap();
    let (workload_ids, response) =
        until("Allocate recorded for the workload's pod", || async { allocation_of(&plugins, &uid) }).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    assert_eq!(workload_ids, [other.to_string()], "the device the plain pod does not hold: {response}");
    assert!(response.contains(&format!("/dev/vfio/{other}")), "{response}");
    assert!(response.contains(&format!("nvidia.com/gpu={other}")), "{response}");
    delete_tenant(&client, tenant).await;

    rebind(&sysfs, "0000:5c:00.0", "vfio-pci", "nvidia").unwrap();
    allocatable("1").await;
    rebind(&sysfs, "0000:5c:00.0", "nvidia", "vfio-pci").unwrap();
    allocatable("2").await;
    // A device taken out of the tree: its VFIO node goes.
    std::fs::remove_file(dev.join("vfio/51")).unwrap();
    allocatable("1").await;
    // A third GPU bound to vfio-pci while the plugin runs: found by its rescan (every 30 s by
    // default), so capacity 3 and two of them allocatable.
    std::fs::write(dev.join("vfio/53"), "").unwrap();
    add_function(&sysfs, &FakeFunction::t4_vfio("0000:5d:00.0", "pci0000:5a", 53, 0)).unwrap();
    until("the Node: capacity 3 nvidia.com/gpu, 2 allocatable", || async {
        advertised(&nodes, &node, "nvidia.com/gpu").await.filter(|(c, a)| c == "3" && a == "2")
    })
    .await;
    allocatable("2").await;

    stop.send(()).unwrap();
    plugin.await.unwrap().unwrap();
    delete_namespace(&client, namespace).await;
}

/// Tenants created while the operator's replicas hand the lease over are all reconciled: before
/// the fix, objects of the new leader's initial list could reach the controller before its store
/// held them and were dropped for good (two of 25 tenants, every time, on localkube).
#[tokio::test]
async fn tenants_created_during_a_leader_hand_over_are_all_reconciled() {
    let client = client().await;
    kubectl(&["-n", "scs-system", "rollout", "restart", "deploy/scs-operator"], None).unwrap();
    let tenants: Api<scs_operator::api::Tenant> = Api::all(client.clone());
    let names: Vec<String> = (0..20).map(|i| format!("e2e-handover-{i}")).collect();
    for name in &names {
        apply(
            &tenants,
            name,
            json!({"apiVersion": "scs.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": name}, "spec": {}}),
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(750)).await;
    }
    kubectl(&["-n", "scs-system", "rollout", "status", "deploy/scs-operator", "--timeout=180s"], None).unwrap();
    for name in &names {
        until(&format!("Tenant {name} reconciled"), || async {
            tenants.get(name).await.ok()?.status?.observed_generation.map(|_| ())
        })
        .await;
    }
    for name in &names {
        delete_tenant(&client, name).await;
    }
}

/// The Tenant's `NetworkIsolationReady` condition as `(status, reason)`.
async fn isolation(tenants: &Api<scs_operator::api::Tenant>, name: &str) -> Option<(String, String)> {
    let tenant = tenants.get(name).await.ok()?;
    let status = tenant.status?;
    (status.observed_generation == tenant.metadata.generation).then_some(())?;
    let condition = status.conditions.into_iter().find(|c| c.type_ == "NetworkIsolationReady")?;
    Some((condition.status, condition.reason))
}

fn restart_operator() {
    kubectl(&["-n", "scs-system", "rollout", "restart", "deploy/scs-operator"], None).unwrap();
    kubectl(&["-n", "scs-system", "rollout", "status", "deploy/scs-operator", "--timeout=180s"], None).unwrap();
}

/// Issue 12, item 2: a cluster whose Service range the configured `clusterCidrs` miss would let
/// other tenants' pods through the "outside the cluster" rule. The operator finds out at start
/// from the cluster's own ServiceCIDRs and says so on every Tenant, instead of failing open.
/// Here with the kind overlay's configuration (10.244.0.0/16, 10.96.0.0/12) and a second
/// ServiceCIDR outside them; it restarts the operator, so it lives in this alone-running file.
#[tokio::test]
async fn cluster_cidrs_that_miss_the_clusters_service_range_are_reported() {
    let client = client().await;
    let tenants: Api<scs_operator::api::Tenant> = Api::all(client.clone());
    ready_tenant(&client, "e2e-cidrs", json!({})).await;
    assert_eq!(isolation(&tenants, "e2e-cidrs").await, Some(("True".into(), "Ready".into())));
    let extra = json!({"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
                       "metadata": {"name": "e2e-extra"}, "spec": {"cidrs": ["10.250.0.0/24"]}});
    apply_dynamic(&client, &extra).await;
    restart_operator();
    until("NetworkIsolationReady=False naming the uncovered ServiceCIDR", || async {
        let tenant = tenants.get("e2e-cidrs").await.ok()?;
        let condition = tenant.status?.conditions.into_iter().find(|c| c.type_ == "NetworkIsolationReady")?;
        (condition.status == "False"
            && condition.reason == "ClusterCidrsMismatch"
            && condition.message.contains("10.250.0.0/24 (ServiceCIDR e2e-extra)"))
        .then_some(())
    })
    .await;
    let events =
        kubectl(&["get", "events", "-A", "--field-selector", "reason=ClusterCidrsMismatch", "-o", "name"], None)
            .unwrap();
    assert!(!events.trim().is_empty(), "an Event says so too");
    dynamic_api(&client, &extra).await.delete("e2e-extra", &DeleteParams::default()).await.unwrap();
    until("ServiceCIDR e2e-extra gone", || async {
        dynamic_api(&client, &extra).await.get_opt("e2e-extra").await.ok()?.is_none().then_some(())
    })
    .await;
    restart_operator();
    until("NetworkIsolationReady=True again", || async {
        (isolation(&tenants, "e2e-cidrs").await? == ("True".into(), "Ready".into())).then_some(())
    })
    .await;
    delete_tenant(&client, "e2e-cidrs").await;
}
