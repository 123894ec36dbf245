//! The operator as a process of its own (the binary cargo built), for what an in-process
//! operator cannot show: `kill -9` at a chosen point of the pipeline
//! ([`nomad_operator::hold_points`]), a frozen process (`SIGSTOP`), and two replicas
//! electing a leader.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use super::envtest::{plane, unique_suffix};
use super::operator::wait_until;

/// How to start one `nomad-operator run` process.
#[derive(Clone, Debug, Default)]
pub struct ProcessOptions {
    /// The Kubernetes namespace it watches.
    pub namespace: String,
    /// `--nomad-addr`.
    pub nomad_addr: String,
    /// `NOMAD_TOKEN`, if any.
    pub token: Option<String>,
    /// A name for its log file (and its Lease identity with leader election).
    pub name: String,
    /// [`nomad_operator::hold_points`]: the point where it holds forever.
    pub hold_at: Option<String>,
    /// With leader election on the Lease of this name in `namespace` (short timings:
    /// lease 3 s, renew deadline 2 s, retry 500 ms).
    pub lease: Option<String>,
    /// A kubeconfig other than the shared control plane's (for instance one that goes
    /// through a proxy that a test can cut).
    pub kubeconfig: Option<PathBuf>,
    /// More `run` flags.
    pub extra: Vec<String>,
}

/// One `nomad-operator run` process; killed (`SIGKILL`) when dropped.
pub struct OperatorProcess {
    child: Child,
    admin: String,
    log: PathBuf,
}

impl OperatorProcess {
    /// Starts the operator with `options` (resync 2 s, one debounce of 10 ms).
    pub fn spawn(options: &ProcessOptions) -> Self {
        let admin = format!("127.0.0.1:{}", free_port());
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "operator-{}-{}.log",
            options.name,
            unique_suffix()
        ));
        let file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_nomad-operator"));
        command
            .args(["run", "--nomad-addr", &options.nomad_addr])
            .args(["--namespace", &options.namespace])
            .args(["--resync-interval", "2s", "--debounce", "10ms"])
            // Each resync plans: the tests count plans to see resyncs pass.
            .args(["--plan-interval", "2s"])
            .args(["--admin-addr", &admin]);
        if let Some(lease) = &options.lease {
            command
                .args(["--leader-election", "--leader-election-namespace"])
                .arg(&options.namespace)
                .args(["--leader-election-name", lease])
                .args(["--leader-election-identity", &options.name])
                .args(["--lease-duration", "3s", "--lease-renew-deadline", "2s"])
                .args(["--lease-retry-period", "500ms"]);
        }
        command.args(&options.extra);
        let kubeconfig = options
            .kubeconfig
            .clone()
            .unwrap_or_else(|| plane().kubeconfig.clone());
        command
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", &options.name)
            .env("RUST_LOG", "info")
            .env_remove("NOMAD_TOKEN")
            .env_remove(nomad_operator::hold_points::HOLD_AT_ENV);
        if let Some(token) = &options.token {
            command.env("NOMAD_TOKEN", token);
        }
        if let Some(point) = &options.hold_at {
            command.env(nomad_operator::hold_points::HOLD_AT_ENV, point);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("start nomad-operator");
        Self { child, admin, log }
    }

    /// Waits until the process holds at the point it was started with.
    pub async fn wait_held(&self, point: &str) {
        let marker = format!("nomad-operator: held at {point}");
        wait_until(&format!("the operator to hold at {point}"), || async {
            self.logs().contains(&marker)
        })
        .await;
    }

    /// `kill -9`: no chance to finish a write, write a status or release a Lease.
    pub async fn kill9(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Freezes the process (`SIGSTOP`): it keeps its connections and its idea of the
    /// Lease, but does nothing until [`thaw`](Self::thaw).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen process go on (`SIGCONT`).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the process runs").to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// The answer to `GET path` on its admin address (`None` when it does not answer).
    pub async fn get(&self, path: &str) -> Option<String> {
        let connect = tokio::net::TcpStream::connect(&self.admin);
        let mut stream = tokio::time::timeout(Duration::from_secs(2), connect)
            .await
            .ok()?
            .ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
            .await
            .ok()?
            .ok()?;
        Some(answer)
    }

    /// The value of an unlabelled metric, if exposed.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self.get("/metrics").await?;
        text.lines().find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    /// The reconciles it finished so far, of every outcome (0 while it does not answer).
    pub async fn reconciles(&self) -> f64 {
        reconciles_in(&self.get("/metrics").await.unwrap_or_default())
    }

    /// What it logged so far (stderr).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The reconciles counted in a rendering of the operator's metrics, all outcomes summed.
pub fn reconciles_in(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("nomad_operator_reconciles_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// A free loopback port.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}
