//! Typed async client for the Nomad HTTP API.
//!
//! [`NomadClient`] covers what the operator needs: jobs (list, register with
//! check-and-set, read, versions, plan, revert, stable, deregister, summary, evaluations,
//! parse, dispatch, periodic force), allocations and deployments, with blocking queries
//! on the list endpoints. Answers are typed but tolerant (unknown fields ignored, missing
//! ones defaulted, Go's `null` read as empty); the job itself stays a
//! [`serde_json::Value`]. Failures are one [`NomadError`] enum whose
//! [`category`](NomadError::category) labels events and metrics.
//!
//! ```no_run
//! # async fn demo() -> Result<(), nomad_operator::nomad::NomadError> {
//! use nomad_operator::nomad::{NomadClient, NomadConfig, Scope};
//! let client = NomadClient::new(&NomadConfig::new("http://127.0.0.1:4646"))?;
//! let jobs = client.list_jobs(&Scope::default(), None, None).await?;
//! println!("{} jobs at index {}", jobs.value.len(), jobs.index);
//! # Ok(())
//! # }
//! ```

mod allocations;
pub mod breaker;
mod changes;
mod chunks;
mod client;
mod config;
mod deployments;
mod encoding;
mod error;
mod jobs;
mod tls;
pub mod types;

pub use changes::{ChangeEntry, ChangeFeed, Changes, FeedItem};
pub use client::{
    Blocking, CallHook, Indexed, MAX_ANSWER_BYTES, MAX_STREAMED_BYTES, NomadClient, Scope,
    WriteGate,
};
pub use config::{InlineTls, NomadConfig, Pem, Token, parse_duration};
pub use error::{NomadError, truncate_bytes};
pub use jobs::{ParseRequest, release_at_least};
pub use types::*;
