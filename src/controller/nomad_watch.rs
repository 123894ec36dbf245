//! Turning Nomad changes into reconciles, event-driven.
//!
//! Three blocking queries on Nomad's list endpoints (`/v1/jobs`, `/v1/deployments`,
//! `/v1/allocations`, all namespaces) run for the whole process: three connections to
//! Nomad, however many jobs there are. Each answer is compared with the previous one by
//! `ModifyIndex`; every item that changed, appeared or went away triggers a reconcile of
//! the `NomadJob` owning its job (or the job that launched it), and of the
//! `NomadDispatch` that dispatched it. Nothing is triggered by the first answer: every object
//! is reconciled when the controller starts anyway.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::UnboundedSender;
use kube::runtime::reflector::ObjectRef;
use tracing::{debug, warn};

use crate::crd::{NomadDispatch, NomadJob};
use crate::nomad::{Blocking, ChangeFeed, NomadClient, Scope};

use super::context::{JobIndex, NomadJobKey};

/// The pause after an answer without an index, which cannot be waited on.
pub const NO_INDEX_PAUSE: Duration = Duration::from_secs(1);

/// Settings of the watchers.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// How long one blocking query may wait.
    pub wait: Duration,
    /// The pause between two answers of one list, so that a busy Nomad is not re-listed
    /// continuously: changes in between are coalesced into one answer.
    pub min_interval: Duration,
    /// Added to the pause per item of the last answer, so that the cost of decoding a
    /// large list stays a small share of the CPU (10,000 items: +200 ms).
    pub per_item: Duration,
    /// The pause is at least this many times the time the last answer took to read and
    /// decode, so that one watch spends at most about a fifth of a core on its list
    /// however slow the machine or however large the list (Nomad pays a similar cost to
    /// encode it).
    pub read_cost_factor: u32,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            wait: Duration::from_secs(300),
            min_interval: Duration::from_millis(50),
            per_item: Duration::from_micros(20),
            read_cost_factor: 4,
        }
    }
}

impl WatchConfig {
    /// The pause after an answer of `items` items that took `read_time` to read and
    /// decode, at `index`. It does not depend on how long the query waited for a
    /// change, so a change after a quiet spell is seen at once; an answer without an
    /// index waits at least [`NO_INDEX_PAUSE`].
    pub fn pause_after(&self, items: usize, read_time: Duration, index: u64) -> Duration {
        let pause = self.pause(items, read_time);
        if index == 0 {
            // No index (a proxy dropped X-Nomad-Index, or a table never written): the next
            // query would not block, so it is not asked at once.
            pause.max(NO_INDEX_PAUSE)
        } else {
            pause
        }
    }

    /// The pause after an answer of `items` items that took `read_time` to read and
    /// decode (see [`WatchConfig::pause_after`]).
    pub fn pause(&self, items: usize, read_time: Duration) -> Duration {
        let items = u32::try_from(items).unwrap_or(u32::MAX);
        let by_size = self
            .min_interval
            .saturating_add(self.per_item.saturating_mul(items));
        by_size.max(read_time.saturating_mul(self.read_cost_factor))
    }
}

/// Where the watchers send what changed: the owners of jobs (and of the jobs they
/// launched), and the `NomadDispatch`es following dispatched jobs.
#[derive(Clone)]
pub struct Routes {
    /// Which `NomadJob` owns which Nomad job.
    pub jobs: Arc<JobIndex>,
    /// Reconciles of `NomadJob`s.
    pub trigger: UnboundedSender<ObjectRef<NomadJob>>,
    /// Which `NomadDispatch` follows which dispatched job.
    pub dispatches: Arc<JobIndex<NomadDispatch>>,
    /// Reconciles of `NomadDispatch`es.
    pub dispatch_trigger: UnboundedSender<ObjectRef<NomadDispatch>>,
}

impl Routes {
    /// Triggers whatever follows `key`; false once the controllers are gone.
    fn send(&self, feed: ChangeFeed, key: &NomadJobKey) -> bool {
        if let Some(owner) = self.jobs.owner_or_parent(key) {
            debug!(list = feed.name(), job = %key.1, object = %owner, "Nomad change");
            if self.trigger.unbounded_send(owner).is_err() {
                return false;
            }
        }
        if let Some(dispatch) = self.dispatches.owner(key) {
            debug!(list = feed.name(), job = %key.1, object = %dispatch, "Nomad change");
            // The dispatch controller may not run (no CRD): that stops nothing else.
            let _ = self.dispatch_trigger.unbounded_send(dispatch);
        }
        true
    }
}

/// Starts the three watchers; they run until the returned handles are aborted.
pub fn spawn(
    nomad: NomadClient,
    routes: Routes,
    config: WatchConfig,
) -> Vec<tokio::task::JoinHandle<()>> {
    [
        ChangeFeed::Jobs,
        ChangeFeed::Deployments,
        ChangeFeed::Allocations,
    ]
    .into_iter()
    .map(|feed| {
        tokio::spawn(watch_feed(
            feed,
            nomad.clone(),
            routes.clone(),
            config.clone(),
        ))
    })
    .collect()
}

/// Runs blocking queries on one list forever, triggering the owners of changed items.
async fn watch_feed(feed: ChangeFeed, nomad: NomadClient, routes: Routes, config: WatchConfig) {
    let all = Scope {
        namespace: Some("*".into()),
        region: None,
    };
    let mut index = 0u64;
    let mut seen: Option<HashMap<String, (NomadJobKey, u64)>> = None;
    let mut failures = 0u32;
    loop {
        match nomad
            .changes(feed, &all, Some(Blocking::new(index, config.wait)))
            .await
        {
            Ok(answer) => {
                failures = 0;
                // An index that went backwards means Nomad lost its state (or another
                // cluster answers): start over.
                index = if answer.index < index {
                    0
                } else {
                    answer.index
                };
                let items = answer.entries.len();
                let pause = config.pause_after(items, answer.read_time, answer.index);
                let current: HashMap<String, (NomadJobKey, u64)> = answer
                    .entries
                    .into_iter()
                    .map(|e| {
                        let key = (e.namespace.clone(), e.job().to_string());
                        (e.id, (key, e.modify_index))
                    })
                    .collect();
                if let Some(previous) = &seen {
                    for key in changed_jobs(previous, &current) {
                        if !routes.send(feed, &key) {
                            return; // the controller is gone
                        }
                    }
                }
                seen = Some(current);
                tokio::time::sleep(pause).await;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let delay = Duration::from_millis(500)
                    .saturating_mul(2u32.saturating_pow(failures.min(6)))
                    .min(Duration::from_secs(30));
                warn!(list = feed.name(), retry_in = ?delay, "watching Nomad failed: {e}");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// The jobs whose items changed, appeared or disappeared between two answers.
pub fn changed_jobs(
    previous: &HashMap<String, (NomadJobKey, u64)>,
    current: &HashMap<String, (NomadJobKey, u64)>,
) -> Vec<NomadJobKey> {
    let mut keys: Vec<NomadJobKey> = current
        .iter()
        .filter(|(id, (_, modify))| previous.get(*id).is_none_or(|(_, before)| before != modify))
        .map(|(_, (key, _))| key.clone())
        .chain(
            previous
                .iter()
                .filter(|(id, _)| !current.contains_key(*id))
                .map(|(_, (key, _))| key.clone()),
        )
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(entries: &[(&str, &str, u64)]) -> HashMap<String, (NomadJobKey, u64)> {
        entries
            .iter()
            .map(|(id, job, modify)| {
                (
                    id.to_string(),
                    (("default".to_string(), job.to_string()), *modify),
                )
            })
            .collect()
    }

    #[test]
    fn the_pause_grows_with_the_list_and_its_cost_not_with_the_wait() {
        let config = WatchConfig::default();
        let cheap = Duration::from_millis(1);
        assert_eq!(config.pause(0, cheap), Duration::from_millis(50));
        assert_eq!(config.pause(1_000, cheap), Duration::from_millis(70));
        assert_eq!(config.pause(10_000, cheap), Duration::from_millis(250));
        assert_eq!(
            config.pause(10_000, Duration::from_millis(200)),
            Duration::from_millis(800),
            "a list that took 200 ms to read waits four times that"
        );
    }

    #[test]
    fn an_answer_without_an_index_is_not_asked_again_at_once() {
        let config = WatchConfig::default();
        let cheap = Duration::from_millis(1);
        assert_eq!(config.pause_after(0, cheap, 7), Duration::from_millis(50));
        assert_eq!(config.pause_after(0, cheap, 0), NO_INDEX_PAUSE);
    }

    #[test]
    fn changed_jobs_are_those_with_new_modified_or_removed_items() {
        let before = items(&[
            ("a1", "web", 5),
            ("a2", "web", 6),
            ("b1", "api", 7),
            ("c1", "gone", 3),
        ]);
        let after = items(&[
            ("a1", "web", 5),
            ("a2", "web", 6),
            ("b1", "api", 9),
            ("d1", "new", 10),
        ]);
        let changed: Vec<String> = changed_jobs(&before, &after)
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        assert_eq!(changed, ["api", "gone", "new"]);
        assert!(changed_jobs(&after, &after).is_empty());
    }
}
