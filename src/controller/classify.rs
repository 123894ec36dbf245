//! Step 2 of a reconcile, **classify** (pure): what the spec, Nomad's view and the
//! operator's memory add up to, as one [`JobState`], and the one [`Step`] that state
//! calls for ([`next_action`]). Step 3 ([`super::act`]) carries the step out and returns
//! a [`Fact`]; [`absorb`] folds the fact into what the next classification sees.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::{
    AnsweredRequests, DeletionPolicy, DriftPolicy, JobRef, NomadJobSpec, NomadJobStatus,
    PendingKind, PendingWrite, Promote, RevertActor, RevertStatus,
};
use crate::nomad::{Deployment, DiffType};

use super::observe::{JobView, Observed, Planned, VersionView};
use super::ownership::{Claim, ownership};
use super::render::DesiredJob;
use super::rollout::{Promotion, promotion};

/// How often a check-and-set conflict, or a plan that saw another job than the one read,
/// is answered by reading and planning again within one reconcile.
pub const CAS_ATTEMPTS: u32 = 3;

/// What the spec asks for.
#[derive(Clone, Debug)]
pub enum Spec {
    /// `spec.suspend` is true: no Nomad calls.
    Suspended,
    /// The spec cannot be turned into a Nomad job.
    Invalid(String),
    /// The job could not be produced right now: Nomad's parse endpoint or the API server
    /// (for `spec.variablesFrom`) could not be asked. The reconcile's error says why.
    Unresolved,
    /// The job to run.
    Desired(DesiredJob),
}

/// The user's choices that steer decisions.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// `spec.driftPolicy`.
    pub drift: DriftPolicy,
    /// `spec.revertOnFailure`.
    pub revert_on_failure: bool,
    /// `spec.adopt`.
    pub adopt: bool,
    /// `spec.preserveCounts`.
    pub preserve_counts: bool,
    /// `spec.deletionPolicy` (for the job left behind by a rename).
    pub deletion: DeletionPolicy,
    /// The object's deletion protection is on (the job left behind by a rename is kept).
    pub protected: bool,
    /// `spec.rollout.promote`.
    pub promote: Promote,
    /// The values of the request annotations now on the object.
    pub requests: AnsweredRequests,
}

impl Policy {
    /// The policy of `spec`.
    pub fn of(spec: &NomadJobSpec) -> Self {
        Self {
            drift: spec.drift_policy,
            revert_on_failure: spec.revert_on_failure,
            adopt: spec.adopt,
            preserve_counts: spec.preserve_counts,
            deletion: spec.deletion_policy,
            protected: false,
            promote: spec.rollout.as_ref().map(|r| r.promote).unwrap_or_default(),
            requests: AnsweredRequests::default(),
        }
    }
}

/// What the operator remembers between reconciles. It lives in `status` (one owner per
/// fact) and changes only through [`absorb`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Memory {
    /// Digest of the spec last registered (or found already registered).
    pub applied_digest: Option<String>,
    /// The Nomad version registered for it.
    pub applied_version: Option<u64>,
    /// Digest of a spec whose deployment failed and was answered.
    pub failed_digest: Option<String>,
    /// A Nomad write recorded before it was made, outcome not yet seen.
    pub pending: Option<PendingWrite>,
    /// The last revert.
    pub last_revert: Option<RevertStatus>,
    /// The job's `JobModifyIndex` when the status was last written.
    pub seen_job_modify_index: Option<u64>,
    /// The last plan of the applied spec found a difference that was not registered
    /// (drift left alone under `driftPolicy: Report`).
    pub unregistered_difference: bool,
    /// The job's `CreateIndex` as the status records it (the proof of ownership of a
    /// job without owner keys).
    pub job_create_index: Option<u64>,
    /// The spec's counts of the groups whose count belongs to someone else, at the last
    /// register.
    pub applied_counts: BTreeMap<String, u64>,
    /// The job managed before `spec.jobID` or the Nomad namespace changed, until the
    /// deletion policy has been applied to it.
    pub renamed_from: Option<JobRef>,
    /// The values of the request annotations already answered.
    pub answered: AnsweredRequests,
}

impl Memory {
    /// Notes a rename: the status records a job other than `desired`'s (the spec's job ID
    /// or Nomad namespace changed), which the deletion policy must then handle.
    pub fn note_rename(&mut self, status: &NomadJobStatus, desired: &DesiredJob) {
        if self.renamed_from.is_some() {
            return;
        }
        if let (Some(id), Some(namespace)) = (&status.job_id, &status.job_namespace)
            && (*id != desired.id || *namespace != desired.namespace)
        {
            self.renamed_from = Some(JobRef {
                namespace: namespace.clone(),
                job_id: id.clone(),
                create_index: status.job_create_index,
            });
            // What the status recorded is the old job's.
            self.job_create_index = None;
            self.applied_counts = BTreeMap::new();
        }
    }

    /// What `status` remembers.
    pub fn from_status(status: &NomadJobStatus) -> Self {
        Self {
            applied_digest: status.last_applied_digest.clone(),
            applied_version: status.applied_version,
            failed_digest: status.failed_digest.clone(),
            pending: status.pending.clone(),
            last_revert: status.last_revert.clone(),
            seen_job_modify_index: status.job_modify_index,
            unregistered_difference: status
                .plan
                .as_ref()
                .is_some_and(|p| p.diff_type != "None" && !p.registered),
            job_create_index: status.job_create_index,
            applied_counts: status.applied_counts.clone(),
            renamed_from: status.renamed_from.clone(),
            answered: status.answered.clone(),
        }
    }

    /// The promote annotation's value, when it is new.
    fn promote_request<'a>(&self, policy: &'a Policy) -> Option<&'a str> {
        new_value(
            policy.requests.promote.as_deref(),
            self.answered.promote.as_deref(),
        )
    }

    /// The force-launch annotation's value, when it is new.
    fn launch_request<'a>(&self, policy: &'a Policy) -> Option<&'a str> {
        new_value(
            policy.requests.force_launch.as_deref(),
            self.answered.force_launch.as_deref(),
        )
    }
}

/// `now` when it is set and differs from the value answered last.
fn new_value<'a>(now: Option<&'a str>, answered: Option<&str>) -> Option<&'a str> {
    now.filter(|v| Some(*v) != answered)
}

/// What happened so far in this reconcile.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// The plan interval passed since the object was last planned.
    pub plan_due: bool,
    /// This reconcile registered the spec (it is not planned again before the next one).
    pub registered: bool,
    /// The job changed since it was read (a write of ours, or someone else's).
    pub stale: bool,
    /// Check-and-set conflicts and plans that saw another job than the one read.
    pub retries: u32,
    /// A promotion was made or refused in this reconcile (it is not tried twice).
    pub promotion_tried: bool,
}

/// A failed deployment of the applied version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedDeployment {
    /// Deployment ID.
    pub id: String,
    /// The version it rolled out.
    pub version: u64,
    /// Nomad's description, such as `Failed due to progress deadline`.
    pub description: String,
}

impl FailedDeployment {
    fn of(d: &Deployment) -> Self {
        Self {
            id: d.id.clone(),
            version: d.job_version,
            description: d.status_description.clone(),
        }
    }
}

/// How a failed deployment is answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Nomad's auto-revert already went back to `to_version`: record it.
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
    /// `spec.revertOnFailure` is false, or the job moved on since: record the failure.
    RecordOnly,
}

/// Why a plan is needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanReason {
    /// The job does not exist in Nomad.
    Absent,
    /// The spec is not the one last applied.
    SpecChanged,
    /// The job's spec index moved since the operator last saw it.
    JobChanged,
    /// The resync interval passed.
    ResyncDue,
}

/// Where one object stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// `spec.suspend` is true.
    Suspended,
    /// The spec cannot be rendered.
    Invalid {
        /// What is wrong.
        message: String,
    },
    /// Nomad has not been read in this reconcile.
    Unobserved,
    /// The job changed since it was read.
    Stale,
    /// A recorded write did not happen (the job has not moved past its index).
    PendingNotLanded,
    /// A recorded write happened; which version it made needs the job's versions.
    PendingNeedsVersions,
    /// A recorded register happened and made `version`.
    PendingRegisterLanded {
        /// The version the register created.
        version: u64,
    },
    /// A recorded revert happened.
    PendingRevertLanded,
    /// The job belongs to another object or was created outside the operator.
    Conflict {
        /// What is wrong and what to do.
        message: String,
    },
    /// The applied version's deployment failed; the answer needs the job's versions.
    FailedNeedsVersions(FailedDeployment),
    /// The applied version's deployment failed and has not been answered.
    Failed(FailedDeployment, Answer),
    /// The spec is the one that failed: nothing is registered until it changes.
    HoldingFailedSpec,
    /// A plan is needed.
    NeedsPlan(PlanReason),
    /// Planned: the job does not exist; register it.
    Absent,
    /// Planned: the spec changed; register it with check-and-set on `cas_index`.
    OutOfSync {
        /// The plan's `JobModifyIndex`.
        cas_index: u64,
    },
    /// Planned: the spec did not change but the job did, and `driftPolicy` is `Correct`.
    Drifted {
        /// The plan's `JobModifyIndex`.
        cas_index: u64,
    },
    /// The job differs from the applied spec and `driftPolicy` is `Report`.
    DriftReported,
    /// The job kept changing between read, plan and register.
    KeptChanging,
    /// The job is stopped in Nomad.
    Stopped,
    /// The spec's job runs; the one managed before a rename awaits the deletion policy.
    Renamed {
        /// The job managed before.
        old: JobRef,
        /// `spec.deletionPolicy`.
        policy: DeletionPolicy,
        /// Deletion protection is on.
        protected: bool,
    },
    /// The applied version is being rolled out.
    Deploying,
    /// The applied version's deployment waits for its canaries to be healthy or promoted.
    AwaitingPromotion {
        /// What it waits for, and what to do.
        message: String,
    },
    /// The deployment's canaries are healthy and their promotion is asked for.
    Promotable {
        /// The deployment.
        deployment_id: String,
        /// Who asks.
        by: String,
        /// The promote annotation's new value, when it asks.
        request: Option<String>,
    },
    /// The promote annotation has a new value, but no deployment awaits promotion.
    NothingToPromote {
        /// The annotation's value.
        request: String,
    },
    /// The force-launch annotation has a new value.
    LaunchRequested {
        /// The annotation's value.
        request: String,
        /// The job is periodic (else the request is only answered).
        periodic: bool,
    },
    /// Nomad runs the spec.
    InSync,
}

/// The one step a state calls for.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Read the job and its deployments.
    Observe,
    /// Plan the desired job.
    Plan,
    /// Register the desired job with check-and-set (recorded as pending first).
    Register {
        /// `JobModifyIndex` to enforce.
        cas_index: u64,
        /// The spec did not change: this corrects drift.
        corrects_drift: bool,
    },
    /// Read the job's versions.
    ReadVersions,
    /// Revert to a stable version (recorded as pending first).
    Revert {
        /// The failed deployment.
        failed: FailedDeployment,
        /// The stable version to go back to.
        to_version: u64,
        /// `EnforcePriorVersion`.
        current_version: u64,
    },
    /// Apply the deletion policy to the job managed before a rename.
    Retire {
        /// The job managed before.
        old: JobRef,
        /// `spec.deletionPolicy`.
        policy: DeletionPolicy,
        /// Deletion protection is on: the job is kept.
        protected: bool,
    },
    /// Promote the canaries of a deployment.
    Promote {
        /// The deployment.
        deployment_id: String,
        /// Who asks.
        by: String,
        /// The promote annotation's value it answers, if any.
        request: Option<String>,
    },
    /// Launch the periodic job now.
    ForceLaunch {
        /// The force-launch annotation's value it answers.
        request: String,
    },
    /// Record a fact that needs no Nomad call.
    Record(Fact),
    /// Nothing more to do in this reconcile.
    Done,
}

/// What a step found or did.
#[derive(Clone, Debug, PartialEq)]
pub enum Fact {
    /// The job and its deployments were read.
    Observed(Box<Observed>),
    /// The job was planned.
    Planned(Box<Planned>),
    /// The spec was registered as `version`.
    Registered {
        /// The version Nomad created.
        version: u64,
        /// The spec's counts of the groups whose count belongs to someone else.
        spec_counts: BTreeMap<String, u64>,
        /// Counts set from the spec over someone else's (for the Events).
        count_notes: Vec<String>,
        /// The evaluation Nomad created.
        eval_id: String,
        /// It corrected drift.
        corrects_drift: bool,
        /// The job as read right after the register.
        job: Option<Box<JobView>>,
    },
    /// Nomad refused the register's check-and-set: someone else changed the job.
    CasConflict,
    /// The job's versions were read.
    Versions(Vec<VersionView>),
    /// The operator reverted the job.
    Reverted {
        /// The failed deployment.
        failed: FailedDeployment,
        /// The stable version the job went back to.
        to_version: u64,
    },
    /// A failed deployment was answered without a revert by the operator.
    FailureRecorded {
        /// The failed deployment.
        failed: FailedDeployment,
        /// How it was answered (not [`Answer::Revert`]).
        answer: Answer,
    },
    /// A recorded write turned out not to have happened.
    PendingCleared,
    /// A recorded register turned out to have made `version`.
    RegisterRecovered {
        /// The version the register created.
        version: u64,
    },
    /// A recorded revert turned out to have happened.
    RevertRecovered,
    /// The canaries of a deployment were promoted.
    Promoted {
        /// The deployment.
        deployment_id: String,
        /// Who asked.
        by: String,
        /// The promote annotation's value it answered, if any.
        request: Option<String>,
    },
    /// A promotion was asked for and not made.
    PromotionSkipped {
        /// The promote annotation's value it answered, if any.
        request: Option<String>,
        /// Why, for the Event.
        why: String,
    },
    /// The periodic job was launched on request.
    Launched {
        /// The force-launch annotation's value it answered.
        request: String,
        /// The evaluation of the launched job.
        eval_id: String,
    },
    /// A launch was asked for and not made.
    LaunchSkipped {
        /// The force-launch annotation's value it answered.
        request: String,
        /// Why, for the Event.
        why: String,
    },
    /// The deletion policy was applied to the job managed before a rename.
    Retired {
        /// That job.
        old: JobRef,
        /// What was done with it.
        note: String,
    },
}

/// Classifies one object. `owner` is the object's (namespace, name).
pub fn classify(
    spec: &Spec,
    observed: Option<&Observed>,
    memory: &Memory,
    progress: &Progress,
    policy: &Policy,
    owner: (&str, &str),
) -> JobState {
    let desired = match spec {
        Spec::Suspended => return JobState::Suspended,
        Spec::Invalid(message) => {
            return JobState::Invalid {
                message: message.clone(),
            };
        }
        Spec::Unresolved => return JobState::Unobserved,
        Spec::Desired(desired) => desired,
    };
    let Some(observed) = observed else {
        return JobState::Unobserved;
    };
    if progress.stale {
        return JobState::Stale;
    }
    if let Some(pending) = &memory.pending {
        return resolve_pending(pending, observed);
    }
    let claim = Claim {
        recorded_create_index: memory.job_create_index,
        adopt: policy.adopt,
    };
    if let Some(message) =
        ownership(observed.job.as_ref(), owner.0, owner.1, claim).conflict_message(&desired.id)
    {
        return JobState::Conflict { message };
    }
    let digest = desired.digest.as_str();
    let applied = memory.applied_digest.as_deref() == Some(digest);
    let held = memory.failed_digest.as_deref() == Some(digest);
    if let (true, false, Some(version), Some(job)) =
        (applied, held, memory.applied_version, &observed.job)
        && let Some(failed) = failed_deployment(&observed.deployments, version)
    {
        return answer_failure(failed, job, observed.versions.as_deref(), policy);
    }
    if held {
        return JobState::HoldingFailedSpec;
    }
    if progress.retries >= CAS_ATTEMPTS {
        return JobState::KeptChanging;
    }
    if let Some(plan) = &observed.plan {
        if plan.job_modify_index != observed.job_modify_index() {
            return JobState::Stale;
        }
        if plan.diff != DiffType::None {
            return match (&observed.job, applied, policy.drift) {
                (None, _, _) => JobState::Absent,
                (Some(_), false, _) => JobState::OutOfSync {
                    cas_index: plan.job_modify_index,
                },
                (Some(_), true, DriftPolicy::Correct) => JobState::Drifted {
                    cas_index: plan.job_modify_index,
                },
                (Some(_), true, DriftPolicy::Report) => JobState::DriftReported,
            };
        }
    } else if !progress.registered
        && let Some(reason) = plan_reason(memory, digest, observed, progress.plan_due)
    {
        return JobState::NeedsPlan(reason);
    } else if applied && memory.unregistered_difference {
        // Drift found earlier and left alone; under `Correct` (the policy changed since)
        // it is planned again and corrected.
        return match policy.drift {
            DriftPolicy::Report => JobState::DriftReported,
            DriftPolicy::Correct => JobState::NeedsPlan(PlanReason::JobChanged),
        };
    }
    settled(observed, memory, policy, progress)
}

/// The state of a job that needs no write: stopped, deploying or in sync (the job of
/// before a rename then gets the deletion policy).
fn settled(observed: &Observed, memory: &Memory, policy: &Policy, progress: &Progress) -> JobState {
    if let Some(old) = &memory.renamed_from {
        return JobState::Renamed {
            old: old.clone(),
            policy: policy.deletion,
            protected: policy.protected,
        };
    }
    let Some(job) = &observed.job else {
        return JobState::Deploying;
    };
    if job.stop {
        return JobState::Stopped;
    }
    if let Some(request) = memory.launch_request(policy) {
        return JobState::LaunchRequested {
            request: request.to_string(),
            periodic: job.periodic.is_some(),
        };
    }
    // Rolling out: the applied version's deployment is still going, or Nomad has yet to
    // start the one it will create.
    let deployment = memory
        .applied_version
        .and_then(|v| deployment_of(&observed.deployments, v));
    let request = memory.promote_request(policy);
    if let Some(d) = deployment.filter(|d| d.is_active()) {
        match promotion(d, policy.promote, request) {
            Promotion::Promote { .. } if progress.promotion_tried => {
                return JobState::Deploying;
            }
            Promotion::Promote { deployment_id, by } => {
                return JobState::Promotable {
                    deployment_id,
                    by,
                    request: request.map(str::to_string),
                };
            }
            Promotion::Wait(message) => return JobState::AwaitingPromotion { message },
            Promotion::Nothing => {}
        }
    }
    if let Some(request) = request {
        return JobState::NothingToPromote {
            request: request.to_string(),
        };
    }
    let rolling = match deployment {
        Some(d) => !matches!(d.status.as_str(), "successful" | "failed" | "cancelled"),
        None => job.expects_deployment,
    };
    if rolling {
        JobState::Deploying
    } else {
        JobState::InSync
    }
}

/// Whether a recorded write happened: the job moved past the index it started from.
fn resolve_pending(pending: &PendingWrite, observed: &Observed) -> JobState {
    if observed.job_modify_index() <= pending.job_modify_index {
        return JobState::PendingNotLanded;
    }
    match pending.kind {
        PendingKind::Revert => JobState::PendingRevertLanded,
        PendingKind::Register => match &observed.versions {
            None => JobState::PendingNeedsVersions,
            // Check-and-set: the first version past the index is the register's.
            Some(versions) => {
                let first = versions
                    .iter()
                    .filter(|v| v.job_modify_index > pending.job_modify_index)
                    .min_by_key(|v| v.job_modify_index)
                    .map(|v| v.version);
                let version = first
                    .or(observed.job.as_ref().map(|j| j.version))
                    .unwrap_or(0);
                JobState::PendingRegisterLanded { version }
            }
        },
    }
}

/// How to answer a failed deployment of the applied version.
fn answer_failure(
    failed: &Deployment,
    job: &JobView,
    versions: Option<&[VersionView]>,
    policy: &Policy,
) -> JobState {
    let info = FailedDeployment::of(failed);
    if let Some(to_version) = auto_revert_target(&failed.status_description) {
        return JobState::Failed(info, Answer::RevertedByNomad { to_version });
    }
    if !policy.revert_on_failure || job.version != failed.job_version {
        return JobState::Failed(info, Answer::RecordOnly);
    }
    let Some(versions) = versions else {
        return JobState::FailedNeedsVersions(info);
    };
    let stable = versions
        .iter()
        .filter(|v| v.stable && v.version != job.version)
        .map(|v| v.version)
        .max();
    let answer = match stable {
        Some(to_version) => Answer::Revert {
            to_version,
            current_version: job.version,
        },
        None => Answer::NoStableVersion,
    };
    JobState::Failed(info, answer)
}

/// Why the object must be planned, if it must: the spec is not known to be applied, the
/// job's spec index moved since the operator last saw it, or the plan interval passed
/// (and no deployment is in progress).
fn plan_reason(
    memory: &Memory,
    digest: &str,
    observed: &Observed,
    plan_due: bool,
) -> Option<PlanReason> {
    let Some(job) = &observed.job else {
        return Some(PlanReason::Absent);
    };
    if memory.applied_digest.as_deref() != Some(digest) {
        Some(PlanReason::SpecChanged)
    } else if memory.seen_job_modify_index != Some(job.job_modify_index) {
        Some(PlanReason::JobChanged)
    } else if plan_due && !observed.deployments.iter().any(|d| d.is_active()) {
        // Nothing moved: a plan only looks for drift no index shows, and not while a
        // deployment is in progress (the job is changing anyway, and watched).
        Some(PlanReason::ResyncDue)
    } else {
        None
    }
}

/// The one step `state` calls for.
pub fn next_action(state: &JobState) -> Step {
    match state {
        JobState::Unobserved | JobState::Stale => Step::Observe,
        JobState::PendingNotLanded => Step::Record(Fact::PendingCleared),
        JobState::PendingNeedsVersions | JobState::FailedNeedsVersions(_) => Step::ReadVersions,
        JobState::PendingRegisterLanded { version } => {
            Step::Record(Fact::RegisterRecovered { version: *version })
        }
        JobState::PendingRevertLanded => Step::Record(Fact::RevertRecovered),
        JobState::Failed(
            failed,
            Answer::Revert {
                to_version,
                current_version,
            },
        ) => Step::Revert {
            failed: failed.clone(),
            to_version: *to_version,
            current_version: *current_version,
        },
        JobState::Failed(failed, answer) => Step::Record(Fact::FailureRecorded {
            failed: failed.clone(),
            answer: answer.clone(),
        }),
        JobState::NeedsPlan(_) => Step::Plan,
        JobState::Renamed {
            old,
            policy,
            protected,
        } => Step::Retire {
            old: old.clone(),
            policy: *policy,
            protected: *protected,
        },
        JobState::Promotable {
            deployment_id,
            by,
            request,
        } => Step::Promote {
            deployment_id: deployment_id.clone(),
            by: by.clone(),
            request: request.clone(),
        },
        JobState::NothingToPromote { request } => Step::Record(Fact::PromotionSkipped {
            request: Some(request.clone()),
            why: "no deployment of this job waits for its canaries to be promoted".into(),
        }),
        JobState::LaunchRequested {
            request,
            periodic: true,
        } => Step::ForceLaunch {
            request: request.clone(),
        },
        JobState::LaunchRequested {
            request,
            periodic: false,
        } => Step::Record(Fact::LaunchSkipped {
            request: request.clone(),
            why: "the job is not periodic".into(),
        }),
        JobState::Absent => Step::Register {
            cas_index: 0,
            corrects_drift: false,
        },
        JobState::OutOfSync { cas_index } => Step::Register {
            cas_index: *cas_index,
            corrects_drift: false,
        },
        JobState::Drifted { cas_index } => Step::Register {
            cas_index: *cas_index,
            corrects_drift: true,
        },
        JobState::Suspended
        | JobState::Invalid { .. }
        | JobState::Conflict { .. }
        | JobState::HoldingFailedSpec
        | JobState::DriftReported
        | JobState::KeptChanging
        | JobState::Stopped
        | JobState::Deploying
        | JobState::AwaitingPromotion { .. }
        | JobState::InSync => Step::Done,
    }
}

/// The write a step records in `status.pending` before making it, if it writes.
///
/// The register of a new job (check-and-set index 0) records nothing: a restart after
/// it finds the job, whose `Meta` names this object, and a plan without a difference
/// counts the spec as applied; the status write it would cost is saved on every create.
pub fn intent(step: &Step, digest: &str, observed: Option<&Observed>) -> Option<PendingWrite> {
    let index = observed.map_or(0, Observed::job_modify_index);
    match step {
        Step::Register { cas_index: 0, .. } => None,
        Step::Register {
            cas_index,
            corrects_drift,
        } => Some(PendingWrite {
            kind: PendingKind::Register,
            digest: digest.to_string(),
            job_modify_index: *cas_index,
            from_version: None,
            to_version: None,
            reason: None,
            corrects_drift: *corrects_drift,
        }),
        Step::Revert {
            failed, to_version, ..
        } => Some(PendingWrite {
            kind: PendingKind::Revert,
            digest: digest.to_string(),
            job_modify_index: index,
            from_version: Some(failed.version),
            to_version: Some(*to_version),
            reason: Some(failed.description.clone()),
            corrects_drift: false,
        }),
        _ => None,
    }
}

/// What to record in the status before `step` is carried out, when anything: the
/// pending register or revert ([`intent`]), or a forced periodic launch's request as
/// answered. A launch is not idempotent and leaves nothing a restart could match to its
/// request, so it is made at most once: a process that dies between this record and
/// Nomad's answer does not launch again ([`launch_not_made`] undoes the record when the
/// call surely did not happen).
pub fn recorded_before(
    step: &Step,
    digest: &str,
    observed: Option<&Observed>,
    memory: &Memory,
) -> Option<Memory> {
    let mut before = memory.clone();
    if let Some(pending) = intent(step, digest, observed) {
        before.pending = Some(pending);
        return Some(before);
    }
    match step {
        Step::ForceLaunch { request } => {
            before.answered.force_launch = Some(request.clone());
            Some(before)
        }
        _ => None,
    }
}

/// After `step` failed with `error`: forgets a launch request recorded as answered by
/// [`recorded_before`] when Nomad surely did not launch (the call never went out, or
/// Nomad refused it), so that it is tried again. `answered_before` is the value answered
/// until then.
pub fn launch_not_made(
    step: &Step,
    error: &crate::nomad::NomadError,
    answered_before: Option<String>,
    memory: &mut Memory,
) {
    if matches!(step, Step::ForceLaunch { .. }) && error.surely_not_applied() {
        memory.answered.force_launch = answered_before;
    }
}

/// Folds `fact` into what the next classification sees. `digest` is the desired spec's.
pub fn absorb(
    fact: &Fact,
    digest: &str,
    now: &Time,
    observed: &mut Option<Observed>,
    memory: &mut Memory,
    progress: &mut Progress,
) {
    let revert = |from_version: u64, to_version: u64, reason: &str, by: RevertActor| RevertStatus {
        from_version,
        to_version,
        reason: reason.to_string(),
        time: now.clone(),
        by,
    };
    match fact {
        Fact::Observed(fresh) => {
            *observed = Some((**fresh).clone());
            progress.stale = false;
        }
        Fact::Planned(plan) => {
            if let Some(o) = observed.as_mut() {
                let matches = plan.job_modify_index == o.job_modify_index();
                if plan.diff == DiffType::None && matches {
                    // Nomad runs this spec: it counts as applied (as the version running).
                    if memory.applied_digest.as_deref() != Some(digest)
                        || memory.applied_version.is_none()
                    {
                        memory.applied_version = o.job.as_ref().map(|j| j.version);
                    }
                    memory.applied_digest = Some(digest.to_string());
                }
                memory.unregistered_difference = plan.diff != DiffType::None && matches;
                o.plan = Some((**plan).clone());
            }
        }
        Fact::Registered {
            version,
            job,
            spec_counts,
            ..
        } => {
            memory.applied_digest = Some(digest.to_string());
            memory.applied_version = Some(*version);
            memory.applied_counts = spec_counts.clone();
            memory.pending = None;
            memory.unregistered_difference = false;
            progress.registered = true;
            if let Some(o) = observed.as_mut() {
                o.job = job.as_deref().cloned();
                o.plan = None;
            }
        }
        Fact::Retired { .. } => {
            memory.renamed_from = None;
        }
        Fact::Promoted { request, .. } => {
            if request.is_some() {
                memory.answered.promote = request.clone();
            }
            progress.promotion_tried = true;
            progress.stale = true;
        }
        Fact::PromotionSkipped { request, .. } => {
            if request.is_some() {
                memory.answered.promote = request.clone();
            }
            progress.promotion_tried = true;
        }
        Fact::Launched { request, .. } | Fact::LaunchSkipped { request, .. } => {
            memory.answered.force_launch = Some(request.clone());
        }
        Fact::CasConflict => {
            memory.pending = None;
            progress.retries += 1;
            progress.stale = true;
        }
        Fact::Versions(versions) => {
            if let Some(o) = observed.as_mut() {
                o.versions = Some(versions.clone());
            }
        }
        Fact::Reverted { failed, to_version } => {
            memory.last_revert = Some(revert(
                failed.version,
                *to_version,
                &failed.description,
                RevertActor::Operator,
            ));
            memory.failed_digest = Some(digest.to_string());
            memory.pending = None;
            progress.stale = true;
        }
        Fact::FailureRecorded { failed, answer } => {
            if let Answer::RevertedByNomad { to_version } = answer {
                memory.last_revert = Some(revert(
                    failed.version,
                    *to_version,
                    &failed.description,
                    RevertActor::Nomad,
                ));
            }
            memory.failed_digest = Some(digest.to_string());
        }
        Fact::PendingCleared => memory.pending = None,
        Fact::RegisterRecovered { version } => {
            if let Some(pending) = memory.pending.take() {
                memory.applied_digest = Some(pending.digest);
                memory.applied_version = Some(*version);
            }
        }
        Fact::RevertRecovered => {
            if let Some(pending) = memory.pending.take() {
                memory.last_revert = Some(revert(
                    pending.from_version.unwrap_or_default(),
                    pending.to_version.unwrap_or_default(),
                    pending.reason.as_deref().unwrap_or_default(),
                    RevertActor::Operator,
                ));
                memory.failed_digest = Some(pending.digest);
            }
        }
    }
}

/// The deployment of the version the operator registered, if it failed.
///
/// Looks only at deployments of `applied_version` (newest first), so a later deployment,
/// such as the one of Nomad's auto-revert, does not hide the failure.
pub fn failed_deployment(deployments: &[Deployment], applied_version: u64) -> Option<&Deployment> {
    deployment_of(deployments, applied_version).filter(|d| d.status == "failed")
}

/// The newest deployment of `version`, if any.
pub fn deployment_of(deployments: &[Deployment], version: u64) -> Option<&Deployment> {
    deployments
        .iter()
        .filter(|d| d.job_version == version)
        .max_by_key(|d| d.create_index)
}

/// Parses Nomad's "... - rolling back to job version N" deployment description.
pub fn auto_revert_target(description: &str) -> Option<u64> {
    let (_, tail) = description.rsplit_once("rolling back to job version ")?;
    tail.trim().parse().ok()
}

#[cfg(test)]
#[path = "classify_tests.rs"]
mod tests;
