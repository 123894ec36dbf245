//! The decisions of a reconcile, as pure functions of what the operator knows: what to do
//! after a plan, how to answer a failed deployment, and whether the object is ready.

use serde_json::Value;

use crate::crd::{DriftPolicy, NomadJobStatus, RevertActor};
use crate::nomad::{Deployment, DiffType};

/// What to do with the result of a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanAction {
    /// Nomad already runs the desired spec: register nothing.
    InSync,
    /// The job does not exist yet: register it.
    Create,
    /// The spec changed since it was last applied: register the new one.
    Update,
    /// The spec did not change but the job in Nomad did: re-register (policy `Correct`).
    CorrectDrift,
    /// The spec did not change but the job in Nomad did: only report it (policy `Report`).
    ReportDrift,
}

impl PlanAction {
    /// True when the action registers the job.
    pub fn registers(self) -> bool {
        matches!(self, Self::Create | Self::Update | Self::CorrectDrift)
    }
}

/// Maps a plan's top-level diff type to an action. Only the top-level type counts:
/// sub-objects of an `Edited` job may say `None`.
pub fn plan_action(
    diff: DiffType,
    job_exists: bool,
    desired_digest: &str,
    status: &NomadJobStatus,
    drift_policy: DriftPolicy,
) -> PlanAction {
    if diff == DiffType::None {
        return PlanAction::InSync;
    }
    if !job_exists {
        return PlanAction::Create;
    }
    if status.last_applied_digest.as_deref() != Some(desired_digest) {
        return PlanAction::Update;
    }
    match drift_policy {
        DriftPolicy::Correct => PlanAction::CorrectDrift,
        DriftPolicy::Report => PlanAction::ReportDrift,
    }
}

/// The deployment of the version the operator registered, if it failed.
///
/// Looks only at deployments of `applied_version` (newest first), so a later deployment,
/// such as the one of Nomad's auto-revert, does not hide the failure.
pub fn failed_deployment(deployments: &[Deployment], applied_version: u64) -> Option<&Deployment> {
    deployments
        .iter()
        .filter(|d| d.job_version == applied_version)
        .max_by_key(|d| d.create_index)
        .filter(|d| d.status == "failed")
}

/// The newest deployment of `version`, if any.
pub fn deployment_of(deployments: &[Deployment], version: u64) -> Option<&Deployment> {
    deployments
        .iter()
        .filter(|d| d.job_version == version)
        .max_by_key(|d| d.create_index)
}

/// The newest deployment of the job.
pub fn latest_deployment(deployments: &[Deployment]) -> Option<&Deployment> {
    deployments.iter().max_by_key(|d| d.create_index)
}

/// How the operator answers a failed deployment of a version it registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureResponse {
    /// Nomad's auto-revert already went back to `to_version`: record it, revert nothing.
    RevertedByNomad {
        /// The stable version Nomad rolled back to.
        to_version: u64,
    },
    /// Revert to the newest stable version, with check-and-set on `current_version`.
    Revert {
        /// The stable version to go back to.
        to_version: u64,
        /// The job's current version (`EnforcePriorVersion`).
        current_version: u64,
    },
    /// There is no stable version to return to.
    NoStableVersion,
    /// `spec.revertOnFailure` is false, or the job moved on since: record the failure only.
    RecordOnly,
}

/// Parses Nomad's "... - rolling back to job version N" deployment description.
pub fn auto_revert_target(description: &str) -> Option<u64> {
    let (_, tail) = description.rsplit_once("rolling back to job version ")?;
    tail.trim().parse().ok()
}

/// Decides the response to `failed`, given the job's current version and its versions
/// (`GET /v1/job/:id/versions`, newest first).
pub fn failure_response(
    failed: &Deployment,
    current_version: u64,
    versions: &[Value],
    revert_on_failure: bool,
) -> FailureResponse {
    if let Some(to_version) = auto_revert_target(&failed.status_description) {
        return FailureResponse::RevertedByNomad { to_version };
    }
    if !revert_on_failure || current_version != failed.job_version {
        return FailureResponse::RecordOnly;
    }
    let stable = versions
        .iter()
        .filter(|v| v.get("Stable").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("Version").and_then(Value::as_u64))
        .filter(|v| *v != current_version)
        .max();
    match stable {
        Some(to_version) => FailureResponse::Revert {
            to_version,
            current_version,
        },
        None => FailureResponse::NoStableVersion,
    }
}

impl FailureResponse {
    /// Who reverted, for `status.lastRevert`, when a revert happened.
    pub fn actor(&self) -> Option<RevertActor> {
        match self {
            Self::RevertedByNomad { .. } => Some(RevertActor::Nomad),
            Self::Revert { .. } => Some(RevertActor::Operator),
            Self::NoStableVersion | Self::RecordOnly => None,
        }
    }
}

/// Whether Nomad will create a deployment for this (stored, canonical) job: service jobs
/// whose groups have an update strategy with `MaxParallel > 0`.
pub fn expects_deployment(job: &Value) -> bool {
    let service = job.get("Type").and_then(Value::as_str).unwrap_or("service") == "service";
    let parallel = |update: Option<&Value>| {
        update
            .and_then(|u| u.get("MaxParallel"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
            > 0
    };
    let job_level = parallel(job.get("Update"));
    let groups = job.get("TaskGroups").and_then(Value::as_array);
    let group_level = groups.is_some_and(|gs| gs.iter().any(|g| parallel(g.get("Update"))));
    service && (job_level || group_level)
}

/// Where the object stands, for the `Ready` / `Reconciling` / `Stalled` conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// The current spec runs: `Ready=True`.
    Ready(String),
    /// Work is under way (deployment running, waiting for one): `Reconciling=True`.
    Progressing {
        /// Condition reason.
        reason: &'static str,
        /// Condition message.
        message: String,
    },
    /// Nothing will change until someone acts: `Stalled=True`.
    Stalled {
        /// Condition reason.
        reason: &'static str,
        /// Condition message.
        message: String,
    },
}

/// Readiness of a registered spec whose version is `applied_version`, from Nomad's view.
pub fn readiness(job: &Value, applied_version: u64, deployments: &[Deployment]) -> Readiness {
    use crate::crd::reason;
    let stopped = job.get("Stop").and_then(Value::as_bool).unwrap_or(false);
    if stopped {
        return Readiness::Progressing {
            reason: reason::JOB_STOPPED,
            message: "the job is stopped in Nomad".into(),
        };
    }
    match deployment_of(deployments, applied_version) {
        Some(d) if d.status == "successful" => Readiness::Ready(format!(
            "version {applied_version} deployed: {}",
            d.status_description
        )),
        Some(d) if d.status == "failed" => Readiness::Stalled {
            reason: reason::DEPLOYMENT_FAILED,
            message: format!(
                "deployment of version {applied_version} failed: {}",
                d.status_description
            ),
        },
        Some(d) => Readiness::Progressing {
            reason: reason::DEPLOYING,
            message: format!(
                "deployment {} of version {applied_version} is {}: {}",
                short_id(&d.id),
                d.status,
                progress(d)
            ),
        },
        None if expects_deployment(job) => Readiness::Progressing {
            reason: reason::DEPLOYING,
            message: format!(
                "waiting for Nomad to start the deployment of version {applied_version}"
            ),
        },
        None => Readiness::Ready(format!(
            "version {applied_version} registered (this job has no deployments)"
        )),
    }
}

/// `healthy/desired` over all task groups.
fn progress(d: &Deployment) -> String {
    let healthy: u64 = d.task_groups.values().map(|g| g.healthy_allocs).sum();
    let desired: u64 = d.task_groups.values().map(|g| g.desired_total).sum();
    format!("{healthy}/{desired} allocations healthy")
}

/// The first 8 characters of a Nomad UUID, as Nomad's CLI shows them.
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// When the object is next reconciled with nothing happening: the resync interval
/// stretched by up to a fifth, by an amount fixed per object (from `key`, its UID). The
/// resyncs of objects created together are spread out instead of arriving at once;
/// never shorter, so a resync always finds its plan due.
pub fn resync_delay(resync: std::time::Duration, key: &str) -> std::time::Duration {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    let fraction = (hasher.finish() % 1000) as f64 / 1000.0;
    resync.mul_f64(1.0 + 0.2 * fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resyncs_spread_over_a_fifth_of_the_interval_and_stay_put_per_object() {
        let resync = std::time::Duration::from_secs(100);
        let delays: Vec<f64> = (0..200)
            .map(|i| resync_delay(resync, &format!("uid-{i}")).as_secs_f64())
            .collect();
        assert!(
            delays.iter().all(|d| (100.0..120.0).contains(d)),
            "{delays:?}"
        );
        let early = delays.iter().filter(|d| **d < 110.0).count();
        assert!(
            (60..140).contains(&early),
            "spread over the range: {early} of 200 early"
        );
        assert_eq!(resync_delay(resync, "uid-7"), resync_delay(resync, "uid-7"));
    }
    use crate::nomad::DeploymentState;
    use serde_json::json;

    fn status(applied: Option<&str>) -> NomadJobStatus {
        NomadJobStatus {
            last_applied_digest: applied.map(str::to_string),
            ..Default::default()
        }
    }

    fn deployment(version: u64, create_index: u64, state: &str, description: &str) -> Deployment {
        Deployment {
            id: format!("d{version}-{create_index}-0000"),
            job_version: version,
            create_index,
            status: state.into(),
            status_description: description.into(),
            ..Default::default()
        }
    }

    #[test]
    fn plan_actions_follow_the_top_level_diff_and_the_applied_digest() {
        let s = status(Some("d1"));
        assert_eq!(
            plan_action(DiffType::None, true, "d2", &s, DriftPolicy::Correct),
            PlanAction::InSync
        );
        assert_eq!(
            plan_action(DiffType::Added, false, "d1", &s, DriftPolicy::Correct),
            PlanAction::Create
        );
        assert_eq!(
            plan_action(DiffType::Edited, true, "d2", &s, DriftPolicy::Report),
            PlanAction::Update
        );
        assert_eq!(
            plan_action(DiffType::Edited, true, "d1", &s, DriftPolicy::Correct),
            PlanAction::CorrectDrift
        );
        assert_eq!(
            plan_action(DiffType::Edited, true, "d1", &s, DriftPolicy::Report),
            PlanAction::ReportDrift
        );
        assert_eq!(
            plan_action(
                DiffType::Edited,
                true,
                "d1",
                &status(None),
                DriftPolicy::Report
            ),
            PlanAction::Update,
            "a job adopted with a different spec is an update, not drift"
        );
        assert!(PlanAction::CorrectDrift.registers() && !PlanAction::ReportDrift.registers());
    }

    #[test]
    fn failed_deployment_is_that_of_the_applied_version() {
        let ds = vec![
            deployment(
                2,
                10,
                "failed",
                "Failed due to progress deadline - rolling back to job version 1",
            ),
            deployment(3, 12, "running", "Deployment is running"),
        ];
        assert_eq!(failed_deployment(&ds, 2).map(|d| d.create_index), Some(10));
        assert_eq!(failed_deployment(&ds, 3), None);
        assert_eq!(latest_deployment(&ds).map(|d| d.job_version), Some(3));
        let retried = vec![
            deployment(2, 10, "failed", ""),
            deployment(2, 14, "successful", ""),
        ];
        assert_eq!(
            failed_deployment(&retried, 2),
            None,
            "only the newest deployment of the version counts"
        );
    }

    #[test]
    fn nomad_auto_revert_is_recognised_and_not_repeated() {
        assert_eq!(
            auto_revert_target(
                "Failed due to unhealthy allocations - rolling back to job version 4"
            ),
            Some(4)
        );
        assert_eq!(auto_revert_target("Failed due to progress deadline"), None);
        let failed = deployment(
            5,
            20,
            "failed",
            "Failed due to progress deadline - rolling back to job version 4",
        );
        let versions = vec![
            json!({"Version": 6, "Stable": false}),
            json!({"Version": 4, "Stable": true}),
        ];
        assert_eq!(
            failure_response(&failed, 6, &versions, true),
            FailureResponse::RevertedByNomad { to_version: 4 }
        );
    }

    #[test]
    fn operator_reverts_to_the_newest_stable_version_other_than_the_current() {
        let failed = deployment(3, 20, "failed", "Failed due to unhealthy allocations");
        let versions = vec![
            json!({"Version": 3, "Stable": false}),
            json!({"Version": 2, "Stable": true}),
            json!({"Version": 1, "Stable": true}),
        ];
        assert_eq!(
            failure_response(&failed, 3, &versions, true),
            FailureResponse::Revert {
                to_version: 2,
                current_version: 3
            }
        );
        assert_eq!(
            failure_response(&failed, 3, &versions, false),
            FailureResponse::RecordOnly
        );
        assert_eq!(
            failure_response(&failed, 4, &versions, true),
            FailureResponse::RecordOnly,
            "job moved on"
        );
        let unstable = vec![
            json!({"Version": 3, "Stable": false}),
            json!({"Version": 0, "Stable": false}),
        ];
        assert_eq!(
            failure_response(&failed, 3, &unstable, true),
            FailureResponse::NoStableVersion
        );
    }

    #[test]
    fn deployments_are_expected_for_service_jobs_with_an_update_strategy() {
        assert!(expects_deployment(
            &json!({"Type": "service", "TaskGroups": [{"Update": {"MaxParallel": 1}}]})
        ));
        assert!(expects_deployment(
            &json!({"Update": {"MaxParallel": 2}, "TaskGroups": [{}]})
        ));
        assert!(!expects_deployment(
            &json!({"Type": "batch", "TaskGroups": [{"Update": {"MaxParallel": 1}}]})
        ));
        assert!(!expects_deployment(
            &json!({"Type": "service", "TaskGroups": [{"Update": {"MaxParallel": 0}}]})
        ));
    }

    #[test]
    fn readiness_follows_the_deployment_of_the_applied_version() {
        let job = json!({"Type": "service", "TaskGroups": [{"Update": {"MaxParallel": 1}}]});
        let mut running = deployment(2, 5, "running", "Deployment is running");
        running.task_groups.insert(
            "g".into(),
            DeploymentState {
                desired_total: 2,
                healthy_allocs: 1,
                ..Default::default()
            },
        );
        match readiness(&job, 2, std::slice::from_ref(&running)) {
            Readiness::Progressing { reason, message } => {
                assert_eq!(reason, "Deploying");
                assert!(message.contains("1/2 allocations healthy"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let done = deployment(2, 5, "successful", "Deployment completed successfully");
        assert!(matches!(
            readiness(&job, 2, std::slice::from_ref(&done)),
            Readiness::Ready(_)
        ));
        assert!(
            matches!(readiness(&job, 3, &[done]), Readiness::Progressing { .. }),
            "old version's deployment"
        );
        let failed = deployment(2, 5, "failed", "Failed due to unhealthy allocations");
        assert!(matches!(
            readiness(&job, 2, &[failed]),
            Readiness::Stalled {
                reason: "DeploymentFailed",
                ..
            }
        ));
        assert!(matches!(
            readiness(&json!({"Type": "batch"}), 0, &[]),
            Readiness::Ready(_)
        ));
        assert!(matches!(
            readiness(&json!({"Stop": true}), 0, &[]),
            Readiness::Progressing {
                reason: "JobStopped",
                ..
            }
        ));
    }
}
