//! Allocations: instances of a task group placed on a node.

use std::ops::Deref;

use crate::named_map::NamedMap;
use serde::{Deserialize, Serialize};

use super::nullable;

/// One allocation as list endpoints return it (`GET /v1/allocations`,
/// `/v1/job/:id/allocations`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocationListStub {
    /// Allocation ID. Required.
    #[serde(rename = "ID")]
    pub id: String,
    /// Evaluation that placed it.
    #[serde(rename = "EvalID", default, deserialize_with = "nullable")]
    pub eval_id: String,
    /// Name such as `example.cache[0]`.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Namespace.
    #[serde(default, deserialize_with = "nullable")]
    pub namespace: String,
    /// Node it runs on.
    #[serde(rename = "NodeID", default, deserialize_with = "nullable")]
    pub node_id: String,
    /// Name of that node.
    #[serde(default, deserialize_with = "nullable")]
    pub node_name: String,
    /// Job ID.
    #[serde(rename = "JobID", default, deserialize_with = "nullable")]
    pub job_id: String,
    /// Job type.
    #[serde(default, deserialize_with = "nullable")]
    pub job_type: String,
    /// Job version it runs.
    #[serde(default, deserialize_with = "nullable")]
    pub job_version: u64,
    /// Task group name.
    #[serde(default, deserialize_with = "nullable")]
    pub task_group: String,
    /// What the scheduler wants: `run`, `stop`, `evict`.
    #[serde(default, deserialize_with = "nullable")]
    pub desired_status: String,
    /// Why.
    #[serde(default, deserialize_with = "nullable")]
    pub desired_description: String,
    /// What the client reports: `pending`, `running`, `complete`, `failed`, `lost`.
    #[serde(default, deserialize_with = "nullable")]
    pub client_status: String,
    /// Client status detail.
    #[serde(default, deserialize_with = "nullable")]
    pub client_description: String,
    /// State of each task.
    #[serde(default, deserialize_with = "nullable")]
    pub task_states: NamedMap<TaskState>,
    /// Health within its deployment, once known.
    #[serde(default, deserialize_with = "nullable")]
    pub deployment_status: Option<AllocDeploymentStatus>,
    /// Allocation this one replaced.
    #[serde(default, deserialize_with = "nullable")]
    pub previous_allocation: String,
    /// Allocation that replaced this one.
    #[serde(default, deserialize_with = "nullable")]
    pub next_allocation: String,
    /// Evaluation that will reschedule it.
    #[serde(rename = "FollowupEvalID", default, deserialize_with = "nullable")]
    pub followup_eval_id: String,
    /// Raft index at creation.
    #[serde(default, deserialize_with = "nullable")]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(default, deserialize_with = "nullable")]
    pub modify_index: u64,
    /// Creation time, Unix nanoseconds.
    #[serde(default, deserialize_with = "nullable")]
    pub create_time: i64,
    /// Last change, Unix nanoseconds.
    #[serde(default, deserialize_with = "nullable")]
    pub modify_time: i64,
}

/// One allocation as `GET /v1/allocation/:id` returns it: the stub fields and more.
///
/// Dereferences to its [`AllocationListStub`]. The full allocation has no `JobVersion`
/// or `JobType` of its own (only list entries do): they are taken from its `Job`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", from = "AllocationAnswer")]
pub struct Allocation {
    /// The fields shared with list entries.
    #[serde(flatten)]
    pub stub: AllocationListStub,
    /// Deployment that placed it.
    pub deployment_id: String,
    /// The job (as it was when placed), kept as JSON.
    pub job: Option<serde_json::Value>,
    /// Raft index of the last allocation (not client) change.
    pub alloc_modify_index: u64,
}

/// `GET /v1/allocation/:id` as sent, before the job's version and type are filled in.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AllocationAnswer {
    #[serde(flatten)]
    stub: AllocationListStub,
    #[serde(rename = "DeploymentID", default, deserialize_with = "nullable")]
    deployment_id: String,
    #[serde(default, deserialize_with = "nullable")]
    job: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "nullable")]
    alloc_modify_index: u64,
    #[serde(default, deserialize_with = "nullable")]
    job_version: Option<u64>,
    #[serde(default, deserialize_with = "nullable")]
    job_type: Option<String>,
}

impl From<AllocationAnswer> for Allocation {
    fn from(answer: AllocationAnswer) -> Self {
        let AllocationAnswer {
            mut stub,
            deployment_id,
            job,
            alloc_modify_index,
            job_version,
            job_type,
        } = answer;
        let from_job = |key: &str| job.as_ref().and_then(|j| j.get(key));
        stub.job_version = job_version
            .or_else(|| from_job("Version").and_then(serde_json::Value::as_u64))
            .unwrap_or_default();
        stub.job_type = job_type
            .or_else(|| {
                from_job("Type")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        Self {
            stub,
            deployment_id,
            job,
            alloc_modify_index,
        }
    }
}

impl Deref for Allocation {
    type Target = AllocationListStub;

    fn deref(&self) -> &AllocationListStub {
        &self.stub
    }
}

/// State of one task in an allocation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskState {
    /// `pending`, `running`, `dead`.
    #[serde(default, deserialize_with = "nullable")]
    pub state: String,
    /// True when the task failed.
    #[serde(default, deserialize_with = "nullable")]
    pub failed: bool,
    /// Restarts so far.
    #[serde(default, deserialize_with = "nullable")]
    pub restarts: u64,
    /// Last restart (RFC 3339); empty if none (`null` from Nomad 1.1.2).
    #[serde(default, deserialize_with = "nullable")]
    pub last_restart: String,
    /// Last start (RFC 3339); empty before the first start.
    #[serde(default, deserialize_with = "nullable")]
    pub started_at: String,
    /// Finish (RFC 3339); empty while running (`null` from Nomad 1.1.2).
    #[serde(default, deserialize_with = "nullable")]
    pub finished_at: String,
    /// Latest events, oldest first.
    #[serde(default, deserialize_with = "nullable")]
    pub events: Vec<TaskEvent>,
}

/// One task event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskEvent {
    /// Event type (`Received`, `Started`, `Terminated`, `Driver Failure`...).
    #[serde(rename = "Type", default, deserialize_with = "nullable")]
    pub r#type: String,
    /// Time, Unix nanoseconds.
    #[serde(default, deserialize_with = "nullable")]
    pub time: i64,
    /// Human-readable summary (Nomad 0.7+).
    #[serde(default, deserialize_with = "nullable")]
    pub display_message: String,
    /// Message.
    #[serde(default, deserialize_with = "nullable")]
    pub message: String,
    /// True if the event fails the task.
    #[serde(default, deserialize_with = "nullable")]
    pub fails_task: bool,
    /// Exit code of a terminated task.
    #[serde(default, deserialize_with = "nullable")]
    pub exit_code: i64,
    /// Signal of a terminated task.
    #[serde(default, deserialize_with = "nullable")]
    pub signal: i64,
    /// Why the task restarts.
    #[serde(default, deserialize_with = "nullable")]
    pub restart_reason: String,
    /// Setup failure.
    #[serde(default, deserialize_with = "nullable")]
    pub setup_error: String,
    /// Driver failure.
    #[serde(default, deserialize_with = "nullable")]
    pub driver_error: String,
    /// Driver message (e.g. image download).
    #[serde(default, deserialize_with = "nullable")]
    pub driver_message: String,
    /// Kill failure.
    #[serde(default, deserialize_with = "nullable")]
    pub kill_error: String,
    /// Why the task was killed.
    #[serde(default, deserialize_with = "nullable")]
    pub kill_reason: String,
    /// Artifact download failure.
    #[serde(default, deserialize_with = "nullable")]
    pub download_error: String,
    /// Validation failure.
    #[serde(default, deserialize_with = "nullable")]
    pub validation_error: String,
    /// Sibling task whose failure killed this one.
    #[serde(default, deserialize_with = "nullable")]
    pub failed_sibling: String,
    /// Vault failure.
    #[serde(default, deserialize_with = "nullable")]
    pub vault_error: String,
    /// Structured details (Nomad 0.9+).
    #[serde(default, deserialize_with = "nullable")]
    pub details: NamedMap<String>,
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
#[serde(rename_all = "PascalCase")]
pub struct AllocDeploymentStatus {
    /// `Some(true)` healthy, `Some(false)` unhealthy, `None` not decided yet.
    #[serde(default, deserialize_with = "nullable")]
    pub healthy: Option<bool>,
    /// When health was decided (RFC 3339); empty while undecided.
    #[serde(default, deserialize_with = "nullable")]
    pub timestamp: String,
    /// True for a canary.
    #[serde(default, deserialize_with = "nullable")]
    pub canary: bool,
    /// Raft index of the last change.
    #[serde(default, deserialize_with = "nullable")]
    pub modify_index: u64,
}
