//! Step 3 of a reconcile, **act**: the thin I/O that carries out one [`Step`] against
//! Nomad and returns the [`Fact`] of what happened. Decisions are made before
//! ([`super::classify`]) and after ([`super::report`]); nothing here decides.

use crate::crd::{DeletionPolicy, JobRef};
use crate::nomad::{NomadClient, NomadError, Scope};

use super::classify::{Fact, Step};
use super::deletion::{Deletion, Guards, deletion};
use super::observe::{self, JobView, Planned};
use super::ownership::{Claim, ownership};
use super::render::DesiredJob;
use super::send::Sent;

/// Carries out `step` for `desired` in `scope` on behalf of the object `owner`
/// (namespace, name); a plan or a register sends `sent`, and a register that creates
/// the job is told by `plan` (the plan this reconcile made of `sent`) what it created.
/// [`Step::Done`] does nothing and returns `None`; every other step returns its fact.
pub async fn act(
    nomad: &NomadClient,
    scope: &Scope,
    desired: &DesiredJob,
    (sent, plan): (&Sent, Option<&Planned>),
    owner: (&str, &str),
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
            nomad.plan_job(scope, id, &sent.job, true).await?,
        ))),
        Step::ReadVersions => Fact::Versions(observe::versions(nomad, scope, id).await?),
        Step::Retire {
            old,
            policy,
            protected,
        } => {
            let guards = Guards {
                crd_terminating: false,
                protected,
            };
            let note = retire(nomad, scope, &old, policy, guards, owner).await?;
            Fact::Retired { old, note }
        }
        Step::Register {
            cas_index,
            corrects_drift,
        } => match nomad.register_job(scope, &sent.job, Some(cas_index)).await {
            Ok(answer) => {
                let created = plan
                    .filter(|_| cas_index == 0)
                    .and_then(|plan| JobView::created(plan, &sent.job, answer.job_modify_index));
                let (version, job) = match created {
                    Some(view) => (view.version, Some(view)),
                    None => registered_version(nomad, scope, id, answer.job_modify_index).await?,
                };
                Fact::Registered {
                    version,
                    spec_counts: sent.spec_counts.clone(),
                    count_notes: sent
                        .counts
                        .iter()
                        .filter_map(|c| c.event_message())
                        .collect(),
                    eval_id: answer.eval_id,
                    corrects_drift,
                    job: job.map(Box::new),
                }
            }
            Err(NomadError::Conflict(_)) => Fact::CasConflict,
            Err(other) => return Err(other),
        },
        Step::Promote {
            deployment_id,
            by,
            request,
        } => match nomad.promote_deployment(scope, &deployment_id).await {
            Ok(_) => Fact::Promoted {
                deployment_id,
                by,
                request,
            },
            // The deployment ended or was replaced since it was read, or Nomad does not
            // count every canary healthy yet: nothing is promoted.
            Err(NomadError::BadRequest(message) | NomadError::NotFound(message)) => {
                Fact::PromotionSkipped {
                    request,
                    why: format!(
                        "Nomad did not promote deployment {}: {message}",
                        super::report::short_id(&deployment_id)
                    ),
                }
            }
            Err(other) => return Err(other),
        },
        Step::ForceLaunch { request } => match nomad.force_periodic(scope, id).await {
            Ok(answer) => Fact::Launched {
                request,
                eval_id: answer.eval_id,
            },
            Err(NomadError::BadRequest(message)) => Fact::LaunchSkipped {
                request,
                why: format!("Nomad did not launch the job: {message}"),
            },
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

/// Applies `policy` to `old`, the job managed before a rename, exactly as deleting the
/// object would; returns what was done, for the Event.
async fn retire(
    nomad: &NomadClient,
    scope: &Scope,
    old: &JobRef,
    policy: DeletionPolicy,
    guards: Guards,
    owner: (&str, &str),
) -> Result<String, NomadError> {
    let scope = Scope {
        namespace: Some(old.namespace.clone()),
        region: scope.region.clone(),
    };
    let what = format!(
        "Nomad job {:?} in namespace {:?}",
        old.job_id, old.namespace
    );
    let job = observe::read_job(nomad, &scope, &old.job_id)
        .await?
        .as_ref()
        .map(JobView::parse);
    let claim = Claim {
        recorded_create_index: old.create_index,
        adopt: false,
    };
    let owned = ownership(job.as_ref(), owner.0, owner.1, claim);
    Ok(
        match deletion(policy, false, job.as_ref(), &owned, guards) {
            Deletion::Refused(why) => {
                format!("the job ID or namespace changed; kept {what} running: {why}")
            }
            Deletion::Orphan(why) => {
                format!("the job ID or namespace changed; left {what} running: {why}")
            }
            Deletion::Nothing => format!(
                "the job ID or namespace changed; {what} is gone, stopped or not this object's: nothing to do"
            ),
            stop @ (Deletion::Stop | Deletion::Purge) => {
                let purge = stop == Deletion::Purge;
                match nomad.deregister_job(&scope, &old.job_id, purge).await {
                    Ok(_) | Err(NomadError::NotFound(_)) => {}
                    Err(other) => return Err(other),
                }
                let done = if purge {
                    "purged"
                } else {
                    "deregistered (stopped)"
                };
                format!(
                    "the job ID or namespace changed; {done} {what}, as spec.deletionPolicy says"
                )
            }
        },
    )
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
