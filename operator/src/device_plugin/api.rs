//! Rust types and gRPC stubs for the kubelet device plugin API `v1beta1`, generated at build time
//! from `proto/deviceplugin_v1beta1.proto` (see `build.rs`).

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("v1beta1");

/// The API version this plugin speaks.
pub const VERSION: &str = "v1beta1";
/// The kubelet's registration socket, inside the device-plugins directory.
pub const KUBELET_SOCKET: &str = "kubelet.sock";
