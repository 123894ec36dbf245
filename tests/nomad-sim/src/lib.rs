//! `nomad-sim`: an in-memory simulator of the HashiCorp Nomad HTTP API with
//! Nomad 1.1's behaviour (paths, fields, status codes, text error bodies, state
//! transitions), for testing nomad-operator without a Nomad binary.
//!
//! `tests/differential.rs` holds it to a real Nomad 1.1.2 agent, field by field;
//! `REAL_NOMAD.md` lists the real answers that are easy to get wrong, and
//! `tests/diff/exceptions.rs` the few differences kept on purpose.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use nomad_sim::{SimConfig, Simulator};
//! let sim = Simulator::new(SimConfig { time_scale: 1000.0, ..SimConfig::default() });
//! let server = sim.serve("127.0.0.1:0".parse().expect("addr")).await?;
//! println!("NOMAD_ADDR={}", server.url());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod acl;
mod agent;
mod allocations;
mod apijob;
mod blocking;
mod canonical;
mod constraints;
mod control;
mod deployments;
mod faults;
mod gojson;
mod hcl;
mod http;
mod jobs;
mod namespaces;
mod placement;
mod plan_diff;
mod scaling;
mod scheduler;
mod server;
mod state;
mod util;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

pub use placement::NodeConfig;
pub use server::SimServer;
pub use util::glob_match;

use crate::faults::FaultEntry;
use crate::state::{State, Watchers};

/// Most request records kept (oldest dropped first).
const MAX_REQUESTS: usize = 200_000;

/// Simulator configuration.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// When set, every `/v1` request needs `X-Nomad-Token: <token>`.
    pub acl_token: Option<String>,
    /// Simulated time runs this many times faster than real time (all
    /// deadlines, delays and run times are divided by it).
    pub time_scale: f64,
    /// The Nomad release emulated, `MAJOR.MINOR.PATCH` (default `1.1.2`): what
    /// `GET /v1/agent/self` reports, and what `POST /v1/jobs/parse` does with a
    /// request's `Variables` (read from 1.6.0 on) and `hclv1` (gone from 1.9.0 on).
    /// Everything else behaves like 1.1.2 whatever the release.
    pub version: String,
}

/// The release emulated when [`SimConfig::version`] is left at its default.
pub const DEFAULT_NOMAD_VERSION: &str = "1.1.2";

/// Whether `version` is a release the simulator can emulate (`1.6.0`, `1.10.2+ent`).
pub fn valid_nomad_version(version: &str) -> bool {
    agent::Release::parse(version).is_some()
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            acl_token: None,
            time_scale: 1.0,
            version: DEFAULT_NOMAD_VERSION.to_string(),
        }
    }
}

/// One logged API request (control API excluded). `status` 0 means the
/// connection was dropped by a fault.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Decoded path.
    pub path: String,
    /// Raw query string (without `?`).
    pub query: String,
    /// Response status.
    pub status: u16,
}

/// A fault to inject into matching requests.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Fault {
    /// None = any method.
    pub method: Option<String>,
    /// Glob on the path: `*` matches any run of characters, e.g. `/v1/job/*/plan`, `*`.
    pub path: String,
    /// Respond with this status ...
    pub status: Option<u16>,
    /// ... and this text/plain body.
    pub body: Option<String>,
    /// Delay before answering (or before passing through if no status).
    pub latency_ms: Option<u64>,
    /// Close the connection without an answer.
    #[serde(default)]
    pub drop_connection: bool,
    /// Apply at most N times (None = until cleared).
    pub times: Option<u32>,
    /// Apply with this probability (None = always).
    pub probability: Option<f64>,
}

/// Errors of the simulator's library API.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SimError {
    /// No allocation with this ID.
    #[error("allocation {0:?} not found")]
    AllocNotFound(String),
    /// Client status other than pending, running, complete, failed or lost.
    #[error("invalid client status {0:?} (want pending, running, complete, failed or lost)")]
    InvalidClientStatus(String),
}

/// Shared simulator internals.
pub(crate) struct Inner {
    pub(crate) config: SimConfig,
    /// `config.version` parsed (1.1.2 when it does not parse).
    pub(crate) release: agent::Release,
    state: Mutex<State>,
    pub(crate) watchers: Arc<Watchers>,
    pub(crate) wake: Arc<Notify>,
    requests: Mutex<VecDeque<RequestRecord>>,
    faults: Mutex<Vec<FaultEntry>>,
    next_fault: AtomicU64,
    pub(crate) open_conns: Arc<AtomicUsize>,
    /// Blocking queries parked waiting for a change (the clients' watches).
    pub(crate) waiting_queries: AtomicUsize,
    scheduler_started: AtomicBool,
}

impl Inner {
    /// Locks the state (a poisoned lock is still usable: state stays consistent
    /// per operation).
    pub(crate) fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn record(&self, rec: RequestRecord) {
        let mut r = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        if r.len() >= MAX_REQUESTS {
            r.pop_front();
        }
        r.push_back(rec);
    }

    pub(crate) fn match_fault(&self, method: &str, path: &str) -> Option<Fault> {
        let mut f = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        if f.is_empty() {
            return None;
        }
        faults::take_matching(&mut f, method, path)
    }
}

/// The simulator: state plus any number of HTTP servers over it. Cheap to clone.
#[derive(Clone)]
pub struct Simulator {
    pub(crate) inner: Arc<Inner>,
}

impl Simulator {
    /// Creates an empty simulator (one simulated node with the default
    /// [`NodeConfig`], no jobs).
    pub fn new(config: SimConfig) -> Self {
        Self::with_node(config, NodeConfig::default())
    }

    /// Creates an empty simulator whose one node has `node`'s capacity: a task group
    /// asking more CPU, memory or disk than that is not placed (Nomad's
    /// `FailedTGAllocs` and blocked evaluation).
    pub fn with_node(config: SimConfig, node: NodeConfig) -> Self {
        let watchers = Arc::new(Watchers::new());
        let wake = Arc::new(Notify::new());
        let release = agent::Release::parse(&config.version).unwrap_or_default();
        let node = state::Node::new(node, &release.version);
        let state = State::new(config.time_scale, node, watchers.clone(), wake.clone());
        let sim = Self {
            inner: Arc::new(Inner {
                config,
                release,
                state: Mutex::new(state),
                watchers,
                wake,
                requests: Mutex::new(VecDeque::new()),
                faults: Mutex::new(Vec::new()),
                next_fault: AtomicU64::new(1),
                open_conns: Arc::new(AtomicUsize::new(0)),
                waiting_queries: AtomicUsize::new(0),
                scheduler_started: AtomicBool::new(false),
            }),
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            sim.start_scheduler();
        }
        sim
    }

    fn start_scheduler(&self) {
        if !self.inner.scheduler_started.swap(true, Ordering::SeqCst) {
            tokio::spawn(scheduler::run(Arc::downgrade(&self.inner)));
        }
    }

    /// Binds and serves (addr may be `127.0.0.1:0`). State lives in the
    /// Simulator, so a server can be shut down and another served later on the
    /// same port with the same state.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<SimServer> {
        self.start_scheduler();
        server::serve(self.clone(), addr).await
    }

    /// Every logged request (control API excluded), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Every logged request (control API excluded), oldest first, emptying the log in
    /// the same step: no request is lost between reading and clearing.
    pub fn take_requests(&self) -> Vec<RequestRecord> {
        let mut log = self
            .inner
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *log).into()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.inner
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Adds a fault; returns its ID.
    pub fn add_fault(&self, fault: Fault) -> u64 {
        let id = self.inner.next_fault.fetch_add(1, Ordering::SeqCst);
        self.inner
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(FaultEntry {
                id,
                fault,
                applied: 0,
            });
        id
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.inner
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Forces an allocation's client status (`lost`, `failed`, `running`,
    /// `complete`, `pending`) with matching task states; Nomad's reaction
    /// (replacement, rescheduling, deployment health) follows.
    pub fn set_alloc_client_status(
        &self,
        alloc_id: &str,
        client_status: &str,
    ) -> Result<(), SimError> {
        self.inner
            .lock_state()
            .set_client_status(alloc_id, client_status)
    }

    /// TCP connections currently open, over all servers of this simulator.
    pub fn open_connections(&self) -> usize {
        self.inner.open_conns.load(Ordering::SeqCst)
    }

    /// Blocking queries currently parked waiting for a change: the clients' open
    /// watches (a blocking query that answers at once is not counted).
    pub fn waiting_queries(&self) -> usize {
        self.inner.waiting_queries.load(Ordering::SeqCst)
    }

    /// `(jobs, allocations, index)` counts for stats.
    pub(crate) fn counts(&self) -> (usize, usize, u64) {
        let st = self.inner.lock_state();
        (st.jobs.len(), st.allocs.len(), st.index)
    }
}

impl Inner {
    /// Registered faults as JSON (`{"ID", "Fault", "Applied"}`).
    pub(crate) fn faults_snapshot(&self) -> Vec<serde_json::Value> {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|f| serde_json::json!({"ID": f.id, "Fault": f.fault, "Applied": f.applied}))
            .collect()
    }
}
