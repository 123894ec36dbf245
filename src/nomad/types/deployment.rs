//! Deployments: the rollout of one job version.

use crate::named_map::NamedMap;
use serde::{Deserialize, Serialize};

use super::nullable;

/// One deployment (`GET /v1/deployments`, `/v1/job/:id/deployment(s)`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Deployment {
    /// Deployment ID. Required.
    #[serde(rename = "ID")]
    pub id: String,
    /// Namespace.
    #[serde(default, deserialize_with = "nullable")]
    pub namespace: String,
    /// Job ID.
    #[serde(rename = "JobID", default, deserialize_with = "nullable")]
    pub job_id: String,
    /// The job version this deployment rolls out. Required: read as 0 it would blame
    /// version 0 for another version's failure.
    pub job_version: u64,
    /// The job's `ModifyIndex` when the deployment was created.
    #[serde(default, deserialize_with = "nullable")]
    pub job_modify_index: u64,
    /// The job's `JobModifyIndex` (spec index) this deployment rolls out.
    #[serde(default, deserialize_with = "nullable")]
    pub job_spec_modify_index: u64,
    /// The job's `CreateIndex`.
    #[serde(default, deserialize_with = "nullable")]
    pub job_create_index: u64,
    /// `running`, `paused`, `failed`, `successful`, `cancelled` (and newer:
    /// `pending`, `blocked`, `initializing`, `unblocking`).
    #[serde(default, deserialize_with = "nullable")]
    pub status: String,
    /// Status detail, e.g. `Failed due to progress deadline - rolling back to job version 2`.
    #[serde(default, deserialize_with = "nullable")]
    pub status_description: String,
    /// Progress per task group.
    #[serde(default, deserialize_with = "nullable")]
    pub task_groups: NamedMap<DeploymentState>,
    /// Raft index at creation.
    #[serde(default, deserialize_with = "nullable")]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(default, deserialize_with = "nullable")]
    pub modify_index: u64,
}

impl Deployment {
    /// True while the deployment may still change (`running`, `paused`, `pending`,
    /// `blocked`, `initializing`, `unblocking`).
    pub fn is_active(&self) -> bool {
        matches!(
            self.status.as_str(),
            "running" | "paused" | "pending" | "blocked" | "initializing" | "unblocking"
        )
    }

    /// The version Nomad's own `auto_revert` is rolling back to, read from a status
    /// description ending in `- rolling back to job version N`.
    pub fn auto_revert_version(&self) -> Option<u64> {
        let (_, tail) = self
            .status_description
            .rsplit_once("rolling back to job version")?;
        tail.trim().parse().ok()
    }
}

/// Progress of one task group in a deployment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeploymentState {
    /// Nomad re-registers the last stable version when this deployment fails.
    #[serde(default, deserialize_with = "nullable")]
    pub auto_revert: bool,
    /// Canaries are promoted automatically once healthy.
    #[serde(default, deserialize_with = "nullable")]
    pub auto_promote: bool,
    /// Canaries were promoted.
    #[serde(default, deserialize_with = "nullable")]
    pub promoted: bool,
    /// Canaries wanted.
    #[serde(default, deserialize_with = "nullable")]
    pub desired_canaries: u64,
    /// Allocations wanted.
    #[serde(default, deserialize_with = "nullable")]
    pub desired_total: u64,
    /// Allocation IDs of the canaries placed (`null` when none).
    #[serde(default, deserialize_with = "nullable")]
    pub placed_canaries: Vec<String>,
    /// Allocations placed.
    #[serde(default, deserialize_with = "nullable")]
    pub placed_allocs: u64,
    /// Allocations healthy.
    #[serde(default, deserialize_with = "nullable")]
    pub healthy_allocs: u64,
    /// Allocations unhealthy.
    #[serde(default, deserialize_with = "nullable")]
    pub unhealthy_allocs: u64,
    /// Progress deadline, nanoseconds (0 = none).
    #[serde(default, deserialize_with = "nullable")]
    pub progress_deadline: i64,
    /// Time by which progress must be made (RFC 3339); empty without a progress deadline
    /// or once the deployment ended (`null` from Nomad 1.1.2).
    #[serde(default, deserialize_with = "nullable")]
    pub require_progress_by: String,
}

/// Answer of a deployment update such as a promotion.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeploymentUpdateResponse {
    /// The evaluation the update created.
    #[serde(rename = "EvalID", default, deserialize_with = "nullable")]
    pub eval_id: String,
    /// The deployment's index after the update.
    #[serde(default, deserialize_with = "nullable")]
    pub deployment_modify_index: u64,
}
