//! Leader election with two real operator processes (the binary cargo built) against one
//! apiserver and one Nomad simulator served on a port per replica, so that the request
//! log tells who sent what: only the Lease holder reconciles and writes; when it dies,
//! freezes or is cut off from the apiserver, the standby takes over, and the old leader
//! writes nothing more to Nomad, stays up as a standby and can lead again.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use kube::config::Kubeconfig;
use nomad_operator::crd::NomadJob;
use nomad_operator::nomad::{NomadClient, NomadConfig, Scope};
use nomad_sim::{Fault, RequestRecord, SimServer, Simulator};
use serde_json::{Value, json};
use support::envtest::{TestNamespace, plane, unique_suffix};
use support::fixtures::service_job;
use support::operator::{Backend, ready, wait_until};
use support::operator_process::{OperatorProcess, ProcessOptions};
use support::tcp_proxy::{self, TcpProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The Lease the replicas elect a leader on (in each test's own namespace).
const LEASE: &str = "nomad-operator-test";

/// What `leader::run` logs when a leader's term ends because it lost the Lease, once its
/// controller has stopped.
const STOOD_DOWN: &str = "lost leadership; standing by to lead again";

/// One test's world: a namespace, a simulator, and a simulator port of the test's own
/// (so the test's reads are not taken for a replica's).
struct World {
    ns: TestNamespace,
    sim: Simulator,
    /// The test's own port of the simulator.
    own: SimServer,
    nomad: NomadClient,
    leases: Api<Lease>,
}

impl World {
    async fn new(prefix: &str) -> Self {
        let ns = TestNamespace::new(prefix).await;
        let (sim, own) = support::fixtures::start_simulator(None).await;
        let nomad = NomadClient::new(&NomadConfig::new(own.url())).expect("nomad client");
        let leases = ns.api();
        Self {
            ns,
            sim,
            own,
            nomad,
            leases,
        }
    }

    /// One more port of the same simulator, for one replica.
    async fn port(&self) -> SimServer {
        self.sim
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve simulator")
    }

    /// A replica `name` with leader election, talking to Nomad on `port` and to the
    /// apiserver with `kubeconfig` (the plane's own by default).
    fn replica(
        &self,
        name: &str,
        port: &SimServer,
        kubeconfig: Option<PathBuf>,
    ) -> OperatorProcess {
        OperatorProcess::spawn(&ProcessOptions {
            namespace: self.ns.name.clone(),
            nomad_addr: port.url(),
            name: name.into(),
            lease: Some(LEASE.into()),
            kubeconfig,
            ..ProcessOptions::default()
        })
    }

    /// Starts `a` and waits until it holds the Lease; then starts `b` and waits until it
    /// is a ready standby and `a` reports itself leader.
    async fn leader_and_standby(
        &self,
        (a, a_port, a_kubeconfig): (&str, &SimServer, Option<PathBuf>),
        (b, b_port): (&str, &SimServer),
    ) -> (OperatorProcess, OperatorProcess) {
        let (a_name, b_name) = (a, b);
        let a = self.replica(a_name, a_port, a_kubeconfig);
        self.wait_holder(a_name).await;
        let b = self.replica(b_name, b_port, None);
        wait_until(&format!("{b_name} to be ready (standby)"), || async {
            is_ready(&b).await
        })
        .await;
        wait_until(&format!("{a_name} to report leader=1"), || async {
            a.metric("nomad_operator_leader").await == Some(1.0)
        })
        .await;
        (a, b)
    }

    async fn holder(&self) -> Option<String> {
        self.leases
            .get_opt(LEASE)
            .await
            .ok()
            .flatten()?
            .spec?
            .holder_identity
    }

    async fn wait_holder(&self, identity: &str) {
        wait_until(&format!("{identity} to hold the Lease"), || async {
            self.holder().await.as_deref() == Some(identity)
        })
        .await;
    }

    async fn lease_version(&self) -> Option<String> {
        self.leases
            .get(LEASE)
            .await
            .expect("lease")
            .metadata
            .resource_version
    }

    /// Waits until the Lease was written again (renewed) since the call.
    async fn wait_renewal(&self) {
        let before = self.lease_version().await;
        wait_until("a lease renewal", || async {
            self.lease_version().await != before
        })
        .await;
    }

    /// Applies the NomadJob `name` running `count` copies of the simulator's service job.
    async fn apply(&self, name: &str, count: u32) {
        let job = service_job(Backend::Sim, count, "/bin/sleep", &["3600"], false);
        let body = json!({"apiVersion": "nomadoperator.dev/v1alpha1", "kind": "NomadJob", "metadata": {"name": name}, "spec": {"job": job}});
        self.ns
            .api::<NomadJob>()
            .patch(
                name,
                &PatchParams::apply("leader-test").force(),
                &Patch::Apply(&body),
            )
            .await
            .expect("apply");
    }

    /// The count of the first task group of the Nomad job `id`, read on the test's port.
    async fn task_count(&self, id: &str) -> Option<u64> {
        let job = self.nomad.read_job(&Scope::default(), id).await.ok()?;
        job["TaskGroups"][0]["Count"].as_u64()
    }

    async fn wait_count(&self, what: &str, id: &str, count: u64) {
        wait_until(what, || async { self.task_count(id).await == Some(count) }).await;
    }

    async fn wait_ready(&self, name: &str) {
        let api = self.ns.api::<NomadJob>();
        wait_until(&format!("{name} to be Ready"), || async {
            api.get(name).await.is_ok_and(|obj| ready(&obj))
        })
        .await;
    }

    /// Waits until `port` has sent a register of the job `id` that Nomad accepted.
    async fn wait_register(&self, what: &str, port: &SimServer, id: &str) -> RequestRecord {
        let port = port.addr.port();
        let mut found = None;
        wait_until(what, || {
            found = self
                .sim
                .requests()
                .into_iter()
                .find(|r| r.server == port && is_register(r, id));
            let done = found.is_some();
            async move { done }
        })
        .await;
        found.expect("found")
    }

    /// Asserts that `old` sent no Nomad write that arrived at or after the first write
    /// `new` sent (which must exist), and returns that first write.
    fn assert_no_write_after_takeover(&self, old: &SimServer, new: &SimServer) -> RequestRecord {
        let log = self.sim.requests();
        let (old, new) = (old.addr.port(), new.addr.port());
        let first = log
            .iter()
            .find(|r| r.server == new && is_write(r))
            .cloned()
            .expect("the new leader wrote to Nomad");
        let late: Vec<&RequestRecord> = log
            .iter()
            .filter(|r| r.server == old && is_write(r) && r.at_ms >= first.at_ms)
            .collect();
        assert!(
            late.is_empty(),
            "the old leader (port {old}) wrote to Nomad after the new leader's (port {new}) first write {}:\n{}\nrequest log (writes):\n{}",
            line(&first),
            late.iter().map(|r| line(r)).collect::<Vec<_>>().join("\n"),
            log.iter()
                .filter(|r| is_write(r))
                .map(line)
                .collect::<Vec<_>>()
                .join("\n")
        );
        first
    }

    /// Nomad writes sent on `port` so far.
    fn writes_from(&self, port: &SimServer) -> usize {
        let port = port.addr.port();
        self.sim
            .requests()
            .iter()
            .filter(|r| r.server == port && is_write(r))
            .count()
    }

    /// Accepted registers of the job `id` sent on `port` so far.
    fn registers_from(&self, port: &SimServer, id: &str) -> usize {
        let port = port.addr.port();
        self.sim
            .requests()
            .iter()
            .filter(|r| r.server == port && is_register(r, id))
            .count()
    }
}

/// A Nomad write: every call but a GET, a plan and a parse (what the write gate holds).
fn is_write(r: &RequestRecord) -> bool {
    r.method != "GET" && !r.path.ends_with("/plan") && r.path != "/v1/jobs/parse"
}

/// A register of the job `id` that Nomad accepted.
fn is_register(r: &RequestRecord, id: &str) -> bool {
    matches!(r.method.as_str(), "PUT" | "POST")
        && (r.path == "/v1/jobs" || r.path == format!("/v1/job/{id}"))
        && r.status == 200
}

fn line(r: &RequestRecord) -> String {
    format!(
        "  at {} ms, port {}: {} {} -> {}",
        r.at_ms, r.server, r.method, r.path, r.status
    )
}

async fn is_ready(p: &OperatorProcess) -> bool {
    p.get("/readyz")
        .await
        .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
}

/// Waits until `p` stood down after losing the Lease (its controller stopped) and is a
/// ready standby that reports leader=0: a process that exited answers nothing.
async fn wait_standby(p: &OperatorProcess, name: &str) {
    wait_until(&format!("{name} to stand down"), || async {
        p.logs().contains(STOOD_DOWN)
    })
    .await;
    wait_until(&format!("{name} to be a ready standby"), || async {
        p.metric("nomad_operator_leader").await == Some(0.0) && is_ready(p).await
    })
    .await;
}

#[tokio::test]
async fn only_the_leader_reconciles_and_a_standby_takes_over() {
    let world = World::new("leader").await;
    let (a_port, b_port) = (world.port().await, world.port().await);
    let (mut a, mut b) = world
        .leader_and_standby(("operator-a", &a_port, None), ("operator-b", &b_port))
        .await;

    world.apply("web", 2).await;
    world
        .wait_count("the leader to register the job in Nomad", "web", 2)
        .await;
    // Let B see a lease renewal and the object, then check it did nothing.
    world.wait_renewal().await;
    assert_eq!(
        world.holder().await.as_deref(),
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

    // Kill the leader without a chance to release the Lease: B must wait for it to expire.
    let transitions_before = world
        .leases
        .get(LEASE)
        .await
        .expect("lease")
        .spec
        .and_then(|s| s.lease_transitions);
    let logged_before_kill = world.sim.requests().len();
    a.kill9().await;
    world.wait_holder("operator-b").await;
    let transitions_after = world
        .leases
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

    // The new leader reconciles: a spec change reaches Nomad, from B's port.
    world.apply("web", 3).await;
    world
        .wait_register("operator-b to register the change", &b_port, "web")
        .await;
    world
        .wait_count("the new leader's change to land", "web", 3)
        .await;
    wait_until("operator-b to count its register", || async {
        b.metric("nomad_operator_nomad_registers_total")
            .await
            .is_some_and(|n| n >= 1.0)
    })
    .await;
    // Order, not timing: the standby sent nothing to Nomad until the leader was dead.
    let log = world.sim.requests();
    let early: Vec<String> = log[..logged_before_kill]
        .iter()
        .filter(|r| r.server == b_port.addr.port())
        .map(line)
        .collect();
    assert!(
        early.is_empty(),
        "the standby called Nomad while A led:\n{}",
        early.join("\n")
    );
    b.kill9().await;
}

#[tokio::test]
async fn a_frozen_leader_writes_nothing_after_the_standby_took_over() {
    let world = World::new("leader-frozen").await;
    let (a_port, b_port) = (world.port().await, world.port().await);
    let (a, mut b) = world
        .leader_and_standby(("operator-a", &a_port, None), ("operator-b", &b_port))
        .await;
    world.apply("web", 2).await;
    world
        .wait_register("operator-a to register", &a_port, "web")
        .await;
    world.wait_ready("web").await;
    // A settles: a resync after Ready plans and writes nothing, so no write of A's is
    // in flight when it is frozen.
    let plans = |port: u16| {
        world
            .sim
            .requests()
            .iter()
            .filter(|r| r.server == port && r.path.ends_with("/plan"))
            .count()
    };
    let settled = plans(a_port.addr.port()) + 2;
    wait_until("two resync plans of operator-a after Ready", || async {
        plans(a_port.addr.port()) >= settled
    })
    .await;
    let status_writes = a
        .metric("nomad_operator_status_writes_total")
        .await
        .expect("A's status writes");
    let a_writes = world.writes_from(&a_port);

    // Freeze A for as long as it takes B to take the Lease and write (more than the
    // lease duration): A keeps its connections and its idea of the Lease.
    a.freeze();
    world.wait_holder("operator-b").await;
    world.apply("web", 3).await;
    world
        .wait_register("operator-b to register the change", &b_port, "web")
        .await;
    a.thaw();

    // A finds its grant ran out while it was stopped: it stands down, and stays up.
    wait_standby(&a, "operator-a").await;
    world.wait_renewal().await;
    assert_eq!(world.holder().await.as_deref(), Some("operator-b"));
    let first = world.assert_no_write_after_takeover(&a_port, &b_port);
    assert_eq!(
        world.writes_from(&a_port),
        a_writes,
        "operator-a wrote to Nomad after it was frozen (B's first write: {})",
        line(&first)
    );
    assert_eq!(
        a.metric("nomad_operator_status_writes_total").await,
        Some(status_writes),
        "operator-a wrote a status after the thaw; logs:\n{}",
        a.logs()
    );
    world
        .wait_count("the job to stay at B's spec", "web", 3)
        .await;
    b.kill9().await;
}

#[tokio::test]
async fn a_leader_cut_off_from_the_apiserver_stands_by_and_leads_again() {
    let world = World::new("leader-partition").await;
    let (a_port, b_port) = (world.port().await, world.port().await);
    let proxy = tcp_proxy::start(apiserver_addr()).await;
    let (mut a, mut b) = world
        .leader_and_standby(
            ("operator-a", &a_port, Some(kubeconfig_through(&proxy))),
            ("operator-b", &b_port),
        )
        .await;
    world.apply("web", 2).await;
    world
        .wait_register("operator-a to register", &a_port, "web")
        .await;
    world.wait_ready("web").await;

    // Make A want to write across the partition: a new object whose plan (A's, the
    // first one) Nomad holds for 8 s, so A's reconcile, which has read the object,
    // would register it after the plan's answer.
    let fault = Fault {
        path: "/v1/job/api/plan".into(),
        latency_ms: Some(8_000),
        times: Some(1),
        ..Fault::default()
    };
    let fault_id = world.sim.add_fault(fault);
    world.apply("api", 1).await;
    wait_until("operator-a's plan of api to be held", || async {
        fault_applied(&world.own, fault_id).await >= 1
    })
    .await;

    // Cut A off the apiserver (it still reaches Nomad), and change the spec it can no
    // longer see.
    proxy.cut().await;
    world.apply("web", 3).await;
    world.wait_holder("operator-b").await;
    world
        .wait_register("operator-b to register web", &b_port, "web")
        .await;
    world
        .wait_register("operator-b to register api", &b_port, "api")
        .await;
    wait_standby(&a, "operator-a").await;
    let first = world.assert_no_write_after_takeover(&a_port, &b_port);
    let held = world
        .sim
        .requests()
        .into_iter()
        .find(|r| r.server == a_port.addr.port() && r.path == "/v1/job/api/plan")
        .expect("A's held plan was answered");
    // Whether A's reconcile of api went on after the plan's answer, and was refused,
    // depends on timing (the 8 s are to make it likely); what is asserted does not.
    let refused = a.logs().lines().any(|l| {
        l.contains("/api.") && l.contains("reconcile failed") && l.contains("no longer the leader")
    });
    eprintln!(
        "operator-a's plan of api arrived at {} ms and was answered after {} ms; operator-b's first write arrived at {} ms; operator-a's reconcile of api was then refused as not the leader: {refused}",
        held.at_ms,
        held.at_ms + 8_000,
        first.at_ms
    );
    world.wait_count("web to be at B's spec", "web", 3).await;

    // Heal: A reaches the apiserver again, and stays a standby while B leads.
    let passed = proxy.passed();
    proxy.heal();
    wait_until("operator-a to reach the apiserver again", || async {
        proxy.passed() > passed
    })
    .await;
    world.wait_renewal().await;
    world.wait_renewal().await;
    assert_eq!(world.holder().await.as_deref(), Some("operator-b"));
    assert_eq!(a.metric("nomad_operator_leader").await, Some(0.0));
    assert!(is_ready(&a).await, "operator-a is a ready standby");
    // A change while B leads is B's alone.
    world.apply("web", 4).await;
    world.wait_count("B to apply web=4", "web", 4).await;
    world.assert_no_write_after_takeover(&a_port, &b_port);
    let a_registers = world.registers_from(&a_port, "web");

    // B dies: A takes the Lease and reconciles a further change.
    b.kill9().await;
    world.wait_holder("operator-a").await;
    wait_until("operator-a to report leader=1", || async {
        a.metric("nomad_operator_leader").await == Some(1.0)
    })
    .await;
    world.apply("web", 5).await;
    wait_until("operator-a to register web=5", || async {
        world.registers_from(&a_port, "web") > a_registers
            && world.task_count("web").await == Some(5)
    })
    .await;
    a.kill9().await;
}

/// The apiserver's address, from the plane's kubeconfig.
fn apiserver_addr() -> SocketAddr {
    server_url()
        .strip_prefix("https://")
        .expect("an https server")
        .trim_end_matches('/')
        .parse()
        .expect("a 127.0.0.1:port server")
}

fn server_url() -> String {
    let kubeconfig = Kubeconfig::read_from(&plane().kubeconfig).expect("read kubeconfig");
    kubeconfig
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .expect("a server in the kubeconfig")
}

/// A copy of the plane's kubeconfig whose server is `proxy` (the certificate is for
/// 127.0.0.1, where the proxy listens too).
fn kubeconfig_through(proxy: &TcpProxy) -> PathBuf {
    let text = std::fs::read_to_string(&plane().kubeconfig).expect("read kubeconfig");
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("kubeconfig-via-proxy-{}", unique_suffix()));
    let through = text.replace(&server_url(), &format!("https://{}", proxy.addr));
    std::fs::write(&path, through).expect("write kubeconfig");
    path
}

/// How often the simulator's fault `id` has fired (its control API, `GET /_sim/faults`).
async fn fault_applied(server: &SimServer, id: u64) -> u64 {
    let Ok(mut stream) = tokio::net::TcpStream::connect(server.addr).await else {
        return 0;
    };
    let request = "GET /_sim/faults HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    let body = answer
        .find('[')
        .zip(answer.rfind(']'))
        .map_or("[]", |(start, end)| &answer[start..=end]);
    let faults: Vec<Value> = serde_json::from_str(body).unwrap_or_default();
    faults
        .iter()
        .find(|f| f["ID"].as_u64() == Some(id))
        .and_then(|f| f["Applied"].as_u64())
        .unwrap_or(0)
}
