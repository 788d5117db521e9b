//! Builders alone: the desired children of a realistic tenant (two namespaces, three members,
//! quota for every resource kind, two networks) and of a realistic workload (a GPU Deployment on a
//! VLAN behind a LoadBalancer), from the examples. `cargo bench -p scs-operator --bench builders`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use scs_operator::api::{SdnNetwork, SecureWorkload, Tenant};
use scs_operator::builders::{tenant_children, workload::workload_children};
use scs_operator::catalog::Catalog;
use scs_operator::config::OperatorConfig;

const NETWORKS: &str = include_str!("../../examples/00-sdn-networks.yaml");
const TENANT: &str = include_str!("../../examples/01-tenant-acme.yaml");
const WORKLOAD: &str = include_str!("../../examples/10-deployment-inference.yaml");

fn documents<T: serde::de::DeserializeOwned>(yaml: &str) -> Vec<T> {
    serde_yaml::Deserializer::from_str(yaml).map(|document| T::deserialize(document).expect("example parses")).collect()
}

fn catalog() -> Catalog {
    Catalog { tenants: documents::<Tenant>(TENANT), networks: documents::<SdnNetwork>(NETWORKS), workloads: Vec::new() }
}

fn builders(c: &mut Criterion) {
    let config = OperatorConfig::default();
    let catalog = catalog();
    let tenant = &catalog.tenants[0];
    let workload = documents::<SecureWorkload>(WORKLOAD).remove(0);

    let mut group = c.benchmark_group("builders");
    let tenant_objects = tenant_children(tenant, &catalog, &config).len() as u64;
    group.throughput(Throughput::Elements(tenant_objects));
    group.bench_function("tenant_children", |b| {
        b.iter(|| tenant_children(black_box(tenant), black_box(&catalog), &config))
    });
    let workload_objects = workload_children(&workload, tenant, &config).len() as u64;
    group.throughput(Throughput::Elements(workload_objects));
    group.bench_function("workload_children", |b| {
        b.iter(|| workload_children(black_box(&workload), black_box(tenant), &config))
    });
    group.finish();
}

criterion_group!(benches, builders);
criterion_main!(benches);
