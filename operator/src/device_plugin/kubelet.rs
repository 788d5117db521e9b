//! The plugin's life with the kubelet: serve our socket, Register, and start over when the
//! kubelet restarts (it recreates `kubelet.sock` and deletes plugin sockets) or our socket
//! disappears. Sockets are polled rather than watched with inotify: one `stat` a second is
//! cheap and works on every filesystem the device-plugins directory lives on, and no inotify
//! crate (such as `notify`) is in Cargo.lock to justify a new dependency for it.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::{Endpoint, Server};

use super::api::device_plugin_server::DevicePluginServer;
use super::api::registration_client::RegistrationClient;
use super::api::{KUBELET_SOCKET, RegisterRequest, VERSION};
use super::service::{PluginService, options};

/// Identity of a file: a recreated socket has a new inode or change time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    ino: u64,
    ctime: i64,
    ctime_nsec: i64,
}

fn file_id(path: &Path) -> Option<FileId> {
    let meta = std::fs::metadata(path).ok()?;
    Some(FileId { ino: meta.ino(), ctime: meta.ctime(), ctime_nsec: meta.ctime_nsec() })
}

/// Where and as what the plugin registers.
#[derive(Clone, Debug)]
pub struct Registration {
    pub kubelet_dir: PathBuf,
    /// File name of our socket inside `kubelet_dir`.
    pub socket_name: String,
    pub resource_name: String,
    /// How often sockets are checked.
    pub poll: Duration,
}

impl Registration {
    pub fn socket_path(&self) -> PathBuf {
        self.kubelet_dir.join(&self.socket_name)
    }

    fn kubelet_socket(&self) -> PathBuf {
        self.kubelet_dir.join(KUBELET_SOCKET)
    }
}

/// Why a serving round ended.
#[derive(Debug, PartialEq, Eq)]
enum RoundEnd {
    Stop,
    KubeletRestarted,
    SocketRemoved,
}

/// Serves and registers until `stop` turns true; then stops serving and removes our socket.
pub async fn serve(
    registration: Registration,
    service: PluginService,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let socket = registration.socket_path();
    loop {
        let (server_stop_tx, server_stop_rx) = watch::channel(false);
        let (server, our_id) =
            start_server(&socket, PluginService { stop: server_stop_rx.clone(), ..service.clone() })?;
        let end = match register_when_kubelet_is_up(&registration, &mut stop).await {
            None => RoundEnd::Stop,
            Some(kubelet_id) => {
                tracing::info!(resource = %registration.resource_name, socket = %socket.display(), "registered with the kubelet");
                watch_sockets(&registration, our_id, kubelet_id, &mut stop).await
            }
        };
        let _ = server_stop_tx.send(true);
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "plugin server ended with an error"),
            Err(e) => tracing::warn!(error = %e, "plugin server task failed"),
        }
        match end {
            RoundEnd::Stop => {
                if file_id(&socket) == Some(our_id) {
                    let _ = std::fs::remove_file(&socket);
                }
                tracing::info!(socket = %socket.display(), "stopped serving");
                return Ok(());
            }
            RoundEnd::KubeletRestarted => tracing::info!("kubelet restarted: registering again"),
            RoundEnd::SocketRemoved => {
                tracing::info!(socket = %socket.display(), "our socket was removed: serving again")
            }
        }
    }
}

type ServerTask = tokio::task::JoinHandle<Result<(), tonic::transport::Error>>;

fn start_server(socket: &Path, service: PluginService) -> io::Result<(ServerTask, FileId)> {
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io::Error::new(e.kind(), format!("removing stale {}: {e}", socket.display()))),
    }
    let listener = UnixListener::bind(socket)
        .map_err(|e| io::Error::new(e.kind(), format!("listening on {}: {e}", socket.display())))?;
    let id = file_id(socket).ok_or_else(|| io::Error::other(format!("{} vanished after bind", socket.display())))?;
    let mut stop = service.stop.clone();
    let server = tokio::spawn(Server::builder().serve_with_incoming_shutdown(
        DevicePluginServer::new(service),
        UnixListenerStream::new(listener),
        async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        },
    ));
    Ok((server, id))
}

/// Registers once `kubelet.sock` exists, retrying with a capped backoff; returns the identity
/// of the kubelet socket we registered with, or None when stopped first.
async fn register_when_kubelet_is_up(registration: &Registration, stop: &mut watch::Receiver<bool>) -> Option<FileId> {
    let mut delay = registration.poll;
    let mut waiting_logged = false;
    loop {
        if let Some(kubelet_id) = file_id(&registration.kubelet_socket()) {
            match register(registration).await {
                Ok(()) => return Some(kubelet_id),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?delay, "registration with the kubelet failed");
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        } else if !waiting_logged {
            tracing::info!(socket = %registration.kubelet_socket().display(), "waiting for the kubelet socket");
            waiting_logged = true;
        }
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return None,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// One Register call to the kubelet over its unix socket.
pub async fn register(registration: &Registration) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let channel = unix_channel(registration.kubelet_socket()).await?;
    let request = RegisterRequest {
        version: VERSION.to_string(),
        endpoint: registration.socket_name.clone(),
        resource_name: registration.resource_name.clone(),
        options: Some(options()),
    };
    RegistrationClient::new(channel).register(request).await?;
    Ok(())
}

/// A gRPC channel over a unix socket (the URI is required by tonic but never dialled).
pub async fn unix_channel(path: PathBuf) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        }))
        .await
}

async fn watch_sockets(
    registration: &Registration,
    our_id: FileId,
    kubelet_id: FileId,
    stop: &mut watch::Receiver<bool>,
) -> RoundEnd {
    let socket = registration.socket_path();
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return RoundEnd::Stop,
            _ = tokio::time::sleep(registration.poll) => {}
        }
        if file_id(&socket) != Some(our_id) {
            return RoundEnd::SocketRemoved;
        }
        if let Some(now) = file_id(&registration.kubelet_socket())
            && now != kubelet_id
        {
            return RoundEnd::KubeletRestarted;
        }
    }
}
