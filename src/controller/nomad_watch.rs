//! Turning Nomad changes into reconciles, event-driven.
//!
//! Three blocking queries on Nomad's list endpoints (`/v1/jobs`, `/v1/deployments`,
//! `/v1/allocations`, all namespaces) run for the whole process: three connections to
//! Nomad, however many jobs there are. Nomad before 1.2.4 lists deployments one
//! namespace at a time: there, the deployments are watched in each Nomad namespace that
//! has jobs of `NomadJob`s, one blocking query per namespace. Each answer is compared
//! with the previous one by `ModifyIndex` (for jobs, also their summary's); every item
//! that changed or appeared is decoded in full into the cluster's [`Mirror`], which the
//! reconciles and the status are made from, and then triggers a reconcile of the
//! `NomadJob` owning its job (or the job that launched it), and of the `NomadDispatch`
//! that dispatched it; so does an item that went away. Nothing is triggered by the first
//! answer of a watch of every namespace: every object is reconciled when the controller
//! starts anyway.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::UnboundedSender;
use kube::runtime::reflector::ObjectRef;
use tracing::{debug, warn};

use crate::crd::{NomadDispatch, NomadJob};
use crate::nomad::{Blocking, ChangeEntry, ChangeFeed, FeedItem, NomadClient, Scope};

use super::context::{JobIndex, NomadJobKey};
use super::mirror::{Item, ItemKey, Mirror, item_key};

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
    /// What the watches saw of the cluster, for the reconciles.
    pub mirror: Arc<Mirror>,
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

/// Consecutive failures of a watch after which its mirror is no longer trusted.
const FAILURES_BEFORE_STALE: u32 = 2;

/// How often, where deployments are listed per namespace, the namespaces of the jobs
/// known are looked at for one to start or stop watching.
pub const NAMESPACES_LOOK: Duration = Duration::from_secs(1);

/// Runs blocking queries on one list forever: mirrors the items that changed, then
/// triggers the owners of their jobs.
async fn watch_feed(feed: ChangeFeed, nomad: NomadClient, routes: Routes, config: WatchConfig) {
    if feed == ChangeFeed::Deployments {
        let listed = lists_all_deployments(&nomad).await;
        routes.mirror.set_deployments_listed(listed);
        if !listed {
            debug!("this Nomad lists deployments one namespace at a time: watching each");
            watch_deployments_per_namespace(nomad, routes, config).await;
            return;
        }
    }
    watch_list(feed, None, nomad, routes, config).await;
}

/// Watches the deployments of each Nomad namespace that has jobs of `NomadJob`s, a
/// blocking query per namespace, started when the namespace's first job is known and
/// stopped when its last one goes. The watches stop with this future.
async fn watch_deployments_per_namespace(nomad: NomadClient, routes: Routes, config: WatchConfig) {
    let mut watches = tokio::task::JoinSet::new();
    let mut watched: HashMap<String, tokio::task::AbortHandle> = HashMap::new();
    loop {
        let namespaces = routes.jobs.namespaces();
        watched.retain(|namespace, watch| {
            let keep = namespaces.contains(namespace);
            if !keep {
                watch.abort();
                routes.mirror.mark_namespace_stale(namespace);
            }
            keep
        });
        for namespace in namespaces {
            if let std::collections::hash_map::Entry::Vacant(unwatched) = watched.entry(namespace) {
                debug!(namespace = %unwatched.key(), "watching the deployments of a namespace");
                let watch = watch_list(
                    ChangeFeed::Deployments,
                    Some(unwatched.key().clone()),
                    nomad.clone(),
                    routes.clone(),
                    config.clone(),
                );
                unwatched.insert(watches.spawn(watch));
            }
        }
        // Reap the watches that ended (aborted, or their controller is gone).
        while watches.try_join_next().is_some() {}
        tokio::time::sleep(NAMESPACES_LOOK).await;
    }
}

/// Runs blocking queries on one list of `feed` forever (of every namespace, or of
/// `namespace` alone): mirrors the items that changed, then triggers the owners of their
/// jobs. The first answer of a watch of every namespace triggers nothing (every object
/// is reconciled when the controller starts); that of a namespace's deployments, which
/// starts later, triggers the jobs it lists, as their reconciles read them until then.
async fn watch_list(
    feed: ChangeFeed,
    namespace: Option<String>,
    nomad: NomadClient,
    routes: Routes,
    config: WatchConfig,
) {
    let all = Scope {
        namespace: Some(namespace.clone().unwrap_or_else(|| "*".into())),
        region: None,
    };
    let mut index = 0u64;
    let mut seen: Option<Arc<HashMap<ItemKey, u64>>> = None;
    let mut failures = 0u32;
    loop {
        let known = seen.clone();
        let keep = move |e: &ChangeEntry| {
            known
                .as_ref()
                .is_none_or(|k| k.get(&item_key(e)) != Some(&e.change_index()))
        };
        let decode = move |text: &str| Item::decode(feed, text);
        let blocking = Some(Blocking::new(index, config.wait));
        match nomad.changes(feed, &all, blocking, keep, decode).await {
            Ok(answer) => {
                failures = 0;
                // An index that went backwards means Nomad lost its state (or another
                // cluster answers): start over.
                index = if answer.index < index {
                    0
                } else {
                    answer.index
                };
                let pause =
                    config.pause_after(answer.entries.len(), answer.read_time, answer.index);
                let taken = take_in(feed, answer.entries, seen.as_deref());
                match &namespace {
                    None => routes
                        .mirror
                        .apply(feed, answer.index, taken.changed, &taken.removed),
                    Some(namespace) => routes.mirror.apply_namespace_deployments(
                        namespace,
                        answer.index,
                        taken.changed,
                        &taken.removed,
                    ),
                }
                if seen.is_some() || namespace.is_some() {
                    for key in &taken.jobs {
                        if !routes.send(feed, key) {
                            return; // the controller is gone
                        }
                    }
                }
                seen = Some(Arc::new(taken.current));
                tokio::time::sleep(pause).await;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures >= FAILURES_BEFORE_STALE {
                    match &namespace {
                        None => routes.mirror.mark_stale(feed),
                        Some(namespace) => routes.mirror.mark_namespace_stale(namespace),
                    }
                }
                let delay = retry_delay(failures);
                warn!(list = feed.name(), namespace = all.namespace.as_deref().unwrap_or_default(), retry_in = ?delay, "watching Nomad failed: {e}");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// The release from which `GET /v1/deployments` takes `namespace=*` (before, it reads
/// `*` as a namespace of that name and lists nothing).
pub const DEPLOYMENTS_OF_ALL_NAMESPACES_SINCE: (u64, u64, u64) = (1, 2, 4);

/// Whether the cluster lists the deployments of every namespace at once; asked until
/// Nomad answers (an agent that does not say, for a token without `agent:read`, counts
/// as one that does not).
async fn lists_all_deployments(nomad: &NomadClient) -> bool {
    let mut failures = 0u32;
    loop {
        match nomad
            .release_at_least(DEPLOYMENTS_OF_ALL_NAMESPACES_SINCE)
            .await
        {
            Ok(listed) => return listed,
            Err(e) if e.is_transient() => {
                failures = failures.saturating_add(1);
                let delay = retry_delay(failures);
                warn!(retry_in = ?delay, "asking Nomad its release failed: {e}");
                tokio::time::sleep(delay).await;
            }
            Err(_) => return false,
        }
    }
}

/// The wait before asking Nomad again after `failures` failures in a row: 1 s,
/// doubling, at most 30 s.
fn retry_delay(failures: u32) -> Duration {
    Duration::from_millis(500)
        .saturating_mul(2u32.saturating_pow(failures.min(6)))
        .min(Duration::from_secs(30))
}

/// One answer of a feed, sorted out against the previous one.
#[derive(Debug, Default)]
struct TakenIn {
    /// Every item listed, with its change index (0 for one that could not be decoded,
    /// so that the next answer decodes it again).
    current: HashMap<ItemKey, u64>,
    /// The items that are new or changed, decoded.
    changed: Vec<(ItemKey, Item)>,
    /// The items gone since the previous answer, and those that could not be decoded.
    removed: Vec<ItemKey>,
    /// The jobs whose items changed, appeared or went away, each once.
    jobs: Vec<NomadJobKey>,
}

/// Sorts out `entries` of `feed` against `previous` (the items of the previous answer
/// and their change indexes; `None` for the first answer, when every item is new).
fn take_in(
    feed: ChangeFeed,
    entries: Vec<FeedItem<Item>>,
    previous: Option<&HashMap<ItemKey, u64>>,
) -> TakenIn {
    let mut taken = TakenIn {
        current: HashMap::with_capacity(entries.len()),
        ..TakenIn::default()
    };
    for item in entries {
        let key = item_key(&item.entry);
        let at = item.entry.change_index();
        match item.full {
            Some(Ok(full)) => {
                taken.jobs.push(key.0.clone());
                taken.changed.push((key.clone(), full));
                taken.current.insert(key, at);
            }
            Some(Err(e)) => {
                warn!(list = feed.name(), item = %key.1, "cannot decode a listed item: {e}");
                taken.jobs.push(key.0.clone());
                taken.removed.push(key.clone());
                taken.current.insert(key, 0);
            }
            None => {
                taken.current.insert(key, at);
            }
        }
    }
    if let Some(previous) = previous {
        for key in previous.keys().filter(|k| !taken.current.contains_key(*k)) {
            taken.jobs.push(key.0.clone());
            taken.removed.push(key.clone());
        }
    }
    taken.jobs.sort();
    taken.jobs.dedup();
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An allocation of `job` as a feed lists it; decoded in full when `full`.
    fn listed(id: &str, job: &str, modify: u64, full: bool) -> FeedItem<Item> {
        let text = format!(
            r#"{{"ID":"{id}","Namespace":"default","JobID":"{job}","ModifyIndex":{modify}}}"#
        );
        FeedItem {
            entry: serde_json::from_str(&text).expect("entry"),
            full: full
                .then(|| Item::decode(ChangeFeed::Allocations, &text).map_err(|e| e.to_string())),
        }
    }

    fn key(id: &str, job: &str) -> ItemKey {
        (("default".to_string(), job.to_string()), id.to_string())
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
    fn an_answer_is_sorted_into_changed_removed_and_the_jobs_to_reconcile() {
        let first = take_in(
            ChangeFeed::Allocations,
            vec![listed("a1", "web", 5, true), listed("c1", "gone", 3, true)],
            None,
        );
        assert_eq!(first.changed.len(), 2);
        assert!(first.removed.is_empty());
        let next = take_in(
            ChangeFeed::Allocations,
            vec![
                listed("a1", "web", 5, false),
                listed("b1", "api", 9, true),
                FeedItem {
                    entry: serde_json::from_str(r#"{"ID":"x1","JobID":"odd","ModifyIndex":4}"#)
                        .expect("entry"),
                    full: Some(Err("not an allocation".into())),
                },
            ],
            Some(&first.current),
        );
        let jobs: Vec<&str> = next.jobs.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(jobs, ["odd", "api", "gone"], "by namespace, then job");
        assert_eq!(next.changed.len(), 1);
        assert_eq!(next.changed[0].0, key("b1", "api"));
        let mut removed = next.removed.clone();
        removed.sort();
        assert_eq!(
            removed,
            [(("".into(), "odd".into()), "x1".into()), key("c1", "gone")]
        );
        assert_eq!(
            next.current.get(&(("".into(), "odd".into()), "x1".into())),
            Some(&0),
            "an item that could not be decoded is decoded again next time"
        );
    }
}
