//! Support shared by the integration tests: a real Kubernetes control plane, one
//! temporary namespace per test, the Nomad simulator, the run's real Nomad agent, and
//! the operator itself.
//!
//! Each test binary includes this with `mod support;` and uses only part of it.
#![allow(dead_code, unused_imports, unused_macros)]

pub mod envtest;
pub mod fixtures;
pub mod log_capture;
pub mod nomad_agent;
pub mod nomad_proxy;
pub mod operator;
pub mod operator_process;
pub mod oracles;
pub mod tcp_proxy;
pub mod watchdog;

/// Declares a `#[tokio::test]` per scenario on each backend: `on_sim::NAME` and
/// `on_real_nomad::NAME` run the same body.
macro_rules! scenarios {
    (both: [$($both:ident),* $(,)?], simulator_only: [$($sim:ident),* $(,)?] $(,)?) => {
        mod on_sim {
            $(#[tokio::test]
            async fn $both() {
                super::$both(super::Backend::Sim).await
            })*
            $(#[tokio::test]
            async fn $sim() {
                super::$sim(super::Backend::Sim).await
            })*
        }
        mod on_real_nomad {
            $(#[tokio::test]
            async fn $both() {
                super::$both(super::Backend::Real).await
            })*
        }
    };
}

pub(crate) use scenarios;
