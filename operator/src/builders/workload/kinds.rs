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
use crate::api::{ConcurrencyPolicy, SecureWorkload, WorkloadKind};
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
            let strategy = if needs_recreate(workload, config) {
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
        WorkloadKind::CronJob => {
            let cron = spec.cron_job.clone().unwrap_or_default();
            Child::from_resource(&CronJob {
                metadata: metadata.clone(),
                spec: Some(CronJobSpec {
                    schedule: spec.schedule.clone().unwrap_or_default(),
                    suspend: Some(spec.suspended == Some(true)),
                    // Runs of a sandboxed job never overlap unless asked to: overlapping runs double the quota used.
                    concurrency_policy: Some(
                        cron.concurrency_policy.unwrap_or(ConcurrencyPolicy::Forbid).as_str().into(),
                    ),
                    time_zone: cron.time_zone.clone(),
                    starting_deadline_seconds: cron.starting_deadline_seconds,
                    successful_jobs_history_limit: Some(cron.successful_jobs_history_limit.unwrap_or(3)),
                    failed_jobs_history_limit: Some(cron.failed_jobs_history_limit.unwrap_or(3)),
                    job_template: JobTemplateSpec {
                        metadata: Some(ObjectMeta { labels: metadata.labels.clone(), ..Default::default() }),
                        spec: Some(JobSpec { suspend: None, ..job_spec(workload, template) }),
                    },
                }),
                status: None,
            })
        }
    }
}

/// Whether a Deployment must replace its pods instead of rolling them: a static address, or a
/// volume of a ReadWriteOnce tier, cannot be held by the old and the new pod at once. Volumes of
/// ReadWriteMany tiers keep RollingUpdate. Validation refuses rolling-update settings where this
/// holds (`validate::cross::workload_errors`, and the CRD rule for static ips).
pub fn needs_recreate(workload: &SecureWorkload, config: &OperatorConfig) -> bool {
    let spec = &workload.spec;
    spec.networks.iter().any(|n| !n.ips.is_empty())
        || spec.volumes.iter().any(|v| !config.storage_tiers.get(&v.tier).is_some_and(|t| t.read_write_many))
}

fn job_spec(workload: &SecureWorkload, template: PodTemplateSpec) -> JobSpec {
    let options = workload.spec.job.clone().unwrap_or_default();
    JobSpec {
        parallelism: Some(workload.spec.replicas.unwrap_or(1)),
        completions: options.completions,
        backoff_limit: options.backoff_limit,
        active_deadline_seconds: options.active_deadline_seconds,
        ttl_seconds_after_finished: options.ttl_seconds_after_finished,
        suspend: Some(workload.spec.suspended == Some(true)),
        template,
        ..Default::default()
    }
}
