#!/usr/bin/env bash
# A real Kubernetes control plane (etcd + kube-apiserver v1.20) on loopback, for tests
# and for trying the operator by hand.
#
#   envtest.sh install     install etcd (Debian's etcd-server) and build kube-apiserver
#                          from Debian's kubernetes source package, once per machine
#   envtest.sh start DIR   start etcd + kube-apiserver on free loopback ports, RBAC on,
#                          write DIR/kubeconfig (admin token) and print its path
#   envtest.sh stop DIR    stop what `start DIR` started
#
# The built kube-apiserver is cached in $ENVTEST_CACHE (default ~/.cache/nomad-operator),
# outside the repository, so a machine builds it once.
set -euo pipefail

CACHE="${ENVTEST_CACHE:-$HOME/.cache/nomad-operator}"
APISERVER="$CACHE/bin/kube-apiserver"

log() { printf 'envtest: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "installing packages needs root (or sudo)"
    SUDO=sudo
  else
    SUDO=
  fi
}

apt_install() {
  need_root
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

# Add a deb-src twin of the machine's own Debian source entry (no host is hard-coded:
# the twin copies whatever the existing entry points at).
add_deb_src() {
  need_root
  local twin=/etc/apt/sources.list.d/nomad-operator-deb-src.sources
  [ -f "$twin" ] && return 0
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed -e 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
      $SUDO tee "$twin" >/dev/null
  elif [ -f /etc/apt/sources.list ]; then
    grep -E '^deb ' /etc/apt/sources.list | sed -e 's/^deb /deb-src /' |
      $SUDO tee /etc/apt/sources.list.d/nomad-operator-deb-src.list >/dev/null
  else
    die "no Debian apt source entry found to mirror as deb-src"
  fi
}

cmd_install() {
  need_root
  local have_etcd=0 have_api=0
  command -v etcd >/dev/null && have_etcd=1
  [ -x "$APISERVER" ] && have_api=1
  if [ "$have_etcd" = 1 ] && [ "$have_api" = 1 ]; then
    log "already installed: $(command -v etcd), $APISERVER"
    return 0
  fi
  log "apt-get update"
  $SUDO apt-get update -q >/dev/null
  if [ "$have_etcd" = 0 ]; then
    log "installing etcd-server"
    apt_install etcd-server openssl curl
    # The package starts a system etcd on the default ports; we start our own.
    $SUDO systemctl disable --now etcd >/dev/null 2>&1 || true
    pkill -x etcd >/dev/null 2>&1 || true
  fi
  if [ "$have_api" = 0 ]; then
    build_apiserver
  fi
  log "installed: $(command -v etcd), $APISERVER"
}

build_apiserver() {
  log "building kube-apiserver v1.20 from Debian's kubernetes source package (about 10 minutes)"
  apt_install golang-go dpkg-dev rsync make \
    golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev
  add_deb_src
  $SUDO apt-get update -q >/dev/null
  local work="$CACHE/src"
  rm -rf "$work"
  mkdir -p "$work" "$CACHE/bin"
  (cd "$work" && apt-get source -q --download-only kubernetes >/dev/null &&
    dpkg-source -x --no-check ./kubernetes_*.dsc kubernetes >/dev/null)
  local src="$work/kubernetes"
  [ -d "$src/vendor" ] || die "unexpected source layout in $src"
  # Go >= 1.18 crashes the vendored reflect2 v1.0.1 on the first custom resource:
  # swap in Debian's reflect2 1.0.2 and json-iterator 1.1.12 (DESIGN.md §4).
  local gocode=/usr/share/gocode/src/github.com
  for pair in "modern-go/reflect2" "json-iterator/go"; do
    rm -rf "$src/vendor/github.com/$pair"
    mkdir -p "$src/vendor/github.com/$pair"
    cp -r "$gocode/$pair/." "$src/vendor/github.com/$pair/"
    find "$src/vendor/github.com/$pair" -name '*_test.go' -delete
  done
  (cd "$src" && GOFLAGS=-mod=vendor GO111MODULE=on make WHAT=cmd/kube-apiserver >"$work/build.log" 2>&1) ||
    { tail -40 "$work/build.log" >&2; die "kube-apiserver build failed (log: $work/build.log)"; }
  local bin
  bin=$(find "$src/_output" -type f -name kube-apiserver -perm -u+x | head -n 1)
  [ -n "$bin" ] || die "build produced no kube-apiserver"
  install -m 0755 "$bin" "$APISERVER"
  rm -rf "$work"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

cmd_start() {
  local dir="${1:?usage: envtest.sh start DIR}"
  command -v etcd >/dev/null || die "etcd not installed: run envtest.sh install"
  [ -x "$APISERVER" ] || die "kube-apiserver not built: run envtest.sh install"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ -f "$dir/apiserver.pid" ] && kill -0 "$(cat "$dir/apiserver.pid")" 2>/dev/null &&
    die "a control plane already runs in $dir"
  local pki="$dir/pki"
  mkdir -p "$pki"

  # A CA and a serving certificate for 127.0.0.1, and the service-account key pair.
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=envtest-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' >"$pki/san.ext"
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 30 -extfile "$pki/san.ext" -out "$pki/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null

  local token
  token=$(openssl rand -hex 24)
  printf '%s,admin,admin-uid,"system:masters"\n' "$token" >"$dir/tokens.csv"
  chmod 600 "$dir/tokens.csv"

  # etcd's data on tmpfs when there is one: tests want speed, not durability.
  local data="$dir/etcd-data"
  if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    data=$(mktemp -d /dev/shm/envtest-etcd.XXXXXX)
  fi
  echo "$data" >"$dir/etcd-data-path"

  local etcd_port peer_port api_port
  etcd_port=$(free_port)
  peer_port=$(free_port)
  api_port=$(free_port)

  setsid etcd --name envtest --data-dir "$data" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "envtest=http://127.0.0.1:$peer_port" \
    --log-level error >"$dir/etcd.log" 2>&1 </dev/null &
  echo $! >"$dir/etcd.pid"

  setsid "$APISERVER" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
    --secure-port "$api_port" --insecure-port 0 \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --token-auth-file "$dir/tokens.csv" \
    --authorization-mode RBAC \
    --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-cluster-ip-range 10.0.0.0/24 \
    --allow-privileged=true \
    --enable-priority-and-fairness=false \
    --v 0 >"$dir/apiserver.log" 2>&1 </dev/null &
  echo $! >"$dir/apiserver.pid"

  local server="https://127.0.0.1:$api_port"
  cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: envtest
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: admin
  user:
    token: $token
contexts:
- name: envtest
  context:
    cluster: envtest
    user: admin
current-context: envtest
EOF
  chmod 600 "$dir/kubeconfig"

  local i
  for i in $(seq 1 600); do
    if curl -sf --cacert "$pki/ca.crt" -H "Authorization: Bearer $token" "$server/readyz" >/dev/null 2>&1; then
      echo "$dir/kubeconfig"
      return 0
    fi
    if ! kill -0 "$(cat "$dir/apiserver.pid")" 2>/dev/null; then
      tail -20 "$dir/apiserver.log" >&2
      cmd_stop "$dir"
      die "kube-apiserver exited (log: $dir/apiserver.log)"
    fi
    sleep 0.1
  done
  tail -20 "$dir/apiserver.log" >&2
  cmd_stop "$dir"
  die "kube-apiserver did not become ready within 60s"
}

stop_pid_file() {
  local f="$1" pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

cmd_stop() {
  local dir="${1:?usage: envtest.sh stop DIR}"
  [ -d "$dir" ] || return 0
  stop_pid_file "$dir/apiserver.pid"
  stop_pid_file "$dir/etcd.pid"
  if [ -f "$dir/etcd-data-path" ]; then
    local data
    data=$(cat "$dir/etcd-data-path")
    case "$data" in /dev/shm/envtest-etcd.*) rm -rf "$data" ;; esac
    rm -f "$dir/etcd-data-path"
  fi
}

case "${1:-}" in
  install) cmd_install ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  *) echo "usage: envtest.sh install | start DIR | stop DIR" >&2; exit 2 ;;
esac
