#!/usr/bin/env bash
# A local nomad-operator stack in one command (README "Quickstart"):
#
#   tests/quickstart.sh up     start kube-apiserver (tests/envtest), Nomad (the one at
#                              NOMAD_ADDR when set, e.g. a real agent from
#                              `tests/nomad/nomad.sh start DIR`; else the simulator), the CRD,
#                              the operator, and the examples; wait until they are Ready;
#                              print `kubectl get nj`
#   tests/quickstart.sh down   stop everything `up` started
#
# State (kubeconfig, logs, pids) lives in $QUICKSTART_DIR (default /tmp/nomad-operator-quickstart).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${QUICKSTART_DIR:-${TMPDIR:-/tmp}/nomad-operator-quickstart}
admin_addr=${ADMIN_ADDR:-127.0.0.1:8080}

log() { printf 'quickstart: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

stop_pid() {
  local file=$1
  [ -f "$file" ] || return 0
  local pid
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

down() {
  stop_pid "$dir/operator.pid"
  stop_pid "$dir/nomad-sim.pid"
  if [ -f "$dir/plane/kubeconfig" ]; then
    "$root/tests/envtest/envtest.sh" stop "$dir/plane" >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  log "stopped"
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq 1 $((seconds * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "timed out after ${seconds}s waiting for $what (logs in $dir)"
}

up() {
  [ -e "$dir/plane" ] && die "already up (state in $dir); run: tests/quickstart.sh down"
  mkdir -p "$dir"
  cd "$root"

  log "installing the test bed's etcd and kube-apiserver if missing (once per machine)"
  tests/envtest/envtest.sh install
  log "building the operator"
  cargo build --quiet --bin nomad-operator -p nomad-operator
  if [ -z "${NOMAD_ADDR:-}" ]; then
    log "building the Nomad simulator"
    cargo build --quiet -p nomad-sim --bin nomad-sim
  fi

  log "starting kube-apiserver"
  mkdir -p "$dir/plane"
  kubeconfig=$(tests/envtest/envtest.sh start "$dir/plane")
  export KUBECONFIG=$kubeconfig

  if [ -n "${NOMAD_ADDR:-}" ]; then
    log "using the Nomad at $NOMAD_ADDR"
    nomad_addr=$NOMAD_ADDR
  else
    nomad_addr=http://127.0.0.1:4646
    log "starting the Nomad simulator on $nomad_addr (time runs 10x faster)"
    nohup target/debug/nomad-sim --listen 127.0.0.1:4646 --time-scale 10 >"$dir/nomad-sim.log" 2>&1 &
    echo $! >"$dir/nomad-sim.pid"
    wait_for 30 "the Nomad simulator" curl -sf "$nomad_addr/v1/jobs"
  fi

  log "installing the NomadJob CRD"
  kubectl apply -f crds/ >/dev/null
  wait_for 60 "the CRD" kubectl get nomadjobs -A

  log "starting the operator (logs: $dir/operator.log)"
  NOMAD_ADDR=$nomad_addr nohup target/debug/nomad-operator run --admin-addr "$admin_addr" \
    >"$dir/operator.log" 2>&1 &
  echo $! >"$dir/operator.pid"
  wait_for 60 "the operator's /readyz" curl -sf "http://$admin_addr/readyz"

  log "applying the examples"
  for example in examples/web.yaml examples/report-batch.yaml; do
    [ -f "$example" ] && kubectl apply -f "$example" >/dev/null
  done
  wait_for 120 "web to become Ready" \
    kubectl wait --for=condition=Ready nomadjob/web --timeout=1s
  wait_for 120 "nightly-report to become Ready" \
    kubectl wait --for=condition=Ready nomadjob/nightly-report --timeout=1s

  kubectl get nj
  cat <<MSG

The stack is up. In this shell:
  export KUBECONFIG=$kubeconfig NOMAD_ADDR=$nomad_addr
  kubectl get nj -w                       # NomadJobs and their status
  kubectl describe nj web                 # conditions and Events
  curl -s http://$admin_addr/metrics      # the operator's metrics
  kubectl apply -f examples/web-bad-release.yaml   # a release that fails and is reverted
Stop it with: tests/quickstart.sh down
MSG
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
