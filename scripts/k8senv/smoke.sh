#!/usr/bin/env bash
# smoke.sh - end-to-end check of the local stack: builds (if needed), starts a cluster on free
# ports in a temp dir plus a throwaway PostgreSQL, checks workloads, exec (env, stdin EOF, exit
# codes), port-forward and both helm CLIs, then stops and removes everything.
# Usage: scripts/k8senv/smoke.sh        (exit 0 = all checks passed; KEEP=1 keeps the temp dir)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
T0=$SECONDS
ok() { printf 'OK   %-58s %3ss\n' "$*" "$((SECONDS - T0))"; }
fail() { printf 'FAIL %s\n' "$*" >&2; exit 1; }

# free_port: a random unused 127.0.0.1 port, avoiding ports handed out earlier in this run. Below
# Linux's ephemeral range (32768+), where a port can be taken by an outgoing connection at any time.
USED=" "
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    [[ $USED == *" $p "* || $USED == *" $((p + 1)) "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && ! (exec 3<>"/dev/tcp/127.0.0.1/$((p + 1))") 2>/dev/null; then
      USED+="$p $((p + 1)) "
      echo "$p"
      return
    fi
  done
}

WORK=$(mktemp -d /tmp/k8senv-smoke.XXXXXX)
export K8SENV_DIR=$WORK/cluster
export ETCD_PORT API_PORT KWOK_PORT KCM_PORT SCHED_PORT
ETCD_PORT=$(free_port) API_PORT=$(free_port) KWOK_PORT=$(free_port) KCM_PORT=$(free_port) SCHED_PORT=$(free_port)
PG_PORT=$(free_port) FWD_PORT=$(free_port)
PF_PID=
cleanup() {
  local rc=$?
  if [[ -n $PF_PID ]]; then kill "$PF_PID" 2>/dev/null || true; fi
  "$HERE/up.sh" stop || true
  "$REPO/scripts/pg.sh" stop "$WORK/pg/data" || true
  if ((rc != 0)); then echo "logs: $K8SENV_DIR/logs, $WORK/pg/pg.log" >&2; fi
  if [[ -z ${KEEP:-} && $rc == 0 ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

HELM3=$("$REPO/scripts/tools.sh" path helm3)
HELM4=$("$REPO/scripts/tools.sh" path helm4)
KUBECTL=$("$REPO/scripts/tools.sh" path kubectl)
export KUBECONFIG=$K8SENV_DIR/kubeconfig KUBECACHEDIR=$WORK/kube-cache XDG_CACHE_HOME=$WORK/xdg-cache
export HELM_CACHE_HOME=$WORK/helm/cache HELM_CONFIG_HOME=$WORK/helm/config HELM_DATA_HOME=$WORK/helm/data
kc() { "$KUBECTL" "$@"; }

"$HERE/up.sh" start 2>"$WORK/up.log" || { cat "$WORK/up.log" >&2; fail "up.sh start"; }
ok "cluster up (api 127.0.0.1:$API_PORT)"

"$REPO/scripts/pg.sh" init "$WORK/pg/data"
read -r h p <<<"$("$REPO/scripts/pg.sh" start "$WORK/pg/data" "$PG_PORT")" # PGHOST=... PGPORT=...
export PGHOST=${h#PGHOST=} PGPORT=${p#PGPORT=}
psql -U csghub -Atc "ALTER ROLE csghub PASSWORD 'smoke-pw'" >/dev/null
ok "postgres on 127.0.0.1:$PGPORT (socket $PGHOST)"

kc apply -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: nginx:1.27}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: pg}
spec:
  serviceName: pg
  replicas: 1
  selector: {matchLabels: {app: pg}}
  template:
    metadata: {labels: {app: pg}}
    spec:
      containers: [{name: postgres, image: opencsghq/postgres:15.10}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: ["true"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: bare}
spec:
  restartPolicy: Never
  containers: [{name: c, image: busybox}]
EOF
kc rollout status deploy/web --timeout=60s >/dev/null
kc rollout status sts/pg --timeout=60s >/dev/null
kc wait --for=condition=complete job/once --timeout=60s >/dev/null
kc wait --for=jsonpath='{.status.phase}'=Succeeded pod/bare --timeout=60s >/dev/null
[[ $(kc get pvc data-pg-0 -o jsonpath='{.status.phase}') == Bound ]] || fail "pvc data-pg-0 not Bound"
ok "deploy 2/2, sts 1/1 (PVC Bound), job Complete, bare pod Succeeded"

# per-pod exec rule: commands "in" pg-0 run on this host with the throwaway server's env
kc apply -f - >/dev/null <<EOF
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Exec
metadata:
  name: pg-0
  namespace: default
spec:
  execs:
  - local:
      workDir: $WORK
      envs:
      - {name: PGHOST, value: "$PGHOST"}
      - {name: PGPORT, value: "$PGPORT"}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: PortForward
metadata:
  name: pg-0
  namespace: default
spec:
  forwards:
  - ports: [5432]
    target: {address: 127.0.0.1, port: $PGPORT}
EOF
# kwok picks new rules up from a watch: retry briefly
out=
for _ in $(seq 1 50); do
  out=$(kc exec pg-0 -- psql -U csghub -Atc 'select 6*7' 2>/dev/null) && [[ $out == 42 ]] && break
  sleep 0.2
done
[[ $out == 42 ]] || fail "kubectl exec pg-0 -- psql: got '$out'"
ok "kubectl exec pg-0 -- psql (per-pod Exec env) -> $out"

out=$(printf 'select 1+1;\n' | timeout 20 "$KUBECTL" exec -i pg-0 -- psql -U csghub -At) ||
  fail "kubectl exec -i with stdin (rc=$?; unpatched kwok never sends EOF)"
[[ $out == 2 ]] || fail "kubectl exec -i: got '$out'"
ok "kubectl exec -i: stdin reaches EOF -> $out"

rc=0
kc exec pg-0 -- sh -c 'exit 3' 2>/dev/null || rc=$?
[[ $rc == 3 ]] || fail "exec exit code: got $rc, want 3"
rc=0
kc exec pg-0 -- psql -U csghub -Atc 'select broken' >/dev/null 2>&1 || rc=$?
[[ $rc != 0 ]] || fail "failing psql through exec returned 0"
ok "exit codes propagate (sh -c 'exit 3' -> 3, failing psql -> $rc)"

kc port-forward pod/pg-0 "$FWD_PORT:5432" >"$WORK/pf.log" 2>&1 &
PF_PID=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$FWD_PORT") 2>/dev/null && break; sleep 0.1; done
out=$(PGPASSWORD=smoke-pw PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -p "$FWD_PORT" -U csghub -Atc 'select current_user') ||
  fail "psql through port-forward"
[[ $out == csghub ]] || fail "port-forward: got '$out'"
kill "$PF_PID"
wait "$PF_PID" 2>/dev/null || true
PF_PID=
ok "port-forward pod/pg-0 $FWD_PORT:5432 -> 127.0.0.1:$PGPORT (password auth)"

v3=$("$HELM3" version --short) v4=$("$HELM4" version --short)
ok "helm versions: $v3 / $v4"
chart=$WORK/chart
mkdir -p "$chart/templates"
printf 'apiVersion: v2\nname: tiny\nversion: 0.1.0\n' >"$chart/Chart.yaml"
printf 'replicas: 1\nimage: postgres:15\n' >"$chart/values.yaml"
cat >"$chart/templates/sts.yaml" <<'EOF'
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: {{ .Release.Name }}-db}
spec:
  serviceName: {{ .Release.Name }}-db
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: {{ .Release.Name }}-db}}
  template:
    metadata: {labels: {app: {{ .Release.Name }}-db}}
    spec:
      containers: [{name: postgres, image: {{ .Values.image }}}]
EOF
"$HELM3" install smoke "$chart" --wait --timeout 60s >/dev/null || fail "helm3 install --wait"
"$HELM4" upgrade smoke "$chart" --set replicas=2 --set image=postgres:16 --wait --timeout 60s >/dev/null ||
  fail "helm4 upgrade --wait"
n=$(kc get pods -l app=smoke-db -o jsonpath='{range .items[*]}{.spec.containers[0].image}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c 'postgres:16 True' || true)
[[ $n == 2 ]] || fail "after helm4 upgrade: $n of 2 pods postgres:16 Ready"
"$HELM3" history smoke >/dev/null || fail "helm3 history after a helm4 upgrade"
ok "helm3 install --wait, helm4 upgrade --wait (2/2 postgres:16 Ready)"

"$HELM4" uninstall smoke --wait >/dev/null
trap - EXIT
cleanup
ok "stopped and cleaned up"
