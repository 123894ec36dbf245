//! Allocations: instances of a task group placed on a node.

use std::collections::BTreeMap;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use super::nullable;

/// One allocation as list endpoints return it (`GET /v1/allocations`,
/// `/v1/job/:id/allocations`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocationListStub {
    /// Allocation ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Evaluation that placed it.
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    /// Name such as `example.cache[0]`.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Node it runs on.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// Name of that node.
    pub node_name: String,
    /// Job ID.
    #[serde(rename = "JobID")]
    pub job_id: String,
    /// Job type.
    pub job_type: String,
    /// Job version it runs.
    pub job_version: u64,
    /// Task group name.
    pub task_group: String,
    /// What the scheduler wants: `run`, `stop`, `evict`.
    pub desired_status: String,
    /// Why.
    pub desired_description: String,
    /// What the client reports: `pending`, `running`, `complete`, `failed`, `lost`.
    pub client_status: String,
    /// Client status detail.
    pub client_description: String,
    /// State of each task.
    #[serde(deserialize_with = "nullable")]
    pub task_states: BTreeMap<String, TaskState>,
    /// Health within its deployment, once known.
    #[serde(deserialize_with = "nullable")]
    pub deployment_status: Option<AllocDeploymentStatus>,
    /// Allocation this one replaced.
    pub previous_allocation: String,
    /// Allocation that replaced this one.
    pub next_allocation: String,
    /// Evaluation that will reschedule it.
    #[serde(rename = "FollowupEvalID")]
    pub followup_eval_id: String,
    /// Raft index at creation.
    pub create_index: u64,
    /// Raft index of the last change.
    pub modify_index: u64,
    /// Creation time, Unix nanoseconds.
    pub create_time: i64,
    /// Last change, Unix nanoseconds.
    pub modify_time: i64,
}

/// One allocation as `GET /v1/allocation/:id` returns it: the stub fields and more.
///
/// Dereferences to its [`AllocationListStub`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Allocation {
    /// The fields shared with list entries.
    #[serde(flatten)]
    pub stub: AllocationListStub,
    /// Deployment that placed it.
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    /// The job (as it was when placed), kept as JSON.
    #[serde(deserialize_with = "nullable")]
    pub job: Option<serde_json::Value>,
    /// Raft index of the last allocation (not client) change.
    pub alloc_modify_index: u64,
}

impl Deref for Allocation {
    type Target = AllocationListStub;

    fn deref(&self) -> &AllocationListStub {
        &self.stub
    }
}

/// State of one task in an allocation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct TaskState {
    /// `pending`, `running`, `dead`.
    pub state: String,
    /// True when the task failed.
    pub failed: bool,
    /// Restarts so far.
    pub restarts: u64,
    /// Last restart (RFC 3339; zero time if none).
    pub last_restart: String,
    /// Last start (RFC 3339).
    pub started_at: String,
    /// Finish (RFC 3339; zero time while running).
    pub finished_at: String,
    /// Latest events, oldest first.
    #[serde(deserialize_with = "nullable")]
    pub events: Vec<TaskEvent>,
}

/// One task event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct TaskEvent {
    /// Event type (`Received`, `Started`, `Terminated`, `Driver Failure`...).
    #[serde(rename = "Type")]
    pub r#type: String,
    /// Time, Unix nanoseconds.
    pub time: i64,
    /// Human-readable summary (Nomad 0.7+).
    pub display_message: String,
    /// Message.
    pub message: String,
    /// True if the event fails the task.
    pub fails_task: bool,
    /// Exit code of a terminated task.
    pub exit_code: i64,
    /// Signal of a terminated task.
    pub signal: i64,
    /// Why the task restarts.
    pub restart_reason: String,
    /// Setup failure.
    pub setup_error: String,
    /// Driver failure.
    pub driver_error: String,
    /// Driver message (e.g. image download).
    pub driver_message: String,
    /// Kill failure.
    pub kill_error: String,
    /// Why the task was killed.
    pub kill_reason: String,
    /// Artifact download failure.
    pub download_error: String,
    /// Validation failure.
    pub validation_error: String,
    /// Sibling task whose failure killed this one.
    pub failed_sibling: String,
    /// Vault failure.
    pub vault_error: String,
    /// Structured details (Nomad 0.9+).
    #[serde(deserialize_with = "nullable")]
    pub details: BTreeMap<String, String>,
}

impl TaskEvent {
    /// The most useful text of the event: display message, else message, else the first
    /// non-empty error field.
    pub fn summary(&self) -> &str {
        [
            &self.display_message,
            &self.message,
            &self.driver_error,
            &self.setup_error,
            &self.download_error,
            &self.validation_error,
            &self.kill_error,
            &self.vault_error,
            &self.driver_message,
        ]
        .into_iter()
        .find(|text| !text.is_empty())
        .map_or("", String::as_str)
    }
}

/// Health of an allocation within its deployment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocDeploymentStatus {
    /// `Some(true)` healthy, `Some(false)` unhealthy, `None` not decided yet.
    pub healthy: Option<bool>,
    /// When health was decided (RFC 3339).
    pub timestamp: String,
    /// True for a canary.
    pub canary: bool,
    /// Raft index of the last change.
    pub modify_index: u64,
}
