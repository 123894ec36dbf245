//! The operator under test: a separate, release-built `nomad-operator run` process, its
//! CPU time and memory from `/proc`, and its `/metrics`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// A running operator process; dropping it kills it.
pub struct Operator {
    child: Child,
    pid: u32,
    /// Its admin address (`/metrics`).
    pub admin: SocketAddr,
    /// Where its logs go.
    pub log: PathBuf,
    ticks_per_second: f64,
}

/// How to start the operator.
pub struct OperatorSpec<'a> {
    /// The `nomad-operator` binary.
    pub binary: &'a Path,
    /// Kubeconfig of the test bed.
    pub kubeconfig: &'a Path,
    /// Nomad (simulator) address.
    pub nomad_addr: &'a str,
    /// The one namespace it watches.
    pub namespace: &'a str,
    /// `--concurrency`.
    pub concurrency: u16,
    /// `--resync-interval` (a duration text such as `2m`).
    pub resync: &'a str,
    /// File for its stdout and stderr.
    pub log: PathBuf,
}

impl Operator {
    /// Starts the operator and waits until its `/readyz` answers 200.
    pub async fn start(spec: OperatorSpec<'_>) -> anyhow::Result<Self> {
        let admin = free_addr()?;
        let log = std::fs::File::create(&spec.log)
            .with_context(|| format!("creating {}", spec.log.display()))?;
        let err = log.try_clone()?;
        let child = Command::new(spec.binary)
            .args(["run", "--nomad-addr", spec.nomad_addr])
            .args(["--namespace", spec.namespace])
            .args(["--concurrency", &spec.concurrency.to_string()])
            .args(["--resync-interval", spec.resync])
            .args(["--log-format", "json"])
            .args(["--admin-addr", &admin.to_string()])
            .env("KUBECONFIG", spec.kubeconfig)
            // `BENCH_OPERATOR_LOG` sets the operator's RUST_LOG (default `info`).
            .env(
                "RUST_LOG",
                std::env::var("BENCH_OPERATOR_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("NOMAD_TOKEN")
            .env_remove("NOMAD_ADDR")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", spec.binary.display()))?;
        let pid = child.id().context("the operator exited at once")?;
        let mut operator = Self {
            child,
            pid,
            admin,
            log: spec.log,
            ticks_per_second: clock_ticks(),
        };
        for _ in 0..300 {
            if let Some(status) = operator.child.try_wait()? {
                bail!(
                    "the operator exited ({status}); see {}",
                    operator.log.display()
                );
            }
            if http_get(admin, "/readyz")
                .await
                .is_ok_and(|(code, _)| code == 200)
            {
                return Ok(operator);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "the operator was not ready within 30 s; see {}",
            operator.log.display()
        )
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// User + system CPU seconds used so far.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        process_cpu_seconds(self.pid, self.ticks_per_second)
    }

    /// `(VmHWM, VmRSS)` in MiB: the peak and the current resident set.
    pub fn memory_mib(&self) -> anyhow::Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| -> anyhow::Result<f64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("no {name} in /proc/PID/status"))?;
            let kib: f64 = line
                .split_whitespace()
                .nth(1)
                .context("malformed memory line")?
                .parse()?;
            Ok(kib / 1024.0)
        };
        Ok((field("VmHWM:")?, field("VmRSS:")?))
    }

    /// The operator's `/metrics`, as `series -> value` (`name{labels}` keys).
    pub async fn metrics(&self) -> anyhow::Result<BTreeMap<String, f64>> {
        let (code, body) = http_get(self.admin, "/metrics").await?;
        if code != 200 {
            bail!("/metrics answered {code}");
        }
        Ok(parse_metrics(&body))
    }

    /// Stops the operator (SIGTERM, then SIGKILL after 10 s).
    pub async fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Clock ticks per second for `/proc/PID/stat` (`getconf CLK_TCK`, else 100).
/// User + system CPU seconds process `pid` used so far (`/proc/PID/stat`), with
/// `ticks_per_second` from [`clock_ticks`].
pub fn process_cpu_seconds(pid: u32, ticks_per_second: f64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let utime: f64 = fields.get(11).context("no utime")?.parse()?;
    let stime: f64 = fields.get(12).context("no stime")?.parse()?;
    Ok((utime + stime) / ticks_per_second)
}

/// Clock ticks per second, the unit of `/proc/PID/stat` CPU times.
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A free loopback address (bound and released: a small race, fine for a benchmark).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// A minimal HTTP/1.1 GET: `(status, body)`.
async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let work = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").context("no HTTP header end")?;
        let code: u16 = head
            .split_whitespace()
            .nth(1)
            .context("no HTTP status")?
            .parse()?;
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        anyhow::Ok((code, body))
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .context("admin endpoint timed out")?
}

/// Decodes a chunked HTTP body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Parses Prometheus/OpenMetrics text into `series -> value`.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Sum of every series of metric `name` (any labels).
pub fn metric_sum(metrics: &BTreeMap<String, f64>, name: &str) -> f64 {
    metrics
        .iter()
        .filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{")))
        .map(|(_, v)| v)
        .sum()
}

/// The series of metric `name` summed by the value of its label `label` (series
/// without that label are left out).
pub fn metric_by_label(
    metrics: &BTreeMap<String, f64>,
    name: &str,
    label: &str,
) -> BTreeMap<String, f64> {
    let prefix = format!("{name}{{");
    let key = format!("{label}=\"");
    let mut out = BTreeMap::new();
    for (series, value) in metrics {
        let Some(labels) = series.strip_prefix(&prefix) else {
            continue;
        };
        let Some(value_text) = labels
            .split_once(&key)
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(v, _)| v)
        else {
            continue;
        };
        *out.entry(value_text.to_string()).or_insert(0.0) += value;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text_is_parsed_and_summed() {
        let text = "# HELP x y\nnomad_operator_status_writes_total 12\nnomad_operator_nomad_api_calls_total{endpoint=\"plan\",code=\"200\"} 3\nnomad_operator_nomad_api_calls_total{endpoint=\"read\",code=\"200\"} 4\nnomad_operator_nomad_api_calls_total{endpoint=\"plan\",code=\"500\"} 2\n# EOF\n";
        let m = parse_metrics(text);
        assert_eq!(metric_sum(&m, "nomad_operator_status_writes_total"), 12.0);
        assert_eq!(metric_sum(&m, "nomad_operator_nomad_api_calls_total"), 9.0);
        let by_endpoint = metric_by_label(&m, "nomad_operator_nomad_api_calls_total", "endpoint");
        assert_eq!(
            by_endpoint,
            BTreeMap::from([("plan".to_string(), 5.0), ("read".to_string(), 4.0)])
        );
        assert!(metric_by_label(&m, "nomad_operator_nomad_api_calls_total", "other").is_empty());
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }
}
