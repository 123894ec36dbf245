//! The reconcile one step at a time: the operator's `apply` and `cleanup` against an
//! in-process Nomad simulator, with the Kubernetes side recorded instead of written, so
//! each test asserts the exact Nomad requests and the statuses written, and can kill the
//! "process" between any two writes and restart it.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use clap::Parser;
use kube::api::ObjectMeta;
use nomad_operator::controller::Error;
use nomad_operator::controller::context::Context;
use nomad_operator::controller::kube_side::{KubeSide, Target};
use nomad_operator::controller::reconcile::{Head, apply, cleanup};
use nomad_operator::controller::report::Notice;
use nomad_operator::controller::resolve::known_job;
use nomad_operator::controller::run::{self, RunArgs};
use nomad_operator::crd::{NomadJob, NomadJobSpec, NomadJobStatus, RevertActor, reason};
use nomad_operator::metrics::Metrics;
use nomad_operator::nomad::{NomadClient, NomadConfig, Scope};
use nomad_sim::{SimServer, Simulator};
use serde_json::{Value, json};
use support::fixtures::service_job;
use support::operator::{Backend, wait_until, wait_until_ok};

/// When the recorded Kubernetes side "kills the process".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kill {
    /// Never.
    Never,
    /// Right after the n-th status write (1-based) was persisted.
    AfterWrite(usize),
    /// Instead of the n-th status write: it is lost, and so is everything after it.
    BeforeWrite(usize),
}

/// The Kubernetes side, recorded: every status written and every Event, and a kill
/// switch. Once killed, it persists nothing and publishes nothing.
struct Recorded {
    status: Mutex<NomadJobStatus>,
    writes: Mutex<Vec<NomadJobStatus>>,
    notices: Mutex<Vec<Notice>>,
    kill: Mutex<Kill>,
    dead: Mutex<bool>,
}

impl Recorded {
    fn new(status: NomadJobStatus, kill: Kill) -> Self {
        Self {
            status: Mutex::new(status),
            writes: Mutex::default(),
            notices: Mutex::default(),
            kill: Mutex::new(kill),
            dead: Mutex::new(false),
        }
    }
    fn status(&self) -> NomadJobStatus {
        self.status.lock().expect("lock").clone()
    }
    fn writes(&self) -> usize {
        self.writes.lock().expect("lock").len()
    }
    fn reasons(&self) -> Vec<String> {
        self.notices
            .lock()
            .expect("lock")
            .iter()
            .map(|n| n.reason.clone())
            .collect()
    }
}

impl KubeSide for Recorded {
    async fn crd_terminating(&self) -> Result<bool, Error> {
        Ok(false)
    }

    async fn write_status(
        &self,
        _target: &Target,
        before: &NomadJobStatus,
        after: &NomadJobStatus,
    ) -> Result<(), Error> {
        if *self.dead.lock().expect("lock") {
            return Err(Error::MissingObjectKey);
        }
        if before == after {
            return Ok(());
        }
        let n = self.writes() + 1;
        let kill = *self.kill.lock().expect("lock");
        if kill == Kill::BeforeWrite(n) {
            *self.dead.lock().expect("lock") = true;
            return Err(Error::MissingObjectKey);
        }
        *self.status.lock().expect("lock") = after.clone();
        self.writes.lock().expect("lock").push(after.clone());
        if kill == Kill::AfterWrite(n) {
            *self.dead.lock().expect("lock") = true;
            return Err(Error::MissingObjectKey);
        }
        Ok(())
    }

    async fn publish(&self, _target: &Target, notice: Notice) {
        if !*self.dead.lock().expect("lock") {
            self.notices.lock().expect("lock").push(notice);
        }
    }
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: RunArgs,
}

/// One test's simulator and the operator's settings.
struct World {
    sim: Simulator,
    server: SimServer,
    nomad: NomadClient,
}

impl World {
    async fn new() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (sim, server) = support::fixtures::start_simulator(None).await;
        let nomad = NomadClient::new(&NomadConfig::new(server.url())).expect("nomad client");
        Self { sim, server, nomad }
    }

    /// A fresh operator process: a new context, nothing remembered in memory, and no
    /// status hold, so that each reconcile's writes are its own.
    fn process(&self) -> Context {
        self.process_with(&["--status-hold", "0s"])
    }

    /// A fresh operator process with `flags` added to the test's own.
    fn process_with(&self, flags: &[&str]) -> Context {
        let url = self.server.url();
        let mut argv = vec!["run", "--nomad-addr", &url, "--resync-interval", "1h"];
        argv.extend_from_slice(flags);
        let args = Cli::try_parse_from(argv).expect("flags").args;
        // The Kubernetes client is never called: the steps write through `Recorded`.
        let kube = kube::Client::try_from(kube::Config::new(
            "http://127.0.0.1:9".parse().expect("url"),
        ))
        .expect("kube client");
        let ctx = run::context(kube, &args, Metrics::default()).expect("context");
        std::sync::Arc::try_unwrap(ctx).unwrap_or_else(|_| panic!("context is shared"))
    }

    /// (method, path, status) of every request so far, and the log emptied.
    fn take(&self) -> Vec<(String, String, u16)> {
        self.sim
            .take_requests()
            .into_iter()
            .map(|r| (r.method, r.path, r.status))
            .collect()
    }

    /// Successful requests `method path` in `log`.
    fn successes(log: &[(String, String, u16)], method: &str, path: &str) -> usize {
        log.iter()
            .filter(|(m, p, s)| m == method && p == path && *s == 200)
            .count()
    }

    /// Waits until the job's newest deployment has `status`.
    async fn deployment(&self, status: &str) -> Value {
        wait_until_ok(&format!("the deployment to become {status}"), || async {
            match self.nomad.job_deployment(&Scope::default(), "web").await {
                Ok(Some(d)) if d.status == status => Ok(serde_json::to_value(d).expect("json")),
                Ok(Some(d)) => Err(format!("; it is {}", d.status)),
                Ok(None) => Err("; there is none".into()),
                Err(e) => Err(format!("; reading it: {e}")),
            }
        })
        .await
    }
}

/// One copy of `command` on the simulator.
fn job(command: &str, auto_revert: bool) -> Value {
    service_job(Backend::Sim, 1, command, &[], auto_revert)
}

/// The object `team/web` with `job` and `status`, finalizer in place.
fn object(job: Value, revert_on_failure: bool, status: NomadJobStatus) -> NomadJob {
    let spec: NomadJobSpec = serde_json::from_value(json!({
        "job": job,
        "revertOnFailure": revert_on_failure,
    }))
    .expect("spec");
    NomadJob {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("team".into()),
            uid: Some("uid-1".into()),
            generation: Some(1),
            finalizers: Some(vec![nomad_operator::crd::FINALIZER.into()]),
            ..ObjectMeta::default()
        },
        spec,
        status: Some(status),
    }
}

/// Reconciles `spec_job` until a reconcile makes no Nomad write and no status write,
/// starting from `status`; returns the final status.
async fn settle(ctx: &Context, spec_job: &Value, status: NomadJobStatus) -> NomadJobStatus {
    let mut status = status;
    for _ in 0..40 {
        let kube = Recorded::new(status.clone(), Kill::Never);
        let obj = object(spec_job.clone(), true, status.clone());
        apply(&obj, ctx, &kube).await.expect("reconcile");
        if kube.writes() == 0 {
            return status;
        }
        status = kube.status();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the object never settled: {status:#?}");
}

fn paths(log: &[(String, String, u16)]) -> Vec<(String, String)> {
    log.iter().map(|(m, p, _)| (m.clone(), p.clone())).collect()
}

fn req(method: &str, path: &str) -> (String, String) {
    (method.to_string(), path.to_string())
}

#[tokio::test]
async fn a_new_object_is_observed_planned_registered_and_mirrored_in_one_reconcile() {
    let world = World::new().await;
    let ctx = world.process();
    let kube = Recorded::new(NomadJobStatus::default(), Kill::Never);
    apply(
        &object(job("/bin/sleep", false), true, NomadJobStatus::default()),
        &ctx,
        &kube,
    )
    .await
    .expect("reconcile");
    assert_eq!(
        paths(&world.take()),
        vec![
            req("GET", "/v1/job/web"),
            req("POST", "/v1/job/web/plan"),
            // What the register created is told by the plan's diff: it is not read back.
            req("POST", "/v1/job/web"),
            req("GET", "/v1/job/web/summary"),
            req("GET", "/v1/job/web/allocations"),
        ]
    );
    let writes = kube.writes.lock().expect("lock").clone();
    assert_eq!(
        writes.len(),
        1,
        "the outcome only: a new job's register records no intent (a restart finds the job by its Meta)"
    );
    assert_eq!(writes[0].pending, None);
    let plan = writes[0]
        .plan
        .clone()
        .expect("the plan that led to the register");
    assert_eq!((plan.diff_type.as_str(), plan.registered), ("Added", true));
    assert_eq!(
        (writes[0].applied_version, writes[0].job_version),
        (Some(0), Some(0))
    );
    assert_eq!(kube.reasons(), vec![reason::REGISTERED.to_string()]);

    // Once deployed: the reconciles that mirror the deployment make no plan, and then
    // one at rest reads and writes nothing more.
    world.deployment("successful").await;
    let status = settle(&ctx, &job("/bin/sleep", false), kube.status()).await;
    world.take();
    let at_rest = Recorded::new(status.clone(), Kill::Never);
    apply(
        &object(job("/bin/sleep", false), true, status),
        &ctx,
        &at_rest,
    )
    .await
    .expect("reconcile");
    assert_eq!(
        paths(&world.take()),
        vec![
            req("GET", "/v1/job/web"),
            req("GET", "/v1/job/web/deployments"),
            req("GET", "/v1/job/web/summary"),
            req("GET", "/v1/job/web/allocations"),
        ],
        "no plan, no write at rest"
    );
    assert_eq!(at_rest.writes(), 0);
}

/// With a status hold, the reconcile that registers writes no status: it publishes the
/// `Registered` Event and holds what it would have written. The next reconcile, once
/// the deployment has ended, starts from the held status (so it plans nothing) and
/// writes the outcome in one status write. A process that dies while holding loses
/// only the hold: its successor plans once more, and Nomad answers "no change".
#[tokio::test]
async fn a_registering_reconcile_holds_its_status_until_the_deployment_has_more_to_say() {
    let world = World::new().await;
    let spec = job("/bin/sleep", false);
    let ctx = world.process_with(&["--status-hold", "1h"]);
    let kube = Recorded::new(NomadJobStatus::default(), Kill::Never);
    let unseen = object(spec.clone(), true, NomadJobStatus::default());
    apply(&unseen, &ctx, &kube).await.expect("reconcile");
    let log = world.take();
    assert_eq!(World::successes(&log, "POST", "/v1/job/web"), 1);
    assert_eq!(kube.writes(), 0, "the registered-only status is held");
    assert_eq!(kube.reasons(), vec![reason::REGISTERED.to_string()]);
    assert_eq!(ctx.held.len(), 1);

    world.deployment("successful").await;
    apply(&unseen, &ctx, &kube).await.expect("reconcile");
    let log = world.take();
    assert_eq!(World::successes(&log, "POST", "/v1/job/web/plan"), 0);
    assert_eq!(World::successes(&log, "POST", "/v1/job/web"), 0);
    let writes = kube.writes.lock().expect("lock").clone();
    assert_eq!(writes.len(), 1, "one write: the outcome");
    assert_eq!(
        (writes[0].applied_version, writes[0].job_version),
        (Some(0), Some(0))
    );
    assert_eq!(
        writes[0].deployment.as_ref().map(|d| d.status.as_str()),
        Some("successful")
    );
    let ready = writes[0]
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone()));
    assert_eq!(ready, Some(("True".to_string(), "Succeeded".to_string())));
    assert!(ctx.held.is_empty(), "the hold ends with the write");

    // A process that held and died: its successor sees no status at all.
    let world = World::new().await;
    apply(
        &object(spec.clone(), true, NomadJobStatus::default()),
        &world.process_with(&["--status-hold", "1h"]),
        &Recorded::new(NomadJobStatus::default(), Kill::Never),
    )
    .await
    .expect("reconcile");
    let status = settle(&world.process(), &spec, NomadJobStatus::default()).await;
    let log = world.take();
    assert_eq!(
        World::successes(&log, "POST", "/v1/job/web"),
        1,
        "one register"
    );
    assert_eq!(status.applied_version, Some(0));
    assert!(status.last_applied_digest.is_some());
}

/// Runs a first reconcile that dies at `kill`, restarts, and settles.
async fn first_register_killed(kill: Kill) -> (World, NomadJobStatus, Vec<(String, String, u16)>) {
    let world = World::new().await;
    let spec = job("/bin/sleep", false);
    let dying = Recorded::new(NomadJobStatus::default(), kill);
    let _ = apply(
        &object(spec.clone(), true, NomadJobStatus::default()),
        &world.process(),
        &dying,
    )
    .await;
    let survived = dying.status();
    let restarted = world.process();
    let status = settle(&restarted, &spec, survived).await;
    let log = world.take();
    (world, status, log)
}

#[tokio::test]
async fn a_kill_around_the_first_register_leads_to_exactly_one_register() {
    for kill in [
        Kill::AfterWrite(1),
        Kill::BeforeWrite(2),
        Kill::BeforeWrite(1),
    ] {
        let (_world, status, log) = first_register_killed(kill).await;
        assert_eq!(
            World::successes(&log, "POST", "/v1/job/web"),
            1,
            "{kill:?}: one register"
        );
        assert_eq!(status.applied_version, Some(0), "{kill:?}");
        assert_eq!(status.pending, None, "{kill:?}");
        assert!(status.last_applied_digest.is_some(), "{kill:?}");
    }
}

#[tokio::test]
async fn a_delete_after_a_kill_around_the_first_register_still_stops_the_job() {
    for kill in [Kill::BeforeWrite(2), Kill::BeforeWrite(1)] {
        let world = World::new().await;
        let spec = job("/bin/sleep", false);
        let dying = Recorded::new(NomadJobStatus::default(), kill);
        let _ = apply(
            &object(spec.clone(), true, NomadJobStatus::default()),
            &world.process(),
            &dying,
        )
        .await;
        let registered = World::successes(&world.take(), "POST", "/v1/job/web");
        // The object is deleted before any other reconcile: the cleanup works from what
        // survived (the recorded intent, or nothing at all and the spec).
        let obj = object(spec, true, dying.status());
        let ctx = world.process();
        let desired = known_job(&obj, &ctx, &ctx.defaults);
        let kube = Recorded::new(dying.status(), Kill::Never);
        cleanup(&Head::of(&obj), desired.as_ref(), &ctx, &kube)
            .await
            .expect("cleanup");
        let stopped = World::successes(&world.take(), "DELETE", "/v1/job/web");
        assert_eq!(
            stopped, registered,
            "{kill:?}: a job that was registered is stopped"
        );
        if registered == 1 {
            let job = world
                .nomad
                .read_job(&Scope::default(), "web")
                .await
                .expect("job");
            assert_eq!(job["Stop"], true, "{kill:?}");
            assert_eq!(kube.reasons(), vec![reason::DELETED.to_string()]);
        }
    }
}

/// Brings `web` to a healthy, settled version 0 through `ctx`; returns its status.
async fn healthy_release(world: &World, ctx: &Context, auto_revert: bool) -> NomadJobStatus {
    let good = job("/bin/sleep", auto_revert);
    let kube = Recorded::new(NomadJobStatus::default(), Kill::Never);
    apply(
        &object(good.clone(), true, NomadJobStatus::default()),
        ctx,
        &kube,
    )
    .await
    .expect("v0");
    world.deployment("successful").await;
    settle(ctx, &good, kube.status()).await
}

/// Brings `web` to a healthy version 0, then registers `/bin/false` as version 1 and
/// waits for its deployment to fail; returns the world, the status and the spec.
async fn failed_release(auto_revert: bool) -> (World, NomadJobStatus, Value) {
    let world = World::new().await;
    let ctx = world.process();
    let status = healthy_release(&world, &ctx, auto_revert).await;
    let bad = job("/bin/false", auto_revert);
    let kube = Recorded::new(status.clone(), Kill::Never);
    apply(&object(bad.clone(), true, status), &ctx, &kube)
        .await
        .expect("v1");
    world.deployment("failed").await;
    (world, kube.status(), bad)
}

#[tokio::test]
async fn a_kill_around_the_revert_leads_to_exactly_one_revert_and_keeps_last_revert() {
    for kill in [
        Kill::AfterWrite(1),
        Kill::BeforeWrite(2),
        Kill::BeforeWrite(1),
    ] {
        let (world, status, bad) = failed_release(false).await;
        world.take();
        let dying = Recorded::new(status.clone(), kill);
        let _ = apply(&object(bad.clone(), true, status), &world.process(), &dying).await;
        let status = settle(&world.process(), &bad, dying.status()).await;
        let log = world.take();
        assert_eq!(
            World::successes(&log, "POST", "/v1/job/web/revert"),
            1,
            "{kill:?}: one revert"
        );
        assert_eq!(
            World::successes(&log, "POST", "/v1/job/web"),
            0,
            "{kill:?}: no register"
        );
        let revert = status.last_revert.clone().expect("lastRevert survives");
        assert_eq!(
            (revert.from_version, revert.to_version, revert.by),
            (1, 0, RevertActor::Operator),
            "{kill:?}"
        );
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", reason::REVERTED),
            "{kill:?}"
        );
        assert_eq!(status.pending, None, "{kill:?}");
    }
}

#[tokio::test]
async fn a_kill_after_registering_a_spec_nomad_auto_reverts_does_not_register_it_again() {
    let world = World::new().await;
    let ctx = world.process();
    let status = healthy_release(&world, &ctx, true).await;
    world.take();
    // Register the failing spec, and die before its outcome is written.
    let bad = job("/bin/false", true);
    let dying = Recorded::new(status.clone(), Kill::BeforeWrite(2));
    let _ = apply(&object(bad.clone(), true, status), &ctx, &dying).await;
    // Nomad fails the deployment and reverts by itself while the operator is down.
    wait_until("Nomad's revert to version 2", || async {
        let job = world
            .nomad
            .read_job(&Scope::default(), "web")
            .await
            .expect("job");
        job["Version"] == 2
    })
    .await;
    let status = settle(&world.process(), &bad, dying.status()).await;
    let log = world.take();
    assert_eq!(
        World::successes(&log, "POST", "/v1/job/web"),
        1,
        "the failed spec once"
    );
    assert_eq!(
        World::successes(&log, "POST", "/v1/job/web/revert"),
        0,
        "Nomad reverted"
    );
    let revert = status.last_revert.clone().expect("lastRevert");
    assert_eq!((revert.from_version, revert.by), (1, RevertActor::Nomad));
    assert_eq!(status.applied_version, Some(1));
    assert_eq!(status.failed_digest, status.last_applied_digest);
}

/// A periodic batch job that launches only when forced (its cron is once a year).
fn periodic_job() -> Value {
    let mut job = service_job(Backend::Sim, 1, "/bin/true", &[], false);
    job["Type"] = json!("batch");
    if let Some(group) = job["TaskGroups"][0].as_object_mut() {
        group.remove("Update");
    }
    job["Periodic"] = json!({"Enabled": true, "SpecType": "cron", "Spec": "0 0 1 1 *", "ProhibitOverlap": false, "TimeZone": "UTC"});
    job
}

/// `object` with the force-launch annotation set to `value`.
fn launch_requested(job: Value, status: NomadJobStatus, value: &str) -> NomadJob {
    let mut obj = object(job, true, status);
    obj.metadata.annotations = Some(
        [(
            nomad_operator::crd::FORCE_LAUNCH_ANNOTATION.to_string(),
            value.to_string(),
        )]
        .into(),
    );
    obj
}

#[tokio::test]
async fn a_forced_launch_is_made_at_most_once_whatever_dies_or_is_lost() {
    // Killed after the record of the request (write 1) and before the launch, the
    // request is not made again: a launch leaves nothing to match it to, so at most once.
    // Killed after the launch and before the final status (write 2), or with the answer
    // lost after Nomad launched, it is not made twice.
    for (kill, lose_answer, launches) in [
        (Kill::BeforeWrite(2), false, 1),
        (Kill::Never, true, 1),
        (Kill::AfterWrite(1), false, 0),
    ] {
        let world = World::new().await;
        let spec = periodic_job();
        let settled = settle(&world.process(), &spec, NomadJobStatus::default()).await;
        world.take();
        if lose_answer {
            world.sim.add_fault(nomad_sim::Fault {
                method: Some("POST".into()),
                path: "/v1/job/web/periodic/force".into(),
                commit_then_drop: true,
                times: Some(1),
                ..nomad_sim::Fault::default()
            });
        }
        let dying = Recorded::new(settled.clone(), kill);
        let _ = apply(
            &launch_requested(spec.clone(), settled, "1"),
            &world.process(),
            &dying,
        )
        .await;
        // A restarted operator, reconciling until nothing changes.
        let restarted = world.process();
        let mut status = dying.status();
        for _ in 0..10 {
            let kube = Recorded::new(status.clone(), Kill::Never);
            apply(
                &launch_requested(spec.clone(), status.clone(), "1"),
                &restarted,
                &kube,
            )
            .await
            .expect("reconcile");
            if kube.writes() == 0 {
                break;
            }
            status = kube.status();
        }
        let log = world.take();
        let label = format!("{kill:?}, answer lost: {lose_answer}");
        assert_eq!(
            World::successes(&log, "POST", "/v1/job/web/periodic/force"),
            launches,
            "{label}: launches; requests: {log:?}"
        );
        assert_eq!(
            status.answered.force_launch.as_deref(),
            Some("1"),
            "{label}: the request is answered"
        );
    }
}

#[tokio::test]
async fn a_forced_launch_nomad_surely_did_not_make_is_tried_again() {
    let world = World::new().await;
    let spec = periodic_job();
    let ctx = world.process();
    let settled = settle(&ctx, &spec, NomadJobStatus::default()).await;
    world.take();
    world.sim.set_leader(false);
    let kube = Recorded::new(settled.clone(), Kill::Never);
    let failed = apply(&launch_requested(spec.clone(), settled, "1"), &ctx, &kube).await;
    assert!(failed.is_err(), "no leader: the reconcile fails");
    let status = kube.status();
    assert_eq!(
        status.answered.force_launch.as_deref(),
        None,
        "a launch Nomad refused is not recorded as answered"
    );
    world.sim.set_leader(true);
    let kube = Recorded::new(status.clone(), Kill::Never);
    apply(&launch_requested(spec, status, "1"), &ctx, &kube)
        .await
        .expect("reconcile");
    let log = world.take();
    assert_eq!(
        World::successes(&log, "POST", "/v1/job/web/periodic/force"),
        1,
        "launched once Nomad is back: {log:?}"
    );
}
