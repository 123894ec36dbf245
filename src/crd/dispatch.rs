//! The `NomadDispatch` custom resource: one run of a parameterized Nomad job, dispatched
//! from Kubernetes with its payload and meta, and followed to its outcome.
//!
//! Like a Kubernetes `Job` for a `CronJob`, each object is one run: create one per run
//! (`generateName` suits), read the outcome from its status (`kubectl wait
//! --for=condition=Ready`), and delete it when done. Its spec is read once: the run is
//! dispatched once, and later edits do not dispatch again.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{AllocationStatus, NamedMap, TaskGroupSummary};

/// One dispatch of a parameterized job that a `NomadJob` manages.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "nomadoperator.dev",
    version = "v1alpha1",
    kind = "NomadDispatch",
    plural = "nomaddispatches",
    shortname = "nd",
    category = "nomad",
    namespaced,
    status = "NomadDispatchStatus",
    doc = "One run of a parameterized Nomad job managed by a NomadJob of the same namespace: the operator dispatches it once, with the payload and meta given, and mirrors the dispatched job's outcome into status.",
    printcolumn = r#"{"name":"NomadJob","type":"string","jsonPath":".spec.jobRef.name"}"#,
    printcolumn = r#"{"name":"Dispatched Job","type":"string","jsonPath":".status.jobID"}"#,
    printcolumn = r#"{"name":"Status","type":"string","description":"Nomad job status","jsonPath":".status.jobStatus"}"#,
    printcolumn = r#"{"name":"Outcome","type":"string","jsonPath":".status.outcome"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NomadDispatchSpec {
    /// The `NomadJob` (same namespace) whose parameterized job is dispatched.
    pub job_ref: NomadJobRef,
    /// The payload (`nomad job dispatch JOB FILE`), as text. The job's
    /// `parameterized.payload` says whether it is required, optional or forbidden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// Meta of the dispatched job (`nomad job dispatch -meta KEY=VALUE`): the keys must
    /// be among the job's `meta_required` and `meta_optional`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

/// A `NomadJob` by name.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NomadJobRef {
    /// Its name.
    pub name: String,
}

/// What the operator dispatched and how the run went.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NomadDispatchStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The parameterized job dispatched.
    #[serde(
        rename = "parentJobID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub parent_job_id: Option<String>,
    /// The Nomad namespace of the jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_namespace: Option<String>,
    /// The dispatched job's ID (`PARENT/dispatch-UNIXTIME-SUFFIX`).
    #[serde(rename = "jobID", default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The evaluation the dispatch created.
    #[serde(rename = "evalID", default, skip_serializing_if = "Option::is_none")]
    pub eval_id: Option<String>,
    /// When the operator dispatched it. Set just before the dispatch: with no `jobID`
    /// yet, the outcome of that dispatch is not known (a restart looks for the job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatched_at: Option<Time>,
    /// Why Nomad refused the dispatch (a missing required meta key, a forbidden
    /// payload...): the object is not dispatched again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Nomad's status of the dispatched job: `pending`, `running` or `dead`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_status: Option<String>,
    /// `Running`, `Succeeded` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Allocation counts per task group.
    #[serde(default)]
    pub summary: NamedMap<TaskGroupSummary>,
    /// The dispatched job's allocations, newest first (bounded).
    #[serde(default)]
    pub allocations: Vec<AllocationStatus>,
    /// `Ready` (the run succeeded), `Reconciling` (dispatching or running) and `Stalled`
    /// (it failed, or cannot be dispatched).
    #[serde(default)]
    pub conditions: Vec<Condition>,
}
