//! Typed, tolerant views of Nomad's JSON answers.
//!
//! Every struct takes Nomad's PascalCase names (acronyms such as `ID`, `JobID`, `EvalID`,
//! `DesiredTGUpdates` renamed explicitly) and ignores fields it does not know. One rule
//! decides what a field may be:
//!
//! - **Required** fields carry no `default`: the few the operator cannot act without (the
//!   ID of a job, allocation, deployment or evaluation, a deployment's `JobVersion`, a
//!   plan's `JobModifyIndex` and top-level diff `Type`, a dispatch's child job ID). An
//!   answer without one fails to decode instead of reading as an empty ID or version 0.
//! - **Every other field** is `#[serde(default, deserialize_with = "nullable")]`: absent
//!   and `null` both read as the type's default (empty string, 0, `false`, empty
//!   collection, `None`). Go sends `null` for nil slices, maps and pointers, and Nomad
//!   1.1.2 also for unset times (`NextPeriodicLaunch`, `RequireProgressBy`, `FinishedAt`,
//!   `LastRestart`), where older releases sent the zero time `0001-01-01T00:00:00Z`.
//!   `Option` is used only where "not sent" means something other than "empty" (a plan's
//!   diff, an allocation's deployment health, `Healthy` itself).
//! - **Whole answers** that Go may send as `null` (the list endpoints' nil slices) are
//!   read through `Nullable`, the same rule for a body instead of a field.
//!
//! Jobs themselves stay `serde_json::Value` so that nothing the operator does not model
//! is lost. `fixture_tests` feeds these types the answers recorded from a real Nomad
//! 1.1.2 agent in `tests/fixtures/nomad/`.

mod allocation;
mod deployment;
mod evaluation;
mod jobs;
mod plan;

#[cfg(test)]
mod fixture_tests;

pub use allocation::{AllocDeploymentStatus, Allocation, AllocationListStub, TaskEvent, TaskState};
pub use deployment::{Deployment, DeploymentState, DeploymentUpdateResponse};
pub use evaluation::Evaluation;
pub use jobs::{
    JobChildrenSummary, JobDeregisterResponse, JobDispatchResponse, JobListStub,
    JobRegisterResponse, JobStabilityResponse, JobSummary, PeriodicForceResponse, TaskGroupSummary,
};
pub use plan::{
    AllocationMetric, DesiredUpdates, DiffType, FieldDiff, JobDiff, JobPlanResponse, ObjectDiff,
    PlanAnnotations, TaskDiff, TaskGroupDiff,
};

use serde::{Deserialize, Deserializer};

/// Reads `null` as the type's default (Go encodes empty slices, maps, pointers and, in
/// Nomad 1.1.2, unset times as `null`). Paired with `#[serde(default)]` on every optional
/// field, so that absent and `null` read the same.
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A whole answer that Go may send as `null` (a nil slice or map), read as the type's
/// default just like a [`nullable`] field.
#[derive(Deserialize)]
#[serde(transparent, bound(deserialize = "T: Deserialize<'de> + Default"))]
pub(crate) struct Nullable<T>(#[serde(deserialize_with = "nullable")] T);

impl<T> Nullable<T> {
    /// The value (the default for `null`).
    pub(crate) fn into_inner(self) -> T {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Nullable;

    #[test]
    fn a_null_answer_reads_as_the_default() {
        let null: Nullable<Vec<u32>> = serde_json::from_str("null").expect("null");
        assert!(null.into_inner().is_empty());
        let list: Nullable<Vec<u32>> = serde_json::from_str("[1,2]").expect("list");
        assert_eq!(list.into_inner(), [1, 2]);
        assert!(serde_json::from_str::<Nullable<Vec<u32>>>("{}").is_err());
    }
}
