//! Oracles for fault tests: what must hold after any run, whatever was injected, judged
//! from the request log Nomad saw and the state Nomad and Kubernetes end in.
//!
//! ```ignore
//! let state = oracles::snapshot(&api, &nomad, "default", expect).await;
//! let verdict = oracles::check(&requests, &state);
//! verdict.assert_clean("after a kill -9 at register.after");
//! ```
//!
//! The five oracles, each a list of violations in words (with the requests involved):
//! - **doubled_registers**: a spec registered twice. On the simulator (requests carry
//!   [`Request::job_digest`]) two successful registers of one job with the same digest
//!   and no other successful write to that job in between (another register, a revert, a
//!   deregister); applying spec A, then B, then A again is three registers, not a double.
//!   On both backends, when [`Expect::specs_applied`] names the job, more successful
//!   registers than specs the test applied to it. A register whose answer was lost
//!   (`dropped`) but that Nomad handled counts: it happened.
//! - **doubled_reverts**: a failed deployment reverted twice: two successful reverts of
//!   one job with the same [`Request::deployment`] (simulator), or with no successful
//!   register of that job between them (a second failed deployment needs a new version),
//!   or more successful reverts than the job has failed deployments at the end.
//! - **foreign_deletes**: a `DELETE` of a job the operator does not own
//!   ([`Expect::foreign`]), or such a job missing or stopped at the end.
//! - **orphans**: a job that is not stopped, carries the operator's owner keys in its
//!   `Meta` (and is not a periodic or dispatched child), and whose object is gone
//!   (unless [`Expect::left_running`] names it: `deletionPolicy: Orphan`).
//! - **lost**: an object that exists and is not being deleted, whose job is missing,
//!   stopped, not `running` (unless the object is `Stalled/NoStableVersion`: its spec
//!   failed with nothing to go back to), owned by someone else, not at the version its
//!   status records, or not running what [`Expect::runs`] says it should.
//!
//! Limits: a Nomad-side auto-revert makes no request, so a deliberate retry of the same
//! spec after one (annotation `nomadoperator.dev/retry`) reads as a doubled register;
//! tests that do that must not use the digest rule for that job (leave it out of the
//! log they pass). Drift corrections are registers too: leave such jobs out of
//! [`Expect::specs_applied`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kube::api::{Api, ListParams};
use nomad_operator::crd::{META_OWNER_NAME, META_OWNER_NAMESPACE, NomadJob};
use nomad_operator::nomad::{NomadClient, Scope};
use serde_json::Value;

use super::nomad_proxy::ProxiedRequest;

/// One request Nomad received, from the simulator's log or the recording proxy's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// HTTP method.
    pub method: String,
    /// Path (percent-decoded), without the query.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// The answer's status (the handler's, when the answer was then dropped; 0 when the
    /// connection was dropped before the request was handled).
    pub status: u16,
    /// The connection was closed without an answer.
    pub dropped: bool,
    /// When it arrived, in ms since the simulator started (`None` behind the proxy).
    pub at_ms: Option<u64>,
    /// A successful register's digest of its `Job` (simulator only).
    pub job_digest: Option<String>,
    /// A revert's job's newest deployment when it arrived (simulator only).
    pub deployment: Option<String>,
}

impl From<&nomad_sim::RequestRecord> for Request {
    fn from(r: &nomad_sim::RequestRecord) -> Self {
        Self {
            method: r.method.clone(),
            path: r.path.clone(),
            query: r.query.clone(),
            status: r.status,
            dropped: r.dropped,
            at_ms: Some(r.at_ms),
            job_digest: r.job_digest.clone(),
            deployment: r.deployment.clone(),
        }
    }
}

impl From<&ProxiedRequest> for Request {
    fn from(r: &ProxiedRequest) -> Self {
        Self {
            method: r.method.clone(),
            path: percent_decode(&r.path),
            query: r.query.clone(),
            status: r.status,
            ..Self::default()
        }
    }
}

/// The simulator's log as [`Request`]s.
pub fn from_sim(log: &[nomad_sim::RequestRecord]) -> Vec<Request> {
    log.iter().map(Request::from).collect()
}

/// The recording proxy's log as [`Request`]s.
pub fn from_proxy(log: &[ProxiedRequest]) -> Vec<Request> {
    log.iter().map(Request::from).collect()
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if !self.query.is_empty() {
            write!(f, "?{}", self.query)?;
        }
        write!(f, " -> {}", self.status)?;
        if self.dropped {
            write!(f, " (answer dropped)")?;
        }
        if let Some(at) = self.at_ms {
            write!(f, " at {at} ms")?;
        }
        if let Some(digest) = &self.job_digest {
            write!(f, " digest {digest}")?;
        }
        if let Some(deployment) = &self.deployment {
            write!(f, " deployment {deployment}")?;
        }
        Ok(())
    }
}

/// What the test knows it asked for (the oracles cannot guess it).
#[derive(Clone, Debug, Default)]
pub struct Expect {
    /// Per object name: fields the job running for it must have (a subset of the job as
    /// Nomad returns it: the `spec.job` it should run; after a revert, the last good
    /// one). Objects not named only need a running job of theirs.
    pub runs: BTreeMap<String, Value>,
    /// Per job ID: how many different specs the test applied to it; it has at most that
    /// many successful registers.
    pub specs_applied: BTreeMap<String, usize>,
    /// IDs of jobs the test created outside the operator: never deleted, still running.
    pub foreign: Vec<String>,
    /// IDs of jobs left running on purpose by a deleted object (`deletionPolicy:
    /// Orphan`).
    pub left_running: Vec<String>,
}

/// A `NomadJob` at the end of the run.
#[derive(Clone, Debug)]
pub struct Object {
    /// Its Kubernetes namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// It has a deletion timestamp.
    pub deleting: bool,
    /// The job ID it manages (status, else `spec.jobID`, else its name).
    pub job_id: String,
    /// `status.jobVersion`.
    pub status_version: Option<u64>,
    /// The reason of its `Stalled=True` condition, if it has one.
    pub stalled: Option<String>,
}

/// A Nomad job at the end of the run.
#[derive(Clone, Debug)]
pub struct Job {
    /// Its ID.
    pub id: String,
    /// `Stop`.
    pub stop: bool,
    /// `Status`: `pending`, `running` or `dead`.
    pub status: String,
    /// `Version`.
    pub version: u64,
    /// The owner its `Meta` names (namespace, name).
    pub owner: Option<(String, String)>,
    /// `ParentID` (periodic and dispatched children).
    pub parent: String,
    /// How many of its deployments failed.
    pub failed_deployments: usize,
    /// The job as Nomad returns it.
    pub value: Value,
}

/// The end of a run: the objects, the jobs of one Nomad namespace, and the test's
/// expectations.
#[derive(Clone, Debug)]
pub struct FinalState {
    /// The Nomad namespace the jobs are in (requests to other namespaces are ignored).
    pub nomad_namespace: String,
    /// Every `NomadJob` of the test's Kubernetes namespace.
    pub objects: Vec<Object>,
    /// Every job of the Nomad namespace.
    pub jobs: Vec<Job>,
    /// What the test asked for.
    pub expect: Expect,
}

/// Reads the final state: every `NomadJob` of `api`, and every job of
/// `nomad_namespace` through `nomad` (with its deployments).
pub async fn snapshot(
    api: &Api<NomadJob>,
    nomad: &NomadClient,
    nomad_namespace: &str,
    expect: Expect,
) -> FinalState {
    let objects = api
        .list(&ListParams::default())
        .await
        .expect("list NomadJobs")
        .items
        .into_iter()
        .map(|o| {
            let status = o.status.clone().unwrap_or_default();
            let name = o.metadata.name.clone().unwrap_or_default();
            Object {
                namespace: o.metadata.namespace.clone().unwrap_or_default(),
                deleting: o.metadata.deletion_timestamp.is_some(),
                job_id: status
                    .job_id
                    .clone()
                    .or_else(|| o.spec.job_id.clone())
                    .unwrap_or_else(|| name.clone()),
                status_version: status.job_version,
                stalled: status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == "Stalled" && c.status == "True")
                    .map(|c| c.reason.clone()),
                name,
            }
        })
        .collect();
    let scope = Scope {
        namespace: Some(nomad_namespace.to_string()),
        region: None,
    };
    let stubs = nomad
        .list_jobs(&scope, None, None)
        .await
        .expect("list Nomad jobs")
        .value;
    let mut jobs = Vec::new();
    for stub in stubs {
        let Ok(value) = nomad.read_job(&scope, &stub.id).await else {
            continue; // purged since the list
        };
        let deployments = nomad
            .job_deployments(&scope, &stub.id)
            .await
            .unwrap_or_default();
        let meta = |key: &str| value["Meta"][key].as_str().map(str::to_string);
        jobs.push(Job {
            id: stub.id.clone(),
            stop: value["Stop"].as_bool().unwrap_or(false),
            status: value["Status"].as_str().unwrap_or_default().to_string(),
            version: value["Version"].as_u64().unwrap_or_default(),
            owner: meta(META_OWNER_NAMESPACE).zip(meta(META_OWNER_NAME)),
            parent: value["ParentID"].as_str().unwrap_or_default().to_string(),
            failed_deployments: deployments.iter().filter(|d| d.status == "failed").count(),
            value,
        });
    }
    FinalState {
        nomad_namespace: nomad_namespace.to_string(),
        objects,
        jobs,
        expect,
    }
}

/// What the oracles found: one message per violation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// A spec registered twice.
    pub doubled_registers: Vec<String>,
    /// A failed deployment reverted twice.
    pub doubled_reverts: Vec<String>,
    /// A job the operator does not own deleted (or gone).
    pub foreign_deletes: Vec<String>,
    /// A job running whose object is gone.
    pub orphans: Vec<String>,
    /// An object whose job does not run as it should.
    pub lost: Vec<String>,
}

impl Verdict {
    /// No oracle found anything.
    pub fn is_clean(&self) -> bool {
        self.counts().iter().all(|(_, n)| *n == 0)
    }

    /// The number of violations per oracle, by name.
    pub fn counts(&self) -> [(&'static str, usize); 5] {
        [
            ("doubled_registers", self.doubled_registers.len()),
            ("doubled_reverts", self.doubled_reverts.len()),
            ("foreign_deletes", self.foreign_deletes.len()),
            ("orphans", self.orphans.len()),
            ("lost", self.lost.len()),
        ]
    }

    /// Fails the test with every violation, after `context` (what the run was).
    pub fn assert_clean(&self, context: &str) {
        assert!(self.is_clean(), "{context}: the oracles found\n{self}");
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lists = [
            ("doubled_registers", &self.doubled_registers),
            ("doubled_reverts", &self.doubled_reverts),
            ("foreign_deletes", &self.foreign_deletes),
            ("orphans", &self.orphans),
            ("lost", &self.lost),
        ];
        for (name, list) in lists {
            writeln!(f, "{name}: {}", list.len())?;
            for message in list {
                writeln!(f, "  - {message}")?;
            }
        }
        Ok(())
    }
}

/// Runs every oracle over `requests` (the whole log of the run, oldest first) and
/// `state` (read after the run converged).
pub fn check(requests: &[Request], state: &FinalState) -> Verdict {
    let writes = job_writes(requests, &state.nomad_namespace);
    Verdict {
        doubled_registers: doubled_registers(&writes, state),
        doubled_reverts: doubled_reverts(&writes, state),
        foreign_deletes: foreign_deletes(&writes, state),
        orphans: orphans(state),
        lost: lost(state),
    }
}

/// A write to one job, as the log shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Write {
    Register,
    Revert,
    Deregister,
}

/// The writes to each job (by ID; `POST /v1/jobs`, whose ID is in the body, under
/// `""`), oldest first, with the request.
fn job_writes<'a>(
    requests: &'a [Request],
    nomad_namespace: &str,
) -> BTreeMap<String, Vec<(Write, &'a Request)>> {
    let mut writes: BTreeMap<String, Vec<(Write, &Request)>> = BTreeMap::new();
    for r in requests {
        if namespace_of(&r.query) != nomad_namespace {
            continue;
        }
        if let Some((write, id)) = classify(&r.method, &r.path) {
            writes.entry(id).or_default().push((write, r));
        }
    }
    writes
}

/// The sub-resources of `/v1/job/:id/...` that are not the job itself.
const JOB_SUFFIXES: &[&str] = &[
    "plan",
    "versions",
    "deployments",
    "deployment",
    "allocations",
    "evaluations",
    "evaluate",
    "summary",
    "dispatch",
    "scale",
    "stable",
    "periodic/force",
];

/// The job write `method path` is, and the job's ID.
fn classify(method: &str, path: &str) -> Option<(Write, String)> {
    let writes = method == "POST" || method == "PUT";
    if path == "/v1/jobs" && writes {
        return Some((Write::Register, String::new()));
    }
    let rest = path.strip_prefix("/v1/job/")?;
    if let Some(id) = rest.strip_suffix("/revert") {
        return writes.then(|| (Write::Revert, id.to_string()));
    }
    if JOB_SUFFIXES
        .iter()
        .any(|s| rest.strip_suffix(s).is_some_and(|id| id.ends_with('/')))
    {
        return None;
    }
    match method {
        "POST" | "PUT" => Some((Write::Register, rest.to_string())),
        "DELETE" => Some((Write::Deregister, rest.to_string())),
        _ => None,
    }
}

/// The `namespace` parameter of a query (`default` without one).
fn namespace_of(query: &str) -> String {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("namespace="))
        .map(percent_decode)
        .unwrap_or_else(|| "default".to_string())
}

/// A request Nomad carried out (a dropped answer included).
fn succeeded(r: &Request) -> bool {
    (200..300).contains(&r.status)
}

fn doubled_registers(
    writes: &BTreeMap<String, Vec<(Write, &Request)>>,
    state: &FinalState,
) -> Vec<String> {
    let mut found = Vec::new();
    for (id, list) in writes {
        let done: Vec<&(Write, &Request)> = list.iter().filter(|(_, r)| succeeded(r)).collect();
        for pair in done.windows(2) {
            let [(Write::Register, a), (Write::Register, b)] = [pair[0], pair[1]] else {
                continue;
            };
            if a.job_digest.is_some() && a.job_digest == b.job_digest {
                found.push(format!(
                    "job {id:?}: the same spec registered twice in a row:\n      {a}\n      {b}"
                ));
            }
        }
        if let Some(&applied) = state.expect.specs_applied.get(id) {
            let registers: Vec<String> = done
                .iter()
                .filter(|(w, _)| *w == Write::Register)
                .map(|(_, r)| r.to_string())
                .collect();
            if registers.len() > applied {
                found.push(format!(
                    "job {id:?}: {} successful registers for {applied} spec(s) applied:\n      {}",
                    registers.len(),
                    registers.join("\n      ")
                ));
            }
        }
    }
    found
}

fn doubled_reverts(
    writes: &BTreeMap<String, Vec<(Write, &Request)>>,
    state: &FinalState,
) -> Vec<String> {
    let mut found = Vec::new();
    for (id, list) in writes {
        let done: Vec<&(Write, &Request)> = list.iter().filter(|(_, r)| succeeded(r)).collect();
        let mut by_deployment: BTreeMap<&str, Vec<&Request>> = BTreeMap::new();
        let mut last_revert: Option<&Request> = None;
        for (write, r) in &done {
            match write {
                Write::Register => last_revert = None,
                Write::Deregister => {}
                Write::Revert => {
                    if let Some(before) = last_revert {
                        found.push(format!(
                            "job {id:?}: reverted twice with no register in between:\n      {before}\n      {r}"
                        ));
                    }
                    last_revert = Some(r);
                    if let Some(d) = &r.deployment {
                        by_deployment.entry(d).or_default().push(r);
                    }
                }
            }
        }
        for (deployment, reverts) in by_deployment {
            if reverts.len() > 1 {
                let lines: Vec<String> = reverts.iter().map(|r| r.to_string()).collect();
                found.push(format!(
                    "job {id:?}: deployment {deployment} reverted {} times:\n      {}",
                    reverts.len(),
                    lines.join("\n      ")
                ));
            }
        }
        let reverts = done.iter().filter(|(w, _)| *w == Write::Revert).count();
        if let Some(job) = state.jobs.iter().find(|j| &j.id == id)
            && reverts > job.failed_deployments
        {
            found.push(format!(
                "job {id:?}: {reverts} successful reverts for {} failed deployment(s)",
                job.failed_deployments
            ));
        }
    }
    found
}

fn foreign_deletes(
    writes: &BTreeMap<String, Vec<(Write, &Request)>>,
    state: &FinalState,
) -> Vec<String> {
    let mut found = Vec::new();
    for id in &state.expect.foreign {
        for (write, r) in writes.get(id).into_iter().flatten() {
            if *write == Write::Deregister {
                found.push(format!("foreign job {id:?} was deleted: {r}"));
            }
        }
        match state.jobs.iter().find(|j| &j.id == id) {
            None => found.push(format!("foreign job {id:?} is gone from Nomad")),
            Some(job) if job.stop => found.push(format!("foreign job {id:?} is stopped")),
            Some(_) => {}
        }
    }
    found
}

fn orphans(state: &FinalState) -> Vec<String> {
    let objects: BTreeSet<(&str, &str)> = state
        .objects
        .iter()
        .map(|o| (o.namespace.as_str(), o.name.as_str()))
        .collect();
    state
        .jobs
        .iter()
        .filter(|j| !j.stop && j.status != "dead" && j.parent.is_empty())
        .filter(|j| !state.expect.left_running.contains(&j.id))
        .filter_map(|j| {
            let (ns, name) = j.owner.as_ref()?;
            (!objects.contains(&(ns.as_str(), name.as_str()))).then(|| {
                format!(
                    "job {:?} ({}, version {}) runs for NomadJob {ns}/{name}, which is gone",
                    j.id, j.status, j.version
                )
            })
        })
        .collect()
}

fn lost(state: &FinalState) -> Vec<String> {
    let mut found = Vec::new();
    for o in state.objects.iter().filter(|o| !o.deleting) {
        let who = format!("NomadJob {}/{}", o.namespace, o.name);
        let Some(job) = state.jobs.iter().find(|j| j.id == o.job_id) else {
            found.push(format!("{who}: its job {:?} is not in Nomad", o.job_id));
            continue;
        };
        let owner = (o.namespace.clone(), o.name.clone());
        if job.owner.as_ref() != Some(&owner) {
            found.push(format!(
                "{who}: job {:?} names owner {:?}",
                job.id, job.owner
            ));
        }
        // A spec that failed with no stable version to go back to stays as the user
        // gave it (Stalled/NoStableVersion): its job is there but runs nothing.
        let failed_without_fallback = o.stalled.as_deref() == Some("NoStableVersion");
        if job.stop || (job.status != "running" && !failed_without_fallback) {
            found.push(format!(
                "{who}: job {:?} is {} (Stop: {})",
                job.id, job.status, job.stop
            ));
        }
        if let Some(version) = o.status_version
            && version != job.version
        {
            found.push(format!(
                "{who}: its status says version {version}, Nomad runs version {}",
                job.version
            ));
        }
        if let Some(want) = state.expect.runs.get(&o.name)
            && let Some(difference) = differs(&job.value, want, "")
        {
            found.push(format!(
                "{who}: job {:?} (version {}) does not run the expected spec: {difference}",
                job.id, job.version
            ));
        }
    }
    found
}

/// Where `have` does not contain `want` (every key of `want`'s objects, arrays of the
/// same length element by element, equal scalars), or `None`.
pub fn differs(have: &Value, want: &Value, at: &str) -> Option<String> {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w.iter().find_map(|(k, wv)| match h.get(k) {
            Some(hv) => differs(hv, wv, &format!("{at}.{k}")),
            None => Some(format!("{at}.{k} is missing (want {wv})")),
        }),
        (Value::Array(h), Value::Array(w)) if h.len() == w.len() => h
            .iter()
            .zip(w)
            .enumerate()
            .find_map(|(i, (hv, wv))| differs(hv, wv, &format!("{at}[{i}]"))),
        (Value::Number(h), Value::Number(w)) if h.as_f64() == w.as_f64() => None,
        _ if have == want => None,
        _ => Some(format!("{at} is {have}, want {want}")),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
