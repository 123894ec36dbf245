#!/usr/bin/env bash
# The project's test command (README "Run the tests"): checks formatting and lints, starts
# one real Kubernetes control plane and one real Nomad v1.1.2 agent for the whole run, and
# runs every test of the workspace against them. Extra arguments go to `cargo nextest run`
# (e.g. a test filter).
set -euo pipefail
cd "$(dirname "$0")/.."

tests/envtest/envtest.sh install
# The real Nomad agent, unpacked from ../shared/nomad into the same cache.
tests/nomad/nomad.sh install
# Real Helm for the chart tests (tests/helm/helm_tool.py): helm-sdkpy bundles Helm's library.
python3 -c 'import helm_sdkpy' 2>/dev/null ||
  python3 -m pip install --quiet --ignore-requires-python helm-sdkpy

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

dir=$(mktemp -d "${TMPDIR:-/tmp}/nomad-operator-envtest.XXXXXX")
nomad_dir=$(mktemp -d "${TMPDIR:-/tmp}/nomad-operator-nomad.XXXXXX")
trap 'tests/nomad/nomad.sh stop "$nomad_dir"; rm -rf "$nomad_dir"; tests/envtest/envtest.sh stop "$dir"; rm -rf "$dir"' EXIT
echo "== starting the test control plane in $dir"
ENVTEST_KUBECONFIG=$(tests/envtest/envtest.sh start "$dir")
export ENVTEST_KUBECONFIG
echo "== starting the real Nomad agent in $nomad_dir"
NOMAD_TEST_ADDR=$(tests/nomad/nomad.sh start "$nomad_dir")
export NOMAD_TEST_ADDR

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
