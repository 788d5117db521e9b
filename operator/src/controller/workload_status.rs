//! A SecureWorkload's status, read off its workload object. Pure, so every phase is unit-tested.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::Value;

use super::conditions::condition;
use crate::api::{SecureWorkload, WorkloadKind, WorkloadPhase};

/// What the live workload object says.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Observed {
    pub desired: i32,
    pub ready: i32,
    pub updated: i32,
    /// The object's controller has seen its latest spec.
    pub current: bool,
    /// A Deployment whose rollout exceeded its progress deadline.
    pub stalled: bool,
    /// A Deployment whose latest rollout finished.
    pub rolled_out: bool,
    pub active: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub complete: bool,
    pub job_failed: bool,
    pub last_schedule_time: Option<Time>,
}

fn int(value: &Value) -> i32 {
    value.as_i64().unwrap_or(0) as i32
}

fn has_condition(status: &Value, type_: &str, state: &str, reason: Option<&str>) -> bool {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == type_ && c["status"] == state && reason.is_none_or(|r| c["reason"] == r))
}

/// Reads the workload object (as JSON) of `kind`.
pub fn observe(kind: WorkloadKind, object: &Value) -> Observed {
    let status = &object["status"];
    let generation = object["metadata"]["generation"].as_i64().unwrap_or(0);
    let current = status["observedGeneration"].as_i64().is_some_and(|g| g >= generation);
    match kind {
        WorkloadKind::Deployment | WorkloadKind::StatefulSet => Observed {
            desired: object["spec"]["replicas"].as_i64().map_or(1, |r| r as i32),
            ready: int(&status["readyReplicas"]),
            updated: int(&status["updatedReplicas"]),
            current,
            stalled: has_condition(status, "Progressing", "False", Some("ProgressDeadlineExceeded")),
            rolled_out: kind == WorkloadKind::StatefulSet
                || has_condition(status, "Progressing", "True", Some("NewReplicaSetAvailable")),
            ..Default::default()
        },
        WorkloadKind::DaemonSet => Observed {
            desired: int(&status["desiredNumberScheduled"]),
            ready: int(&status["numberReady"]),
            updated: int(&status["updatedNumberScheduled"]),
            current,
            rolled_out: true,
            ..Default::default()
        },
        WorkloadKind::Job => Observed {
            desired: object["spec"]["completions"].as_i64().or(object["spec"]["parallelism"].as_i64()).unwrap_or(1)
                as i32,
            active: int(&status["active"]),
            succeeded: int(&status["succeeded"]),
            failed: int(&status["failed"]),
            complete: has_condition(status, "Complete", "True", None),
            job_failed: has_condition(status, "Failed", "True", None),
            current: true,
            ..Default::default()
        },
        WorkloadKind::CronJob => Observed {
            active: status["active"].as_array().map_or(0, |a| a.len() as i32),
            last_schedule_time: serde_json::from_value(status["lastScheduleTime"].clone()).ok(),
            current: true,
            ..Default::default()
        },
    }
}

/// Phase, `ready` text and conditions (`Ready`, `Progressing`, `Degraded`) of `workload`, whose
/// workload object says `observed` (`None` when it does not exist yet).
pub fn assess(
    workload: &SecureWorkload,
    observed: Option<&Observed>,
) -> (WorkloadPhase, Option<String>, Vec<Condition>) {
    let kind = workload.spec.kind;
    let generation = workload.metadata.generation;
    let (phase, reason, message, ready) = match observed {
        _ if workload.spec.suspended == Some(true) => {
            (WorkloadPhase::Suspended, "Suspended", "stopped by spec.suspended".to_string(), None)
        }
        None => (WorkloadPhase::Pending, "Pending", format!("waiting for the {} to be created", kind.as_str()), None),
        Some(o) => match kind {
            WorkloadKind::Job => {
                let ready = Some(format!("{}/{}", o.succeeded, o.desired));
                if o.complete {
                    (WorkloadPhase::Succeeded, "Succeeded", format!("{} pod(s) succeeded", o.succeeded), ready)
                } else if o.job_failed {
                    (WorkloadPhase::Failed, "Failed", format!("the Job failed after {} failed pod(s)", o.failed), ready)
                } else if o.active > 0 {
                    (WorkloadPhase::Running, "Running", format!("{} pod(s) running", o.active), ready)
                } else {
                    (WorkloadPhase::Pending, "Pending", "waiting for the Job's pods to start".to_string(), ready)
                }
            }
            WorkloadKind::CronJob => {
                let message = match &o.last_schedule_time {
                    Some(time) => format!("scheduled; last run at {}, {} job(s) active", time.0, o.active),
                    None => format!("scheduled; not run yet, {} job(s) active", o.active),
                };
                (WorkloadPhase::Running, "Scheduled", message, None)
            }
            _ => {
                let ready = Some(format!("{}/{}", o.ready, o.desired));
                let counts = format!("{} of {} pod(s) ready, {} updated", o.ready, o.desired, o.updated);
                if o.stalled {
                    (WorkloadPhase::Degraded, "ProgressDeadlineExceeded", format!("rollout stalled: {counts}"), ready)
                } else if !o.current || o.updated < o.desired || !o.rolled_out {
                    (WorkloadPhase::Progressing, "RollingOut", counts, ready)
                } else if o.ready < o.desired {
                    (WorkloadPhase::Degraded, "PodsNotReady", counts, ready)
                } else {
                    (WorkloadPhase::Running, "Running", counts, ready)
                }
            }
        },
    };
    let is_ready = matches!(phase, WorkloadPhase::Running | WorkloadPhase::Succeeded);
    let progressing = matches!(phase, WorkloadPhase::Progressing | WorkloadPhase::Pending);
    let degraded = matches!(phase, WorkloadPhase::Degraded | WorkloadPhase::Failed);
    let conditions = vec![
        condition("Ready", is_ready, reason, message.clone(), generation),
        condition("Progressing", progressing, if progressing { reason } else { "Stable" }, message.clone(), generation),
        condition("Degraded", degraded, if degraded { reason } else { "Healthy" }, message, generation),
    ];
    (phase, ready, conditions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn workload(kind: &str, suspended: bool) -> SecureWorkload {
        serde_json::from_value(json!({
            "apiVersion": "scs.dev/v1alpha1", "kind": "SecureWorkload",
            "metadata": {"name": "w", "namespace": "n", "generation": 3},
            "spec": {"kind": kind, "suspended": suspended, "schedule": if kind == "CronJob" { json!("@daily") } else { Value::Null },
                     "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}
        }))
        .unwrap()
    }

    fn phase(kind: &str, object: Value) -> (WorkloadPhase, Option<String>) {
        let kind_enum: WorkloadKind = serde_json::from_value(json!(kind)).unwrap();
        let observed = observe(kind_enum, &object);
        let (phase, ready, _) = assess(&workload(kind, false), Some(&observed));
        (phase, ready)
    }

    #[test]
    fn deployment_phases() {
        let deployment = |ready: i32, updated: i32, observed: i64, reason: &str, status: &str| {
            json!({"metadata": {"generation": 2}, "spec": {"replicas": 3},
                   "status": {"readyReplicas": ready, "updatedReplicas": updated, "observedGeneration": observed,
                              "conditions": [{"type": "Progressing", "status": status, "reason": reason}]}})
        };
        assert_eq!(
            phase("Deployment", deployment(3, 3, 2, "NewReplicaSetAvailable", "True")),
            (WorkloadPhase::Running, Some("3/3".into()))
        );
        assert_eq!(phase("Deployment", deployment(1, 3, 2, "ReplicaSetUpdated", "True")).0, WorkloadPhase::Progressing);
        assert_eq!(
            phase("Deployment", deployment(3, 3, 1, "NewReplicaSetAvailable", "True")).0,
            WorkloadPhase::Progressing,
            "spec not seen yet"
        );
        assert_eq!(
            phase("Deployment", deployment(2, 3, 2, "NewReplicaSetAvailable", "True")).0,
            WorkloadPhase::Degraded
        );
        assert_eq!(
            phase("Deployment", deployment(0, 1, 2, "ProgressDeadlineExceeded", "False")).0,
            WorkloadPhase::Degraded
        );
    }

    #[test]
    fn statefulset_and_daemonset_phases() {
        let set = json!({"metadata": {"generation": 1}, "spec": {"replicas": 2}, "status": {"readyReplicas": 2, "updatedReplicas": 2, "observedGeneration": 1}});
        assert_eq!(phase("StatefulSet", set), (WorkloadPhase::Running, Some("2/2".into())));
        let daemons = json!({"metadata": {"generation": 1}, "status": {"desiredNumberScheduled": 4, "numberReady": 3, "updatedNumberScheduled": 4, "observedGeneration": 1}});
        assert_eq!(phase("DaemonSet", daemons), (WorkloadPhase::Degraded, Some("3/4".into())));
    }

    #[test]
    fn job_and_cronjob_phases() {
        let job = |status: Value| json!({"spec": {"parallelism": 1}, "status": status});
        assert_eq!(phase("Job", job(json!({"active": 1}))).0, WorkloadPhase::Running);
        assert_eq!(
            phase("Job", job(json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}))),
            (WorkloadPhase::Succeeded, Some("1/1".into()))
        );
        assert_eq!(
            phase("Job", job(json!({"failed": 6, "conditions": [{"type": "Failed", "status": "True"}]}))).0,
            WorkloadPhase::Failed
        );
        assert_eq!(phase("Job", job(json!({}))).0, WorkloadPhase::Pending);
        let cron = json!({"status": {"lastScheduleTime": "2026-11-20T02:30:00Z", "active": [{"name": "j"}]}});
        let observed = observe(WorkloadKind::CronJob, &cron);
        assert_eq!(observed.active, 1);
        assert!(observed.last_schedule_time.is_some());
        assert_eq!(phase("CronJob", cron).0, WorkloadPhase::Running);
    }

    #[test]
    fn suspended_and_missing() {
        let (phase, _, conditions) = assess(&workload("Deployment", true), None);
        assert_eq!(phase, WorkloadPhase::Suspended);
        assert_eq!(
            (conditions[0].type_.as_str(), conditions[0].status.as_str(), conditions[0].reason.as_str()),
            ("Ready", "False", "Suspended")
        );
        let (phase, ready, conditions) = assess(&workload("Deployment", false), None);
        assert_eq!((phase, ready), (WorkloadPhase::Pending, None));
        assert_eq!(conditions[1].status, "True", "Progressing while pending");
        assert_eq!(conditions[0].observed_generation, Some(3));
    }
}
