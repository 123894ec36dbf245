//! The real Nomad agent the differential test talks to: the run's shared agent when
//! `NOMAD_TEST_ADDR` is set (with `NOMAD_TEST_TOKEN` when it has ACLs), otherwise one
//! started for this test binary by `tests/nomad/nomad.sh` under `CARGO_TARGET_TMPDIR`
//! and stopped by a detached watchdog when this process exits, however it exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the real agent listens.
pub struct RealAgent {
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// Its ACL token, when it has ACLs enabled.
    pub token: Option<String>,
}

static AGENT: OnceLock<Result<RealAgent, String>> = OnceLock::new();

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../nomad/nomad.sh")
}

/// The real agent of this test binary, started on first use.
pub fn agent() -> &'static RealAgent {
    match AGENT.get_or_init(start_or_reuse) {
        Ok(a) => a,
        Err(e) => panic!("no real Nomad agent for the differential test: {e}"),
    }
}

/// A process- and run-unique suffix for namespace names.
pub fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{:x}{:x}", std::process::id(), nanos % 0xffff_ffff)
}

fn start_or_reuse() -> Result<RealAgent, String> {
    if let Some(addr) = std::env::var("NOMAD_TEST_ADDR")
        .ok()
        .filter(|a| !a.is_empty())
    {
        let token = std::env::var("NOMAD_TEST_TOKEN")
            .ok()
            .filter(|t| !t.is_empty());
        return Ok(RealAgent { addr, token });
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("nomad-differential")
        .join(unique_suffix());
    let out = Command::new(script())
        .arg("start")
        .arg(&dir)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", script().display()))?;
    // The watchdog goes up even when start failed half-way: stop is harmless then.
    watchdog(&dir)?;
    if !out.status.success() {
        return Err(format!(
            "`tests/nomad/nomad.sh start {}` failed ({})",
            dir.display(),
            out.status
        ));
    }
    let addr = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(RealAgent { addr, token: None })
}

/// Stops the agent in `dir` once this process has exited, then removes `dir`. The
/// watchdog lives in its own session, so a Ctrl-C to the test run does not kill it before
/// it has stopped the agent.
fn watchdog(dir: &Path) -> Result<(), String> {
    Command::new("setsid")
        .args([
            "bash",
            "-c",
            r#"while kill -0 "$1" 2>/dev/null; do sleep 0.5; done; "$2" stop "$3"; rm -rf "$3""#,
            "nomad-differential-watchdog",
        ])
        .arg(std::process::id().to_string())
        .arg(script())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(|_| ())
        .map_err(|e| format!("starting the agent's watchdog: {e}"))
}
