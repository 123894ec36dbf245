//! Leader election with two real operator processes (the binary cargo built) against one
//! apiserver: only the Lease holder reconciles and writes; when it dies, the standby takes
//! over within the lease duration.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use nomad_operator::nomad::{NomadClient, NomadConfig, Scope};
use serde_json::json;
use support::envtest::{TestNamespace, plane, unique_suffix};
use support::fixtures::service_job;
use support::operator::{Backend, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

const LEASE: &str = "nomad-operator-test";

/// One `nomad-operator run` process; killed when dropped.
struct Operator {
    child: Child,
    admin: String,
    log: PathBuf,
}

impl Operator {
    fn spawn(identity: &str, ns: &str, nomad: &str) -> Self {
        let admin = format!("127.0.0.1:{}", free_port());
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("leader-{identity}-{}.log", unique_suffix()));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_nomad-operator"))
            .args([
                "run",
                "--nomad-addr",
                nomad,
                "--namespace",
                ns,
                "--resync-interval",
                "2s",
            ])
            .args([
                "--leader-election",
                "--leader-election-namespace",
                ns,
                "--leader-election-name",
                LEASE,
            ])
            .args(["--leader-election-identity", identity])
            .args([
                "--lease-duration",
                "3s",
                "--lease-renew-deadline",
                "2s",
                "--lease-retry-period",
                "500ms",
            ])
            .args(["--admin-addr", &admin])
            .env("KUBECONFIG", &plane().kubeconfig)
            .env("POD_NAME", identity)
            .env("RUST_LOG", "info")
            .env_remove("NOMAD_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("start nomad-operator");
        Self { child, admin, log }
    }

    async fn get(&self, path: &str) -> Option<String> {
        let mut stream = tokio::net::TcpStream::connect(&self.admin).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.ok()?;
        Some(answer)
    }

    /// The value of an unlabelled metric, if exposed.
    async fn metric(&self, name: &str) -> Option<f64> {
        let text = self.get("/metrics").await?;
        text.lines().find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt(LEASE)
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
}

#[tokio::test]
async fn only_the_leader_reconciles_and_a_standby_takes_over() {
    let ns = TestNamespace::new("leader").await;
    let (sim, server) = support::fixtures::start_simulator(None).await;
    let nomad = NomadClient::new(&NomadConfig::new(server.url())).expect("nomad client");
    let leases: Api<Lease> = ns.api();
    let apply = |count: u32| {
        let job = service_job(Backend::Sim, count, "/bin/sleep", &["3600"], false);
        let body = json!({"apiVersion": "nomadoperator.dev/v1alpha1", "kind": "NomadJob", "metadata": {"name": "web"}, "spec": {"job": job}});
        let api = ns.api::<nomad_operator::crd::NomadJob>();
        async move {
            api.patch(
                "web",
                &PatchParams::apply("leader-test").force(),
                &Patch::Apply(&body),
            )
            .await
            .expect("apply")
        }
    };
    let task_count = |nomad: NomadClient| async move {
        let job = nomad.read_job(&Scope::default(), "web").await.ok()?;
        job["TaskGroups"][0]["Count"].as_u64()
    };

    // A starts first and leads; B starts once A holds the Lease, and stands by.
    let mut a = Operator::spawn("operator-a", &ns.name, &server.url());
    wait_until("operator-a to hold the Lease", || async {
        holder(&leases).await.as_deref() == Some("operator-a")
    })
    .await;
    let b = Operator::spawn("operator-b", &ns.name, &server.url());
    wait_until("operator-b to be ready (standby)", || async {
        b.get("/readyz")
            .await
            .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
    })
    .await;
    wait_until("operator-a to report leader=1", || async {
        a.metric("nomad_operator_leader").await == Some(1.0)
    })
    .await;

    apply(2).await;
    wait_until("the leader to register the job in Nomad", || async {
        task_count(nomad.clone()).await == Some(2)
    })
    .await;
    // Let B see several lease renewals and the object, then check it did nothing.
    let lease_before = leases
        .get(LEASE)
        .await
        .expect("lease")
        .metadata
        .resource_version;
    wait_until("a few lease renewals", || async {
        leases
            .get(LEASE)
            .await
            .expect("lease")
            .metadata
            .resource_version
            != lease_before
    })
    .await;
    assert_eq!(
        holder(&leases).await.as_deref(),
        Some("operator-a"),
        "A still leads; logs:\n{}",
        a.logs()
    );
    assert_eq!(
        b.metric("nomad_operator_leader").await,
        Some(0.0),
        "B is a standby"
    );
    assert_eq!(
        b.metric("nomad_operator_nomad_registers_total").await,
        Some(0.0),
        "the standby registered nothing"
    );
    assert_eq!(
        b.metric("nomad_operator_status_writes_total").await,
        Some(0.0),
        "the standby wrote no status"
    );
    let b_metrics = b.get("/metrics").await.unwrap_or_default();
    assert!(
        !b_metrics.contains("nomad_operator_nomad_api_calls_total{"),
        "the standby made no Nomad call:\n{b_metrics}"
    );
    assert!(
        !b_metrics.contains("nomad_operator_reconciles_total{"),
        "the standby reconciled nothing:\n{b_metrics}"
    );
    let a_metrics = a.get("/metrics").await.unwrap_or_default();
    assert!(
        a_metrics
            .contains("nomad_operator_nomad_api_calls_total{endpoint=\"POST /v1/job/:id/plan\""),
        "{a_metrics}"
    );
    let requests_before_kill = sim.requests().len();

    // Kill the leader without a chance to release the Lease: B must wait for it to expire.
    let transitions_before = leases
        .get(LEASE)
        .await
        .expect("lease")
        .spec
        .and_then(|s| s.lease_transitions);
    let killed = Instant::now();
    a.child.kill().await.expect("kill operator-a");
    wait_until("operator-b to take the Lease", || async {
        holder(&leases).await.as_deref() == Some("operator-b")
    })
    .await;
    let took = killed.elapsed();
    eprintln!("operator-b took over {took:?} after operator-a was killed");
    // Lease duration 3 s, plus one retry period and scheduling slack on a busy machine.
    assert!(
        took < Duration::from_secs(10),
        "take-over took {took:?}; logs:\n{}",
        b.logs()
    );
    let transitions_after = leases
        .get(LEASE)
        .await
        .expect("lease")
        .spec
        .and_then(|s| s.lease_transitions);
    assert_eq!(transitions_after, transitions_before.map(|t| t + 1));
    wait_until("operator-b to report leader=1", || async {
        b.metric("nomad_operator_leader").await == Some(1.0)
    })
    .await;
    assert!(sim.requests().len() >= requests_before_kill);

    // The new leader reconciles: a spec change reaches Nomad.
    apply(3).await;
    wait_until("the new leader to register the change", || async {
        task_count(nomad.clone()).await == Some(3)
    })
    .await;
    wait_until("operator-b to count its register", || async {
        b.metric("nomad_operator_nomad_registers_total")
            .await
            .is_some_and(|n| n >= 1.0)
    })
    .await;
    drop(b);
    drop(server);
}
