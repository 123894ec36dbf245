//! Job list stubs, summaries and the answers of job write endpoints.

use crate::named_map::NamedMap;
use serde::{Deserialize, Serialize};

use super::nullable;

/// One entry of `GET /v1/jobs`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobListStub {
    /// Job ID. Required.
    #[serde(rename = "ID")]
    pub id: String,
    /// Parent job ID (dispatched and periodic children), empty otherwise.
    #[serde(rename = "ParentID", default, deserialize_with = "nullable")]
    pub parent_id: String,
    /// Job name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Namespace (Nomad 0.7+).
    #[serde(default, deserialize_with = "nullable")]
    pub namespace: String,
    /// `service`, `batch`, `system`, `sysbatch`.
    #[serde(rename = "Type", default, deserialize_with = "nullable")]
    pub r#type: String,
    /// Scheduling priority.
    #[serde(default, deserialize_with = "nullable")]
    pub priority: i64,
    /// True for a periodic job.
    #[serde(default, deserialize_with = "nullable")]
    pub periodic: bool,
    /// True for a parameterized job.
    #[serde(default, deserialize_with = "nullable")]
    pub parameterized_job: bool,
    /// True when the job is stopped.
    #[serde(default, deserialize_with = "nullable")]
    pub stop: bool,
    /// `pending`, `running` or `dead`.
    #[serde(default, deserialize_with = "nullable")]
    pub status: String,
    /// Human-readable status detail.
    #[serde(default, deserialize_with = "nullable")]
    pub status_description: String,
    /// Per-task-group allocation counts, when Nomad includes them.
    #[serde(default, deserialize_with = "nullable")]
    pub job_summary: Option<JobSummary>,
    /// Raft index at creation.
    #[serde(default, deserialize_with = "nullable")]
    pub create_index: u64,
    /// Raft index of the last change of any kind.
    #[serde(default, deserialize_with = "nullable")]
    pub modify_index: u64,
    /// Raft index of the last spec change.
    #[serde(default, deserialize_with = "nullable")]
    pub job_modify_index: u64,
    /// Submission time, Unix nanoseconds.
    #[serde(default, deserialize_with = "nullable")]
    pub submit_time: i64,
}

/// `GET /v1/job/:id/summary`: allocation counts per task group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobSummary {
    /// Job ID.
    #[serde(rename = "JobID", default, deserialize_with = "nullable")]
    pub job_id: String,
    /// Namespace.
    #[serde(default, deserialize_with = "nullable")]
    pub namespace: String,
    /// Counts per task group name.
    #[serde(default, deserialize_with = "nullable")]
    pub summary: NamedMap<TaskGroupSummary>,
    /// Counts of child jobs (periodic and parameterized parents).
    #[serde(default, deserialize_with = "nullable")]
    pub children: Option<JobChildrenSummary>,
    /// Raft index at creation.
    #[serde(default, deserialize_with = "nullable")]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(default, deserialize_with = "nullable")]
    pub modify_index: u64,
}

/// Allocation counts of one task group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskGroupSummary {
    /// Waiting to be placed.
    #[serde(default, deserialize_with = "nullable")]
    pub queued: u64,
    /// Finished successfully.
    #[serde(default, deserialize_with = "nullable")]
    pub complete: u64,
    /// Failed.
    #[serde(default, deserialize_with = "nullable")]
    pub failed: u64,
    /// Running.
    #[serde(default, deserialize_with = "nullable")]
    pub running: u64,
    /// Placed, not running yet.
    #[serde(default, deserialize_with = "nullable")]
    pub starting: u64,
    /// On a node that was lost.
    #[serde(default, deserialize_with = "nullable")]
    pub lost: u64,
    /// On a disconnected node (Nomad 1.3+).
    #[serde(default, deserialize_with = "nullable")]
    pub unknown: u64,
}

/// Counts of child jobs by status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobChildrenSummary {
    /// Pending children.
    #[serde(default, deserialize_with = "nullable")]
    pub pending: u64,
    /// Running children.
    #[serde(default, deserialize_with = "nullable")]
    pub running: u64,
    /// Dead children.
    #[serde(default, deserialize_with = "nullable")]
    pub dead: u64,
}

/// Answer of register (`POST /v1/job/:id`) and revert (`POST /v1/job/:id/revert`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobRegisterResponse {
    /// Evaluation created (empty for periodic and parameterized jobs).
    #[serde(rename = "EvalID", default, deserialize_with = "nullable")]
    pub eval_id: String,
    /// Raft index of the evaluation.
    #[serde(default, deserialize_with = "nullable")]
    pub eval_create_index: u64,
    /// The job's new `JobModifyIndex` (the next check-and-set value).
    #[serde(default, deserialize_with = "nullable")]
    pub job_modify_index: u64,
    /// Warnings Nomad attached (deprecated fields and the like).
    #[serde(default, deserialize_with = "nullable")]
    pub warnings: String,
    /// Raft index of the write (body `Index`, else `X-Nomad-Index`).
    #[serde(default, deserialize_with = "nullable")]
    pub index: u64,
}

/// Answer of deregister (`DELETE /v1/job/:id`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobDeregisterResponse {
    /// Evaluation created.
    #[serde(rename = "EvalID", default, deserialize_with = "nullable")]
    pub eval_id: String,
    /// Raft index of the evaluation.
    #[serde(default, deserialize_with = "nullable")]
    pub eval_create_index: u64,
    /// Raft index of the deregistration.
    #[serde(default, deserialize_with = "nullable")]
    pub job_modify_index: u64,
    /// Raft index of the write.
    #[serde(default, deserialize_with = "nullable")]
    pub index: u64,
}

/// Answer of `POST /v1/job/:id/stable`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobStabilityResponse {
    /// Raft index of the write.
    #[serde(default, deserialize_with = "nullable")]
    pub index: u64,
    /// Shown by older documentation instead of `Index`.
    #[serde(default, deserialize_with = "nullable")]
    pub job_modify_index: u64,
}

/// Answer of `POST /v1/job/:id/dispatch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobDispatchResponse {
    /// ID of the child job created. Required.
    #[serde(rename = "DispatchedJobID")]
    pub dispatched_job_id: String,
    /// Evaluation created.
    #[serde(rename = "EvalID", default, deserialize_with = "nullable")]
    pub eval_id: String,
    /// Raft index of the evaluation.
    #[serde(default, deserialize_with = "nullable")]
    pub eval_create_index: u64,
    /// Raft index of the child job's creation.
    #[serde(default, deserialize_with = "nullable")]
    pub job_create_index: u64,
    /// Raft index of the write.
    #[serde(default, deserialize_with = "nullable")]
    pub index: u64,
}

/// Answer of `POST /v1/job/:id/periodic/force`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PeriodicForceResponse {
    /// Evaluation created.
    #[serde(rename = "EvalID", default, deserialize_with = "nullable")]
    pub eval_id: String,
    /// Raft index of the evaluation.
    #[serde(default, deserialize_with = "nullable")]
    pub eval_create_index: u64,
    /// Raft index of the write.
    #[serde(default, deserialize_with = "nullable")]
    pub index: u64,
}
