//! Light-weight change feeds: the list endpoints read for what identifies a change, and
//! in full only for the items that changed.
//!
//! Watching Nomad for changes needs, per item, just its ID, its job and its
//! `ModifyIndex`. Decoding only those fields of a 10,000-item list costs a fraction of
//! decoding the full stubs (task states, events, summaries), in CPU and in memory; and
//! the list is decoded while it arrives, never held whole. An item that changed is
//! decoded in full ([`FeedItem::full`]), so that the watches can mirror it
//! ([`crate::controller::mirror`]).

use std::fmt;
use std::time::Duration;

use serde::de::{DeserializeSeed, Error as _, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::client::{Blocking, Call, NomadClient, Scope};
use super::error::NomadError;
use super::types::nullable;

/// A list whose changes can be followed with blocking queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    /// A job's summary moves on its own (allocations placed, started, finished) without
    /// the job's `ModifyIndex`.
    #[serde(rename = "JobSummary", default, deserialize_with = "nullable")]
    pub summary: Option<SummaryIndex>,
}

/// The index of a job summary inside a job list stub.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct SummaryIndex {
    /// Moves on every change of the summary.
    #[serde(rename = "ModifyIndex", default, deserialize_with = "nullable")]
    pub modify_index: u64,
}

impl ChangeEntry {
    /// The ID of the job the item is or belongs to.
    pub fn job(&self) -> &str {
        self.job_id.as_deref().unwrap_or(&self.id)
    }

    /// What moves when anything the feed carries of the item changed: its
    /// `ModifyIndex`, or for a job also its summary's.
    pub fn change_index(&self) -> u64 {
        let summary = self.summary.as_ref().map_or(0, |s| s.modify_index);
        self.modify_index.max(summary)
    }
}

/// One item of a change feed answer, decoded in full when the reader asked for it.
#[derive(Debug)]
pub struct FeedItem<T> {
    /// What identifies the item and its change.
    pub entry: ChangeEntry,
    /// The item decoded in full (or why it could not be), only when the feed's `keep`
    /// picked it.
    pub full: Option<Result<T, String>>,
}

/// One answer of a change feed.
#[derive(Debug)]
pub struct Changes<T> {
    /// `X-Nomad-Index`: pass it to the next blocking query.
    pub index: u64,
    /// The list's items.
    pub entries: Vec<FeedItem<T>>,
    /// The time spent reading and decoding the answer, without the time Nomad held
    /// the query waiting for a change: what one list costs.
    pub read_time: Duration,
}

/// Decodes a list answer (or `null`) into [`FeedItem`]s, decoding in full (with
/// `decode`) the items `keep` picks. One item's text is held at a time.
struct Picking<K, D> {
    keep: K,
    decode: D,
}

impl<'de, T, K, D> DeserializeSeed<'de> for Picking<K, D>
where
    K: Fn(&ChangeEntry) -> bool,
    D: Fn(&str) -> Result<T, serde_json::Error>,
{
    type Value = Vec<FeedItem<T>>;

    fn deserialize<De: Deserializer<'de>>(
        self,
        deserializer: De,
    ) -> Result<Self::Value, De::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, T, K, D> Visitor<'de> for Picking<K, D>
where
    K: Fn(&ChangeEntry) -> bool,
    D: Fn(&str) -> Result<T, serde_json::Error>,
{
    type Value = Vec<FeedItem<T>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of items, or null")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(text) = seq.next_element::<Box<RawValue>>()? {
            let entry: ChangeEntry = serde_json::from_str(text.get()).map_err(A::Error::custom)?;
            let full =
                (self.keep)(&entry).then(|| (self.decode)(text.get()).map_err(|e| e.to_string()));
            items.push(FeedItem { entry, full });
        }
        Ok(items)
    }
}

impl NomadClient {
    /// The items of `feed` in `scope` (namespace `"*"` = all), as a blocking query;
    /// the items `keep` picks are decoded in full with `decode`.
    pub async fn changes<T: Send + 'static>(
        &self,
        feed: ChangeFeed,
        scope: &Scope,
        blocking: Option<Blocking>,
        keep: impl Fn(&ChangeEntry) -> bool + Send + 'static,
        decode: impl Fn(&str) -> Result<T, serde_json::Error> + Send + 'static,
    ) -> Result<Changes<T>, NomadError> {
        let call = Call::get(scope, &[feed.segment()]).blocking(blocking);
        let seed = Picking { keep, decode };
        let (answer, read_time) = self.execute_streamed(call, seed).await?;
        Ok(Changes {
            index: answer.index,
            entries: answer.value,
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

    fn picked(text: &str, keep: impl Fn(&ChangeEntry) -> bool) -> Vec<FeedItem<String>> {
        let mut body = serde_json::Deserializer::from_str(text);
        let decode =
            |t: &str| serde_json::from_str::<serde_json::Value>(t).map(|v| v["ID"].to_string());
        Picking { keep, decode }
            .deserialize(&mut body)
            .expect("decode")
    }

    #[test]
    fn only_the_picked_items_are_decoded_in_full() {
        let items = picked(
            r#"[{"ID":"a","ModifyIndex":3,"X":[1,{"y":null}]},{"ID":"b","ModifyIndex":4}]"#,
            |e| e.id == "a",
        );
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].full, Some(Ok("\"a\"".to_string())));
        assert!(items[1].full.is_none());
        assert!(picked("null", |_| true).is_empty());
        let mut body = serde_json::Deserializer::from_str(r#"[{"ModifyIndex":3}]"#);
        let no_id = Picking {
            keep: |_: &ChangeEntry| true,
            decode: |_: &str| Ok(()),
        };
        assert!(no_id.deserialize(&mut body).is_err());
    }

    #[test]
    fn a_job_changes_with_its_summary() {
        let jobs = picked(
            r#"[{"ID":"web","ModifyIndex":7,"JobSummary":{"ModifyIndex":12}},{"ID":"api","ModifyIndex":9,"JobSummary":null}]"#,
            |_| false,
        );
        let indexes: Vec<u64> = jobs.iter().map(|j| j.entry.change_index()).collect();
        assert_eq!(indexes, [12, 9]);
    }
}
