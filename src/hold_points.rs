//! Named points of the reconcile pipeline where the fault tests hold the process, so
//! that they can kill it (`kill -9`) exactly there: before and after each Nomad write
//! and each status write.
//!
//! `NOMAD_OPERATOR_HOLD_AT=register.after` makes the first reconcile that reaches the
//! point `register.after` print `nomad-operator: held at register.after` to stderr and
//! wait forever (other reconciles go on). Unset, the points cost one load of a
//! `OnceLock`.
//!
//! The points of a `NomadJob`, in pipeline order: `finalizer.before`, `finalizer.after`;
//! for each step of a reconcile (`register`, `revert`, `promote`, `retire`,
//! `force-launch`, and the reads `observe`, `plan`, `versions`), `STEP.before` just
//! before the Nomad call and `STEP.after` just after its answer, and for the steps
//! recorded in the status first (`register` and `revert` in `status.pending`,
//! `force-launch` as an answered request; the others record nothing, so
//! `promote.intent` and the like are never reached) `STEP.intent` before that status
//! write; `status.before` and `status.after` around a reconcile's last
//! status write; on delete, `deregister.before`, `deregister.after`,
//! `finalizer-removal.before` and `finalizer-removal.after`.
//!
//! The points of a `NomadDispatch`: `dispatch.intent` before the status write that
//! records `dispatchedAt` (a dispatch is about to be made), `dispatch.before` just
//! before `POST /v1/job/:id/dispatch` and `dispatch.after` just after its answer.

use std::sync::OnceLock;

/// The environment variable naming the point to hold at.
pub const HOLD_AT_ENV: &str = "NOMAD_OPERATOR_HOLD_AT";

fn hold_at() -> Option<&'static str> {
    static HOLD_AT: OnceLock<Option<String>> = OnceLock::new();
    HOLD_AT
        .get_or_init(|| std::env::var(HOLD_AT_ENV).ok().filter(|p| !p.is_empty()))
        .as_deref()
}

/// Holds this reconcile forever when `point` is the one named by [`HOLD_AT_ENV`].
pub async fn reached(point: &str) {
    if hold_at() == Some(point) {
        eprintln!("nomad-operator: held at {point}");
        std::future::pending::<()>().await;
    }
}
