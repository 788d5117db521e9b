//! Rules about a single object that the CRD schema cannot express cheaply.
//!
//! Each one is also enforced where it matters at run time (the admission policy, Pod Security
//! `restricted`), but rejecting it here gives the user an error that names the field.

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::FieldError;
use crate::api::{SdnNetworkSpec, SecureWorkloadSpec, WorkloadKind};

/// Rules for a SecureWorkload spec.
pub fn check_workload(spec: &SecureWorkloadSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(pod) = spec.template.spec.as_ref() else {
        errors
            .push(FieldError::new("spec.template.spec", "required field is missing: a pod template needs containers"));
        return errors;
    };
    if pod.containers.is_empty() {
        errors.push(FieldError::new("spec.template.spec.containers", "must have at least one container"));
    }
    errors.extend(super::fence::template_errors(&spec.template));
    let init_containers = pod.init_containers.as_deref().unwrap_or_default();
    for (field, containers) in [("containers", pod.containers.as_slice()), ("initContainers", init_containers)] {
        for (index, container) in containers.iter().enumerate() {
            if container.security_context.as_ref().and_then(|s| s.privileged) == Some(true) {
                errors.push(FieldError::new(
                    format!("spec.template.spec.{field}[{index}].securityContext.privileged"),
                    format!(
                        "container {:?} may not be privileged: the sandbox is not a reason to relax Pod Security",
                        container.name
                    ),
                ));
            }
        }
    }
    let restart = pod.restart_policy.as_deref();
    let batch = matches!(spec.kind, WorkloadKind::Job | WorkloadKind::CronJob);
    if batch && restart == Some("Always") {
        errors.push(FieldError::new(
            "spec.template.spec.restartPolicy",
            "a Job's pods must use Never or OnFailure (OnFailure when unset)",
        ));
    } else if !batch && restart.is_some_and(|r| r != "Always") {
        errors.push(FieldError::new(
            "spec.template.spec.restartPolicy",
            format!("a {}'s pods always restart: use Always or leave it unset", spec.kind.as_str()),
        ));
    }
    let container_names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    let mut require_container = |path: String, name: &Option<String>| {
        if let Some(name) = name
            && !container_names.contains(&name.as_str())
        {
            errors.push(FieldError::new(path, format!("no container named {name:?} in spec.template.spec.containers")));
        }
    };
    if let Some(gpu) = &spec.gpu {
        require_container("spec.gpu.container".into(), &gpu.container);
    }
    for (index, volume) in spec.volumes.iter().enumerate() {
        require_container(format!("spec.volumes[{index}].container"), &volume.container);
    }
    if let Some(strategy) = &spec.update_strategy {
        for (field, value) in [("maxSurge", &strategy.max_surge), ("maxUnavailable", &strategy.max_unavailable)] {
            if let Some(IntOrString::String(text)) = value
                && !is_percentage(text)
            {
                errors.push(FieldError::new(
                    format!("spec.updateStrategy.{field}"),
                    format!("{text:?} must be a number or a percentage such as 25%"),
                ));
            }
            if let Some(IntOrString::Int(number)) = value
                && *number < 0
            {
                errors.push(FieldError::new(format!("spec.updateStrategy.{field}"), "must not be negative"));
            }
        }
    }
    // A time zone prefix is refused by the CRD's own rule on the field (SCHEDULE_TZ_MESSAGE).
    if let Some(schedule) = &spec.schedule
        && !schedule.contains("TZ=")
        && !is_cron_schedule(schedule)
    {
        errors.push(FieldError::new(
            "spec.schedule",
            "must be a cron schedule of five fields (minute hour day-of-month month day-of-week) or a macro such as @daily",
        ));
    }
    errors
}

fn is_percentage(text: &str) -> bool {
    text.strip_suffix('%').is_some_and(|n| {
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && n.parse::<u32>().is_ok_and(|p| p <= 100)
    })
}

/// Five whitespace-separated fields of cron characters, or a `@` macro as Kubernetes accepts.
fn is_cron_schedule(schedule: &str) -> bool {
    // `TZ=`/`CRON_TZ=` prefixes are not taken: the API server refuses them in a new CronJob
    // (Kubernetes 1.29+); `spec.cronJob.timeZone` says the same.
    let schedule = schedule.trim();
    if let Some(name) = schedule.strip_prefix('@') {
        return ["yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly"].contains(&name);
    }
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    fields.len() == 5
        && fields
            .iter()
            .all(|f| f.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | '/' | ',' | '-' | '?')))
}

/// Rules for an SdnNetwork spec beyond its CEL rules: address ordering and exclusions.
pub fn check_network(spec: &SdnNetworkSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Ok(subnet) = spec.cidr.parse::<IpNet>() else {
        return errors; // the schema rule already reported it
    };
    if subnet.network() != subnet.addr() {
        errors.push(FieldError::new(
            "spec.cidr",
            format!("has host bits set: the network address is {}", subnet.trunc()),
        ));
    }
    if let Some(range) = &spec.ip_range
        && let (Ok(start), Ok(end)) = (range.start.parse::<IpAddr>(), range.end.parse::<IpAddr>())
        && start > end
    {
        errors.push(FieldError::new("spec.ipRange", format!("start {start} comes after end {end}")));
    }
    for (index, excluded) in spec.exclude.iter().enumerate() {
        if let Ok(excluded) = excluded.parse::<IpNet>()
            && !subnet.contains(&excluded)
        {
            errors.push(FieldError::new(
                format!("spec.exclude[{index}]"),
                format!("{excluded} is not inside cidr {subnet}"),
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_schedules() {
        for good in ["*/5 * * * *", "30 2 * * 1-5", "@daily", "0 0 1 JAN *"] {
            assert!(is_cron_schedule(good), "{good}");
        }
        for bad in ["* * * *", "every day", "@sometimes", "* * * * * *", "TZ=Asia/Shanghai 0 3 * * *"] {
            assert!(!is_cron_schedule(bad), "{bad}");
        }
    }
}
