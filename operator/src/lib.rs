//! Control plane of the secure container service: API types, configuration, validation,
//! child-object builders and the offline render pipeline.

pub mod allocator;
pub mod api;
pub mod authz;
pub mod builders;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod controller;
pub mod device_plugin;
pub mod expiry;
pub mod images;
pub mod outbound;
pub mod patrol;
pub mod plugin;
pub mod quantity;
pub mod render;
pub mod validate;
