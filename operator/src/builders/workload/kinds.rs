//! The workload object itself: Deployment, StatefulSet, DaemonSet, Job or CronJob.

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, Deployment, DeploymentSpec, DeploymentStrategy,
    RollingUpdateDaemonSet, RollingUpdateDeployment, RollingUpdateStatefulSetStrategy, StatefulSet,
    StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::volumes::claim_template;
use crate::api::{SecureWorkload, WorkloadKind};
use crate::builders::Child;
use crate::config::OperatorConfig;

/// Revisions kept for rollback unless the workload says otherwise.
pub const DEFAULT_REVISION_HISTORY: i32 = 10;

/// Replicas to ask for: none while an HPA owns the count, 0 while suspended.
fn replicas(workload: &SecureWorkload) -> Option<i32> {
    let spec = &workload.spec;
    if spec.suspended == Some(true) {
        Some(0)
    } else if spec.autoscaling.is_some() {
        None
    } else {
        Some(spec.replicas.unwrap_or(1))
    }
}

/// Builds the workload object of `workload.spec.kind`.
pub fn workload_object(
    workload: &SecureWorkload,
    metadata: ObjectMeta,
    selector: LabelSelector,
    template: PodTemplateSpec,
    config: &OperatorConfig,
    headless_service: &str,
) -> Child {
    let spec = &workload.spec;
    let history = Some(spec.revision_history_limit.unwrap_or(DEFAULT_REVISION_HISTORY));
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    match spec.kind {
        WorkloadKind::Deployment => {
            // A static address or a single-attach volume cannot be held by two pods at once.
            let exclusive = spec.networks.iter().any(|n| !n.ips.is_empty()) || !spec.volumes.is_empty();
            let strategy = if exclusive {
                DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None }
            } else {
                DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: (strategy.max_surge.is_some() || strategy.max_unavailable.is_some()).then(|| {
                        RollingUpdateDeployment {
                            max_surge: strategy.max_surge.clone(),
                            max_unavailable: strategy.max_unavailable.clone(),
                        }
                    }),
                }
            };
            Child::from_resource(&Deployment {
                metadata,
                spec: Some(DeploymentSpec {
                    replicas: replicas(workload),
                    selector,
                    template,
                    strategy: Some(strategy),
                    revision_history_limit: history,
                    ..Default::default()
                }),
                status: None,
            })
        }
        WorkloadKind::StatefulSet => {
            let retention = if spec.retain_volumes { "Retain" } else { "Delete" };
            Child::from_resource(&StatefulSet {
                metadata,
                spec: Some(StatefulSetSpec {
                    replicas: replicas(workload),
                    selector,
                    template,
                    service_name: Some(headless_service.to_string()),
                    volume_claim_templates: (!spec.volumes.is_empty())
                        .then(|| spec.volumes.iter().map(|v| claim_template(v, config)).collect()),
                    persistent_volume_claim_retention_policy: Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                        when_deleted: Some(retention.into()),
                        when_scaled: Some("Retain".into()),
                    }),
                    update_strategy: Some(StatefulSetUpdateStrategy {
                        type_: Some("RollingUpdate".into()),
                        rolling_update: (strategy.partition.is_some() || strategy.max_unavailable.is_some()).then(
                            || RollingUpdateStatefulSetStrategy {
                                partition: strategy.partition,
                                max_unavailable: strategy.max_unavailable.clone(),
                            },
                        ),
                    }),
                    revision_history_limit: history,
                    ..Default::default()
                }),
                status: None,
            })
        }
        WorkloadKind::DaemonSet => Child::from_resource(&DaemonSet {
            metadata,
            spec: Some(DaemonSetSpec {
                selector,
                template,
                update_strategy: Some(DaemonSetUpdateStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: (strategy.max_surge.is_some() || strategy.max_unavailable.is_some()).then(|| {
                        RollingUpdateDaemonSet {
                            max_surge: strategy.max_surge.clone(),
                            max_unavailable: strategy.max_unavailable.clone(),
                        }
                    }),
                }),
                revision_history_limit: history,
                ..Default::default()
            }),
            status: None,
        }),
        WorkloadKind::Job => {
            Child::from_resource(&Job { metadata, spec: Some(job_spec(workload, template)), status: None })
        }
        WorkloadKind::CronJob => Child::from_resource(&CronJob {
            metadata: metadata.clone(),
            spec: Some(CronJobSpec {
                schedule: spec.schedule.clone().unwrap_or_default(),
                suspend: Some(spec.suspended == Some(true)),
                // Runs of a sandboxed job never overlap unless asked to: overlapping runs double the quota used.
                concurrency_policy: Some("Forbid".into()),
                successful_jobs_history_limit: Some(3),
                failed_jobs_history_limit: Some(3),
                job_template: JobTemplateSpec {
                    metadata: Some(ObjectMeta { labels: metadata.labels.clone(), ..Default::default() }),
                    spec: Some(JobSpec { suspend: None, ..job_spec(workload, template) }),
                },
                ..Default::default()
            }),
            status: None,
        }),
    }
}

fn job_spec(workload: &SecureWorkload, template: PodTemplateSpec) -> JobSpec {
    JobSpec {
        parallelism: Some(workload.spec.replicas.unwrap_or(1)),
        suspend: Some(workload.spec.suspended == Some(true)),
        template,
        ..Default::default()
    }
}
