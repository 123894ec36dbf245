//! The test bed's Kubernetes control plane (`tests/envtest/envtest.sh`), owned by the
//! benchmark: started at the beginning, stopped by a guard on exit and, should the
//! process die without unwinding (a kill, an abort), by a detached watchdog.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// A running control plane; dropping it stops it.
pub struct ControlPlane {
    dir: PathBuf,
    script: PathBuf,
    /// Its admin kubeconfig.
    pub kubeconfig: PathBuf,
}

impl ControlPlane {
    /// Starts etcd + kube-apiserver in `dir` with `repo`'s envtest script, and a watchdog
    /// that stops them when this process exits.
    pub fn start(repo: &Path, dir: &Path) -> anyhow::Result<Self> {
        let script = repo.join("tests/envtest/envtest.sh");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let status = Command::new(&script)
            .arg("start")
            .arg(dir)
            .stdout(Stdio::null())
            .status()
            .context("running tests/envtest/envtest.sh")?;
        if !status.success() {
            bail!(
                "`tests/envtest/envtest.sh start {}` failed ({status}); run `tests/envtest/envtest.sh install` first",
                dir.display()
            );
        }
        let plane = Self {
            dir: dir.to_path_buf(),
            script: script.clone(),
            kubeconfig: dir.join("kubeconfig"),
        };
        // In its own session, so that a Ctrl-C to the benchmark does not kill the
        // watchdog before it has stopped the control plane.
        Command::new("setsid")
            .args([
                "bash",
                "-c",
                r#"while kill -0 "$1" 2>/dev/null; do sleep 0.5; done; exec "$2" stop "$3""#,
                "bench-envtest-watchdog",
            ])
            .arg(std::process::id().to_string())
            .arg(&script)
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the envtest watchdog")?;
        Ok(plane)
    }

    /// The control plane's processes: `("kube-apiserver", pid)` and `("etcd", pid)`.
    pub fn processes(&self) -> Vec<(&'static str, u32)> {
        [("kube-apiserver", "apiserver.pid"), ("etcd", "etcd.pid")]
            .into_iter()
            .filter_map(|(name, file)| {
                let pid = std::fs::read_to_string(self.dir.join(file)).ok()?;
                Some((name, pid.trim().parse().ok()?))
            })
            .collect()
    }

    /// An admin client.
    pub async fn client(&self) -> anyhow::Result<Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).context("reading kubeconfig")?;
        let mut config =
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        // Creating thousands of objects from one client: be generous.
        config.read_timeout = Some(Duration::from_secs(120));
        Ok(Client::try_from(config)?)
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Applies the CRDs in `crds/` (server-side apply) and waits until they are established.
pub async fn install_crds(client: &Client, repo: &Path) -> anyhow::Result<()> {
    for kind in nomad_operator::crdgen::Kind::ALL {
        install_crd(client, &repo.join("crds").join(kind.file())).await?;
    }
    Ok(())
}

async fn install_crd(client: &Client, path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path:?}"))?;
    let crd: CustomResourceDefinition =
        serde_saphyr::from_str(&text).with_context(|| format!("parsing {path:?}"))?;
    let name = crd.metadata.name.clone().context("the CRD has no name")?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch(
        &name,
        &PatchParams::apply("nomad-bench").force(),
        &Patch::Apply(&crd),
    )
    .await
    .context("applying the CRD")?;
    for _ in 0..600 {
        let current = api.get(&name).await?;
        let established = current
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("CRD {name} not established within 60 s")
}

/// Creates the namespace `name`.
pub async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let namespace = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(())
}
