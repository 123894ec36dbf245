//! Evaluations: the scheduler's units of work.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::nullable;
use super::plan::AllocationMetric;

/// One evaluation (`GET /v1/job/:id/evaluations`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Evaluation {
    /// Evaluation ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Namespace.
    pub namespace: String,
    /// Priority.
    pub priority: i64,
    /// Scheduler type (`service`, `batch`, `system`, `_core`).
    #[serde(rename = "Type")]
    pub r#type: String,
    /// What caused it (`job-register`, `deployment-watcher`, `alloc-failure`...).
    pub triggered_by: String,
    /// Job ID.
    #[serde(rename = "JobID")]
    pub job_id: String,
    /// The job's `JobModifyIndex` it evaluated.
    pub job_modify_index: u64,
    /// Node ID (node-triggered evaluations).
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// `pending`, `blocked`, `complete`, `failed`, `canceled`.
    pub status: String,
    /// Status detail.
    pub status_description: String,
    /// Deployment it belongs to, if any.
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    /// Follow-up evaluation.
    pub next_eval: String,
    /// Evaluation this one follows.
    pub previous_eval: String,
    /// Blocked evaluation created for allocations that could not be placed.
    pub blocked_eval: String,
    /// Placement failures per task group.
    #[serde(rename = "FailedTGAllocs", deserialize_with = "nullable")]
    pub failed_tg_allocs: BTreeMap<String, AllocationMetric>,
    /// Allocations still queued per task group.
    #[serde(deserialize_with = "nullable")]
    pub queued_allocations: BTreeMap<String, u64>,
    /// Raft index at creation.
    pub create_index: u64,
    /// Raft index of the last change.
    pub modify_index: u64,
}
