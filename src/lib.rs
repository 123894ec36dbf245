//! nomad-operator: a Kubernetes operator that makes a `NomadJob` custom resource the
//! source of truth for a HashiCorp Nomad job.

pub mod admin;
pub mod controller;
pub mod convert;
pub mod crd;
pub mod crdgen;
pub mod hold_points;
pub mod jobspec;
pub mod leader;
pub mod metrics;
pub mod named_map;
pub mod nomad;
pub mod operator;
pub mod periodic_schedule;
pub mod plan_text;
pub mod preview;
pub mod telemetry;
