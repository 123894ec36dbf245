//! A real etcd + kube-apiserver for a test run (see `tests/envtest/envtest.sh`).
//!
//! The control plane is shared by every test of a run: when `ENVTEST_KUBECONFIG` is set
//! (the README's test command, `tests/run.sh`, starts one control plane and sets it), the
//! tests use it; otherwise the first test of a process starts one, and a detached
//! watchdog ([`super::watchdog`]) stops it when that process exits — however it exits, panics included — so no
//! etcd or kube-apiserver outlives the test run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Where the control plane's kubeconfig is, and the directory of one we started.
pub struct ControlPlane {
    /// Admin kubeconfig of the control plane.
    pub kubeconfig: PathBuf,
}

static PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    repo_root().join("tests/envtest/envtest.sh")
}

/// The control plane of this test run, started on first use.
pub fn plane() -> &'static ControlPlane {
    match PLANE.get_or_init(start_or_reuse) {
        Ok(plane) => plane,
        Err(e) => panic!("no Kubernetes control plane for the tests: {e}"),
    }
}

fn start_or_reuse() -> Result<ControlPlane, String> {
    if let Some(path) = std::env::var_os("ENVTEST_KUBECONFIG").filter(|p| !p.is_empty()) {
        return Ok(ControlPlane {
            kubeconfig: PathBuf::from(path),
        });
    }
    start_new()
}

/// A control plane of the calling test's own, for a test that changes what every test
/// shares (deleting the NomadJob CRD, say). It is stopped when the process exits.
pub fn private_plane() -> ControlPlane {
    match start_new() {
        Ok(plane) => plane,
        Err(e) => panic!("no private control plane: {e}"),
    }
}

fn start_new() -> Result<ControlPlane, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("envtest")
        .join(format!("{}-{}", std::process::id(), unique_suffix()));
    let status = Command::new(script())
        .arg("start")
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("running envtest.sh: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`tests/envtest/envtest.sh start {}` failed ({status}); run `tests/envtest/envtest.sh install` first",
            dir.display()
        ));
    }
    let script = script();
    let dir_text = dir.to_string_lossy();
    super::watchdog::run_after_exit(&[&script.to_string_lossy(), "stop", &dir_text])?;
    Ok(ControlPlane {
        kubeconfig: dir.join("kubeconfig"),
    })
}

/// A process-unique, run-unique suffix for names.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:x}{:x}{n}", std::process::id(), nanos)
}

/// A client with the control plane's admin credentials.
pub async fn admin_client() -> Client {
    client_of(plane()).await
}

/// An admin client of `plane`.
pub async fn client_of(plane: &ControlPlane) -> Client {
    let kubeconfig = Kubeconfig::read_from(&plane.kubeconfig).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig to config");
    Client::try_from(config).expect("kube client")
}

/// Runs `kubectl` against the control plane.
pub fn kubectl(args: &[&str]) -> std::process::Output {
    Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", &plane().kubeconfig)
        .output()
        .expect("run kubectl")
}

/// Applies `crds/` to the control plane (server-side apply, idempotent) and waits until
/// the API serves every kind of the operator.
pub async fn install_crds(client: &Client) {
    for kind in nomad_operator::crdgen::Kind::ALL {
        install_crd(client, kind.file()).await;
    }
}

async fn install_crd(client: &Client, file: &str) {
    let text = std::fs::read_to_string(repo_root().join("crds").join(file)).expect("read crds/");
    let crd: CustomResourceDefinition = serde_saphyr::from_str(&text).expect("parse crds/");
    let name = crd.metadata.name.clone().expect("CRD has a name");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch(
        &name,
        &PatchParams::apply("nomad-operator-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply CRD");
    for _ in 0..600 {
        let current = api.get(&name).await.expect("read CRD");
        let established = current
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("CRD {name} not established within 60s");
}

/// Creates a namespace `PREFIX-<unique>` and returns its name.
pub async fn create_namespace(client: &Client, prefix: &str) -> String {
    let name = format!("{prefix}-{}", unique_suffix());
    let namespace = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create test namespace");
    name
}

/// One test's own namespace on the shared control plane, with an admin client.
///
/// Namespaces are not deleted: there is no namespace controller in the test bed to finish
/// a deletion, and the whole control plane (etcd on tmpfs) goes when the run ends.
pub struct TestNamespace {
    /// The namespace's name, unique in the run.
    pub name: String,
    /// An admin client.
    pub client: Client,
}

impl TestNamespace {
    /// Creates a fresh namespace `PREFIX-<unique>` with the CRDs installed.
    pub async fn new(prefix: &str) -> Self {
        Self::on(admin_client().await, prefix).await
    }

    /// Like [`TestNamespace::new`], on the control plane of `client`.
    pub async fn on(client: Client, prefix: &str) -> Self {
        install_crds(&client).await;
        let name = create_namespace(&client, prefix).await;
        Self { name, client }
    }

    /// A typed API in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}
