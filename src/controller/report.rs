//! Step 4 of a reconcile, **report** (pure): the previous status plus what this
//! reconcile learned and did make the new status, its conditions, and the Events.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use std::collections::BTreeMap;

use crate::crd::{ChildrenStatus, NomadJobStatus, PromotionStatus, condition, reason};
use crate::nomad::{Deployment, NomadError};

use super::classify::{Answer, CAS_ATTEMPTS, Fact, JobState, Memory, Policy, Spec, deployment_of};
use super::error::Error;
use super::observe::{Details, JobView, Observed};
use super::outcome::{Outcome, completed, failures_text, placement_failures, run_outcome};
use super::rollout::canaries;
use super::status::{
    Truth, find_condition, mirror, plan_status, ready_transition, set_condition, set_readiness,
};

/// An Event to publish about the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// A Warning (else Normal).
    pub warning: bool,
    /// The Event's reason (one of [`reason`]).
    pub reason: String,
    /// What happened.
    pub note: String,
}

impl Notice {
    fn normal(reason: &str, note: String) -> Self {
        Self {
            warning: false,
            reason: reason.to_string(),
            note,
        }
    }

    fn warning(reason: &str, note: String) -> Self {
        Self {
            warning: true,
            reason: reason.to_string(),
            note,
        }
    }

    /// The Kubernetes Event of this notice, made by `action` (`Reconcile`, `Dispatch`).
    pub fn into_event(self, action: &str) -> kube::runtime::events::Event {
        use kube::runtime::events::{Event, EventType};
        Event {
            type_: if self.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: self.reason,
            note: Some(self.note),
            action: action.into(),
            secondary: None,
        }
    }
}

/// The new status and the Events of one reconcile.
#[derive(Clone, Debug)]
pub struct Report {
    /// The status to write (written only when it differs from the previous one).
    pub status: NomadJobStatus,
    /// The Events to publish.
    pub notices: Vec<Notice>,
}

/// What a report is made from.
pub struct Inputs<'a> {
    /// What the spec asks for.
    pub spec: &'a Spec,
    /// The user's policies.
    pub policy: Policy,
    /// Nomad's view, as far as it was read.
    pub observed: Option<&'a Observed>,
    /// The operator's memory after this reconcile.
    pub memory: &'a Memory,
    /// What this reconcile did, in order.
    pub facts: &'a [Fact],
    /// The last state classified.
    pub state: &'a JobState,
    /// The error that ended the reconcile, if any.
    pub error: Option<&'a Error>,
    /// Keys of the spec that Nomad's job schema or this API do not have.
    pub warnings: &'a [String],
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Now, for condition transition times.
    pub now: &'a Time,
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

/// Reasons of the `Ready` condition that warrant a Warning Event when they appear.
const WARNING_REASONS: [&str; 7] = [
    reason::INVALID_SPEC,
    reason::CONFLICT,
    reason::NOMAD_UNAVAILABLE,
    reason::PERMISSION_DENIED,
    reason::NOMAD_REJECTED,
    reason::PLACEMENT_FAILED,
    reason::JOB_FAILED,
];

/// Reasons of the `Ready` condition that warrant a Normal Event when they appear.
const NOTABLE_REASONS: [&str; 1] = [reason::AWAITING_PROMOTION];

const DRIFT_REPORTED: &str =
    "the job in Nomad differs from the spec; driftPolicy is Report, so it is left as it is";

/// Builds the new status and the Events from `previous` and `inputs`.
pub fn report(previous: &NomadJobStatus, inputs: &Inputs<'_>) -> Report {
    let mut status = previous.clone();
    status.observed_generation = inputs.generation;
    let (generation, now) = (inputs.generation, inputs.now);
    let mut notices = Vec::new();
    update_warning_condition(&mut status, previous, inputs, &mut notices);
    let desired = match inputs.spec {
        Spec::Suspended => {
            set_condition(
                &mut status.conditions,
                condition::RECONCILING,
                Truth::False,
                reason::SUSPENDED,
                "spec.suspend is true: the operator makes no Nomad calls for this object",
                generation,
                now,
            );
            return Report { status, notices };
        }
        Spec::Invalid(message) => {
            let readiness = Readiness::Stalled {
                reason: reason::INVALID_SPEC,
                message: format!("invalid spec: {message}"),
            };
            set_readiness(&mut status.conditions, &readiness, generation, now);
            announce_transition(previous, &status, &mut notices);
            return Report { status, notices };
        }
        Spec::Unresolved => {
            let readiness = inputs.error.map_or_else(
                || Readiness::Progressing {
                    reason: reason::NOMAD_UNAVAILABLE,
                    message: "the job could not be produced from the spec yet".into(),
                },
                error_readiness,
            );
            set_readiness(&mut status.conditions, &readiness, generation, now);
            announce_transition(previous, &status, &mut notices);
            return Report { status, notices };
        }
        Spec::Desired(desired) => desired,
    };
    status.job_id = Some(desired.id.clone());
    status.job_namespace = Some(desired.namespace.clone());
    let memory = inputs.memory;
    status.applied_version = memory.applied_version;
    status.last_applied_digest = memory.applied_digest.clone();
    status.failed_digest = memory.failed_digest.clone();
    status.pending = memory.pending.clone();
    status.last_revert = memory.last_revert.clone();
    status.applied_counts = memory.applied_counts.clone();
    status.renamed_from = memory.renamed_from.clone();
    status.answered = memory.answered.clone();

    if let JobState::Conflict { .. } = inputs.state {
        mirror(&mut status, None, &[], None);
        status.plan = None;
    } else if let Some(observed) = inputs.observed {
        mirror(
            &mut status,
            observed.job.as_ref(),
            &observed.deployments,
            observed.details.as_ref(),
        );
    }
    // The last plan, and whether a register followed it.
    let mut last_plan = None;
    for fact in inputs.facts {
        match fact {
            Fact::Planned(plan) => last_plan = Some(plan_status(&plan.answer)),
            Fact::Registered { .. } => {
                if let Some(plan) = last_plan.as_mut() {
                    plan.registered = true;
                }
            }
            _ => {}
        }
    }
    if last_plan.is_some() {
        status.plan = last_plan;
    }
    if !matches!(inputs.state, JobState::Conflict { .. })
        && let Some(observed) = inputs.observed
    {
        mirror_rollout(&mut status, previous, observed, inputs, &mut notices);
    }
    update_plan_warnings(&mut status, previous, inputs, &mut notices);
    update_drift_condition(&mut status, previous, inputs, &mut notices);
    notices.extend(inputs.facts.iter().flat_map(fact_notices));
    if let Some(note) = adoption(previous, &status, inputs) {
        notices.push(Notice::normal(reason::ADOPTED, note));
    }
    if matches!(inputs.error, Some(Error::CasExhausted(_))) {
        notices.push(Notice::warning(
            reason::CONFLICT,
            format!(
                "the Nomad job kept changing between plan and register ({CAS_ATTEMPTS} check-and-set conflicts)"
            ),
        ));
    }
    let readiness = match inputs.error {
        Some(error) => error_readiness(error),
        None => {
            let wants_stop =
                desired.job.get("Stop").and_then(serde_json::Value::as_bool) == Some(true);
            state_readiness(
                inputs.state,
                inputs.observed,
                memory,
                &inputs.policy,
                wants_stop,
                &status,
            )
        }
    };
    set_readiness(&mut status.conditions, &readiness, generation, now);
    announce_transition(previous, &status, &mut notices);
    Report { status, notices }
}

/// Sets the `SpecWarning` condition to the spec's unknown keys (or removes it), with a
/// Warning Event when the list changes.
fn update_warning_condition(
    status: &mut NomadJobStatus,
    previous: &NomadJobStatus,
    inputs: &Inputs<'_>,
    notices: &mut Vec<Notice>,
) {
    if inputs.warnings.is_empty() {
        status
            .conditions
            .retain(|c| c.type_ != condition::SPEC_WARNING);
        return;
    }
    let message = format!(
        "{}; fix the spec, or set spec.strict to make this an error",
        inputs.warnings.join("; ")
    );
    // The condition may go on with the plan's warnings (`update_plan_warnings`).
    let before = find_condition(&previous.conditions, condition::SPEC_WARNING);
    let kept = crate::nomad::truncate_bytes(&message, super::status::MAX_MESSAGE_BYTES);
    if before.is_none_or(|c| !c.message.starts_with(kept.trim_end_matches('…'))) {
        notices.push(Notice::warning(reason::UNKNOWN_FIELDS, message.clone()));
    }
    set_condition(
        &mut status.conditions,
        condition::SPEC_WARNING,
        Truth::True,
        reason::UNKNOWN_FIELDS,
        &message,
        inputs.generation,
        inputs.now,
    );
}

/// The Event of an adoption: `spec.adopt` took over a job that existed before this
/// reconcile and that the status did not record yet.
fn adoption(
    previous: &NomadJobStatus,
    status: &NomadJobStatus,
    inputs: &Inputs<'_>,
) -> Option<String> {
    if !inputs.policy.adopt || previous.job_create_index.is_some() {
        return None;
    }
    let existed = inputs.facts.iter().find_map(|f| match f {
        Fact::Observed(o) => Some(o.job.as_ref().is_some_and(|j| j.owner.is_none())),
        _ => None,
    })?;
    let id = status.job_id.as_deref().unwrap_or_default();
    match (existed, status.job_create_index.is_some()) {
        (true, true) => Some(
            match inputs.facts.iter().find_map(|f| match f {
                Fact::Registered { version, .. } => Some(*version),
                _ => None,
            }) {
                Some(version) => format!(
                    "adopted Nomad job {id:?}; it differed from the spec, which is registered as version {version}"
                ),
                None => format!(
                    "adopted Nomad job {id:?} as it runs: it equals the spec, so nothing was registered and no allocation restarted"
                ),
            },
        ),
        _ => None,
    }
}

/// Readiness after an error: a transient one is retried, a refusal stalls.
fn error_readiness(error: &Error) -> Readiness {
    match error {
        Error::Nomad(NomadError::BadRequest(message)) => Readiness::Stalled {
            reason: reason::NOMAD_REJECTED,
            message: format!("Nomad rejected the job: {message}. Fix spec.job and apply again"),
        },
        Error::Nomad(NomadError::PermissionDenied(m)) => Readiness::Stalled {
            reason: reason::PERMISSION_DENIED,
            message: format!(
                "Nomad refused the operator's token: {m}. Check the token's ACL policy"
            ),
        },
        other => Readiness::Progressing {
            reason: reason::NOMAD_UNAVAILABLE,
            message: format!("{other}; retrying with back-off"),
        },
    }
}

/// Readiness in `state`; `status` is the new status so far (placement failures).
fn state_readiness(
    state: &JobState,
    observed: Option<&Observed>,
    memory: &Memory,
    policy: &Policy,
    wants_stop: bool,
    status: &NomadJobStatus,
) -> Readiness {
    let deployments = observed.map_or(&[][..], |o| &o.deployments[..]);
    match state {
        JobState::Stopped if wants_stop => {
            Readiness::Ready("the job is stopped in Nomad, as the spec asks (Stop: true)".into())
        }
        JobState::Conflict { message } => Readiness::Stalled {
            reason: reason::CONFLICT,
            message: message.clone(),
        },
        JobState::HoldingFailedSpec => failed_spec_readiness(memory, deployments, policy),
        JobState::DriftReported => Readiness::Stalled {
            reason: reason::DRIFT_DETECTED,
            message: DRIFT_REPORTED.into(),
        },
        JobState::Absent | JobState::OutOfSync { .. } | JobState::Drifted { .. } => {
            Readiness::Progressing {
                reason: reason::REGISTERED,
                message: "registering the spec in Nomad".into(),
            }
        }
        JobState::Failed(failed, Answer::Revert { to_version, .. }) => Readiness::Progressing {
            reason: reason::DEPLOYMENT_FAILED,
            message: format!(
                "version {} failed: {}; reverting to stable version {to_version}",
                failed.version, failed.description
            ),
        },
        _ => match (
            observed.and_then(|o| o.job.as_ref()),
            memory.applied_version,
        ) {
            (Some(job), Some(applied)) => {
                let details = observed.and_then(|o| o.details.as_ref());
                let waiting = match state {
                    JobState::AwaitingPromotion { message } => Some(message.as_str()),
                    _ => None,
                };
                job_readiness(job, applied, deployments, details, status, waiting)
            }
            _ => Readiness::Progressing {
                reason: reason::REGISTERED,
                message: "waiting for the job to appear in Nomad".into(),
            },
        },
    }
}

/// Readiness of a registered job by its kind: stopped, unplaceable, a batch job (done
/// when its allocations complete), a periodic or parameterized job (ready once
/// registered), a deployment waiting for promotion (`waiting`), or a deployment.
pub fn job_readiness(
    job: &JobView,
    applied_version: u64,
    deployments: &[Deployment],
    details: Option<&Details>,
    status: &NomadJobStatus,
    waiting: Option<&str>,
) -> Readiness {
    if job.stop {
        return readiness(job, applied_version, deployments);
    }
    if !status.placement_failures.is_empty() {
        let groups: Vec<String> = status
            .placement_failures
            .iter()
            .map(|(group, why)| format!("task group {group:?}: {why}"))
            .collect();
        return Readiness::Progressing {
            reason: reason::PLACEMENT_FAILED,
            message: format!(
                "Nomad cannot place the job's allocations; {}",
                groups.join("; ")
            ),
        };
    }
    if job.runs_to_completion() {
        let Some(details) = details else {
            return Readiness::Progressing {
                reason: reason::RUNNING,
                message: format!(
                    "version {applied_version} registered; waiting for its allocations"
                ),
            };
        };
        let outcome = run_outcome(
            &job.status,
            &job.group_counts,
            details.summary.as_ref(),
            &details.allocations,
        );
        return match outcome {
            Outcome::Running(message) => Readiness::Progressing {
                reason: reason::RUNNING,
                message: format!("batch job (version {applied_version}) runs: {message}"),
            },
            Outcome::Succeeded(message) => Readiness::Ready(format!(
                "batch job (version {applied_version}) completed: {message}"
            )),
            Outcome::Failed(message) => Readiness::Stalled {
                reason: reason::JOB_FAILED,
                message: format!(
                    "batch job (version {applied_version}) failed: {message}. Nomad does not run it again until the spec changes"
                ),
            },
        };
    }
    if job.launches_children() {
        let what = if job.parameterized {
            "parameterized job registered; it runs when dispatched (a NomadDispatch, or nomad job dispatch)".to_string()
        } else {
            match &status.next_launch {
                Some(next) => format!("periodic job registered; next launch at {}", next.0),
                None => "periodic job registered".to_string(),
            }
        };
        return Readiness::Ready(format!("version {applied_version}: {what}"));
    }
    if let Some(message) = waiting {
        return Readiness::Progressing {
            reason: reason::AWAITING_PROMOTION,
            message: format!("version {applied_version}: {message}"),
        };
    }
    readiness(job, applied_version, deployments)
}

/// Mirrors the rollout into `status`: canaries and promotions, healthy/desired,
/// placement failures, and a periodic or parameterized job's launches; with the Events
/// of what changed.
fn mirror_rollout(
    status: &mut NomadJobStatus,
    previous: &NomadJobStatus,
    observed: &Observed,
    inputs: &Inputs<'_>,
    notices: &mut Vec<Notice>,
) {
    let Some(job) = &observed.job else {
        status.canaries = None;
        status.healthy = None;
        status.placement_failures = BTreeMap::new();
        status.next_launch = None;
        status.children = None;
        return;
    };
    let latest = observed.deployments.iter().max_by_key(|d| d.create_index);
    status.canaries = latest.and_then(canaries).map(|c| c.status);
    let promoted_now = inputs.facts.iter().find_map(|f| match f {
        Fact::Promoted {
            deployment_id, by, ..
        } => Some((deployment_id.clone(), by.clone())),
        _ => None,
    });
    let promoted_elsewhere = match (&previous.canaries, &status.canaries) {
        (Some(before), Some(now)) => {
            before.deployment_id == now.deployment_id && !before.promoted && now.promoted
        }
        _ => false,
    };
    if let Some((deployment_id, by)) = promoted_now {
        status.last_promotion = Some(PromotionStatus {
            deployment_id,
            by,
            time: inputs.now.clone(),
        });
    } else if promoted_elsewhere && let Some(now) = &status.canaries {
        let by =
            "someone outside the operator (the job's auto_promote, or nomad deployment promote)";
        status.last_promotion = Some(PromotionStatus {
            deployment_id: now.deployment_id.clone(),
            by: by.into(),
            time: inputs.now.clone(),
        });
        notices.push(Notice::normal(
            reason::PROMOTED,
            format!(
                "the canaries of deployment {} were promoted by {by}",
                short_id(&now.deployment_id)
            ),
        ));
    }
    let applied = inputs.memory.applied_version.unwrap_or(job.version);
    let Some(details) = &observed.details else {
        return;
    };
    status.healthy = healthy(job, applied, &observed.deployments, details);
    let planned = inputs.facts.iter().rev().find_map(|f| match f {
        Fact::Planned(plan) => Some(failures_text(&plan.answer.failed_tg_allocs)),
        _ => None,
    });
    let registered = inputs
        .facts
        .iter()
        .any(|f| matches!(f, Fact::Registered { .. }));
    status.placement_failures = if job.stop || job.launches_children() {
        BTreeMap::new()
    } else if details.queued() {
        let from_evals = placement_failures(&details.evaluations);
        if !from_evals.is_empty() {
            from_evals
        } else if let Some(planned) = planned.filter(|p| !p.is_empty()) {
            planned
        } else {
            previous.placement_failures.clone()
        }
    } else if registered {
        planned.unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    if job.launches_children() {
        let counts = details.summary.as_ref().and_then(|s| s.children.clone());
        status.children = Some(ChildrenStatus {
            pending: counts.as_ref().map_or(0, |c| c.pending),
            running: counts.as_ref().map_or(0, |c| c.running),
            dead: counts.as_ref().map_or(0, |c| c.dead),
            latest: super::outcome::children(&details.children),
        });
        status.next_launch = job.periodic.as_ref().and_then(|p| {
            crate::periodic_schedule::next_launch(p, inputs.now.0)
                .ok()
                .flatten()
                .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time)
        });
    } else {
        status.children = None;
        status.next_launch = None;
    }
}

/// `healthy/desired` of the current version, for `kubectl get`: a deployment's healthy
/// allocations, a batch job's completed ones, or else the running ones.
fn healthy(
    job: &JobView,
    applied: u64,
    deployments: &[Deployment],
    details: &Details,
) -> Option<String> {
    if job.launches_children() {
        return None;
    }
    if job.runs_to_completion() {
        let (complete, desired) = completed(&job.group_counts, details.summary.as_ref());
        return Some(format!("{complete}/{desired}"));
    }
    if let Some(d) = deployment_of(deployments, applied) {
        let healthy: u64 = d.task_groups.values().map(|g| g.healthy_allocs).sum();
        let desired: u64 = d.task_groups.values().map(|g| g.desired_total).sum();
        return Some(format!("{healthy}/{desired}"));
    }
    let running = details
        .allocations
        .iter()
        .filter(|a| a.job_version == job.version && a.client_status == "running")
        .count();
    let desired: u64 = if job.job_type == "system" || job.job_type == "sysbatch" {
        details.summary.as_ref().map_or(0, |s| {
            s.summary
                .values()
                .map(|g| g.running + g.starting + g.queued)
                .sum()
        })
    } else {
        job.group_counts.values().sum()
    };
    Some(format!("{running}/{desired}"))
}

/// Sets the warnings of Nomad's last plan into the `SpecWarning` condition (with the
/// spec's unknown keys), and announces new ones.
fn update_plan_warnings(
    status: &mut NomadJobStatus,
    previous: &NomadJobStatus,
    inputs: &Inputs<'_>,
    notices: &mut Vec<Notice>,
) {
    let planned = inputs.facts.iter().rev().find_map(|f| match f {
        Fact::Planned(plan) => Some(crate::plan_text::warnings_text(&plan.answer.warnings)),
        _ => None,
    });
    if let (Some(warnings), Some(plan)) = (planned, status.plan.as_mut()) {
        plan.warnings = warnings;
    }
    let Some(warnings) = status.plan.as_ref().and_then(|p| p.warnings.clone()) else {
        return;
    };
    let before = previous.plan.as_ref().and_then(|p| p.warnings.as_deref());
    if before != Some(warnings.as_str()) {
        notices.push(Notice::warning(
            reason::PLAN_WARNINGS,
            format!("Nomad's plan of the job warns: {warnings}"),
        ));
    }
    let message = format!("Nomad's plan of the job warns: {warnings}");
    let existing = find_condition(&status.conditions, condition::SPEC_WARNING)
        .filter(|c| c.reason == reason::UNKNOWN_FIELDS)
        .map(|c| c.message.clone());
    let (why, text) = match existing {
        Some(unknown) => (reason::UNKNOWN_FIELDS, format!("{unknown}; {message}")),
        None => (reason::PLAN_WARNINGS, message),
    };
    set_condition(
        &mut status.conditions,
        condition::SPEC_WARNING,
        Truth::True,
        why,
        &text,
        inputs.generation,
        inputs.now,
    );
}

/// Readiness of a registered spec whose version is `applied_version`, from Nomad's view.
pub fn readiness(job: &JobView, applied_version: u64, deployments: &[Deployment]) -> Readiness {
    if job.stop {
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
        None if job.expects_deployment => Readiness::Progressing {
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

/// Readiness while the current spec is the one that failed.
fn failed_spec_readiness(
    memory: &Memory,
    deployments: &[Deployment],
    policy: &Policy,
) -> Readiness {
    let applied = memory.applied_version.unwrap_or_default();
    let description = deployment_of(deployments, applied)
        .map(|d| d.status_description.clone())
        .unwrap_or_else(|| "deployment failed".into());
    let revert = memory
        .last_revert
        .as_ref()
        .filter(|r| r.from_version == applied);
    let (reason, what) = match revert {
        Some(r) => (
            reason::REVERTED,
            format!(
                "; reverted to stable version {} by {:?}",
                r.to_version, r.by
            )
            .to_lowercase(),
        ),
        None if policy.revert_on_failure => (
            reason::NO_STABLE_VERSION,
            "; there was no stable version to revert to".into(),
        ),
        None => (
            reason::DEPLOYMENT_FAILED,
            "; spec.revertOnFailure is false, nothing was reverted".into(),
        ),
    };
    Readiness::Stalled {
        reason,
        message: format!(
            "version {applied} of this spec failed: {description}{what}. It is not registered again until the spec or the annotation nomadoperator.dev/retry changes"
        ),
    }
}

/// Sets or clears the `Drifted` condition, and announces newly reported drift.
fn update_drift_condition(
    status: &mut NomadJobStatus,
    previous: &NomadJobStatus,
    inputs: &Inputs<'_>,
    notices: &mut Vec<Notice>,
) {
    let corrected = inputs.facts.iter().any(|f| {
        matches!(
            f,
            Fact::Registered {
                corrects_drift: true,
                ..
            }
        )
    });
    let planned = inputs.facts.iter().any(|f| matches!(f, Fact::Planned(_)));
    let (generation, now) = (inputs.generation, inputs.now);
    let was_drifted = find_condition(&previous.conditions, condition::DRIFTED)
        .is_some_and(|c| c.status == "True");
    if *inputs.state == JobState::DriftReported {
        set_condition(
            &mut status.conditions,
            condition::DRIFTED,
            Truth::True,
            reason::DRIFT_DETECTED,
            "the job in Nomad differs from the spec the operator applied",
            generation,
            now,
        );
        if !was_drifted {
            notices.push(Notice::warning(
                reason::DRIFT_DETECTED,
                DRIFT_REPORTED.into(),
            ));
        }
    } else if corrected {
        set_condition(
            &mut status.conditions,
            condition::DRIFTED,
            Truth::False,
            reason::DRIFT_CORRECTED,
            "the job was changed in Nomad and the spec was registered again",
            generation,
            now,
        );
    } else if planned && find_condition(&status.conditions, condition::DRIFTED).is_some() {
        set_condition(
            &mut status.conditions,
            condition::DRIFTED,
            Truth::False,
            reason::IN_SYNC,
            "the job in Nomad matches the spec",
            generation,
            now,
        );
    }
}

/// The Events a fact makes.
fn fact_notices(fact: &Fact) -> Vec<Notice> {
    let failed_note = |f: &super::classify::FailedDeployment| {
        format!(
            "deployment {} of version {} failed: {}",
            short_id(&f.id),
            f.version,
            f.description
        )
    };
    match fact {
        Fact::Registered {
            version,
            corrects_drift: true,
            ..
        } => vec![Notice::normal(
            reason::DRIFT_CORRECTED,
            format!("the job was changed in Nomad; re-registered the spec as version {version}"),
        )],
        Fact::Registered {
            version,
            eval_id,
            count_notes,
            ..
        } => std::iter::once(Notice::normal(
            reason::REGISTERED,
            format!(
                "registered version {version} (evaluation {})",
                short_id(eval_id)
            ),
        ))
        .chain(
            count_notes
                .iter()
                .map(|note| Notice::normal(reason::COUNT_FROM_SPEC, note.clone())),
        )
        .collect(),
        Fact::Retired { note, .. } => vec![Notice::normal(reason::RENAMED, note.clone())],
        Fact::Reverted { failed, to_version } => vec![
            Notice::warning(reason::DEPLOYMENT_FAILED, failed_note(failed)),
            Notice::normal(
                reason::REVERTED,
                format!(
                    "the operator reverted the job from version {} to stable version {to_version}",
                    failed.version
                ),
            ),
        ],
        Fact::FailureRecorded { failed, answer } => {
            let mut notices = vec![Notice::warning(
                reason::DEPLOYMENT_FAILED,
                failed_note(failed),
            )];
            match answer {
                Answer::RevertedByNomad { to_version } => notices.push(Notice::normal(
                    reason::REVERTED,
                    format!(
                        "Nomad's auto-revert reverted the job from version {} to stable version {to_version}",
                        failed.version
                    ),
                )),
                Answer::NoStableVersion => notices.push(Notice::warning(
                    reason::NO_STABLE_VERSION,
                    format!(
                        "version {} failed and the job has no stable version to revert to",
                        failed.version
                    ),
                )),
                Answer::Revert { .. } | Answer::RecordOnly => {}
            }
            notices
        }
        Fact::Promoted {
            deployment_id, by, ..
        } => vec![Notice::normal(
            reason::PROMOTED,
            format!(
                "promoted the canaries of deployment {}, as asked by {by}",
                short_id(deployment_id)
            ),
        )],
        Fact::PromotionSkipped { why, .. } => {
            vec![Notice::normal(reason::PROMOTION_SKIPPED, why.clone())]
        }
        Fact::Launched { request, eval_id } => vec![Notice::normal(
            reason::LAUNCHED,
            format!(
                "launched the periodic job now, as the annotation {} (set to {request:?}) asked (evaluation {})",
                crate::crd::FORCE_LAUNCH_ANNOTATION,
                short_id(eval_id)
            ),
        )],
        Fact::LaunchSkipped { request, why } => vec![Notice::warning(
            reason::LAUNCHED,
            format!(
                "the annotation {} was set to {request:?}, but nothing was launched: {why}",
                crate::crd::FORCE_LAUNCH_ANNOTATION
            ),
        )],
        Fact::RevertRecovered => vec![Notice::normal(
            reason::REVERTED,
            "the operator's revert (made before a restart) went through".into(),
        )],
        _ => Vec::new(),
    }
}

/// An Event when the `Ready` condition's reason changed to one a person should hear
/// about: a Warning reason, or Ready. A rollout that goes as planned has one Event, its
/// `Registered`: Ready is not announced at the end of its deployment, nor beside the
/// `Registered` Event itself (the condition says it); it is announced when it follows
/// anything else, a problem above all.
fn announce_transition(
    previous: &NomadJobStatus,
    status: &NomadJobStatus,
    notices: &mut Vec<Notice>,
) {
    let Some(ready) = ready_transition(&previous.conditions, &status.conditions) else {
        return;
    };
    let rolled_out = find_condition(&previous.conditions, condition::READY)
        .is_some_and(|before| before.reason == reason::DEPLOYING)
        || notices.iter().any(|n| n.reason == reason::REGISTERED);
    if WARNING_REASONS.contains(&ready.reason.as_str()) {
        notices.push(Notice::warning(&ready.reason, ready.message.clone()));
    } else if (ready.status == "True" && !rolled_out)
        || NOTABLE_REASONS.contains(&ready.reason.as_str())
    {
        notices.push(Notice::normal(&ready.reason, ready.message.clone()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nomad::DeploymentState;
    use serde_json::json;

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
    fn readiness_follows_the_deployment_of_the_applied_version() {
        let job = JobView::parse(
            &json!({"Type": "service", "TaskGroups": [{"Update": {"MaxParallel": 1}}]}),
        );
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
            readiness(&JobView::parse(&json!({"Type": "batch"})), 0, &[]),
            Readiness::Ready(_)
        ));
        assert!(matches!(
            readiness(&JobView::parse(&json!({"Stop": true})), 0, &[]),
            Readiness::Progressing {
                reason: "JobStopped",
                ..
            }
        ));
    }
}
