//! PersistentVolumeClaims of a workload, and the claim templates of a StatefulSet.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::api::WorkloadVolume;
use crate::config::OperatorConfig;

fn claim_spec(volume: &WorkloadVolume, config: &OperatorConfig) -> PersistentVolumeClaimSpec {
    let tier = config.storage_tiers.get(&volume.tier);
    let access = if tier.is_some_and(|t| t.read_write_many) { "ReadWriteMany" } else { "ReadWriteOnce" };
    PersistentVolumeClaimSpec {
        access_modes: Some(vec![access.into()]),
        storage_class_name: tier.map(|t| t.storage_class_name.clone()),
        resources: Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([("storage".to_string(), volume.size.clone())])),
            limits: None,
        }),
        ..Default::default()
    }
}

/// A claim shared by the workload's pods (Deployment, Job, CronJob).
pub fn claim(volume: &WorkloadVolume, config: &OperatorConfig, metadata: ObjectMeta) -> PersistentVolumeClaim {
    PersistentVolumeClaim { metadata, spec: Some(claim_spec(volume, config)), status: None }
}

/// A StatefulSet claim template: one claim per pod.
pub fn claim_template(volume: &WorkloadVolume, config: &OperatorConfig) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta { name: Some(volume.name.clone()), ..Default::default() },
        spec: Some(claim_spec(volume, config)),
        status: None,
    }
}
