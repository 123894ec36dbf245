//! Support shared by the integration tests: a real Kubernetes control plane, one
//! temporary namespace per test, the Nomad simulator, and the operator itself.
//!
//! Each test binary includes this with `mod support;` and uses only part of it.
#![allow(dead_code)]

pub mod envtest;
pub mod operator;
