//! Namespaces leaving a tenant (dropped from `spec.namespaces`, or the Tenant deleted).
//!
//! A namespace that leaves is deleted only when it holds nothing but what the operator made and
//! what Kubernetes itself puts there. Anything else a user made — a raw Deployment, a Secret, a
//! ConfigMap, any claim — keeps it: it is *retained*. A retained namespace loses the members'
//! RoleBindings (a removed member keeps no access) and gets a ResourceQuota of zero (its old share
//! no longer adds to the tenant's quota), and the Tenant says so until an admin empties or deletes
//! it.
//!
//! Telling what a user made is one metadata-only list per kind a tenant role can create
//! (`manifests/base/roles.yaml`), in the leaving namespace only. The operator's own ClusterRole
//! does not let it list Pods, ConfigMaps, Secrets and the like anywhere; it reads them through a
//! RoleBinding to [`INVENTORY_ROLE`] (list only) that it keeps in each of its tenant namespaces.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ResourceQuota, ResourceQuotaSpec};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt};

use super::error::Result;
use crate::api::Tenant;
use crate::builders::{Child, labels, quota};
use crate::config::OperatorConfig;

/// ClusterRole that lets the operator list, in the namespaces it binds it in, the kinds its own
/// ClusterRole does not cover (`manifests/base/roles.yaml`).
pub use crate::builders::rbac::INVENTORY_ROLE;
/// The operator's ServiceAccount (`manifests/base/operator-rbac.yaml`).
pub const OPERATOR_SERVICE_ACCOUNT: &str = "scs-operator";
/// Where the operator runs when `POD_NAMESPACE` does not say.
pub const DEFAULT_OPERATOR_NAMESPACE: &str = "scs-system";
/// How many leftover objects a message names.
const NAMED: usize = 5;

/// One kind of object a tenant role may create: `(group, version, kind, plural)`.
pub type InventoryKind = (&'static str, &'static str, &'static str, &'static str);

/// Every kind a tenant role may create (checked against `manifests/base/roles.yaml` by a test),
/// and Endpoints, which cloud admins may write by hand. Services come before Endpoints: the
/// Endpoints of a Service are the Service's.
pub const INVENTORY: &[InventoryKind] = &[
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("", "v1", "Pod", "pods"),
    ("", "v1", "Service", "services"),
    ("", "v1", "Endpoints", "endpoints"),
    ("", "v1", "ConfigMap", "configmaps"),
    ("", "v1", "Secret", "secrets"),
    ("", "v1", "ServiceAccount", "serviceaccounts"),
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    ("apps", "v1", "DaemonSet", "daemonsets"),
    ("apps", "v1", "ReplicaSet", "replicasets"),
    ("batch", "v1", "Job", "jobs"),
    ("batch", "v1", "CronJob", "cronjobs"),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    ("networking.k8s.io", "v1", "Ingress", "ingresses"),
    (crate::api::GROUP, "v1alpha1", "SecureWorkload", "secureworkloads"),
    (crate::api::GROUP, "v1alpha1", "PermissionGroup", "permissiongroups"),
];

/// What Kubernetes creates in every namespace: `(kind, name)`. OpenShift-derived control planes
/// (localkube's among them) also publish their service CA bundle everywhere.
const BUILT_IN: &[(&str, &str)] =
    &[("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt"), ("ConfigMap", "openshift-service-ca.crt")];

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// Whether `object` (of `kind`, found in a leaving namespace whose Services are `services`) keeps
/// the namespace. Claims always do: they hold data, whoever made them. Otherwise not: objects with
/// our managed-by label; objects owned by objects of the listed kinds (garbage collection removes
/// them with their owner, which is checked itself: the ReplicaSets of a hand-made Deployment are
/// covered by the Deployment); what Kubernetes puts in every namespace; the Endpoints of a Service
/// (the Service is checked itself). Anything owned by a kind not listed here keeps the namespace,
/// since its owner cannot be seen.
pub fn keeps_namespace(kind: &str, metadata: &ObjectMeta, services: &BTreeSet<String>) -> bool {
    let name = metadata.name.as_deref().unwrap_or_default();
    if kind == "PersistentVolumeClaim" {
        return true;
    }
    let labels = metadata.labels.as_ref();
    if labels.and_then(|l| l.get(labels::MANAGED_BY)).map(String::as_str) == Some(labels::OPERATOR) {
        return false;
    }
    let owners = metadata.owner_references.as_deref().unwrap_or_default();
    let listed =
        |api_version: &str, kind: &str| INVENTORY.iter().any(|(g, _, k, _)| *g == group_of(api_version) && *k == kind);
    if !owners.is_empty() && owners.iter().all(|o| listed(&o.api_version, &o.kind)) {
        return false;
    }
    let a_services_own = kind == "Endpoints" && services.contains(name);
    !BUILT_IN.contains(&(kind, name)) && !a_services_own
}

/// What keeps `namespace` from being deleted, as `Kind namespace/name`, in [`INVENTORY`] order.
pub async fn leftovers(client: &Client, namespace: &str) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut services = BTreeSet::new();
    for (group, version, kind, plural) in INVENTORY {
        let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let mut params = ListParams::default().limit(500);
        loop {
            let page = match api.list_metadata(&params).await {
                Ok(page) => page,
                // Not served on this cluster: nothing of it can exist.
                Err(kube::Error::Api(status)) if status.code == 404 => break,
                Err(error) => return Err(error.into()),
            };
            for item in &page.items {
                if *kind == "Service" {
                    services.insert(item.name_any());
                }
                if keeps_namespace(kind, &item.metadata, &services) {
                    found.push(format!("{kind} {namespace}/{}", item.name_any()));
                }
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
    }
    Ok(found)
}

/// `items` for a message: the first few, and how many more.
pub fn some_of(items: &[String]) -> String {
    let mut text = items.iter().take(NAMED).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > NAMED {
        text.push_str(&format!(" and {} more", items.len() - NAMED));
    }
    text
}

/// The namespace the operator runs in.
pub fn operator_namespace() -> String {
    std::env::var("POD_NAMESPACE").ok().filter(|ns| !ns.is_empty()).unwrap_or_else(|| DEFAULT_OPERATOR_NAMESPACE.into())
}

/// The RoleBinding that lets the operator's ServiceAccount (in `operator_namespace`) list what is
/// in `namespace` of `tenant`.
pub fn inventory_binding(tenant: &str, namespace: &str, operator_namespace: &str) -> Child {
    Child::from_resource(&RoleBinding {
        metadata: ObjectMeta {
            name: Some(INVENTORY_ROLE.into()),
            namespace: Some(namespace.into()),
            labels: Some(labels::tenant_owned(tenant)),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: INVENTORY_ROLE.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: OPERATOR_SERVICE_ACCOUNT.into(),
            namespace: Some(operator_namespace.into()),
            api_group: Some(String::new()),
        }]),
    })
}

/// The ResourceQuota of a retained namespace: every limit of the tenant's quota at zero, so
/// nothing new can start there and the tenant's own namespaces keep the whole quota.
pub fn retained_quota(tenant: &Tenant, config: &OperatorConfig, namespace: &str) -> Child {
    let hard: BTreeMap<String, Quantity> =
        quota::tenant_totals(tenant, config).into_keys().map(|key| (key, Quantity("0".into()))).collect();
    Child::from_resource(&ResourceQuota {
        metadata: ObjectMeta {
            name: Some(quota::QUOTA_NAME.into()),
            namespace: Some(namespace.into()),
            labels: Some(labels::tenant_owned(&tenant.name_any())),
            ..Default::default()
        },
        spec: Some(ResourceQuotaSpec { hard: Some(hard), ..Default::default() }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;
    use crate::api::TenantSpec;

    fn meta(name: &str, labels: &[(&str, &str)], owner: Option<(&str, &str)>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            owner_references: owner.map(|(api_version, kind)| {
                vec![OwnerReference {
                    api_version: api_version.into(),
                    kind: kind.into(),
                    name: "owner".into(),
                    uid: "1".into(),
                    controller: Some(true),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }
    }

    #[test]
    fn hand_made_objects_keep_a_namespace() {
        let services = BTreeSet::new();
        for kind in ["ConfigMap", "Secret", "Deployment", "Pod", "ServiceAccount", "SecureWorkload", "Service"] {
            assert!(keeps_namespace(kind, &meta("mine", &[], None), &services), "{kind}");
        }
        // Someone else's label value is not ours.
        assert!(keeps_namespace("Secret", &meta("s", &[(labels::MANAGED_BY, "helm")], None), &services));
        // Owned by a kind we cannot see (another operator's custom resource): kept to be safe.
        assert!(keeps_namespace("Secret", &meta("s", &[], Some(("db.example.com/v1", "Postgres"))), &services));
        // A hand-made object that merely shares a built-in name's kind.
        assert!(keeps_namespace("ConfigMap", &meta("default", &[], None), &services));
        // Hand-written Endpoints of no Service.
        assert!(keeps_namespace("Endpoints", &meta("api", &[], None), &services));
    }

    #[test]
    fn our_objects_their_dependents_and_kubernetes_own_do_not() {
        let services = BTreeSet::from(["web".to_string()]);
        let ours = [(labels::MANAGED_BY, labels::OPERATOR), (labels::WORKLOAD, "web")];
        assert!(!keeps_namespace("Deployment", &meta("web", &ours, None), &services));
        assert!(!keeps_namespace("Service", &meta("web", &ours, None), &services));
        assert!(!keeps_namespace("ReplicaSet", &meta("web-1", &[], Some(("apps/v1", "Deployment"))), &services));
        assert!(!keeps_namespace("Pod", &meta("web-1-x", &[], Some(("apps/v1", "ReplicaSet"))), &services));
        assert!(!keeps_namespace("Job", &meta("nightly-1", &[], Some(("batch/v1", "CronJob"))), &services));
        assert!(!keeps_namespace("ServiceAccount", &meta("default", &[], None), &services));
        assert!(!keeps_namespace("ConfigMap", &meta("kube-root-ca.crt", &[], None), &services));
        assert!(!keeps_namespace("ConfigMap", &meta("openshift-service-ca.crt", &[], None), &services));
        assert!(!keeps_namespace("Endpoints", &meta("web", &[], None), &services), "the Service's own");
    }

    #[test]
    fn claims_always_keep_a_namespace() {
        let services = BTreeSet::new();
        let ours = [(labels::MANAGED_BY, labels::OPERATOR)];
        assert!(keeps_namespace("PersistentVolumeClaim", &meta("data", &ours, None), &services));
        let owned = meta("data-db-0", &[], Some(("apps/v1", "StatefulSet")));
        assert!(keeps_namespace("PersistentVolumeClaim", &owned, &services));
    }

    #[test]
    fn messages_name_a_few() {
        let items: Vec<String> = (0..8).map(|i| format!("Secret ns/s{i}")).collect();
        assert_eq!(some_of(&items[..2]), "Secret ns/s0, Secret ns/s1");
        assert_eq!(some_of(&items), "Secret ns/s0, Secret ns/s1, Secret ns/s2, Secret ns/s3, Secret ns/s4 and 3 more");
    }

    #[test]
    fn a_retained_quota_is_zero_in_every_key_of_the_tenant_quota() {
        let quota = serde_json::from_value(serde_json::json!({"cpu": "8", "memory": "16Gi", "pods": 20})).unwrap();
        let tenant = Tenant::new("acme", TenantSpec { quota: Some(quota), ..Default::default() });
        let config = OperatorConfig::default();
        let child = retained_quota(&tenant, &config, "acme-old");
        let hard = child.object["spec"]["hard"].as_object().unwrap();
        let keys: Vec<&String> = hard.keys().collect();
        let expected: Vec<String> = quota::tenant_totals(&tenant, &config).into_keys().collect();
        assert_eq!(keys, expected.iter().collect::<Vec<_>>());
        assert!(keys.iter().any(|k| *k == "pods") && keys.iter().any(|k| *k == "requests.cpu"));
        assert!(hard.values().all(|v| v == "0"), "{hard:?}");
        assert_eq!(child.name, quota::QUOTA_NAME, "replaces the namespace's share in place");
        assert_eq!(child.object["metadata"]["labels"][labels::TENANT], "acme");
    }

    #[test]
    fn the_inventory_binding_binds_the_operator_to_the_list_only_role() {
        let child = inventory_binding("acme", "acme-prod", "scs-system");
        assert_eq!(child.namespace.as_deref(), Some("acme-prod"));
        assert_eq!(child.object["roleRef"]["name"], INVENTORY_ROLE);
        assert_eq!(
            child.object["subjects"],
            serde_json::json!([{"kind": "ServiceAccount", "name": "scs-operator", "namespace": "scs-system", "apiGroup": ""}])
        );
        assert_eq!(child.object["metadata"]["labels"][labels::TENANT], "acme");
    }
}
