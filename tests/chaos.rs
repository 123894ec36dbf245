//! A seeded chaos run: while objects are created, changed, given failing specs and
//! deleted, the operator process is killed (`kill -9`) and restarted, and the simulator
//! injects faults (lost answers after a commit, dropped connections, `No cluster
//! leader`, latency, leader loss) at random. After each run the faults stop, every
//! object must settle, and the oracles must hold: never two registers of one spec,
//! never two reverts of one failed deployment, no delete of a job the operator does not
//! own, no job left running without its object, and no object without its job.
//!
//! The short run (CI) is one run of [`DEFAULT_STEPS`] steps. The long one:
//!
//! ```sh
//! CHAOS_RUNS=100 CHAOS_SEED=1 cargo nextest run --test chaos --no-capture
//! ```
//!
//! Each run prints what it did; the last line sums them up (`chaos: runs=...`). A
//! failing run prints its seed: `CHAOS_RUNS=1 CHAOS_SEED=<seed>` replays its script
//! (the operator's own timing still varies from one replay to the next).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use nomad_operator::crd::NomadJob;
use nomad_operator::nomad::{NomadClient, NomadConfig, Scope};
use nomad_sim::{Fault, Simulator};
use serde_json::{Value, json};
use support::envtest::TestNamespace;
use support::fixtures::{service_job, start_simulator};
use support::operator::{Backend, condition};
use support::operator_process::{OperatorProcess, ProcessOptions};
use support::oracles::{self, Expect};

/// Steps of one run unless `CHAOS_STEPS` says otherwise.
const DEFAULT_STEPS: u32 = 40;
/// Objects alive at once, at most.
const MAX_OBJECTS: usize = 6;
/// How long the objects may take to settle once the faults stop.
const SETTLE: Duration = Duration::from_secs(90);

/// What the runs did, and what the oracles found.
#[derive(Debug, Default)]
struct Totals {
    runs: u32,
    steps: u32,
    kills: u32,
    faults: u32,
    creates: u32,
    changes: u32,
    failures: u32,
    deletes: u32,
    /// Violations per oracle, by name.
    violations: BTreeMap<&'static str, usize>,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test]
async fn seeded_chaos_keeps_every_oracle() {
    let seed = env_u64("CHAOS_SEED", 20_261_201);
    let runs = env_u64("CHAOS_RUNS", 1);
    let steps = u32::try_from(env_u64("CHAOS_STEPS", u64::from(DEFAULT_STEPS))).unwrap_or(40);
    let mut totals = Totals::default();
    let mut failed = Vec::new();
    for run in 0..runs {
        let run_seed = seed.wrapping_add(run);
        let (did, violations) = one_run(run_seed, steps).await;
        eprintln!(
            "chaos run {run} (seed {run_seed}): {} steps, {} kills, {} faults, {} creates, {} changes, {} failing specs, {} deletes; {}",
            did.steps,
            did.kills,
            did.faults,
            did.creates,
            did.changes,
            did.failures,
            did.deletes,
            if violations.is_empty() {
                "all oracles hold".to_string()
            } else {
                format!("VIOLATIONS:\n  {}", violations.join("\n  "))
            }
        );
        if !violations.is_empty() {
            failed.push(run_seed);
        }
        totals.runs += 1;
        totals.steps += did.steps;
        totals.kills += did.kills;
        totals.faults += did.faults;
        totals.creates += did.creates;
        totals.changes += did.changes;
        totals.failures += did.failures;
        totals.deletes += did.deletes;
        for (name, n) in &did.violations {
            *totals.violations.entry(name).or_default() += n;
        }
    }
    let v = |name: &str| totals.violations.get(name).copied().unwrap_or_default();
    eprintln!(
        "chaos: runs={} steps={} kills={} faults={} creates={} changes={} failing_specs={} deletes={} lost={} doubled_registers={} doubled_reverts={} foreign_deletes={} orphans={}",
        totals.runs,
        totals.steps,
        totals.kills,
        totals.faults,
        totals.creates,
        totals.changes,
        totals.failures,
        totals.deletes,
        v("lost"),
        v("doubled_registers"),
        v("doubled_reverts"),
        v("foreign_deletes"),
        v("orphans"),
    );
    assert!(
        failed.is_empty(),
        "runs with violations, by seed: {failed:?}"
    );
}

/// One run: its script from `seed`, then settling and the oracles.
async fn one_run(seed: u64, steps: u32) -> (Totals, Vec<String>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let ns = TestNamespace::new("chaos").await;
    let (sim, server) = start_simulator(None).await;
    let nomad_url = server.url();
    let nomad = NomadClient::new(&NomadConfig::new(nomad_url.clone())).expect("nomad client");
    let foreign = "not-ours".to_string();
    let mut job = service_job(Backend::Sim, 1, "/bin/sleep", &["1000000"], false);
    job["ID"] = json!(foreign);
    job["Name"] = json!(foreign);
    nomad
        .register_job(&Scope::default(), &job, None)
        .await
        .expect("register the foreign job");
    let api: Api<NomadJob> = ns.api();
    let options = ProcessOptions {
        namespace: ns.name.clone(),
        nomad_addr: nomad_url.clone(),
        name: format!("chaos-{seed}"),
        extra: ["--error-backoff", "200ms", "--max-backoff", "2s"]
            .map(String::from)
            .to_vec(),
        ..ProcessOptions::default()
    };
    let mut operator = OperatorProcess::spawn(&options);
    let mut did = Totals::default();
    // Whether each object's spec is one that deploys (false: its deployment fails).
    let mut objects: BTreeMap<String, bool> = BTreeMap::new();
    let mut next_object = 0u32;
    // Every spec applied is new (its meta counts), so that a second register of one
    // spec is always a fault of the operator's.
    let mut specs = 0u32;
    let mut leaderless: Option<tokio::task::JoinHandle<()>> = None;
    for _ in 0..steps {
        did.steps += 1;
        match rng.u32(0..100) {
            0..=19 if objects.len() < MAX_OBJECTS => {
                let name = format!("obj-{next_object}");
                next_object += 1;
                specs += 1;
                apply(&api, &name, spec(specs, true)).await;
                objects.insert(name, true);
                did.creates += 1;
            }
            0..=44 if !objects.is_empty() => {
                let name = pick(&mut rng, &objects);
                specs += 1;
                apply(&api, &name, spec(specs, true)).await;
                objects.insert(name, true);
                did.changes += 1;
            }
            45..=54 if !objects.is_empty() => {
                let name = pick(&mut rng, &objects);
                specs += 1;
                apply(&api, &name, spec(specs, false)).await;
                objects.insert(name, false);
                did.failures += 1;
            }
            55..=64 if !objects.is_empty() => {
                let name = pick(&mut rng, &objects);
                let _ = api.delete(&name, &DeleteParams::default()).await;
                objects.remove(&name);
                did.deletes += 1;
            }
            65..=76 => {
                operator.kill9().await;
                operator = OperatorProcess::spawn(&options);
                did.kills += 1;
            }
            77..=99 => {
                inject(&mut rng, &sim, &mut leaderless);
                did.faults += 1;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(50..600))).await;
    }
    // The faults stop; everything must settle.
    if let Some(task) = leaderless.take() {
        task.abort();
    }
    sim.set_leader(true);
    sim.clear_faults();
    let mut violations = Vec::new();
    // A run that does not settle is a violation in itself, with the operator's log.
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        match settled(&api, &objects).await {
            Ok(()) => break,
            Err(seen) if tokio::time::Instant::now() >= deadline => {
                violations.push(format!(
                    "the objects did not settle within {SETTLE:?}{seen}; operator log tail:\n{}",
                    tail(&operator.logs(), 40)
                ));
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let expect = Expect {
        foreign: vec![foreign],
        ..Expect::default()
    };
    // A job whose allocations are being replaced (after a revert, say) is `pending` for
    // a moment after its object settled: the end state is what the oracles judge.
    let mut verdict;
    loop {
        let state = oracles::snapshot(&api, &nomad, "default", expect.clone()).await;
        verdict = oracles::check(&oracles::from_sim(&sim.requests()), &state);
        if verdict.lost.is_empty() || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (name, n) in verdict.counts() {
        did.violations.insert(name, n);
    }
    if !verdict.is_clean() {
        violations.push(verdict.to_string());
        violations.push(describe(&api, &nomad).await);
    }
    operator.kill9().await;
    drop(server);
    (did, violations)
}

/// Every object gone from Kubernetes is deleted; every other one is Ready (a good spec)
/// or Stalled (a failing spec, reverted) for its current generation.
async fn settled(api: &Api<NomadJob>, objects: &BTreeMap<String, bool>) -> Result<(), String> {
    let listed = api
        .list(&Default::default())
        .await
        .map_err(|e| format!("; list: {e}"))?;
    for obj in &listed.items {
        let name = obj.metadata.name.clone().unwrap_or_default();
        let Some(deploys) = objects.get(&name) else {
            return Err(format!("; {name} is still being deleted"));
        };
        let current =
            obj.status.as_ref().and_then(|s| s.observed_generation) == obj.metadata.generation;
        let wanted = if *deploys { "Ready" } else { "Stalled" };
        let holds = condition(obj, wanted).is_some_and(|c| c.status == "True");
        if !(current && holds) {
            return Err(format!(
                "; {name} is not {wanted} for its generation: {:?}",
                obj.status.as_ref().map(|s| &s.conditions)
            ));
        }
    }
    Ok(())
}

/// One random fault.
fn inject(
    rng: &mut fastrand::Rng,
    sim: &Simulator,
    leaderless: &mut Option<tokio::task::JoinHandle<()>>,
) {
    let fault = match rng.u32(0..7) {
        0 => Fault {
            method: Some("POST".into()),
            path: "/v1/job/*".into(),
            commit_then_drop: true,
            times: Some(1),
            ..Fault::default()
        },
        1 => Fault {
            method: Some("POST".into()),
            path: "/v1/job/*/revert".into(),
            commit_then_drop: true,
            times: Some(1),
            ..Fault::default()
        },
        2 => Fault {
            method: Some("DELETE".into()),
            path: "/v1/job/*".into(),
            commit_then_drop: true,
            times: Some(1),
            ..Fault::default()
        },
        3 => Fault {
            path: "*".into(),
            drop_connection: true,
            times: Some(rng.u32(1..4)),
            ..Fault::default()
        },
        4 => Fault {
            path: "*".into(),
            status: Some(500),
            body: Some("No cluster leader".into()),
            times: Some(rng.u32(1..6)),
            ..Fault::default()
        },
        5 => Fault {
            path: "*".into(),
            latency_ms: Some(rng.u64(50..400)),
            times: Some(rng.u32(1..10)),
            ..Fault::default()
        },
        _ => {
            // The leader is lost for a moment.
            if let Some(task) = leaderless.take() {
                task.abort();
            }
            sim.set_leader(false);
            let sim = sim.clone();
            let lasts = Duration::from_millis(rng.u64(300..2500));
            *leaderless = Some(tokio::spawn(async move {
                tokio::time::sleep(lasts).await;
                sim.set_leader(true);
            }));
            return;
        }
    };
    sim.add_fault(fault);
}

/// Spec number `n`: one that deploys, or one whose deployment fails (the operator
/// reverts it). `n` goes into the job's meta, so that each is a spec of its own.
fn spec(n: u32, deploys: bool) -> Value {
    let mut job = if deploys {
        service_job(Backend::Sim, 1, "/bin/sleep", &["1000000"], false)
    } else {
        service_job(Backend::Sim, 1, "/bin/false", &[], false)
    };
    job["Meta"] = json!({"chaos-spec": n.to_string()});
    json!({"job": job})
}

async fn apply(api: &Api<NomadJob>, name: &str, spec: Value) {
    let body = json!({"apiVersion": "nomadoperator.dev/v1alpha1", "kind": "NomadJob", "metadata": {"name": name}, "spec": spec});
    api.patch(
        name,
        &PatchParams::apply("chaos").force(),
        &Patch::Apply(&body),
    )
    .await
    .expect("apply NomadJob");
}

fn pick(rng: &mut fastrand::Rng, objects: &BTreeMap<String, bool>) -> String {
    let i = rng.usize(0..objects.len());
    objects.keys().nth(i).cloned().unwrap_or_default()
}

/// Each object's conditions and its job's status, for a failed run's report.
async fn describe(api: &Api<NomadJob>, nomad: &NomadClient) -> String {
    let mut out = String::from("objects at the end:");
    let listed = api.list(&Default::default()).await.map(|l| l.items);
    for obj in listed.unwrap_or_default() {
        let name = obj.metadata.name.clone().unwrap_or_default();
        let conditions: Vec<String> = obj
            .status
            .iter()
            .flat_map(|s| &s.conditions)
            .map(|c| format!("{}={} {} ({})", c.type_, c.status, c.reason, c.message))
            .collect();
        let job = nomad.read_job(&Scope::default(), &name).await.ok();
        let summary = nomad.job_summary(&Scope::default(), &name).await.ok();
        out.push_str(&format!(
            "\n  {name}: version in status {:?}; {}\n    job: status {:?}, version {:?}, stable {:?}; summary {}",
            obj.status.as_ref().and_then(|s| s.job_version),
            conditions.join("; "),
            job.as_ref().map(|j| j["Status"].clone()),
            job.as_ref().map(|j| j["Version"].clone()),
            job.as_ref().map(|j| j["Stable"].clone()),
            summary.map(|s| format!("{s:?}")).unwrap_or_default(),
        ));
    }
    out
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
