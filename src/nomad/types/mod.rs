//! Typed, tolerant views of Nomad's JSON answers.
//!
//! Every struct takes Nomad's PascalCase names (acronyms such as `ID`, `JobID`, `EvalID`,
//! `DesiredTGUpdates` renamed explicitly), fills missing fields with defaults, ignores
//! fields it does not know, and reads Go's `null` slices and maps as empty. Jobs themselves
//! stay `serde_json::Value` so that nothing the operator does not model is lost.

mod allocation;
mod deployment;
mod evaluation;
mod jobs;
mod plan;

#[cfg(test)]
mod fixture_tests;

pub use allocation::{AllocDeploymentStatus, Allocation, AllocationListStub, TaskEvent, TaskState};
pub use deployment::{Deployment, DeploymentState};
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

/// Reads `null` as the type's default (Go encodes empty slices, maps and pointers as `null`).
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
