//! The `NomadJob` controller. One reconcile ([`reconcile`]) reads as four steps:
//! [`observe`] Nomad, [`classify`] everything into one state (pure), [`act`] on the one
//! step that state calls for, and [`report`] the new status and Events (pure).
//!
//! Around them: rendering the job from the spec ([`render`], pure), who owns a Nomad job
//! ([`ownership`], pure), what a delete does ([`deletion`], pure), the status types'
//! helpers ([`status`], pure), the Kubernetes writes ([`kube_side`]) and the statuses
//! held back after a register ([`settle`]), Events
//! ([`events`]), event-driven triggers from Nomad ([`nomad_watch`]), and the wiring
//! ([`run`]).

pub mod act;
pub mod classify;
pub mod connection;
pub mod context;
pub mod counts;
pub mod crd_presence;
pub mod deletion;
pub mod dispatch;
pub mod error;
pub mod events;
pub mod job_schema;
pub mod kube_side;
pub mod mirror;
pub mod nomad_watch;
pub mod observe;
pub mod outcome;
pub mod ownership;
pub mod reconcile;
pub mod render;
pub mod report;
pub mod resolve;
pub mod resync;
pub mod rollout;
pub mod run;
pub mod send;
pub mod settle;
pub mod status;

pub use error::Error;
pub use run::{RunArgs, StartError};
