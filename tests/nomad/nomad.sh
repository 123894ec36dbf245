#!/usr/bin/env bash
# A real Nomad v1.1.2 dev agent (server and client in one process) on loopback, for
# tests and for trying the operator by hand.
#
#   nomad.sh install          unpack the agent from ../shared/nomad (read-only there) into
#                             $NOMAD_CACHE/bin/nomad (default ~/.cache/nomad-operator),
#                             checking it against ../shared/nomad/SHA256SUMS
#   nomad.sh start DIR [--acl]
#                             start a dev agent with raw_exec on free loopback ports, in
#                             its own process group; wait until it leads and its node is
#                             ready; write DIR/addr (and DIR/token with --acl: the
#                             bootstrap management token) and print the address
#   nomad.sh stop DIR         stop what `start DIR` started: SIGINT, then the whole
#                             process group (executors and logmons included)
#   nomad.sh purge ADDR NS    purge every job in the Nomad namespace NS of the agent at
#                             ADDR (a test's clean-up; $NOMAD_TOKEN is sent when set)
#
# The shared folder is found from the repository (../shared/nomad) or $NOMAD_SHARED.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
CACHE="${NOMAD_CACHE:-$HOME/.cache/nomad-operator}"
BIN="$CACHE/bin/nomad"
SHARED="${NOMAD_SHARED:-$repo/../shared/nomad}"

log() { printf 'nomad.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

expected_sum() {
  # The digest of the unpacked binary, from the shared SHA256SUMS.
  awk '$2 == "nomad" || $2 == "*nomad" { print $1 }' "$SHARED/SHA256SUMS"
}

cmd_install() {
  local archive="$SHARED/nomad-1.1.2-linux-amd64.gz"
  [ -f "$archive" ] || die "no Nomad archive at $archive (set NOMAD_SHARED to the folder holding it)"
  local want
  want=$(expected_sum)
  if [ -x "$BIN" ] && [ -n "$want" ] && [ "$(sha256sum "$BIN" | cut -d' ' -f1)" = "$want" ]; then
    log "already installed: $BIN"
    return 0
  fi
  mkdir -p "$CACHE/bin"
  gzip -dc "$archive" >"$BIN.tmp"
  chmod 0755 "$BIN.tmp"
  if [ -n "$want" ] && [ "$(sha256sum "$BIN.tmp" | cut -d' ' -f1)" != "$want" ]; then
    rm -f "$BIN.tmp"
    die "the unpacked agent does not match $SHARED/SHA256SUMS"
  fi
  mv "$BIN.tmp" "$BIN"
  log "installed: $BIN ($("$BIN" version | head -n 1))"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# True when the agent at $1 has a leader and a ready node whose raw_exec driver is healthy.
agent_ready() {
  local addr="$1" token="${2:-}" leader nodes
  local auth=()
  [ -n "$token" ] && auth=(-H "X-Nomad-Token: $token")
  leader=$(curl -sf "${auth[@]}" "$addr/v1/status/leader" 2>/dev/null) || return 1
  [ -n "$leader" ] && [ "$leader" != '""' ] || return 1
  nodes=$(curl -sf "${auth[@]}" "$addr/v1/nodes" 2>/dev/null) || return 1
  python3 -c '
import json, sys
nodes = json.loads(sys.argv[1])
ok = any(n.get("Status") == "ready"
         and ((n.get("Drivers") or {}).get("raw_exec") or {}).get("Healthy")
         for n in nodes or [])
sys.exit(0 if ok else 1)' "$nodes"
}

cmd_start() {
  local dir="${1:?usage: nomad.sh start DIR [--acl]}"
  local acl=0
  [ "${2:-}" = "--acl" ] && acl=1
  [ -x "$BIN" ] || cmd_install
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ -f "$dir/nomad.pid" ] && kill -0 "$(cat "$dir/nomad.pid")" 2>/dev/null &&
    die "a Nomad agent already runs in $dir"

  local http rpc serf
  http=$(free_port)
  rpc=$(free_port)
  serf=$(free_port)
  {
    echo 'disable_update_check = true'
    echo "ports { http = $http  rpc = $rpc  serf = $serf }"
    # With no network the cloud fingerprinters stall start-up.
    echo 'client { options { "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean" } }'
    echo 'plugin "raw_exec" { config { enabled = true } }'
    [ "$acl" = 1 ] && echo 'acl { enabled = true }'
  } >"$dir/nomad.hcl"
  mkdir -p "$dir/data"

  setsid "$BIN" agent -dev -bind 127.0.0.1 -data-dir "$dir/data" -config "$dir/nomad.hcl" \
    >"$dir/nomad.log" 2>&1 </dev/null &
  echo $! >"$dir/nomad.pid"
  local addr="http://127.0.0.1:$http"

  local i token=""
  for i in $(seq 1 600); do
    if ! kill -0 "$(cat "$dir/nomad.pid")" 2>/dev/null; then
      tail -20 "$dir/nomad.log" >&2
      cmd_stop "$dir"
      die "the Nomad agent exited (log: $dir/nomad.log)"
    fi
    if [ "$acl" = 1 ] && [ -z "$token" ]; then
      token=$(curl -sf -X POST "$addr/v1/acl/bootstrap" 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["SecretID"])' 2>/dev/null) || token=""
      if [ -n "$token" ]; then
        (umask 077 && printf '%s' "$token" >"$dir/token")
      fi
    fi
    if { [ "$acl" = 0 ] || [ -n "$token" ]; } && agent_ready "$addr" "$token"; then
      echo "$addr" >"$dir/addr"
      echo "$addr"
      return 0
    fi
    sleep 0.1
  done
  tail -20 "$dir/nomad.log" >&2
  cmd_stop "$dir"
  die "the Nomad agent did not become ready within 60s"
}

# Every descendant of process $1, children first listed before their own children.
descendants() {
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    echo "$child"
    descendants "$child"
  done
}

cmd_stop() {
  local dir="${1:?usage: nomad.sh stop DIR}"
  [ -d "$dir" ] || return 0
  local f="$dir/nomad.pid" pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  # The agent leads its own session (setsid), but each task's executor starts a session of
  # its own: note every descendant first, so none outlives the agent even when it has to
  # be killed before it could stop its tasks.
  local family
  family=$(descendants "$pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  kill -KILL -- "-$pid" 2>/dev/null || true
  kill -KILL "$pid" 2>/dev/null || true
  local p
  for p in $family; do
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -f "$f"
}

cmd_purge() {
  local addr="${1:?usage: nomad.sh purge ADDR NAMESPACE}" ns="${2:?usage: nomad.sh purge ADDR NAMESPACE}"
  local auth=() ids id
  [ -n "${NOMAD_TOKEN:-}" ] && auth=(-H "X-Nomad-Token: $NOMAD_TOKEN")
  ids=$(curl -sf "${auth[@]}" "$addr/v1/jobs?namespace=$ns" |
    python3 -c 'import json,sys; print("\n".join(j["ID"] for j in json.load(sys.stdin) or []))') || return 0
  for id in $ids; do
    curl -sf -X DELETE "${auth[@]}" "$addr/v1/job/$id?purge=true&namespace=$ns" >/dev/null || true
  done
}

case "${1:-}" in
  install) cmd_install ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  purge) shift; cmd_purge "$@" ;;
  *) echo "usage: nomad.sh install | start DIR [--acl] | stop DIR | purge ADDR NS" >&2; exit 2 ;;
esac
