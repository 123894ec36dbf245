//! The real operator (`nomad-operator run`'s code path), started in-process for one test
//! in the test's own Kubernetes namespace, against one of two Nomad backends: the Nomad
//! simulator (for everything, fault injection included) or the run's real Nomad agent
//! (through a recording proxy, in a Nomad namespace of the test's own).

use std::time::Duration;

use clap::Parser;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use nomad_operator::controller::run::{self, RunArgs};
use nomad_operator::crd::NomadJob;
use nomad_operator::metrics::Metrics;
use nomad_operator::nomad::{NomadClient, NomadConfig, Scope, Token};
use nomad_sim::{SimServer, Simulator};
use serde_json::{Value, json};

use super::envtest::TestNamespace;
use super::fixtures;
use super::nomad_agent;
use super::nomad_proxy::RecordingProxy;

/// Which Nomad a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The in-process simulator (time runs 100 times faster; faults can be injected).
    Sim,
    /// The run's real Nomad v1.1.2 agent (wall-clock time; no fault injection).
    Real,
}

/// What a test's Nomad is: the simulator with its server, or the real agent behind a
/// recording proxy.
enum Nomad {
    Sim { sim: Simulator, server: SimServer },
    Real { proxy: RecordingProxy },
}

/// The ACL token the simulator demands in these tests; it must never leak.
pub const TOKEN: &str = "s3cr3t-token-never-printed";

/// How long a test waits for the operator to reach a state before failing.
pub const PATIENCE: Duration = Duration::from_secs(60);

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: RunArgs,
}

/// One test's operator, Nomad backend and namespaces.
pub struct Harness {
    /// The test's Kubernetes namespace and admin client.
    pub ns: TestNamespace,
    /// Which Nomad this test runs against.
    pub backend: Backend,
    /// The Nomad namespace the test's jobs go to: the operator's default, and the scope
    /// of [`Harness::nomad`]. On the real agent it is the test's own.
    pub nomad_namespace: String,
    /// A Nomad client for out-of-band changes, in the test's Nomad namespace, through the
    /// same request log as the operator's calls.
    pub nomad: NomadClient,
    backing: Nomad,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    operator: Option<tokio::task::JoinHandle<()>>,
    metrics: Option<std::sync::Arc<nomad_operator::controller::context::Context>>,
}

impl Harness {
    /// Starts the simulator (time scale 100) and the operator watching only this test's
    /// namespace with a 2 s resync; `extra` adds `run` flags.
    pub async fn start(prefix: &str, extra: &[&str]) -> Self {
        Self::start_on(Backend::Sim, prefix, extra).await
    }

    /// Like [`Harness::start`], against `backend`.
    pub async fn start_on(backend: Backend, prefix: &str, extra: &[&str]) -> Self {
        let ns = TestNamespace::new(prefix).await;
        Self::start_with(backend, nomad_sim::DEFAULT_NOMAD_VERSION, ns, extra).await
    }

    /// Like [`Harness::start`], with the simulator emulating Nomad release `version`.
    pub async fn start_on_release(version: &str, prefix: &str, extra: &[&str]) -> Self {
        let ns = TestNamespace::new(prefix).await;
        Self::start_with(Backend::Sim, version, ns, extra).await
    }

    /// The operator against the Nomad at `upstream` (through a recording proxy), its
    /// default Nomad namespace `nomad_namespace`; `extra` adds `run` flags.
    pub async fn start_behind_proxy(
        prefix: &str,
        upstream: &str,
        nomad_namespace: &str,
        extra: &[&str],
    ) -> Self {
        nomad_operator::telemetry::init(nomad_operator::telemetry::LogFormat::Text);
        let ns = TestNamespace::new(prefix).await;
        let proxy = RecordingProxy::start(upstream).await;
        let backing = Nomad::Real { proxy };
        let url = backing.url();
        let mut harness = Self {
            nomad: nomad_client(&url, nomad_namespace),
            ns,
            backend: Backend::Real,
            nomad_namespace: nomad_namespace.to_string(),
            backing,
            shutdown: None,
            operator: None,
            metrics: None,
        };
        harness.start_operator(extra);
        harness
    }

    /// Like [`Harness::start_on`], on a control plane of the test's own (for a test that
    /// changes what all tests share, such as the CRD).
    pub async fn start_on_private_plane(backend: Backend, prefix: &str, extra: &[&str]) -> Self {
        let plane = super::envtest::private_plane();
        let ns = TestNamespace::on(super::envtest::client_of(&plane).await, prefix).await;
        Self::start_with(backend, nomad_sim::DEFAULT_NOMAD_VERSION, ns, extra).await
    }

    async fn start_with(
        backend: Backend,
        version: &str,
        ns: TestNamespace,
        extra: &[&str],
    ) -> Self {
        nomad_operator::telemetry::init(nomad_operator::telemetry::LogFormat::Text);
        let (backing, nomad_namespace) = match backend {
            Backend::Sim => {
                let (sim, server) = super::fixtures::start_simulator_of(Some(TOKEN), version).await;
                (Nomad::Sim { sim, server }, "default".to_string())
            }
            Backend::Real => {
                // The Kubernetes namespace's name is unique in the run and a valid Nomad
                // namespace name.
                nomad_agent::create_namespace(&ns.name).await;
                let proxy = RecordingProxy::start(&nomad_agent::agent().addr).await;
                (Nomad::Real { proxy }, ns.name.clone())
            }
        };
        let url = backing.url();
        let mut harness = Self {
            nomad: nomad_client(&url, &nomad_namespace),
            ns,
            backend,
            nomad_namespace,
            backing,
            shutdown: None,
            operator: None,
            metrics: None,
        };
        harness.start_operator(extra);
        harness
    }

    /// Stops the operator (gracefully, as on SIGTERM) and starts a new one with the same
    /// settings and `extra` flags: nothing it kept in memory survives.
    pub async fn restart_operator(&mut self, extra: &[&str]) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.operator.take() {
            let _ = task.await;
        }
        self.start_operator(extra);
    }

    /// The simulator, on [`Backend::Sim`] (fault injection, allocation control).
    pub fn sim(&self) -> Option<&Simulator> {
        match &self.backing {
            Nomad::Sim { sim, .. } => Some(sim),
            Nomad::Real { .. } => None,
        }
    }

    fn start_operator(&mut self, extra: &[&str]) {
        let url = self.backing.url();
        let mut argv = vec![
            "run",
            "--nomad-addr",
            &url,
            "--nomad-token",
            TOKEN,
            "--nomad-namespace",
            &self.nomad_namespace,
            "--namespace",
            &self.ns.name,
            "--error-backoff",
            "200ms",
            "--max-backoff",
            "2s",
        ];
        if !extra.contains(&"--resync-interval") {
            argv.extend_from_slice(&["--resync-interval", "2s"]);
        }
        // Each resync plans, as the tests count plans to see resyncs pass (the default
        // plans once an hour; `resyncs_read_and_do_not_plan` shows that one).
        if !extra.contains(&"--plan-interval") {
            argv.extend_from_slice(&["--plan-interval", "2s"]);
        }
        argv.extend_from_slice(extra);
        let args = Cli::try_parse_from(argv).expect("run flags").args;
        let ctx = run::context(self.ns.client.clone(), &args, Metrics::default())
            .expect("operator context");
        self.metrics = Some(ctx.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        self.shutdown = Some(tx);
        self.operator = Some(tokio::spawn(async move {
            run::run_controller(ctx, &args, async move {
                let _ = rx.await;
            })
            .await;
        }));
    }

    /// The running operator's mirror of what the watches of its default connection saw.
    pub fn mirror(&self) -> Option<std::sync::Arc<nomad_operator::controller::mirror::Mirror>> {
        self.metrics.as_ref().map(|c| c.mirror.clone())
    }

    /// The reconciles the operator finished so far (all outcomes).
    pub fn reconciles(&self) -> f64 {
        let text = self
            .metrics
            .as_ref()
            .map(|c| c.metrics.render())
            .unwrap_or_default();
        super::operator_process::reconciles_in(&text)
    }

    /// Waits until `n` more reconciles finished (at rest, resyncs: they make no Nomad
    /// call, so they are counted here).
    pub async fn wait_reconciles(&self, n: usize) {
        let target = self.reconciles() + n as f64;
        wait_until(&format!("{n} more reconciles"), || async {
            self.reconciles() >= target
        })
        .await;
    }

    /// The address the operator reaches Nomad at (the simulator, or the recording proxy
    /// in front of the real agent).
    pub fn nomad_url(&self) -> String {
        self.backing.url()
    }

    /// `kubectl apply -f path` into the test's namespace.
    pub fn kubectl_apply(&self, path: &str) {
        let out = super::envtest::kubectl(&["apply", "-n", &self.ns.name, "-f", path]);
        assert!(
            out.status.success(),
            "kubectl apply {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The `NomadJob` API of this namespace.
    pub fn api(&self) -> Api<NomadJob> {
        self.ns.api()
    }

    /// Creates or updates `name` with `spec` (server-side apply, as `kubectl apply
    /// --server-side` does).
    pub async fn apply(&self, name: &str, spec: Value) -> NomadJob {
        self.apply_with(name, spec, json!({})).await
    }

    /// Like [`Harness::apply`], with extra metadata (e.g. annotations).
    pub async fn apply_with(&self, name: &str, spec: Value, metadata: Value) -> NomadJob {
        let mut meta = json!({"name": name});
        if let (Some(m), Some(extra)) = (meta.as_object_mut(), metadata.as_object()) {
            m.extend(extra.clone());
        }
        let body = json!({"apiVersion": "nomadoperator.dev/v1alpha1", "kind": "NomadJob", "metadata": meta, "spec": spec});
        self.api()
            .patch(
                name,
                &PatchParams::apply("test-user").force(),
                &Patch::Apply(&body),
            )
            .await
            .expect("apply NomadJob")
    }

    /// Applies `name` with `spec` and waits until it is `Ready` for its generation.
    pub async fn apply_ready(&self, name: &str, spec: Value) -> NomadJob {
        self.apply(name, spec).await;
        self.wait_for(name, "Ready", ready).await
    }

    /// Deletes `name` and waits until it is gone (the finalizer ran).
    pub async fn delete_and_wait(&self, name: &str) {
        self.api()
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
        wait_until(&format!("{name} to be deleted"), || async {
            self.api().get_opt(name).await.expect("get").is_none()
        })
        .await;
    }

    /// Waits until `name` satisfies `check`, and returns it.
    pub async fn wait_for(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&NomadJob) -> bool,
    ) -> NomadJob {
        wait_until_ok(&format!("{name}: {what}"), || async {
            match self.api().get_opt(name).await.expect("get NomadJob") {
                Some(obj) if check(&obj) => Ok(obj),
                Some(obj) => Err(format!("; last status: {:#?}", obj.status)),
                None => Err("; the object does not exist".into()),
            }
        })
        .await
    }

    /// Waits until the condition `type_` of `name` has `status` (and `reason`, if given).
    pub async fn wait_condition(
        &self,
        name: &str,
        type_: &str,
        status: &str,
        reason: Option<&str>,
    ) -> NomadJob {
        let what = format!("{type_}={status} ({})", reason.unwrap_or("any reason"));
        self.wait_for(name, &what, |o| {
            condition(o, type_)
                .is_some_and(|c| c.status == status && reason.is_none_or(|r| c.reason == r))
        })
        .await
    }

    /// Every request Nomad received in this test so far (method, path), oldest first:
    /// the simulator's request log, or the recording proxy's in front of the real agent.
    pub fn requests(&self) -> Vec<(String, String)> {
        match &self.backing {
            Nomad::Sim { sim, .. } => sim
                .requests()
                .into_iter()
                .map(|r| (r.method, r.path))
                .collect(),
            Nomad::Real { proxy } => proxy
                .requests()
                .into_iter()
                .map(|r| (r.method, r.path))
                .collect(),
        }
    }

    /// Requests Nomad received with `method` and exactly `path`.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|(m, p)| m == method && p == path)
            .count()
    }

    /// Requests Nomad received whose path starts with `prefix`.
    pub fn count_prefix(&self, prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|(_, p)| p.starts_with(prefix))
            .count()
    }

    /// Waits until the operator made at least `n` more requests matching `method path`
    /// than `before`: a way to let several reconciles (resyncs) pass without sleeping.
    pub async fn wait_requests(&self, method: &str, path: &str, at_least: usize) {
        wait_until(&format!("{at_least} x {method} {path}"), || async {
            self.count(method, path) >= at_least
        })
        .await;
    }

    /// Events about `name` (reason, note).
    pub async fn events(&self, name: &str) -> Vec<(String, String)> {
        let api: Api<Event> = Api::namespaced(self.ns.client.clone(), &self.ns.name);
        let list = api.list(&ListParams::default()).await.expect("list events");
        list.items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    /// Waits for an Event about `name` with `reason`, and returns its note.
    pub async fn wait_event(&self, name: &str, reason: &str) -> String {
        self.wait_event_with(name, reason, "").await
    }

    /// Waits for an Event about `name` with `reason` and a note containing `text`, and
    /// returns its note.
    pub async fn wait_event_with(&self, name: &str, reason: &str, text: &str) -> String {
        let what = format!("a {reason} Event with {text:?} for {name}");
        wait_until_ok(&what, || async {
            let events = self.events(name).await;
            events
                .iter()
                .find(|(r, note)| r == reason && note.contains(text))
                .map(|(_, note)| note.clone())
                .ok_or_else(|| format!("; events: {events:?}"))
        })
        .await
    }

    /// The Nomad job as Nomad stores it (`None` when absent).
    pub async fn nomad_job(&self, id: &str) -> Option<Value> {
        self.nomad.read_job(&Scope::default(), id).await.ok()
    }

    /// [`fixtures::service_job`] for this test's backend.
    pub fn service_job(
        &self,
        count: u32,
        command: &str,
        args: &[&str],
        auto_revert: bool,
    ) -> Value {
        fixtures::service_job(self.backend, count, command, args, auto_revert)
    }

    /// Changes allocation `id` in Nomad behind the operator's back, and returns the client
    /// status it will have: the simulator marks it `lost`; on the real agent it is stopped
    /// (`POST /v1/allocation/:id/stop`) and ends `complete`.
    pub async fn disturb_allocation(&self, id: &str) -> &'static str {
        match &self.backing {
            Nomad::Sim { sim, .. } => {
                sim.set_alloc_client_status(id, "lost")
                    .expect("change allocation");
                "lost"
            }
            Nomad::Real { proxy } => {
                let answer = nomad_agent::http()
                    .post(format!(
                        "{}/v1/allocation/{id}/stop?namespace={}",
                        proxy.url(),
                        self.nomad_namespace
                    ))
                    .send()
                    .await
                    .expect("stop allocation");
                assert!(
                    answer.status().is_success(),
                    "stop allocation: {}",
                    answer.status()
                );
                "complete"
            }
        }
    }

    /// The job's versions, newest first.
    pub async fn nomad_versions(&self, id: &str) -> Vec<Value> {
        self.nomad
            .job_versions(&Scope::default(), id)
            .await
            .unwrap_or_default()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.operator.take() {
            task.abort();
        }
    }
}

impl Nomad {
    /// The URL the operator and the test's client talk to.
    fn url(&self) -> String {
        match self {
            Nomad::Sim { server, .. } => server.url(),
            Nomad::Real { proxy } => proxy.url(),
        }
    }
}

/// A Nomad client for `url` in `namespace`, with the test token.
pub fn nomad_client(url: &str, namespace: &str) -> NomadClient {
    let mut config = NomadConfig::new(url);
    config.token = Some(Token::new(TOKEN));
    config.namespace = Some(namespace.to_string());
    NomadClient::new(&config).expect("nomad client")
}

/// True when `obj` is `Ready=True` for its current generation.
pub fn ready(obj: &NomadJob) -> bool {
    condition(obj, "Ready").is_some_and(|c| c.status == "True")
        && obj.status.as_ref().and_then(|s| s.observed_generation) == obj.metadata.generation
}

/// The message of `obj`'s `Ready` condition (empty without one).
pub fn ready_message(obj: &NomadJob) -> String {
    condition(obj, "Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// The condition `type_` of `obj`, if set.
pub fn condition<'a>(
    obj: &'a NomadJob,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    obj.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// Polls `check` every 100 ms until it holds, or fails the test after [`PATIENCE`].
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_until_ok(what, || {
        let holds = check();
        async move { holds.await.then_some(()).ok_or_else(String::new) }
    })
    .await;
}

/// Polls `check` every 100 ms until it returns `Ok`, and returns its value; after
/// [`PATIENCE`] fails the test with `what` followed by the last `Err` (what was seen
/// instead, e.g. `"; last status: …"`).
pub async fn wait_until_ok<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    wait_until_ok_within(what, PATIENCE, Duration::from_millis(100), check).await
}

/// [`wait_until_ok`] with its own patience and polling interval (for waits that are
/// long by design, such as a recovery after an outage).
pub async fn wait_until_ok_within<T, F, Fut>(
    what: &str,
    patience: Duration,
    poll: Duration,
    mut check: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let seen = match check().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}{seen}"
        );
        tokio::time::sleep(poll).await;
    }
}
