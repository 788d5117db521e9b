//! The SecureWorkloads the workload controller reconciles, kept from its watch as compact JSON.
//!
//! The controller's store holds metadata only (a typed workload with its pod template is about
//! 6.7 KB in memory); a pass used to GET the workload, one read per pass, which at a restart was
//! one read per workload. The watch delivers whole objects anyway: each is kept here as its JSON
//! text (about a fifth of the typed size) and read back by the pass that the same event triggers,
//! so a pass reads nothing. The status a pass writes may not be back from the watch when the next
//! pass starts: [`super::context::Written`] stands in for it, as for tenants.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::api::PartialObjectMeta;
use kube::core::PartialObjectMetaExt;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::watcher;

use crate::api::SecureWorkload;

type Key = (String, String);

/// Readable workloads by (namespace, name): resource version and JSON text (managedFields dropped).
#[derive(Default)]
pub struct WorkloadBodies {
    bodies: Mutex<Bodies>,
}

#[derive(Default)]
struct Bodies {
    by_key: HashMap<Key, (Option<String>, Arc<[u8]>)>,
    /// Keys seen by a relist in progress: what it did not see is gone.
    relisting: Option<HashSet<Key>>,
}

fn key_of(meta: &kube::core::ObjectMeta) -> Key {
    (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
}

impl WorkloadBodies {
    /// Keeps what `event` says of a workload and passes it on as metadata, for the controller's store.
    pub fn observe(
        &self,
        event: watcher::Event<DeserializeGuard<SecureWorkload>>,
    ) -> watcher::Event<PartialObjectMeta<SecureWorkload>> {
        let mut bodies = self.bodies.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Apply(guarded) => watcher::Event::Apply(bodies.keep(guarded)),
            watcher::Event::InitApply(guarded) => {
                let meta = bodies.keep(guarded);
                let key = key_of(&meta.metadata);
                bodies.relisting.get_or_insert_default().insert(key);
                watcher::Event::InitApply(meta)
            }
            watcher::Event::Delete(guarded) => {
                let meta = metadata(guarded);
                bodies.by_key.remove(&key_of(&meta.metadata));
                watcher::Event::Delete(meta)
            }
            watcher::Event::Init => {
                bodies.relisting = Some(HashSet::new());
                watcher::Event::Init
            }
            watcher::Event::InitDone => {
                let seen = bodies.relisting.take().unwrap_or_default();
                bodies.by_key.retain(|key, _| seen.contains(key));
                watcher::Event::InitDone
            }
        }
    }

    /// The workload `namespace/name` as the watch last delivered it, if that is `resource_version`
    /// (the version the controller's metadata store holds) and it could be read.
    pub fn get(&self, namespace: &str, name: &str, resource_version: Option<&str>) -> Option<SecureWorkload> {
        let bodies = self.bodies.lock().unwrap_or_else(|e| e.into_inner());
        let (version, body) = bodies.by_key.get(&(namespace.to_string(), name.to_string()))?;
        if version.as_deref() != resource_version {
            return None;
        }
        serde_json::from_slice(body).ok()
    }

    /// How many workloads are kept.
    pub fn len(&self) -> usize {
        self.bodies.lock().unwrap_or_else(|e| e.into_inner()).by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Bodies {
    /// Keeps a readable workload's text (an unreadable one is read by its pass, which reports it).
    fn keep(&mut self, guarded: DeserializeGuard<SecureWorkload>) -> PartialObjectMeta<SecureWorkload> {
        match guarded.0 {
            Ok(mut workload) => {
                workload.managed_fields_mut().clear();
                let key = key_of(&workload.metadata);
                match serde_json::to_vec(&workload) {
                    Ok(text) => {
                        self.by_key.insert(key, (workload.resource_version(), text.into()));
                    }
                    Err(_) => {
                        self.by_key.remove(&key);
                    }
                }
                workload.metadata.into_response_partial()
            }
            Err(invalid) => {
                self.by_key.remove(&key_of(&invalid.metadata));
                invalid.metadata.into_response_partial()
            }
        }
    }
}

fn metadata(guarded: DeserializeGuard<SecureWorkload>) -> PartialObjectMeta<SecureWorkload> {
    match guarded.0 {
        Ok(workload) => workload.metadata.into_response_partial(),
        Err(invalid) => invalid.metadata.into_response_partial(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn workload(name: &str, version: &str) -> DeserializeGuard<SecureWorkload> {
        serde_json::from_value(json!({"apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload",
            "metadata": {"name": name, "namespace": "a", "resourceVersion": version,
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": {"kind": "Deployment", "template": {"spec": {"containers": [{"name": "app", "image": "x:1"}]}}}}))
        .unwrap()
    }

    #[test]
    fn a_pass_reads_the_version_its_store_holds() {
        let bodies = WorkloadBodies::default();
        let meta = bodies.observe(watcher::Event::Apply(workload("web", "5")));
        let watcher::Event::Apply(meta) = meta else { panic!("an Apply passes as an Apply") };
        assert_eq!(meta.resource_version().as_deref(), Some("5"));
        let read = bodies.get("a", "web", Some("5")).expect("kept");
        assert_eq!(read.spec.template.spec.as_ref().unwrap().containers[0].image.as_deref(), Some("x:1"));
        assert!(read.metadata.managed_fields.is_none_or(|f| f.is_empty()), "managedFields dropped");
        assert!(bodies.get("a", "web", Some("4")).is_none(), "another version: read it from the server");
        bodies.observe(watcher::Event::Delete(workload("web", "6")));
        assert!(bodies.is_empty());
    }

    #[test]
    fn a_relist_forgets_what_it_no_longer_sees() {
        let bodies = WorkloadBodies::default();
        bodies.observe(watcher::Event::Apply(workload("gone", "1")));
        bodies.observe(watcher::Event::Init);
        bodies.observe(watcher::Event::InitApply(workload("web", "2")));
        bodies.observe(watcher::Event::InitDone);
        assert!(bodies.get("a", "gone", Some("1")).is_none());
        assert!(bodies.get("a", "web", Some("2")).is_some());
    }
}
