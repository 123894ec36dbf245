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

/// A real Nomad agent of this test process with ACLs enabled, and its bootstrap
/// (management) token.
pub struct AclNomad {
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// The management token.
    pub management: String,
}

static ACL_AGENT: OnceLock<Result<AclNomad, String>> = OnceLock::new();

/// The ACL-enabled agent of this test process, started on first use and stopped (with
/// its tasks) when the process exits.
pub fn acl_agent() -> &'static AclNomad {
    match ACL_AGENT.get_or_init(start_acl_agent) {
        Ok(agent) => agent,
        Err(e) => panic!("no ACL-enabled Nomad agent for the tests: {e}"),
    }
}

fn start_acl_agent() -> Result<AclNomad, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("nomad-acl")
        .join(format!("{}-{}", std::process::id(), unique_suffix()));
    let out = Command::new(script())
        .arg("start")
        .arg(&dir)
        .arg("--acl")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running nomad.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`tests/nomad/nomad.sh start {} --acl` failed ({})",
            dir.display(),
            out.status
        ));
    }
    run_after_exit(&[&script().to_string_lossy(), "stop", &dir.to_string_lossy()])?;
    let management = std::fs::read_to_string(dir.join("token"))
        .map_err(|e| format!("reading the bootstrap token: {e}"))?;
    Ok(AclNomad {
        addr: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        management: management.trim().to_string(),
    })
}

impl AclNomad {
    /// `method path` with the management token and a JSON body; panics unless Nomad
    /// answers 2xx; returns the answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let answer = http()
            .request(method.clone(), format!("{}{path}", self.addr))
            .header("X-Nomad-Token", &self.management)
            .json(&body)
            .send()
            .await
            .expect("Nomad request");
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    /// Creates namespace `name` and a policy `name` that may write in it only.
    pub async fn namespace_with_policy(&self, name: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/v1/namespace/{name}"),
            serde_json::json!({"Name": name}),
        )
        .await;
        let rules = format!("namespace \"{name}\" {{ policy = \"write\" }}");
        self.call(
            reqwest::Method::POST,
            &format!("/v1/acl/policy/{name}"),
            serde_json::json!({"Name": name, "Rules": rules}),
        )
        .await;
    }

    /// A client token with `policy`: (accessor ID, secret ID).
    pub async fn token(&self, policy: &str) -> (String, String) {
        let token = self
            .call(
                reqwest::Method::POST,
                "/v1/acl/token",
                serde_json::json!({"Name": policy, "Type": "client", "Policies": [policy]}),
            )
            .await;
        (
            token["AccessorID"].as_str().unwrap_or_default().to_string(),
            token["SecretID"].as_str().unwrap_or_default().to_string(),
        )
    }

    /// Deletes the token with accessor ID `accessor`.
    pub async fn revoke(&self, accessor: &str) {
        self.call(
            reqwest::Method::DELETE,
            &format!("/v1/acl/token/{accessor}"),
            serde_json::Value::Null,
        )
        .await;
    }
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
