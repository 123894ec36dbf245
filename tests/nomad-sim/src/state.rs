//! The simulator's in-memory state store: jobs (with versions), allocations,
//! deployments and evaluations, one Raft-like index, per-table indexes with
//! watch channels, and JSON rendering in Nomad 1.1's API shapes.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, watch};

use crate::cached::Cached;
use crate::canonical::{Obj, s};
pub(crate) use crate::placement::Node;
use crate::placement::SchedCtx;
use crate::util::{now_ns, rfc3339};

/// `(namespace, job ID)`.
pub(crate) type JobKey = (String, String);

/// Nomad keeps this many versions of a job (`structs.JobTrackedVersions`).
pub(crate) const TRACKED_VERSIONS: usize = 6;

/// Tables whose last write index drives blocking queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Table {
    Jobs,
    Summary,
    Allocs,
    Deployments,
    Evals,
    Namespaces,
    /// Nomad's `scaling_event` table (`POST /v1/job/:id/scale`).
    ScalingEvents,
}

/// One watch channel per table; the value is the table's last write index.
pub(crate) struct Watchers {
    pub jobs: watch::Sender<u64>,
    pub summary: watch::Sender<u64>,
    pub allocs: watch::Sender<u64>,
    pub deployments: watch::Sender<u64>,
    pub evals: watch::Sender<u64>,
    pub namespaces: watch::Sender<u64>,
    pub scaling_events: watch::Sender<u64>,
}

impl Watchers {
    pub(crate) fn new() -> Self {
        Self {
            jobs: watch::channel(0).0,
            summary: watch::channel(0).0,
            allocs: watch::channel(0).0,
            deployments: watch::channel(0).0,
            evals: watch::channel(0).0,
            namespaces: watch::channel(0).0,
            scaling_events: watch::channel(0).0,
        }
    }

    pub(crate) fn sender(&self, t: Table) -> &watch::Sender<u64> {
        match t {
            Table::Jobs => &self.jobs,
            Table::Summary => &self.summary,
            Table::Allocs => &self.allocs,
            Table::Deployments => &self.deployments,
            Table::Evals => &self.evals,
            Table::Namespaces => &self.namespaces,
            Table::ScalingEvents => &self.scaling_events,
        }
    }
}

/// One stored job version (Nomad's `job_version` table): the job as it was written,
/// status at that moment included; only a stability change writes it again.
#[derive(Clone, Debug)]
pub(crate) struct JobVersion {
    pub spec: Arc<Obj>,
    pub version: u64,
    pub stable: bool,
    pub submit_time: i64,
    pub create_index: u64,
    pub modify_index: u64,
    pub job_modify_index: u64,
    pub status: String,
}

/// Per-group counters of a job summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct GroupSummary {
    pub queued: u64,
    pub complete: u64,
    pub failed: u64,
    pub running: u64,
    pub starting: u64,
    pub lost: u64,
}

/// Child job counters (periodic / parameterized parents).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Children {
    pub pending: u64,
    pub running: u64,
    pub dead: u64,
}

/// A registered job: its current spec plus server-managed fields.
#[derive(Clone, Debug)]
pub(crate) struct JobEntry {
    pub spec: Arc<Obj>,
    pub version: u64,
    pub stable: bool,
    pub submit_time: i64,
    pub status: String,
    pub status_description: String,
    pub create_index: u64,
    pub modify_index: u64,
    pub job_modify_index: u64,
    /// Oldest first, at most [`TRACKED_VERSIONS`].
    pub versions: Vec<JobVersion>,
    pub summary: BTreeMap<String, GroupSummary>,
    pub children: Children,
    pub summary_create_index: u64,
    pub summary_modify_index: u64,
    /// Whether the jobs table holds the very object its current version entry holds:
    /// Nomad's `upsertJobImpl` inserts one pointer into both tables, a status update
    /// inserts a copy into the jobs table only. `POST /v1/job/:id/scale` changes the
    /// group count of the job it reads in place, so an aliased version entry changes too.
    pub aliased: bool,
    /// The summary's `Queued` per group: the `QueuedAllocations` of the job's last
    /// completed evaluation, less the allocations placed since.
    pub queued: BTreeMap<String, u64>,
    /// A constraint of the stored job was reported as filtering the node. Nomad caches
    /// the reported text inside the stored job's constraint, so the same spec sent again
    /// no longer equals it: an identical register writes a new version.
    pub constraint_cached: bool,
}

impl JobEntry {
    pub(crate) fn job_type(&self) -> &str {
        s(&self.spec, "Type").unwrap_or("service")
    }

    pub(crate) fn stopped(&self) -> bool {
        crate::canonical::b(&self.spec, "Stop")
    }

    pub(crate) fn is_parent(&self) -> bool {
        (self
            .spec
            .get("Periodic")
            .is_some_and(|p| p.get("Enabled").and_then(Value::as_bool).unwrap_or(false))
            || self
                .spec
                .get("ParameterizedJob")
                .is_some_and(Value::is_object))
            && !crate::canonical::b(&self.spec, "Dispatched")
    }
}

/// A task event (`structs.TaskEvent`).
#[derive(Clone, Debug, Default)]
pub(crate) struct TaskEvent {
    pub kind: String,
    pub time: i64,
    pub display: String,
    pub details: BTreeMap<String, String>,
    pub exit_code: i64,
    pub fails_task: bool,
    pub restart_reason: String,
    pub start_delay: i64,
    pub kill_timeout: i64,
    pub signal: i64,
    pub message: String,
}

impl TaskEvent {
    pub(crate) fn new(kind: &str, display: &str) -> Self {
        Self {
            kind: kind.to_string(),
            time: now_ns(),
            display: display.to_string(),
            ..Default::default()
        }
    }

    pub(crate) fn detail(mut self, k: &str, v: impl ToString) -> Self {
        self.details.insert(k.to_string(), v.to_string());
        self
    }

    /// An event with a message (`TaskEvent.SetMessage`): `Message`, `DisplayMessage`
    /// and `Details.message` all carry it.
    pub(crate) fn message(mut self, m: &str) -> Self {
        self.message = m.to_string();
        self.display = m.to_string();
        self.details.insert("message".into(), m.to_string());
        self
    }

    fn to_json(&self) -> Value {
        json!({
            "Type": self.kind, "Time": self.time, "Message": self.message,
            "DisplayMessage": self.display, "Details": self.details,
            "FailsTask": self.fails_task, "RestartReason": self.restart_reason,
            "SetupError": "", "DriverError": "", "ExitCode": self.exit_code, "Signal": self.signal,
            "KillTimeout": self.kill_timeout, "KillError": "", "KillReason": "",
            "StartDelay": self.start_delay, "DownloadError": "", "ValidationError": "",
            "DiskLimit": 0, "FailedSibling": "", "VaultError": "", "TaskSignalReason": "",
            "TaskSignal": "", "DriverMessage": "", "GenericSource": ""
        })
    }
}

/// A time as Nomad's task states and deployments encode it: RFC 3339, or `null` for
/// none (Go's zero time behind a pointer).
pub(crate) fn time_or_null(ns: i64) -> Value {
    if ns == 0 {
        Value::Null
    } else {
        Value::String(rfc3339(ns))
    }
}

/// How a simulated task behaves once started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Behavior {
    /// Exit after this many (simulated) nanoseconds; `None` runs forever.
    pub exit_after_ns: Option<u64>,
    pub exit_code: i64,
}

/// The simulated state of one task of an allocation.
#[derive(Clone, Debug)]
pub(crate) struct TaskSim {
    pub state: String,
    pub failed: bool,
    pub restarts: u64,
    pub last_restart: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub events: Vec<TaskEvent>,
    pub behavior: Behavior,
    /// Bumped on every transition so stale timers are ignored.
    pub gn: u64,
}

impl TaskSim {
    fn to_json(&self) -> Value {
        json!({
            "State": self.state, "Failed": self.failed, "Restarts": self.restarts,
            "LastRestart": time_or_null(self.last_restart), "StartedAt": time_or_null(self.started_at),
            "FinishedAt": time_or_null(self.finished_at),
            "Events": self.events.iter().map(TaskEvent::to_json).collect::<Vec<_>>(),
            "TaskHandle": null
        })
    }
}

/// `structs.AllocDeploymentStatus`.
#[derive(Clone, Debug)]
pub(crate) struct AllocHealth {
    pub healthy: Option<bool>,
    pub timestamp: i64,
    pub canary: bool,
    pub modify_index: u64,
}

/// The server-managed fields of the job an allocation embeds.
#[derive(Clone, Debug, Default)]
pub(crate) struct JobSnap {
    pub status: String,
    pub stable: bool,
    pub submit_time: i64,
    pub modify_index: u64,
}

/// A simulated allocation.
#[derive(Clone, Debug)]
pub(crate) struct Alloc {
    pub id: String,
    pub eval_id: String,
    pub name: String,
    pub index: u64,
    pub namespace: String,
    pub job_id: String,
    pub task_group: String,
    pub job: Arc<Obj>,
    pub job_snap: JobSnap,
    pub job_version: u64,
    pub job_create_index: u64,
    pub job_modify_index: u64,
    pub desired_status: String,
    pub desired_description: String,
    pub client_status: String,
    pub client_description: String,
    pub tasks: BTreeMap<String, TaskSim>,
    pub deployment_id: String,
    pub health: Option<AllocHealth>,
    pub canary: bool,
    pub previous_allocation: String,
    pub next_allocation: String,
    pub reschedule_times: Vec<i64>,
    /// `DesiredTransition.Reschedule`: set by the deployment watcher on an unhealthy
    /// allocation of a group with a progress deadline.
    pub reschedule_transition: bool,
    /// When a failed allocation may be replaced (unix ns), if reschedulable.
    pub reschedule_at: Option<i64>,
    pub health_gen: u64,
    /// Bumped each time the allocation joins a deployment (guards health deadlines).
    pub deploy_epoch: u64,
    pub create_index: u64,
    pub modify_index: u64,
    pub alloc_modify_index: u64,
    pub create_time: i64,
    pub modify_time: i64,
}

impl Alloc {
    /// Terminal per `structs.Allocation.TerminalStatus`.
    pub(crate) fn terminal(&self) -> bool {
        matches!(self.desired_status.as_str(), "stop" | "evict") || self.client_terminal()
    }

    pub(crate) fn client_terminal(&self) -> bool {
        matches!(self.client_status.as_str(), "complete" | "failed" | "lost")
    }

    pub(crate) fn key(&self) -> JobKey {
        (self.namespace.clone(), self.job_id.clone())
    }

    fn deployment_status_json(&self) -> Value {
        match &self.health {
            None => Value::Null,
            Some(h) => json!({
                "Healthy": h.healthy, "Timestamp": rfc3339(h.timestamp),
                "Canary": h.canary, "ModifyIndex": h.modify_index
            }),
        }
    }

    fn task_states_json(&self) -> Value {
        let m: Map<String, Value> = self
            .tasks
            .iter()
            .map(|(k, t)| (k.clone(), t.to_json()))
            .collect();
        Value::Object(m)
    }

    fn reschedule_json(&self) -> Value {
        if self.reschedule_times.is_empty() {
            return Value::Null;
        }
        let events: Vec<Value> = self
            .reschedule_times
            .iter()
            .map(|t| json!({"RescheduleTime": t, "PrevAllocID": "", "PrevNodeID": "", "Delay": 0}))
            .collect();
        json!({ "Events": events })
    }

    /// The client's description of its status (`getClientStatus`).
    fn client_description_json(&self) -> &str {
        if !self.client_description.is_empty() {
            return &self.client_description;
        }
        match self.client_status.as_str() {
            "pending" => "No tasks have started",
            "running" => "Tasks are running",
            "failed" => "Failed tasks",
            "complete" => "All tasks have completed",
            _ => "",
        }
    }

    fn desired_transition_json(&self) -> Value {
        json!({
            "Migrate": null, "ForceReschedule": null,
            "Reschedule": if self.reschedule_transition { json!(true) } else { Value::Null }
        })
    }

    /// The allocation list stub (`structs.AllocListStub`).
    pub(crate) fn stub_json(&self, node_id: &str, node_name: &str) -> Value {
        json!({
            "ID": self.id, "EvalID": self.eval_id, "Name": self.name, "Namespace": self.namespace,
            "NodeID": node_id, "NodeName": node_name, "JobID": self.job_id,
            "JobType": s(&self.job, "Type").unwrap_or("service"), "JobVersion": self.job_version,
            "TaskGroup": self.task_group, "DesiredStatus": self.desired_status,
            "DesiredDescription": self.desired_description, "ClientStatus": self.client_status,
            "ClientDescription": self.client_description_json(),
            "DesiredTransition": self.desired_transition_json(),
            "TaskStates": self.task_states_json(),
            "DeploymentStatus": self.deployment_status_json(),
            "FollowupEvalID": "", "RescheduleTracker": self.reschedule_json(),
            "PreemptedAllocations": null, "PreemptedByAllocation": "",
            "CreateIndex": self.create_index, "ModifyIndex": self.modify_index,
            "CreateTime": self.create_time, "ModifyTime": self.modify_time
        })
    }

    /// The full allocation (`structs.Allocation`) including its job. Nomad encodes it
    /// with `omitempty` on every top-level field: empty strings, zeros, `false`, `null`,
    /// empty maps and an all-null `DesiredTransition` are left out.
    pub(crate) fn full_json(&self, node_id: &str, node_name: &str, job: Value) -> Value {
        let g = crate::canonical::group(&self.job, &self.task_group);
        let empty = Map::new();
        let ts: Vec<&Map<String, Value>> = crate::canonical::tasks(g.unwrap_or(&empty)).collect();
        let disk = g
            .and_then(|g| crate::canonical::o(g, "EphemeralDisk"))
            .and_then(|d| crate::canonical::u(d, "SizeMB"))
            .unwrap_or(0);
        let res = |t: &Map<String, Value>, k: &str| {
            crate::canonical::o(t, "Resources")
                .and_then(|r| crate::canonical::u(r, k))
                .unwrap_or(0)
        };
        let mut allocated = Map::new();
        let mut lifecycles = Map::new();
        let mut task_resources = Map::new();
        let (mut cpu, mut cores, mut mem, mut mem_max) = (0, 0, 0, 0);
        for t in &ts {
            let name = s(t, "Name").unwrap_or_default().to_string();
            let (c, m, mm) = (res(t, "CPU"), res(t, "MemoryMB"), res(t, "MemoryMaxMB"));
            cpu += c;
            cores += res(t, "Cores");
            mem += m;
            mem_max += mm.max(m);
            allocated.insert(
                name.clone(),
                json!({"Cpu": {"CpuShares": c, "ReservedCores": null}, "Devices": null,
                       "Memory": {"MemoryMB": m, "MemoryMaxMB": mm}, "Networks": null}),
            );
            lifecycles.insert(
                name.clone(),
                t.get("Lifecycle").cloned().unwrap_or(Value::Null),
            );
            task_resources.insert(name, t.get("Resources").cloned().unwrap_or(Value::Null));
        }
        // A stand-in for the scheduler's bin-packing score (the real one depends on
        // the node's capacity).
        let score = 0.5;
        let mut v = self.stub_json(node_id, node_name);
        if let Value::Object(m) = &mut v {
            m.remove("JobType");
            m.remove("JobVersion");
            m.insert("Job".into(), job);
            m.insert("DeploymentID".into(), json!(self.deployment_id));
            m.insert("PreviousAllocation".into(), json!(self.previous_allocation));
            m.insert("NextAllocation".into(), json!(self.next_allocation));
            m.insert("AllocModifyIndex".into(), json!(self.alloc_modify_index));
            m.insert(
                "Metrics".into(),
                json!({
                    "NodesEvaluated": 1, "NodesFiltered": 0, "NodesAvailable": {"dc1": 1},
                    "ClassFiltered": null, "ConstraintFiltered": null, "NodesExhausted": 0,
                    "ClassExhausted": null, "DimensionExhausted": null, "QuotaExhausted": null,
                    "ResourcesExhausted": null, "Scores": null,
                    "ScoreMetaData": [{"NodeID": node_id, "NormScore": score, "Scores": {
                        "binpack": score, "job-anti-affinity": 0.0, "node-affinity": 0.0,
                        "node-reschedule-penalty": 0.0}}],
                    "AllocationTime": 41000, "CoalescedFailures": 0
                }),
            );
            m.insert("TaskResources".into(), Value::Object(task_resources));
            m.insert(
                "AllocatedResources".into(),
                json!({
                    "Shared": {"DiskMB": disk, "Networks": null, "Ports": null},
                    "TaskLifecycles": lifecycles, "Tasks": allocated
                }),
            );
            m.insert(
                "Resources".into(),
                json!({
                    "CPU": cpu, "Cores": cores, "Devices": null, "DiskMB": disk, "IOPS": 0,
                    "MemoryMB": mem, "MemoryMaxMB": mem_max, "Networks": null
                }),
            );
            m.insert(
                "SharedResources".into(),
                json!({
                    "CPU": 0, "Cores": 0, "Devices": null, "DiskMB": disk, "IOPS": 0,
                    "MemoryMB": 0, "MemoryMaxMB": 0, "Networks": null
                }),
            );
            m.insert(
                "NetworkStatus".into(),
                json!({"Address": "", "DNS": null, "InterfaceName": ""}),
            );
            omit_empty(m, &["DesiredTransition"]);
        }
        v
    }
}

/// Go's `omitempty` on a struct's top-level fields (Nomad's `Allocation` and
/// `Evaluation`): drops empty strings, zeros, `false`, `null`, empty lists and maps, the
/// zero time, and the `structs` (by value) named in `by_value` whose fields are all
/// empty. A pointer to a struct is kept even when its fields are zero.
pub(crate) fn omit_empty(m: &mut Map<String, Value>, by_value: &[&str]) {
    fn empty(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::Number(n) => n.as_f64() == Some(0.0),
            Value::String(s) => s.is_empty() || s == "0001-01-01T00:00:00Z",
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
        }
    }
    m.retain(|k, v| {
        let all_empty =
            by_value.contains(&k.as_str()) && v.as_object().is_some_and(|o| o.values().all(empty));
        !empty(v) && !all_empty
    });
}

/// Per-group state of a deployment (`structs.DeploymentState`).
#[derive(Clone, Debug, Default)]
pub(crate) struct DeploymentGroup {
    pub auto_revert: bool,
    pub auto_promote: bool,
    pub promoted: bool,
    pub desired_canaries: u64,
    pub desired_total: u64,
    pub placed_canaries: Vec<String>,
    pub placed_allocs: u64,
    pub healthy_allocs: u64,
    pub unhealthy_allocs: u64,
    pub progress_deadline: u64,
    pub require_progress_by: i64,
}

/// A deployment.
#[derive(Clone, Debug)]
pub(crate) struct Deployment {
    pub id: String,
    pub namespace: String,
    pub job_id: String,
    pub job_version: u64,
    pub job_modify_index: u64,
    pub job_spec_modify_index: u64,
    pub job_create_index: u64,
    pub status: String,
    pub status_description: String,
    pub groups: BTreeMap<String, DeploymentGroup>,
    pub create_index: u64,
    pub modify_index: u64,
    /// The watcher's evaluation for allocations that turned healthy is due (Nomad's
    /// `outstandingBatch`: one evaluation per batch period, however many turned).
    pub eval_batch: bool,
}

impl Deployment {
    pub(crate) fn active(&self) -> bool {
        matches!(
            self.status.as_str(),
            "running" | "paused" | "pending" | "blocked" | "unblocking" | "initializing"
        )
    }

    pub(crate) fn key(&self) -> JobKey {
        (self.namespace.clone(), self.job_id.clone())
    }

    /// `structs.Deployment` JSON.
    pub(crate) fn to_json(&self) -> Value {
        let groups: Map<String, Value> = self
            .groups
            .iter()
            .map(|(k, g)| {
                (
                    k.clone(),
                    json!({
                        "AutoRevert": g.auto_revert, "AutoPromote": g.auto_promote,
                        "ProgressDeadline": g.progress_deadline,
                        "RequireProgressBy": time_or_null(g.require_progress_by),
                        "Promoted": g.promoted,
                        "PlacedCanaries": if g.placed_canaries.is_empty() { Value::Null } else { json!(g.placed_canaries) },
                        "DesiredCanaries": g.desired_canaries, "DesiredTotal": g.desired_total,
                        "PlacedAllocs": g.placed_allocs, "HealthyAllocs": g.healthy_allocs,
                        "UnhealthyAllocs": g.unhealthy_allocs
                    }),
                )
            })
            .collect();
        json!({
            "ID": self.id, "Namespace": self.namespace, "JobID": self.job_id,
            "JobVersion": self.job_version, "JobModifyIndex": self.job_modify_index,
            "JobSpecModifyIndex": self.job_spec_modify_index, "JobCreateIndex": self.job_create_index,
            "IsMultiregion": false, "TaskGroups": groups, "Status": self.status,
            "StatusDescription": self.status_description,
            "CreateIndex": self.create_index, "ModifyIndex": self.modify_index
        })
    }
}

/// An evaluation.
#[derive(Clone, Debug)]
pub(crate) struct Eval {
    pub id: String,
    pub namespace: String,
    pub priority: i64,
    pub kind: String,
    pub triggered_by: String,
    pub job_id: String,
    pub job_modify_index: u64,
    pub deployment_id: String,
    pub status: String,
    pub status_description: String,
    pub previous_eval: String,
    /// The blocked evaluation created for what this one could not place.
    pub blocked_eval: String,
    /// `FailedTGAllocs` (`null` when everything was placed).
    pub failed_tg_allocs: Value,
    /// A blocked evaluation's `ClassEligibility` (empty: left out).
    pub class_eligibility: BTreeMap<String, bool>,
    /// A blocked evaluation's `EscapedComputedClass`.
    pub escaped_computed_class: bool,
    pub queued: BTreeMap<String, u64>,
    pub create_index: u64,
    pub modify_index: u64,
    pub snapshot_index: u64,
    pub create_time: i64,
    pub modify_time: i64,
}

impl Eval {
    /// `structs.Evaluation` JSON, `omitempty` on every field as Nomad encodes it.
    pub(crate) fn to_json(&self) -> Value {
        let mut v = json!({
            "ID": self.id, "Namespace": self.namespace, "Priority": self.priority,
            "Type": self.kind, "TriggeredBy": self.triggered_by, "JobID": self.job_id,
            "JobModifyIndex": self.job_modify_index, "NodeID": "", "NodeModifyIndex": 0,
            "DeploymentID": self.deployment_id, "Status": self.status,
            "StatusDescription": self.status_description, "Wait": 0,
            "WaitUntil": "0001-01-01T00:00:00Z", "NextEval": "",
            "PreviousEval": self.previous_eval, "BlockedEval": self.blocked_eval,
            "FailedTGAllocs": self.failed_tg_allocs, "ClassEligibility": self.class_eligibility,
            "EscapedComputedClass": self.escaped_computed_class, "AnnotatePlan": false,
            "QueuedAllocations": if self.status == "complete" { json!(self.queued) } else { Value::Null },
            "LeaderACL": "", "SnapshotIndex": self.snapshot_index,
            "CreateIndex": self.create_index, "ModifyIndex": self.modify_index,
            "CreateTime": self.create_time, "ModifyTime": self.modify_time
        });
        if let Value::Object(m) = &mut v {
            omit_empty(m, &[]);
        }
        v
    }
}

/// Something the scheduler must do at a given instant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    Eval(String),
    TaskStart {
        alloc: String,
        task: String,
        gn: u64,
    },
    TaskExit {
        alloc: String,
        task: String,
        gn: u64,
    },
    Healthy {
        alloc: String,
        gn: u64,
    },
    HealthyDeadline {
        alloc: String,
        gn: u64,
    },
    KillDone {
        alloc: String,
        gn: u64,
    },
    Reschedule {
        alloc: String,
    },
    ProgressDeadline {
        deployment: String,
    },
    /// The deployment watcher's batched evaluation for healthy allocations.
    WatcherEval {
        deployment: String,
    },
}

/// A namespace (`structs.Namespace`).
#[derive(Clone, Debug)]
pub(crate) struct Namespace {
    pub description: String,
    pub create_index: u64,
    pub modify_index: u64,
}

/// The whole in-memory state; guarded by one mutex with short critical sections.
pub(crate) struct State {
    pub index: u64,
    pub table_index: HashMap<&'static str, u64>,
    pub jobs: BTreeMap<JobKey, Cached<JobEntry>>,
    pub allocs: BTreeMap<String, Cached<Alloc>>,
    pub allocs_by_job: HashMap<JobKey, Vec<String>>,
    pub deployments: BTreeMap<String, Cached<Deployment>>,
    pub deployments_by_job: HashMap<JobKey, Vec<String>>,
    pub evals: BTreeMap<String, Cached<Eval>>,
    pub evals_by_job: HashMap<JobKey, Vec<String>>,
    pub timers: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    pub timer_seq: u64,
    pub time_scale: f64,
    pub watchers: Arc<Watchers>,
    pub wake: Arc<Notify>,
    pub node: Node,
    /// The scheduler's context of the evaluation being processed.
    pub sched: SchedCtx,
    pub namespaces: BTreeMap<String, Namespace>,
    /// Nomad's `scaling_policy` table: one policy per job and group.
    pub scaling_policies: BTreeMap<crate::scaling::PolicyKey, crate::scaling::PolicyRecord>,
    /// Nomad's `scaling_event` table: the events of each job.
    pub scaling_events: HashMap<JobKey, crate::scaling::JobScalingEvents>,
}

fn table_name(t: Table) -> &'static str {
    match t {
        Table::Jobs => "jobs",
        Table::Summary => "job_summary",
        Table::Allocs => "allocs",
        Table::Deployments => "deployment",
        Table::Evals => "evals",
        Table::Namespaces => "namespaces",
        Table::ScalingEvents => "scaling_event",
    }
}

impl State {
    pub(crate) fn new(
        time_scale: f64,
        node: Node,
        watchers: Arc<Watchers>,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            index: 1,
            table_index: HashMap::new(),
            jobs: BTreeMap::new(),
            allocs: BTreeMap::new(),
            allocs_by_job: HashMap::new(),
            deployments: BTreeMap::new(),
            deployments_by_job: HashMap::new(),
            evals: BTreeMap::new(),
            evals_by_job: HashMap::new(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            time_scale,
            watchers,
            wake,
            node,
            sched: SchedCtx::default(),
            namespaces: BTreeMap::from([(
                "default".to_string(),
                Namespace {
                    description: "Default shared namespace".into(),
                    create_index: 1,
                    modify_index: 1,
                },
            )]),
            scaling_policies: BTreeMap::new(),
            scaling_events: HashMap::new(),
        }
    }

    /// Allocates the next Raft index.
    pub(crate) fn bump(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    /// Records a write to `t` at `idx` and wakes its blocking queries.
    pub(crate) fn touch(&mut self, t: Table, idx: u64) {
        let e = self.table_index.entry(table_name(t)).or_insert(0);
        if idx > *e {
            *e = idx;
        }
        self.watchers.sender(t).send_replace(idx);
    }

    /// The last write index of `t`: 0 while it was never written, as Nomad reports.
    pub(crate) fn table(&self, t: Table) -> u64 {
        let written = self.table_index.get(table_name(t)).copied().unwrap_or(0);
        match t {
            // The default namespace is written at index 1.
            Table::Namespaces => written.max(1),
            _ => written,
        }
    }

    /// Schedules a timer `after` (already scaled) from now.
    pub(crate) fn schedule(&mut self, after: std::time::Duration, timer: Timer) {
        self.timer_seq += 1;
        self.timers
            .push(Reverse((Instant::now() + after, self.timer_seq, timer)));
        self.wake.notify_one();
    }

    /// Scales a simulated duration into real time.
    pub(crate) fn scaled(&self, ns: u64) -> std::time::Duration {
        crate::util::scaled(ns, self.time_scale)
    }

    /// Scales simulated nanoseconds into real nanoseconds.
    pub(crate) fn scaled_ns(&self, ns: u64) -> i64 {
        i64::try_from(self.scaled(ns).as_nanos()).unwrap_or(i64::MAX)
    }

    /// Renders a job (spec + server fields) as `GET /v1/job/:id` does.
    pub(crate) fn job_json(&self, j: &JobEntry) -> Value {
        let mut m = (*j.spec).clone();
        m.insert("Status".into(), json!(j.status));
        m.insert("StatusDescription".into(), json!(j.status_description));
        m.insert("Stable".into(), json!(j.stable));
        m.insert("Version".into(), json!(j.version));
        m.insert("SubmitTime".into(), json!(j.submit_time));
        m.insert("CreateIndex".into(), json!(j.create_index));
        m.insert("ModifyIndex".into(), json!(j.modify_index));
        m.insert("JobModifyIndex".into(), json!(j.job_modify_index));
        Value::Object(m)
    }

    /// Renders one stored version of a job, as the versions table holds it (the current
    /// version too: its status is the one it was written with).
    pub(crate) fn version_json(&self, v: &JobVersion) -> Value {
        let mut m = (*v.spec).clone();
        m.insert("Status".into(), json!(v.status));
        m.insert("StatusDescription".into(), json!(""));
        m.insert("Stable".into(), json!(v.stable));
        m.insert("Version".into(), json!(v.version));
        m.insert("SubmitTime".into(), json!(v.submit_time));
        m.insert("CreateIndex".into(), json!(v.create_index));
        m.insert("ModifyIndex".into(), json!(v.modify_index));
        m.insert("JobModifyIndex".into(), json!(v.job_modify_index));
        Value::Object(m)
    }

    /// Renders the job embedded in an allocation: the job as the jobs table held it
    /// when the allocation was placed (or last updated in place).
    pub(crate) fn alloc_job_json(&self, a: &Alloc) -> Value {
        let snap = &a.job_snap;
        let mut m = (*a.job).clone();
        m.insert("Status".into(), json!(snap.status));
        m.insert("StatusDescription".into(), json!(""));
        m.insert("Stable".into(), json!(snap.stable));
        m.insert("Version".into(), json!(a.job_version));
        m.insert("SubmitTime".into(), json!(snap.submit_time));
        m.insert("CreateIndex".into(), json!(a.job_create_index));
        m.insert("ModifyIndex".into(), json!(snap.modify_index));
        m.insert("JobModifyIndex".into(), json!(a.job_modify_index));
        Value::Object(m)
    }

    /// The jobs table's view of a job for an allocation's embedded copy.
    pub(crate) fn job_snap(&self, key: &JobKey) -> JobSnap {
        self.jobs
            .get(key)
            .map(|j| JobSnap {
                status: j.status.clone(),
                stable: j.stable,
                submit_time: j.submit_time,
                modify_index: j.modify_index,
            })
            .unwrap_or_default()
    }

    /// Job summary JSON (`structs.JobSummary`).
    pub(crate) fn summary_json(&self, key: &JobKey, j: &JobEntry) -> Value {
        let groups: Map<String, Value> = j
            .summary
            .iter()
            .map(|(k, g)| {
                (
                    k.clone(),
                    json!({"Queued": g.queued, "Complete": g.complete, "Failed": g.failed,
                           "Running": g.running, "Starting": g.starting, "Lost": g.lost}),
                )
            })
            .collect();
        json!({
            "JobID": key.1, "Namespace": key.0, "Summary": groups,
            "Children": {"Pending": j.children.pending, "Running": j.children.running, "Dead": j.children.dead},
            "CreateIndex": j.summary_create_index, "ModifyIndex": j.summary_modify_index
        })
    }

    /// Job list stub (`structs.JobListStub`).
    pub(crate) fn job_stub_json(&self, key: &JobKey, j: &JobEntry) -> Value {
        let spec = &j.spec;
        json!({
            "ID": key.1, "ParentID": spec.get("ParentID").cloned().unwrap_or(json!("")),
            "Name": spec.get("Name").cloned().unwrap_or(json!(key.1)),
            "Namespace": key.0, "Datacenters": spec.get("Datacenters").cloned().unwrap_or(Value::Null),
            "Multiregion": null, "Type": j.job_type(),
            "Priority": spec.get("Priority").cloned().unwrap_or(json!(50)),
            "Periodic": spec.get("Periodic").is_some_and(Value::is_object),
            "ParameterizedJob": spec.get("ParameterizedJob").is_some_and(Value::is_object),
            "Stop": j.stopped(), "Status": j.status, "StatusDescription": j.status_description,
            "JobSummary": self.summary_json(key, j),
            "CreateIndex": j.create_index, "ModifyIndex": j.modify_index,
            "JobModifyIndex": j.job_modify_index, "SubmitTime": j.submit_time
        })
    }

    /// Allocation IDs of a job (all, including terminal ones).
    pub(crate) fn job_alloc_ids(&self, key: &JobKey) -> &[String] {
        self.allocs_by_job
            .get(key)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Newest deployment of a job, if any.
    pub(crate) fn latest_deployment(&self, key: &JobKey) -> Option<&Deployment> {
        self.deployments_by_job
            .get(key)?
            .iter()
            .filter_map(|id| self.deployments.get(id).map(|d| &**d))
            .max_by_key(|d| d.create_index)
    }
}

impl Cached<JobEntry> {
    /// The compact text of the job's list stub ([`State::job_stub_json`]); `key` is the
    /// job's key in [`State::jobs`].
    pub(crate) fn stub_text(&self, st: &State, key: &JobKey) -> Bytes {
        self.json(|j| st.job_stub_json(key, j))
    }
}

impl Cached<Alloc> {
    /// The compact text of the allocation's list stub ([`Alloc::stub_json`]) on `node`
    /// (the simulator's one node, which never changes).
    pub(crate) fn stub_text(&self, node: &Node) -> Bytes {
        self.json(|a| a.stub_json(&node.id, &node.name))
    }
}

impl Cached<Deployment> {
    /// The compact text of [`Deployment::to_json`].
    pub(crate) fn text(&self) -> Bytes {
        self.json(Deployment::to_json)
    }
}

impl Cached<Eval> {
    /// The compact text of [`Eval::to_json`].
    pub(crate) fn text(&self) -> Bytes {
        self.json(Eval::to_json)
    }
}
