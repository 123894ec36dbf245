//! The `NomadJob` controller: plan -> register -> follow the deployment -> revert ->
//! mirror status.
//!
//! Pure decisions live in [`render`], [`ownership`], [`decide`] and [`status`]; the I/O
//! steps in [`reconcile`]; Events in [`events`]; event-driven triggers from Nomad in [`nomad_watch`]; wiring in
//! [`run`].

pub mod context;
pub mod decide;
pub mod error;
pub mod events;
pub mod nomad_watch;
pub mod ownership;
pub mod reconcile;
pub mod render;
pub mod run;
pub mod status;

pub use error::Error;
pub use run::{RunArgs, StartError};
