//! Building the `NomadJob` status from Nomad's view, and its conditions (pure).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::Value;

use crate::crd::{
    AllocationStatus, DeploymentGroupStatus, DeploymentStatus, DesiredUpdates, NamedMap,
    NomadJobStatus, PlanStatus, TaskGroupSummary, TaskStatus, condition,
};
use crate::nomad::{AllocationListStub, Deployment, DiffType, JobPlanResponse, JobSummary};

use super::observe::{Details, JobView};
use super::report::Readiness;

/// How many allocations `status.allocations` holds at most (newest first).
pub const MAX_ALLOCATIONS: usize = 10;

/// Copies Nomad's view of the job into `status`: the job, its latest deployment, and
/// (when they were read) its summary and newest allocations. No job clears them all.
pub fn mirror(
    status: &mut NomadJobStatus,
    job: Option<&JobView>,
    deployments: &[Deployment],
    details: Option<&Details>,
) {
    status.job_version = job.map(|j| j.version);
    status.job_modify_index = job.map(|j| j.job_modify_index);
    status.job_create_index = job.map(|j| j.create_index);
    status.job_status = job.map(|j| j.status.clone());
    status.deployment = deployments
        .iter()
        .max_by_key(|d| d.create_index)
        .map(deployment_status);
    if job.is_none() {
        status.summary = NamedMap::default();
        status.allocations = Vec::new();
        return;
    }
    let Some(details) = details else {
        return;
    };
    status.summary = details
        .summary
        .as_ref()
        .map(summary_status)
        .unwrap_or_default();
    status.allocations = newest_allocations(&details.allocations);
}

/// The newest [`MAX_ALLOCATIONS`] of `allocations` (by name among equals), as the status
/// shows them.
pub fn newest_allocations(allocations: &[AllocationListStub]) -> Vec<AllocationStatus> {
    let mut allocs: Vec<&AllocationListStub> = allocations.iter().collect();
    allocs.sort_by(|a, b| {
        b.create_index
            .cmp(&a.create_index)
            .then_with(|| a.name.cmp(&b.name))
    });
    allocs
        .into_iter()
        .take(MAX_ALLOCATIONS)
        .map(allocation_status)
        .collect()
}

/// The `Ready` condition of `status` when its status or reason differs from the one of
/// `previous` (a transition worth an Event), else `None`.
pub fn ready_transition<'a>(
    previous: &[Condition],
    status: &'a [Condition],
) -> Option<&'a Condition> {
    let ready = find_condition(status, condition::READY)?;
    let before = find_condition(previous, condition::READY);
    (!before.is_some_and(|b| b.reason == ready.reason && b.status == ready.status)).then_some(ready)
}

/// The plan's top-level diff type and desired updates. A plan without a difference
/// records no updates: nothing is registered, and its counts (which only reflect how
/// far the scheduler has placed the current version) would change the status at rest.
pub fn plan_status(plan: &JobPlanResponse) -> PlanStatus {
    let diff_type = plan.diff_type().unwrap_or(DiffType::None);
    if diff_type == DiffType::None {
        return PlanStatus {
            diff_type: "None".into(),
            ..PlanStatus::default()
        };
    }
    let desired_updates = plan
        .annotations
        .as_ref()
        .map(|a| {
            a.desired_tg_updates
                .iter()
                .map(|(group, u)| {
                    let updates = DesiredUpdates {
                        place: u.place,
                        stop: u.stop,
                        in_place_update: u.in_place_update,
                        destructive_update: u.destructive_update,
                        ignore: u.ignore,
                        migrate: u.migrate,
                        canary: u.canary,
                    };
                    (group.clone(), updates)
                })
                .collect()
        })
        .unwrap_or_default();
    PlanStatus {
        diff_type: format!("{diff_type:?}"),
        desired_updates,
        registered: false,
        warnings: None,
    }
}

fn deployment_status(d: &Deployment) -> DeploymentStatus {
    DeploymentStatus {
        id: d.id.clone(),
        job_version: d.job_version,
        status: d.status.clone(),
        status_description: d.status_description.clone(),
        task_groups: d
            .task_groups
            .iter()
            .map(|(name, g)| {
                let group = DeploymentGroupStatus {
                    desired_total: g.desired_total,
                    placed: g.placed_allocs,
                    healthy: g.healthy_allocs,
                    unhealthy: g.unhealthy_allocs,
                    desired_canaries: g.desired_canaries,
                    placed_canaries: g.placed_canaries.len() as u64,
                    promoted: g.promoted,
                };
                (name.clone(), group)
            })
            .collect(),
    }
}

/// A job summary's counts per task group, as the status shows them.
pub fn summary_status(s: &JobSummary) -> NamedMap<TaskGroupSummary> {
    s.summary
        .iter()
        .map(|(group, c)| {
            let counts = TaskGroupSummary {
                queued: c.queued,
                starting: c.starting,
                running: c.running,
                complete: c.complete,
                failed: c.failed,
                lost: c.lost,
            };
            (group.clone(), counts)
        })
        .collect()
}

/// One allocation as the status shows it.
fn allocation_status(a: &AllocationListStub) -> AllocationStatus {
    AllocationStatus {
        id: a.id.clone(),
        name: a.name.clone(),
        node_id: a.node_id.clone(),
        task_group: a.task_group.clone(),
        job_version: a.job_version,
        client_status: a.client_status.clone(),
        desired_status: a.desired_status.clone(),
        healthy: a.deployment_status.as_ref().and_then(|d| d.healthy),
        tasks: a
            .task_states
            .iter()
            .map(|(name, t)| {
                let last_event = t
                    .events
                    .iter()
                    .max_by_key(|e| e.time)
                    .map(super::outcome::event_text);
                let task = TaskStatus {
                    state: t.state.clone(),
                    failed: t.failed,
                    restarts: t.restarts,
                    last_event,
                };
                (name.clone(), task)
            })
            .collect(),
    }
}

/// The top-level `status` fields that differ between `before` and `after`, by their
/// JSON names: what a status write changes, for the logs.
pub fn changed_fields(before: &NomadJobStatus, after: &NomadJobStatus) -> Vec<String> {
    let as_map = |s: &NomadJobStatus| match serde_json::to_value(s) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let (before, after) = (as_map(before), as_map(after));
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect()
}

/// A condition's status value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truth {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `Unknown`.
    Unknown,
}

impl Truth {
    fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

/// The longest condition message kept: a message embedding a large user value (an HCL
/// error, a Nomad refusal echoing the job) must not push the object towards etcd's
/// size limit.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Sets condition `type_` (with a non-empty message: Kubernetes requires one, cut to
/// [`MAX_MESSAGE_BYTES`]), keeping its `lastTransitionTime` when its status is unchanged.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    truth: Truth,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) {
    let status = truth.as_str();
    let transition = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: crate::nomad::truncate_bytes(message, MAX_MESSAGE_BYTES),
        last_transition_time: transition,
        observed_generation: generation,
    });
    conditions.sort_by_key(|c| condition_rank(&c.type_));
}

fn condition_rank(type_: &str) -> usize {
    [
        condition::READY,
        condition::RECONCILING,
        condition::STALLED,
        condition::DRIFTED,
        condition::SPEC_WARNING,
    ]
    .iter()
    .position(|t| *t == type_)
    .unwrap_or(usize::MAX)
}

/// Sets `Ready`, `Reconciling` and `Stalled` for `readiness` (kstatus: at most one of
/// `Reconciling` and `Stalled` is true, and `Ready` is true only when neither is).
pub fn set_readiness(
    conditions: &mut Vec<Condition>,
    readiness: &Readiness,
    generation: Option<i64>,
    now: &Time,
) {
    use Truth::{False, True};
    let (reason, message, [ready, reconciling, stalled]) = match readiness {
        Readiness::Ready(message) => (crate::crd::reason::SUCCEEDED, message, [True, False, False]),
        Readiness::Progressing { reason, message } => (*reason, message, [False, True, False]),
        Readiness::Stalled { reason, message } => (*reason, message, [False, False, True]),
    };
    for (type_, truth) in [
        (condition::READY, ready),
        (condition::RECONCILING, reconciling),
        (condition::STALLED, stalled),
    ] {
        set_condition(conditions, type_, truth, reason, message, generation, now);
    }
}

/// The condition `type_`, if set.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nomad::{AllocDeploymentStatus, TaskEvent, TaskState};
    use k8s_openapi::jiff::Timestamp;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("timestamp"))
    }

    #[test]
    fn a_plan_without_difference_records_no_updates() {
        let mut plan: JobPlanResponse = serde_json::from_value(serde_json::json!({
            "JobModifyIndex": 5,
            "Diff": {"Type": "None", "ID": "web"},
            "Annotations": {"DesiredTGUpdates": {"web": {"Place": 1}}}
        }))
        .expect("plan");
        assert_eq!(
            plan_status(&plan),
            PlanStatus {
                diff_type: "None".into(),
                ..PlanStatus::default()
            }
        );
        if let Some(diff) = plan.diff.as_mut() {
            diff.r#type = DiffType::Edited;
            diff.fields = vec![crate::nomad::FieldDiff {
                r#type: DiffType::Edited,
                name: "Priority".into(),
                ..Default::default()
            }];
        }
        let edited = plan_status(&plan);
        assert_eq!(
            (
                edited.diff_type.as_str(),
                edited.desired_updates["web"].place
            ),
            ("Edited", 1)
        );
    }

    #[test]
    fn changed_fields_names_the_status_fields_that_differ() {
        let before = NomadJobStatus {
            job_version: Some(1),
            ..Default::default()
        };
        let mut after = before.clone();
        assert!(changed_fields(&before, &after).is_empty());
        after.job_version = Some(2);
        after.plan = Some(PlanStatus::default());
        assert_eq!(changed_fields(&before, &after), ["jobVersion", "plan"]);
    }

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            "Ready",
            Truth::False,
            "Deploying",
            "a",
            Some(1),
            &at(10),
        );
        set_condition(
            &mut conditions,
            "Ready",
            Truth::False,
            "Deploying",
            "b",
            Some(2),
            &at(20),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, at(10));
        assert_eq!(
            (
                conditions[0].message.as_str(),
                conditions[0].observed_generation
            ),
            ("b", Some(2))
        );
        set_condition(
            &mut conditions,
            "Ready",
            Truth::True,
            "Succeeded",
            "c",
            Some(2),
            &at(30),
        );
        assert_eq!(conditions[0].last_transition_time, at(30));
    }

    #[test]
    fn readiness_sets_kstatus_conditions_consistently() {
        let mut conditions = Vec::new();
        let stalled = Readiness::Stalled {
            reason: "InvalidSpec",
            message: "spec.job: bad".into(),
        };
        set_readiness(&mut conditions, &stalled, Some(3), &at(1));
        let get = |c: &[Condition], t: &str| {
            find_condition(c, t)
                .map(|c| c.status.clone())
                .unwrap_or_default()
        };
        assert_eq!(
            (
                get(&conditions, "Ready"),
                get(&conditions, "Reconciling"),
                get(&conditions, "Stalled")
            ),
            ("False".into(), "False".into(), "True".into())
        );
        assert_eq!(
            conditions
                .iter()
                .map(|c| c.type_.as_str())
                .collect::<Vec<_>>(),
            ["Ready", "Reconciling", "Stalled"]
        );
        set_readiness(
            &mut conditions,
            &Readiness::Ready("ok".into()),
            Some(3),
            &at(2),
        );
        assert_eq!(get(&conditions, "Ready"), "True");
        assert_eq!(get(&conditions, "Stalled"), "False");
    }

    #[test]
    fn mirror_copies_job_deployment_summary_and_newest_allocations() {
        let job = serde_json::json!({"Version": 4, "JobModifyIndex": 77, "Status": "running"});
        let mut deployment = Deployment {
            id: "d1".into(),
            job_version: 4,
            status: "running".into(),
            create_index: 9,
            ..Default::default()
        };
        deployment.task_groups.insert(
            "web".into(),
            crate::nomad::DeploymentState {
                desired_total: 3,
                placed_allocs: 2,
                healthy_allocs: 1,
                placed_canaries: vec!["a".into()],
                ..Default::default()
            },
        );
        let older = Deployment {
            id: "d0".into(),
            job_version: 3,
            status: "successful".into(),
            create_index: 5,
            ..Default::default()
        };
        let mut summary = JobSummary::default();
        summary.summary.insert(
            "web".into(),
            crate::nomad::TaskGroupSummary {
                running: 2,
                failed: 1,
                ..Default::default()
            },
        );
        let allocations: Vec<AllocationListStub> = (0..15)
            .map(|i| {
                let mut a = AllocationListStub {
                    id: format!("alloc-{i}"),
                    name: format!("web.web[{i}]"),
                    create_index: i,
                    client_status: "running".into(),
                    deployment_status: Some(AllocDeploymentStatus {
                        healthy: Some(true),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                a.task_states.insert(
                    "server".into(),
                    TaskState {
                        state: "dead".into(),
                        failed: true,
                        restarts: 2,
                        events: vec![
                            TaskEvent {
                                r#type: "Started".into(),
                                time: 1,
                                ..Default::default()
                            },
                            TaskEvent {
                                r#type: "Terminated".into(),
                                time: 2,
                                display_message: "Exit Code: 1".into(),
                                ..Default::default()
                            },
                        ],
                        ..Default::default()
                    },
                );
                a
            })
            .collect();
        let job = JobView::parse(&job);
        let details = Details {
            summary: Some(summary),
            allocations,
            ..Details::default()
        };
        let deployments = vec![older, deployment];
        let mut status = NomadJobStatus::default();
        mirror(&mut status, Some(&job), &deployments, Some(&details));
        assert_eq!(
            (status.job_version, status.job_modify_index),
            (Some(4), Some(77))
        );
        assert_eq!(status.job_status.as_deref(), Some("running"));
        let d = status.deployment.clone().expect("deployment");
        assert_eq!((d.id.as_str(), d.job_version), ("d1", 4));
        assert_eq!(
            d.task_groups["web"],
            DeploymentGroupStatus {
                desired_total: 3,
                placed: 2,
                healthy: 1,
                placed_canaries: 1,
                ..Default::default()
            }
        );
        assert_eq!(status.summary["web"].running, 2);
        assert_eq!(status.allocations.len(), MAX_ALLOCATIONS);
        assert_eq!(status.allocations[0].id, "alloc-14", "newest first");
        let task = &status.allocations[0].tasks["server"];
        assert_eq!(task.last_event.as_deref(), Some("Terminated: Exit Code: 1"));
        assert_eq!((task.failed, task.restarts), (true, 2));
        assert_eq!(status.allocations[0].healthy, Some(true));

        // Details not read this time: the summary and allocations stay as they were.
        mirror(&mut status, Some(&job), &deployments, None);
        assert_eq!(status.allocations.len(), MAX_ALLOCATIONS);

        mirror(&mut status, None, &[], None);
        assert_eq!(
            (status.job_version, status.deployment.as_ref()),
            (None, None)
        );
        assert!(status.allocations.is_empty() && status.summary.is_empty());
    }
}
