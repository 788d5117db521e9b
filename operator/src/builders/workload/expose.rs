//! Services, Ingress and HorizontalPodAutoscaler of a workload.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend, IngressSpec,
    IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::{Autoscaling, Expose, PortProtocol, ServiceType};

/// Target CPU utilization when autoscaling names no target.
pub const DEFAULT_CPU_UTILIZATION: i32 = 80;

fn protocol(protocol: Option<PortProtocol>) -> &'static str {
    match protocol {
        Some(PortProtocol::UDP) => "UDP",
        Some(PortProtocol::SCTP) => "SCTP",
        Some(PortProtocol::TCP) | None => "TCP",
    }
}

/// The Service in front of the pods.
pub fn service(expose: &Expose, metadata: ObjectMeta, selector: &BTreeMap<String, String>) -> Service {
    let ports = expose
        .ports
        .iter()
        .map(|p| ServicePort {
            name: p.name.clone(),
            port: p.port,
            target_port: Some(p.target_port.clone().unwrap_or(IntOrString::Int(p.port))),
            protocol: Some(protocol(p.protocol).into()),
            ..Default::default()
        })
        .collect();
    let type_ = match expose.service_type {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::LoadBalancer => "LoadBalancer",
    };
    // Tenants get no NodePorts (quota `services.nodeports: 0`): a LoadBalancer must not allocate them.
    let no_node_ports = (expose.service_type == ServiceType::LoadBalancer).then_some(false);
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(type_.into()),
            selector: Some(selector.clone()),
            ports: Some(ports),
            allocate_load_balancer_node_ports: no_node_ports,
            ..Default::default()
        }),
        status: None,
    }
}

/// The headless Service that gives a StatefulSet's pods their stable DNS names.
pub fn headless_service(expose: Option<&Expose>, metadata: ObjectMeta, selector: &BTreeMap<String, String>) -> Service {
    let ports = expose.map(|e| {
        e.ports
            .iter()
            .map(|p| ServicePort {
                name: p.name.clone(),
                port: p.port,
                protocol: Some(protocol(p.protocol).into()),
                ..Default::default()
            })
            .collect()
    });
    Service {
        metadata,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(selector.clone()),
            ports,
            publish_not_ready_addresses: Some(true),
            ..Default::default()
        }),
        status: None,
    }
}

/// The Ingress routing `expose.ingress.host` to the Service's first port.
pub fn ingress(expose: &Expose, metadata: ObjectMeta, service_name: &str) -> Option<Ingress> {
    let rule = expose.ingress.as_ref()?;
    let first = expose.ports.first()?;
    let port = match &first.name {
        Some(name) => ServiceBackendPort { name: Some(name.clone()), number: None },
        None => ServiceBackendPort { name: None, number: Some(first.port) },
    };
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: rule.class_name.clone(),
            rules: Some(vec![IngressRule {
                host: Some(rule.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some(rule.path.clone().unwrap_or_else(|| "/".into())),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend { name: service_name.into(), port: Some(port) }),
                            resource: None,
                        },
                    }],
                }),
            }]),
            tls: rule.tls_secret_name.as_ref().map(|secret| {
                vec![IngressTLS { hosts: Some(vec![rule.host.clone()]), secret_name: Some(secret.clone()) }]
            }),
            ..Default::default()
        }),
        status: None,
    })
}

fn utilization(resource: &str, percent: i32) -> MetricSpec {
    MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: resource.into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(percent),
                ..Default::default()
            },
        }),
        ..Default::default()
    }
}

/// An `autoscaling/v2` HPA for a Deployment or StatefulSet.
pub fn autoscaler(autoscaling: &Autoscaling, metadata: ObjectMeta, kind: &str, name: &str) -> HorizontalPodAutoscaler {
    let mut metrics = Vec::new();
    if let Some(cpu) = autoscaling.cpu_utilization {
        metrics.push(utilization("cpu", cpu));
    }
    if let Some(memory) = autoscaling.memory_utilization {
        metrics.push(utilization("memory", memory));
    }
    if metrics.is_empty() {
        metrics.push(utilization("cpu", DEFAULT_CPU_UTILIZATION));
    }
    HorizontalPodAutoscaler {
        metadata,
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: kind.into(),
                name: name.into(),
            },
            min_replicas: Some(autoscaling.min_replicas.unwrap_or(1)),
            max_replicas: autoscaling.max_replicas,
            metrics: Some(metrics),
            behavior: None,
        }),
        status: None,
    }
}
