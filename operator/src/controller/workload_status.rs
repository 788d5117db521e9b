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

/// Waiting reasons of a container that say the pod will not run without a change.
const STUCK: [&str; 7] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Why the workload's pods do not come up, as `(reason, message)`: the workload object's own
/// `ReplicaFailure` (pods refused at creation, by admission or quota: reason `FailedCreate`), else
/// the first pod with a stuck container (`CrashLoopBackOff`, `ImagePullBackOff`, ...) or that the
/// scheduler cannot place (`Unschedulable`, with the scheduler's message).
pub fn pod_problem(object: Option<&Value>, pods: &[Value]) -> Option<(String, String)> {
    if let Some(failure) = object
        .and_then(|o| o["status"]["conditions"].as_array())
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "ReplicaFailure" && c["status"] == "True")
    {
        let message = failure["message"].as_str().unwrap_or("pods cannot be created");
        return Some(("FailedCreate".into(), format!("pods cannot be created: {message}")));
    }
    let mut unschedulable = None;
    for pod in pods {
        if pod["metadata"]["deletionTimestamp"].is_string() {
            continue;
        }
        let name = pod["metadata"]["name"].as_str().unwrap_or("?");
        let statuses = ["initContainerStatuses", "containerStatuses"]
            .into_iter()
            .flat_map(|key| pod["status"][key].as_array().into_iter().flatten());
        for status in statuses {
            let waiting = &status["state"]["waiting"];
            let Some(reason) = waiting["reason"].as_str().filter(|r| STUCK.contains(r)) else { continue };
            let container = status["name"].as_str().unwrap_or("?");
            let detail = waiting["message"].as_str().map(|m| format!(": {m}")).unwrap_or_default();
            return Some((reason.into(), format!("pod {name} container {container} is in {reason}{detail}")));
        }
        let scheduled = pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "PodScheduled" && c["status"] == "False" && c["reason"] == "Unschedulable");
        if let Some(condition) = scheduled
            && unschedulable.is_none()
        {
            let message = condition["message"].as_str().unwrap_or("no node fits");
            unschedulable = Some(("Unschedulable".into(), format!("pod {name} cannot be scheduled: {message}")));
        }
    }
    unschedulable
}

/// Whether the pods of a workload in `phase` are worth a look: it is not (yet) fully up.
pub fn needs_pod_check(phase: WorkloadPhase) -> bool {
    matches!(phase, WorkloadPhase::Pending | WorkloadPhase::Progressing | WorkloadPhase::Degraded)
}

/// Whether `object` (the workload's Deployment, StatefulSet, ...) may have pods: one whose
/// controller counts none (`status.replicas`, also before the controller saw it) has none for a
/// pod check to explain, and is looked at again when the count changes (a watch event).
pub fn may_have_pods(kind: WorkloadKind, object: &Value) -> bool {
    match kind {
        WorkloadKind::Deployment | WorkloadKind::StatefulSet => object["status"]["replicas"].as_i64().unwrap_or(0) > 0,
        _ => true,
    }
}

/// `ChildrenReady` and the other conditions once pod problems and refused children are counted:
/// a pod `problem` turns a workload that is not up into `Degraded` with the problem's reason; a
/// child the API server refused turns it `Degraded` with reason `ApplyFailed` (or
/// `ImmutableChange`), whatever its pods do, because what runs is not what the spec says.
pub fn with_failures(
    workload: &SecureWorkload,
    assessed: (WorkloadPhase, Option<String>, Vec<Condition>),
    problem: Option<(String, String)>,
    refused: &[crate::controller::sync::Refused],
) -> (WorkloadPhase, Option<String>, Vec<Condition>) {
    let generation = workload.metadata.generation;
    let (mut phase, ready, mut conditions) = assessed;
    let mut override_with = |phase: &mut WorkloadPhase, reason: &str, message: &str| {
        *phase = WorkloadPhase::Degraded;
        conditions = vec![
            condition("Ready", false, reason, message, generation),
            condition("Progressing", false, "Stable", message, generation),
            condition("Degraded", true, reason, message, generation),
        ];
    };
    if let Some((reason, message)) = problem.filter(|_| needs_pod_check(phase)) {
        override_with(&mut phase, &reason, &message);
    }
    let children = super::conditions::children_ready(refused, generation);
    if children.status == "False" && phase != WorkloadPhase::Suspended {
        let (reason, message) = (children.reason.clone(), children.message.clone());
        override_with(&mut phase, &reason, &message);
    }
    conditions.push(children);
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
    fn pods_are_looked_for_only_once_the_controller_counts_some() {
        let just_applied = json!({"metadata": {"generation": 1}, "spec": {"replicas": 3}});
        let none_yet = json!({"spec": {"replicas": 3}, "status": {"observedGeneration": 1, "replicas": 0}});
        let some = json!({"spec": {"replicas": 3}, "status": {"observedGeneration": 1, "replicas": 2}});
        for kind in [WorkloadKind::Deployment, WorkloadKind::StatefulSet] {
            assert!(!may_have_pods(kind, &just_applied));
            assert!(!may_have_pods(kind, &none_yet));
            assert!(may_have_pods(kind, &some));
        }
        assert!(may_have_pods(WorkloadKind::Job, &just_applied), "other kinds are always looked at");
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

    fn refused(kind: &str, immutable: &[&str]) -> crate::controller::sync::Refused {
        crate::controller::sync::Refused {
            kind: kind.into(),
            namespace: Some("n".into()),
            name: "w".into(),
            code: 422,
            message: format!("{kind}.apps \"w\" is invalid: spec: Forbidden"),
            immutable: immutable.iter().map(|f| f.to_string()).collect(),
        }
    }

    fn condition_of<'a>(conditions: &'a [Condition], type_: &str) -> (&'a str, &'a str, &'a str) {
        let c = conditions.iter().find(|c| c.type_ == type_).expect(type_);
        (c.status.as_str(), c.reason.as_str(), c.message.as_str())
    }

    #[test]
    fn replica_failure_is_failed_create() {
        let deployment = json!({"status": {"conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
            "message": "pods \"w-1\" is forbidden: exceeded quota: compute"}]}});
        let problem = pod_problem(Some(&deployment), &[]).unwrap();
        assert_eq!(problem.0, "FailedCreate");
        assert!(problem.1.contains("exceeded quota: compute"), "{}", problem.1);
        let healed = json!({"status": {"conditions": [{"type": "ReplicaFailure", "status": "False"}]}});
        assert_eq!(pod_problem(Some(&healed), &[]), None);
    }

    #[test]
    fn stuck_containers_and_unschedulable_pods() {
        let unschedulable = json!({"metadata": {"name": "p0"}, "status": {"conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient cpu."}]}});
        let crashing = json!({"metadata": {"name": "p1"}, "status": {"containerStatuses": [
            {"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}}}]}});
        let creating = json!({"metadata": {"name": "p2"}, "status": {"containerStatuses": [
            {"name": "app", "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        let pulling = json!({"metadata": {"name": "p3"}, "status": {"initContainerStatuses": [
            {"name": "init", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"nope\""}}}]}});
        assert_eq!(pod_problem(None, std::slice::from_ref(&creating)), None, "still starting is no problem");
        let (reason, message) = pod_problem(None, &[unschedulable.clone(), crashing.clone()]).unwrap();
        assert_eq!(reason, "CrashLoopBackOff", "a stuck container comes before an unscheduled pod");
        assert!(message.contains("pod p1 container app"), "{message}");
        let (reason, message) = pod_problem(None, &[creating, unschedulable]).unwrap();
        assert_eq!(reason, "Unschedulable");
        assert!(message.contains("Insufficient cpu"), "{message}");
        assert_eq!(pod_problem(None, &[pulling]).unwrap().0, "ImagePullBackOff");
    }

    #[test]
    fn pod_problems_degrade_only_a_workload_that_is_not_up() {
        let w = workload("Deployment", false);
        let problem = Some(("CrashLoopBackOff".to_string(), "pod p1 container app is in CrashLoopBackOff".to_string()));
        let rolling = (WorkloadPhase::Progressing, Some("0/1".to_string()), Vec::new());
        let (phase, ready, conditions) = with_failures(&w, rolling, problem.clone(), &[]);
        assert_eq!((phase, ready.as_deref()), (WorkloadPhase::Degraded, Some("0/1")));
        assert_eq!(condition_of(&conditions, "Ready").1, "CrashLoopBackOff");
        assert_eq!(condition_of(&conditions, "Degraded").0, "True");
        assert_eq!(condition_of(&conditions, "ChildrenReady"), ("True", "Applied", "every child is applied"));
        let running = (WorkloadPhase::Running, Some("1/1".to_string()), Vec::new());
        assert_eq!(with_failures(&w, running, problem, &[]).0, WorkloadPhase::Running);
    }

    #[test]
    fn refused_children_are_apply_failed_or_immutable_change() {
        let w = workload("StatefulSet", false);
        let running = || (WorkloadPhase::Running, Some("1/1".to_string()), Vec::new());
        let (phase, _, conditions) = with_failures(&w, running(), None, &[refused("Service", &[])]);
        assert_eq!(phase, WorkloadPhase::Degraded, "what runs is not what the spec says");
        let (status, reason, message) = condition_of(&conditions, "ChildrenReady");
        assert_eq!((status, reason), ("False", "ApplyFailed"));
        assert!(message.starts_with("Service n/w refused by the API server: Service.apps"), "{message}");
        assert_eq!(condition_of(&conditions, "Ready").1, "ApplyFailed");
        let (_, _, conditions) =
            with_failures(&w, running(), None, &[refused("StatefulSet", &["spec.volumeClaimTemplates"])]);
        let (status, reason, message) = condition_of(&conditions, "ChildrenReady");
        assert_eq!((status, reason), ("False", "ImmutableChange"));
        assert!(message.contains("spec.volumeClaimTemplates cannot change"), "{message}");
        assert!(message.contains(crate::controller::conditions::RECREATE_ANNOTATION), "{message}");
        let suspended = (WorkloadPhase::Suspended, None, Vec::new());
        assert_eq!(with_failures(&w, suspended, None, &[refused("Service", &[])]).0, WorkloadPhase::Suspended);
    }
}
