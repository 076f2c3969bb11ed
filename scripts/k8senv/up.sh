#!/usr/bin/env bash
# up.sh - a real Kubernetes control plane on 127.0.0.1, no containers and no kubelet:
#   etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok (one fake node).
# kwok makes pods of any image Running/Ready (Job pods and bare Never/OnFailure pods Succeeded),
# binds PVCs (default StorageClass kwok-volume), runs `kubectl exec` commands ON THIS HOST and
# connects `kubectl port-forward` to 127.0.0.1.
#
# Usage: up.sh start|stop|status|clean|env
#   start   build if needed (scripts/k8senv/build.sh), start everything, wait until pods can run
#   stop    stop what start started (pid files), etcd last; state is kept, start again resumes it
#   status  one line per component; exit 0 only if all run
#   clean   stop, then delete the state dir
#   env     print `export KUBECONFIG=... KUBECACHEDIR=... K8SENV_KUBECTL=...` (for eval)
#
# Environment (defaults in brackets):
#   K8SENV_DIR [$CSGHUB_CACHE/run/cluster]  state: pki, etcd data, logs, pids, kubeconfig (context k8senv)
#   CSGHUB_CACHE [<repo>/.cache]            where build.sh puts the binaries
#   ETCD_PORT [12379]  ETCD_PEER_PORT [ETCD_PORT+1]  API_PORT [16443]  KWOK_PORT [10250]
#   KCM_PORT [10257]  SCHED_PORT [10259]             (all on 127.0.0.1; pick others to run clusters side by side)
#   KWOK_EXEC_WORKDIR [$K8SENV_DIR/exec]  working directory of commands run by `kubectl exec`
#   PF_PORTS ["5432 80 443 8080 8443 6379 3306"]  pod port N is forwarded to 127.0.0.1:N by default
#   K8SENV_OWNER_PID [unset]  if set, a watchdog stops the cluster once that process is gone
#                             (a killed test run does not leave a cluster behind)
# Per-pod overrides (the test harness creates them): a namespaced kwok Exec / PortForward object
# named like the pod replaces the cluster-wide rule for that pod (examples: scripts/k8senv/README.md).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${CSGHUB_CACHE:-$REPO/.cache}
DIR=$(realpath -m -- "${K8SENV_DIR:-$CACHE/run/cluster}") # absolute: pid checks match on it
ETCD_PORT=${ETCD_PORT:-12379}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-$((ETCD_PORT + 1))}
API_PORT=${API_PORT:-16443}
KWOK_PORT=${KWOK_PORT:-10250}
KCM_PORT=${KCM_PORT:-10257}
SCHED_PORT=${SCHED_PORT:-10259}
KWOK_EXEC_WORKDIR=${KWOK_EXEC_WORKDIR:-$DIR/exec}
PF_PORTS=${PF_PORTS:-5432 80 443 8080 8443 6379 3306}
SERVICE_CIDR=10.96.0.0/16
POD_CIDR=10.244.0.0/16
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

PKI=$DIR/pki
LOGS=$DIR/logs
KCFG=$DIR/kubeconfig
# keep kubectl's discovery cache and anything else XDG out of $HOME
export KUBECACHEDIR=$DIR/kube-cache XDG_CACHE_HOME=$DIR/xdg-cache

log() { printf '%s up.sh: %s\n' "$(date +%T.%3N)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# binaries: build.sh prints its output dir (instant when already built)
resolve_bins() {
  local out
  out=$(CSGHUB_CACHE=$CACHE "$HERE/build.sh") || die "building the cluster binaries failed"
  BIN=$out/bin
  KWOKDATA=$out/kwok
  KUBECTL=$BIN/kubectl
}

kc() { "$KUBECTL" --kubeconfig "$KCFG" "$@"; }

# pid_of <component>: its pid if it runs AND is ours (its command line names $DIR: guards against
# a stale pid file whose pid was reused by an unrelated process)
pid_of() {
  local f=$DIR/$1.pid pid
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$DIR/" || return 1
  echo "$pid"
}
alive() { pid_of "$1" >/dev/null; }

# start_bg <name> <command...>: detached (own session), output to $LOGS/<name>.log, pid in $DIR/<name>.pid
start_bg() {
  local name=$1
  shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$DIR/$name.pid"
  STARTED+=("$name")
  log "started $name (pid $!)"
}

# wait_for <seconds> <what> <component whose exit aborts the wait> <command...>
wait_for() {
  local secs=$1 what=$2 comp=$3
  shift 3
  WAITING=$comp
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    alive "$comp" || die "$comp exited while waiting for $what"
    ((SECONDS < deadline)) || die "timed out after ${secs}s waiting for $what"
    sleep 0.2
  done
  log "$what ready"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# on a failed start: show why (log tails of dead components, else of the one being waited for), stop all
on_start_failure() {
  local c shown=0
  for c in "${STARTED[@]}"; do
    if ! alive "$c"; then
      log "---- $c exited; last lines of $LOGS/$c.log:"
      tail -n 25 "$LOGS/$c.log" >&2 || true
      shown=1
    fi
  done
  if ((shown == 0)) && [[ -n $WAITING && -f $LOGS/$WAITING.log ]]; then
    log "---- last lines of $LOGS/$WAITING.log:"
    tail -n 25 "$LOGS/$WAITING.log" >&2 || true
  fi
  log "start failed: stopping what was started (state and logs kept in $DIR)"
  stop
}

# cert <name> <CN> <O or ""> <extendedKeyUsage> [subjectAltName]: EC key + cert signed by the CA
cert() {
  local n=$1 cn=$2 o=$3 eku=$4 san=${5:-}
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$n.key" 2>/dev/null
  openssl req -new -key "$PKI/$n.key" -subj "/CN=$cn${o:+/O=$o}" -out "$PKI/$n.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    if [[ -n $san ]]; then echo "subjectAltName=$san"; fi
  } >"$PKI/$n.ext"
  openssl x509 -req -in "$PKI/$n.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -out "$PKI/$n.crt" -extfile "$PKI/$n.ext" 2>/dev/null
}

gen_pki() {
  [[ -f $PKI/.done ]] && return 0
  rm -rf "$PKI"
  mkdir -p "$PKI"
  chmod 0700 "$PKI"
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=k8senv-ca" -days 3650 -out "$PKI/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  cert apiserver kube-apiserver "" serverAuth \
    "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert admin kubernetes-admin system:masters clientAuth                       # kubectl, helm, kcm, scheduler, kwok
  cert kubelet-client kube-apiserver-kubelet-client system:masters clientAuth # apiserver -> kwok (exec, port-forward)
  cert kwok kwok-node "" serverAuth "IP:127.0.0.1,DNS:localhost"
  # service account tokens need an RSA (or EC) signing key; RSA is what kubeadm uses
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  rm -f "$PKI"/*.csr "$PKI"/*.ext
  touch "$PKI/.done"
}

write_kubeconfig() {
  rm -f "$KCFG"
  kc config set-cluster k8senv --server="https://127.0.0.1:$API_PORT" \
    --certificate-authority="$PKI/ca.crt" --embed-certs=true >/dev/null
  kc config set-credentials k8senv-admin --client-certificate="$PKI/admin.crt" \
    --client-key="$PKI/admin.key" --embed-certs=true >/dev/null
  kc config set-context k8senv --cluster=k8senv --user=k8senv-admin >/dev/null
  kc config use-context k8senv >/dev/null
  chmod 0600 "$KCFG"
}

write_kwok_config() {
  local f=$DIR/kwok.yaml s
  : >"$f"
  for s in node-initialize node-heartbeat-with-lease pod-ready pod-complete pod-delete \
    pvc-provision pv-bind pvc-delete pv-delete; do
    cat "$KWOKDATA/stages/$s.yaml" >>"$f"
    printf '\n---\n' >>"$f"
  done
  # kwok's pod-complete only finishes Job-owned pods; bare pods with restartPolicy Never/OnFailure
  # (helm test hooks, one-off pods) would stay Running forever. Same stage, other selector.
  sed -e 's/^  name: pod-complete$/  name: pod-complete-bare/' \
    -e "s/'\.metadata\.ownerReferences\.\[\]\.kind'/'.spec.restartPolicy'/" \
    -e "s/^      - 'Job'$/      - 'Never'\n      - 'OnFailure'/" \
    "$KWOKDATA/stages/pod-complete.yaml" >>"$f"
  if ! grep -q "pod-complete-bare" "$f" || ! grep -q "'OnFailure'" "$f"; then
    die "could not derive the pod-complete-bare stage from kwok's pod-complete.yaml"
  fi
}

# cluster-wide defaults: exec runs locally in $KWOK_EXEC_WORKDIR, pod port N -> 127.0.0.1:N
default_rules() {
  cat <<EOF
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterExec
metadata:
  name: local-exec
spec:
  execs:
  - local:
      workDir: $KWOK_EXEC_WORKDIR
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterPortForward
metadata:
  name: local-forward
spec:
  forwards:
EOF
  local p
  for p in $PF_PORTS; do
    printf '  - ports: [%s]\n    target: {address: 127.0.0.1, port: %s}\n' "$p" "$p"
  done
}

node_manifest() {
  cat <<'EOF'
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    type: kwok
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
EOF
}

start_watchdog() {
  [[ -n ${K8SENV_OWNER_PID:-} ]] || return 0
  if ! [[ $K8SENV_OWNER_PID =~ ^[0-9]+$ ]] || ! kill -0 "$K8SENV_OWNER_PID" 2>/dev/null; then
    die "K8SENV_OWNER_PID=$K8SENV_OWNER_PID is not a running process"
  fi
  # the loop's command line names $DIR so that pid_of recognises it
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; K8SENV_IN_WATCHDOG=1 K8SENV_DIR="$3" "$2" stop' \
    k8senv-watchdog "$K8SENV_OWNER_PID" "$HERE/up.sh" "$DIR/" >>"$LOGS/watchdog.log" 2>&1 </dev/null &
  echo $! >"$DIR/watchdog.pid"
  log "watchdog (pid $!) stops the cluster when pid $K8SENV_OWNER_PID exits"
}

start() {
  local c running=0 t0=$SECONDS
  for c in "${COMPONENTS[@]}"; do if alive "$c"; then running=$((running + 1)); fi; done
  if ((running == ${#COMPONENTS[@]})); then
    log "already running (K8SENV_DIR=$DIR)"
    return 0
  fi
  ((running == 0)) || die "partly running ($running of ${#COMPONENTS[@]} components): run '$0 stop' first"
  command -v openssl >/dev/null || die "openssl not found (scripts/deps.sh installs it)"
  resolve_bins
  local name port
  for name in ETCD_PORT ETCD_PEER_PORT API_PORT KWOK_PORT KCM_PORT SCHED_PORT; do
    port=${!name}
    if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then die "$name=$port is not a port number"; fi
    port_free "$port" || die "$name $port on 127.0.0.1 is already in use"
  done
  mkdir -p "$DIR" "$LOGS" "$KWOK_EXEC_WORKDIR" "$KUBECACHEDIR" "$XDG_CACHE_HOME"
  touch "$DIR/.k8senv" # marks the dir as ours for `clean`
  STARTED=() WAITING=
  trap 'on_start_failure' EXIT

  gen_pki
  write_kubeconfig
  write_kwok_config

  # (etcd reads ETCD_* variables as flags: keep ours away from it)
  start_bg etcd env -u ETCD_PORT -u ETCD_PEER_PORT "$BIN/etcd" --name k8senv --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "k8senv=http://127.0.0.1:$ETCD_PEER_PORT" \
    --quota-backend-bytes=4294967296 --snapshot-count=10000 --log-level=warn
  wait_for 30 etcd etcd curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

  start_bg kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --endpoint-reconciler-type=none \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=Node,RBAC --allow-privileged=true \
    --kubelet-client-certificate="$PKI/kubelet-client.crt" --kubelet-client-key="$PKI/kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP \
    --cert-dir="$DIR/apiserver-certs" --profiling=false
  wait_for 90 kube-apiserver kube-apiserver kc get --raw /readyz

  start_bg kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig="$KCFG" --authentication-kubeconfig="$KCFG" --authorization-kubeconfig="$KCFG" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --leader-elect=false \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --use-service-account-credentials=true \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --cert-dir="$DIR/kcm-certs" --profiling=false
  start_bg kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig="$KCFG" --authentication-kubeconfig="$KCFG" --authorization-kubeconfig="$KCFG" \
    --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --leader-elect=false \
    --cert-dir="$DIR/sched-certs" --profiling=false

  # kwok reads Exec/PortForward rules from these CRDs (watched: tests add per-pod rules at runtime)
  WAITING=kube-apiserver
  kc apply -f "$KWOKDATA/crds/kwok.x-k8s.io_clusterexecs.yaml" -f "$KWOKDATA/crds/kwok.x-k8s.io_execs.yaml" \
    -f "$KWOKDATA/crds/kwok.x-k8s.io_clusterportforwards.yaml" -f "$KWOKDATA/crds/kwok.x-k8s.io_portforwards.yaml" \
    >/dev/null
  kc wait --for=condition=Established --timeout=30s crd/clusterexecs.kwok.x-k8s.io crd/execs.kwok.x-k8s.io \
    crd/clusterportforwards.kwok.x-k8s.io crd/portforwards.kwok.x-k8s.io >/dev/null
  start_bg kwok "$BIN/kwok-patched" --kubeconfig="$KCFG" --config="$DIR/kwok.yaml" \
    --enable-crds=ClusterExec,Exec,ClusterPortForward,PortForward \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-ip=127.0.0.1 --node-port="$KWOK_PORT" --server-address="127.0.0.1:$KWOK_PORT" \
    --tls-cert-file="$PKI/kwok.crt" --tls-private-key-file="$PKI/kwok.key" \
    --cidr="$POD_CIDR" --node-lease-duration-seconds=40
  { node_manifest; echo ---; default_rules; echo ---; cat "$KWOKDATA/storage-class.yaml"; } |
    kc apply -f - >/dev/null
  wait_for 60 "node kwok-node-0" kwok kc wait --for=condition=Ready node/kwok-node-0 --timeout=1s
  # pods are refused until the ServiceAccount admission plugin finds the namespace's default SA
  wait_for 60 "default serviceaccount" kube-controller-manager kc -n default get serviceaccount default
  # both only log errors (e.g. a port taken meanwhile) and exit: make sure they serve
  wait_for 60 kube-controller-manager kube-controller-manager curl -fsk "https://127.0.0.1:$KCM_PORT/healthz"
  wait_for 60 kube-scheduler kube-scheduler curl -fsk "https://127.0.0.1:$SCHED_PORT/healthz"
  for c in "${COMPONENTS[@]}"; do alive "$c" || die "$c exited during start"; done
  start_watchdog
  trap - EXIT
  log "cluster up in $((SECONDS - t0))s: export KUBECONFIG=$KCFG"
}

# term_wait <name...>: SIGTERM the given components, wait up to 10 s, then SIGKILL
term_wait() {
  local c pid pids=() i
  for c in "$@"; do
    if pid=$(pid_of "$c"); then
      kill "$pid" 2>/dev/null || true
      pids+=("$pid")
      log "stopping $c (pid $pid)"
    fi
    rm -f "$DIR/$c.pid"
  done
  for pid in "${pids[@]}"; do
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null || true
      log "pid $pid did not stop in 10s: killed"
    fi
  done
}

stop() {
  [[ -d $DIR ]] || return 0
  # the watchdog runs `up.sh stop` itself; it must not kill itself
  if [[ -z ${K8SENV_IN_WATCHDOG:-} ]]; then term_wait watchdog; fi
  term_wait kwok kube-scheduler kube-controller-manager kube-apiserver
  term_wait etcd # last: the others write to it while shutting down
  rm -f "$DIR/watchdog.pid"
}

status() {
  local c pid rc=0
  for c in "${COMPONENTS[@]}"; do
    if pid=$(pid_of "$c"); then echo "$c: running (pid $pid)"; else echo "$c: not running"; rc=1; fi
  done
  return "$rc"
}

clean() {
  stop
  [[ -d $DIR ]] || return 0
  # never rm -rf a directory this script did not create (K8SENV_DIR pointing somewhere wrong)
  [[ -f $DIR/.k8senv ]] || die "$DIR has no .k8senv marker: not deleting it"
  rm -rf "$DIR"
  log "removed $DIR"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  clean) clean ;;
  env)
    resolve_bins
    printf 'export KUBECONFIG=%q KUBECACHEDIR=%q K8SENV_KUBECTL=%q\n' "$KCFG" "$KUBECACHEDIR" "$KUBECTL"
    ;;
  *)
    echo "usage: $0 start|stop|status|clean|env" >&2
    exit 2
    ;;
esac
