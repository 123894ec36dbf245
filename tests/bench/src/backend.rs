//! The Nomad one size runs against: the in-process simulator (its request log, latency
//! model, allocation flips and connection counts), or a real Nomad dev agent started with
//! `tests/nomad/nomad.sh` (calls counted from the operator's own metrics, which name the
//! endpoints the same way).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use nomad_sim::{Latency, SimConfig, SimServer, Simulator};

use crate::operator::metric_by_label;
use crate::stats;

/// Where the benchmark's Nomad runs.
pub enum Backend {
    /// The simulator, serving on a loopback port.
    Sim {
        /// The simulator (flips, connection counts).
        sim: Simulator,
        /// Its HTTP server.
        server: SimServer,
        /// Its request log, drained into endpoint counts.
        log: RequestLog,
        /// The Nomad release it emulates.
        version: String,
    },
    /// A real dev agent in `dir` (state in memory, gone when it stops).
    Real {
        /// The `nomad.sh` that started it.
        script: PathBuf,
        /// Its directory (`addr`, logs).
        dir: PathBuf,
        /// Its HTTP address.
        addr: String,
    },
}

impl Backend {
    /// Starts a simulator emulating `version`, with `time_scale` and `latency`.
    pub async fn simulator(
        version: &str,
        time_scale: f64,
        latency: Latency,
    ) -> anyhow::Result<Self> {
        let sim = Simulator::new(SimConfig {
            acl_token: None,
            time_scale,
            version: version.to_string(),
        });
        sim.set_latency(latency);
        let server = sim.serve("127.0.0.1:0".parse().context("address")?).await?;
        let log = RequestLog::new(sim.clone());
        Ok(Self::Sim {
            sim,
            server,
            log,
            version: version.to_string(),
        })
    }

    /// Starts a real dev agent in `dir` with the repository's `tests/nomad/nomad.sh`
    /// (which installs it from `../shared/nomad` first if need be).
    pub async fn real_agent(repo: &Path, dir: &Path) -> anyhow::Result<Self> {
        let script = repo.join("tests/nomad/nomad.sh");
        let status = tokio::process::Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .status()
            .await
            .with_context(|| format!("running {}", script.display()))?;
        if !status.success() {
            bail!(
                "{} start {} failed ({status})",
                script.display(),
                dir.display()
            );
        }
        let addr = std::fs::read_to_string(dir.join("addr"))
            .with_context(|| format!("reading {}/addr", dir.display()))?
            .trim()
            .to_string();
        Ok(Self::Real {
            script,
            dir: dir.to_path_buf(),
            addr,
        })
    }

    /// Nomad's HTTP address.
    pub fn addr(&self) -> String {
        match self {
            Self::Sim { server, .. } => server.url(),
            Self::Real { addr, .. } => addr.clone(),
        }
    }

    /// What it is, for the report.
    pub fn describe(&self) -> String {
        match self {
            Self::Sim { version, .. } => describe(false, version),
            Self::Real { .. } => describe(true, ""),
        }
    }

    /// The simulator, when this is one.
    pub fn sim(&self) -> Option<&Simulator> {
        match self {
            Self::Sim { sim, .. } => Some(sim),
            Self::Real { .. } => None,
        }
    }

    /// Nomad calls by endpoint since the last take. The simulator logs every request
    /// it gets; a real agent does not, so its counts are the operator's
    /// `nomad_operator_nomad_api_calls_total` between `before` and `after` (requests of
    /// the operator only: the script counts its own).
    pub fn take_calls(
        &self,
        before: &BTreeMap<String, f64>,
        after: &BTreeMap<String, f64>,
    ) -> BTreeMap<String, u64> {
        match self {
            Self::Sim { log, .. } => log.take(),
            Self::Real { .. } => {
                let name = "nomad_operator_nomad_api_calls_total";
                let was = metric_by_label(before, name, "endpoint");
                metric_by_label(after, name, "endpoint")
                    .into_iter()
                    .map(|(endpoint, now)| {
                        let delta = now - was.get(&endpoint).copied().unwrap_or_default();
                        (endpoint, delta.max(0.0).round() as u64)
                    })
                    .filter(|(_, count)| *count > 0)
                    .collect()
            }
        }
    }

    /// Stops it: the simulator's server, or the agent and its tasks.
    pub async fn stop(self) {
        match self {
            Self::Sim { server, .. } => server.shutdown().await,
            Self::Real { script, dir, .. } => {
                let stopped = tokio::process::Command::new("bash")
                    .arg(&script)
                    .arg("stop")
                    .arg(&dir)
                    .status()
                    .await;
                if !stopped.is_ok_and(|s| s.success()) {
                    eprintln!("bench: stopping the agent in {} failed", dir.display());
                }
            }
        }
    }
}

/// What the operator talks to: a real agent (`real`), or the simulator emulating
/// `version`.
pub fn describe(real: bool, version: &str) -> String {
    if real {
        "real Nomad 1.1.2 dev agent (tests/nomad/nomad.sh)".to_string()
    } else {
        format!("simulator emulating Nomad {version}")
    }
}

/// The simulator's request log, drained into endpoint counts (the log keeps at most
/// 200,000 records, so it is emptied every second).
#[derive(Clone)]
pub struct RequestLog {
    sim: Simulator,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl RequestLog {
    fn new(sim: Simulator) -> Self {
        sim.clear_requests();
        let log = Self {
            sim,
            counts: Arc::default(),
        };
        tokio::spawn({
            let log = log.clone();
            async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    log.drain();
                }
            }
        });
        log
    }

    fn drain(&self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let records = self.sim.take_requests();
        stats::count_endpoints(
            &mut counts,
            records
                .iter()
                .map(|r| (r.method.as_str(), r.path.as_str(), r.query.as_str())),
        );
    }

    /// The counts since the last take.
    fn take(&self) -> BTreeMap<String, u64> {
        self.drain();
        std::mem::take(&mut *self.counts.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
