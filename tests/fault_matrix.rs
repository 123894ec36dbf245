//! The fault matrix (issue "Survive faults", item 2): the operator killed (`kill -9`) at
//! each step of the pipeline, answers lost after Nomad carried out the write, Nomad
//! down and back, and a minute without a cluster leader under 200 objects. After each,
//! the operator converges and the oracles of `support::oracles` hold: no spec
//! registered twice, no failed deployment reverted twice, no foreign job deleted, no
//! job left running without its object, no object without its job.
//!
//! The kill -9 cases also cover the Nomad writes that are not job writes: a canary
//! promotion (`spec.rollout.promote: Auto`) is made once per deployment, and a
//! `NomadDispatch` dispatches exactly one job.
//!
//! The kill -9 cases run the operator as a process of its own (the built binary), held
//! at a named point (`NOMAD_OPERATOR_HOLD_AT`), on the simulator and on the run's real
//! Nomad agent (behind the recording proxy, in a Nomad namespace of the test's own).
//! The other faults need fault injection, so they run on the simulator.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::events::v1::Event;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use nomad_operator::crd::{NomadDispatch, NomadJob};
use nomad_operator::nomad::{NomadClient, Scope};
use nomad_sim::{Fault, SimServer, Simulator};
use serde_json::{Value, json};
use support::envtest::TestNamespace;
use support::nomad_proxy::RecordingProxy;
use support::operator::{
    Backend, Harness, TOKEN, condition, nomad_client, ready, wait_until, wait_until_ok,
    wait_until_ok_within,
};
use support::operator_process::{OperatorProcess, ProcessOptions};
use support::oracles::{self, Expect, FinalState, Job, Object, Request, Verdict};
use support::{fixtures, nomad_agent};

/// The job the tests create outside the operator, next to the operator's, in the same
/// Nomad namespace: it must never be deleted.
const FOREIGN: &str = "foreign";

/// One test's Nomad (the simulator, or the real agent behind a recording proxy), its
/// Kubernetes namespace, and operator processes started against them.
struct Bed {
    ns: TestNamespace,
    backend: Backend,
    nomad_namespace: String,
    /// The address the operator reaches Nomad at.
    url: String,
    /// A client for the test's own calls, through the same request log.
    nomad: NomadClient,
    sim: Option<Simulator>,
    server: Option<SimServer>,
    proxy: Option<RecordingProxy>,
}

impl Bed {
    async fn new(backend: Backend, prefix: &str) -> Self {
        let ns = TestNamespace::new(prefix).await;
        let (nomad_namespace, url, sim, server, proxy) = match backend {
            Backend::Sim => {
                let (sim, server) = fixtures::start_simulator(Some(TOKEN)).await;
                let url = server.url();
                ("default".to_string(), url, Some(sim), Some(server), None)
            }
            Backend::Real => {
                nomad_agent::create_namespace(&ns.name).await;
                let proxy = RecordingProxy::start(&nomad_agent::agent().addr).await;
                (ns.name.clone(), proxy.url(), None, None, Some(proxy))
            }
        };
        Self {
            nomad: nomad_client(&url, &nomad_namespace),
            ns,
            backend,
            nomad_namespace,
            url,
            sim,
            server,
            proxy,
        }
    }

    /// An operator process for this test (resync 2 s, error back-off 200 ms to 2 s).
    fn spawn(&self, name: &str, hold_at: Option<&str>) -> OperatorProcess {
        OperatorProcess::spawn(&ProcessOptions {
            namespace: self.ns.name.clone(),
            nomad_addr: self.url.clone(),
            token: Some(TOKEN.to_string()),
            name: name.to_string(),
            hold_at: hold_at.map(str::to_string),
            extra: [
                "--nomad-namespace",
                &self.nomad_namespace,
                "--error-backoff",
                "200ms",
                "--max-backoff",
                "2s",
            ]
            .map(str::to_string)
            .to_vec(),
            ..ProcessOptions::default()
        })
    }

    fn sim(&self) -> &Simulator {
        self.sim.as_ref().expect("a simulator test")
    }

    /// A one-allocation service job sleeping `seconds`.
    fn job(&self, seconds: &str) -> Value {
        fixtures::service_job(self.backend, 1, "/bin/sleep", &[seconds], false)
    }

    /// A service job whose task fails at once: its deployment fails.
    fn failing_job(&self) -> Value {
        fixtures::service_job(self.backend, 1, "/bin/false", &[], false)
    }

    /// A service job of 2 allocations sleeping `seconds`, whose update places 1 canary.
    /// On the simulator its deadlines are long: it fails a deployment whose healthy
    /// canaries wait for their promotion at the progress deadline (Nomad does not), and
    /// the wait of a held operator is not a matter of seconds.
    fn canary_job(&self, seconds: &str) -> Value {
        let mut job = fixtures::service_job(self.backend, 2, "/bin/sleep", &[seconds], false);
        job["TaskGroups"][0]["Update"]["Canary"] = json!(1);
        if self.backend == Backend::Sim {
            job["TaskGroups"][0]["Update"]["HealthyDeadline"] = json!(1_800_000_000_000u64);
            job["TaskGroups"][0]["Update"]["ProgressDeadline"] = json!(3_600_000_000_000u64);
        }
        job
    }

    /// A parameterized batch job (one raw_exec task that exits 0 when meta `who` is
    /// `ops`), meta `who` required. No `MetaOptional`: the operator adds its dispatch
    /// UID key there, by which a restarted operator finds an interrupted dispatch's job.
    fn parameterized_job(&self) -> Value {
        json!({
            "Datacenters": ["dc1"],
            "Type": "batch",
            "ParameterizedJob": {"Payload": "optional", "MetaRequired": ["who"]},
            "TaskGroups": [{
                "Name": "run",
                "Count": 1,
                "RestartPolicy": {"Attempts": 0, "Mode": "fail", "Interval": 86_400_000_000_000u64, "Delay": 1_000_000_000u64},
                "ReschedulePolicy": {"Attempts": 0, "Unlimited": false, "Interval": 86_400_000_000_000u64},
                "Tasks": [{
                    "Name": "main",
                    "Driver": "raw_exec",
                    "Config": {"command": "/bin/sh", "args": ["-c", "test \"$NOMAD_META_who\" = ops"]},
                    "Resources": {"CPU": 20, "MemoryMB": 32}
                }]
            }]
        })
    }

    async fn register_foreign(&self) {
        register_foreign(&self.nomad, self.backend, &self.nomad_namespace).await;
    }

    async fn apply(&self, name: &str, job: &Value) {
        apply_spec(&self.ns.api(), name, json!({ "job": job })).await;
    }

    /// [`apply`](Self::apply) of a canary job that the operator promotes itself.
    async fn apply_auto_promoted(&self, name: &str, job: &Value) {
        let spec = json!({"job": job, "rollout": {"promote": "Auto"}});
        apply_spec(&self.ns.api(), name, spec).await;
    }

    fn dispatches(&self) -> Api<NomadDispatch> {
        Api::namespaced(self.ns.client.clone(), &self.ns.name)
    }

    /// Creates NomadDispatch `name` of NomadJob `parent`, with meta `who: ops`.
    async fn create_dispatch(&self, name: &str, parent: &str) {
        let obj: NomadDispatch = serde_json::from_value(json!({
            "apiVersion": "nomadoperator.dev/v1alpha1",
            "kind": "NomadDispatch",
            "metadata": {"name": name},
            "spec": {"jobRef": {"name": parent}, "payload": "hello", "meta": {"who": "ops"}}
        }))
        .expect("NomadDispatch");
        self.dispatches()
            .create(&PostParams::default(), &obj)
            .await
            .expect("create NomadDispatch");
    }

    /// Waits until NomadDispatch `name` names its job and is `Ready=True` (the job
    /// completed).
    async fn wait_dispatched(&self, name: &str) -> NomadDispatch {
        wait_until_ok(&format!("{name}: dispatched and Ready"), || async {
            let obj = self
                .dispatches()
                .get(name)
                .await
                .expect("get NomadDispatch");
            let status = obj.status.as_ref();
            let ready = status
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                .is_some_and(|c| c.status == "True");
            if ready && status.is_some_and(|s| s.job_id.is_some()) {
                Ok(obj)
            } else {
                Err(format!("; last status: {:#?}", obj.status))
            }
        })
        .await
    }

    async fn wait_for(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&NomadJob) -> bool,
    ) -> NomadJob {
        wait_for(&self.ns.api(), name, what, check).await
    }

    async fn wait_gone(&self, name: &str) {
        wait_until(&format!("{name} to be gone"), || async {
            self.ns
                .api::<NomadJob>()
                .get_opt(name)
                .await
                .expect("get")
                .is_none()
        })
        .await;
    }

    /// Every request Nomad received in this test so far.
    fn requests(&self) -> Vec<Request> {
        match (&self.sim, &self.proxy) {
            (Some(sim), _) => oracles::from_sim(&sim.requests()),
            (None, Some(proxy)) => oracles::from_proxy(&proxy.requests()),
            (None, None) => Vec::new(),
        }
    }

    /// Waits until `operator` finished `more` further reconciles: a few resyncs passed,
    /// enough for a late second write to show (resyncs make no Nomad call to count).
    async fn let_reconciles_pass(&self, operator: &OperatorProcess, more: usize) {
        let before = operator.reconciles().await;
        wait_until(&format!("{more} more reconciles"), || async {
            operator.reconciles().await >= before + more as f64
        })
        .await;
    }

    async fn verdict(&self, expect: Expect) -> (Verdict, FinalState) {
        let state =
            oracles::snapshot(&self.ns.api(), &self.nomad, &self.nomad_namespace, expect).await;
        (oracles::check(&self.requests(), &state), state)
    }
}

/// Registers [`FOREIGN`] in Nomad namespace `namespace`, without the operator's `Meta`.
async fn register_foreign(nomad: &NomadClient, backend: Backend, namespace: &str) {
    let mut job = fixtures::service_job(backend, 1, "/bin/sleep", &["3600"], false);
    job["ID"] = json!(FOREIGN);
    job["Name"] = json!(FOREIGN);
    // Nomad puts a job without one in `default`, whatever the request's namespace.
    job["Namespace"] = json!(namespace);
    nomad
        .register_job(&Scope::default(), &job, None)
        .await
        .expect("register the foreign job");
}

/// Creates or updates NomadJob `name` with `spec.job: job` (server-side apply).
async fn apply(api: &Api<NomadJob>, name: &str, job: &Value) {
    apply_spec(api, name, json!({ "job": job })).await;
}

/// Creates or updates NomadJob `name` with `spec` (server-side apply).
async fn apply_spec(api: &Api<NomadJob>, name: &str, spec: Value) {
    let body = json!({
        "apiVersion": "nomadoperator.dev/v1alpha1",
        "kind": "NomadJob",
        "metadata": {"name": name},
        "spec": spec
    });
    api.patch(
        name,
        &PatchParams::apply("test-user").force(),
        &Patch::Apply(&body),
    )
    .await
    .expect("apply NomadJob");
}

/// Waits (up to [`PATIENCE`]) until `name` satisfies `check`.
async fn wait_for(
    api: &Api<NomadJob>,
    name: &str,
    what: &str,
    check: impl Fn(&NomadJob) -> bool,
) -> NomadJob {
    wait_until_ok(&format!("{name}: {what}"), || async {
        match api.get_opt(name).await.expect("get NomadJob") {
            Some(obj) if check(&obj) => Ok(obj),
            Some(obj) => Err(format!("; last status: {:#?}", obj.status)),
            None => Err("; the object does not exist".into()),
        }
    })
    .await
}

/// Reverted by the operator after its deployment failed: the end of a revert.
fn reverted(obj: &NomadJob) -> bool {
    condition(obj, "Stalled").is_some_and(|c| c.status == "True" && c.reason == "Reverted")
        && obj.status.as_ref().is_some_and(|s| s.last_revert.is_some())
}

// ---------------------------------------------------------------------------------------
// 1. kill -9 at each step of the pipeline.

/// What the held operator was doing when it was killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// Creating the object's job.
    Create,
    /// Registering a changed spec.
    SpecChange,
    /// Reverting a failed deployment of a changed spec.
    Revert,
    /// Deleting the object (default policy: deregister).
    Delete,
    /// Promoting the healthy canary of a changed spec (`spec.rollout.promote: Auto`).
    Promote,
    /// Dispatching a `NomadDispatch` of a parameterized job.
    Dispatch,
}

impl Path {
    /// The NomadJob the path is about.
    fn object(self) -> &'static str {
        match self {
            Path::Dispatch => "report",
            _ => "web",
        }
    }
}

/// One case of the matrix: the object reaches `point` of `path` in an operator started
/// to hold there, which is then killed (`kill -9`); a fresh operator converges, and the
/// oracles hold.
async fn kill9_case(backend: Backend, path: Path, point: &str) {
    let prefix = format!("fm-{}", point.replace('.', "-"));
    let bed = Bed::new(backend, &prefix).await;
    bed.register_foreign().await;
    let good = bed.job("3600");
    let changed = bed.job("3601");
    let canary = bed.canary_job("3600");
    let canary_changed = bed.canary_job("3601");
    let parameterized = bed.parameterized_job();
    let name = path.object();

    // Every path but the create starts from an object Ready at its first spec.
    if path != Path::Create {
        let mut first = bed.spawn("first", None);
        match path {
            Path::Promote => bed.apply_auto_promoted(name, &canary).await,
            Path::Dispatch => bed.apply(name, &parameterized).await,
            _ => bed.apply(name, &good).await,
        }
        bed.wait_for(name, "Ready", ready).await;
        first.kill9().await;
    }

    let mut held = bed.spawn("held", Some(point));
    match path {
        Path::Create => bed.apply("web", &good).await,
        Path::SpecChange => bed.apply("web", &changed).await,
        Path::Revert => bed.apply("web", &bed.failing_job()).await,
        Path::Delete => {
            bed.ns
                .api::<NomadJob>()
                .delete("web", &DeleteParams::default())
                .await
                .expect("delete");
        }
        // The changed spec's deployment starts with one canary.
        Path::Promote => bed.apply_auto_promoted("web", &canary_changed).await,
        Path::Dispatch => bed.create_dispatch("run", name).await,
    }
    held.wait_held(point).await;
    held.kill9().await;

    let fresh = bed.spawn("fresh", None);
    let mut expect = Expect {
        foreign: vec![FOREIGN.into()],
        ..Expect::default()
    };
    let mut dispatch = None;
    match path {
        Path::Create => {
            bed.wait_for("web", "Ready", ready).await;
            expect.runs.insert("web".into(), good);
            expect.specs_applied.insert("web".into(), 1);
        }
        Path::SpecChange => {
            bed.wait_for("web", "Ready at the changed spec", ready)
                .await;
            expect.runs.insert("web".into(), changed);
            expect.specs_applied.insert("web".into(), 2);
        }
        Path::Revert => {
            bed.wait_for("web", "Stalled/Reverted", reverted).await;
            // The job runs the reverted copy of the first spec.
            expect.runs.insert("web".into(), good);
            expect.specs_applied.insert("web".into(), 2);
        }
        Path::Delete => {
            bed.wait_gone("web").await;
            expect.specs_applied.insert("web".into(), 1);
        }
        Path::Promote => {
            bed.wait_for("web", "Ready at the promoted changed spec", |o| {
                ready(o)
                    && o.status
                        .as_ref()
                        .and_then(|s| s.canaries.as_ref())
                        .is_some_and(|c| c.promoted)
            })
            .await;
            expect.runs.insert("web".into(), canary_changed);
            expect.specs_applied.insert("web".into(), 2);
        }
        Path::Dispatch => {
            dispatch = Some(bed.wait_dispatched("run").await);
            expect.runs.insert(name.into(), parameterized);
            expect.specs_applied.insert(name.into(), 1);
        }
    }
    if path != Path::Delete {
        bed.let_reconciles_pass(&fresh, 3).await;
    }
    let (verdict, state) = bed.verdict(expect).await;
    let context = format!(
        "{backend:?}: kill -9 at {point} ({path:?})\nrequest log:\n{}",
        writes_of(&bed.requests())
    );
    verdict.assert_clean(&context);
    if path == Path::Revert {
        let reverts = bed
            .requests()
            .iter()
            .filter(|r| r.path == "/v1/job/web/revert" && (200..300).contains(&r.status))
            .count();
        assert_eq!(reverts, 1, "{backend:?}: kill -9 at {point}: one revert");
    }
    if path == Path::Promote {
        promoted_once(&bed, point, &context).await;
    }
    if let Some(dispatch) = dispatch {
        dispatched_once(&bed, &state, &dispatch, &context);
    }
    drop(fresh);
}

/// The changed spec's deployment of `web` was promoted by one successful `POST
/// /v1/deployment/promote/:id`, no deployment more than once, and, when the fresh
/// operator made the promotion (the held one was killed before it), the status records
/// it. (Nomad 1.1 answers a second promote of a deployment that is still running with
/// 200, as if it had promoted it; of an ended one with a 500 `can't promote terminal
/// deployment`, which promotes nothing.)
///
/// A promotion made just before the kill is not checked in the status: the operator
/// records no intent before promoting (`promote.intent` is not a point), so the fresh
/// operator finds the deployment promoted without knowing who did it, and
/// `status.lastPromotion` is left as it was, or says "someone outside the operator"
/// when an earlier status showed the canaries unpromoted.
async fn promoted_once(bed: &Bed, point: &str, context: &str) {
    let deployments = bed
        .nomad
        .job_deployments(&Scope::default(), "web")
        .await
        .expect("the deployments of web");
    let latest = deployments
        .iter()
        .max_by_key(|d| d.create_index)
        .expect("a deployment");
    assert!(
        latest.status == "successful"
            && latest
                .task_groups
                .values()
                .all(|g| g.desired_canaries == 1 && g.promoted),
        "{context}\nthe changed spec's deployment is promoted and successful: {latest:#?}"
    );
    let mut promotions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in bed.requests() {
        if let Some(id) = r.path.strip_prefix("/v1/deployment/promote/") {
            promotions.entry(id.into()).or_default().push(r.to_string());
        }
    }
    let successes = |id: &str| {
        bed.requests()
            .iter()
            .filter(|r| {
                r.path == format!("/v1/deployment/promote/{id}") && (200..300).contains(&r.status)
            })
            .count()
    };
    for id in promotions.keys() {
        assert!(
            successes(id) <= 1,
            "{context}\ndeployment {id} promoted more than once: {promotions:#?}"
        );
    }
    assert_eq!(
        successes(&latest.id),
        1,
        "{context}\none successful promotion of {}: {promotions:#?}",
        latest.id
    );
    let obj = bed.ns.api::<NomadJob>().get("web").await.expect("get web");
    let status = obj.status.unwrap_or_default();
    let recorded = status.last_promotion.as_ref();
    eprintln!("kill -9 at {point}: status.lastPromotion {recorded:?}");
    if point == "promote.before" {
        assert!(
            recorded.is_some_and(
                |p| p.deployment_id == latest.id && p.by == "spec.rollout.promote: Auto"
            ),
            "{context}\nstatus.lastPromotion names {} and spec.rollout.promote: {status:#?}",
            latest.id
        );
    }
}

/// One job was dispatched for NomadDispatch `dispatch` (at most one successful `POST
/// /v1/job/report/dispatch`, one child of `report` in Nomad), and its status names it.
fn dispatched_once(bed: &Bed, state: &FinalState, dispatch: &NomadDispatch, context: &str) {
    let dispatches: Vec<String> = bed
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/job/report/dispatch")
        .map(|r| r.to_string())
        .collect();
    let successes = bed
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/job/report/dispatch" && (200..300).contains(&r.status))
        .count();
    assert!(
        successes <= 1,
        "{context}\nat most one successful dispatch: {dispatches:#?}"
    );
    let children: Vec<&str> = state
        .jobs
        .iter()
        .filter(|j| j.parent == "report")
        .map(|j| j.id.as_str())
        .collect();
    assert_eq!(
        children.len(),
        1,
        "{context}\none dispatched job of report: {children:?} (dispatches {dispatches:#?})"
    );
    let named = dispatch.status.as_ref().and_then(|s| s.job_id.as_deref());
    assert_eq!(
        named,
        Some(children[0]),
        "{context}\nthe NomadDispatch names its job: {:#?}",
        dispatch.status
    );
}

/// The writes of a request log, one a line (for failure messages).
fn writes_of(requests: &[Request]) -> String {
    requests
        .iter()
        .filter(|r| r.method != "GET" && !r.path.ends_with("/plan"))
        .map(|r| format!("  {r}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Declares one test per case, on the simulator (`on_sim::`) and on the real agent
/// (`on_real_nomad::`).
macro_rules! matrix {
    ($($name:ident: $path:ident at $point:literal,)*) => {
        mod on_sim {
            $(#[tokio::test]
            async fn $name() {
                super::kill9_case(super::Backend::Sim, super::Path::$path, $point).await
            })*
        }
        mod on_real_nomad {
            $(#[tokio::test]
            async fn $name() {
                super::kill9_case(super::Backend::Real, super::Path::$path, $point).await
            })*
        }
    };
}

matrix! {
    create_killed_at_finalizer_after: Create at "finalizer.after",
    change_killed_at_register_intent: SpecChange at "register.intent",
    create_killed_at_register_before: Create at "register.before",
    create_killed_at_register_after: Create at "register.after",
    create_killed_at_status_before: Create at "status.before",
    create_killed_at_status_after: Create at "status.after",
    change_killed_at_register_before: SpecChange at "register.before",
    change_killed_at_register_after: SpecChange at "register.after",
    revert_killed_at_revert_intent: Revert at "revert.intent",
    revert_killed_at_revert_before: Revert at "revert.before",
    revert_killed_at_revert_after: Revert at "revert.after",
    delete_killed_at_deregister_before: Delete at "deregister.before",
    delete_killed_at_deregister_after: Delete at "deregister.after",
    delete_killed_at_finalizer_removal_before: Delete at "finalizer-removal.before",
    promote_killed_at_promote_before: Promote at "promote.before",
    promote_killed_at_promote_after: Promote at "promote.after",
    dispatch_killed_at_dispatch_intent: Dispatch at "dispatch.intent",
    dispatch_killed_at_dispatch_before: Dispatch at "dispatch.before",
    dispatch_killed_at_dispatch_after: Dispatch at "dispatch.after",
}

// ---------------------------------------------------------------------------------------
// The oracles themselves: each catches what it claims (a vacuous oracle would pass
// every case above).

fn record(method: &str, path: &str, status: u16) -> Request {
    Request {
        method: method.into(),
        path: path.into(),
        status,
        ..Request::default()
    }
}

fn job_state(id: &str, owner: Option<(&str, &str)>, stop: bool, failed: usize) -> Job {
    Job {
        id: id.into(),
        stop,
        status: if stop { "dead" } else { "running" }.into(),
        version: 1,
        owner: owner.map(|(a, b)| (a.into(), b.into())),
        parent: String::new(),
        failed_deployments: failed,
        value: json!({"ID": id, "TaskGroups": [{"Count": 1}]}),
    }
}

#[test]
fn oracles_catch_what_they_claim() {
    let register = |digest: &str| Request {
        job_digest: Some(digest.into()),
        ..record("POST", "/v1/job/web", 200)
    };
    let revert = |deployment: &str| Request {
        deployment: Some(deployment.into()),
        ..record("POST", "/v1/job/web/revert", 200)
    };
    let object = |name: &str, deleting: bool| Object {
        namespace: "ns".into(),
        name: name.into(),
        deleting,
        job_id: name.into(),
        status_version: Some(1),
        stalled: None,
    };
    let state = |objects: Vec<Object>, jobs: Vec<Job>, expect: Expect| FinalState {
        nomad_namespace: "default".into(),
        objects,
        jobs,
        expect,
    };
    let web = || job_state("web", Some(("ns", "web")), false, 1);

    // A clean run: A, B (fails), revert, A again; a 409 and a plan do not count.
    let clean = vec![
        register("a"),
        record("POST", "/v1/job/web/plan", 200),
        register("b"),
        record("POST", "/v1/job/web", 409),
        revert("d1"),
        register("a"),
    ];
    let expect = Expect {
        specs_applied: BTreeMap::from([("web".into(), 3)]),
        runs: BTreeMap::from([("web".into(), json!({"TaskGroups": [{"Count": 1}]}))]),
        ..Expect::default()
    };
    let fine = oracles::check(
        &clean,
        &state(vec![object("web", false)], vec![web()], expect.clone()),
    );
    assert!(fine.is_clean(), "{fine}");

    // The same spec twice in a row (the second after a lost answer), too many registers.
    let doubled = vec![
        Request {
            dropped: true,
            ..register("a")
        },
        register("a"),
    ];
    let expect_one = Expect {
        specs_applied: BTreeMap::from([("web".into(), 1)]),
        ..Expect::default()
    };
    let v = oracles::check(
        &doubled,
        &state(vec![object("web", false)], vec![web()], expect_one),
    );
    assert_eq!(v.doubled_registers.len(), 2, "{v}");
    assert!(v.doubled_registers[0].contains("answer dropped"), "{v}");

    // One failed deployment reverted twice.
    let v = oracles::check(
        &[register("a"), register("b"), revert("d1"), revert("d1")],
        &state(vec![object("web", false)], vec![web()], Expect::default()),
    );
    assert_eq!(
        v.doubled_reverts.len(),
        3,
        "in a row, by deployment, by count: {v}"
    );

    // A foreign job deleted; an orphan; an object whose job is stopped, or runs another
    // spec.
    let foreign = job_state(FOREIGN, None, true, 0);
    let orphan = job_state("gone", Some(("ns", "gone")), false, 0);
    let stopped = job_state("web", Some(("ns", "web")), true, 0);
    let v = oracles::check(
        &[record("DELETE", "/v1/job/foreign", 200)],
        &state(
            vec![object("web", false), object("being-deleted", true)],
            vec![foreign, orphan, stopped],
            Expect {
                foreign: vec![FOREIGN.into()],
                runs: BTreeMap::from([("web".into(), json!({"TaskGroups": [{"Count": 2}]}))]),
                ..Expect::default()
            },
        ),
    );
    assert_eq!(v.foreign_deletes.len(), 2, "deleted, and stopped: {v}");
    assert_eq!(v.orphans.len(), 1, "{v}");
    assert_eq!(v.lost.len(), 2, "stopped, and not the spec: {v}");
    assert!(
        v.lost
            .iter()
            .any(|m| m.contains(".TaskGroups[0].Count is 1, want 2")),
        "{v}"
    );
}

// ---------------------------------------------------------------------------------------
// 2. Lost answers: Nomad carried out the write, the answer never came.

/// A fault that lets `method path` through once and drops the connection before the
/// answer.
fn lose_the_answer(method: &str, path: &str) -> Fault {
    Fault {
        method: Some(method.into()),
        path: path.into(),
        commit_then_drop: true,
        times: Some(1),
        ..Fault::default()
    }
}

/// The requests of the log that Nomad carried out but whose answer it dropped.
fn dropped(sim: &Simulator, path: &str) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.path == path && r.dropped && r.status == 200)
        .count()
}

async fn harness_verdict(h: &Harness, expect: Expect) -> Verdict {
    let sim = h.sim().expect("simulator");
    let state = oracles::snapshot(&h.api(), &h.nomad, &h.nomad_namespace, expect).await;
    oracles::check(&oracles::from_sim(&sim.requests()), &state)
}

#[tokio::test]
async fn registers_whose_answers_are_lost_are_not_made_twice() {
    let h = Harness::start_on(Backend::Sim, "fm-lost-register", &[]).await;
    let sim = h.sim().expect("simulator");
    register_foreign(&h.nomad, Backend::Sim, &h.nomad_namespace).await;

    // The create's register.
    sim.add_fault(lose_the_answer("POST", "/v1/job/web"));
    let first = h.service_job(1, "/bin/sleep", &["3600"], false);
    h.apply_ready("web", json!({"job": first})).await;
    assert_eq!(dropped(sim, "/v1/job/web"), 1, "the fault fired");

    // A spec change's register (a check-and-set on the job's modify index).
    sim.add_fault(lose_the_answer("POST", "/v1/job/web"));
    let changed = h.service_job(1, "/bin/sleep", &["3601"], false);
    h.apply_ready("web", json!({"job": changed.clone()})).await;
    assert_eq!(dropped(sim, "/v1/job/web"), 2, "the fault fired");
    h.wait_reconciles(3).await;

    let verdict = harness_verdict(
        &h,
        Expect {
            runs: BTreeMap::from([("web".into(), changed)]),
            specs_applied: BTreeMap::from([("web".into(), 2)]),
            foreign: vec![FOREIGN.into()],
            ..Expect::default()
        },
    )
    .await;
    verdict.assert_clean(&format!(
        "lost register answers\n{}",
        writes_of(&oracles::from_sim(&sim.requests()))
    ));
}

#[tokio::test]
async fn a_revert_whose_answer_is_lost_is_not_made_twice() {
    let h = Harness::start_on(Backend::Sim, "fm-lost-revert", &[]).await;
    let sim = h.sim().expect("simulator");
    register_foreign(&h.nomad, Backend::Sim, &h.nomad_namespace).await;
    let good = h.service_job(1, "/bin/sleep", &["3600"], false);
    h.apply_ready("web", json!({"job": good.clone()})).await;

    sim.add_fault(lose_the_answer("POST", "/v1/job/web/revert"));
    h.apply(
        "web",
        json!({"job": h.service_job(1, "/bin/false", &[], false)}),
    )
    .await;
    h.wait_for("web", "Stalled/Reverted", reverted).await;
    assert_eq!(dropped(sim, "/v1/job/web/revert"), 1, "the fault fired");
    h.wait_reconciles(3).await;

    let verdict = harness_verdict(
        &h,
        Expect {
            runs: BTreeMap::from([("web".into(), good)]),
            specs_applied: BTreeMap::from([("web".into(), 2)]),
            foreign: vec![FOREIGN.into()],
            ..Expect::default()
        },
    )
    .await;
    verdict.assert_clean(&format!(
        "a lost revert answer\n{}",
        writes_of(&oracles::from_sim(&sim.requests()))
    ));
    assert_eq!(h.count("POST", "/v1/job/web/revert"), 1, "one revert");
}

// ---------------------------------------------------------------------------------------
// 3. Nomad down and back.

#[tokio::test]
async fn nomad_down_mid_converge_and_back_on_the_same_port() {
    let mut bed = Bed::new(Backend::Sim, "fm-down").await;
    bed.register_foreign().await;
    let sim = bed.sim().clone();
    // One register is carried out and its answer held: Nomad goes down while the
    // operator waits for it (the answer never comes).
    sim.add_fault(Fault {
        after_commit_ms: Some(600_000),
        ..lose_the_answer("POST", "/v1/job/web-3")
    });
    let operator = bed.spawn("operator", None);
    let names: Vec<String> = (0..8).map(|i| format!("web-{i}")).collect();
    let job = bed.job("3600");
    for name in &names {
        bed.apply(name, &job).await;
    }
    wait_until("the held register of web-3", || async {
        dropped(&sim, "/v1/job/web-3") == 1
    })
    .await;

    let server = bed.server.take().expect("the simulator's server");
    let addr = server.addr;
    server.shutdown().await;
    // Down until the operator has seen enough failures to pause its calls.
    wait_until("the operator to pause its calls to Nomad", || async {
        operator.logs().contains("pausing calls")
    })
    .await;
    let served_before = sim.requests().len();
    bed.server = Some(sim.serve(addr).await.expect("serve on the same port"));

    for name in &names {
        bed.wait_for(name, "Ready after Nomad is back", ready).await;
    }
    bed.let_reconciles_pass(&operator, 3).await;
    assert!(
        sim.requests().len() > served_before,
        "the operator reached the simulator again"
    );
    let (verdict, _) = bed
        .verdict(Expect {
            runs: names.iter().map(|n| (n.clone(), job.clone())).collect(),
            specs_applied: names.iter().map(|n| (n.clone(), 1)).collect(),
            foreign: vec![FOREIGN.into()],
            ..Expect::default()
        })
        .await;
    verdict.assert_clean(&format!(
        "Nomad down and back\n{}",
        writes_of(&bed.requests())
    ));
}

// ---------------------------------------------------------------------------------------
// 4. A minute without a cluster leader, under 200 objects.

/// How many objects the leaderless test runs.
const OBJECTS: usize = 200;
/// How long the cluster has no leader.
const OUTAGE: Duration = Duration::from_secs(60);
/// How long the test waits for all objects to converge, before and after the outage:
/// after it, the circuit breaker's last pause (a trial that fails just before the
/// leader is back pauses calls for up to MAX_PAUSE, 60 s) and the objects' spread after
/// it (up to a quarter of the pause: 15 s) may pass first.
const CONVERGE: Duration = Duration::from_secs(150);

/// Waits until every object is Ready for its generation, at generation `generation`.
async fn wait_all_ready(api: &Api<NomadJob>, generation: i64) {
    wait_until_ok_within(
        &format!("{OBJECTS} objects Ready at generation {generation}"),
        CONVERGE,
        Duration::from_secs(1),
        || async {
            let list = api.list(&ListParams::default()).await.expect("list");
            let pending: Vec<String> = list
                .items
                .iter()
                .filter(|o| !(ready(o) && o.metadata.generation == Some(generation)))
                .map(|o| o.metadata.name.clone().unwrap_or_default())
                .collect();
            if list.items.len() == OBJECTS && pending.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} of {} not ready: {:?}",
                    pending.len(),
                    list.items.len(),
                    pending.iter().take(5).collect::<Vec<_>>()
                ))
            }
        },
    )
    .await;
}

/// A request to the simulator that marks a moment in its log (`GET /v1/agent/self`
/// answers without a leader too); returns its `at_ms`.
async fn mark(sim: &Simulator, url: &str, marker: &str) -> u64 {
    let answer = nomad_agent::http()
        .get(format!("{url}/v1/agent/self?marker={marker}"))
        .header("X-Nomad-Token", TOKEN)
        .send()
        .await
        .expect("marker request");
    assert!(answer.status().is_success(), "{}", answer.status());
    sim.requests()
        .iter()
        .rev()
        .find(|r| r.query == format!("marker={marker}"))
        .map(|r| r.at_ms)
        .expect("the marker in the log")
}

/// The status writes seen by a watch: (object, arrival) of each change of an object
/// that leaves its generation alone, and when the watch last saw anything.
#[derive(Default)]
struct StatusWrites {
    writes: Vec<(String, Instant)>,
    alive_until: Option<Instant>,
}

/// Watches the objects of `api` from `rv` on, recording their status writes.
fn watch_status_writes(
    api: Api<NomadJob>,
    rv: String,
) -> (
    std::sync::Arc<std::sync::Mutex<StatusWrites>>,
    tokio::task::JoinHandle<()>,
) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(StatusWrites::default()));
    let shared = seen.clone();
    let task = tokio::spawn(async move {
        let mut generations: BTreeMap<String, Option<i64>> = BTreeMap::new();
        let mut stream = api
            .watch(&WatchParams::default(), &rv)
            .await
            .expect("watch")
            .boxed();
        while let Some(event) = stream.next().await {
            let Ok(WatchEvent::Modified(obj)) = event else {
                continue;
            };
            let name = obj.metadata.name.clone().unwrap_or_default();
            let generation = obj.metadata.generation;
            // Every object is at generation 1 when the watch starts.
            let previous = generations.insert(name.clone(), generation);
            let mut seen = shared.lock().unwrap_or_else(|e| e.into_inner());
            if previous.unwrap_or(Some(1)) == generation {
                seen.writes.push((name, Instant::now()));
            }
            seen.alive_until = Some(Instant::now());
        }
    });
    (seen, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_without_a_leader_under_200_objects_backs_off_and_converges() {
    let h = Harness::start_on(Backend::Sim, "fm-leaderless", &["--resync-interval", "10s"]).await;
    let sim = h.sim().expect("simulator").clone();
    register_foreign(&h.nomad, Backend::Sim, &h.nomad_namespace).await;
    let api = h.api();
    let names: Vec<String> = (0..OBJECTS).map(|i| format!("job-{i:03}")).collect();
    // Deadlines long enough for 200 deployments at once on a loaded machine (at 100x:
    // healthy 18 s, progress 36 s): this test is about the outage, not the deployments.
    let job = |seconds: &str| {
        let mut job = h.service_job(1, "/bin/sleep", &[seconds], false);
        job["TaskGroups"][0]["Update"]["HealthyDeadline"] = json!(1_800_000_000_000u64);
        job["TaskGroups"][0]["Update"]["ProgressDeadline"] = json!(3_600_000_000_000u64);
        job
    };
    let (before, after) = (job("3600"), job("3601"));
    let setup = Instant::now();
    futures::stream::iter(&names)
        .for_each_concurrent(8, |name| apply(&api, name, &before))
        .await;
    wait_all_ready(&api, 1).await;
    eprintln!("{OBJECTS} objects Ready in {:?}", setup.elapsed());

    // Watch every change of the objects from here on.
    let rv = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .unwrap_or_default();
    let (seen, watch) = watch_status_writes(api.clone(), rv);

    // The outage: no leader for a minute, and every spec changes meanwhile.
    let started = Instant::now();
    let started_wall = k8s_openapi::jiff::Timestamp::now();
    sim.set_leader(false);
    let from_ms = mark(&sim, &h.nomad_url(), "outage-start").await;
    futures::stream::iter(&names)
        .for_each_concurrent(8, |name| apply(&api, name, &after))
        .await;
    tokio::time::sleep(OUTAGE.saturating_sub(started.elapsed())).await;
    let to_ms = mark(&sim, &h.nomad_url(), "outage-end").await;
    let ended = Instant::now();
    let ended_wall = k8s_openapi::jiff::Timestamp::now();
    sim.set_leader(true);

    wait_all_ready(&api, 2).await;
    let recovered = started.elapsed();

    // What went out without a leader: the operator's requests (markers left out), and
    // the windows they came in (requests less than 500 ms apart; the breaker's pauses
    // are at least 0.8 s).
    let log = sim.requests();
    let outage: Vec<u64> = log
        .iter()
        .filter(|r| r.at_ms >= from_ms && r.at_ms < to_ms && !r.query.starts_with("marker="))
        .map(|r| r.at_ms - from_ms)
        .collect();
    let in_range = |from: u64, to: u64| outage.iter().filter(move |t| (from..to).contains(*t));
    let windows = |from: u64, to: u64| {
        let times: Vec<u64> = in_range(from, to).copied().collect();
        times.windows(2).filter(|w| w[1] >= w[0] + 500).count() + usize::from(!times.is_empty())
    };
    let span = to_ms - from_ms;
    let (first, last, total) = (
        in_range(0, 20_000).count(),
        in_range(span.saturating_sub(20_000), span).count(),
        outage.len(),
    );
    let (first_windows, last_windows) = (
        windows(0, 20_000),
        windows(span.saturating_sub(20_000), span),
    );
    eprintln!(
        "no leader for {span} ms: {total} requests, at {outage:?} ms; {first} in the first 20 s ({first_windows} windows), {last} in the last 20 s ({last_windows}); all {OBJECTS} converged {recovered:?} after the outage began"
    );
    // The rate decays, as src/nomad/breaker.rs's constants make it: after TRIP_AFTER (3)
    // failures in a row the breaker opens for FIRST_PAUSE (1 s), and each failed trial
    // reopens it for twice as long, spread by a fifth either way (0.8 to 1.2 times),
    // capped at MAX_PAUSE (60 s). The first call after a pause (the trial) comes at most
    // a quarter of the pause (+ 50 ms) after its end: refused objects wait for the
    // pause's end plus up to a quarter of it (Backoff::after_pause). So trials 1 to 3
    // start by 1.25 x 1.2 x (1 + 2 + 4) s + 0.15 s = 10.65 s: at least 3 windows in the
    // first 20 s. Two trials after 40 s are at least 0.8 x 32 s = 25.6 s apart: at most
    // one window in the last 20 s.
    assert!(
        first_windows >= 3 && last_windows <= 1 && last < first,
        "the request rate decays: {first} requests in {first_windows} windows in the first 20 s, {last} in {last_windows} in the last 20 s (at {outage:?} ms)"
    );
    // The bound on the total: trials start at the earliest at 0.8 x (1, 3, 7, 15, 31,
    // 63) s = 0.8, 2.4, 5.6, 12, 24.8 and 50.4 s, and the next at 0.8 x 127 s, past the
    // minute: at most 7 windows (the first failures, and 6 trials) with requests. In
    // each, an object sends at most one request: a reconcile stops at its first failure,
    // and its retry comes after the breaker has reopened (a failure in a trial reopens
    // it), so it is refused without a request and waits for the pause's end; the three
    // Nomad watches likewise. Hence at most 7 x (200 + 3) requests. A per-object back-off
    // instead (the harness's 200 ms doubling to a 2 s cap, spread by a fifth) would make
    // at least 200 x 60 s / 2.4 s = 5000.
    let bound = 7 * (OBJECTS + 3);
    assert!(
        total <= bound,
        "{total} requests without a leader, more than the breaker allows ({bound})"
    );

    // Status writes and Events per object during the outage stay bounded, whatever its
    // length: the first failure and the spec change, and one more seen once on a loaded
    // machine (a fresh-clone CI run: 3 for 2 objects of 200; the third write's cause
    // was not pinned down). Without the breaker each object wrote at every retry.
    let mut writes_per_object: BTreeMap<String, usize> = BTreeMap::new();
    {
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            seen.alive_until.is_some_and(|t| t >= ended),
            "the watch of the objects ran past the outage"
        );
        for (name, at) in &seen.writes {
            if *at >= started && *at < ended {
                *writes_per_object.entry(name.clone()).or_default() += 1;
            }
        }
    }
    let most_writes = writes_per_object.values().max().copied().unwrap_or(0);
    let too_many_writes: Vec<_> = writes_per_object.iter().filter(|(_, n)| **n > 3).collect();
    assert!(
        too_many_writes.is_empty(),
        "at most 3 status writes per object without a leader: {too_many_writes:?}"
    );
    let events: Api<Event> = Api::namespaced(h.ns.client.clone(), &h.ns.name);
    let events = events.list(&ListParams::default()).await.expect("events");
    let mut events_per_object: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in events.items {
        let created = e.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if created.is_some_and(|t| t >= started_wall && t < ended_wall) {
            let name = e
                .regarding
                .as_ref()
                .and_then(|r| r.name.clone())
                .unwrap_or_default();
            events_per_object
                .entry(name)
                .or_default()
                .push(e.reason.unwrap_or_default());
        }
    }
    let most_events = events_per_object.values().map(Vec::len).max().unwrap_or(0);
    let too_many_events: Vec<_> = events_per_object
        .iter()
        .filter(|(_, reasons)| reasons.len() > 2)
        .collect();
    assert!(
        too_many_events.is_empty(),
        "at most 2 Events per object without a leader: {too_many_events:?}"
    );
    eprintln!(
        "without a leader: {} status writes ({most_writes} at most per object), {} Events ({most_events} at most per object)",
        writes_per_object.values().sum::<usize>(),
        events_per_object.values().map(Vec::len).sum::<usize>()
    );

    let verdict = oracles::check(
        &oracles::from_sim(&sim.requests()),
        &oracles::snapshot(
            &api,
            &h.nomad,
            &h.nomad_namespace,
            Expect {
                runs: names.iter().map(|n| (n.clone(), after.clone())).collect(),
                specs_applied: names.iter().map(|n| (n.clone(), 2)).collect(),
                foreign: vec![FOREIGN.into()],
                ..Expect::default()
            },
        )
        .await,
    );
    verdict.assert_clean("a minute without a leader");
    watch.abort();
}
