//! How a run went (pure): a batch job, a dispatched job or a periodic launch, from
//! Nomad's job status, its allocation counts and its allocations; and why allocations
//! wait to be placed.

use std::collections::BTreeMap;

use crate::crd::ChildJobStatus;
use crate::nomad::{AllocationListStub, Evaluation, JobListStub, JobSummary, TaskEvent, TaskState};
use crate::plan_text::{failed_allocations, placement_reasons};

/// Where a run stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It has not finished.
    Running(String),
    /// Every allocation completed.
    Succeeded(String),
    /// It finished without every allocation completing.
    Failed(String),
}

impl Outcome {
    /// `Running`, `Succeeded` or `Failed`, for the status.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Running(_) => "Running",
            Self::Succeeded(_) => "Succeeded",
            Self::Failed(_) => "Failed",
        }
    }
}

/// The outcome of a job that runs to completion: `job_status` is Nomad's (`pending`,
/// `running`, `dead`), `counts` each group's `Count`.
pub fn run_outcome(
    job_status: &str,
    counts: &BTreeMap<String, u64>,
    summary: Option<&JobSummary>,
    allocations: &[AllocationListStub],
) -> Outcome {
    let (complete, desired) = completed(counts, summary);
    let progress = format!("{complete}/{desired} allocations completed");
    let failure = failed_task(allocations);
    match (job_status, failure) {
        ("dead", _) if complete >= desired => Outcome::Succeeded(progress),
        ("dead", Some(failure)) => Outcome::Failed(format!("{failure} ({progress})")),
        ("dead", None) => Outcome::Failed(format!("the job ended with {progress}")),
        (_, Some(failure)) => Outcome::Running(format!(
            "{progress}; {failure}, and Nomad may still reschedule it"
        )),
        (_, None) => Outcome::Running(progress),
    }
}

/// Completed over desired allocations, each group counted up to its `Count`.
pub fn completed(counts: &BTreeMap<String, u64>, summary: Option<&JobSummary>) -> (u64, u64) {
    let complete = counts
        .iter()
        .map(|(group, count)| {
            let done = summary
                .and_then(|s| s.summary.get(group))
                .map_or(0, |g| g.complete);
            done.min(*count)
        })
        .sum();
    (complete, counts.values().sum())
}

/// The newest failed task of the newest failed allocation, in words:
/// `task "run" of allocation report.run[0] failed: Terminated: Exit Code: 1`.
pub fn failed_task(allocations: &[AllocationListStub]) -> Option<String> {
    let alloc = allocations
        .iter()
        .filter(|a| a.client_status == "failed")
        .max_by_key(|a| a.create_index)?;
    let (name, task) = alloc
        .task_states
        .iter()
        .filter(|(_, t)| t.failed)
        .max_by_key(|(_, t)| t.events.iter().map(|e| e.time).max())?;
    let why = task
        .events
        .iter()
        .filter(|e| EXPLAINING.contains(&e.r#type.as_str()))
        .max_by_key(|e| e.time)
        .or_else(|| task.events.iter().max_by_key(|e| e.time))
        .map(event_text)
        .unwrap_or_else(|| "no task event".into());
    Some(format!(
        "task {name:?} of allocation {} failed: {why}",
        alloc.name
    ))
}

/// Drops the events of `task` that neither the status nor [`failed_task`] shows: keeps
/// the newest event and the newest one that says why the task failed. What the
/// watches keep of thousands of allocations then holds one or two events per task.
pub fn keep_telling_events(task: &mut TaskState) {
    // `max_by_key` takes the last of equals, as the readers of the events do.
    let newest = task
        .events
        .iter()
        .enumerate()
        .max_by_key(|(_, e)| e.time)
        .map(|(i, _)| i);
    let explaining = task
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| EXPLAINING.contains(&e.r#type.as_str()))
        .max_by_key(|(_, e)| e.time)
        .map(|(i, _)| i);
    let mut index = 0;
    task.events.retain(|_| {
        let keep = Some(index) == newest || Some(index) == explaining;
        index += 1;
        keep
    });
    task.events.shrink_to_fit();
}

/// Task event types that say why a task failed (a later `Not Restarting` does not).
const EXPLAINING: [&str; 7] = [
    "Terminated",
    "Driver Failure",
    "Setup Failure",
    "Failed Validation",
    "Failed Artifact Download",
    "Killed",
    "OOM Killed",
];

/// A task event as `Type: message`.
pub fn event_text(e: &TaskEvent) -> String {
    let detail = if e.display_message.is_empty() {
        &e.message
    } else {
        &e.display_message
    };
    if detail.is_empty() {
        e.r#type.clone()
    } else {
        format!("{}: {detail}", e.r#type)
    }
}

/// How many launched jobs the status lists.
pub const MAX_CHILDREN: usize = 5;

/// The newest launched jobs, newest first, with their outcome.
pub fn children(stubs: &[JobListStub]) -> Vec<ChildJobStatus> {
    let mut stubs: Vec<&JobListStub> = stubs.iter().collect();
    stubs.sort_by(|a, b| {
        b.submit_time
            .cmp(&a.submit_time)
            .then_with(|| b.id.cmp(&a.id))
    });
    stubs
        .into_iter()
        .take(MAX_CHILDREN)
        .map(|c| ChildJobStatus {
            job_id: c.id.clone(),
            status: c.status.clone(),
            outcome: child_outcome(c).into(),
            launched: k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(c.submit_time))
                .ok()
                .filter(|_| c.submit_time > 0)
                .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
        })
        .collect()
}

/// `Running`, `Succeeded`, `Failed` or `Stopped` for a launched job, from its list stub:
/// it failed when it ended with a group that completed nothing but lost or failed some.
fn child_outcome(c: &JobListStub) -> &'static str {
    if c.status != "dead" {
        return "Running";
    }
    if c.stop {
        return "Stopped";
    }
    let failed = c.job_summary.as_ref().is_some_and(|s| {
        s.summary
            .values()
            .any(|g| g.complete == 0 && g.failed + g.lost > 0)
    });
    if failed { "Failed" } else { "Succeeded" }
}

/// Why allocations wait to be placed, per task group, from the newest evaluation that
/// says so.
pub fn placement_failures(evaluations: &[Evaluation]) -> BTreeMap<String, String> {
    evaluations
        .iter()
        .filter(|e| !e.failed_tg_allocs.is_empty())
        .max_by_key(|e| e.create_index)
        .map(|e| failures_text(&e.failed_tg_allocs))
        .unwrap_or_default()
}

/// Placement failures per task group, in words (`nomad job plan`'s, with a hint).
pub fn failures_text(
    failed: &BTreeMap<String, crate::nomad::AllocationMetric>,
) -> BTreeMap<String, String> {
    failed
        .iter()
        .map(|(group, metric)| {
            let n = failed_allocations(metric);
            let noun = if n == 1 { "allocation" } else { "allocations" };
            let mut text = format!(
                "{n} {noun} cannot be placed: {}",
                placement_reasons(metric).join("; ")
            );
            if let Some(hint) = hint(metric) {
                text.push_str(". ");
                text.push_str(hint);
            }
            (group.clone(), text)
        })
        .collect()
}

/// What to do about a placement failure.
fn hint(metric: &crate::nomad::AllocationMetric) -> Option<&'static str> {
    let dimension = |d: &str| metric.dimension_exhausted.keys().any(|k| k.contains(d));
    if dimension("memory") {
        Some(
            "The group asks more memory than a node has free: lower the tasks' resources.memory, or add capacity",
        )
    } else if dimension("cpu") {
        Some(
            "The group asks more CPU than a node has free: lower the tasks' resources.cpu, or add capacity",
        )
    } else if !metric.constraint_filtered.is_empty() {
        Some(
            "No node satisfies the job's constraints: check them against the nodes' attributes (nomad node status -verbose)",
        )
    } else if metric.nodes_evaluated == 0 {
        Some("Check the job's datacenters and node pool against the nodes (nomad node status)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nomad::{AllocationMetric, TaskGroupSummary, TaskState};

    fn summary(complete: u64, failed: u64) -> JobSummary {
        let mut s = JobSummary::default();
        s.summary.insert(
            "run".into(),
            TaskGroupSummary {
                complete,
                failed,
                ..TaskGroupSummary::default()
            },
        );
        s
    }

    fn failed_alloc() -> AllocationListStub {
        let mut a = AllocationListStub {
            name: "report.run[0]".into(),
            client_status: "failed".into(),
            create_index: 7,
            ..AllocationListStub::default()
        };
        let event = |t: &str, m: &str, time: i64| TaskEvent {
            r#type: t.into(),
            display_message: m.into(),
            time,
            ..TaskEvent::default()
        };
        a.task_states.insert(
            "main".into(),
            TaskState {
                state: "dead".into(),
                failed: true,
                events: vec![
                    event("Started", "Task started by client", 1),
                    event("Terminated", "Exit Code: 3", 2),
                    event("Not Restarting", "Policy allows no restarts", 3),
                ],
                ..TaskState::default()
            },
        );
        a
    }

    #[test]
    fn the_events_kept_tell_what_all_of_them_told() {
        let full = failed_alloc();
        let mut slim = full.clone();
        for task in slim.task_states.values_mut() {
            keep_telling_events(task);
        }
        let kept: Vec<&str> = slim.task_states["main"]
            .events
            .iter()
            .map(|e| e.r#type.as_str())
            .collect();
        assert_eq!(kept, ["Terminated", "Not Restarting"]);
        assert_eq!(
            failed_task(std::slice::from_ref(&slim)),
            failed_task(std::slice::from_ref(&full))
        );
        assert_eq!(
            failed_task(&[slim]).as_deref(),
            Some("task \"main\" of allocation report.run[0] failed: Terminated: Exit Code: 3")
        );
        let mut running = TaskState {
            events: vec![
                TaskEvent {
                    r#type: "Received".into(),
                    time: 1,
                    ..TaskEvent::default()
                },
                TaskEvent {
                    r#type: "Started".into(),
                    time: 2,
                    ..TaskEvent::default()
                },
            ],
            ..TaskState::default()
        };
        keep_telling_events(&mut running);
        assert_eq!(running.events.len(), 1);
        assert_eq!(running.events[0].r#type, "Started");
    }

    #[test]
    fn a_batch_job_succeeds_only_when_every_allocation_completed() {
        let counts = BTreeMap::from([("run".to_string(), 2)]);
        assert_eq!(
            run_outcome("dead", &counts, Some(&summary(2, 0)), &[]),
            Outcome::Succeeded("2/2 allocations completed".into())
        );
        assert_eq!(
            run_outcome("running", &counts, Some(&summary(1, 0)), &[]),
            Outcome::Running("1/2 allocations completed".into())
        );
        match run_outcome("dead", &counts, Some(&summary(1, 1)), &[failed_alloc()]) {
            Outcome::Failed(m) => assert_eq!(
                m,
                "task \"main\" of allocation report.run[0] failed: Terminated: Exit Code: 3 (1/2 allocations completed)"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            run_outcome("pending", &counts, Some(&summary(0, 1)), &[failed_alloc()]),
            Outcome::Running(m) if m.contains("may still reschedule")
        ));
    }

    #[test]
    fn children_are_newest_first_with_their_outcome() {
        let child = |id: &str, time: i64, status: &str, complete: u64, failed: u64| JobListStub {
            id: id.into(),
            status: status.into(),
            submit_time: time,
            job_summary: Some(summary(complete, failed)),
            ..JobListStub::default()
        };
        let list = children(&[
            child("p/periodic-1", 1_000_000_000, "dead", 1, 0),
            child("p/periodic-3", 3_000_000_000, "running", 0, 0),
            child("p/periodic-2", 2_000_000_000, "dead", 0, 1),
        ]);
        let seen: Vec<(&str, &str)> = list
            .iter()
            .map(|c| (c.job_id.as_str(), c.outcome.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("p/periodic-3", "Running"),
                ("p/periodic-2", "Failed"),
                ("p/periodic-1", "Succeeded")
            ]
        );
        assert_eq!(list[2].launched.as_ref().map(|t| t.0.as_second()), Some(1));
    }

    #[test]
    fn placement_failures_say_what_is_exhausted_and_what_to_do() {
        let metric = AllocationMetric {
            nodes_evaluated: 1,
            nodes_exhausted: 1,
            dimension_exhausted: BTreeMap::from([("memory".to_string(), 1)]),
            coalesced_failures: 1,
            ..AllocationMetric::default()
        };
        let evals = vec![
            Evaluation {
                create_index: 5,
                failed_tg_allocs: BTreeMap::from([("web".to_string(), metric)]),
                ..Evaluation::default()
            },
            Evaluation {
                create_index: 6,
                status: "blocked".into(),
                ..Evaluation::default()
            },
        ];
        let failures = placement_failures(&evals);
        assert_eq!(
            failures["web"],
            "2 allocations cannot be placed: Resources exhausted on 1 nodes; Dimension \"memory\" exhausted on 1 nodes. The group asks more memory than a node has free: lower the tasks' resources.memory, or add capacity"
        );
        assert!(placement_failures(&[]).is_empty());
    }
}
