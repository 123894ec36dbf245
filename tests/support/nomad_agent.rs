//! The real Nomad v1.1.2 agent of a test run (see `tests/nomad/nomad.sh`), and a Nomad
//! namespace per test on it.
//!
//! Like the control plane, the agent is shared by every test of a run: when
//! `NOMAD_TEST_ADDR` is set (the README's test command, `tests/run.sh`, starts one agent
//! and sets it), the tests use it; otherwise the first test of a process starts one from
//! `../shared/nomad` and a watchdog stops it, with its whole process group, when that
//! process exits. Each test works in a Nomad namespace of its own, whose jobs a watchdog
//! purges when the test process exits, so no task of a test outlives it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::envtest::unique_suffix;
use super::watchdog::run_after_exit;

/// The address of the run's real Nomad agent.
pub struct RealNomad {
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// The directory of an agent this process started (`None` for the run's agent).
    pub dir: Option<PathBuf>,
}

static AGENT: OnceLock<Result<RealNomad, String>> = OnceLock::new();

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nomad/nomad.sh")
}

/// The real Nomad agent of this test run, started on first use.
pub fn agent() -> &'static RealNomad {
    match AGENT.get_or_init(start_or_reuse) {
        Ok(agent) => agent,
        Err(e) => panic!("no real Nomad agent for the tests: {e}"),
    }
}

fn start_or_reuse() -> Result<RealNomad, String> {
    if let Some(addr) = std::env::var("NOMAD_TEST_ADDR")
        .ok()
        .filter(|a| !a.is_empty())
    {
        return Ok(RealNomad { addr, dir: None });
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("nomad")
        .join(format!("{}-{}", std::process::id(), unique_suffix()));
    let out = Command::new(script())
        .arg("start")
        .arg(&dir)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running nomad.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`tests/nomad/nomad.sh start {}` failed ({})",
            dir.display(),
            out.status
        ));
    }
    run_after_exit(&[&script().to_string_lossy(), "stop", &dir.to_string_lossy()])?;
    let addr = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(RealNomad {
        addr,
        dir: Some(dir),
    })
}

/// A plain HTTP client for talking to Nomad directly (with the process's one rustls
/// crypto provider installed, which the workspace's reqwest build needs even for http).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Creates the Nomad namespace `name` on the real agent, and arranges for every job in it
/// to be purged when this test process exits.
pub async fn create_namespace(name: &str) {
    let addr = &agent().addr;
    let answer = http()
        .post(format!("{addr}/v1/namespace/{name}"))
        .json(&serde_json::json!({"Name": name, "Description": "nomad-operator test"}))
        .send()
        .await
        .expect("create Nomad namespace");
    assert!(
        answer.status().is_success(),
        "create Nomad namespace {name}: {}",
        answer.status()
    );
    run_after_exit(&[&script().to_string_lossy(), "purge", addr, name]).expect("purge watchdog");
}
