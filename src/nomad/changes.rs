//! Light-weight change feeds: the list endpoints read for only what identifies a change.
//!
//! Watching Nomad for changes needs, per item, just its ID, its job and its
//! `ModifyIndex`. Decoding only those fields of a 10,000-item list costs a fraction of
//! decoding the full stubs (task states, events, summaries), in CPU and in memory; and
//! the list is decoded while it arrives, never held whole.

use std::time::Duration;

use serde::Deserialize;

use super::client::{Blocking, Call, NomadClient, Scope};
use super::error::NomadError;
use super::types::{Nullable, nullable};

/// A list whose changes can be followed with blocking queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeFeed {
    /// `GET /v1/jobs`.
    Jobs,
    /// `GET /v1/deployments`.
    Deployments,
    /// `GET /v1/allocations`.
    Allocations,
}

impl ChangeFeed {
    /// The feed's name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Jobs => "jobs",
            Self::Deployments => "deployments",
            Self::Allocations => "allocations",
        }
    }

    fn segment(self) -> &'static str {
        self.name()
    }
}

/// One item of a change feed. The ID is required (an item without one cannot be routed);
/// the rest reads `null` and absence as empty, like every type in [`super::types`].
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ChangeEntry {
    /// The item's ID (for jobs, the job ID).
    #[serde(rename = "ID")]
    pub id: String,
    /// The item's namespace.
    #[serde(rename = "Namespace", default, deserialize_with = "nullable")]
    pub namespace: String,
    /// The job the item belongs to (absent on jobs themselves).
    #[serde(rename = "JobID", default, deserialize_with = "nullable")]
    pub job_id: Option<String>,
    /// Moves on every change of the item.
    #[serde(rename = "ModifyIndex", default, deserialize_with = "nullable")]
    pub modify_index: u64,
}

impl ChangeEntry {
    /// The ID of the job the item is or belongs to.
    pub fn job(&self) -> &str {
        self.job_id.as_deref().unwrap_or(&self.id)
    }
}

/// One answer of a change feed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// `X-Nomad-Index`: pass it to the next blocking query.
    pub index: u64,
    /// The list's items.
    pub entries: Vec<ChangeEntry>,
    /// The time spent reading and decoding the answer, without the time Nomad held
    /// the query waiting for a change: what one list costs.
    pub read_time: Duration,
}

impl NomadClient {
    /// The items of `feed` in `scope` (namespace `"*"` = all), as a blocking query.
    pub async fn changes(
        &self,
        feed: ChangeFeed,
        scope: &Scope,
        blocking: Option<Blocking>,
    ) -> Result<Changes, NomadError> {
        let call = Call::get(scope, &[feed.segment()]).blocking(blocking);
        let (answer, read_time) = self
            .execute_streamed::<Nullable<Vec<ChangeEntry>>>(call)
            .await?;
        Ok(Changes {
            index: answer.index,
            entries: answer.value.into_inner(),
            read_time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a fixture recorded from the real agent (`tests/fixtures/nomad`).
    fn recorded(name: &str) -> Vec<ChangeEntry> {
        let path = format!(
            "{}/tests/fixtures/nomad/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).expect("fixture");
        serde_json::from_str(&text).expect("decode fixture")
    }

    #[test]
    fn real_list_answers_decode_as_change_entries() {
        for name in ["jobs-list", "allocations-list", "deployments-list"] {
            let entries = recorded(name);
            assert!(!entries.is_empty(), "{name}");
            assert!(
                entries
                    .iter()
                    .all(|e| !e.id.is_empty() && !e.job().is_empty() && e.modify_index > 0),
                "{name}: {entries:?}"
            );
        }
    }

    #[test]
    fn an_entry_without_id_is_an_error_and_nulls_are_empty() {
        assert!(serde_json::from_str::<ChangeEntry>(r#"{"ModifyIndex":3}"#).is_err());
        assert!(serde_json::from_str::<ChangeEntry>(r#"{"ID":null}"#).is_err());
        let entry: ChangeEntry = serde_json::from_str(
            r#"{"ID":"web","Namespace":null,"JobID":null,"ModifyIndex":null}"#,
        )
        .expect("nulls");
        assert_eq!(
            (entry.job(), entry.namespace.as_str(), entry.modify_index),
            ("web", "", 0)
        );
    }

    #[test]
    fn entries_keep_only_the_identifying_fields() {
        let jobs: Vec<ChangeEntry> = serde_json::from_str(
            r#"[{"ID":"web","Namespace":"default","ModifyIndex":7,"JobSummary":{"Summary":{}},"Status":"running"}]"#,
        )
        .expect("jobs");
        assert_eq!((jobs[0].job(), jobs[0].modify_index), ("web", 7));
        let allocs: Vec<ChangeEntry> = serde_json::from_str(
            r#"[{"ID":"a1","Namespace":"apps","JobID":"web","ModifyIndex":9,"TaskStates":{"t":{"State":"running"}}}]"#,
        )
        .expect("allocations");
        assert_eq!(
            (
                allocs[0].id.as_str(),
                allocs[0].job(),
                allocs[0].namespace.as_str()
            ),
            ("a1", "web", "apps")
        );
    }
}
