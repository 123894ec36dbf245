//! What the simulator's big list answers cost: registers N jobs (one service allocation
//! and one deployment each, the benchmark's job), waits until every deployment is
//! successful, then asks each list endpoint the operator watches
//! (`/v1/jobs`, `/v1/allocations`, `/v1/deployments`, all namespaces) R times in a row
//! and prints, per answer, the wall time and the CPU time this process used (simulator
//! and HTTP client together; the client only reads the bytes). Prints figures and
//! asserts no timing.
//!
//! `cargo run --release -p nomad-sim --example list-encoding -- --jobs 10000 --rounds 20`
//!
//! "first" is each endpoint's first answer after the jobs converged (the convergence is
//! watched through each job's own `/v1/job/:id/deployment`, so no list was asked before);
//! "steady" is the mean of the next R answers, nothing having changed in between.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use nomad_sim::{SimConfig, Simulator};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
struct Args {
    /// Jobs to register.
    #[arg(long, default_value_t = 10_000)]
    jobs: u64,
    /// Answers measured per endpoint (after the first).
    #[arg(long, default_value_t = 20)]
    rounds: u32,
    /// Time scale of the simulator (the jobs' update stanza is divided by it).
    #[arg(long, default_value_t = 100.0)]
    time_scale: f64,
    /// Concurrent registers.
    #[arg(long, default_value_t = 32)]
    concurrency: u64,
}

fn job(i: u64) -> Value {
    json!({"Job": {
        "ID": format!("job-{i:05}"), "Datacenters": ["dc1"], "Type": "service",
        "TaskGroups": [{
            "Name": "web", "Count": 1,
            "Update": {"MaxParallel": 1, "MinHealthyTime": 1_000_000_000u64,
                       "HealthyDeadline": 20_000_000_000u64, "ProgressDeadline": 60_000_000_000u64,
                       "AutoRevert": false},
            "ReschedulePolicy": {"Attempts": 0, "Interval": 0, "Unlimited": false},
            "Tasks": [{"Name": "server", "Driver": "raw_exec",
                "Config": {"command": "/bin/sleep", "args": ["infinity"]},
                "Resources": {"CPU": 100, "MemoryMB": 64}}]
        }]
    }})
}

/// CPU time this process has used, every thread: the sum of `/proc/self/task/*/schedstat`
/// (nanoseconds on CPU), falling back to `/proc/self/stat` (clock ticks of 10 ms).
fn cpu_ns() -> u64 {
    let mut total = 0u64;
    let mut any = false;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for task in dir.flatten() {
            let text = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            if let Some(ns) = text
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
            {
                total += ns;
                any = true;
            }
        }
    }
    if any {
        return total;
    }
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) * 10_000_000
}

async fn register_all(http: &reqwest::Client, base: &str, args: &Args) {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (http, base, next, n) = (http.clone(), base.to_string(), next.clone(), args.jobs);
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let r = http
                    .post(format!("{base}/v1/jobs"))
                    .body(job(i).to_string())
                    .send()
                    .await
                    .expect("register");
                assert_eq!(r.status().as_u16(), 200, "register job-{i:05}");
                let _ = r.bytes().await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("register task");
    }
}

/// Waits until every job's deployment is successful, asking each job's own
/// `/v1/job/:id/deployment` (not the lists, which are measured after).
async fn wait_converged(http: &reqwest::Client, base: &str, n: u64) {
    let started = Instant::now();
    let mut pending: Vec<u64> = (0..n).collect();
    while !pending.is_empty() {
        let mut left = Vec::new();
        for i in pending {
            let d: Value = http
                .get(format!("{base}/v1/job/job-{i:05}/deployment"))
                .send()
                .await
                .expect("deployment")
                .json()
                .await
                .expect("deployment JSON");
            if d["Status"] != "successful" {
                left.push(i);
            }
        }
        pending = left;
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{} deployments not successful after 600 s",
            pending.len()
        );
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// One answer: (wall seconds, CPU seconds, body bytes).
async fn one(http: &reqwest::Client, url: &str) -> (f64, f64, usize) {
    let cpu = cpu_ns();
    let t = Instant::now();
    let r = http.get(url).send().await.expect("list");
    assert_eq!(r.status().as_u16(), 200, "{url}");
    let bytes = r.bytes().await.expect("list body").len();
    let wall = t.elapsed().as_secs_f64();
    (wall, (cpu_ns().saturating_sub(cpu)) as f64 / 1e9, bytes)
}

fn ms(s: f64) -> String {
    format!("{:.2} ms", s * 1000.0)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let sim = Simulator::new(SimConfig {
        time_scale: args.time_scale,
        ..SimConfig::default()
    });
    let server = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let base = server.url();
    // See the rustls dev-dependency in Cargo.toml: reqwest may need a crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().build().expect("client");

    let t = Instant::now();
    register_all(&http, &base, &args).await;
    wait_converged(&http, &base, args.jobs).await;
    println!(
        "{} jobs registered and converged in {:.1} s",
        args.jobs,
        t.elapsed().as_secs_f64()
    );

    let endpoints = ["/v1/jobs", "/v1/allocations", "/v1/deployments"];
    let mut firsts = Vec::new();
    for path in endpoints {
        firsts.push(one(&http, &format!("{base}{path}?namespace=*")).await);
    }
    let mut steady = Vec::new();
    for path in endpoints {
        let url = format!("{base}{path}?namespace=*");
        let (mut wall, mut cpu, mut bytes) = (0.0, 0.0, 0);
        for _ in 0..args.rounds {
            let (w, c, b) = one(&http, &url).await;
            wall += w;
            cpu += c;
            bytes = b;
        }
        let rounds = f64::from(args.rounds.max(1));
        steady.push((wall / rounds, cpu / rounds, bytes));
    }
    println!(
        "\n{:<18} {:>10} | {:>12} {:>12} | {:>12} {:>12}",
        "endpoint", "bytes", "first wall", "first CPU", "steady wall", "steady CPU"
    );
    for (i, path) in endpoints.iter().enumerate() {
        println!(
            "{:<18} {:>10} | {:>12} {:>12} | {:>12} {:>12}",
            path,
            steady[i].2,
            ms(firsts[i].0),
            ms(firsts[i].1),
            ms(steady[i].0),
            ms(steady[i].1)
        );
    }
    server.shutdown().await;
}
