//! Step 3 of a reconcile, **act**: the thin I/O that carries out one [`Step`] against
//! Nomad and returns the [`Fact`] of what happened. Decisions are made before
//! ([`super::classify`]) and after ([`super::report`]); nothing here decides.

use crate::nomad::{NomadClient, NomadError, Scope};

use super::classify::{Fact, Step};
use super::observe::{self, JobView, Planned};
use super::render::DesiredJob;

/// Carries out `step` for `desired` in `scope`. [`Step::Done`] does nothing and returns
/// `None`; every other step returns its fact.
pub async fn act(
    nomad: &NomadClient,
    scope: &Scope,
    desired: &DesiredJob,
    step: Step,
) -> Result<Option<Fact>, NomadError> {
    let id = desired.id.as_str();
    let fact = match step {
        Step::Done => return Ok(None),
        Step::Record(fact) => fact,
        Step::Observe => Fact::Observed(Box::new(
            observe::job_and_deployments(nomad, scope, id).await?,
        )),
        Step::Plan => Fact::Planned(Box::new(Planned::new(
            nomad.plan_job(scope, id, &desired.job, true).await?,
        ))),
        Step::ReadVersions => Fact::Versions(observe::versions(nomad, scope, id).await?),
        Step::Register {
            cas_index,
            corrects_drift,
        } => match nomad
            .register_job(scope, &desired.job, Some(cas_index))
            .await
        {
            Ok(answer) => {
                let (version, job) =
                    registered_version(nomad, scope, id, answer.job_modify_index).await?;
                Fact::Registered {
                    version,
                    eval_id: answer.eval_id,
                    corrects_drift,
                    job,
                }
            }
            Err(NomadError::Conflict(_)) => Fact::CasConflict,
            Err(other) => return Err(other),
        },
        Step::Revert {
            failed,
            to_version,
            current_version,
        } => match nomad
            .revert_job(scope, id, to_version, Some(current_version))
            .await
        {
            Ok(_) => Fact::Reverted { failed, to_version },
            // The job moved on meanwhile (`EnforcePriorVersion`): record the failure only.
            Err(NomadError::Conflict(_)) => Fact::FailureRecorded {
                failed,
                answer: super::classify::Answer::RecordOnly,
            },
            Err(other) => return Err(other),
        },
    };
    Ok(Some(fact))
}

/// The version a register created, from its `JobModifyIndex`: the job's current version
/// when the job still has that index, else the version that has it. Also the job as read.
async fn registered_version(
    nomad: &NomadClient,
    scope: &Scope,
    id: &str,
    job_modify_index: u64,
) -> Result<(u64, Option<JobView>), NomadError> {
    let job = observe::read_job(nomad, scope, id)
        .await?
        .as_ref()
        .map(JobView::parse);
    if let Some(view) = &job
        && view.job_modify_index == job_modify_index
    {
        return Ok((view.version, job));
    }
    let versions = observe::versions(nomad, scope, id).await?;
    let version = versions
        .iter()
        .find(|v| v.job_modify_index == job_modify_index)
        .or(versions.first())
        .map(|v| v.version)
        .unwrap_or_default();
    Ok((version, job))
}
