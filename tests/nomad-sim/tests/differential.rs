//! The differential test: one scripted conversation with the Nomad API, run against a
//! real Nomad v1.1.2 agent and against the simulator, answers normalized (IDs, indexes,
//! times, node names) and compared field by field, status codes and headers included.
//! Differences kept on purpose are in ONE list, `diff/exceptions.rs`; any other
//! difference fails the test, and all of them are printed.
//!
//! The real agent: `NOMAD_TEST_ADDR` (and `NOMAD_TEST_TOKEN`) when set, otherwise one
//! started for this binary (see `diff/agent.rs`). Each scenario works in a Nomad
//! namespace of its own on both sides, so tests sharing an agent never collide.
//!
//! A report with every difference and both sides' normalized answers is written to
//! `$CARGO_TARGET_TMPDIR/nomad-differential/last-report.txt`.

mod diff;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use diff::agent::{agent, unique_suffix};
use diff::client::{Body, Conv, Exchange};
use diff::compare::{Difference, compare};
use diff::exceptions::EXCEPTIONS;
use diff::normalize::Normalizer;
use nomad_sim::glob_match;
use nomad_sim::{SimConfig, Simulator};

fn dump(out: &mut String, side: &str, log: &[Exchange]) {
    let _ = writeln!(out, "---- {side} ----");
    for (i, e) in log.iter().enumerate() {
        let body = match &e.body {
            Body::Empty => "<empty>".to_string(),
            Body::Json(v) => serde_json::to_string_pretty(v).unwrap_or_default(),
            Body::Text(t) => format!("{t:?}"),
        };
        let _ = writeln!(
            out,
            "[{}] {} -> {} {:?}\n{body}",
            i + 1,
            e.label,
            e.status,
            e.headers
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simulator_answers_like_the_real_agent() {
    let started = Instant::now();
    let real = agent();
    let sim = Simulator::new(SimConfig {
        acl_token: None,
        time_scale: 1.0,
        ..SimConfig::default()
    });
    let server = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve the simulator");
    let suffix = unique_suffix();
    let side = |name: &str, scenario: &str| {
        let ns = format!("diff-{scenario}-{suffix}");
        match name {
            "real" => Conv::new(&real.addr, real.token.clone(), &ns),
            _ => Conv::new(&server.url(), None, &ns),
        }
    };
    let (
        (service_real, service_sim, batch_real, batch_sim),
        (scale_real, scale_sim, placement_real, placement_sim),
    ) = tokio::join!(
        async {
            tokio::join!(
                diff::script::service(side("real", "service")),
                diff::script::service(side("sim", "service")),
                diff::script::batch_and_errors(side("real", "batch")),
                diff::script::batch_and_errors(side("sim", "batch")),
            )
        },
        async {
            tokio::join!(
                diff::script::scale(side("real", "scale")),
                diff::script::scale(side("sim", "scale")),
                diff::script::placement(side("real", "placement")),
                diff::script::placement(side("sim", "placement")),
            )
        },
    );
    server.shutdown().await;

    let mut report = String::new();
    let mut all: Vec<Difference> = Vec::new();
    for (scenario, r, s) in [
        ("service", &service_real, &service_sim),
        ("batch", &batch_real, &batch_sim),
        ("scale", &scale_real, &scale_sim),
        ("placement", &placement_real, &placement_sim),
    ] {
        let (mut nr, mut ns) = (Normalizer::default(), Normalizer::default());
        let r: Vec<Exchange> = r.log.iter().map(|e| nr.exchange(e)).collect();
        let s: Vec<Exchange> = s.log.iter().map(|e| ns.exchange(e)).collect();
        all.extend(compare(scenario, &r, &s));
        let _ = writeln!(report, "==== scenario {scenario} ====");
        dump(&mut report, "real", &r);
        dump(&mut report, "sim", &s);
    }

    let mut used = vec![0usize; EXCEPTIONS.len()];
    let mut unexpected = Vec::new();
    let mut excepted = 0;
    for d in &all {
        match EXCEPTIONS.iter().position(|(p, _)| glob_match(p, &d.key())) {
            Some(i) => {
                used[i] += 1;
                excepted += 1;
            }
            None => unexpected.push(d),
        }
    }
    let mut summary = format!(
        "differential: {} steps; {} raw differences, {} excepted, {} unexpected ({:.1}s)\n",
        service_real.log.len()
            + batch_real.log.len()
            + scale_real.log.len()
            + placement_real.log.len(),
        all.len(),
        excepted,
        unexpected.len(),
        started.elapsed().as_secs_f64()
    );
    for ((pattern, _), n) in EXCEPTIONS.iter().zip(&used) {
        let _ = writeln!(summary, "  exception {n:>3}x  {pattern}");
    }
    for d in &unexpected {
        let _ = writeln!(summary, "UNEXPECTED {d}");
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nomad-differential");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("last-report.txt");
    let mut full = summary.clone();
    full.push_str("\n==== every difference ====\n");
    for d in &all {
        let _ = writeln!(full, "{d}");
    }
    full.push_str(&report);
    let _ = std::fs::write(&path, full);
    println!("{summary}report: {}", path.display());
    assert!(
        unexpected.is_empty(),
        "{} differences between the simulator and the real agent are not in diff/exceptions.rs (report: {}):\n{summary}",
        unexpected.len(),
        path.display()
    );
}
