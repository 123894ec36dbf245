//! Statuses held back after a register, so that a deployment that ends soon after is
//! shown in one status write (its outcome) instead of two (`Reconciling/Registered`,
//! then `Ready`).
//!
//! A reconcile that registered a version and would now write a status that only says
//! the rollout is under way holds that status here instead, for at most the hold
//! (`--status-hold`), and comes back when the hold ends. The reconciles the watches
//! trigger meanwhile start from the held status (it is what the operator knows it
//! did), and write as soon as there is more to say than "under way": the deployment
//! ended, failed, waits for a promotion, or anything went wrong. A deployment still
//! running when the hold ends is shown then, as it was before there was a hold.
//!
//! The Events of the register are published when it is made, not held. A held status
//! lives only in this process: a restart or a new leader plans the job again (Nomad
//! answers "no change") and writes what it finds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::runtime::reflector::ObjectRef;

use crate::crd::{NomadJob, NomadJobStatus, condition, reason};

use super::status::find_condition;

/// A status held back, and the object it is held for.
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    /// The status the operator would have written.
    pub status: NomadJobStatus,
    /// When the hold began (the register).
    pub since: Instant,
    /// The object's UID.
    uid: Option<String>,
}

/// The statuses held back, one per object at most.
#[derive(Default)]
pub struct HeldStatuses {
    held: Mutex<HashMap<ObjectRef<NomadJob>, Held>>,
}

impl HeldStatuses {
    /// Holds `status` for `obj` (UID `uid`), held since `since`.
    pub fn hold(
        &self,
        obj: &ObjectRef<NomadJob>,
        uid: Option<&str>,
        status: NomadJobStatus,
        since: Instant,
    ) {
        let held = Held {
            status,
            since,
            uid: uid.map(str::to_string),
        };
        self.lock().insert(obj.clone(), held);
    }

    /// Takes the status held for `obj` out of the store, if it was held for the object
    /// of UID `uid`: one deleted and created again under its name gets nothing (and the
    /// stale status is dropped). Only the operator writes a status, and only the
    /// reconcile that took this one writes the next, so what the apiserver shows meanwhile
    /// is older than what is held.
    pub fn take(&self, obj: &ObjectRef<NomadJob>, uid: Option<&str>) -> Option<Held> {
        self.lock()
            .remove(obj)
            .filter(|held| held.uid.as_deref() == uid)
    }

    /// The status held for `obj`, left in the store, on the same terms as
    /// [`HeldStatuses::take`].
    pub fn peek(&self, obj: &ObjectRef<NomadJob>, uid: Option<&str>) -> Option<NomadJobStatus> {
        self.lock()
            .get(obj)
            .filter(|held| held.uid.as_deref() == uid)
            .map(|held| held.status.clone())
    }

    /// Puts back a status taken by [`HeldStatuses::take`] that is still to be held.
    pub fn put_back(&self, obj: &ObjectRef<NomadJob>, held: Held) {
        self.lock().insert(obj.clone(), held);
    }

    /// Drops what is held for `obj` (its cleanup).
    pub fn forget(&self, obj: &ObjectRef<NomadJob>) {
        self.lock().remove(obj);
    }

    /// How many statuses are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no status is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<NomadJob>, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether `status`, held for `held_for` so far, stays held under a hold of `hold`
/// while the object shows `shown` (pure): only while it says no more than that the
/// registered version is on its way (`Reconciling` with reason `Registered` or
/// `Deploying`, nothing stalled, nothing drifted), the hold has not run out, and what
/// the object shows is not `Ready=True`: a change to a ready object is shown under way
/// at once, so that nothing waiting for `Ready` (`kubectl wait`) takes the old version's
/// for the new one's.
pub fn keeps_holding(
    status: &NomadJobStatus,
    shown: &NomadJobStatus,
    held_for: Duration,
    hold: Duration,
) -> bool {
    let shows_ready =
        find_condition(&shown.conditions, condition::READY).is_some_and(|c| c.status == "True");
    let under_way = find_condition(&status.conditions, condition::RECONCILING).is_some_and(|c| {
        c.status == "True" && (c.reason == reason::REGISTERED || c.reason == reason::DEPLOYING)
    });
    let flagged = [condition::STALLED, condition::DRIFTED]
        .iter()
        .any(|type_| find_condition(&status.conditions, type_).is_some_and(|c| c.status == "True"));
    held_for < hold && under_way && !flagged && !shows_ready
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::report::Readiness;
    use crate::controller::status::set_readiness;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn status_of(readiness: Readiness) -> NomadJobStatus {
        let mut status = NomadJobStatus::default();
        let now = Time(Timestamp::from_second(1_000).expect("timestamp"));
        set_readiness(&mut status.conditions, &readiness, Some(1), &now);
        status
    }

    fn progressing(reason: &'static str) -> NomadJobStatus {
        status_of(Readiness::Progressing {
            reason,
            message: "on its way".into(),
        })
    }

    const HOLD: Duration = Duration::from_secs(2);

    #[test]
    fn a_rollout_under_way_is_held_until_the_hold_runs_out() {
        let none = NomadJobStatus::default();
        for reason in [reason::REGISTERED, reason::DEPLOYING] {
            let status = progressing(reason);
            assert!(
                keeps_holding(&status, &none, Duration::ZERO, HOLD),
                "{reason}"
            );
            assert!(keeps_holding(
                &status,
                &none,
                Duration::from_millis(1_999),
                HOLD
            ));
            assert!(
                !keeps_holding(&status, &none, HOLD, HOLD),
                "{reason} at the end"
            );
            assert!(!keeps_holding(
                &status,
                &none,
                Duration::ZERO,
                Duration::ZERO
            ));
        }
    }

    #[test]
    fn an_outcome_or_anything_else_to_say_is_written_at_once() {
        let none = NomadJobStatus::default();
        let ready = status_of(Readiness::Ready("running".into()));
        assert!(!keeps_holding(&ready, &none, Duration::ZERO, HOLD));
        let failed = status_of(Readiness::Stalled {
            reason: reason::DEPLOYMENT_FAILED,
            message: "failed".into(),
        });
        assert!(!keeps_holding(&failed, &none, Duration::ZERO, HOLD));
        for reason in [
            reason::AWAITING_PROMOTION,
            reason::DEPLOYMENT_FAILED,
            reason::NOMAD_UNAVAILABLE,
        ] {
            assert!(
                !keeps_holding(&progressing(reason), &none, Duration::ZERO, HOLD),
                "{reason}"
            );
        }
        let mut drifted = progressing(reason::DEPLOYING);
        drifted
            .conditions
            .push(k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                type_: condition::DRIFTED.into(),
                status: "True".into(),
                ..drifted.conditions[0].clone()
            });
        assert!(!keeps_holding(&drifted, &none, Duration::ZERO, HOLD));
    }

    #[test]
    fn a_change_to_a_ready_object_is_not_held() {
        let deploying = progressing(reason::DEPLOYING);
        let ready = status_of(Readiness::Ready("running".into()));
        assert!(!keeps_holding(&deploying, &ready, Duration::ZERO, HOLD));
        let failed = status_of(Readiness::Stalled {
            reason: reason::DEPLOYMENT_FAILED,
            message: "failed".into(),
        });
        assert!(
            keeps_holding(&deploying, &failed, Duration::ZERO, HOLD),
            "a failed object's fix claims nothing it is not"
        );
    }

    #[test]
    fn a_held_status_is_given_back_only_to_the_object_it_was_held_for() {
        let store = HeldStatuses::default();
        let obj = ObjectRef::<NomadJob>::new("web").within("apps");
        let held = progressing(reason::REGISTERED);
        let since = Instant::now();
        store.hold(&obj, Some("uid-1"), held.clone(), since);
        assert_eq!(store.peek(&obj, Some("uid-1")), Some(held.clone()));
        assert_eq!(store.peek(&obj, Some("uid-2")), None);
        let taken = store.take(&obj, Some("uid-1")).expect("held");
        assert_eq!((taken.status.clone(), taken.since), (held.clone(), since));
        assert!(store.is_empty(), "taking removes it");
        store.put_back(&obj, taken);
        assert_eq!(store.len(), 1);

        // Replaced by an object of the same name: dropped.
        assert_eq!(store.take(&obj, Some("uid-2")), None);
        assert!(store.is_empty());

        store.hold(&obj, Some("uid-1"), held, since);
        store.forget(&obj);
        assert_eq!(store.take(&obj, Some("uid-1")), None);
    }
}
