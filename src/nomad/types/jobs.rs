//! Job list stubs, summaries and the answers of job write endpoints.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::nullable;

/// One entry of `GET /v1/jobs`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobListStub {
    /// Job ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Parent job ID (dispatched and periodic children), empty otherwise.
    #[serde(rename = "ParentID")]
    pub parent_id: String,
    /// Job name.
    pub name: String,
    /// Namespace (Nomad 0.7+).
    pub namespace: String,
    /// `service`, `batch`, `system`, `sysbatch`.
    #[serde(rename = "Type")]
    pub r#type: String,
    /// Scheduling priority.
    pub priority: i64,
    /// True for a periodic job.
    pub periodic: bool,
    /// True for a parameterized job.
    pub parameterized_job: bool,
    /// True when the job is stopped.
    pub stop: bool,
    /// `pending`, `running` or `dead`.
    pub status: String,
    /// Human-readable status detail.
    pub status_description: String,
    /// Per-task-group allocation counts, when Nomad includes them.
    #[serde(deserialize_with = "nullable")]
    pub job_summary: Option<JobSummary>,
    /// Raft index at creation.
    pub create_index: u64,
    /// Raft index of the last change of any kind.
    pub modify_index: u64,
    /// Raft index of the last spec change.
    pub job_modify_index: u64,
    /// Submission time, Unix nanoseconds.
    pub submit_time: i64,
}

/// `GET /v1/job/:id/summary`: allocation counts per task group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobSummary {
    /// Job ID.
    #[serde(rename = "JobID")]
    pub job_id: String,
    /// Namespace.
    pub namespace: String,
    /// Counts per task group name.
    #[serde(deserialize_with = "nullable")]
    pub summary: BTreeMap<String, TaskGroupSummary>,
    /// Counts of child jobs (periodic and parameterized parents).
    #[serde(deserialize_with = "nullable")]
    pub children: Option<JobChildrenSummary>,
    /// Raft index at creation.
    pub create_index: u64,
    /// Raft index of the last change.
    pub modify_index: u64,
}

/// Allocation counts of one task group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct TaskGroupSummary {
    /// Waiting to be placed.
    pub queued: u64,
    /// Finished successfully.
    pub complete: u64,
    /// Failed.
    pub failed: u64,
    /// Running.
    pub running: u64,
    /// Placed, not running yet.
    pub starting: u64,
    /// On a node that was lost.
    pub lost: u64,
    /// On a disconnected node (Nomad 1.3+).
    pub unknown: u64,
}

/// Counts of child jobs by status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobChildrenSummary {
    /// Pending children.
    pub pending: u64,
    /// Running children.
    pub running: u64,
    /// Dead children.
    pub dead: u64,
}

/// Answer of register (`POST /v1/job/:id`) and revert (`POST /v1/job/:id/revert`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobRegisterResponse {
    /// Evaluation created (empty for periodic and parameterized jobs).
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    /// Raft index of the evaluation.
    pub eval_create_index: u64,
    /// The job's new `JobModifyIndex` (the next check-and-set value).
    pub job_modify_index: u64,
    /// Warnings Nomad attached (deprecated fields and the like).
    pub warnings: String,
    /// Raft index of the write (body `Index`, else `X-Nomad-Index`).
    pub index: u64,
}

/// Answer of deregister (`DELETE /v1/job/:id`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobDeregisterResponse {
    /// Evaluation created.
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    /// Raft index of the evaluation.
    pub eval_create_index: u64,
    /// Raft index of the deregistration.
    pub job_modify_index: u64,
    /// Raft index of the write.
    pub index: u64,
}

/// Answer of `POST /v1/job/:id/stable`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobStabilityResponse {
    /// Raft index of the write.
    pub index: u64,
    /// Shown by older documentation instead of `Index`.
    pub job_modify_index: u64,
}

/// Answer of `POST /v1/job/:id/dispatch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobDispatchResponse {
    /// ID of the child job created.
    #[serde(rename = "DispatchedJobID")]
    pub dispatched_job_id: String,
    /// Evaluation created.
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    /// Raft index of the evaluation.
    pub eval_create_index: u64,
    /// Raft index of the child job's creation.
    pub job_create_index: u64,
    /// Raft index of the write.
    pub index: u64,
}

/// Answer of `POST /v1/job/:id/periodic/force`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct PeriodicForceResponse {
    /// Evaluation created.
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    /// Raft index of the evaluation.
    pub eval_create_index: u64,
    /// Raft index of the write.
    pub index: u64,
}
