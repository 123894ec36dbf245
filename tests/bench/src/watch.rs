//! A watch on the benchmark's `NomadJob`s: readiness, the allocations' client status
//! shown in each object's status, and the writes seen (resourceVersion changes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures::StreamExt;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use nomad_operator::crd::NomadJob;
use tokio::sync::watch;

/// What the watch knows of one object.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Last resourceVersion.
    pub resource_version: String,
    /// Writes after the object's creation (resourceVersion changes).
    pub writes: u64,
    /// Ready=True with observedGeneration current.
    pub ready: bool,
    /// The Nomad job ID in status.
    pub job_id: Option<String>,
    /// Allocation ID -> clientStatus, as status shows them.
    pub allocations: HashMap<String, String>,
}

/// The state the watch builds.
#[derive(Debug, Default)]
pub struct State {
    /// Objects by name.
    pub objects: HashMap<String, Seen>,
    /// Objects ready now.
    pub ready: usize,
    /// Writes seen on all objects since the start (creations excluded).
    pub writes: u64,
    /// When the last object became ready.
    pub last_ready_at: Option<Instant>,
}

/// A running watch; dropping it stops it.
pub struct Tracker {
    state: Arc<Mutex<State>>,
    tick: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Tracker {
    /// Starts watching the `NomadJob`s of `namespace`.
    pub fn start(client: Client, namespace: &str) -> Self {
        let api: Api<NomadJob> = Api::namespaced(client, namespace);
        let state = Arc::new(Mutex::new(State::default()));
        let (tx, tick) = watch::channel(0u64);
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                let mut stream = watcher(api, watcher::Config::default()).boxed();
                let mut n = 0u64;
                while let Some(event) = stream.next().await {
                    let obj = match event {
                        Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => obj,
                        Ok(_) => continue,
                        Err(e) => {
                            eprintln!("bench: watch error (retrying): {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                            continue;
                        }
                    };
                    observe(&mut lock(&state), &obj, Instant::now());
                    n += 1;
                    tx.send_replace(n);
                }
            }
        });
        Self { state, tick, task }
    }

    /// The state, locked.
    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The shared state, for tasks that outlive a borrow.
    pub fn shared(&self) -> Arc<Mutex<State>> {
        self.state.clone()
    }

    /// A receiver that changes on every event.
    pub fn ticks(&self) -> watch::Receiver<u64> {
        self.tick.clone()
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Folds one event into the state.
fn observe(state: &mut State, obj: &NomadJob, at: Instant) {
    let name = obj.name_any();
    let rv = obj.resource_version().unwrap_or_default();
    let ready = is_ready(obj);
    let status = obj.status.as_ref();
    let job_id = status.and_then(|s| s.job_id.clone());
    let allocations: HashMap<String, String> = status
        .map(|s| {
            s.allocations
                .iter()
                .map(|a| (a.id.clone(), a.client_status.clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut became_ready = false;
    let mut ready_delta: isize = 0;
    let mut new_write = false;
    match state.objects.get_mut(&name) {
        Some(seen) => {
            if seen.resource_version != rv {
                seen.writes += 1;
                new_write = true;
                seen.resource_version = rv;
            }
            if ready != seen.ready {
                ready_delta = if ready { 1 } else { -1 };
                became_ready = ready;
            }
            seen.ready = ready;
            seen.job_id = job_id;
            seen.allocations = allocations;
        }
        None => {
            if ready {
                ready_delta = 1;
                became_ready = true;
            }
            state.objects.insert(
                name,
                Seen {
                    resource_version: rv,
                    writes: 0,
                    ready,
                    job_id,
                    allocations,
                },
            );
        }
    }
    if new_write {
        state.writes += 1;
    }
    state.ready = state.ready.saturating_add_signed(ready_delta);
    if became_ready {
        state.last_ready_at = Some(at);
    }
}

/// Ready=True for the current generation.
pub fn is_ready(obj: &NomadJob) -> bool {
    let Some(status) = &obj.status else {
        return false;
    };
    status.observed_generation.is_some()
        && status.observed_generation == obj.metadata.generation
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}
