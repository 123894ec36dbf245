//! The `NomadDispatch` controller: dispatches a parameterized job once, with the
//! object's payload and meta, and mirrors the dispatched job's outcome into its status.
//!
//! ```text
//! no dispatch yet      find the NomadJob, check its Nomad job is parameterized,
//!                      record `dispatchedAt`, then dispatch       -> jobID
//! dispatchedAt, no ID  (a restart between the two) find the dispatched job whose
//!                      meta carries this object's UID, or dispatch again if none does
//! jobID                follow the job: summary, allocations, outcome
//! ```
//!
//! The decisions ([`next_step`], [`readiness`]) are pure; the rest is thin I/O.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::Value;
use tracing::{info, warn};

use crate::crd::{
    META_DISPATCH_UID, NomadDispatch, NomadDispatchStatus, NomadJob, condition, reason,
};
use crate::hold_points;
use crate::nomad::{NomadClient, NomadError, Scope};

use super::connection::{Choice, Route};
use super::context::Context;
use super::error::Error;
use super::kube_side::{merge_patch, patch_params};
use super::observe::{JobView, read_job};
use super::outcome::{Outcome, run_outcome};
use super::report::{Notice, Readiness};
use super::status::{
    find_condition, newest_allocations, ready_transition, set_readiness, summary_status,
};

/// How often a running dispatched job is looked at when no Nomad change arrives.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(300);
/// How often an object whose NomadJob is missing or not ready is looked at again.
const WAIT_INTERVAL: Duration = Duration::from_secs(15);
/// How much earlier than `dispatchedAt` a dispatched job may have been submitted (clocks
/// of the operator and of Nomad differ).
const CLOCK_SLACK_NANOS: i64 = 60_000_000_000;

/// What a `NomadDispatch` calls for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DispatchStep {
    /// Dispatch the job.
    Dispatch,
    /// A dispatch was started (at this time) and its job is not known: look for it.
    Recover(Time),
    /// Follow the dispatched job.
    Follow(String),
    /// Nomad refused the dispatch: nothing more to do.
    Refused(String),
}

/// The step `status` calls for (pure).
pub fn next_step(status: &NomadDispatchStatus) -> DispatchStep {
    match (&status.job_id, &status.dispatched_at, &status.refusal) {
        (Some(id), _, _) => DispatchStep::Follow(id.clone()),
        (None, _, Some(why)) => DispatchStep::Refused(why.clone()),
        (None, Some(at), None) => DispatchStep::Recover(at.clone()),
        (None, None, None) => DispatchStep::Dispatch,
    }
}

/// Readiness of a dispatched job from its outcome (pure).
pub fn readiness(job_id: &str, outcome: &Outcome) -> Readiness {
    match outcome {
        Outcome::Running(m) => Readiness::Progressing {
            reason: reason::RUNNING,
            message: format!("dispatched job {job_id} runs: {m}"),
        },
        Outcome::Succeeded(m) => {
            Readiness::Ready(format!("dispatched job {job_id} completed: {m}"))
        }
        Outcome::Failed(m) => Readiness::Stalled {
            reason: reason::JOB_FAILED,
            message: format!("dispatched job {job_id} failed: {m}"),
        },
    }
}

/// The parameterized job a `NomadDispatch` dispatches.
struct Parent {
    nomad: NomadClient,
    scope: Scope,
    id: String,
    /// Its `MetaOptional` has [`META_DISPATCH_UID`].
    takes_uid: bool,
}

/// Reconciles one `NomadDispatch` (the controller's entry point).
///
/// The object is read afresh: the controller's cache may not have the status this
/// operator wrote a moment ago, and acting on an older one could dispatch twice.
pub async fn reconcile_dispatch(
    cached: Arc<NomadDispatch>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let namespace = cached.namespace().ok_or(Error::MissingObjectKey)?;
    let api: Api<NomadDispatch> = Api::namespaced(ctx.kube.clone(), &namespace);
    let Some(obj) = api.get_opt(&cached.name_any()).await? else {
        return Ok(Action::await_change());
    };
    if obj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let previous = obj.status.clone().unwrap_or_default();
    let mut status = previous.clone();
    status.observed_generation = obj.metadata.generation;
    let mut notices = Vec::new();
    let result = step(&obj, &ctx, &api, &namespace, &mut status, &mut notices).await;
    let readiness = match &result {
        Ok(Some(readiness)) => readiness.clone(),
        Ok(None) => return Ok(Action::await_change()),
        Err(e) => Readiness::Progressing {
            reason: reason::NOMAD_UNAVAILABLE,
            message: format!("{e}; retrying"),
        },
    };
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    set_readiness(
        &mut status.conditions,
        &readiness,
        obj.metadata.generation,
        &now,
    );
    write_status(&api, &obj.name_any(), &previous, &status, &ctx.leadership).await?;
    announce(&previous, &status, &mut notices);
    for notice in notices {
        publish(&ctx, &obj, notice).await;
    }
    let obj_ref = ObjectRef::from_obj(&obj);
    let key = status.job_namespace.clone().zip(status.job_id.clone());
    match (&result, &readiness) {
        (Err(_), _) => Ok(Action::requeue(WAIT_INTERVAL)),
        (Ok(_), Readiness::Progressing { reason, .. }) if *reason == reason::RUNNING => {
            if let Some(key) = key {
                ctx.dispatches.insert(key, obj_ref);
            }
            Ok(Action::requeue(FOLLOW_INTERVAL))
        }
        (Ok(_), Readiness::Progressing { .. }) => Ok(Action::requeue(WAIT_INTERVAL)),
        (Ok(_), _) => {
            if let Some(key) = key {
                ctx.dispatches.remove(&key, &obj_ref);
            }
            Ok(Action::await_change())
        }
    }
}

/// What the controller does after a failed reconcile: try again shortly.
pub fn dispatch_error_policy(obj: Arc<NomadDispatch>, error: &Error, _: Arc<Context>) -> Action {
    warn!(object = %ObjectRef::from_obj(obj.as_ref()), "reconcile failed: {error}");
    Action::requeue(WAIT_INTERVAL)
}

/// Carries out the object's step; returns its readiness (`None`: nothing to write).
async fn step(
    obj: &NomadDispatch,
    ctx: &Context,
    api: &Api<NomadDispatch>,
    namespace: &str,
    status: &mut NomadDispatchStatus,
    notices: &mut Vec<Notice>,
) -> Result<Option<Readiness>, Error> {
    let started = match next_step(status) {
        DispatchStep::Follow(id) => {
            let jobs: Api<NomadJob> = Api::namespaced(ctx.kube.clone(), namespace);
            let nomad_job = jobs.get_opt(&obj.spec.job_ref.name).await.ok().flatten();
            return match route_of(ctx, namespace, nomad_job.as_ref()).await? {
                Ok(route) => follow(&route, status, &id).await.map(Some),
                Err(readiness) => Ok(Some(readiness)),
            };
        }
        DispatchStep::Refused(message) => {
            return Ok(Some(Readiness::Stalled {
                reason: reason::NOT_DISPATCHABLE,
                message,
            }));
        }
        DispatchStep::Recover(at) => Some(at),
        DispatchStep::Dispatch => None,
    };
    let parent = match parent(obj, ctx, namespace).await? {
        Ok(parent) => parent,
        Err(readiness) => return Ok(Some(readiness)),
    };
    let uid = obj.uid().unwrap_or_default();
    if let Some(at) = started {
        if let Some(id) = find_dispatched(&parent, &uid, &at).await? {
            info!(object = %ObjectRef::from_obj(obj), job = %id, "found the job of an interrupted dispatch");
            status.job_id = Some(id.clone());
            return follow_parent(&parent, status, &id).await.map(Some);
        }
        if !parent.takes_uid {
            return Ok(Some(Readiness::Stalled {
                reason: reason::NOT_DISPATCHABLE,
                message: format!(
                    "a dispatch was started at {} and the operator restarted before it saw the answer; the job {} does not take the meta key {META_DISPATCH_UID}, so the dispatched job cannot be told apart. Check `nomad job status {}`, then delete this object (and create a new one to run again)",
                    at.0, parent.id, parent.id
                ),
            }));
        }
    }
    // Record the dispatch before making it: a restart in between then looks for its job.
    let before = status.clone();
    status.parent_job_id = Some(parent.id.clone());
    status.job_namespace = parent.scope.namespace.clone();
    status.dispatched_at = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    hold_points::reached("dispatch.intent").await;
    write_status(api, &obj.name_any(), &before, status, &ctx.leadership).await?;
    let mut meta = obj.spec.meta.clone();
    if parent.takes_uid {
        meta.insert(META_DISPATCH_UID.into(), uid);
    }
    let payload = obj.spec.payload.as_deref().map(str::as_bytes);
    hold_points::reached("dispatch.before").await;
    let dispatched = parent
        .nomad
        .dispatch_job(&parent.scope, &parent.id, payload, meta)
        .await;
    hold_points::reached("dispatch.after").await;
    match dispatched {
        Ok(answer) => {
            notices.push(Notice {
                warning: false,
                reason: reason::DISPATCHED.into(),
                note: format!(
                    "dispatched {} as {} (evaluation {})",
                    parent.id,
                    answer.dispatched_job_id,
                    super::report::short_id(&answer.eval_id)
                ),
            });
            status.job_id = Some(answer.dispatched_job_id.clone());
            status.eval_id = Some(answer.eval_id);
            follow_parent(&parent, status, &answer.dispatched_job_id)
                .await
                .map(Some)
        }
        Err(NomadError::BadRequest(message)) => {
            let message = format!(
                "Nomad refused to dispatch {}: {message}. Fix spec.payload or spec.meta in a new NomadDispatch (each one is dispatched at most once)",
                parent.id
            );
            status.dispatched_at = None;
            status.refusal = Some(message.clone());
            Ok(Some(Readiness::Stalled {
                reason: reason::NOT_DISPATCHABLE,
                message,
            }))
        }
        Err(other) => Err(other.into()),
    }
}

/// The parameterized job of the NomadJob the object names, or why it cannot be dispatched
/// (yet).
async fn parent(
    obj: &NomadDispatch,
    ctx: &Context,
    namespace: &str,
) -> Result<Result<Parent, Readiness>, Error> {
    let name = &obj.spec.job_ref.name;
    let jobs: Api<NomadJob> = Api::namespaced(ctx.kube.clone(), namespace);
    let not_dispatchable = |message: String| {
        Ok(Err(Readiness::Stalled {
            reason: reason::NOT_DISPATCHABLE,
            message,
        }))
    };
    let waiting = |message: String| {
        Ok(Err(Readiness::Progressing {
            reason: reason::NOT_DISPATCHABLE,
            message,
        }))
    };
    let nomad_job_obj = match jobs.get_opt(name).await {
        Ok(Some(job)) => job,
        Ok(None) => {
            return not_dispatchable(format!(
                "spec.jobRef names the NomadJob {name:?}, which does not exist in namespace {namespace:?}"
            ));
        }
        Err(kube::Error::SerdeError(e)) => {
            return not_dispatchable(format!("the NomadJob {name:?} cannot be read: {e}"));
        }
        Err(e) => return Err(e.into()),
    };
    if nomad_job_obj.spec.suspend {
        return waiting(format!("the NomadJob {name:?} is suspended"));
    }
    let job_status = nomad_job_obj.status.clone().unwrap_or_default();
    let (Some(id), Some(job_namespace)) = (job_status.job_id, job_status.job_namespace) else {
        return waiting(format!("the NomadJob {name:?} is not registered yet"));
    };
    if let Some(ready) = find_condition(&job_status.conditions, condition::READY)
        && ready.status != "True"
    {
        return waiting(format!(
            "the NomadJob {name:?} is not Ready: {}",
            ready.message
        ));
    }
    let route = match route_of(ctx, namespace, Some(&nomad_job_obj)).await? {
        Ok(route) => route,
        Err(readiness) => return Ok(Err(readiness)),
    };
    let scope = Scope {
        namespace: Some(job_namespace),
        region: route.defaults.region.clone(),
    };
    let Some(job) = read_job(&route.nomad, &scope, &id).await? else {
        return waiting(format!(
            "the Nomad job {id} of NomadJob {name:?} does not exist yet"
        ));
    };
    let Some(parameterized) = job.get("ParameterizedJob").filter(|p| p.is_object()) else {
        return not_dispatchable(format!(
            "the Nomad job {id} of NomadJob {name:?} is not parameterized (it has no parameterized block)"
        ));
    };
    let takes_uid = parameterized
        .get("MetaOptional")
        .and_then(Value::as_array)
        .is_some_and(|keys| keys.iter().any(|k| k == META_DISPATCH_UID));
    Ok(Ok(Parent {
        nomad: route.nomad,
        scope,
        id,
        takes_uid,
    }))
}

/// The job an interrupted dispatch of object `uid` made, if it was made: a child of the
/// parent submitted since `at` whose meta carries the UID.
async fn find_dispatched(parent: &Parent, uid: &str, at: &Time) -> Result<Option<String>, Error> {
    let prefix = format!("{}/dispatch-", parent.id);
    let since = i64::try_from(at.0.as_nanosecond()).unwrap_or(i64::MAX) - CLOCK_SLACK_NANOS;
    let mut children = parent
        .nomad
        .list_jobs(&parent.scope, Some(&prefix), None)
        .await?
        .value;
    children.retain(|c| c.parent_id == parent.id && c.submit_time >= since);
    children.sort_by_key(|c| std::cmp::Reverse(c.submit_time));
    for child in children {
        let Some(job) = read_job(&parent.nomad, &parent.scope, &child.id).await? else {
            continue;
        };
        let tagged = job
            .get("Meta")
            .and_then(|m| m.get(META_DISPATCH_UID))
            .and_then(Value::as_str)
            == Some(uid);
        if tagged {
            return Ok(Some(child.id));
        }
    }
    Ok(None)
}

/// The route of the NomadJob a dispatch names (the default one when it is gone).
async fn route_of(
    ctx: &Context,
    namespace: &str,
    nomad_job: Option<&NomadJob>,
) -> Result<Result<Route, Readiness>, Error> {
    let reference = nomad_job.and_then(|j| j.spec.connection_ref.as_ref());
    Ok(
        match ctx
            .connections
            .choose(&ctx.kube, namespace, reference)
            .await?
        {
            Choice::Use(route) => Ok(route),
            Choice::Refused { reason, message } => Err(Readiness::Stalled { reason, message }),
        },
    )
}

/// [`follow`] through the parent's client and region.
async fn follow_parent(
    parent: &Parent,
    status: &mut NomadDispatchStatus,
    id: &str,
) -> Result<Readiness, Error> {
    follow_with(&parent.nomad, parent.scope.region.clone(), status, id).await
}

/// [`follow`] through `route`.
async fn follow(
    route: &Route,
    status: &mut NomadDispatchStatus,
    id: &str,
) -> Result<Readiness, Error> {
    follow_with(&route.nomad, route.defaults.region.clone(), status, id).await
}

/// Mirrors the dispatched job `id` into `status`; returns its readiness.
async fn follow_with(
    nomad: &NomadClient,
    region: Option<String>,
    status: &mut NomadDispatchStatus,
    id: &str,
) -> Result<Readiness, Error> {
    let scope = Scope {
        namespace: status.job_namespace.clone(),
        region,
    };
    let Some(job) = read_job(nomad, &scope, id).await? else {
        if let Some(outcome) = status.outcome.as_deref().filter(|o| *o != "Running") {
            // Garbage-collected after it ended: the outcome stays as it was seen.
            return Ok(find_condition(&status.conditions, condition::READY)
                .filter(|c| c.status == "True")
                .map_or_else(
                    || Readiness::Stalled {
                        reason: reason::JOB_FAILED,
                        message: format!("dispatched job {id} ended: {outcome}"),
                    },
                    |c| Readiness::Ready(c.message.clone()),
                ));
        }
        return Ok(Readiness::Stalled {
            reason: reason::NOT_DISPATCHABLE,
            message: format!(
                "the dispatched job {id} no longer exists in Nomad (purged before it was seen to end)"
            ),
        });
    };
    let view = JobView::parse(&job);
    let summary = match nomad.job_summary(&scope, id).await {
        Ok(summary) => Some(summary),
        Err(NomadError::NotFound(_)) => None,
        Err(other) => return Err(other.into()),
    };
    let allocations = nomad.job_allocations(&scope, id, false, None).await?.value;
    let outcome = run_outcome(
        &view.status,
        &view.group_counts,
        summary.as_ref(),
        &allocations,
    );
    status.job_status = Some(view.status.clone());
    status.outcome = Some(outcome.name().to_string());
    status.summary = summary.as_ref().map(summary_status).unwrap_or_default();
    status.allocations = newest_allocations(&allocations);
    Ok(readiness(id, &outcome))
}

/// Writes the status when it changed.
async fn write_status(
    api: &Api<NomadDispatch>,
    name: &str,
    before: &NomadDispatchStatus,
    after: &NomadDispatchStatus,
    leadership: &crate::leader::Leadership,
) -> Result<(), Error> {
    if before == after {
        return Ok(());
    }
    if !leadership.holds() {
        return Err(Error::NotLeader);
    }
    let json = |s: &NomadDispatchStatus| serde_json::to_value(s).unwrap_or(Value::Null);
    let patch = serde_json::json!({ "status": merge_patch(&json(before), &json(after)) });
    api.patch_status(name, &patch_params(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// An Event when the `Ready` condition's reason changed: a Warning for a failure, Normal
/// for completion.
fn announce(
    previous: &NomadDispatchStatus,
    status: &NomadDispatchStatus,
    notices: &mut Vec<Notice>,
) {
    let Some(ready) = ready_transition(&previous.conditions, &status.conditions) else {
        return;
    };
    let warning = [reason::JOB_FAILED, reason::NOT_DISPATCHABLE].contains(&ready.reason.as_str());
    let completed = ready.status == "True";
    if warning || completed {
        notices.push(Notice {
            warning,
            reason: if completed {
                reason::COMPLETED.into()
            } else {
                ready.reason.clone()
            },
            note: ready.message.clone(),
        });
    }
}

async fn publish(ctx: &Context, obj: &NomadDispatch, notice: Notice) {
    ctx.events
        .publish(notice.into_event("Dispatch"), obj.object_ref(&()))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_follows_from_what_the_status_recorded() {
        let mut status = NomadDispatchStatus::default();
        assert_eq!(next_step(&status), DispatchStep::Dispatch);
        let at = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        status.dispatched_at = Some(at.clone());
        assert_eq!(next_step(&status), DispatchStep::Recover(at));
        status.job_id = Some("p/dispatch-1-ab".into());
        assert_eq!(
            next_step(&status),
            DispatchStep::Follow("p/dispatch-1-ab".into())
        );
        let refused = NomadDispatchStatus {
            refusal: Some("missing meta".into()),
            ..NomadDispatchStatus::default()
        };
        assert_eq!(
            next_step(&refused),
            DispatchStep::Refused("missing meta".into()),
            "a refused dispatch is not made again"
        );
    }

    #[test]
    fn readiness_follows_the_outcome() {
        assert!(matches!(
            readiness("j", &Outcome::Succeeded("1/1".into())),
            Readiness::Ready(_)
        ));
        assert!(matches!(
            readiness("j", &Outcome::Failed("x".into())),
            Readiness::Stalled {
                reason: "JobFailed",
                ..
            }
        ));
        assert!(matches!(
            readiness("j", &Outcome::Running("0/1".into())),
            Readiness::Progressing {
                reason: "Running",
                ..
            }
        ));
    }
}
