//! The controllers (`scs-operator run`): Tenants, SdnNetworks and SecureWorkloads.
//!
//! Tenants are cluster-scoped and own namespaced children, so children are found by label and
//! mapped back to their tenant (`watches`), not through owner references (`owns`). Children are
//! watched as metadata only, selected by our `managed-by` label.

pub mod backoff;
pub mod children;
pub mod client;
pub mod cluster_cidrs;
pub mod conditions;
pub mod context;
pub mod diff;
pub mod error;
pub mod health;
pub mod history;
pub mod leader;
pub mod lifecycle;
pub mod managed;
pub mod metrics;
pub mod network_usage;
pub mod patrol;
pub mod pull_secrets;
pub mod release;
pub mod sdn_network;
pub mod secondary_isolation;
pub mod settled;
pub mod sync;
pub mod tenant;
pub mod workload;
pub mod workload_bodies;
pub mod workload_status;

use std::future::Future;
use std::sync::Arc;

use futures::{StreamExt, future};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, PartialObjectMeta};
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tracing::{info, warn};

use crate::api::{Patrol, SdnNetwork, SecureWorkload, Tenant};
use crate::builders::labels;
use crate::clock::Clock;
use crate::config::OperatorConfig;
use context::Context;
use error::Error;

fn error_policy<K: kube::Resource<DynamicType = ()>>(object: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = backoff_key(&K::kind(&()), object.namespace().as_deref(), &object.name_any());
    let delay = ctx.backoff.next_delay(&key);
    match error {
        Error::DeletionHeld(why) => info!(%key, ?delay, "{why}"),
        other => warn!(%key, ?delay, error = %other, "reconcile failed; retrying"),
    }
    Action::requeue(delay)
}

type CacheEvent<K> = Result<watcher::Event<DeserializeGuard<K>>, watcher::Error>;

/// A cache of every `K` (unreadable objects kept as errors) and the stream of watch events that
/// feeds it (each yielded once the cache has applied it).
fn cached<K>(client: Client) -> (reflector::Store<DeserializeGuard<K>>, impl futures::Stream<Item = CacheEvent<K>>)
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store::<DeserializeGuard<K>>();
    let api = Api::<DeserializeGuard<K>>::all(client);
    // managedFields are never read here and are often the larger part of an object.
    let changes =
        watcher(api, watcher::Config::default()).default_backoff().modify(|object| object.managed_fields_mut().clear());
    (store, settled::settled(reflector::reflector(writer, changes)))
}

/// The object inside a deserialization guard, or `None` (logged) when it could not be read. The
/// API server stores only valid objects, so this means a client/CRD version skew; the object is
/// left alone until it changes.
fn readable<K: kube::Resource<DynamicType = ()>>(guarded: &DeserializeGuard<K>) -> Option<&K> {
    match &guarded.0 {
        Ok(object) => Some(object),
        Err(invalid) => {
            let name = invalid.metadata.name.as_deref().unwrap_or("");
            warn!(kind = %K::kind(&()), name, error = %invalid.error, "cannot read object; waiting for it to change");
            None
        }
    }
}

/// Times a reconcile for the metrics.
async fn timed<T, E>(controller: &'static str, reconcile: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    let started = std::time::Instant::now();
    let result = reconcile.await;
    metrics::metrics().reconciled(controller, result.is_ok(), started.elapsed());
    result
}

fn backoff_key(kind: &str, namespace: Option<&str>, name: &str) -> String {
    format!("{kind}/{}/{name}", namespace.unwrap_or(""))
}

/// Reconciles in flight per controller (`apiPressure.reconcileConcurrency`): bounds memory and API
/// pressure when everything needs work at once (start-up, resync).
fn controller_config(config: &OperatorConfig) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(config.api_pressure.reconcile_concurrency)
}

/// Every change of a `K` (unreadable objects included), as a trigger.
fn changes<K>(client: Client) -> impl futures::Stream<Item = Result<DeserializeGuard<K>, watcher::Error>>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    watcher(Api::<DeserializeGuard<K>>::all(client), watcher::Config::default()).default_backoff().touched_objects()
}

/// What matters of an object to a controller that only cares that it exists, when its spec
/// changes (when `generation` is set), when its deletion starts and, for tenants, whether expiry
/// suspends its workloads (a status-only change that the workload controller must follow).
type Signature = (Option<String>, Option<i64>, bool, Option<String>);

/// Changes of every `K` that matter to another controller, as triggers: an object appearing,
/// going, starting to be deleted and, with `generation`, a change of its spec. Status-only writes
/// are dropped: at scale they are most of the changes, and re-reconciling everything a status
/// write touches (a tenant for each workload status, every workload of a tenant for each tenant
/// status) would multiply the work.
fn lifecycle<K>(
    events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    generation: bool,
    marker: impl Fn(&K) -> Option<String> + Send + 'static,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: kube::Resource + Clone + Send + 'static,
{
    let mut seen: std::collections::HashMap<(Option<String>, String), Signature> = Default::default();
    events.flat_map(move |event| {
        let key = |object: &K| (object.meta().namespace.clone(), object.meta().name.clone().unwrap_or_default());
        let out = match event {
            Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                let meta = object.meta();
                let signature = (
                    meta.uid.clone(),
                    meta.generation.filter(|_| generation),
                    meta.deletion_timestamp.is_some(),
                    marker(&object),
                );
                match seen.insert(key(&object), signature.clone()) {
                    Some(before) if before == signature => None,
                    _ => Some(Ok(object)),
                }
            }
            Ok(watcher::Event::Delete(object)) => {
                seen.remove(&key(&object));
                Some(Ok(object))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            Err(error) => Some(Err(error)),
        };
        futures::stream::iter(out)
    })
}

/// What one of the cache task's channels receives, as a watch stream.
fn received<T: Send + 'static>(
    receiver: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = Result<T, watcher::Error>> + Send + 'static {
    futures::stream::unfold(receiver, |mut receiver| async move { receiver.recv().await.map(|e| (Ok(e), receiver)) })
}

/// Forgets an object's failures once it reconciles.
async fn reset_on_success<K: kube::Resource, E: std::fmt::Display>(
    result: Result<(ObjectRef<K>, Action), E>,
    ctx: Arc<Context>,
    kind: &'static str,
) {
    match result {
        Ok((object, _)) => ctx.backoff.reset(&backoff_key(kind, object.namespace.as_deref(), &object.name)),
        Err(error) => tracing::debug!(%error, "reconcile error"),
    }
}

/// Runs the Tenant, SdnNetwork and SecureWorkload controllers until `shutdown` completes, with
/// health probes on `health` when given.
pub async fn run(
    client: Client,
    config: OperatorConfig,
    health: Option<std::net::SocketAddr>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    run_with(client, config, RunOptions::default(), health, shutdown).await
}

/// What tests may change about [`run`]: the clock that expiry and patrol schedules go by (tests
/// move it instead of waiting), and how patiently patrol reports are delivered.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub clock: Clock,
    pub delivery: crate::patrol::deliver::Policy,
}

/// [`run`] with [`RunOptions`].
pub async fn run_with(
    client: Client,
    config: OperatorConfig,
    options: RunOptions,
    health: Option<std::net::SocketAddr>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    // Caches of tenants and networks, shared by the mappers and the reconcilers.
    // The caches are fed by their own task: reconcilers wait for them, so they must not depend on
    // any controller polling its triggers.
    let (tenant_store, tenant_cache) = cached::<Tenant>(client.clone());
    let (network_store, network_cache) = cached::<SdnNetwork>(client.clone());
    let mut context = Context::new(client.clone(), config, tenant_store.clone(), network_store.clone());
    context.clock = options.clock;
    context.delivery = options.delivery;
    let ctx = Arc::new(context);
    // Tenant changes reach the network and workload controllers from the cache task, after the
    // cache has applied them: those controllers read the cache when triggered, and a watch of
    // their own could trigger them before the cache has the change. Unbounded, so the cache task
    // never waits for a controller.
    let (to_networks, from_tenants_to_networks) = tokio::sync::mpsc::unbounded_channel();
    let (to_workloads, from_tenants_to_workloads) = tokio::sync::mpsc::unbounded_channel();
    // The tenant controller triggers on the same events and reads the same store: one copy of
    // every Tenant, without managedFields.
    let (to_tenants, from_tenant_cache) = tokio::sync::mpsc::unbounded_channel();
    let caches = {
        let (tenants_changed, networks_changed) = (ctx.clone(), ctx.clone());
        // What the catalog holds of each tenant, to rebuild it only when that changes.
        let mut digests: std::collections::HashMap<String, u64> = Default::default();
        tokio::spawn(async move {
            future::join(
                tenant_cache.for_each(move |event| {
                    let changed = match &event {
                        Ok(watcher::Event::Apply(DeserializeGuard(Ok(tenant)))) => {
                            let digest = context::catalog_digest(tenant);
                            digests.insert(tenant.name_any(), digest) != Some(digest)
                        }
                        Ok(watcher::Event::Delete(tenant)) => {
                            digests.remove(&tenant.name_any());
                            true
                        }
                        _ => true,
                    };
                    if changed {
                        tenants_changed.caches_changed();
                    }
                    if let Ok(event) = event {
                        let _ = to_tenants.send(event.clone());
                        let _ = to_networks.send(event.clone());
                        let _ = to_workloads.send(event);
                    }
                    future::ready(())
                }),
                network_cache.for_each(move |_| {
                    networks_changed.caches_changed();
                    future::ready(())
                }),
            )
            .await;
        })
    };
    let shutdown = futures::FutureExt::shared(shutdown);
    // Wait for both caches here, once. A kube Store's readiness wakes only the latest of several
    // concurrent waiters (it is a oneshot receiver, which keeps one waker): when every reconcile
    // waited for it, the first reconciles after a leader hand-over hung for good on a real
    // cluster, holding their objects. Once one wait has completed, later ones return at once.
    let caches_ready = async {
        let _ = tenant_store.wait_until_ready().await;
        let _ = network_store.wait_until_ready().await;
        // Once per start, before any tenant is reconciled: do the configured cluster CIDRs hold?
        let _ = ctx.cidr_mismatch.set(cluster_cidrs::mismatch(&client, &ctx.config).await);
    };
    tokio::select! {
        _ = caches_ready => {}
        _ = shutdown.clone() => {
            caches.abort();
            info!("shut down before the caches were ready");
            return;
        }
    }
    let network_events = changes::<SdnNetwork>(client.clone());
    // Networks and workloads read only a tenant's spec.
    let tenant_events = lifecycle(received(from_tenants_to_networks), true, |_| None);

    // Children of a tenant carry its name in a label.
    let to_tenant = |meta: &kube::core::ObjectMeta| {
        meta.labels
            .as_ref()
            .and_then(|l| l.get(labels::TENANT))
            .map(|name| ObjectRef::<DeserializeGuard<Tenant>>::new(name))
    };
    let mut tenant_controller =
        Controller::for_stream(received(from_tenant_cache).applied_objects(), tenant_store.clone())
            .with_config(controller_config(&ctx.config));
    // Every managed kind is watched once into the shared child caches (tenant namespaces
    // included: a workload's pass looks up whose its namespace is there); each change triggers the
    // controller that owns the kind once the cache holds it.
    for kind in managed::kinds_of(managed::Scope::Tenant) {
        tenant_controller = tenant_controller.watches_stream_with(
            ctx.children.watch(&client, &kind),
            move |child: DynamicObject| to_tenant(&child.metadata),
            kind.resource.clone(),
        );
    }
    // The platform's own objects (the RuntimeClass) are cached too, so that tenants' passes need
    // not read them; a change of them triggers nothing (every tenant pass ensures them).
    for kind in managed::kinds_of(managed::Scope::Platform) {
        tenant_controller = tenant_controller.watches_stream_with(
            ctx.children.watch(&client, &kind),
            |_: DynamicObject| None::<ObjectRef<DeserializeGuard<Tenant>>>,
            kind.resource.clone(),
        );
    }
    // A network change re-renders the attachment definitions of every tenant that lists it.
    let mapper_ctx = ctx.clone();
    tenant_controller =
        tenant_controller.watches_stream(network_events, move |network: DeserializeGuard<SdnNetwork>| {
            let name = network.name_any();
            let catalog = mapper_ctx.catalog();
            // Policies of tenants on networks with an isolation domain allow the CIDRs of the other
            // networks of that domain; the change may have moved this one into or out of it.
            let related: Vec<String> = catalog
                .networks
                .iter()
                .filter(|n| n.spec.isolation_domain.is_some())
                .map(|n| n.name_any())
                .chain(std::iter::once(name.clone()))
                .collect();
            catalog
                .tenants
                .iter()
                .filter(|t| t.spec.networks.iter().any(|n| related.contains(n)))
                .map(|t| ObjectRef::new(&t.name_any()))
                .collect::<Vec<_>>()
        });
    // Workloads coming and going decide whether a deletion or namespace release may proceed
    // (their status changes do not matter here).
    let mapper_ctx = ctx.clone();
    let workloads = lifecycle(
        watcher(Api::<PartialObjectMeta<SecureWorkload>>::all(client.clone()), watcher::Config::default())
            .default_backoff(),
        false,
        |_| None,
    );
    tenant_controller =
        tenant_controller.watches_stream(workloads, move |workload: PartialObjectMeta<SecureWorkload>| {
            let namespace = workload.namespace().unwrap_or_default();
            mapper_ctx.catalog().tenant_of_namespace(&namespace).map(|t| ObjectRef::new(&t.name_any()))
        });
    // A cloud admin's pull Secret changing reaches every tenant that lists it, whose copies then
    // follow. Metadata only, in the operator's namespace only: the reconcile reads the Secret.
    let mapper_ctx = ctx.clone();
    let pull_secrets = watcher(
        Api::<PartialObjectMeta<Secret>>::namespaced(client.clone(), &ctx.operator_namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects();
    tenant_controller = tenant_controller.watches_stream(pull_secrets, move |secret: PartialObjectMeta<Secret>| {
        let name = secret.name_any();
        let catalog = mapper_ctx.catalog();
        let listing = catalog.tenants.iter().filter(|t| t.spec.images.iter().any(|i| i.pull_secrets.contains(&name)));
        listing.map(|t| ObjectRef::new(&t.name_any())).collect::<Vec<_>>()
    });

    let mut network_controller =
        Controller::new(Api::<DeserializeGuard<SdnNetwork>>::all(client.clone()), watcher::Config::default())
            .with_config(controller_config(&ctx.config))
            .watches_stream(tenant_events, |tenant: DeserializeGuard<Tenant>| {
                let networks = tenant.0.map(|t| t.spec.networks).unwrap_or_default();
                networks.iter().map(|n| ObjectRef::new(n)).collect::<Vec<_>>()
            });
    // Subnets allow the CIDRs of the other networks of their isolation domain: any network change
    // may concern every Kube-OVN network (there are few).
    let network_ctx = ctx.clone();
    network_controller = network_controller.watches_stream(
        changes::<SdnNetwork>(client.clone()),
        move |_: DeserializeGuard<SdnNetwork>| {
            let catalog = network_ctx.catalog();
            catalog
                .networks
                .iter()
                .filter(|n| n.spec.network_type == crate::api::NetworkType::KubeOvn)
                .map(|n| ObjectRef::new(&n.name_any()))
                .collect::<Vec<_>>()
        },
    );
    // A network's own children (Kube-OVN Subnets) carry its name in a label.
    for kind in managed::kinds_of(managed::Scope::Network) {
        network_controller = network_controller.watches_stream_with(
            ctx.children.watch(&client, &kind),
            |child: DynamicObject| {
                let network = child.metadata.labels.as_ref().and_then(|l| l.get(labels::NETWORK))?;
                Some(ObjectRef::<DeserializeGuard<SdnNetwork>>::new(network))
            },
            kind.resource.clone(),
        );
    }

    // Workloads: their children are found by the `scs.dev/workload` label (retained claims carry
    // no owner reference), and a tenant change re-renders every workload in its namespaces.
    // The controller caches workloads' metadata only (without managedFields): a typed
    // SecureWorkload (a full pod template) takes about 6.7 KB in memory, so 10 000 of them were a
    // third of the operator's footprint. The whole objects are kept as JSON text for the passes
    // (see `workload_bodies`), so a pass does not read its workload from the server.
    let (workload_store, workload_writer) = reflector::store::<PartialObjectMeta<SecureWorkload>>();
    let _ = ctx.workloads.set(workload_store.clone());
    let bodies = ctx.clone();
    let workload_stream = settled::settled(
        watcher(Api::<DeserializeGuard<SecureWorkload>>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .map(move |event| {
                event.map(|event| {
                    if let watcher::Event::Apply(workload) = &event {
                        // The status a pass wrote is back: it stands in no longer.
                        let meta = &workload.0.as_ref().map(|w| &w.metadata);
                        if let Ok(meta) = meta {
                            bodies
                                .workload_status
                                .seen(meta.uid.as_deref().unwrap_or_default(), meta.resource_version.as_deref());
                        }
                    }
                    bodies.workload_bodies.observe(event)
                })
            })
            .reflect(workload_writer),
    )
    .applied_objects();
    let mut workload_controller =
        Controller::for_stream(workload_stream, workload_store.clone()).with_config(controller_config(&ctx.config));
    for kind in managed::kinds_of(managed::Scope::Workload) {
        workload_controller = workload_controller.watches_stream_with(
            ctx.children.watch(&client, &kind),
            |child: DynamicObject| {
                let owner = child.metadata.labels.as_ref().and_then(|l| l.get(labels::WORKLOAD))?;
                Some(
                    ObjectRef::<PartialObjectMeta<SecureWorkload>>::new(owner)
                        .within(child.metadata.namespace.as_deref()?),
                )
            },
            kind.resource.clone(),
        );
    }
    // Workloads also follow a tenant's expiry suspension, which only its status records.
    let tenant_changes = lifecycle(received(from_tenants_to_workloads), true, |tenant: &DeserializeGuard<Tenant>| {
        tenant.0.as_ref().ok().and_then(crate::expiry::trigger_marker)
    });
    workload_controller =
        workload_controller.watches_stream(tenant_changes, move |tenant: DeserializeGuard<Tenant>| {
            let namespaces = tenant.0.map(|t| t.namespace_names()).unwrap_or_default();
            workload_store
                .state()
                .iter()
                .filter(|w| w.meta().namespace.as_ref().is_some_and(|ns| namespaces.contains(ns)))
                .map(|w| ObjectRef::from_obj(&**w))
                .collect::<Vec<_>>()
        });

    let tenants = tenant_controller
        .graceful_shutdown_on(shutdown.clone())
        .run(|object, ctx| timed("tenant", tenant::reconcile(object, ctx)), error_policy, ctx.clone())
        .for_each(|result| reset_on_success(result, ctx.clone(), "Tenant"));
    let workloads = workload_controller
        .graceful_shutdown_on(shutdown.clone())
        .run(|object, ctx| timed("secureworkload", workload::reconcile(object, ctx)), error_policy, ctx.clone())
        .for_each(|result| reset_on_success(result, ctx.clone(), "SecureWorkload"));
    // Patrols run on their schedule (each reconcile requeues itself for the next run).
    let patrols = Controller::new(Api::<DeserializeGuard<Patrol>>::all(client.clone()), watcher::Config::default())
        .with_config(controller_config(&ctx.config))
        .graceful_shutdown_on(shutdown.clone())
        .run(|object, ctx| timed("patrol", patrol::reconcile(object, ctx)), error_policy, ctx.clone())
        .for_each(|result| reset_on_success(result, ctx.clone(), "Patrol"));
    let networks = network_controller
        .graceful_shutdown_on(shutdown)
        .run(|object, ctx| timed("sdnnetwork", sdn_network::reconcile(object, ctx)), error_policy, ctx.clone())
        .for_each(|result| reset_on_success(result, ctx.clone(), "SdnNetwork"));
    // Shared objects first, once, rather than by every tenant's first reconcile at the same time.
    for child in crate::builders::platform_children(&ctx.config) {
        if let Err(error) = sync::ensure(&client, &ctx.children, &child).await {
            warn!(kind = %child.kind, name = %child.name, %error, "cannot ensure platform object yet; tenants retry");
        }
    }
    metrics::metrics().set_leader(true);
    info!("controllers started");
    let probes = health.map(|address| tokio::spawn(health::serve(address, ctx.clone())));
    future::join(future::join3(tenants, networks, workloads), patrols).await;
    caches.abort();
    if let Some(probes) = probes {
        probes.abort();
    }
    metrics::metrics().set_leader(false);
    info!("controllers stopped");
}
