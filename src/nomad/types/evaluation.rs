//! Evaluations: the scheduler's units of work.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::nullable;
use super::plan::AllocationMetric;

/// One evaluation (`GET /v1/job/:id/evaluations`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Evaluation {
    /// Evaluation ID. Required.
    #[serde(rename = "ID")]
    pub id: String,
    /// Namespace.
    #[serde(default, deserialize_with = "nullable")]
    pub namespace: String,
    /// Priority.
    #[serde(default, deserialize_with = "nullable")]
    pub priority: i64,
    /// Scheduler type (`service`, `batch`, `system`, `_core`).
    #[serde(rename = "Type", default, deserialize_with = "nullable")]
    pub r#type: String,
    /// What caused it (`job-register`, `deployment-watcher`, `alloc-failure`...).
    #[serde(default, deserialize_with = "nullable")]
    pub triggered_by: String,
    /// Job ID.
    #[serde(rename = "JobID", default, deserialize_with = "nullable")]
    pub job_id: String,
    /// The job's `JobModifyIndex` it evaluated.
    #[serde(default, deserialize_with = "nullable")]
    pub job_modify_index: u64,
    /// Node ID (node-triggered evaluations).
    #[serde(rename = "NodeID", default, deserialize_with = "nullable")]
    pub node_id: String,
    /// `pending`, `blocked`, `complete`, `failed`, `canceled`.
    #[serde(default, deserialize_with = "nullable")]
    pub status: String,
    /// Status detail.
    #[serde(default, deserialize_with = "nullable")]
    pub status_description: String,
    /// Deployment it belongs to, if any.
    #[serde(rename = "DeploymentID", default, deserialize_with = "nullable")]
    pub deployment_id: String,
    /// Follow-up evaluation.
    #[serde(default, deserialize_with = "nullable")]
    pub next_eval: String,
    /// Evaluation this one follows.
    #[serde(default, deserialize_with = "nullable")]
    pub previous_eval: String,
    /// Blocked evaluation created for allocations that could not be placed.
    #[serde(default, deserialize_with = "nullable")]
    pub blocked_eval: String,
    /// Placement failures per task group.
    #[serde(rename = "FailedTGAllocs", default, deserialize_with = "nullable")]
    pub failed_tg_allocs: BTreeMap<String, AllocationMetric>,
    /// Allocations still queued per task group.
    #[serde(default, deserialize_with = "nullable")]
    pub queued_allocations: BTreeMap<String, u64>,
    /// Raft index at creation.
    #[serde(default, deserialize_with = "nullable")]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(default, deserialize_with = "nullable")]
    pub modify_index: u64,
}
