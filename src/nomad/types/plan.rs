//! `POST /v1/job/:id/plan`: the diff against the server's job and the scheduler's dry run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::nullable;

/// Answer of a plan.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobPlanResponse {
    /// The server job's `JobModifyIndex` (0 if the job is new): the check-and-set value
    /// for the register that follows. Required: without it a register cannot be gated.
    pub job_modify_index: u64,
    /// Diff between the submitted and the server's job (when `Diff: true` was asked).
    #[serde(default, deserialize_with = "nullable")]
    pub diff: Option<JobDiff>,
    /// What the scheduler would do per task group.
    #[serde(default, deserialize_with = "nullable")]
    pub annotations: Option<PlanAnnotations>,
    /// Placement failures per task group.
    #[serde(rename = "FailedTGAllocs", default, deserialize_with = "nullable")]
    pub failed_tg_allocs: BTreeMap<String, AllocationMetric>,
    /// Warnings about the submitted job.
    #[serde(default, deserialize_with = "nullable")]
    pub warnings: String,
    /// Next launch of a periodic job (RFC 3339); empty for other jobs (Nomad 1.1.2 sends
    /// `null`, older releases the zero time `0001-01-01T00:00:00Z`).
    #[serde(default, deserialize_with = "nullable")]
    pub next_periodic_launch: String,
}

impl JobPlanResponse {
    /// The top-level diff type, or `None` when Nomad sent no diff.
    ///
    /// An `Edited` diff in which nothing is added, deleted or edited is `None`: Nomad
    /// 1.1.2 plans a job with a `Scaling` block against itself as `Edited`, with a task
    /// group marked `Edited` that holds no field or object (the server-side scaling
    /// policy's ID and indexes differ from the submitted one's, and are not shown).
    pub fn diff_type(&self) -> Option<DiffType> {
        self.diff.as_ref().map(|d| match d.r#type {
            DiffType::Edited if !d.changes_anything() => DiffType::None,
            other => other,
        })
    }
}

impl JobDiff {
    /// Whether any field, object, task group or task is added, deleted or edited.
    pub fn changes_anything(&self) -> bool {
        changed(&self.fields, &self.objects)
            || self.task_groups.iter().any(|g| {
                g.r#type != DiffType::Edited && g.r#type != DiffType::None
                    || changed(&g.fields, &g.objects)
                    || g.tasks.iter().any(|t| {
                        t.r#type != DiffType::Edited && t.r#type != DiffType::None
                            || changed(&t.fields, &t.objects)
                    })
            })
    }
}

/// Whether any of `fields` or `objects` (at any depth) is added, deleted or edited.
fn changed(fields: &[FieldDiff], objects: &[ObjectDiff]) -> bool {
    fields.iter().any(|f| f.r#type != DiffType::None)
        || objects.iter().any(|o| {
            o.r#type == DiffType::Added
                || o.r#type == DiffType::Deleted
                || changed(&o.fields, &o.objects)
        })
}

/// A diff type. Decide on the top-level one only ([`JobPlanResponse::diff_type`]):
/// sub-objects may say `None` inside an `Edited` job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DiffType {
    /// No difference.
    #[default]
    None,
    /// Only in the submitted job.
    Added,
    /// Only in the server's job.
    Deleted,
    /// In both, different.
    Edited,
}

/// Top-level job diff. Its `Type` is required: a diff without one fails to decode rather
/// than reading as "no change".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobDiff {
    /// Kind of change of the whole job. Required.
    #[serde(rename = "Type")]
    pub r#type: DiffType,
    /// Job ID.
    #[serde(rename = "ID", default, deserialize_with = "nullable")]
    pub id: String,
    /// Changed scalar fields.
    #[serde(default, deserialize_with = "nullable")]
    pub fields: Vec<FieldDiff>,
    /// Changed nested objects.
    #[serde(default, deserialize_with = "nullable")]
    pub objects: Vec<ObjectDiff>,
    /// Per task group diffs.
    #[serde(default, deserialize_with = "nullable")]
    pub task_groups: Vec<TaskGroupDiff>,
}

/// Diff of one scalar field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FieldDiff {
    /// Kind of change.
    #[serde(rename = "Type", default, deserialize_with = "nullable")]
    pub r#type: DiffType,
    /// Field name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Server value.
    #[serde(default, deserialize_with = "nullable")]
    pub old: String,
    /// Submitted value.
    #[serde(default, deserialize_with = "nullable")]
    pub new: String,
    /// Notes such as `forces create/destroy update`.
    #[serde(default, deserialize_with = "nullable")]
    pub annotations: Vec<String>,
}

/// Diff of a nested object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObjectDiff {
    /// Kind of change.
    #[serde(rename = "Type", default, deserialize_with = "nullable")]
    pub r#type: DiffType,
    /// Object name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Changed fields.
    #[serde(default, deserialize_with = "nullable")]
    pub fields: Vec<FieldDiff>,
    /// Changed nested objects.
    #[serde(default, deserialize_with = "nullable")]
    pub objects: Vec<ObjectDiff>,
}

/// Diff of one task group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskGroupDiff {
    /// Kind of change.
    #[serde(rename = "Type", default, deserialize_with = "nullable")]
    pub r#type: DiffType,
    /// Task group name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Changed fields.
    #[serde(default, deserialize_with = "nullable")]
    pub fields: Vec<FieldDiff>,
    /// Changed nested objects.
    #[serde(default, deserialize_with = "nullable")]
    pub objects: Vec<ObjectDiff>,
    /// Per task diffs.
    #[serde(default, deserialize_with = "nullable")]
    pub tasks: Vec<TaskDiff>,
    /// Scheduler actions by kind (`create`, `destroy`, `in-place update`...).
    #[serde(default, deserialize_with = "nullable")]
    pub updates: BTreeMap<String, u64>,
}

/// Diff of one task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskDiff {
    /// Kind of change.
    #[serde(rename = "Type", default, deserialize_with = "nullable")]
    pub r#type: DiffType,
    /// Task name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Changed fields.
    #[serde(default, deserialize_with = "nullable")]
    pub fields: Vec<FieldDiff>,
    /// Changed nested objects.
    #[serde(default, deserialize_with = "nullable")]
    pub objects: Vec<ObjectDiff>,
    /// Notes such as `forces create`.
    #[serde(default, deserialize_with = "nullable")]
    pub annotations: Vec<String>,
}

/// The scheduler's intended actions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlanAnnotations {
    /// Intended actions per task group.
    #[serde(rename = "DesiredTGUpdates", default, deserialize_with = "nullable")]
    pub desired_tg_updates: BTreeMap<String, DesiredUpdates>,
}

/// Counts of intended scheduler actions for one task group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DesiredUpdates {
    /// Allocations left alone.
    #[serde(default, deserialize_with = "nullable")]
    pub ignore: u64,
    /// New allocations.
    #[serde(default, deserialize_with = "nullable")]
    pub place: u64,
    /// Allocations moved off draining nodes.
    #[serde(default, deserialize_with = "nullable")]
    pub migrate: u64,
    /// Allocations stopped.
    #[serde(default, deserialize_with = "nullable")]
    pub stop: u64,
    /// Allocations updated in place.
    #[serde(default, deserialize_with = "nullable")]
    pub in_place_update: u64,
    /// Allocations replaced.
    #[serde(default, deserialize_with = "nullable")]
    pub destructive_update: u64,
    /// Canaries placed.
    #[serde(default, deserialize_with = "nullable")]
    pub canary: u64,
    /// Allocations preempted.
    #[serde(default, deserialize_with = "nullable")]
    pub preemptions: u64,
}

/// Why a task group could not be (fully) placed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocationMetric {
    /// Nodes looked at.
    #[serde(default, deserialize_with = "nullable")]
    pub nodes_evaluated: u64,
    /// Nodes filtered out by constraints.
    #[serde(default, deserialize_with = "nullable")]
    pub nodes_filtered: u64,
    /// Nodes available per datacenter.
    #[serde(default, deserialize_with = "nullable")]
    pub nodes_available: BTreeMap<String, u64>,
    /// Nodes filtered per class.
    #[serde(default, deserialize_with = "nullable")]
    pub class_filtered: BTreeMap<String, u64>,
    /// Nodes filtered per constraint.
    #[serde(default, deserialize_with = "nullable")]
    pub constraint_filtered: BTreeMap<String, u64>,
    /// Nodes out of resources.
    #[serde(default, deserialize_with = "nullable")]
    pub nodes_exhausted: u64,
    /// Nodes out of resources per class.
    #[serde(default, deserialize_with = "nullable")]
    pub class_exhausted: BTreeMap<String, u64>,
    /// Nodes out of resources per dimension (`cpu exhausted`, `memory exhausted`...).
    #[serde(default, deserialize_with = "nullable")]
    pub dimension_exhausted: BTreeMap<String, u64>,
    /// Quotas exhausted.
    #[serde(default, deserialize_with = "nullable")]
    pub quota_exhausted: Vec<String>,
    /// Further failures folded into this one.
    #[serde(default, deserialize_with = "nullable")]
    pub coalesced_failures: u64,
    /// Time spent placing, nanoseconds.
    #[serde(default, deserialize_with = "nullable")]
    pub allocation_time: i64,
}
