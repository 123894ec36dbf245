//! Real Helm for the integration tests: runs `tests/helm/helm_tool.py` (helm-sdkpy, which
//! bundles Helm's own library) against the test control plane.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The chart's directory.
pub fn chart_dir() -> PathBuf {
    repo_root().join("charts/nomad-operator")
}

/// Runs `helm_tool.py ARGS` and returns its output, panicking with its stderr on failure.
pub fn helm_tool(args: &[&str]) -> Output {
    let output = Command::new("python3")
        .arg(repo_root().join("tests/helm/helm_tool.py"))
        .args(args)
        .output()
        .expect("run python3 (is it installed?)");
    assert!(
        output.status.success(),
        "helm_tool.py {args:?} failed ({}): {}\n(needs `python3 -m pip install --ignore-requires-python helm-sdkpy`; tests/run.sh does it)",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Installs the chart as `release` into `namespace` with `values` (JSON) and returns the
/// release Helm reports.
pub fn install(
    kubeconfig: &Path,
    namespace: &str,
    release: &str,
    values: &serde_json::Value,
) -> serde_json::Value {
    let kubeconfig = kubeconfig.to_string_lossy();
    let values = values.to_string();
    let chart = chart_dir();
    let output = helm_tool(&[
        "install",
        "--kubeconfig",
        &kubeconfig,
        "--namespace",
        namespace,
        "--release",
        release,
        "--values",
        &values,
        &chart.to_string_lossy(),
    ]);
    serde_json::from_slice(&output.stdout).expect("release JSON")
}
