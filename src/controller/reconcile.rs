//! The reconcile of one `NomadJob`, as four named steps:
//!
//! ```text
//! observe   read Nomad's job and deployments                      (observe.rs)
//! classify  pure: (spec, Nomad's view, memory) -> one JobState     (classify.rs)
//! act       the one Step that state calls for -> the Fact of it     (act.rs)
//!           ... classify again, until the state calls for nothing
//! report    pure: (previous status, facts) -> status + Events       (report.rs)
//! ```
//!
//! Crash safety: before a register or a revert, the write is recorded in
//! `status.pending`; after a restart, [`classify`] tells from the job's indexes whether it
//! happened. Deletion ([`cleanup`]) works from the status and the spec's policies alone,
//! so neither an invalid spec nor one that cannot even be decoded blocks it.
//!
//! The controller watches only the objects' metadata; each reconcile reads its object
//! afresh, so one object that cannot be decoded (say, nested deeper than the JSON
//! decoder allows) is reported on by itself and never stops the watch of the others.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Resource;
use kube::api::{GetParams, PartialObjectMeta, Patch};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use serde::Deserialize;
use tracing::{debug, info, warn};

use crate::crd::{
    AnsweredRequests, ConnectionRef, DeletionPolicy, FINALIZER, FORCE_LAUNCH_ANNOTATION, JobRef,
    NomadJob, NomadJobStatus, PROMOTE_ANNOTATION, reason,
};
use crate::hold_points;
use crate::nomad::{Deployment, NomadError, Scope};

use super::act::act;
use super::classify::{
    Fact, JobState, Memory, Policy, Progress, Spec, Step, absorb, classify, launch_not_made,
    next_action, recorded_before,
};
use super::connection::{Choice, Route};
use super::context::{Context, may_wait, plan_due};
use super::deletion::{Deletion, Guards, deletion, protected};
use super::error::Error;
use super::kube_side::{ApiServer, KubeSide, Target, patch_params};
use super::observe::{self, JobView, Observed};
use super::ownership::{Claim, ownership};
use super::render::DesiredJob;
use super::report::{Inputs, Notice, Report, report};
use super::resolve::{self, Resolved, resolve};
use super::resync::resync_delay;
use super::send::job_to_send;
use super::settle::keeps_holding;
use super::status::{find_condition, set_readiness};

/// When an object refused a connection (missing, not allowed) is looked at again: the
/// connection or its Secrets may have been fixed meanwhile.
const REFUSED_RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a status may wait for the allocations feed to list what a deployment
/// counts; the reconcile then due reads the job's allocations.
const LISTS_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(5);

/// How many steps one reconcile takes at most (a guard; a normal one takes a few).
const MAX_STEPS: usize = 16;

/// Reconciles one object (the controller's entry point): reads it, then adds the
/// finalizer, applies the spec, or cleans up after a delete.
pub async fn reconcile(
    meta: Arc<PartialObjectMeta<NomadJob>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let target = Target::of(&meta.metadata).ok_or(Error::MissingObjectKey)?;
    let obj_ref = object_ref(&target);
    let result = reconcile_target(&target, &ctx).await;
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
pub fn error_policy(
    meta: Arc<PartialObjectMeta<NomadJob>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    let obj_ref = ObjectRef::<NomadJob>::new(meta.metadata.name.as_deref().unwrap_or_default())
        .within(meta.metadata.namespace.as_deref().unwrap_or_default());
    let delay = match error {
        Error::Nomad(e) if let Some(pause) = e.paused_for() => {
            ctx.backoff.after_pause(&obj_ref, pause)
        }
        _ => ctx.backoff.next_delay(&obj_ref),
    };
    warn!(
        object = %obj_ref,
        category = error.category(),
        retry_in = ?delay,
        "reconcile failed: {error}"
    );
    Action::requeue(delay)
}

/// The object reference the context's maps use.
pub fn object_ref(target: &Target) -> ObjectRef<NomadJob> {
    ObjectRef::new(&target.name).within(&target.namespace)
}

async fn reconcile_target(target: &Target, ctx: &Context) -> Result<Action, Error> {
    let request = kube::core::Request::new(NomadJob::url_path(&(), Some(&target.namespace)))
        .get(&target.name, &GetParams::default())
        .map_err(|e| Error::Kube(kube::Error::BuildRequest(e)))?;
    let text = match ctx.kube.request_text(request).await {
        Ok(text) => text,
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(Action::await_change()),
        Err(e) => return Err(e.into()),
    };
    let kube = ApiServer::new(ctx);
    match serde_json::from_str::<NomadJob>(&text) {
        Ok(obj) => {
            let head = Head::of(&obj);
            match finalizer_step(&obj.metadata) {
                FinalizerStep::Add => add_finalizer(ctx, target, &obj.metadata).await,
                FinalizerStep::Apply => apply(&obj, ctx, &kube).await,
                FinalizerStep::Cleanup => {
                    if let Some(key) = resolve::mistyped_deletion_policy(&obj) {
                        return refuse_cleanup(&obj, &key, target, &kube).await;
                    }
                    let desired = match connection_of(ctx, &head).await? {
                        Choice::Use(route) => resolve::known_job(&obj, ctx, &route.defaults),
                        Choice::Refused { .. } => None,
                    };
                    let done = cleanup(&head, desired.as_ref(), ctx, &kube).await?;
                    if done == Cleanup::Done {
                        hold_points::reached("finalizer-removal.before").await;
                        remove_finalizer(ctx, target, &obj.metadata).await?;
                        hold_points::reached("finalizer-removal.after").await;
                    }
                    Ok(done.action())
                }
                FinalizerStep::Nothing => Ok(Action::await_change()),
            }
        }
        Err(decode_error) => undecodable(&text, decode_error, target, ctx, &kube).await,
    }
}

/// What the finalizer calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalizerStep {
    /// Not being deleted and no finalizer yet: add it (the next reconcile applies).
    Add,
    /// Not being deleted: apply the spec.
    Apply,
    /// Being deleted with the finalizer: apply the deletion policy, then remove it.
    Cleanup,
    /// Being deleted without the finalizer: nothing left to do.
    Nothing,
}

/// The finalizer step for an object with `metadata` (pure).
pub fn finalizer_step(metadata: &ObjectMeta) -> FinalizerStep {
    let has = metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER));
    match (metadata.deletion_timestamp.is_some(), has) {
        (false, false) => FinalizerStep::Add,
        (false, true) => FinalizerStep::Apply,
        (true, true) => FinalizerStep::Cleanup,
        (true, false) => FinalizerStep::Nothing,
    }
}

async fn add_finalizer(
    ctx: &Context,
    target: &Target,
    metadata: &ObjectMeta,
) -> Result<Action, Error> {
    let mut finalizers = metadata.finalizers.clone().unwrap_or_default();
    finalizers.push(FINALIZER.into());
    hold_points::reached("finalizer.before").await;
    patch_finalizers(ctx, target, metadata, finalizers).await?;
    hold_points::reached("finalizer.after").await;
    Ok(Action::await_change())
}

async fn remove_finalizer(
    ctx: &Context,
    target: &Target,
    metadata: &ObjectMeta,
) -> Result<(), Error> {
    let finalizers = metadata
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    patch_finalizers(ctx, target, metadata, finalizers).await
}

/// Sets the object's finalizers, guarded by its resource version (a concurrent change is
/// a conflict and is retried, never overwritten).
async fn patch_finalizers(
    ctx: &Context,
    target: &Target,
    metadata: &ObjectMeta,
    finalizers: Vec<String>,
) -> Result<(), Error> {
    if !ctx.leadership.holds() {
        return Err(Error::NotLeader);
    }
    let patch = serde_json::json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": metadata.resource_version}
    });
    // The answer is not decoded: the finalizer of an object whose spec cannot be decoded
    // must still come off.
    let request = kube::core::Request::new(NomadJob::url_path(&(), Some(&target.namespace)))
        .patch(&target.name, &patch_params(), &Patch::Merge(&patch))
        .map_err(|e| Error::Kube(kube::Error::BuildRequest(e)))?;
    ctx.kube.request_text(request).await?;
    Ok(())
}

/// Brings Nomad to the spec and mirrors Nomad into the status: observe, classify and
/// act until the state calls for nothing, then report. Writes the status (and records a
/// pending write before each Nomad write) through `kube`.
pub async fn apply(obj: &NomadJob, ctx: &Context, kube: &impl KubeSide) -> Result<Action, Error> {
    let target = Target::of(&obj.metadata).ok_or(Error::MissingObjectKey)?;
    let obj_ref = object_ref(&target);
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    // The status in the apiserver; what a refusal writes over.
    let shown = obj.status.clone().unwrap_or_default();
    let route = match ctx
        .connections
        .choose(
            &ctx.kube,
            &target.namespace,
            obj.spec.connection_ref.as_ref(),
        )
        .await?
    {
        Choice::Use(route) => route,
        Choice::Refused { reason, message } => {
            ctx.held.forget(&obj_ref);
            return refuse(
                &target,
                &shown,
                obj.metadata.generation,
                reason,
                message,
                kube,
            )
            .await;
        }
    };
    let Resolved {
        spec,
        warnings,
        redactor,
        error: unresolved,
    } = resolve(obj, ctx, &route).await;
    if let Spec::Desired(desired) = &spec
        && let Some(message) = route.denies(&desired.namespace)
    {
        let generation = obj.metadata.generation;
        ctx.held.forget(&obj_ref);
        return refuse(
            &target,
            &shown,
            generation,
            reason::POLICY_DENIED,
            message,
            kube,
        )
        .await;
    }
    let annotation = |key: &str| {
        obj.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .cloned()
    };
    let policy = Policy {
        protected: protected(obj.metadata.annotations.as_ref(), ctx.deletion_protection),
        requests: AnsweredRequests {
            promote: annotation(PROMOTE_ANNOTATION),
            force_launch: annotation(FORCE_LAUNCH_ANNOTATION),
        },
        ..Policy::of(&obj.spec)
    };
    let owner = (target.namespace.as_str(), target.name.as_str());
    // What the operator knows it did: the status held back after a register, if one
    // is, else the one shown (see `settle`).
    let uid = obj.metadata.uid.as_deref();
    let held = ctx.held.take(&obj_ref, uid);
    let previous = held
        .as_ref()
        .map_or_else(|| shown.clone(), |h| h.status.clone());
    let mut memory = Memory::from_status(&previous);
    if let Spec::Desired(desired) = &spec {
        memory.note_rename(&previous, desired);
    }
    let mut progress = Progress {
        plan_due: plan_due(ctx.plans.elapsed(&obj_ref), ctx.plan_interval),
        ..Progress::default()
    };
    let mut observed: Option<Observed> = None;
    let mut facts: Vec<Fact> = Vec::new();
    let mut written = shown.clone();
    // The report of what is known so far (pure); written as the intent before a Nomad
    // write, and as the outcome at the end.
    let report_now = |state: &JobState,
                      observed: Option<&Observed>,
                      memory: &Memory,
                      facts: &[Fact],
                      error: Option<&Error>|
     -> Report {
        let mut made = report(
            &previous,
            &Inputs {
                spec: &spec,
                policy: policy.clone(),
                observed,
                memory,
                facts,
                state,
                error,
                warnings: &warnings,
                generation: obj.metadata.generation,
                now: &now,
            },
        );
        if matches!(spec, Spec::Desired(_)) {
            made.status.connection = route.label.clone();
        }
        made
    };

    let mut state;
    let mut outcome: Result<(), Error> = unresolved.map_or(Ok(()), Err);
    let mut steps = 0;
    loop {
        state = classify(&spec, observed.as_ref(), &memory, &progress, &policy, owner);
        let step = next_action(&state);
        steps += 1;
        let Spec::Desired(desired) = &spec else {
            break;
        };
        if step == Step::Done || steps > MAX_STEPS {
            break;
        }
        debug!(object = %obj_ref, ?state, step = point_name(&step), "step");
        let answered_launch = memory.answered.force_launch.clone();
        if let Some(before) = recorded_before(&step, &desired.digest, observed.as_ref(), &memory) {
            // Record the write before making it: a restart in between can then tell
            // from Nomad whether it happened (or, for a launch, not make it again).
            let interim = redactor
                .value(&report_now(&state, observed.as_ref(), &before, &facts, None).status);
            hold_points::reached(&format!("{}.intent", point_name(&step))).await;
            if let Err(e) = kube.write_status(&target, &written, &interim).await {
                outcome = Err(e);
                break;
            }
            written = interim;
            memory = before;
        }
        let scope = scope_of(desired);
        let live = observed.as_ref().and_then(|o| o.job.as_ref());
        let sent = job_to_send(
            desired,
            live,
            &memory.applied_counts,
            policy.preserve_counts,
            owner,
        );
        if matches!(step, Step::Register { .. }) {
            // Route the job's changes to this object before it exists: its deployment
            // may finish before this reconcile ends, and a change of a job no object is
            // known to own is dropped by the watches.
            route.jobs.insert(
                (desired.namespace.clone(), desired.id.clone()),
                obj_ref.clone(),
            );
        }
        let point = point_name(&step);
        let tried = step.clone();
        let key = (desired.namespace.clone(), desired.id.clone());
        // The first look at the job comes from what the watches saw when they can
        // vouch for it; a second one (the job moved meanwhile) reads Nomad.
        let mirrored = (step == Step::Observe && observed.is_none())
            .then(|| route.mirror.observe(&key))
            .flatten();
        hold_points::reached(&format!("{point}.before")).await;
        let acted = match mirrored {
            Some(seen) => mirrored_observation(&route, &scope, desired, seen).await,
            None => {
                let plan = observed.as_ref().and_then(|o| o.plan.as_ref());
                act(&route.nomad, &scope, desired, (&sent, plan), owner, step).await
            }
        };
        hold_points::reached(&format!("{point}.after")).await;
        match acted {
            Ok(Some(fact)) => {
                count(ctx, &fact);
                absorb(
                    &fact,
                    &desired.digest,
                    &now,
                    &mut observed,
                    &mut memory,
                    &mut progress,
                );
                facts.push(fact);
            }
            Ok(None) => break,
            Err(e) => {
                launch_not_made(&tried, &e, answered_launch, &mut memory);
                outcome = Err(e.into());
                break;
            }
        }
    }
    if matches!(state, JobState::KeptChanging) {
        outcome = Err(Error::CasExhausted(super::classify::CAS_ATTEMPTS));
    }
    if let (Spec::Desired(desired), Some(o)) = (&spec, observed.as_ref()) {
        remember_job(&route, desired, o, &facts);
    }
    // The summary and allocations, for the status only, taken once at the end.
    if let (Ok(()), Spec::Desired(desired), Some(o)) = (&outcome, &spec, observed.as_mut())
        && let Some(job) = o.job.clone()
        && !matches!(state, JobState::Conflict { .. })
    {
        let can_wait = facts.iter().all(|f| matches!(f, Fact::Observed(_)))
            && may_wait(ctx.list_waits.elapsed(&obj_ref), LISTS_CATCH_UP);
        match details(&route, desired, &job, &o.deployments, can_wait).await {
            Ok(Some(details)) => {
                ctx.list_waits.forget(&obj_ref);
                o.details = Some(details);
            }
            Ok(None) => {
                ctx.list_waits.start(&obj_ref);
                remember(ctx, &route, &obj_ref, &spec, &state, &facts);
                // Nothing was written to Nomad: a held status stays as it was until its
                // hold ends, and is shown then while the wait goes on.
                let back = match held {
                    Some(held) if held.since.elapsed() >= ctx.status_hold => {
                        kube.write_status(&target, &written, &held.status).await?;
                        LISTS_CATCH_UP
                    }
                    Some(held) => {
                        let left = ctx.status_hold.saturating_sub(held.since.elapsed());
                        ctx.held.put_back(&obj_ref, held);
                        LISTS_CATCH_UP.min(left)
                    }
                    None => LISTS_CATCH_UP,
                };
                return Ok(Action::requeue(back));
            }
            Err(e) => outcome = Err(e.into()),
        }
    }

    let outcome = outcome.map_err(|e| e.redacted(&redactor));
    let Report { status, notices } = report_now(
        &state,
        observed.as_ref(),
        &memory,
        &facts,
        outcome.as_ref().err(),
    );
    let status = redactor.value(&status);
    let registered = facts.iter().any(|f| matches!(f, Fact::Registered { .. }));
    let hold_since = held
        .map(|h| h.since)
        .or_else(|| registered.then(Instant::now));
    if let (Ok(()), Some(since)) = (&outcome, hold_since)
        && keeps_holding(&status, &written, since.elapsed(), ctx.status_hold)
    {
        announce(kube, &target, &obj_ref, &redactor, notices).await;
        remember(ctx, &route, &obj_ref, &spec, &state, &facts);
        ctx.metrics
            .record_ready(&obj_ref.to_string(), Some(ready_of(&status)));
        let left = ctx.status_hold.saturating_sub(since.elapsed());
        ctx.held.hold(&obj_ref, uid, status, since);
        return Ok(Action::requeue(left));
    }
    hold_points::reached("status.before").await;
    let write = kube.write_status(&target, &written, &status).await;
    hold_points::reached("status.after").await;
    announce(kube, &target, &obj_ref, &redactor, notices).await;
    remember(ctx, &route, &obj_ref, &spec, &state, &facts);
    ctx.metrics
        .record_ready(&obj_ref.to_string(), Some(ready_of(&status)));
    match outcome {
        // The error is what the caller must see; a failed status write is only logged.
        Err(error) => {
            if let Err(write_error) = write {
                warn!(object = %obj_ref, "writing status failed: {write_error}");
            }
            match error {
                // Nomad refused the spec: nothing changes until the spec does, but a
                // refusal that came from something in between (a proxy) must not stay
                // forever, so it is looked at again at the resync interval.
                Error::Nomad(NomadError::BadRequest(_)) => {
                    Ok(Action::requeue(resync_delay(ctx.resync, &resync_key(obj))))
                }
                other => Err(other),
            }
        }
        Ok(()) => {
            write?;
            Ok(match state {
                JobState::Suspended | JobState::Invalid { .. } => Action::await_change(),
                _ => Action::requeue(resync_delay(ctx.resync, &resync_key(obj))),
            })
        }
    }
}

/// A look at the job from the mirror, with its deployments read when no watch lists
/// them yet (Nomad before 1.2.4, until the watch of the job's namespace has answered)
/// and the ones read last may have changed since.
async fn mirrored_observation(
    route: &Route,
    scope: &Scope,
    desired: &DesiredJob,
    mut seen: Observed,
) -> Result<Option<Fact>, NomadError> {
    if let Some(job) = seen
        .job
        .as_ref()
        .filter(|_| !route.mirror.lists_deployments_of(&desired.namespace))
    {
        let key = (desired.namespace.clone(), desired.id.clone());
        seen.deployments = match route.mirror.settled_deployments(&key, job) {
            Some(deployments) => deployments,
            None => {
                let marks = route.mirror.allocation_marks(&key);
                let deployments = route.nomad.job_deployments(scope, &desired.id).await?;
                if let Some(marks) = marks {
                    route
                        .mirror
                        .remember_deployments(&key, job, marks, &deployments);
                }
                deployments
            }
        };
    }
    Ok(Some(Fact::Observed(Box::new(seen))))
}

/// Remembers in the mirror the job as this reconcile last knew it: the next reconcile
/// can then take it from there while the watches list it unchanged. After a revert the
/// job is read again (the view would be of the failed version).
fn remember_job(route: &Route, desired: &DesiredJob, observed: &Observed, facts: &[Fact]) {
    let key = (desired.namespace.clone(), desired.id.clone());
    let reverted = facts.iter().any(|f| matches!(f, Fact::Reverted { .. }));
    let view = observed.job.clone().filter(|_| !reverted);
    route.mirror.remember(&key, view);
}

/// The summary and allocations of `job` (`desired`'s, whose deployments are
/// `deployments`), and the evaluations that explain allocations waiting to be placed:
/// from the mirror when the watches run, else read. `None` when the allocations feed
/// has yet to list what a deployment counts and the status `may_wait` (this reconcile
/// wrote nothing to Nomad, and the object has not waited past [`LISTS_CATCH_UP`]): the
/// feed's next answer triggers the object.
async fn details(
    route: &Route,
    desired: &DesiredJob,
    job: &JobView,
    deployments: &[Deployment],
    may_wait: bool,
) -> Result<Option<observe::Details>, NomadError> {
    let scope = scope_of(desired);
    let key = (desired.namespace.clone(), desired.id.clone());
    let Some(mut details) = route.mirror.details(&key, job) else {
        return observe::details(&route.nomad, &scope, &desired.id, job)
            .await
            .map(Some);
    };
    if details.needs_evaluations(job) {
        details.evaluations = route.nomad.job_evaluations(&scope, &desired.id).await?;
    }
    let health = health_listing(&details, job, deployments, route.mirror.allocations_index());
    let failures = failures_not_listed_yet(&details);
    if health == HealthListing::Coming && may_wait && !failures {
        return Ok(None);
    }
    if failures || health != HealthListing::Listed {
        // The jobs list counts a failure the allocations list does not carry yet, or a
        // deployment counts healthy allocations it does not show (the lists answer
        // apart): the status (and the Event) must name the failed task, and must not
        // show a deployment over with its allocations still starting, so the
        // allocations are read.
        details.allocations = route
            .nomad
            .job_allocations(&scope, &desired.id, false, None)
            .await?
            .value;
    }
    Ok(Some(details))
}

/// Whether the summary counts more failed allocations than the mirrored allocations
/// show (the two lists answer apart).
fn failures_not_listed_yet(details: &observe::Details) -> bool {
    let counted: u64 = details
        .summary
        .as_ref()
        .map_or(0, |s| s.summary.values().map(|g| g.failed).sum());
    let listed = details
        .allocations
        .iter()
        .filter(|a| a.client_status == "failed")
        .count();
    counted > u64::try_from(listed).unwrap_or(u64::MAX)
}

/// What the mirrored allocations show of the healthy allocations the deployments of a
/// job's version count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HealthListing {
    /// They show as many.
    Listed,
    /// They show fewer, and the allocations feed last answered before the deployment
    /// changed: Nomad updates an allocation's health and its deployment's counts in one
    /// write, so the feed's next answer carries the allocations.
    Coming,
    /// They show fewer although the feed answered after the deployment changed (or has
    /// not answered): only a read tells.
    Missing,
}

/// Compares the healthy allocations each deployment of `job`'s version counts with the
/// mirrored ones (`details`), the allocations feed having last answered at
/// `allocations_index`.
fn health_listing(
    details: &observe::Details,
    job: &JobView,
    deployments: &[Deployment],
    allocations_index: Option<u64>,
) -> HealthListing {
    let ahead = deployments
        .iter()
        .filter(|d| d.job_version == job.version)
        .filter(|d| {
            let counted: u64 = d.task_groups.values().map(|g| g.healthy_allocs).sum();
            let listed = details
                .allocations
                .iter()
                .filter(|a| a.job_version == d.job_version)
                .filter(|a| a.deployment_status.as_ref().and_then(|s| s.healthy) == Some(true))
                .count();
            counted > u64::try_from(listed).unwrap_or(u64::MAX)
        });
    let mut listing = HealthListing::Listed;
    for d in ahead {
        match allocations_index {
            Some(index) if index < d.modify_index => listing = HealthListing::Coming,
            _ => return HealthListing::Missing,
        }
    }
    listing
}

/// The `Ready` condition's status in `status` ("Unknown" without one), for the metrics.
fn ready_of(status: &NomadJobStatus) -> &str {
    find_condition(&status.conditions, crate::crd::condition::READY)
        .map_or("Unknown", |c| c.status.as_str())
}

/// Stalls `target` with `reason` (no Nomad call was made) and looks at it again after
/// [`REFUSED_RECHECK`]: the connection, its Secrets or its policy may be fixed meanwhile.
async fn refuse(
    target: &Target,
    previous: &NomadJobStatus,
    generation: Option<i64>,
    reason: &'static str,
    message: String,
    kube: &impl KubeSide,
) -> Result<Action, Error> {
    stall(target, previous, generation, reason, message, kube).await?;
    Ok(Action::requeue(REFUSED_RECHECK))
}

/// Updates what the context remembers of `obj` after a reconcile: which Nomad job it
/// owns (for routing Nomad's changes), and when it was planned.
fn remember(
    ctx: &Context,
    route: &Route,
    obj_ref: &ObjectRef<NomadJob>,
    spec: &Spec,
    state: &JobState,
    facts: &[Fact],
) {
    let Spec::Desired(desired) = spec else {
        return;
    };
    if !matches!(state, JobState::Conflict { .. }) {
        route.jobs.insert(
            (desired.namespace.clone(), desired.id.clone()),
            obj_ref.clone(),
        );
    }
    // A register follows its plan: that plan counts (`status.plan` keeps it, marked
    // registered), and the next one is due after the plan interval like any other.
    if facts.iter().any(|f| matches!(f, Fact::Planned(_))) {
        ctx.plans.stamp(obj_ref);
    }
}

/// Counts the Nomad writes a fact reports in the metrics.
fn count(ctx: &Context, fact: &Fact) {
    match fact {
        Fact::Registered { .. } => {
            ctx.metrics.registers.inc();
        }
        Fact::Reverted { .. } => {
            ctx.metrics.reverts.inc();
        }
        _ => {}
    }
}

/// Logs and publishes `notices` as Events of `target`, secrets redacted.
async fn announce(
    kube: &impl KubeSide,
    target: &Target,
    obj_ref: &ObjectRef<NomadJob>,
    redactor: &crate::jobspec::redact::Redactor,
    notices: Vec<Notice>,
) {
    for mut notice in notices {
        notice.note = redactor.text(&notice.note);
        log_notice(obj_ref, &notice);
        kube.publish(target, notice).await;
    }
}

fn log_notice(obj_ref: &ObjectRef<NomadJob>, notice: &Notice) {
    if notice.warning {
        warn!(object = %obj_ref, reason = %notice.reason, "{}", notice.note);
    } else {
        info!(object = %obj_ref, reason = %notice.reason, "{}", notice.note);
    }
}

/// A step's short name, for the logs (facts can be large) and [`hold_points`].
fn point_name(step: &Step) -> &'static str {
    match step {
        Step::Observe => "observe",
        Step::Plan => "plan",
        Step::Register { .. } => "register",
        Step::ReadVersions => "versions",
        Step::Revert { .. } => "revert",
        Step::Retire { .. } => "retire",
        Step::Promote { .. } => "promote",
        Step::ForceLaunch { .. } => "force-launch",
        Step::Record(_) => "record",
        Step::Done => "done",
    }
}

fn scope_of(desired: &DesiredJob) -> Scope {
    Scope {
        namespace: Some(desired.namespace.clone()),
        region: desired.region.clone(),
    }
}

/// The key that spreads `obj`'s resyncs: its UID (its name when it has none yet).
fn resync_key(obj: &NomadJob) -> String {
    use kube::ResourceExt;
    obj.uid().unwrap_or_else(|| obj.name_any())
}

/// What deletion needs of an object: its metadata, policies and status. It can be read
/// even from an object whose spec cannot be decoded.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Head {
    /// The object's metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The policies of its spec.
    #[serde(default)]
    pub spec: HeadSpec,
    /// Its status.
    #[serde(default)]
    pub status: Option<NomadJobStatus>,
}

/// The policies of a spec, without the job.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeadSpec {
    /// `spec.suspend`.
    #[serde(default)]
    pub suspend: bool,
    /// `spec.deletionPolicy`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// `spec.connectionRef`.
    #[serde(default)]
    pub connection_ref: Option<ConnectionRef>,
}

impl Head {
    /// The head of a decoded object.
    pub fn of(obj: &NomadJob) -> Self {
        Self {
            metadata: obj.metadata.clone(),
            spec: HeadSpec {
                suspend: obj.spec.suspend,
                deletion_policy: obj.spec.deletion_policy,
                connection_ref: obj.spec.connection_ref.clone(),
            },
            status: obj.status.clone(),
        }
    }
}

/// How a cleanup ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cleanup {
    /// The deletion policy is applied: the finalizer may come off.
    Done,
    /// The job is protected from deletion: the finalizer stays.
    Kept,
    /// Nomad cannot be asked right now (the connection is unusable, or the token was
    /// refused): the finalizer stays and the cleanup is tried again later.
    Later,
}

impl Cleanup {
    /// What the controller does next: remove nothing more and wait, or try again.
    fn action(self) -> Action {
        match self {
            Self::Done | Self::Kept => Action::await_change(),
            Self::Later => Action::requeue(REFUSED_RECHECK),
        }
    }
}

/// The `Cleanup` branch: applies `spec.deletionPolicy` to the job this object manages,
/// and to the one it managed before a rename if that is still pending. The job is the one
/// the status records (recorded before the first register), or the one the spec names
/// when the status has none; a job is removed only when it is this object's (its `Meta`,
/// or the `CreateIndex` the status records), never while the NomadJob CRD itself is
/// being deleted, and never while its deletion protection is on (then [`Cleanup::Kept`]).
pub async fn cleanup(
    head: &Head,
    desired: Option<&DesiredJob>,
    ctx: &Context,
    kube: &impl KubeSide,
) -> Result<Cleanup, Error> {
    let target = Target::of(&head.metadata).ok_or(Error::MissingObjectKey)?;
    let obj_ref = object_ref(&target);
    let status = head.status.clone().unwrap_or_default();
    // The jobs come from what the operator knows it did: a status held back after a
    // register records the job the apiserver's may not name yet (see `settle`).
    let held = ctx.held.peek(&obj_ref, head.metadata.uid.as_deref());
    let known = held.as_ref().unwrap_or(&status);
    let recorded =
        known
            .job_id
            .clone()
            .zip(known.job_namespace.clone())
            .map(|(job_id, namespace)| JobRef {
                namespace,
                job_id,
                create_index: known.job_create_index,
            });
    let current = recorded.or_else(|| {
        desired.map(|d| JobRef {
            namespace: d.namespace.clone(),
            job_id: d.id.clone(),
            create_index: None,
        })
    });
    let jobs: Vec<JobRef> = current
        .into_iter()
        .chain(known.renamed_from.clone())
        .collect();
    let guards = Guards {
        crd_terminating: kube.crd_terminating().await?,
        protected: protected(head.metadata.annotations.as_ref(), ctx.deletion_protection),
    };
    let policy = head.spec.deletion_policy;
    let route = match connection_of(ctx, head).await? {
        Choice::Use(route) => route,
        // Orphaning needs no Nomad call; anything else waits for the connection.
        Choice::Refused { .. } if policy == DeletionPolicy::Orphan => {
            finish_cleanup(ctx, &obj_ref, &jobs, &ctx.jobs, &ctx.mirror);
            return Ok(Cleanup::Done);
        }
        Choice::Refused { reason, message } => {
            stall(
                &target,
                &status,
                head.metadata.generation,
                reason,
                format!(
                    "the object is being deleted, but its Nomad cannot be reached through its connection: {message}. Fix the connection, or set spec.deletionPolicy to Orphan to leave the job as it is"
                ),
                kube,
            )
            .await?;
            return Ok(Cleanup::Later);
        }
    };
    let region = desired
        .and_then(|d| d.region.clone())
        .or_else(|| route.defaults.region.clone());
    let mut notes = Vec::new();
    for old in &jobs {
        let scope = Scope {
            namespace: Some(old.namespace.clone()),
            region: region.clone(),
        };
        let id = &old.job_id;
        let skip_read =
            head.spec.suspend || policy == DeletionPolicy::Orphan || guards.crd_terminating;
        let job = if skip_read {
            None
        } else {
            match observe::read_job(&route.nomad, &scope, id).await {
                Ok(job) => job.as_ref().map(JobView::parse),
                Err(NomadError::PermissionDenied(m)) => {
                    return refused_delete(&target, &status, head, id, &m, kube).await;
                }
                Err(other) => return Err(other.into()),
            }
        };
        let claim = Claim {
            recorded_create_index: old.create_index,
            adopt: false,
        };
        let owned = ownership(job.as_ref(), &target.namespace, &target.name, claim);
        match deletion(policy, head.spec.suspend, job.as_ref(), &owned, guards) {
            Deletion::Orphan(why) => notes.push(format!("left Nomad job {id:?} running: {why}")),
            Deletion::Nothing => {}
            Deletion::Refused(why) => {
                let previous = status.clone();
                stall(
                    &target,
                    &previous,
                    head.metadata.generation,
                    reason::DELETION_PROTECTED,
                    format!("Nomad job {id:?}: {why}"),
                    kube,
                )
                .await?;
                return Ok(Cleanup::Kept);
            }
            stop @ (Deletion::Stop | Deletion::Purge) => {
                let purge = stop == Deletion::Purge;
                hold_points::reached("deregister.before").await;
                let deregistered = route.nomad.deregister_job(&scope, id, purge).await;
                hold_points::reached("deregister.after").await;
                match deregistered {
                    Ok(_) | Err(NomadError::NotFound(_)) => {}
                    Err(NomadError::PermissionDenied(m)) => {
                        return refused_delete(&target, &status, head, id, &m, kube).await;
                    }
                    Err(other) => return Err(other.into()),
                }
                let what = if purge {
                    "purged"
                } else {
                    "deregistered (stopped)"
                };
                notes.push(format!("{what} Nomad job {id:?}"));
            }
        }
    }
    finish_cleanup(ctx, &obj_ref, &jobs, &route.jobs, &route.mirror);
    for note in notes {
        kube.publish(
            &target,
            Notice {
                warning: false,
                reason: reason::DELETED.into(),
                note,
            },
        )
        .await;
    }
    Ok(Cleanup::Done)
}

/// Keeps the finalizer of an object whose deletion Nomad refused to the token (403), and
/// says how to get out: fix the token, or let the job be (`deletionPolicy: Orphan`).
async fn refused_delete(
    target: &Target,
    status: &NomadJobStatus,
    head: &Head,
    id: &str,
    why: &str,
    kube: &impl KubeSide,
) -> Result<Cleanup, Error> {
    let message = format!(
        "the object is being deleted, but Nomad refused the operator's token for job {id:?} ({why}); the finalizer stays so that the job is not lost. Grant the token the job's namespace (read-job, submit-job), or set spec.deletionPolicy to Orphan to let the object go and leave the job in Nomad"
    );
    stall(
        target,
        status,
        head.metadata.generation,
        reason::PERMISSION_DENIED,
        message,
        kube,
    )
    .await?;
    Ok(Cleanup::Later)
}

/// Forgets what the context kept about a deleted object.
fn finish_cleanup(
    ctx: &Context,
    obj_ref: &ObjectRef<NomadJob>,
    jobs: &[JobRef],
    index: &super::context::JobIndex,
    mirror: &super::mirror::Mirror,
) {
    ctx.plans.forget(obj_ref);
    ctx.list_waits.forget(obj_ref);
    ctx.held.forget(obj_ref);
    ctx.parsed.forget(obj_ref);
    ctx.sources.forget(obj_ref);
    ctx.metrics.record_ready(&obj_ref.to_string(), None);
    for old in jobs {
        let key = (old.namespace.clone(), old.job_id.clone());
        index.remove(&key, obj_ref);
        // The job is gone or no longer this operator's: its view is not kept.
        mirror.remember(&key, None);
    }
}

/// The connection of an object being deleted (by its spec, as its head has it).
async fn connection_of(ctx: &Context, head: &Head) -> Result<Choice, Error> {
    let namespace = head.metadata.namespace.clone().unwrap_or_default();
    Ok(ctx
        .connections
        .choose(&ctx.kube, &namespace, head.spec.connection_ref.as_ref())
        .await?)
}

/// Keeps the finalizer of an object being deleted whose spec has a field that looks like
/// `deletionPolicy` but is not (`deletion_policy`): which policy the user meant is
/// unknown, so the job is left as it is until the spec is fixed. Says so in the
/// `Stalled` condition and a Warning Event.
async fn refuse_cleanup(
    obj: &NomadJob,
    key: &str,
    target: &Target,
    kube: &impl KubeSide,
) -> Result<Action, Error> {
    let message = format!(
        "the object is being deleted, but spec has the unknown field {key:?} instead of deletionPolicy, so the operator does not know what to do with the Nomad job; it is left untouched. Fix the field (kubectl edit), and the deletion goes on"
    );
    let previous = obj.status.clone().unwrap_or_default();
    stall(
        target,
        &previous,
        obj.metadata.generation,
        reason::INVALID_SPEC,
        message,
        kube,
    )
    .await?;
    Ok(Action::await_change())
}

/// Sets `Stalled` with `reason` and `message` on `target` outside a reconcile's report
/// (the status is written only when it changes) and publishes one Warning Event when the
/// message is new.
async fn stall(
    target: &Target,
    previous: &NomadJobStatus,
    generation: Option<i64>,
    reason: &'static str,
    message: String,
    kube: &impl KubeSide,
) -> Result<(), Error> {
    let mut status = previous.clone();
    status.observed_generation = generation;
    set_readiness(
        &mut status.conditions,
        &super::report::Readiness::Stalled {
            reason,
            message: message.clone(),
        },
        generation,
        &Time(k8s_openapi::jiff::Timestamp::now()),
    );
    let announced = find_condition(&previous.conditions, crate::crd::condition::STALLED)
        .is_some_and(|c| {
            c.reason == reason
                && c.message
                    == crate::nomad::truncate_bytes(&message, super::status::MAX_MESSAGE_BYTES)
        });
    kube.write_status(target, previous, &status).await?;
    if !announced {
        warn!(object = %object_ref(target), "{message}");
        kube.publish(
            target,
            Notice {
                warning: true,
                reason: reason.into(),
                note: message,
            },
        )
        .await;
    }
    Ok(())
}

/// An object whose JSON cannot be decoded as a `NomadJob`: it is reported on (a
/// `Stalled/InvalidSpec` condition and one Event) and makes no Nomad call, and its
/// deletion still applies the deletion policy to the job its status records.
async fn undecodable(
    text: &str,
    decode_error: serde_json::Error,
    target: &Target,
    ctx: &Context,
    kube: &impl KubeSide,
) -> Result<Action, Error> {
    let Ok(head) = serde_json::from_str::<Head>(text) else {
        warn!(object = %object_ref(target), "cannot read the object at all: {decode_error}");
        return Ok(Action::await_change());
    };
    match finalizer_step(&head.metadata) {
        FinalizerStep::Cleanup => {
            let done = cleanup(&head, None, ctx, kube).await?;
            if done == Cleanup::Done {
                remove_finalizer(ctx, target, &head.metadata).await?;
            }
            return Ok(done.action());
        }
        FinalizerStep::Nothing => return Ok(Action::await_change()),
        FinalizerStep::Add | FinalizerStep::Apply => {}
    }
    let previous = head.status.clone().unwrap_or_default();
    let message = format!(
        "the object cannot be decoded ({decode_error}); fix the manifest (spec.job must be a Nomad job in JSON form, nested at most 100 levels)"
    );
    stall(
        target,
        &previous,
        head.metadata.generation,
        reason::INVALID_SPEC,
        message,
        kube,
    )
    .await?;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nomad::{AllocDeploymentStatus, AllocationListStub, DeploymentState};

    fn allocation(version: u64, healthy: Option<bool>) -> AllocationListStub {
        AllocationListStub {
            job_version: version,
            deployment_status: Some(AllocDeploymentStatus {
                healthy,
                ..AllocDeploymentStatus::default()
            }),
            ..AllocationListStub::default()
        }
    }

    fn deployment(version: u64, healthy: u64) -> Deployment {
        let mut d = Deployment {
            job_version: version,
            ..Deployment::default()
        };
        d.task_groups.insert(
            "web".to_string(),
            DeploymentState {
                healthy_allocs: healthy,
                ..DeploymentState::default()
            },
        );
        d
    }

    #[test]
    fn a_deployment_ahead_of_the_listed_allocations_waits_for_the_feed_or_has_them_read() {
        use HealthListing::{Coming, Listed, Missing};
        let job = JobView {
            version: 2,
            ..JobView::default()
        };
        let details = observe::Details {
            allocations: vec![allocation(2, Some(true)), allocation(2, None)],
            ..observe::Details::default()
        };
        let at = |version, healthy, modify_index| Deployment {
            modify_index,
            ..deployment(version, healthy)
        };
        assert_eq!(
            health_listing(&details, &job, &[at(2, 1, 50)], Some(40)),
            Listed
        );
        assert_eq!(
            health_listing(&details, &job, &[at(2, 2, 50)], Some(40)),
            Coming,
            "two healthy counted at 50, one listed at 40: the next answer lists the other"
        );
        assert_eq!(
            health_listing(&details, &job, &[at(2, 2, 50)], Some(50)),
            Missing,
            "the feed answered at the deployment's index and still shows one"
        );
        assert_eq!(
            health_listing(&details, &job, &[at(2, 2, 50)], None),
            Missing
        );
        assert_eq!(
            health_listing(&details, &job, &[at(1, 3, 50)], Some(40)),
            Listed,
            "an older version's allocations may be gone from the lists"
        );
    }
}
