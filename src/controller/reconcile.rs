//! The reconcile of one `NomadJob`: a pipeline of named steps.
//!
//! `validate and render -> ownership guard -> follow the failed deployment (revert) ->
//! plan -> register with check-and-set -> mirror Nomad's view -> write status`.
//! Decisions are the pure functions of [`super::decide`] and [`super::status`]; the steps
//! here only gather inputs and carry out what those decide.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::Value;
use tracing::{debug, info, warn};

use crate::crd::{
    DeletionPolicy, FINALIZER, NomadJob, NomadJobStatus, RevertStatus, condition, reason,
};
use crate::nomad::{NomadError, Scope};

use super::context::Context;
use super::decide::{
    FailureResponse, PlanAction, Readiness, deployment_of, failed_deployment, failure_response,
    plan_action, readiness, resync_delay, short_id,
};
use super::error::Error;
use super::ownership::ownership;
use super::render::{DesiredJob, render};
use super::status::{
    NomadView, Truth, changed_fields, find_condition, mirror, plan_status, set_condition,
    set_readiness,
};

/// Field manager of the operator's server-side applies.
pub const FIELD_MANAGER: &str = "nomad-operator";

/// How often a check-and-set conflict is answered by re-planning within one reconcile.
const CAS_ATTEMPTS: u32 = 3;

/// Reconciles one object (the controller's entry point).
pub async fn reconcile(obj: Arc<NomadJob>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = obj.namespace().ok_or(Error::MissingObjectKey)?;
    let obj_ref = ObjectRef::from_obj(&*obj);
    let api: Api<NomadJob> = Api::namespaced(ctx.kube.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            FinalizerEvent::Apply(obj) => apply(obj, &ctx).await,
            FinalizerEvent::Cleanup(obj) => cleanup(obj, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(inner)
        | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner,
        other => Error::Finalizer(Box::new(other)),
    });
    if result.is_ok() {
        ctx.backoff.reset(&obj_ref);
    }
    ctx.metrics.observe_reconcile(
        started.elapsed(),
        result.as_ref().err().map(Error::category),
    );
    result
}

/// What the controller does after a failed reconcile: back off exponentially per object.
pub fn error_policy(obj: Arc<NomadJob>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff.next_delay(&ObjectRef::from_obj(&*obj));
    warn!(
        object = %ObjectRef::from_obj(&*obj),
        category = error.category(),
        retry_in = ?delay,
        "reconcile failed: {error}"
    );
    Action::requeue(delay)
}

/// The `Apply` branch: bring Nomad to the spec and mirror Nomad into the status.
async fn apply(obj: Arc<NomadJob>, ctx: &Context) -> Result<Action, Error> {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let generation = obj.metadata.generation;
    let previous = ctx.written.current(&obj);
    let mut status = previous.clone();
    status.observed_generation = generation;

    if obj.spec.suspend {
        set_condition(
            &mut status.conditions,
            condition::RECONCILING,
            Truth::False,
            reason::SUSPENDED,
            "spec.suspend is true: the operator makes no Nomad calls for this object",
            generation,
            &now,
        );
        finish(&obj, ctx, &previous, &status).await?;
        return Ok(Action::await_change());
    }

    let desired = match render(&obj, &ctx.defaults) {
        Ok(desired) => desired,
        Err(invalid) => {
            let message = format!("invalid spec: {invalid}");
            set_readiness(
                &mut status.conditions,
                &Readiness::Stalled {
                    reason: reason::INVALID_SPEC,
                    message,
                },
                generation,
                &now,
            );
            finish(&obj, ctx, &previous, &status).await?;
            return Ok(Action::await_change());
        }
    };
    status.job_id = Some(desired.id.clone());
    status.job_namespace = Some(desired.namespace.clone());

    let scope = Scope {
        namespace: Some(desired.namespace.clone()),
        region: desired.region.clone(),
    };
    let outcome = sync(&obj, ctx, &desired, &scope, &mut status, &now).await;
    match outcome {
        Ok(action) => {
            finish(&obj, ctx, &previous, &status).await?;
            Ok(action)
        }
        Err(Error::OwnedElsewhere(message)) => {
            mirror(&mut status, &NomadView::default());
            status.plan = None;
            set_readiness(
                &mut status.conditions,
                &Readiness::Stalled {
                    reason: reason::CONFLICT,
                    message,
                },
                generation,
                &now,
            );
            finish(&obj, ctx, &previous, &status).await?;
            Ok(Action::requeue(resync_delay(ctx.resync, &resync_key(&obj))))
        }
        Err(Error::Nomad(NomadError::BadRequest(message))) => {
            let message =
                format!("Nomad rejected the job: {message}. Fix spec.job and apply again");
            set_readiness(
                &mut status.conditions,
                &Readiness::Stalled {
                    reason: reason::NOMAD_REJECTED,
                    message,
                },
                generation,
                &now,
            );
            finish(&obj, ctx, &previous, &status).await?;
            Ok(Action::await_change())
        }
        Err(error) => {
            let readiness = match &error {
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
            };
            set_readiness(&mut status.conditions, &readiness, generation, &now);
            // The error is what the caller must see; a failed status write is only logged.
            if let Err(write_error) = finish(&obj, ctx, &previous, &status).await {
                warn!(object = %ObjectRef::from_obj(&*obj), "writing status failed: {write_error}");
            }
            Err(error)
        }
    }
}

/// The Nomad part of a reconcile: ownership, failure handling, plan and register, mirror.
async fn sync(
    obj: &NomadJob,
    ctx: &Context,
    desired: &DesiredJob,
    scope: &Scope,
    status: &mut NomadJobStatus,
    now: &Time,
) -> Result<Action, Error> {
    let generation = obj.metadata.generation;
    let (namespace, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    let mut job = read_job(ctx, scope, &desired.id).await?;

    if let Some(message) = ownership(job.as_ref(), &namespace, &name).conflict_message(&desired.id)
    {
        mirror(status, &NomadView::default());
        status.plan = None;
        set_readiness(
            &mut status.conditions,
            &Readiness::Stalled {
                reason: reason::CONFLICT,
                message,
            },
            generation,
            now,
        );
        return Ok(Action::requeue(resync_delay(ctx.resync, &resync_key(obj))));
    }

    // Only the owner receives the job's Nomad events.
    ctx.jobs.insert(
        (desired.namespace.clone(), desired.id.clone()),
        ObjectRef::from_obj(obj),
    );

    let mut deployments = match &job {
        Some(_) => ctx.nomad.job_deployments(scope, &desired.id).await?,
        None => Vec::new(),
    };

    // A failed deployment of the version registered for this spec: answer it once.
    let applied_this_spec = status.last_applied_digest.as_deref() == Some(desired.digest.as_str());
    let already_failed = status.failed_digest.as_deref() == Some(desired.digest.as_str());
    if let (Some(current), Some(applied), true, false) = (
        &job,
        status.applied_version,
        applied_this_spec,
        already_failed,
    ) && let Some(failed) = failed_deployment(&deployments, applied).cloned()
    {
        let reverted =
            respond_to_failure(obj, ctx, desired, scope, status, current, &failed, now).await?;
        if reverted {
            job = read_job(ctx, scope, &desired.id).await?;
            deployments = ctx.nomad.job_deployments(scope, &desired.id).await?;
        }
    }

    let holding_failed = status.failed_digest.as_deref() == Some(desired.digest.as_str());
    let obj_ref = ObjectRef::from_obj(obj);
    let plan_due = ctx.plans.due(&obj_ref, ctx.resync);
    let drift_reported = if !holding_failed
        && needs_plan(status, &desired.digest, job.as_ref(), plan_due)
    {
        let (action, registered_job) =
            plan_and_register(obj, ctx, desired, scope, status, job.take()).await?;
        job = registered_job;
        if action.registers() {
            // Plan again on the next reconcile, while the rollout is being mirrored
            // anyway: `status.plan` then settles to `None` before the object is at rest
            // instead of changing at the first resync.
            ctx.plans.forget(&obj_ref);
            deployments = ctx.nomad.job_deployments(scope, &desired.id).await?;
        } else {
            ctx.plans.planned(&obj_ref);
        }
        update_drift_condition(status, action, generation, now);
        action == PlanAction::ReportDrift
    } else {
        find_condition(&status.conditions, condition::DRIFTED).is_some_and(|c| c.status == "True")
    };

    let view = observe(ctx, scope, &desired.id, job, deployments).await?;
    mirror(status, &view);
    let readiness = match (&view.job, status.applied_version) {
        _ if holding_failed => failed_spec_readiness(status, &view, obj.spec.revert_on_failure),
        (Some(job), Some(applied)) if !drift_reported => readiness(job, applied, &view.deployments),
        (Some(_), _) if drift_reported => Readiness::Stalled {
            reason: reason::DRIFT_DETECTED,
            message: "the job in Nomad differs from the spec; driftPolicy is Report, so it is left as it is".into(),
        },
        _ => Readiness::Progressing { reason: reason::REGISTERED, message: "waiting for the job to appear in Nomad".into() },
    };
    set_readiness(&mut status.conditions, &readiness, generation, now);
    Ok(Action::requeue(resync_delay(ctx.resync, &resync_key(obj))))
}

/// The key that spreads `obj`'s resyncs: its UID (its name when it has none yet).
fn resync_key(obj: &NomadJob) -> String {
    obj.uid().unwrap_or_else(|| obj.name_any())
}

/// Whether this reconcile must plan: the spec is not known to be applied, the job's
/// spec index moved since the operator last saw it (someone changed the job), or the
/// resync interval passed since the last plan (`plan_due`).
fn needs_plan(status: &NomadJobStatus, digest: &str, job: Option<&Value>, plan_due: bool) -> bool {
    let applied = status.last_applied_digest.as_deref() == Some(digest);
    let index = job
        .and_then(|j| j.get("JobModifyIndex"))
        .and_then(Value::as_u64);
    plan_due || !applied || index.is_none() || index != status.job_modify_index
}

/// Plans the desired job and registers it with check-and-set when the plan says so.
/// A check-and-set conflict means someone else changed the job: re-read, re-check
/// ownership and re-plan, a few times at most. Ownership is checked on the same job state
/// the check-and-set index comes from: when the plan saw another `JobModifyIndex` than
/// the job that was read, the job is read and checked again before anything is
/// registered, so a job created or taken over in between is never overwritten.
async fn plan_and_register(
    obj: &NomadJob,
    ctx: &Context,
    desired: &DesiredJob,
    scope: &Scope,
    status: &mut NomadJobStatus,
    mut job: Option<Value>,
) -> Result<(PlanAction, Option<Value>), Error> {
    let (namespace, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    for attempt in 0..CAS_ATTEMPTS {
        if attempt > 0 {
            job = read_job(ctx, scope, &desired.id).await?;
            if let Some(message) =
                ownership(job.as_ref(), &namespace, &name).conflict_message(&desired.id)
            {
                return Err(Error::OwnedElsewhere(message));
            }
        }
        let plan = ctx
            .nomad
            .plan_job(scope, &desired.id, &desired.job, true)
            .await?;
        let read_index = job
            .as_ref()
            .and_then(|j| j.get("JobModifyIndex"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if plan.job_modify_index != read_index {
            debug!(object = %ObjectRef::from_obj(obj), read_index, plan_index = plan.job_modify_index, "the job changed between read and plan; reading it again");
            continue;
        }
        status.plan = Some(plan_status(&plan));
        let diff = plan
            .diff
            .as_ref()
            .map(|d| d.r#type)
            .unwrap_or(crate::nomad::DiffType::None);
        let action = plan_action(
            diff,
            job.is_some(),
            &desired.digest,
            status,
            obj.spec.drift_policy,
        );
        debug!(object = %ObjectRef::from_obj(obj), ?diff, ?action, "planned");
        if !action.registers() {
            if action == PlanAction::InSync {
                let version = job
                    .as_ref()
                    .and_then(|j| j.get("Version"))
                    .and_then(Value::as_u64);
                if status.last_applied_digest.as_deref() != Some(desired.digest.as_str())
                    || status.applied_version.is_none()
                {
                    status.applied_version = version;
                }
                status.last_applied_digest = Some(desired.digest.clone());
            }
            if action == PlanAction::ReportDrift
                && find_condition(&status.conditions, condition::DRIFTED)
                    .is_none_or(|c| c.status != "True")
            {
                publish(ctx, obj, EventType::Warning, reason::DRIFT_DETECTED, "the job in Nomad differs from the spec; driftPolicy is Report, so it is left as it is".into()).await;
            }
            return Ok((action, job));
        }
        match ctx
            .nomad
            .register_job(scope, &desired.job, Some(plan.job_modify_index))
            .await
        {
            Ok(response) => {
                ctx.metrics.registers.inc();
                let registered = read_job(ctx, scope, &desired.id).await?;
                let version = registered
                    .as_ref()
                    .and_then(|j| j.get("Version"))
                    .and_then(Value::as_u64);
                status.applied_version = version;
                status.last_applied_digest = Some(desired.digest.clone());
                let version_text = version.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
                let (reason, note) = match action {
                    PlanAction::CorrectDrift => (
                        reason::DRIFT_CORRECTED,
                        format!(
                            "the job was changed in Nomad; re-registered the spec as version {version_text}"
                        ),
                    ),
                    _ => (
                        reason::REGISTERED,
                        format!(
                            "registered version {version_text} (evaluation {})",
                            short_id(&response.eval_id)
                        ),
                    ),
                };
                info!(object = %ObjectRef::from_obj(obj), job = %desired.id, version = %version_text, "{note}");
                publish(ctx, obj, EventType::Normal, reason, note).await;
                return Ok((action, registered));
            }
            Err(NomadError::Conflict(message)) => {
                info!(object = %ObjectRef::from_obj(obj), job = %desired.id, "check-and-set conflict, re-planning: {message}");
            }
            Err(other) => return Err(other.into()),
        }
    }
    publish(
        ctx,
        obj,
        EventType::Warning,
        reason::CONFLICT,
        format!("the Nomad job kept changing between plan and register ({CAS_ATTEMPTS} check-and-set conflicts)"),
    )
    .await;
    Err(Error::CasExhausted(CAS_ATTEMPTS))
}

/// Records a failed deployment of the applied spec, and reverts when the policy says so.
/// Returns whether the job changed (a revert by the operator).
#[allow(clippy::too_many_arguments)]
async fn respond_to_failure(
    obj: &NomadJob,
    ctx: &Context,
    desired: &DesiredJob,
    scope: &Scope,
    status: &mut NomadJobStatus,
    job: &Value,
    failed: &crate::nomad::Deployment,
    now: &Time,
) -> Result<bool, Error> {
    let current = job
        .get("Version")
        .and_then(Value::as_u64)
        .unwrap_or_default();
    let nomad_reverted = super::decide::auto_revert_target(&failed.status_description).is_some();
    let versions = if obj.spec.revert_on_failure && !nomad_reverted {
        ctx.nomad.job_versions(scope, &desired.id).await?
    } else {
        Vec::new()
    };
    let mut response = failure_response(failed, current, &versions, obj.spec.revert_on_failure);
    publish(
        ctx,
        obj,
        EventType::Warning,
        reason::DEPLOYMENT_FAILED,
        format!(
            "deployment {} of version {} failed: {}",
            short_id(&failed.id),
            failed.job_version,
            failed.status_description
        ),
    )
    .await;
    let mut reverted = false;
    if let FailureResponse::Revert {
        to_version,
        current_version,
    } = response
    {
        match ctx
            .nomad
            .revert_job(scope, &desired.id, to_version, Some(current_version))
            .await
        {
            Ok(_) => {
                ctx.metrics.reverts.inc();
                reverted = true;
            }
            Err(NomadError::Conflict(message)) => {
                info!(object = %ObjectRef::from_obj(obj), "not reverting, the job changed meanwhile: {message}");
                response = FailureResponse::RecordOnly;
            }
            Err(other) => return Err(other.into()),
        }
    }
    match (&response, response.actor()) {
        (
            FailureResponse::RevertedByNomad { to_version }
            | FailureResponse::Revert { to_version, .. },
            Some(by),
        ) => {
            status.last_revert = Some(RevertStatus {
                from_version: failed.job_version,
                to_version: *to_version,
                reason: failed.status_description.clone(),
                time: now.clone(),
                by,
            });
            let who = if by == crate::crd::RevertActor::Nomad {
                "Nomad's auto-revert"
            } else {
                "the operator"
            };
            publish(
                ctx,
                obj,
                EventType::Normal,
                reason::REVERTED,
                format!(
                    "{who} reverted the job from version {} to stable version {to_version}",
                    failed.job_version
                ),
            )
            .await;
        }
        (FailureResponse::NoStableVersion, _) => {
            publish(
                ctx,
                obj,
                EventType::Warning,
                reason::NO_STABLE_VERSION,
                format!(
                    "version {} failed and the job has no stable version to revert to",
                    failed.job_version
                ),
            )
            .await;
        }
        _ => {}
    }
    status.failed_digest = Some(desired.digest.clone());
    Ok(reverted)
}

/// Readiness while the current spec is the one that failed.
fn failed_spec_readiness(
    status: &NomadJobStatus,
    view: &NomadView,
    revert_on_failure: bool,
) -> Readiness {
    let applied = status.applied_version.unwrap_or_default();
    let description = deployment_of(&view.deployments, applied)
        .map(|d| d.status_description.clone())
        .unwrap_or_else(|| "deployment failed".into());
    let revert = status
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
        None if revert_on_failure => (
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

/// Sets or clears the `Drifted` condition after a plan.
fn update_drift_condition(
    status: &mut NomadJobStatus,
    action: PlanAction,
    generation: Option<i64>,
    now: &Time,
) {
    let drifted = find_condition(&status.conditions, condition::DRIFTED).is_some();
    match action {
        PlanAction::ReportDrift => set_condition(
            &mut status.conditions,
            condition::DRIFTED,
            Truth::True,
            reason::DRIFT_DETECTED,
            "the job in Nomad differs from the spec the operator applied",
            generation,
            now,
        ),
        PlanAction::CorrectDrift => set_condition(
            &mut status.conditions,
            condition::DRIFTED,
            Truth::False,
            reason::DRIFT_CORRECTED,
            "the job was changed in Nomad and the spec was registered again",
            generation,
            now,
        ),
        _ if drifted => set_condition(
            &mut status.conditions,
            condition::DRIFTED,
            Truth::False,
            reason::IN_SYNC,
            "the job in Nomad matches the spec",
            generation,
            now,
        ),
        _ => {}
    }
}

/// Reads what the status mirrors: summary and allocations (job and deployments are
/// already at hand).
async fn observe(
    ctx: &Context,
    scope: &Scope,
    id: &str,
    job: Option<Value>,
    deployments: Vec<crate::nomad::Deployment>,
) -> Result<NomadView, Error> {
    if job.is_none() {
        return Ok(NomadView::default());
    }
    let summary = match ctx.nomad.job_summary(scope, id).await {
        Ok(summary) => Some(summary),
        Err(NomadError::NotFound(_)) => None,
        Err(other) => return Err(other.into()),
    };
    let allocations = ctx
        .nomad
        .job_allocations(scope, id, false, None)
        .await?
        .value;
    Ok(NomadView {
        job,
        deployments,
        summary,
        allocations,
    })
}

/// `GET /v1/job/:id`, with "not found" as `None`.
async fn read_job(ctx: &Context, scope: &Scope, id: &str) -> Result<Option<Value>, Error> {
    match ctx.nomad.read_job(scope, id).await {
        Ok(job) => Ok(Some(job)),
        Err(NomadError::NotFound(_)) => Ok(None),
        Err(other) => Err(other.into()),
    }
}

/// Writes the status when it changed, and publishes an Event when the `Ready`
/// condition's reason changed to one a person should hear about.
async fn finish(
    obj: &NomadJob,
    ctx: &Context,
    previous: &NomadJobStatus,
    status: &NomadJobStatus,
) -> Result<(), Error> {
    announce_transition(obj, ctx, previous, status).await;
    let ready = find_condition(&status.conditions, condition::READY)
        .map_or("Unknown", |c| c.status.as_str());
    ctx.metrics
        .record_ready(&ObjectRef::from_obj(obj).to_string(), Some(ready));
    if previous == status {
        return Ok(());
    }
    debug!(
        object = %ObjectRef::from_obj(obj),
        changed = ?changed_fields(previous, status),
        "writing status"
    );
    let namespace = obj.namespace().ok_or(Error::MissingObjectKey)?;
    let api: Api<NomadJob> = Api::namespaced(ctx.kube.clone(), &namespace);
    let patch = serde_json::json!({
        "apiVersion": "nomadoperator.dev/v1alpha1",
        "kind": "NomadJob",
        "status": status,
    });
    let written = api
        .patch_status(
            &obj.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    ctx.metrics.status_writes.inc();
    ctx.written.record(
        &ObjectRef::from_obj(obj),
        written.metadata.resource_version.as_deref(),
        status.clone(),
    );
    Ok(())
}

/// Reasons of the `Ready` condition that warrant a Warning Event when they appear.
const WARNING_REASONS: [&str; 5] = [
    reason::INVALID_SPEC,
    reason::CONFLICT,
    reason::NOMAD_UNAVAILABLE,
    reason::PERMISSION_DENIED,
    reason::NOMAD_REJECTED,
];

async fn announce_transition(
    obj: &NomadJob,
    ctx: &Context,
    previous: &NomadJobStatus,
    status: &NomadJobStatus,
) {
    let Some(ready) = find_condition(&status.conditions, condition::READY) else {
        return;
    };
    let before = find_condition(&previous.conditions, condition::READY);
    if before.is_some_and(|b| b.reason == ready.reason && b.status == ready.status) {
        return;
    }
    if WARNING_REASONS.contains(&ready.reason.as_str()) {
        publish(
            ctx,
            obj,
            EventType::Warning,
            &ready.reason,
            ready.message.clone(),
        )
        .await;
    } else if ready.status == "True" {
        publish(
            ctx,
            obj,
            EventType::Normal,
            &ready.reason,
            ready.message.clone(),
        )
        .await;
    }
}

/// Publishes an Event about `obj` in the background: a reconcile never waits for the
/// apiserver to take an Event, and a failure to publish one is logged, never fatal.
pub(crate) async fn publish(
    ctx: &Context,
    obj: &NomadJob,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    ctx.events.publish(event, obj.object_ref(&())).await;
}

/// The `Cleanup` branch: apply `spec.deletionPolicy` to the job this object manages.
/// It relies on the status (what was registered), so an invalid spec never blocks it.
async fn cleanup(obj: Arc<NomadJob>, ctx: &Context) -> Result<Action, Error> {
    let status = ctx.written.current(&obj);
    let obj_ref = ObjectRef::from_obj(&*obj);
    ctx.plans.forget(&obj_ref);
    ctx.written.forget(&obj_ref);
    ctx.metrics.record_ready(&obj_ref.to_string(), None);
    let Some(id) = status.job_id.clone() else {
        return Ok(Action::await_change());
    };
    let namespace = status
        .job_namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let region = render(&obj, &ctx.defaults)
        .ok()
        .and_then(|d| d.region)
        .or_else(|| ctx.defaults.region.clone());
    ctx.jobs.remove(&(namespace.clone(), id.clone()), &obj_ref);

    if obj.spec.suspend || obj.spec.deletion_policy == DeletionPolicy::Orphan {
        let why = if obj.spec.suspend {
            "the object is suspended"
        } else {
            "deletionPolicy is Orphan"
        };
        publish(
            ctx,
            &obj,
            EventType::Normal,
            reason::DELETED,
            format!("left Nomad job {id:?} running: {why}"),
        )
        .await;
        return Ok(Action::await_change());
    }
    let scope = Scope {
        namespace: Some(namespace),
        region,
    };
    let job = read_job(ctx, &scope, &id).await?;
    let owner_ns = obj.namespace().unwrap_or_default();
    if ownership(job.as_ref(), &owner_ns, &obj.name_any()) != super::ownership::Ownership::Ours {
        // Gone already, or not ours to remove: nothing to do.
        return Ok(Action::await_change());
    }
    let purge = obj.spec.deletion_policy == DeletionPolicy::Purge;
    let stopped = job
        .as_ref()
        .and_then(|j| j.get("Stop"))
        .and_then(Value::as_bool)
        == Some(true);
    if stopped && !purge {
        return Ok(Action::await_change());
    }
    match ctx.nomad.deregister_job(&scope, &id, purge).await {
        Ok(_) | Err(NomadError::NotFound(_)) => {}
        Err(other) => return Err(other.into()),
    }
    let what = if purge {
        "purged"
    } else {
        "deregistered (stopped)"
    };
    publish(
        ctx,
        &obj,
        EventType::Normal,
        reason::DELETED,
        format!("{what} Nomad job {id:?}"),
    )
    .await;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plans_only_when_the_spec_or_the_job_index_moved_or_the_resync_is_due() {
        let status = NomadJobStatus {
            last_applied_digest: Some("d1".into()),
            job_modify_index: Some(7),
            ..Default::default()
        };
        let job = json!({"JobModifyIndex": 7});
        assert!(
            !needs_plan(&status, "d1", Some(&job), false),
            "nothing moved"
        );
        assert!(needs_plan(&status, "d1", Some(&job), true), "resync due");
        assert!(needs_plan(&status, "d2", Some(&job), false), "spec changed");
        assert!(
            needs_plan(&status, "d1", Some(&json!({"JobModifyIndex": 9})), false),
            "job changed in Nomad"
        );
        assert!(needs_plan(&status, "d1", None, false), "job gone");
    }
}
