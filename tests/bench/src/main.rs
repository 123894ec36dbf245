//! `nomad-bench`: scale, latency and cost at rest of nomad-operator, side by side with
//! the sequential plan + check-and-set register loop a GitOps script would run.
//!
//! Run it with `tests/bench/run.sh` (builds the operator and this binary in release mode,
//! then runs this with the arguments given). For each size N it starts a fresh Nomad
//! simulator (in-process) and a fresh operator (a separate release-built process) on the
//! benchmark's own envtest control plane, creates N `NomadJob`s, and measures:
//!
//! 1. converge time: first create until every object is Ready (deployment successful);
//! 2. calls per job: Nomad requests by endpoint (simulator log), Kubernetes writes per
//!    object (watch: resourceVersion changes; and the operator's status-write counter);
//! 3. status lag (at `--lag-at`): allocation client status flipped in the simulator until
//!    the owning object's status shows it;
//! 4. at rest (`--rest-seconds`, at least one resync): Nomad writes, status writes, open
//!    connections to Nomad, operator CPU seconds;
//! 5. the operator's peak RSS;
//! 6. the script baseline against the same simulator, and the ratio.
//!
//! `--real-nomad` runs every size against a real Nomad dev agent (`tests/nomad/nomad.sh`,
//! a fresh one per size) instead: the same figures, except those only the simulator can
//! give (status lag needs its allocation flips; open connections its socket count), and
//! with the Nomad calls counted from the operator's own metrics.
//!
//! `--read-latency` and `--write-latency` give the simulator a latency model (see
//! `nomad_sim::Latency`): each Nomad read or write waits that long before it is
//! answered, standing for the network and the Raft commit of a real cluster. The
//! operator and the script run against the same simulator, so both pay it: the script
//! once per call in sequence, the operator in its concurrent reconciles.

mod backend;
mod operator;
mod plane;
mod script;
mod stats;
mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use nomad_operator::crd::NomadJob;
use nomad_sim::{Latency, Simulator};
use serde::Serialize;
use serde_json::{Value, json};

use crate::backend::Backend;
use crate::operator::{Operator, OperatorSpec, metric_sum};
use crate::stats::{Summary, secs};
use crate::watch::Tracker;

/// Benchmark nomad-operator against the Nomad simulator on a local control plane.
#[derive(Parser, Debug, Clone)]
#[command(name = "nomad-bench")]
struct Args {
    /// Numbers of NomadJobs to benchmark, one fresh operator and simulator each.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    sizes: Vec<usize>,
    /// Length of the at-rest window, seconds (should exceed --resync-interval).
    #[arg(long, default_value_t = 300)]
    rest_seconds: u64,
    /// Pause between converge and the at-rest window, seconds.
    #[arg(long, default_value_t = 10)]
    settle_seconds: u64,
    /// Where the JSON results go.
    #[arg(long, default_value = "bench-results/latest.json")]
    out: PathBuf,
    /// The operator's --concurrency.
    #[arg(long, default_value_t = 32)]
    concurrency: u16,
    /// The operator's --resync-interval.
    #[arg(long, default_value = "2m")]
    resync_interval: String,
    /// The simulator's time scale (job update times are divided by it).
    #[arg(long, default_value_t = 10.0)]
    time_scale: f64,
    /// Size at which status lag is measured.
    #[arg(long, default_value_t = 1000)]
    lag_at: usize,
    /// Status-lag samples (each one allocation flip).
    #[arg(long, default_value_t = 300)]
    lag_samples: usize,
    /// Object creates in flight.
    #[arg(long, default_value_t = 64)]
    create_concurrency: usize,
    /// Longest wait for one size to converge, seconds.
    #[arg(long, default_value_t = 1800)]
    converge_timeout: u64,
    /// Skip the script baseline.
    #[arg(long)]
    no_script: bool,
    /// Latency model of the simulator: each Nomad read (GET, plan, parse) waits this
    /// long before it is answered: a round trip to a Nomad server in the same
    /// datacenter. Real time, not divided by --time-scale. The operator and the script
    /// baseline both run with it; `0ms` turns it off.
    #[arg(long, default_value = "2ms", value_parser = nomad_sim::parse_duration)]
    read_latency: Duration,
    /// Latency model of the simulator: each Nomad write (register, revert, deregister,
    /// ...) waits this long before it is answered: the round trip and the Raft commit of
    /// a three-server cluster. Real time, not divided by --time-scale. The operator and
    /// the script baseline both run with it; `0ms` turns it off.
    #[arg(long, default_value = "10ms", value_parser = nomad_sim::parse_duration)]
    write_latency: Duration,
    /// The Nomad release the simulator emulates. From 1.2.4 on, Nomad lists the
    /// deployments of every namespace at once and the operator watches them in one list;
    /// before (the real agent here is 1.1.2), it watches them one namespace at a time.
    #[arg(long, default_value = "1.2.4")]
    nomad_version: String,
    /// Run against a real Nomad 1.1.2 dev agent (`tests/nomad/nomad.sh`, a fresh one per
    /// size) instead of the simulator. The latency model, the time scale and the Nomad
    /// version do not apply; status lag and connection counts are not measured.
    #[arg(long)]
    real_nomad: bool,
    /// The operator binary (default: `nomad-operator` beside this binary).
    #[arg(long)]
    operator_bin: Option<PathBuf>,
    /// Working directory for the control plane and logs (default: target/nomad-bench).
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(async {
        tokio::select! {
            result = bench(args) => result,
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        }
    })
}

/// Everything the benchmark writes to JSON.
#[derive(Serialize)]
struct Report {
    machine: Machine,
    settings: Settings,
    results: Vec<SizeResult>,
    targets: Vec<Target>,
    table: String,
}

#[derive(Serialize, Clone)]
struct Settings {
    concurrency: u16,
    resync_interval: String,
    time_scale: f64,
    rest_seconds: u64,
    settle_seconds: u64,
    lag_at: usize,
    lag_samples: usize,
    create_concurrency: usize,
    /// The simulator's latency model: delay of each Nomad read, milliseconds.
    read_latency_ms: f64,
    /// The simulator's latency model: delay of each Nomad write, milliseconds.
    write_latency_ms: f64,
    /// The Nomad release the simulator emulates.
    nomad_version: String,
    /// What the operator talked to: the simulator, or a real agent.
    nomad: String,
    job: Value,
    kube_writes_source: &'static str,
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let repo = repo_root();
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(|| repo.join("target/nomad-bench"));
    let binary = match &args.operator_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no binary directory")?
            .join("nomad-operator"),
    };
    if !binary.exists() {
        bail!(
            "{} not found: build it with `cargo build --release --bin nomad-operator` (tests/bench/run.sh does)",
            binary.display()
        );
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let run_dir = work.join(format!("run-{stamp}"));
    std::fs::create_dir_all(&run_dir)?;
    eprintln!("bench: starting the control plane in {}", run_dir.display());
    let plane = plane::ControlPlane::start(&repo, &run_dir.join("envtest"))?;
    let client = plane.client().await?;
    plane::install_crds(&client, &repo).await?;

    let machine = Machine::probe(&repo);
    let settings = Settings {
        concurrency: args.concurrency,
        resync_interval: args.resync_interval.clone(),
        time_scale: args.time_scale,
        rest_seconds: args.rest_seconds,
        settle_seconds: args.settle_seconds,
        lag_at: args.lag_at,
        lag_samples: args.lag_samples,
        create_concurrency: args.create_concurrency,
        // A real agent answers at its own pace: the model does not apply.
        read_latency_ms: latency_ms(args.read_latency, args.real_nomad),
        write_latency_ms: latency_ms(args.write_latency, args.real_nomad),
        nomad_version: args.nomad_version.clone(),
        nomad: backend::describe(args.real_nomad, &args.nomad_version),
        job: job_spec(),
        kube_writes_source: "watch on NomadJobs: resourceVersion changes after create (finalizer + status); cross-checked with the operator's nomad_operator_status_writes counter; Events counted separately",
    };
    let mut results = Vec::new();
    for &n in &args.sizes {
        eprintln!("bench: N = {n}");
        let backend = if args.real_nomad {
            Backend::real_agent(&repo, &run_dir.join(format!("nomad-{n}"))).await?
        } else {
            Backend::simulator(
                &args.nomad_version,
                args.time_scale,
                Latency {
                    read: args.read_latency,
                    write: args.write_latency,
                },
            )
            .await?
        };
        eprintln!(
            "bench: Nomad is a {} at {}",
            backend.describe(),
            backend.addr()
        );
        let result = bench_size(&args, &plane, &client, &binary, &run_dir, &backend, n).await;
        backend.stop().await;
        let result = result?;
        eprintln!("{}", serde_json::to_string(&result)?);
        results.push(result);
        // Write what we have after each size: a long run that dies still leaves figures.
        write_report(&args, &machine, &settings, &results)?;
    }
    let report = write_report(&args, &machine, &settings, &results)?;
    println!("\n{}", report.table);
    if args.real_nomad {
        println!("Nomad: {}", settings.nomad);
    } else {
        println!(
            "Nomad: {}; latency model (operator and script alike): reads {:?}, writes {:?}",
            settings.nomad, args.read_latency, args.write_latency
        );
    }
    println!("Targets:");
    for t in &report.targets {
        println!(
            "  [{}] {}: {}",
            if t.met { "met" } else { "NOT MET" },
            t.target,
            t.measured
        );
    }
    println!(
        "\nmachine: {} ({} CPUs, {:.1} GiB), kernel {}, commit {}",
        machine.cpu_model, machine.cpus, machine.memory_gib, machine.kernel, machine.commit
    );
    println!("JSON: {}", args.out.display());
    drop(plane);
    Ok(())
}

/// A latency of the model in milliseconds; 0 against a real agent.
fn latency_ms(latency: Duration, real_nomad: bool) -> f64 {
    if real_nomad {
        0.0
    } else {
        latency.as_secs_f64() * 1000.0
    }
}

fn write_report(
    args: &Args,
    machine: &Machine,
    settings: &Settings,
    results: &[SizeResult],
) -> anyhow::Result<Report> {
    let report = Report {
        machine: machine.clone(),
        settings: settings.clone(),
        results: results.to_vec(),
        targets: targets(settings, results),
        table: render_table(results),
    };
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", args.out.display()))?;
    Ok(report)
}

/// The job every object (and the script) deploys: one service allocation whose update
/// strategy the simulator's time scale makes short, and no rescheduling (so that a
/// status-lag flip to `failed` changes nothing else). Its resources (CPU, memory and
/// ephemeral disk) are small enough for the real dev agent's one node to run the
/// operator's and the script's jobs of N = 100 side by side.
fn job_spec() -> Value {
    json!({
        "Datacenters": ["dc1"],
        "Type": "service",
        "TaskGroups": [{
            "Name": "web",
            "Count": 1,
            "Update": {
                "MaxParallel": 1,
                "MinHealthyTime": 1_000_000_000u64,
                "HealthyDeadline": 20_000_000_000u64,
                "ProgressDeadline": 60_000_000_000u64,
                "AutoRevert": false
            },
            "ReschedulePolicy": {"Attempts": 0, "Interval": 0, "Unlimited": false},
            // Nomad's default is 300 MB per allocation: the dev agent's disk held 128 of
            // the 200 allocations, and the script's last 72 stayed blocked on disk. The
            // logs' share (files times size) must stay below it.
            "EphemeralDisk": {"SizeMB": 10},
            "Tasks": [{
                "Name": "server",
                "Driver": "raw_exec",
                "Config": {"command": "/bin/sleep", "args": ["infinity"]},
                "Resources": {"CPU": 20, "MemoryMB": 32},
                "LogConfig": {"MaxFiles": 1, "MaxFileSizeMB": 5}
            }]
        }]
    })
}

/// Figures of one size.
#[derive(Serialize, Clone, Default)]
struct SizeResult {
    n: usize,
    concurrency: u16,
    operator_log: String,
    converged: bool,
    ready: usize,
    /// First create until the last object became Ready.
    converge_seconds: Option<f64>,
    /// First create until the last create returned.
    create_seconds: f64,
    /// CPU seconds each process used from the first create until converged: where
    /// the converge time goes on a shared machine.
    converge_cpu_seconds: BTreeMap<String, f64>,
    /// The operator's CPU seconds per 1,000 objects converged (its share of
    /// `converge_cpu_seconds`, scaled): the cost per object.
    operator_cpu_seconds_per_1000: Option<f64>,
    nomad_calls: Calls,
    kube_writes: KubeWrites,
    status_lag: Option<Lag>,
    rest: Option<Rest>,
    memory: Memory,
    script: Option<script::ScriptResult>,
    /// Script converge time / operator converge time.
    speedup_vs_script: Option<f64>,
}

#[derive(Serialize, Clone, Default)]
struct Calls {
    total: u64,
    per_job: f64,
    writes_per_job: f64,
    by_endpoint: BTreeMap<String, EndpointCalls>,
    /// The operator's own nomad_operator_nomad_api_calls_total (cross-check).
    operator_metric_total: f64,
}

#[derive(Serialize, Clone, Default)]
struct EndpointCalls {
    count: u64,
    per_job: f64,
}

#[derive(Serialize, Clone, Default)]
struct KubeWrites {
    /// resourceVersion changes seen by the watch after creation, all objects.
    watch_total: u64,
    watch_per_object: f64,
    /// nomad_operator_status_writes_total.
    status_writes_metric: f64,
    status_writes_per_object: f64,
    /// Event objects in the namespace (each one at least one more write).
    events: usize,
    events_per_object: f64,
}

#[derive(Serialize, Clone, Default)]
struct Lag {
    flips: Summary,
    timeouts: usize,
    parallel_spacing_ms: u64,
}

#[derive(Serialize, Clone, Default)]
struct Rest {
    seconds: f64,
    nomad_requests: u64,
    nomad_writes: u64,
    nomad_by_endpoint: BTreeMap<String, u64>,
    status_writes_watch: u64,
    status_writes_metric: f64,
    reconciles: f64,
    /// Connections open to the simulator (none measured against a real agent).
    open_connections: Option<Spread>,
    /// Blocking queries parked in the simulator: the operator's watches on Nomad.
    watch_connections: Option<Spread>,
    cpu_seconds: f64,
}

/// Smallest, median and largest of a count sampled every second.
#[derive(Serialize, Clone, Copy, Default)]
struct Spread {
    min: usize,
    median: usize,
    max: usize,
}

impl Spread {
    fn of(mut samples: Vec<usize>) -> Option<Self> {
        samples.sort_unstable();
        Some(Self {
            min: *samples.first()?,
            median: *samples.get(samples.len() / 2)?,
            max: *samples.last()?,
        })
    }
}

#[derive(Serialize, Clone, Default)]
struct Memory {
    peak_rss_mib: f64,
    rss_after_converge_mib: f64,
    rss_end_mib: f64,
}

/// CPU seconds of a set of processes since a start.
struct CpuClock {
    ticks_per_second: f64,
    start: Vec<(&'static str, u32, f64)>,
}

impl CpuClock {
    fn start(processes: Vec<(&'static str, u32)>) -> Self {
        let ticks_per_second = operator::clock_ticks();
        let start = processes
            .into_iter()
            .filter_map(|(name, pid)| {
                let at = operator::process_cpu_seconds(pid, ticks_per_second).ok()?;
                Some((name, pid, at))
            })
            .collect();
        Self {
            ticks_per_second,
            start,
        }
    }

    /// CPU seconds per process since [`CpuClock::start`].
    fn elapsed(&self) -> BTreeMap<String, f64> {
        self.start
            .iter()
            .filter_map(|(name, pid, at)| {
                let now = operator::process_cpu_seconds(*pid, self.ticks_per_second).ok()?;
                Some((name.to_string(), now - at))
            })
            .collect()
    }
}

async fn bench_size(
    args: &Args,
    plane: &plane::ControlPlane,
    client: &Client,
    binary: &Path,
    run_dir: &Path,
    backend: &Backend,
    n: usize,
) -> anyhow::Result<SizeResult> {
    let namespace = format!("bench-{n}");
    plane::create_namespace(client, &namespace).await?;
    let nomad_addr = backend.addr();
    let tracker = Tracker::start(client.clone(), &namespace);
    let operator_log = run_dir.join(format!("operator-{n}.log"));
    let operator = Operator::start(OperatorSpec {
        binary,
        kubeconfig: &plane.kubeconfig,
        nomad_addr: &nomad_addr,
        namespace: &namespace,
        concurrency: args.concurrency,
        resync: &args.resync_interval,
        log: operator_log.clone(),
    })
    .await?;
    eprintln!(
        "bench: operator pid {} (log {})",
        operator.pid(),
        operator_log.display()
    );
    let metrics_before = operator.metrics().await.unwrap_or_default();
    // Start-up (the watchers' first lists) is not the converge's.
    let _ = backend.take_calls(&metrics_before, &metrics_before);

    // 1. Converge.
    let api: Api<NomadJob> = Api::namespaced(client.clone(), &namespace);
    let mut processes = plane.processes();
    processes.push(("operator", operator.pid()));
    processes.push(("bench + simulator", std::process::id()));
    let cpu = CpuClock::start(processes);
    let started = Instant::now();
    let creates = futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let obj: NomadJob = serde_json::from_value(json!({
                    "apiVersion": "nomadoperator.dev/v1alpha1",
                    "kind": "NomadJob",
                    "metadata": {"name": format!("job-{i:05}")},
                    "spec": {"deletionPolicy": "Purge", "job": job_spec()},
                }))?;
                let mut attempt = 0;
                loop {
                    match api.create(&PostParams::default(), &obj).await {
                        Ok(_) => return anyhow::Ok(()),
                        Err(e) if attempt < 5 => {
                            attempt += 1;
                            eprintln!("bench: create job-{i:05} failed, retrying: {e}");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        })
        .buffer_unordered(args.create_concurrency)
        .collect::<Vec<_>>()
        .await;
    let create_seconds = started.elapsed().as_secs_f64();
    if let Some(Err(e)) = creates.into_iter().find(Result::is_err) {
        return Err(e.context("creating NomadJobs"));
    }
    eprintln!("bench: {n} objects created in {create_seconds:.1} s");
    let deadline = started + Duration::from_secs(args.converge_timeout);
    let mut ticks = tracker.ticks();
    let mut last_report = Instant::now();
    loop {
        let ready = tracker.state().ready;
        if ready >= n || Instant::now() > deadline {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "bench: {ready}/{n} ready after {:.0} s",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), ticks.changed()).await;
    }
    let (ready, last_ready_at, watch_writes) = {
        let s = tracker.state();
        (s.ready, s.last_ready_at, s.writes)
    };
    let converge_cpu_seconds = cpu.elapsed();
    let converged = ready >= n;
    let converge_seconds = last_ready_at
        .filter(|_| converged)
        .map(|t| t.duration_since(started).as_secs_f64());
    eprintln!(
        "bench: converged={converged} ready={ready}/{n} in {}",
        secs(converge_seconds)
    );
    // Let trailing reconciles of the converge finish before counting its calls.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metrics = operator.metrics().await.unwrap_or_default();
    let converge_calls = backend.take_calls(&metrics_before, &metrics);
    let events = Api::<Event>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default())
        .await
        .map(|l| l.items.len())
        .unwrap_or_default();
    let nf = n.max(1) as f64;
    let total: u64 = converge_calls.values().sum();
    let writes: u64 = converge_calls
        .iter()
        .filter(|(k, _)| stats::is_write(k))
        .map(|(_, v)| v)
        .sum();
    let operator_cpu_seconds_per_1000 = converge_cpu_seconds
        .get("operator")
        .filter(|_| converged)
        .map(|cpu| cpu / nf * 1000.0);
    let status_writes_metric = metric_sum(&metrics, "nomad_operator_status_writes_total")
        - metric_sum(&metrics_before, "nomad_operator_status_writes_total");
    let mut result = SizeResult {
        n,
        concurrency: args.concurrency,
        operator_log: operator_log.display().to_string(),
        converged,
        ready,
        converge_seconds,
        create_seconds,
        converge_cpu_seconds,
        operator_cpu_seconds_per_1000,
        nomad_calls: Calls {
            total,
            per_job: total as f64 / nf,
            writes_per_job: writes as f64 / nf,
            by_endpoint: converge_calls
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        EndpointCalls {
                            count: *v,
                            per_job: *v as f64 / nf,
                        },
                    )
                })
                .collect(),
            operator_metric_total: metric_sum(&metrics, "nomad_operator_nomad_api_calls_total")
                - metric_sum(&metrics_before, "nomad_operator_nomad_api_calls_total"),
        },
        kube_writes: KubeWrites {
            watch_total: watch_writes,
            watch_per_object: watch_writes as f64 / nf,
            status_writes_metric,
            status_writes_per_object: status_writes_metric / nf,
            events,
            events_per_object: events as f64 / nf,
        },
        ..Default::default()
    };
    result.memory.rss_after_converge_mib = operator.memory_mib().map(|m| m.1).unwrap_or_default();

    if converged {
        // 4. At rest.
        tokio::time::sleep(Duration::from_secs(args.settle_seconds)).await;
        result.rest = Some(at_rest(args, &operator, &tracker, backend).await?);
        // 3. Status lag (it flips allocations: the simulator's alone).
        if let Some(sim) = backend.sim().filter(|_| n == args.lag_at) {
            result.status_lag = Some(status_lag(args, &tracker, sim).await);
        }
    }
    let (peak, rss) = operator.memory_mib().unwrap_or_default();
    result.memory.peak_rss_mib = peak;
    result.memory.rss_end_mib = rss;
    operator.stop().await;
    drop(tracker);

    // 6. The script, against the same simulator, with the operator gone.
    if !args.no_script {
        let timeout = Duration::from_secs(args.converge_timeout);
        let outcome = script::run(&nomad_addr, n, script_job, timeout).await;
        match outcome {
            Ok(script) => {
                eprintln!(
                    "bench: script converged in {:.1} s (loop {:.1} s)",
                    script.converge_seconds, script.register_loop_seconds
                );
                result.speedup_vs_script = converge_seconds.map(|c| script.converge_seconds / c);
                result.script = Some(script);
            }
            Err(e) => eprintln!("bench: script baseline failed: {e:#}"),
        }
    }
    Ok(result)
}

/// The script's job `id`: the same job as the objects'.
fn script_job(id: &str) -> Value {
    let mut job = job_spec();
    job["ID"] = json!(id);
    job["Name"] = json!(id);
    job
}

async fn at_rest(
    args: &Args,
    operator: &Operator,
    tracker: &Tracker,
    backend: &Backend,
) -> anyhow::Result<Rest> {
    eprintln!("bench: at rest for {} s", args.rest_seconds);
    let before = operator.metrics().await.unwrap_or_default();
    let _ = backend.take_calls(&before, &before);
    let writes_before = tracker.state().writes;
    let cpu_before = operator.cpu_seconds()?;
    let started = Instant::now();
    let mut connections = Vec::new();
    let mut watches = Vec::new();
    while started.elapsed() < Duration::from_secs(args.rest_seconds) {
        if let Some(sim) = backend.sim() {
            connections.push(sim.open_connections());
            watches.push(sim.waiting_queries());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = operator.cpu_seconds()? - cpu_before;
    let after = operator.metrics().await.unwrap_or_default();
    let calls = backend.take_calls(&before, &after);
    let delta = |name: &str| metric_sum(&after, name) - metric_sum(&before, name);
    Ok(Rest {
        seconds,
        nomad_requests: calls.values().sum(),
        nomad_writes: calls
            .iter()
            .filter(|(k, _)| stats::is_write(k))
            .map(|(_, v)| v)
            .sum(),
        nomad_by_endpoint: calls,
        status_writes_watch: tracker.state().writes - writes_before,
        status_writes_metric: delta("nomad_operator_status_writes_total"),
        reconciles: delta("nomad_operator_reconciles_total"),
        open_connections: Spread::of(connections),
        watch_connections: Spread::of(watches),
        cpu_seconds,
    })
}

/// Flips allocations (`running` -> `failed` -> `running`, one object per two samples,
/// one flip started every `spacing`) and measures until the owning object's status
/// shows the new client status. With no reschedule policy attempts, a failed
/// allocation is not replaced, so nothing else changes.
async fn status_lag(args: &Args, tracker: &Tracker, sim: &Simulator) -> Lag {
    const SPACING: Duration = Duration::from_millis(50);
    let pairs = args.lag_samples.div_ceil(2);
    let mut targets: Vec<(String, String)> = {
        let state = tracker.state();
        let mut names: Vec<&String> = state.objects.keys().collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|name| {
                let seen = state.objects.get(name)?;
                let alloc = seen
                    .allocations
                    .iter()
                    .find(|(_, status)| *status == "running")?;
                Some((name.clone(), alloc.0.clone()))
            })
            .take(pairs)
            .collect()
    };
    eprintln!(
        "bench: status lag, {} flips over {} objects",
        targets.len() * 2,
        targets.len()
    );
    let mut samples = Vec::new();
    let mut timeouts = 0;
    let mut tasks = Vec::new();
    for (name, alloc) in targets.drain(..) {
        let ticks = tracker.ticks();
        let sim = sim.clone();
        let probe = probe(tracker);
        tasks.push(async move {
            let mut out = Vec::new();
            for to in ["failed", "running"] {
                out.push(flip(&sim, &probe, ticks.clone(), &name, &alloc, to).await);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            out
        });
    }
    // Start one object's flips every SPACING; they overlap a little.
    let mut results = Vec::new();
    for task in tasks {
        results.push(tokio::spawn(task));
        tokio::time::sleep(SPACING).await;
    }
    for handle in results {
        match handle.await {
            Ok(flips) => {
                for flip in flips {
                    match flip {
                        Some(s) => samples.push(s),
                        None => timeouts += 1,
                    }
                }
            }
            Err(_) => timeouts += 2,
        }
    }
    Lag {
        flips: Summary::of(&samples),
        timeouts,
        parallel_spacing_ms: SPACING.as_millis() as u64,
    }
}

/// Something that answers "what client status does object `name` show for `alloc`?".
type Probe = Arc<dyn Fn(&str, &str) -> Option<String> + Send + Sync>;

fn probe(tracker: &Tracker) -> Probe {
    let state = tracker.shared();
    Arc::new(move |name: &str, alloc: &str| {
        let s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.objects.get(name)?.allocations.get(alloc).cloned()
    })
}

/// One flip: sets the client status, returns the seconds until the object shows it
/// (`None` after 30 s).
async fn flip(
    sim: &Simulator,
    probe: &Probe,
    mut ticks: tokio::sync::watch::Receiver<u64>,
    name: &str,
    alloc: &str,
    to: &str,
) -> Option<f64> {
    ticks.mark_unchanged();
    let at = Instant::now();
    if let Err(e) = sim.set_alloc_client_status(alloc, to) {
        eprintln!("bench: flipping {alloc} to {to}: {e}");
        return None;
    }
    let deadline = at + Duration::from_secs(30);
    loop {
        if probe(name, alloc).as_deref() == Some(to) {
            return Some(at.elapsed().as_secs_f64());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let _ = tokio::time::timeout(left, ticks.changed()).await;
    }
}

/// One target of the issue, checked against the results.
#[derive(Serialize, Clone)]
struct Target {
    target: String,
    measured: String,
    met: bool,
}

/// The "done when" of the performance work, checked against the results: at the
/// largest N, converge within 1.5x the create time, at most 3 Nomad calls per job, at
/// most 2 Kubernetes writes and 1 Event per object, peak RSS at most 100 MiB and, with
/// a latency model, at least 5x faster than the script; status lag p99 at most 0.5 s;
/// at rest, no writes over at least two resyncs and watches independent of N.
fn targets(settings: &Settings, results: &[SizeResult]) -> Vec<Target> {
    let mut out = Vec::new();
    let largest = results.iter().max_by_key(|r| r.n);
    if let Some(r) = largest {
        let n = r.n;
        out.push(Target {
            target: format!("{n} objects converge within 1.5x the time their creates take"),
            measured: match r.converge_seconds {
                Some(c) => format!(
                    "{} against {} ({:.2}x)",
                    secs(Some(c)),
                    secs(Some(r.create_seconds)),
                    c / r.create_seconds.max(f64::EPSILON)
                ),
                None => format!("not converged ({}/{n})", r.ready),
            },
            met: r
                .converge_seconds
                .is_some_and(|c| c <= 1.5 * r.create_seconds),
        });
        out.push(Target {
            target: format!("<= 3 Nomad calls per job at {n}"),
            measured: format!(
                "{:.2} ({:.2} without the watches' blocking queries)",
                r.nomad_calls.per_job,
                r.nomad_calls.per_job - blocking_per_job(r)
            ),
            met: r.converged && r.nomad_calls.per_job <= 3.0,
        });
        out.push(Target {
            target: format!("<= 2 Kubernetes writes and <= 1 Event per object at {n}"),
            measured: format!(
                "{:.2} writes, {:.2} Events",
                r.kube_writes.watch_per_object, r.kube_writes.events_per_object
            ),
            met: r.converged
                && r.kube_writes.watch_per_object <= 2.0
                && r.kube_writes.events_per_object <= 1.0,
        });
        out.push(Target {
            target: format!("peak RSS <= 100 MiB at {n}"),
            measured: format!("{:.0} MiB", r.memory.peak_rss_mib),
            met: r.memory.peak_rss_mib > 0.0 && r.memory.peak_rss_mib <= 100.0,
        });
        let latency = settings.read_latency_ms > 0.0 || settings.write_latency_ms > 0.0;
        out.push(Target {
            target: format!(
                "{n} objects converge >= 5x faster than the script, under a latency model"
            ),
            measured: format!(
                "{}{}",
                r.speedup_vs_script
                    .map(|s| format!("{s:.2}x"))
                    .unwrap_or_else(|| "-".into()),
                if latency {
                    format!(
                        " (reads {} ms, writes {} ms)",
                        settings.read_latency_ms, settings.write_latency_ms
                    )
                } else if settings.nomad.starts_with("real") {
                    " (a real agent on loopback, no latency model)".into()
                } else {
                    " (no latency model: --read-latency/--write-latency)".into()
                }
            ),
            met: latency && r.speedup_vs_script.is_some_and(|s| s >= 5.0),
        });
    }
    for r in results {
        if let Some(lag) = &r.status_lag {
            out.push(Target {
                target: format!(
                    "status lag p99 <= 0.5 s at {} ({} samples)",
                    r.n, lag.flips.samples
                ),
                measured: format!(
                    "p50 {} p99 {} max {}, {} timeouts",
                    secs(lag.flips.p50),
                    secs(lag.flips.p99),
                    secs(lag.flips.max),
                    lag.timeouts
                ),
                met: lag.flips.samples >= 200
                    && lag.timeouts == 0
                    && lag.flips.p99.is_some_and(|p| p <= 0.5),
            });
        }
    }
    let rests: Vec<(usize, &Rest)> = results
        .iter()
        .filter_map(|r| r.rest.as_ref().map(|rest| (r.n, rest)))
        .collect();
    if !rests.is_empty() {
        let resync = nomad_sim::parse_duration(&settings.resync_interval)
            .map(|d| d.as_secs_f64())
            .unwrap_or(f64::INFINITY);
        let resyncs = settings.rest_seconds as f64 / resync;
        out.push(Target {
            target: "at rest over two resyncs: 0 Nomad writes, 0 Kubernetes writes".into(),
            measured: format!(
                "{}; {:.1} resyncs in the window",
                rests
                    .iter()
                    .map(|(n, r)| {
                        format!(
                            "N={n}: {} Nomad writes, {} Kubernetes writes",
                            r.nomad_writes, r.status_writes_watch
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                resyncs
            ),
            met: resyncs >= 2.0
                && rests
                    .iter()
                    .all(|(_, r)| r.nomad_writes == 0 && r.status_writes_watch == 0),
        });
        // The watches are the blocking queries parked in the simulator; open connections
        // add the reconcilers' idle keep-alive pool (bounded by --concurrency, not N).
        let watch_counts: Vec<Option<usize>> = rests
            .iter()
            .map(|(_, r)| r.watch_connections.map(|w| w.max))
            .collect();
        if watch_counts.iter().all(Option::is_some) {
            out.push(Target {
                target: "at rest: Nomad watch connections independent of N".into(),
                measured: rests
                    .iter()
                    .map(|(n, r)| format!("N={n}: {}", connections_text(r)))
                    .collect::<Vec<_>>()
                    .join("; "),
                met: watch_counts.windows(2).all(|w| w[0] == w[1]),
            });
        }
    }
    out
}

/// Blocking queries (the watches) per job during the converge.
fn blocking_per_job(r: &SizeResult) -> f64 {
    r.nomad_calls
        .by_endpoint
        .iter()
        .filter(|(endpoint, _)| endpoint.ends_with("(blocking)"))
        .map(|(_, c)| c.per_job)
        .sum()
}

/// `watches / open connections` at rest, `-` where not measured (a real agent).
fn connections_text(r: &Rest) -> String {
    match (r.watch_connections, r.open_connections) {
        (Some(w), Some(c)) => format!(
            "{}..{} watches, {}..{} connections",
            w.min, w.max, c.min, c.max
        ),
        _ => "-".into(),
    }
}

fn render_table(results: &[SizeResult]) -> String {
    let header = [
        "N",
        "create",
        "converge",
        "script",
        "speedup",
        "Nomad calls/job",
        "Nomad writes/job",
        "K8s writes/obj",
        "Events/obj",
        "status lag p50 / p99",
        "rest: Nomad writes",
        "rest: status writes",
        "rest: Nomad watches / conns",
        "rest: CPU s",
        "CPU s / 1000 obj",
        "peak RSS",
    ];
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let rest = r.rest.as_ref();
            vec![
                r.n.to_string(),
                secs(Some(r.create_seconds)),
                if r.converged {
                    secs(r.converge_seconds)
                } else {
                    format!("not converged ({}/{})", r.ready, r.n)
                },
                secs(r.script.as_ref().map(|s| s.converge_seconds)),
                r.speedup_vs_script
                    .map(|s| format!("{s:.2}x"))
                    .unwrap_or_else(|| "-".into()),
                format!("{:.1}", r.nomad_calls.per_job),
                format!("{:.2}", r.nomad_calls.writes_per_job),
                format!("{:.1}", r.kube_writes.watch_per_object),
                format!("{:.1}", r.kube_writes.events_per_object),
                r.status_lag
                    .as_ref()
                    .map(|l| format!("{} / {}", secs(l.flips.p50), secs(l.flips.p99)))
                    .unwrap_or_else(|| "-".into()),
                rest.map(|r| r.nomad_writes.to_string())
                    .unwrap_or_else(|| "-".into()),
                rest.map(|r| r.status_writes_watch.to_string())
                    .unwrap_or_else(|| "-".into()),
                rest.map(|r| match (r.watch_connections, r.open_connections) {
                    (Some(w), Some(c)) => format!("{} / {}..{}", w.max, c.min, c.max),
                    _ => "-".into(),
                })
                .unwrap_or_else(|| "-".into()),
                rest.map(|r| format!("{:.1}", r.cpu_seconds))
                    .unwrap_or_else(|| "-".into()),
                r.operator_cpu_seconds_per_1000
                    .map(|c| format!("{c:.1}"))
                    .unwrap_or_else(|| "-".into()),
                format!("{:.0} MiB", r.memory.peak_rss_mib),
            ]
        })
        .collect();
    let mut text = stats::table(&header, &rows);
    // Calls by endpoint, per job, for the initial converge.
    text.push('\n');
    text.push_str(&per_size_table(
        "Nomad endpoint (converge), calls per job",
        results,
        |r| r.nomad_calls.by_endpoint.keys().cloned().collect(),
        |r, endpoint| {
            r.nomad_calls.by_endpoint.get(endpoint).map(|c| {
                if c.per_job >= 0.1 {
                    format!("{:.2}", c.per_job)
                } else {
                    format!("{} total", c.count)
                }
            })
        },
    ));
    // Where the converge's CPU went (the processes share the machine's cores).
    text.push('\n');
    text.push_str(&per_size_table(
        "CPU seconds during converge",
        results,
        |r| r.converge_cpu_seconds.keys().cloned().collect(),
        |r, process| {
            r.converge_cpu_seconds
                .get(process)
                .map(|s| format!("{s:.1}"))
        },
    ));
    text
}

/// A table with a row per key (the union of `keys` over the sizes, sorted) and a column
/// per size; `cell` gives a size's value for a key, `-` where it has none.
fn per_size_table(
    title: &str,
    results: &[SizeResult],
    keys: impl Fn(&SizeResult) -> Vec<String>,
    cell: impl Fn(&SizeResult, &str) -> Option<String>,
) -> String {
    let mut all: Vec<String> = results.iter().flat_map(&keys).collect();
    all.sort();
    all.dedup();
    let mut header = vec![title.to_string()];
    header.extend(results.iter().map(|r| format!("N={}", r.n)));
    let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|key| {
            let mut row = vec![key.clone()];
            row.extend(
                results
                    .iter()
                    .map(|r| cell(r, key).unwrap_or_else(|| "-".into())),
            );
            row
        })
        .collect();
    stats::table(&header_refs, &rows)
}

/// The machine the benchmark ran on.
#[derive(Serialize, Clone)]
struct Machine {
    cpus: usize,
    cpu_model: String,
    memory_gib: f64,
    kernel: String,
    commit: String,
    date: String,
}

impl Machine {
    fn probe(repo: &Path) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let run = |cmd: &str, args: &[&str]| -> String {
            std::process::Command::new(cmd)
                .args(args)
                .current_dir(repo)
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        };
        let dirty = !run("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
        Self {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model: cpuinfo
                .lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default(),
            memory_gib: meminfo
                .lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
                .map(|kib| kib / 1024.0 / 1024.0)
                .unwrap_or_default(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            commit: format!(
                "{}{}",
                run("git", &["rev-parse", "--short", "HEAD"]),
                if dirty {
                    " (with uncommitted changes)"
                } else {
                    ""
                }
            ),
            date: run("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_size_tables_have_a_row_per_key_of_any_size_and_dashes_for_gaps() {
        let small = SizeResult {
            n: 100,
            converge_cpu_seconds: BTreeMap::from([("operator".to_string(), 0.5)]),
            ..Default::default()
        };
        let large = SizeResult {
            n: 1000,
            converge_cpu_seconds: BTreeMap::from([
                ("operator".to_string(), 6.0),
                ("etcd".to_string(), 2.5),
            ]),
            ..Default::default()
        };
        let table = per_size_table(
            "CPU",
            &[small, large],
            |r| r.converge_cpu_seconds.keys().cloned().collect(),
            |r, k| r.converge_cpu_seconds.get(k).map(|s| format!("{s:.1}")),
        );
        let cells: Vec<Vec<&str>> = table
            .lines()
            .map(|l| {
                l.split('|')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .collect();
        assert_eq!(cells[0], ["CPU", "N=100", "N=1000"]);
        assert_eq!(cells[2], ["etcd", "-", "2.5"]);
        assert_eq!(cells[3], ["operator", "0.5", "6.0"]);
        assert_eq!(cells.len(), 4);
    }
}
