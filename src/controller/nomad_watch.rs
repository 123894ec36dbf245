//! Turning Nomad changes into reconciles, event-driven.
//!
//! Three blocking queries on Nomad's list endpoints (`/v1/jobs`, `/v1/deployments`,
//! `/v1/allocations`, all namespaces) run for the whole process: three connections to
//! Nomad, however many jobs there are. Each answer is compared with the previous one by
//! `ModifyIndex`; every item that changed, appeared or went away triggers a reconcile of
//! the `NomadJob` owning its job. Nothing is triggered by the first answer: every object
//! is reconciled when the controller starts anyway.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::mpsc::UnboundedSender;
use kube::runtime::reflector::ObjectRef;
use tracing::{debug, warn};

use crate::crd::NomadJob;
use crate::nomad::{Blocking, Indexed, NomadClient, NomadError, Scope};

use super::context::{JobIndex, NomadJobKey};

/// Settings of the watchers.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// How long one blocking query may wait.
    pub wait: Duration,
    /// The shortest time between two queries of one list, so that a busy Nomad is not
    /// re-listed continuously; changes in between are coalesced into one answer.
    pub min_interval: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            wait: Duration::from_secs(300),
            min_interval: Duration::from_millis(100),
        }
    }
}

/// One item of a list: its own ID, the job it belongs to, and its `ModifyIndex`.
type Item = (String, NomadJobKey, u64);

/// Starts the three watchers; they run until the returned handles are aborted.
pub fn spawn(
    nomad: NomadClient,
    jobs: Arc<JobIndex>,
    trigger: UnboundedSender<ObjectRef<NomadJob>>,
    config: WatchConfig,
) -> Vec<tokio::task::JoinHandle<()>> {
    let all = Scope {
        namespace: Some("*".into()),
        region: None,
    };
    let mut handles = Vec::new();
    {
        let (nomad, scope) = (nomad.clone(), all.clone());
        handles.push(tokio::spawn(watch_list(
            "jobs",
            move |b| {
                let (nomad, scope) = (nomad.clone(), scope.clone());
                async move {
                    let list = nomad.list_jobs(&scope, None, Some(b)).await?;
                    Ok(map_items(list, |j| {
                        (
                            j.id.clone(),
                            (j.namespace.clone(), j.id.clone()),
                            j.modify_index,
                        )
                    }))
                }
            },
            jobs.clone(),
            trigger.clone(),
            config.clone(),
        )));
    }
    {
        let (nomad, scope) = (nomad.clone(), all.clone());
        handles.push(tokio::spawn(watch_list(
            "deployments",
            move |b| {
                let (nomad, scope) = (nomad.clone(), scope.clone());
                async move {
                    let list = nomad.list_deployments(&scope, None, Some(b)).await?;
                    Ok(map_items(list, |d| {
                        (
                            d.id.clone(),
                            (d.namespace.clone(), d.job_id.clone()),
                            d.modify_index,
                        )
                    }))
                }
            },
            jobs.clone(),
            trigger.clone(),
            config.clone(),
        )));
    }
    handles.push(tokio::spawn(watch_list(
        "allocations",
        move |b| {
            let (nomad, scope) = (nomad.clone(), all.clone());
            async move {
                let list = nomad.list_allocations(&scope, None, Some(b)).await?;
                Ok(map_items(list, |a| {
                    (
                        a.id.clone(),
                        (a.namespace.clone(), a.job_id.clone()),
                        a.modify_index,
                    )
                }))
            }
        },
        jobs,
        trigger,
        config,
    )));
    handles
}

fn map_items<T>(list: Indexed<Vec<T>>, f: impl Fn(&T) -> Item) -> Indexed<Vec<Item>> {
    Indexed {
        index: list.index,
        value: list.value.iter().map(f).collect(),
    }
}

/// Runs blocking queries on one list forever, triggering the owners of changed items.
async fn watch_list<F, Fut>(
    name: &'static str,
    fetch: F,
    jobs: Arc<JobIndex>,
    trigger: UnboundedSender<ObjectRef<NomadJob>>,
    config: WatchConfig,
) where
    F: Fn(Blocking) -> Fut,
    Fut: Future<Output = Result<Indexed<Vec<Item>>, NomadError>>,
{
    let mut index = 0u64;
    let mut seen: Option<HashMap<String, (NomadJobKey, u64)>> = None;
    let mut failures = 0u32;
    loop {
        let started = Instant::now();
        match fetch(Blocking::new(index, config.wait)).await {
            Ok(answer) => {
                failures = 0;
                // An index that went backwards means Nomad lost its state (or another
                // cluster answers): start over.
                index = if answer.index < index {
                    0
                } else {
                    answer.index
                };
                let current: HashMap<String, (NomadJobKey, u64)> = answer
                    .value
                    .into_iter()
                    .map(|(id, key, modify)| (id, (key, modify)))
                    .collect();
                if let Some(previous) = &seen {
                    for key in changed_jobs(previous, &current) {
                        if let Some(owner) = jobs.owner(&key) {
                            debug!(list = name, job = %key.1, object = %owner, "Nomad change");
                            if trigger.unbounded_send(owner).is_err() {
                                return; // the controller is gone
                            }
                        }
                    }
                }
                seen = Some(current);
                // Pace the queries: at least `min_interval`, and no more than a fifth of
                // the time in decoding a large list.
                let spent = started.elapsed();
                let pause = config.min_interval.max(spent.saturating_mul(4));
                tokio::time::sleep(pause.saturating_sub(spent).min(Duration::from_secs(5))).await;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let delay = Duration::from_millis(500)
                    .saturating_mul(2u32.saturating_pow(failures.min(6)))
                    .min(Duration::from_secs(30));
                warn!(list = name, retry_in = ?delay, "watching Nomad failed: {e}");
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
