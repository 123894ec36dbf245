//! Load benchmark for nomad-sim: registers N jobs, then issues reads for a
//! while with fixed concurrency over loopback and prints requests/second.
//!
//! `cargo run --release -p nomad-sim --example sim-load -- --jobs 10000 --seconds 10 --concurrency 32`
//! (in-process simulator; pass `--url http://127.0.0.1:4646` to load an external one).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use nomad_sim::{SimConfig, Simulator};
use serde_json::json;

#[derive(Parser, Debug)]
struct Args {
    /// Jobs to register before reading.
    #[arg(long, default_value_t = 10_000)]
    jobs: u64,
    /// Seconds of reads.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    concurrency: u64,
    /// Target an already running simulator instead of an in-process one.
    #[arg(long)]
    url: Option<String>,
    /// Time scale of the in-process simulator.
    #[arg(long, default_value_t = 100.0)]
    time_scale: f64,
}

fn job(i: u64) -> serde_json::Value {
    json!({"Job": {
        "ID": format!("job-{i:05}"), "Datacenters": ["dc1"], "Type": "service",
        "TaskGroups": [{"Name": "web", "Count": 1, "Tasks": [{"Name": "server", "Driver": "raw_exec",
            "Config": {"command": "/bin/sleep", "args": ["100000"]}, "Resources": {"CPU": 100, "MemoryMB": 64}}]}]
    }})
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut _server = None;
    let sim = Simulator::new(SimConfig {
        acl_token: None,
        time_scale: args.time_scale,
        ..SimConfig::default()
    });
    let base = match &args.url {
        Some(u) => u.clone(),
        None => {
            let s = sim
                .serve("127.0.0.1:0".parse().expect("addr"))
                .await
                .expect("serve");
            let u = s.url();
            _server = Some(s);
            u
        }
    };
    // See the rustls dev-dependency in Cargo.toml: reqwest may need a crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency as usize)
        .build()
        .expect("client");

    // Register.
    let t = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (http, base, next, n) = (http.clone(), base.clone(), next.clone(), args.jobs);
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
                assert_eq!(r.status().as_u16(), 200);
                let _ = r.bytes().await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let reg = t.elapsed();
    println!(
        "registered {} jobs in {:.2}s ({:.0} registers/s)",
        args.jobs,
        reg.as_secs_f64(),
        args.jobs as f64 / reg.as_secs_f64()
    );

    // Read.
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.concurrency {
        let (http, base, done, errors, n) = (
            http.clone(),
            base.clone(),
            done.clone(),
            errors.clone(),
            args.jobs.max(1),
        );
        tasks.push(tokio::spawn(async move {
            let mut k: u64 = w * 7919;
            while Instant::now() < deadline {
                k = k
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let i = (k >> 33) % n;
                let path = match (k >> 20) % 5 {
                    0 => format!("/v1/job/job-{i:05}"),
                    1 => format!("/v1/job/job-{i:05}/allocations"),
                    2 => format!("/v1/job/job-{i:05}/summary"),
                    3 => format!("/v1/job/job-{i:05}/deployment"),
                    _ => format!("/v1/jobs?prefix=job-{:04}", i / 10),
                };
                match http.get(format!("{base}{path}")).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let el = t.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "reads: {n} ok, {} errors in {el:.2}s with concurrency {} => {:.0} req/s",
        errors.load(Ordering::Relaxed),
        args.concurrency,
        n as f64 / el
    );
    if args.url.is_none() {
        let r: serde_json::Value = http
            .get(format!("{base}/_sim/stats"))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        println!("simulator stats: {r}");
    }
}
