//! The real operator (`nomad-operator run`'s code path) and the Nomad simulator, started
//! in-process for one test, in the test's own namespace.

use std::time::Duration;

use clap::Parser;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use nomad_operator::controller::run::{self, RunArgs};
use nomad_operator::crd::NomadJob;
use nomad_operator::metrics::Metrics;
use nomad_operator::nomad::{NomadClient, NomadConfig, Scope, Token};
use nomad_sim::{SimConfig, SimServer, Simulator};
use serde_json::{Value, json};

use super::envtest::TestNamespace;

/// The ACL token the simulator demands in these tests; it must never leak.
pub const TOKEN: &str = "s3cr3t-token-never-printed";

/// How long a test waits for the operator to reach a state before failing.
pub const PATIENCE: Duration = Duration::from_secs(60);

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: RunArgs,
}

/// One test's operator, simulator and namespace.
pub struct Harness {
    /// The test's namespace and admin client.
    pub ns: TestNamespace,
    /// The simulator's state (request log, faults, allocation control).
    pub sim: Simulator,
    /// The simulator's HTTP server.
    pub server: SimServer,
    /// A Nomad client for out-of-band changes, with the simulator's token.
    pub nomad: NomadClient,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    operator: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    /// Starts the simulator (time scale 100) and the operator watching only this test's
    /// namespace with a 2 s resync; `extra` adds `run` flags.
    pub async fn start(prefix: &str, extra: &[&str]) -> Self {
        nomad_operator::telemetry::init(nomad_operator::telemetry::LogFormat::Text);
        let ns = TestNamespace::new(prefix).await;
        let sim = Simulator::new(SimConfig {
            acl_token: Some(TOKEN.into()),
            time_scale: 100.0,
        });
        let server = sim
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve simulator");
        let mut harness = Self {
            nomad: nomad_client(&server.url()),
            ns,
            sim,
            server,
            shutdown: None,
            operator: None,
        };
        harness.start_operator(extra);
        harness
    }

    fn start_operator(&mut self, extra: &[&str]) {
        let url = self.server.url();
        let mut argv = vec![
            "run",
            "--nomad-addr",
            &url,
            "--nomad-token",
            TOKEN,
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
        argv.extend_from_slice(extra);
        let args = Cli::try_parse_from(argv).expect("run flags").args;
        let ctx = run::context(self.ns.client.clone(), &args, Metrics::default())
            .expect("operator context");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        self.shutdown = Some(tx);
        self.operator = Some(tokio::spawn(async move {
            run::run_controller(ctx, &args, async move {
                let _ = rx.await;
            })
            .await;
        }));
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
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let obj = self.api().get_opt(name).await.expect("get NomadJob");
            if let Some(obj) = obj {
                if check(&obj) {
                    return obj;
                }
                if tokio::time::Instant::now() > deadline {
                    panic!(
                        "timed out waiting for {name}: {what}; last status: {:#?}",
                        obj.status
                    );
                }
            } else if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {name}: {what}; the object does not exist");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

    /// Requests the simulator received with `method` and exactly `path`.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    }

    /// Requests the simulator received whose path starts with `prefix`.
    pub fn count_prefix(&self, prefix: &str) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
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
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let events = self.events(name).await;
            if let Some((_, note)) = events
                .iter()
                .find(|(r, note)| r == reason && note.contains(text))
            {
                return note.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {reason} Event with {text:?} for {name}; events: {events:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The Nomad job as the simulator stores it (`None` when absent).
    pub async fn nomad_job(&self, id: &str) -> Option<Value> {
        self.nomad.read_job(&Scope::default(), id).await.ok()
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

/// A Nomad client for the simulator at `url`, with the test token.
pub fn nomad_client(url: &str) -> NomadClient {
    let mut config = NomadConfig::new(url);
    config.token = Some(Token::new(TOKEN));
    NomadClient::new(&config).expect("nomad client")
}

/// True when `obj` is `Ready=True` for its current generation.
pub fn ready(obj: &NomadJob) -> bool {
    condition(obj, "Ready").is_some_and(|c| c.status == "True")
        && obj.status.as_ref().and_then(|s| s.observed_generation) == obj.metadata.generation
}

/// The condition `type_` of `obj`.
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
pub async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A service job: `count` copies of `command` with `args`, and an update strategy whose
/// times, scaled down 100x by the simulator, keep deployments short yet leave a healthy
/// deployment seconds of slack on a loaded machine (progress deadline 5m -> 3 s).
pub fn service_job(count: u32, command: &str, args: &[&str], auto_revert: bool) -> Value {
    json!({
        "Datacenters": ["dc1"],
        "Type": "service",
        "TaskGroups": [{
            "Name": "web",
            "Count": count,
            "Update": {
                "MaxParallel": 1,
                "MinHealthyTime": 1_000_000_000u64,
                "HealthyDeadline": 120_000_000_000u64,
                "ProgressDeadline": 300_000_000_000u64,
                "AutoRevert": auto_revert
            },
            "Tasks": [{"Name": "server", "Driver": "raw_exec", "Config": {"command": command, "args": args}}]
        }]
    })
}
