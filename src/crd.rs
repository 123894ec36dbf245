//! The `NomadJob` custom resource: what a user asks for (`spec`) and what the operator
//! learned and decided (`status`), plus the condition types and reasons it reports.
//!
//! The field names here are the public contract of the API (`nomadoperator.dev/v1alpha1`);
//! `crds/nomadjob.yaml` is generated from these types by `nomad-operator crd`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::named_map::NamedMap;

mod connection;
mod dispatch;
pub use connection::{
    ClusterNomadConnection, ClusterNomadConnectionSpec, ConnectionKind, ConnectionRef,
    ConnectionSettings, ConnectionTls, NomadConnection, NomadConnectionSpec, SecretKeyRef,
};
pub use dispatch::{NomadDispatch, NomadDispatchSpec, NomadDispatchStatus, NomadJobRef};

/// API group of the operator's resources.
pub const GROUP: &str = "nomadoperator.dev";
/// Finalizer that makes the operator apply `spec.deletionPolicy` before the object goes.
pub const FINALIZER: &str = "nomadoperator.dev/cleanup";
/// Annotation whose value, when changed, lets the operator register a spec that failed before.
pub const RETRY_ANNOTATION: &str = "nomadoperator.dev/retry";
/// Annotation that protects the Nomad job from deletion: `"true"` makes deleting the
/// object refuse to stop or purge the job until it is set to `"false"` (which also lifts
/// the operator-wide `--deletion-protection`).
pub const DELETION_PROTECTION_ANNOTATION: &str = "nomadoperator.dev/deletion-protection";
/// Annotation whose new value promotes the canaries of the current deployment once they
/// are healthy (`spec.rollout.promote: Manual`).
pub const PROMOTE_ANNOTATION: &str = "nomadoperator.dev/promote";
/// Annotation whose new value launches a periodic job now (`nomad job periodic force`).
pub const FORCE_LAUNCH_ANNOTATION: &str = "nomadoperator.dev/force-launch";
/// Key the operator adds to a parameterized job's `MetaOptional`, and sets in each
/// dispatch to the UID of the `NomadDispatch`: after a restart it tells which dispatched
/// job an interrupted dispatch made.
pub const META_DISPATCH_UID: &str = "nomadoperator.dev/dispatch-uid";
/// Nomad job `Meta` key recording the namespace of the owning `NomadJob`.
pub const META_OWNER_NAMESPACE: &str = "nomadoperator.dev/owner-namespace";
/// Nomad job `Meta` key recording the name of the owning `NomadJob`.
pub const META_OWNER_NAME: &str = "nomadoperator.dev/owner-name";
/// Nomad job `Meta` key recording the UID of the owning `NomadJob` (informational: a
/// re-created object of the same namespace and name adopts the job).
pub const META_OWNER_UID: &str = "nomadoperator.dev/owner-uid";

/// The desired state of a Nomad job.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "nomadoperator.dev",
    version = "v1alpha1",
    kind = "NomadJob",
    plural = "nomadjobs",
    shortname = "nj",
    category = "nomad",
    namespaced,
    status = "NomadJobStatus",
    doc = "A HashiCorp Nomad job whose source of truth is this object: the operator plans, registers (with check-and-set), follows the deployment, reverts a failed one, and mirrors Nomad's view into status.",
    printcolumn = r#"{"name":"Job ID","type":"string","jsonPath":".status.jobID"}"#,
    printcolumn = r#"{"name":"Connection","type":"string","description":"The NomadConnection or ClusterNomadConnection the job goes through (empty: the operator's default)","jsonPath":".status.connection.name"}"#,
    printcolumn = r#"{"name":"Version","type":"integer","jsonPath":".status.jobVersion"}"#,
    printcolumn = r#"{"name":"Status","type":"string","description":"Nomad job status","jsonPath":".status.jobStatus"}"#,
    printcolumn = r#"{"name":"Deployment","type":"string","description":"Status of the latest Nomad deployment","jsonPath":".status.deployment.status"}"#,
    printcolumn = r#"{"name":"Healthy","type":"string","description":"Healthy (batch: completed) allocations of the current version / desired","jsonPath":".status.healthy"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [{"required": ["job"]}, {"required": ["hcl"]}]))]
pub struct NomadJobSpec {
    /// The Nomad job in Nomad's JSON API form: the object that `nomad job run -output`
    /// prints under "Job" (PascalCase keys such as `Type`, `TaskGroups`, `Tasks`;
    /// durations in nanoseconds). `ID` may be left out; if present it must equal the job ID.
    /// Exactly one of `job` and `hcl` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "job_schema")]
    pub job: Option<JobDocument>,

    /// The job as a Nomad jobspec in HCL (what `nomad job run FILE` takes), turned into
    /// the job by Nomad's `POST /v1/jobs/parse`. HCL2 unless `hcl1` is true. Exactly one
    /// of `job` and `hcl` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hcl: Option<String>,

    /// Parse `hcl` with Nomad's HCL1 parser (as `nomad job run -hcl1` does). HCL1 has no
    /// variables.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hcl1: bool,

    /// Values of the jobspec's `variable` blocks (name to value, as `nomad job run -var`
    /// takes them: text for string variables, an HCL expression such as `3`, `true` or
    /// `["a", "b"]` for others). They win over `variablesFrom`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,

    /// ConfigMaps and Secrets in the object's namespace whose keys become variables (each
    /// key a variable of that name, after `prefix`). A change of one of them is a change
    /// of the spec. Values from Secrets are kept out of status, Events and logs, but they
    /// are in the Nomad job, visible to whoever may read it there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables_from: Vec<VariablesSource>,

    /// Treat keys of `job` that Nomad's job schema does not have (and unknown fields of
    /// this spec) as errors instead of warnings.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict: bool,

    /// The Nomad job ID. Defaults to `metadata.name`. Must follow Nomad's rules (no
    /// whitespace, at most 128 characters).
    #[serde(rename = "jobID", default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^\S+$"))]
    pub job_id: Option<String>,

    /// When a deployment of a version registered by the operator fails, revert the job to
    /// its newest stable version (unless the job's own `update.AutoRevert` already did).
    #[serde(default = "default_true")]
    pub revert_on_failure: bool,

    /// Stop reconciling: no Nomad calls are made for this object while true.
    #[serde(default)]
    pub suspend: bool,

    /// What happens to the Nomad job when this object is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// What happens when the job in Nomad was changed by someone else.
    #[serde(default)]
    pub drift_policy: DriftPolicy,

    /// Take over an existing Nomad job that no NomadJob owns (created by hand or by
    /// another tool). A job that already equals the spec is taken as it runs: nothing is
    /// registered and no allocation restarts. One that differs is planned (the plan is in
    /// `status.plan`) and registered. A job another NomadJob owns is never taken.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt: bool,

    /// Keep the live count of every task group, as for groups with a `Scaling` block
    /// (whose counts belong to the autoscaler or to `nomad job scale`): a count that
    /// differs only in Nomad is not drift. A change of a group's count in the spec is
    /// still applied, once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preserve_counts: bool,

    /// The Nomad cluster to use: a `NomadConnection` of this namespace or a
    /// `ClusterNomadConnection` that serves it. Unset: the operator's default connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_ref: Option<ConnectionRef>,

    /// How canary deployments (a group's `update.canary`) are promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,

    /// Fields of the spec this version of the API does not know. The API server prunes
    /// them (kubectl, Helm and Argo CD refuse them before); the operator reports any it
    /// is given, and those kept in kubectl's last-applied annotation.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub unknown_fields: BTreeMap<String, serde_json::Value>,
}

/// How a deployment with canaries moves on.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// Who promotes the canaries once they are healthy.
    #[serde(default)]
    pub promote: Promote,
}

/// Who promotes a deployment's canaries.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Promote {
    /// A person: a new value of the annotation `nomadoperator.dev/promote` promotes the
    /// current deployment once its canaries are healthy (as does `nomad deployment
    /// promote`, or the group's own `auto_promote`). The `Ready` condition says while the
    /// deployment waits.
    #[default]
    Manual,
    /// The operator, as soon as every canary of the deployment is healthy.
    Auto,
}

/// A ConfigMap or Secret whose keys become jobspec variables.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VariablesSource {
    /// A ConfigMap in the object's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<SourceRef>,
    /// A Secret in the object's namespace (its values are never shown by the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SourceRef>,
    /// Prepended to every key to make the variable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// A reference to a ConfigMap or Secret by name.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceRef {
    /// Its name.
    pub name: String,
    /// When true, a missing ConfigMap or Secret gives no variables instead of an error.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

fn default_true() -> bool {
    true
}

/// A Nomad job document (`spec.job`), held as compact JSON text.
///
/// The operator's cache holds every `NomadJob`; as text a job takes a fraction of the
/// memory of a parsed JSON tree (whose every small object costs a full map node). It
/// is parsed when a reconcile renders it, and (de)serializes as the JSON object itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobDocument(Box<str>);

impl JobDocument {
    /// The document's fields.
    pub fn fields(&self) -> Result<serde_json::Map<String, serde_json::Value>, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

impl From<&serde_json::Map<String, serde_json::Value>> for JobDocument {
    fn from(fields: &serde_json::Map<String, serde_json::Value>) -> Self {
        // A map of JSON values always serializes; `{}` is only a formality.
        Self(
            serde_json::to_string(fields)
                .unwrap_or_else(|_| "{}".into())
                .into_boxed_str(),
        )
    }
}

impl Serialize for JobDocument {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.fields()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JobDocument {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        Ok(Self::from(&fields))
    }
}

fn job_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "description": "The Nomad job in Nomad's JSON API form: the object that `nomad job run -output` prints under \"Job\" (PascalCase keys such as `Type`, `TaskGroups`, `Tasks`; durations in nanoseconds). `ID` may be left out; if present it must equal the job ID. Exactly one of `job` and `hcl` is set."
    })
}

/// What the operator does with the Nomad job when the `NomadJob` is deleted.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Stop the job (`DELETE /v1/job/:id`); Nomad keeps it as a dead job until GC.
    #[default]
    Deregister,
    /// Stop and purge the job from Nomad (`?purge=true`).
    Purge,
    /// Leave the job running in Nomad.
    Orphan,
}

/// What the operator does when the Nomad job differs from the spec it last applied.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DriftPolicy {
    /// Re-register the spec (Event `DriftCorrected`).
    #[default]
    Correct,
    /// Only report the drift in the `Drifted` condition and an Event.
    Report,
}

/// What the operator observed and decided; written only by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NomadJobStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The Nomad job ID this object manages.
    #[serde(rename = "jobID", default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The Nomad namespace of the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_namespace: Option<String>,
    /// The connection the job was planned and registered through (unset: the operator's
    /// default connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionStatus>,
    /// The job's current version in Nomad.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_version: Option<u64>,
    /// The job's `JobModifyIndex` in Nomad (moves only when the spec changes); the
    /// check-and-set value of the next register.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_modify_index: Option<u64>,
    /// Nomad's job status: `pending`, `running` or `dead`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_status: Option<String>,
    /// The Nomad version the operator registered for the last applied spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_version: Option<u64>,
    /// The job's `CreateIndex` in Nomad: proves the job is the one this object registered
    /// or adopted, even when someone re-ran it without the owner keys in its `Meta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_create_index: Option<u64>,
    /// The spec's count of each task group whose count belongs to someone else (a
    /// `Scaling` block, or `spec.preserveCounts`), at the last register: a change of one
    /// in the spec is applied once.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub applied_counts: BTreeMap<String, u64>,
    /// A job this object managed before `spec.jobID` or the Nomad namespace changed,
    /// until `spec.deletionPolicy` has been applied to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<JobRef>,
    /// Digest of the last spec the operator registered (or found already registered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_digest: Option<String>,
    /// Digest of a spec whose deployment failed; it is not registered again until the spec
    /// or the `nomadoperator.dev/retry` annotation changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_digest: Option<String>,
    /// The result of the last plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanStatus>,
    /// The job's latest deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentStatus>,
    /// Allocation counts per task group, from the job summary.
    #[serde(default)]
    pub summary: NamedMap<TaskGroupSummary>,
    /// The job's allocations, newest first (bounded).
    #[serde(default)]
    pub allocations: Vec<AllocationStatus>,
    /// Healthy allocations of the current version over those desired, such as `2/3`
    /// (a batch job: completed over desired), for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<String>,
    /// The canaries of the latest deployment, when it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canaries: Option<CanaryStatus>,
    /// The last promotion of a deployment's canaries that the operator made or saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_promotion: Option<PromotionStatus>,
    /// Why allocations of the job cannot be placed (from the plan or the scheduler's
    /// evaluation), per task group; empty when everything is placed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub placement_failures: BTreeMap<String, String>,
    /// A periodic job's next launch, as its cron spec and time zone say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_launch: Option<Time>,
    /// The jobs a periodic or parameterized job launched: counts, and the newest ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children: Option<ChildrenStatus>,
    /// The values of the request annotations (`nomadoperator.dev/promote`,
    /// `nomadoperator.dev/force-launch`) the operator has acted on.
    #[serde(default, skip_serializing_if = "AnsweredRequests::is_empty")]
    pub answered: AnsweredRequests,
    /// The last revert of this job, by the operator or by Nomad's auto-revert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_revert: Option<RevertStatus>,
    /// A Nomad write the operator recorded before making it and whose outcome it has not
    /// seen yet. Set just before a register or a revert and cleared once the outcome is
    /// known, so a restart in between can tell from Nomad whether the write happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingWrite>,
    /// Standard conditions: `Ready`, `Reconciling`, `Stalled`, and `Drifted` when the job
    /// in Nomad differs from the spec.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// A connection as the status records it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatus {
    /// `NomadConnection` or `ClusterNomadConnection`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// The Nomad address it reaches.
    pub address: String,
}

/// The canaries of a deployment, over all its task groups.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// The deployment.
    #[serde(rename = "deploymentID")]
    pub deployment_id: String,
    /// Canaries wanted.
    pub desired: u64,
    /// Canaries placed.
    pub placed: u64,
    /// Canaries healthy.
    pub healthy: u64,
    /// Whether every group's canaries were promoted.
    pub promoted: bool,
}

/// A promotion of a deployment's canaries.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionStatus {
    /// The deployment promoted.
    #[serde(rename = "deploymentID")]
    pub deployment_id: String,
    /// Who promoted: `spec.rollout.promote: Auto`, the annotation, or someone outside the
    /// operator (Nomad's `auto_promote`, `nomad deployment promote`).
    pub by: String,
    /// When the operator promoted, or first saw the promotion.
    pub time: Time,
}

/// The jobs launched by a periodic or parameterized job.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChildrenStatus {
    /// Launched jobs not yet running.
    pub pending: u64,
    /// Launched jobs running.
    pub running: u64,
    /// Launched jobs finished.
    pub dead: u64,
    /// The newest launched jobs, newest first (bounded).
    #[serde(default)]
    pub latest: Vec<ChildJobStatus>,
}

/// One job launched by a periodic or parameterized job.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChildJobStatus {
    /// Its job ID (`PARENT/periodic-UNIXTIME`, `PARENT/dispatch-UNIXTIME-SUFFIX`).
    #[serde(rename = "jobID")]
    pub job_id: String,
    /// Nomad's job status: `pending`, `running` or `dead`.
    pub status: String,
    /// `Running`, `Succeeded` or `Failed` (from its allocation counts).
    pub outcome: String,
    /// When it was launched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launched: Option<Time>,
}

/// The values of request annotations the operator has answered.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnsweredRequests {
    /// `nomadoperator.dev/promote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote: Option<String>,
    /// `nomadoperator.dev/force-launch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_launch: Option<String>,
}

impl AnsweredRequests {
    /// True when no request was answered.
    pub fn is_empty(&self) -> bool {
        self.promote.is_none() && self.force_launch.is_none()
    }
}

/// A Nomad job by namespace and ID.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobRef {
    /// The Nomad namespace.
    pub namespace: String,
    /// The job ID.
    #[serde(rename = "jobID")]
    pub job_id: String,
    /// Its `CreateIndex`, as the status recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_index: Option<u64>,
}

/// The result of the last plan (`POST /v1/job/:id/plan` with `Diff: true`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanStatus {
    /// Top-level diff type: `None`, `Added`, `Edited` or `Deleted`.
    pub diff_type: String,
    /// Desired updates per task group, as the scheduler annotated them; empty when the
    /// plan found no difference.
    #[serde(default)]
    pub desired_updates: NamedMap<DesiredUpdates>,
    /// Whether the operator registered the job after this plan. A difference it did not
    /// register is drift that `driftPolicy: Report` leaves alone.
    #[serde(default)]
    pub registered: bool,
    /// Nomad's warnings about the job (deprecated fields and the like).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnings: Option<String>,
}

/// How the scheduler would change one task group's allocations.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesiredUpdates {
    /// Allocations placed.
    pub place: u64,
    /// Allocations stopped.
    pub stop: u64,
    /// Allocations updated in place.
    pub in_place_update: u64,
    /// Allocations replaced (destroyed and re-created).
    pub destructive_update: u64,
    /// Allocations left as they are.
    pub ignore: u64,
    /// Allocations migrated.
    pub migrate: u64,
    /// Canaries placed.
    pub canary: u64,
}

/// The job's latest Nomad deployment.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    /// Deployment ID.
    pub id: String,
    /// The job version the deployment rolls out.
    pub job_version: u64,
    /// `running`, `paused`, `failed`, `successful` or `cancelled` (and newer Nomad's
    /// `pending`, `blocked`, `initializing`, `unblocking`).
    pub status: String,
    /// Nomad's description of the status.
    pub status_description: String,
    /// Progress per task group.
    #[serde(default)]
    pub task_groups: NamedMap<DeploymentGroupStatus>,
}

/// Deployment progress of one task group.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentGroupStatus {
    /// Allocations the deployment wants.
    pub desired_total: u64,
    /// Allocations placed.
    pub placed: u64,
    /// Allocations healthy.
    pub healthy: u64,
    /// Allocations unhealthy.
    pub unhealthy: u64,
    /// Canaries wanted.
    pub desired_canaries: u64,
    /// Canaries placed.
    pub placed_canaries: u64,
    /// Whether the canaries were promoted.
    pub promoted: bool,
}

/// Allocation counts of one task group (`GET /v1/job/:id/summary`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskGroupSummary {
    /// Waiting to be placed.
    pub queued: u64,
    /// Placed, not yet running.
    pub starting: u64,
    /// Running.
    pub running: u64,
    /// Completed.
    pub complete: u64,
    /// Failed.
    pub failed: u64,
    /// Lost with their node.
    pub lost: u64,
}

/// One allocation of the job.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllocationStatus {
    /// Allocation ID.
    pub id: String,
    /// Allocation name, such as `web.frontend[0]`.
    pub name: String,
    /// The node it was placed on.
    #[serde(rename = "nodeID")]
    pub node_id: String,
    /// Its task group.
    pub task_group: String,
    /// The job version it runs.
    pub job_version: u64,
    /// What the client reports: `pending`, `running`, `complete`, `failed`, `lost`.
    pub client_status: String,
    /// What the scheduler wants: `run`, `stop`, `evict`.
    pub desired_status: String,
    /// Deployment health, when the deployment has judged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// State per task.
    #[serde(default)]
    pub tasks: NamedMap<TaskStatus>,
}

/// The state of one task of an allocation.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    /// `pending`, `running` or `dead`.
    pub state: String,
    /// Whether the task failed.
    pub failed: bool,
    /// How often it restarted.
    pub restarts: u64,
    /// The newest task event, such as `Terminated: Exit Code: 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event: Option<String>,
}

/// A revert of the job to an earlier version.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevertStatus {
    /// The version whose deployment failed.
    pub from_version: u64,
    /// The stable version the job went back to (Nomad registers it as a new version).
    pub to_version: u64,
    /// Why: the failed deployment's description.
    pub reason: String,
    /// When the operator saw the revert happen.
    pub time: Time,
    /// Who reverted: the operator or Nomad's own auto-revert.
    pub by: RevertActor,
}

/// A Nomad write the operator is about to make (recorded in `status.pending` first).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingWrite {
    /// What the write is.
    pub kind: PendingKind,
    /// Digest of the spec the write serves.
    pub digest: String,
    /// The job's `JobModifyIndex` the write starts from (0 for a new job): for a register,
    /// its check-and-set index. The write happened when the job has moved past it.
    pub job_modify_index: u64,
    /// For a revert: the version whose deployment failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_version: Option<u64>,
    /// For a revert: the stable version it goes back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_version: Option<u64>,
    /// For a revert: the failed deployment's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a register: whether it corrects drift (the spec itself did not change).
    #[serde(default)]
    pub corrects_drift: bool,
}

/// The kinds of Nomad writes recorded in `status.pending`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PendingKind {
    /// `POST /v1/job/:id` with check-and-set.
    Register,
    /// `POST /v1/job/:id/revert`.
    Revert,
}

/// Who reverted a job.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RevertActor {
    /// The operator, through `POST /v1/job/:id/revert`.
    Operator,
    /// Nomad, through the job's `update.AutoRevert`.
    Nomad,
}

/// Condition types the operator sets (kstatus semantics).
pub mod condition {
    /// The current spec is registered and its deployment succeeded (or it has none).
    pub const READY: &str = "Ready";
    /// The operator is working towards the current spec.
    pub const RECONCILING: &str = "Reconciling";
    /// The operator cannot make progress until someone changes something.
    pub const STALLED: &str = "Stalled";
    /// The job in Nomad differs from the spec the operator last applied.
    pub const DRIFTED: &str = "Drifted";
    /// The spec has keys that Nomad's job schema or this API do not have (ignored).
    pub const SPEC_WARNING: &str = "SpecWarning";
}

/// Reasons used in conditions and as Event reasons.
pub mod reason {
    /// The job is registered and its deployment succeeded (or it has none).
    pub const SUCCEEDED: &str = "Succeeded";
    /// A new version was registered.
    pub const REGISTERED: &str = "Registered";
    /// The deployment of the registered version is in progress.
    pub const DEPLOYING: &str = "Deploying";
    /// The deployment of the registered version failed.
    pub const DEPLOYMENT_FAILED: &str = "DeploymentFailed";
    /// The job was reverted to its last stable version.
    pub const REVERTED: &str = "Reverted";
    /// A deployment failed and there was no stable version to go back to.
    pub const NO_STABLE_VERSION: &str = "NoStableVersion";
    /// The spec is invalid.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The Nomad job belongs to another object, or was created outside the operator.
    pub const CONFLICT: &str = "Conflict";
    /// Nomad could not be reached or answered with a server error.
    pub const NOMAD_UNAVAILABLE: &str = "NomadUnavailable";
    /// Nomad refused the operator's token.
    pub const PERMISSION_DENIED: &str = "PermissionDenied";
    /// Nomad rejected the job.
    pub const NOMAD_REJECTED: &str = "NomadRejected";
    /// The job in Nomad was changed by someone else and re-registered.
    pub const DRIFT_CORRECTED: &str = "DriftCorrected";
    /// The job in Nomad was changed by someone else (reported only).
    pub const DRIFT_DETECTED: &str = "DriftDetected";
    /// No drift.
    pub const IN_SYNC: &str = "InSync";
    /// `spec.suspend` is true.
    pub const SUSPENDED: &str = "Suspended";
    /// The job was deregistered, purged or orphaned on delete.
    pub const DELETED: &str = "Deleted";
    /// An existing job was taken over (`spec.adopt`).
    pub const ADOPTED: &str = "Adopted";
    /// The job managed under the old ID or namespace was handled by the deletion policy.
    pub const RENAMED: &str = "Renamed";
    /// A group's count was set from the spec although someone else manages it.
    pub const COUNT_FROM_SPEC: &str = "CountFromSpec";
    /// Deleting the object is refused while its deletion protection is on.
    pub const DELETION_PROTECTED: &str = "DeletionProtected";
    /// The job is stopped in Nomad.
    pub const JOB_STOPPED: &str = "JobStopped";
    /// The spec has keys that Nomad's job schema or this API do not have.
    pub const UNKNOWN_FIELDS: &str = "UnknownFields";
    /// Nomad's plan of the job has warnings.
    pub const PLAN_WARNINGS: &str = "PlanWarnings";
    /// The deployment's canaries wait to be promoted.
    pub const AWAITING_PROMOTION: &str = "AwaitingPromotion";
    /// The deployment's canaries were promoted.
    pub const PROMOTED: &str = "Promoted";
    /// A promotion was asked for but there was nothing to promote.
    pub const PROMOTION_SKIPPED: &str = "PromotionSkipped";
    /// Allocations of the job cannot be placed.
    pub const PLACEMENT_FAILED: &str = "PlacementFailed";
    /// A batch job (or a dispatched job) runs.
    pub const RUNNING: &str = "Running";
    /// A batch job (or a dispatched job) completed.
    pub const COMPLETED: &str = "Completed";
    /// A batch job (or a dispatched job) failed.
    pub const JOB_FAILED: &str = "JobFailed";
    /// A periodic job was launched on request.
    pub const LAUNCHED: &str = "Launched";
    /// A parameterized job was dispatched.
    pub const DISPATCHED: &str = "Dispatched";
    /// The job's Nomad namespace is not one its connection allows, or the connection does
    /// not serve the object's Kubernetes namespace.
    pub const POLICY_DENIED: &str = "PolicyDenied";
    /// The connection `spec.connectionRef` names does not exist.
    pub const CONNECTION_NOT_FOUND: &str = "ConnectionNotFound";
    /// The connection cannot be used: a Secret or key is missing, or its TLS is unusable.
    pub const CONNECTION_INVALID: &str = "ConnectionInvalid";
    /// What a `NomadDispatch` refers to does not exist or cannot be dispatched.
    pub const NOT_DISPATCHABLE: &str = "NotDispatchable";
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_job_document_round_trips_as_the_json_object_in_canonical_form() {
        let spec: NomadJobSpec = serde_json::from_value(json!({
            "job": {"Type": "service", "Meta": {"b": "2", "a": "1"}, "TaskGroups": [{"Count": 1}]}
        }))
        .expect("spec");
        let fields = spec.job.as_ref().expect("job").fields().expect("fields");
        assert_eq!(fields["TaskGroups"][0]["Count"], 1);
        let back = serde_json::to_value(&spec).expect("serialize");
        assert_eq!(
            back["job"],
            json!({"Meta": {"a": "1", "b": "2"}, "TaskGroups": [{"Count": 1}], "Type": "service"})
        );
        let reordered: NomadJobSpec = serde_json::from_value(json!({
            "job": {"TaskGroups": [{"Count": 1}], "Meta": {"a": "1", "b": "2"}, "Type": "service"}
        }))
        .expect("spec");
        assert_eq!(reordered.job, spec.job, "key order does not matter");
    }

    #[test]
    fn a_job_document_must_be_an_object() {
        let err = serde_json::from_value::<NomadJobSpec>(json!({"job": [1, 2]}));
        assert!(err.is_err());
    }
}
