//! `nomad-sim`: an in-memory simulator of the HashiCorp Nomad HTTP API with
//! Nomad 1.1's behaviour (paths, fields, status codes, text error bodies, state
//! transitions), for testing nomad-operator without a Nomad binary.
//!
//! `tests/differential.rs` holds it to a real Nomad 1.1.2 agent, field by field;
//! `REAL_NOMAD.md` lists the real answers that are easy to get wrong, and
//! `tests/diff/exceptions.rs` the few differences kept on purpose.
//!
//! Tests make trouble with [`Simulator::add_fault`] (a [`Fault`] per method and path
//! glob: latency, canned answers, dropped connections, redirects, answers dropped or
//! held after the request was handled, missing index headers, padded bodies) and
//! [`Simulator::set_leader`] (leader loss), and check what the operator sent in
//! [`Simulator::requests`] ([`RequestRecord`]: arrival time, receiving server port,
//! dropped answers, job spec digests, deployments acted on). A standalone `nomad-sim`
//! offers the same under `/_sim/`: `requests`, `faults`, `leader`, `stats`. Fault and
//! hold times are real milliseconds, not divided by [`SimConfig::time_scale`].
//!
//! [`Simulator::set_latency`] sets a latency model: every `/v1` read waits
//! [`Latency::read`] and every write [`Latency::write`] before it is answered, in real
//! time, standing for the network and the Raft commit of a real cluster.
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
mod cached;
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
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

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

/// The latency model ([`Simulator::set_latency`]): how long each `/v1` answer waits,
/// after the request was handled and before it is sent. Zero (the default) answers at
/// once.
///
/// Real time, not divided by [`SimConfig::time_scale`]: the delays stand for what lies
/// between a client and a real cluster, the network round trip and, for a write, the
/// Raft commit on a quorum of servers. The time scale makes the simulated cluster's
/// own clock (deadlines, task run times, health checks) faster; it does not make a
/// network or a disk faster, and what the latency model is for, comparing clients
/// by their cost per call (the operator's concurrent reconciles against a script's
/// sequential calls), is measured in real time.
///
/// A request is handled first: a write's change is in the state (and visible to other
/// clients) while its answer waits. The delay holds no lock, so requests in flight
/// wait side by side, as on a real server. A blocking query waits for its change
/// first and then `read` once, for its answer. Requests a [`Fault`] answers
/// without handling (status, redirect, dropped connection) do not wait it; a
/// [`Fault::latency_ms`] comes on top.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// Delay of every read: `GET` (and `HEAD`), and the requests that change nothing
    /// whatever their method: `PUT|POST /v1/job/:id/plan`, `/v1/jobs/parse`,
    /// `/v1/validate/job`, `/v1/search`, and `/v1/job/:id/summary` and `/versions`
    /// (which Nomad 1.1 answers for any method).
    pub read: Duration,
    /// Delay of every other `PUT`, `POST` or `DELETE` under `/v1`: register, revert,
    /// deregister, dispatch, evaluate, stable, scale, periodic force, the deployment
    /// writes (promote, pause, fail, ...), namespace writes.
    pub write: Duration,
}

/// Parses a duration flag or setting: a Go duration (`0`, `2ms`, `1.5s`, `250us`,
/// `1m30s`), as the standalone `nomad-sim`'s and the benchmark's `--read-latency` and
/// `--write-latency` take it.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    util::parse_go_duration(text, false)
        .map(Duration::from_nanos)
        .ok_or_else(|| format!("{text:?} is not a duration such as 0, 2ms, 1.5s or 250us"))
}

/// One logged API request (control API excluded). `status` 0 means the
/// connection was dropped by a fault before the request was handled.
///
/// A request is logged once it has been answered (or dropped); a
/// [`Fault::commit_then_drop`] request as soon as it has been handled, before its
/// [`Fault::after_commit_ms`] hold.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Decoded path.
    pub path: String,
    /// Raw query string (without `?`).
    pub query: String,
    /// Response status: the status answered, or the handler's status when the answer
    /// was then dropped ([`Fault::commit_then_drop`]); 0 when the connection was
    /// dropped before handling ([`Fault::drop_connection`]).
    pub status: u16,
    /// Milliseconds since the [`Simulator`] was created (monotonic clock) when the
    /// request arrived.
    #[serde(default)]
    pub at_ms: u64,
    /// Local TCP port of the [`SimServer`] that received the request (one
    /// simulator may be served on several ports).
    #[serde(default)]
    pub server: u16,
    /// The connection was closed without sending an answer (a
    /// [`Fault::drop_connection`] or [`Fault::commit_then_drop`] fault).
    #[serde(default)]
    pub dropped: bool,
    /// For a successful job register (`PUT|POST /v1/jobs`, `PUT|POST /v1/job/:id`,
    /// status 200): a hex digest of the request's `Job` object without the fields a
    /// server sets or a client echoes back (`JobModifyIndex`, `ModifyIndex`,
    /// `CreateIndex`, `SubmitTime`, `Version`, `Stable`, `Status`,
    /// `StatusDescription`), over its keys in sorted order. The same spec registered
    /// twice gives the same digest, whatever the request's `EnforceIndex` and
    /// `JobModifyIndex`. `None` for every other request.
    #[serde(default)]
    pub job_digest: Option<String>,
    /// For `PUT|POST /v1/job/:id/revert` and the deployment writes
    /// (`PUT|POST /v1/deployment/{fail,promote,pause,allocation-health,unblock}/:id`):
    /// the ID of the job's newest deployment when the request arrived (`None` when the
    /// job or deployment is unknown, and for every other request).
    #[serde(default)]
    pub deployment: Option<String>,
}

/// A fault to inject into matching requests.
///
/// What a matching request gets, in this order: [`latency_ms`](Fault::latency_ms)
/// first; then the first of [`drop_connection`](Fault::drop_connection),
/// [`redirect_to`](Fault::redirect_to) and [`status`](Fault::status) that is set
/// answers without handling the request; otherwise the request is handled and
/// [`commit_then_drop`](Fault::commit_then_drop),
/// [`after_commit_ms`](Fault::after_commit_ms), [`strip_index`](Fault::strip_index) and
/// [`pad_bytes`](Fault::pad_bytes) shape its answer. Faults are also managed over HTTP,
/// `/_sim/faults` (JSON with these field names).
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
    /// Delay before anything else this fault does (answering, dropping,
    /// redirecting, or passing the request through). Real milliseconds: not divided
    /// by [`SimConfig::time_scale`].
    pub latency_ms: Option<u64>,
    /// Close the connection without an answer, without handling the request
    /// (logged with status 0).
    #[serde(default)]
    pub drop_connection: bool,
    /// Answer `307 Temporary Redirect` with `Location: <redirect_to>` and an empty
    /// body, without handling the request.
    pub redirect_to: Option<String>,
    /// Handle the request normally (a register registers, a revert reverts, a
    /// delete deregisters), then close the connection without sending the answer.
    /// Logged with the handler's status and [`RequestRecord::dropped`].
    #[serde(default)]
    pub commit_then_drop: bool,
    /// Hold the answer this long after handling the request, before sending it (or,
    /// with [`Fault::commit_then_drop`], before dropping the connection), so a test can
    /// act while the answer is pending. Real milliseconds: not divided by
    /// [`SimConfig::time_scale`].
    pub after_commit_ms: Option<u64>,
    /// Pass the request through but send its answer without `X-Nomad-Index`,
    /// `X-Nomad-KnownLeader` and `X-Nomad-LastContact`.
    #[serde(default)]
    pub strip_index: bool,
    /// Pass the request through and append this many ASCII spaces to its answer's
    /// body (a JSON body stays valid JSON). The padded body is built in memory.
    pub pad_bytes: Option<u64>,
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
    /// When the simulator was created ([`RequestRecord::at_ms`] counts from it).
    created: Instant,
    /// Whether the cluster has a leader (see [`Simulator::set_leader`]); blocking
    /// queries watch it.
    pub(crate) leader: watch::Sender<bool>,
    /// [`Latency::read`] in nanoseconds.
    read_latency_ns: AtomicU64,
    /// [`Latency::write`] in nanoseconds.
    write_latency_ns: AtomicU64,
}

impl Inner {
    /// Locks the state (a poisoned lock is still usable: state stays consistent
    /// per operation).
    pub(crate) fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Milliseconds since the simulator was created.
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether the cluster has a leader.
    pub(crate) fn has_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// The latency model now.
    pub(crate) fn latency(&self) -> Latency {
        Latency {
            read: Duration::from_nanos(self.read_latency_ns.load(Ordering::Relaxed)),
            write: Duration::from_nanos(self.write_latency_ns.load(Ordering::Relaxed)),
        }
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
                created: Instant::now(),
                leader: watch::Sender::new(true),
                read_latency_ns: AtomicU64::new(0),
                write_latency_ns: AtomicU64::new(0),
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

    /// Makes the cluster lose (`false`) or regain (`true`) its leader. Without a
    /// leader every `/v1/...` request except `/v1/agent/self` answers a 500
    /// `No cluster leader` (text/plain), as Nomad 1.1.2 does once its RPC hold time
    /// has passed; blocking queries parked at that moment answer the same at once.
    /// State is kept: restoring the leader serves it again. A new simulator has a
    /// leader.
    pub fn set_leader(&self, has_leader: bool) {
        self.inner.leader.send_if_modified(|v| {
            let changed = *v != has_leader;
            *v = has_leader;
            changed
        });
    }

    /// Sets the latency model (see [`Latency`]) for the requests that arrive from now
    /// on, on every server of this simulator. A new simulator has none.
    pub fn set_latency(&self, latency: Latency) {
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.inner
            .read_latency_ns
            .store(ns(latency.read), Ordering::Relaxed);
        self.inner
            .write_latency_ns
            .store(ns(latency.write), Ordering::Relaxed);
    }

    /// The latency model (see [`Simulator::set_latency`]).
    pub fn latency(&self) -> Latency {
        self.inner.latency()
    }

    /// Whether the cluster has a leader (see [`Simulator::set_leader`]).
    pub fn has_leader(&self) -> bool {
        self.inner.has_leader()
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
