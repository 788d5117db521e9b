//! The plugin's gRPC service: the kubelet lists, watches and allocates devices through it.

use std::collections::BTreeSet;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tonic::{Request, Response, Status};

use super::allocate::{container_response, preferred_allocation};
use super::api::device_plugin_server::DevicePlugin;
use super::api::{
    AllocateRequest, AllocateResponse, CdiDevice, ContainerPreferredAllocationResponse, Device as ApiDevice,
    DevicePluginOptions, Empty, ListAndWatchResponse, NumaNode, PreStartContainerRequest, PreStartContainerResponse,
    PreferredAllocationRequest, PreferredAllocationResponse, TopologyInfo,
};
use super::device::Device;
use super::sysfs::HostPaths;

/// Serves the devices published on a watch channel; ListAndWatch streams end when `stop` turns
/// true, so a graceful server shutdown does not wait on them forever.
#[derive(Clone)]
pub struct PluginService {
    pub resource_name: String,
    pub devices: watch::Receiver<Vec<Device>>,
    pub host: HostPaths,
    pub stop: watch::Receiver<bool>,
    /// CDI names for Allocate, when the plugin writes a CDI spec.
    pub cdi: Option<CdiNames>,
}

/// The CDI kind and the device IDs the spec file on disk describes now: Allocate names a device
/// only when the runtime can resolve it (a CDI name without its spec fails the container).
#[derive(Clone)]
pub struct CdiNames {
    pub kind: String,
    pub written: watch::Receiver<BTreeSet<String>>,
}

impl CdiNames {
    /// The qualified names of `devices`, or none (with a warning) unless the spec on disk
    /// describes every one of them; the device specs still let the container run.
    pub fn names_for(&self, devices: &[&Device]) -> Vec<CdiDevice> {
        let written = self.written.borrow();
        if let Some(missing) = devices.iter().find(|d| !written.contains(&d.id)) {
            tracing::warn!(device = %missing, kind = %self.kind, "no CDI spec describes this device yet: Allocate names no CDI devices");
            return vec![];
        }
        devices.iter().map(|d| CdiDevice { name: super::cdi::qualified_name(&self.kind, &d.id) }).collect()
    }
}

pub fn options() -> DevicePluginOptions {
    DevicePluginOptions { pre_start_required: false, get_preferred_allocation_available: true }
}

/// The kubelet's view of a device list.
pub fn list_response(devices: &[Device]) -> ListAndWatchResponse {
    ListAndWatchResponse {
        devices: devices
            .iter()
            .map(|device| ApiDevice {
                id: device.id.clone(),
                health: device.health.as_str().to_string(),
                topology: device.numa_node.map(|id| TopologyInfo { nodes: vec![NumaNode { id }] }),
            })
            .collect(),
    }
}

impl PluginService {
    /// Looks up requested IDs; unknown or unhealthy ones are refused with a message naming them.
    fn lookup<'a>(&self, devices: &'a [Device], ids: &[String]) -> Result<Vec<&'a Device>, Status> {
        ids.iter()
            .map(|id| match devices.iter().find(|d| &d.id == id) {
                None => Err(Status::invalid_argument(format!(
                    "{}: unknown device ID {id:?} (this node advertises {})",
                    self.resource_name,
                    known_ids(devices)
                ))),
                Some(device) if !device.is_healthy() => Err(Status::failed_precondition(format!(
                    "{}: device {device} is unhealthy and cannot be allocated",
                    self.resource_name
                ))),
                Some(device) => Ok(device),
            })
            .collect()
    }
}

fn known_ids(devices: &[Device]) -> String {
    if devices.is_empty() {
        return "no devices".into();
    }
    devices.iter().map(|d| d.id.as_str()).collect::<Vec<_>>().join(", ")
}

type ListStream = Pin<Box<dyn Stream<Item = Result<ListAndWatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl DevicePlugin for PluginService {
    async fn get_device_plugin_options(&self, _: Request<Empty>) -> Result<Response<DevicePluginOptions>, Status> {
        Ok(Response::new(options()))
    }

    type ListAndWatchStream = ListStream;

    async fn list_and_watch(&self, _: Request<Empty>) -> Result<Response<Self::ListAndWatchStream>, Status> {
        let mut stop = self.stop.clone();
        let stopped = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        // WatchStream yields the current list first, then the latest list after every change.
        let stream =
            WatchStream::new(self.devices.clone()).map(|devices| Ok(list_response(&devices))).take_until(stopped);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_preferred_allocation(
        &self,
        request: Request<PreferredAllocationRequest>,
    ) -> Result<Response<PreferredAllocationResponse>, Status> {
        let devices = self.devices.borrow().clone();
        let container_responses = request
            .into_inner()
            .container_requests
            .iter()
            .map(|container| {
                let available: Vec<&Device> = devices
                    .iter()
                    .filter(|d| d.is_healthy() && container.available_device_i_ds.contains(&d.id))
                    .collect();
                let size = usize::try_from(container.allocation_size).unwrap_or(0);
                let device_i_ds = preferred_allocation(&available, &container.must_include_device_i_ds, size);
                ContainerPreferredAllocationResponse { device_i_ds }
            })
            .collect();
        Ok(Response::new(PreferredAllocationResponse { container_responses }))
    }

    async fn allocate(&self, request: Request<AllocateRequest>) -> Result<Response<AllocateResponse>, Status> {
        let devices = self.devices.borrow().clone();
        let container_responses = request
            .into_inner()
            .container_requests
            .iter()
            .map(|container| {
                let chosen = self.lookup(&devices, &container.devices_ids)?;
                tracing::info!(resource = %self.resource_name, devices = ?container.devices_ids, "allocating");
                let mut response = container_response(&chosen, &self.host);
                if let Some(cdi) = &self.cdi {
                    response.cdi_devices = cdi.names_for(&chosen);
                }
                Ok(response)
            })
            .collect::<Result<_, Status>>()?;
        Ok(Response::new(AllocateResponse { container_responses }))
    }

    async fn pre_start_container(
        &self,
        _: Request<PreStartContainerRequest>,
    ) -> Result<Response<PreStartContainerResponse>, Status> {
        // Not requested in our options: nothing to prepare before a container starts.
        Ok(Response::new(PreStartContainerResponse {}))
    }
}
