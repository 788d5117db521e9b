//! The device plugin against a fake kubelet: a Registration server on a temp `kubelet.sock`
//! that receives Register, then dials the plugin's socket the way the kubelet does. Devices
//! come from fake sysfs and /dev trees (there is no GPU on CI machines).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use scs_operator::device_plugin::api::device_plugin_client::DevicePluginClient;
use scs_operator::device_plugin::api::registration_server::{Registration, RegistrationServer};
use scs_operator::device_plugin::api::{
    AllocateRequest, ContainerAllocateRequest, ContainerPreferredAllocationRequest, Empty, ListAndWatchResponse,
    PreferredAllocationRequest, RegisterRequest,
};
use scs_operator::device_plugin::kubelet::unix_channel;
use scs_operator::device_plugin::sysfs::fake::{FakeFunction, add_function, set_driver_version};
use scs_operator::device_plugin::{Args, run};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status, Streaming};

const WAIT: Duration = Duration::from_secs(10);

/// Records every Register call.
struct FakeRegistration {
    registered: mpsc::UnboundedSender<RegisterRequest>,
}

#[tonic::async_trait]
impl Registration for FakeRegistration {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<Empty>, Status> {
        let _ = self.registered.send(request.into_inner());
        Ok(Response::new(Empty {}))
    }
}

/// A kubelet's registration endpoint; dropping `stop` ends it (the socket file stays, as after
/// a crash, until the test removes it).
struct FakeKubelet {
    registered: mpsc::UnboundedReceiver<RegisterRequest>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeKubelet {
    fn start(dir: &Path) -> Self {
        let socket = dir.join("kubelet.sock");
        let _ = fs::remove_file(&socket);
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let (tx, registered) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .serve_with_incoming_shutdown(
                    RegistrationServer::new(FakeRegistration { registered: tx }),
                    UnixListenerStream::new(listener),
                    async {
                        let _ = stopped.await;
                    },
                )
                .await
                .unwrap();
        });
        Self { registered, stop: Some(stop), task }
    }

    async fn next_registration(&mut self) -> RegisterRequest {
        tokio::time::timeout(WAIT, self.registered.recv()).await.expect("the plugin registers").unwrap()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap();
    }
}

/// A temp node: kubelet dir, sysfs and /dev.
struct Node {
    _tmp: tempfile::TempDir,
    kubelet: PathBuf,
    sysfs: PathBuf,
    dev: PathBuf,
    cdi: PathBuf,
}

impl Node {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let node = Node {
            kubelet: tmp.path().join("device-plugins"),
            sysfs: tmp.path().join("sys"),
            dev: tmp.path().join("dev"),
            cdi: tmp.path().join("cdi"),
            _tmp: tmp,
        };
        for dir in [&node.kubelet, &node.sysfs, &node.dev.join("vfio")] {
            fs::create_dir_all(dir).unwrap();
        }
        node
    }

    fn args(&self, extra: &[&str]) -> Args {
        let mut argv = vec![
            "device-plugin".to_string(),
            format!("--kubelet-dir={}", self.kubelet.display()),
            format!("--sysfs-root={}", self.sysfs.display()),
            format!("--dev-root={}", self.dev.display()),
            format!("--cdi-dir={}", self.cdi.display()),
            "--health-interval=0.05".to_string(),
            "--rescan-interval=0.05".to_string(),
            "--socket-check-interval=0.05".to_string(),
        ];
        argv.extend(extra.iter().map(|s| s.to_string()));
        Args::try_parse_from(argv).unwrap()
    }

    /// A GPU bound to vfio-pci in IOMMU group `group`, with its /dev/vfio node.
    fn vfio_gpu(&self, address: &str, root: &str, device: u16, group: u32, numa: i64) {
        add_function(&self.sysfs, &FakeFunction { device, ..FakeFunction::t4_vfio(address, root, group, numa) })
            .unwrap();
        fs::write(self.dev.join(format!("vfio/{group}")), "").unwrap();
    }
}

/// Runs the plugin until the returned sender fires.
fn start_plugin(args: Args) -> (oneshot::Sender<()>, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run(args, async {
        let _ = stopped.await;
    }));
    (stop, task)
}

async fn plugin_client(node: &Node, endpoint: &str) -> DevicePluginClient<Channel> {
    DevicePluginClient::new(unix_channel(node.kubelet.join(endpoint)).await.unwrap())
}

async fn next_list(stream: &mut Streaming<ListAndWatchResponse>) -> Vec<(String, String)> {
    let response = tokio::time::timeout(WAIT, stream.next()).await.expect("a device list").unwrap().unwrap();
    response.devices.into_iter().map(|d| (d.id, d.health)).collect()
}

/// The file's content once it exists.
async fn wait_for_file(path: &Path) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(text) = fs::read_to_string(path) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} is written", path.display()))
}

fn allocate_request(ids: &[&str]) -> AllocateRequest {
    AllocateRequest {
        container_requests: vec![ContainerAllocateRequest { devices_ids: ids.iter().map(|s| s.to_string()).collect() }],
    }
}

fn healthy(ids: &[&str]) -> Vec<(String, String)> {
    ids.iter().map(|id| (id.to_string(), "Healthy".to_string())).collect()
}

#[tokio::test]
async fn vfio_plugin_registers_lists_allocates_and_streams_health_changes() {
    let node = Node::new();
    node.vfio_gpu("0000:3b:00.0", "pci0000:3a", 0x1eb8, 41, 0);
    node.vfio_gpu("0000:3c:00.0", "pci0000:3a", 0x1eb8, 42, 0);
    node.vfio_gpu("0000:86:00.0", "pci0000:85", 0x1eb8, 77, 1);
    // An A100 is not a certified model: found, logged, not advertised.
    node.vfio_gpu("0000:af:00.0", "pci0000:ae", 0x20b5, 90, 1);
    fs::write(node.dev.join("vfio/vfio"), "").unwrap();

    let mut kubelet = FakeKubelet::start(&node.kubelet);
    let (stop, plugin) = start_plugin(node.args(&["--vendor=nvidia", "--mode=vfio"]));

    let registration = kubelet.next_registration().await;
    assert_eq!(registration.version, "v1beta1");
    assert_eq!(registration.endpoint, "scs-nvidia-vfio.sock");
    assert_eq!(registration.resource_name, "nvidia.com/gpu");
    assert!(registration.options.unwrap().get_preferred_allocation_available);

    let mut client = plugin_client(&node, &registration.endpoint).await;
    let options = client.get_device_plugin_options(Empty {}).await.unwrap().into_inner();
    assert!(options.get_preferred_allocation_available && !options.pre_start_required);

    let mut stream = client.list_and_watch(Empty {}).await.unwrap().into_inner();
    assert_eq!(next_list(&mut stream).await, healthy(&["41", "42", "77"]));

    // The CDI spec describes exactly the advertised devices (not the A100).
    let spec_path = node.cdi.join("scs-nvidia-vfio.json");
    let spec = wait_for_file(&spec_path).await;
    let spec: serde_json::Value = serde_json::from_str(&spec).unwrap();
    assert_eq!((spec["cdiVersion"].as_str(), spec["kind"].as_str()), (Some("0.6.0"), Some("nvidia.com/gpu")));
    let names: Vec<&str> = spec["devices"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["41", "42", "77"]);
    assert_eq!(spec["devices"][2]["containerEdits"]["deviceNodes"][0]["hostPath"], "/dev/vfio/77");
    assert_eq!(spec["containerEdits"]["deviceNodes"][0]["path"], "/dev/vfio/vfio");

    let allocated = client.allocate(allocate_request(&["41", "77"])).await.unwrap().into_inner();
    let paths: Vec<_> = allocated.container_responses[0].devices.iter().map(|d| d.host_path.as_str()).collect();
    assert_eq!(paths, ["/dev/vfio/41", "/dev/vfio/77", "/dev/vfio/vfio"]);
    let cdi: Vec<_> = allocated.container_responses[0].cdi_devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(cdi, ["nvidia.com/gpu=41", "nvidia.com/gpu=77"]);

    let unknown = client.allocate(allocate_request(&["41", "90"])).await.unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert!(unknown.message().contains("unknown device ID \"90\""), "{}", unknown.message());

    let preferred = client
        .get_preferred_allocation(PreferredAllocationRequest {
            container_requests: vec![ContainerPreferredAllocationRequest {
                available_device_i_ds: vec!["77".into(), "42".into(), "41".into()],
                must_include_device_i_ds: vec![],
                allocation_size: 2,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(preferred.container_responses[0].device_i_ds, ["41", "42"], "same NUMA node and PCI root");

    // The VFIO group node disappears (device unbound): the kubelet hears about it on the stream.
    fs::remove_file(node.dev.join("vfio/42")).unwrap();
    let expected = [("41", "Healthy"), ("42", "Unhealthy"), ("77", "Healthy")].map(|(a, b)| (a.into(), b.into()));
    assert_eq!(next_list(&mut stream).await, expected);
    let unhealthy = client.allocate(allocate_request(&["42"])).await.unwrap_err();
    assert_eq!(unhealthy.code(), Code::FailedPrecondition);
    assert!(unhealthy.message().contains("42"), "{}", unhealthy.message());
    fs::write(node.dev.join("vfio/42"), "").unwrap();
    assert_eq!(next_list(&mut stream).await, healthy(&["41", "42", "77"]));

    // A GPU bound to vfio-pci later is found by the next scan: listed, described in the CDI
    // spec, allocatable by its CDI name.
    node.vfio_gpu("0000:3d:00.0", "pci0000:3a", 0x1eb8, 43, 0);
    // (A scan may catch the fake tree half-written: lists until the complete one.)
    let expected = healthy(&["41", "42", "43", "77"]);
    tokio::time::timeout(WAIT, async { while next_list(&mut stream).await != expected {} })
        .await
        .expect("the new GPU is listed healthy");
    tokio::time::timeout(WAIT, async {
        while !fs::read_to_string(&spec_path).unwrap().contains("/dev/vfio/43") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the CDI spec describes the new GPU");
    let allocated = client.allocate(allocate_request(&["43"])).await.unwrap().into_inner();
    let cdi: Vec<_> = allocated.container_responses[0].cdi_devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(cdi, ["nvidia.com/gpu=43"]);

    // SIGTERM: the stream ends, the plugin stops and removes its socket.
    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, plugin).await.expect("the plugin stops").unwrap().unwrap();
    assert!(tokio::time::timeout(WAIT, stream.next()).await.unwrap().is_none_or(|item| item.is_err()));
    assert!(!node.kubelet.join("scs-nvidia-vfio.sock").exists());
    kubelet.stop().await;
}

#[tokio::test]
async fn plugin_registers_again_after_kubelet_restarts_or_its_socket_is_removed() {
    let node = Node::new();
    for name in ["xpu0", "xpu1", "xpuctrl"] {
        fs::write(node.dev.join(name), "").unwrap();
    }
    for (address, numa) in [("0000:18:00.0", 0), ("0000:19:00.0", 1)] {
        let function = FakeFunction {
            address,
            root: "pci0000:17",
            vendor: 0x1d22,
            device: 0x3684,
            driver: "kunlun",
            iommu_group: None,
            numa_node: numa,
            vfio_cdev: None,
        };
        add_function(&node.sysfs, &function).unwrap();
    }
    let kubelet = FakeKubelet::start(&node.kubelet);
    let (stop, plugin) = start_plugin(node.args(&["--vendor=kunlun", "--mode=container"]));
    let mut kubelet = kubelet;
    let first = kubelet.next_registration().await;
    assert_eq!(
        (first.endpoint.as_str(), first.resource_name.as_str()),
        ("scs-kunlun-container.sock", "kunlunxin.com/xpu")
    );

    let mut client = plugin_client(&node, &first.endpoint).await;
    let mut stream = client.list_and_watch(Empty {}).await.unwrap().into_inner();
    assert_eq!(next_list(&mut stream).await, healthy(&["xpu0", "xpu1"]));
    let allocated = client.allocate(allocate_request(&["xpu1"])).await.unwrap().into_inner();
    let container = &allocated.container_responses[0];
    assert_eq!(
        container.devices.iter().map(|d| d.host_path.as_str()).collect::<Vec<_>>(),
        ["/dev/xpu1", "/dev/xpuctrl"]
    );
    assert_eq!(container.envs["XPU_VISIBLE_DEVICES"], "1");

    // The kubelet restarts: its socket is recreated (and, like the real one, it deletes plugin
    // sockets; here we only recreate its own to test that path alone).
    kubelet.stop().await;
    fs::remove_file(node.kubelet.join("kubelet.sock")).unwrap();
    let mut kubelet = FakeKubelet::start(&node.kubelet);
    let again = kubelet.next_registration().await;
    assert_eq!(again.endpoint, "scs-kunlun-container.sock");

    // Our socket removed (as the kubelet does on restart): served anew and registered again.
    fs::remove_file(node.kubelet.join(&again.endpoint)).unwrap();
    let third = kubelet.next_registration().await;
    assert_eq!(third.resource_name, "kunlunxin.com/xpu");
    let mut client = plugin_client(&node, &third.endpoint).await;
    let mut stream = client.list_and_watch(Empty {}).await.unwrap().into_inner();
    assert_eq!(next_list(&mut stream).await, healthy(&["xpu0", "xpu1"]));

    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, plugin).await.expect("the plugin stops").unwrap().unwrap();
    assert!(!node.kubelet.join("scs-kunlun-container.sock").exists());
    kubelet.stop().await;
}

#[tokio::test]
async fn without_devices_it_advertises_nothing_or_fails_when_asked_to() {
    let node = Node::new();
    let failed = run(node.args(&["--vendor=kunlun", "--mode=vfio", "--fail-on-init-error"]), std::future::pending())
        .await
        .unwrap_err();
    assert_eq!(failed.to_string(), "no kunlun devices to advertise in vfio mode: none found");

    let mut kubelet = FakeKubelet::start(&node.kubelet);
    let (stop, plugin) =
        start_plugin(node.args(&["--vendor=kunlun", "--mode=vfio", "--resource-name=example.com/xpu"]));
    let registration = kubelet.next_registration().await;
    assert_eq!(registration.resource_name, "example.com/xpu");
    let mut client = plugin_client(&node, &registration.endpoint).await;
    let mut stream = client.list_and_watch(Empty {}).await.unwrap().into_inner();
    assert_eq!(next_list(&mut stream).await, vec![]);
    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, plugin).await.unwrap().unwrap().unwrap();
    kubelet.stop().await;
}

#[tokio::test]
async fn an_uncertified_driver_withholds_the_devices_when_required_and_no_cdi_means_no_names() {
    let node = Node::new();
    for name in ["xpu0", "xpuctrl"] {
        fs::write(node.dev.join(name), "").unwrap();
    }
    let function = FakeFunction {
        address: "0000:18:00.0",
        root: "pci0000:17",
        vendor: 0x1d22,
        device: 0x3684,
        driver: "kunlun",
        iommu_group: None,
        numa_node: 0,
        vfio_cdev: None,
    };
    add_function(&node.sysfs, &function).unwrap();
    set_driver_version(&node.sysfs, "kunlun", "4.0.25").unwrap();
    let certified = ["--vendor=kunlun", "--mode=container", "--certified-drivers=4.0.18"];
    let refused = run(
        node.args(&[&certified[..], &["--require-certified-driver", "--fail-on-init-error"]].concat()),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "1 kunlun devices not advertised (--require-certified-driver): driver 4.0.25 is not certified (certified: 4.0.18)"
    );

    // Without --require-certified-driver the device is advertised (the node label says false);
    // with --no-cdi Allocate names no CDI device and no spec is written.
    let mut kubelet = FakeKubelet::start(&node.kubelet);
    let (stop, plugin) = start_plugin(node.args(&[&certified[..], &["--no-cdi"]].concat()));
    let registration = kubelet.next_registration().await;
    let mut client = plugin_client(&node, &registration.endpoint).await;
    let mut stream = client.list_and_watch(Empty {}).await.unwrap().into_inner();
    assert_eq!(next_list(&mut stream).await, healthy(&["xpu0"]));
    let allocated = client.allocate(allocate_request(&["xpu0"])).await.unwrap().into_inner();
    assert!(allocated.container_responses[0].cdi_devices.is_empty());
    assert!(!node.cdi.exists());
    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, plugin).await.unwrap().unwrap().unwrap();
    kubelet.stop().await;
}
