//! Support shared by the integration tests: a real Kubernetes control plane, one
//! temporary namespace per test, the Nomad simulator, the run's real Nomad agent, and
//! the operator itself.
//!
//! Each test binary includes this with `mod support;` and uses only part of it.
#![allow(dead_code)]

pub mod envtest;
pub mod fixtures;
pub mod nomad_agent;
pub mod nomad_proxy;
pub mod operator;
pub mod watchdog;
