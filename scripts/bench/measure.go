package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/parallel"
	"github.com/opencsgs/helm-csghub/internal/readiness"
	"github.com/opencsgs/helm-csghub/internal/upgrade"
)

// best runs f -repeat times and keeps the fastest run (on a shared machine the
// fastest is the least disturbed one).
func (b *bench) best(what string, f func(i int) (cmdResult, error)) (cmdResult, error) {
	var best cmdResult
	for i := 0; i < b.cfg.repeat; i++ {
		r, err := f(i)
		if err != nil {
			return r, err
		}
		logf("%s: %.2fs", what, r.wall.Seconds())
		if i == 0 || r.wall < best.wall {
			best = r
		}
	}
	return best, nil
}

// ---- backup (issue 3)

func (b *bench) backupPhase(ctx context.Context) error {
	f := &backupFigures{}
	b.res.Backup = f
	pg := b.currentPG()

	// 1. the floor: pg_dumpall on the server's socket, output thrown away
	direct, err := b.best("pg_dumpall > /dev/null", func(int) (cmdResult, error) {
		return b.runCmd(ctx, cmdSpec{name: "pg_dumpall", args: []string{"-U", "csghub"}, env: pg.Env()})
	})
	if err != nil {
		return err
	}

	// 2. the plugin, through the exec stream, compressed and checksummed
	b.backupDir = filepath.Join(b.work, "backups")
	var m *backup.Manifest
	plugin, err := b.best("helm csghub backup", func(int) (cmdResult, error) {
		r, err := b.runCmd(ctx, cmdSpec{name: b.cfg.plugin, env: b.pluginEnv(), capture: true,
			args: []string{"backup", "--dir", b.backupDir, "--keep", strconv.Itoa(b.cfg.repeat + 2), "-o", "json"}})
		if err != nil {
			return r, err
		}
		var out struct {
			Manifest *backup.Manifest `json:"manifest"`
		}
		if err := json.Unmarshal(r.stdout, &out); err != nil || out.Manifest == nil {
			return r, fmt.Errorf("backup -o json printed no manifest (%v): %.300s", err, r.stdout)
		}
		m = out.Manifest
		return r, nil
	})
	if err != nil {
		return err
	}
	b.backupID, b.backupRaw = m.ID, m.TotalRawBytes()
	f.SQLBytes, f.CompressedBytes, f.Databases = m.TotalRawBytes(), m.TotalBytes(), len(m.Databases)
	f.Direct = newTiming(direct, f.SQLBytes, false)
	f.Plugin = newTiming(plugin, f.SQLBytes, true)

	// 3. the guide: pg_dumpall to a file "in the pod", then kubectl cp
	var g guideBackup
	_, err = b.best("guide: kubectl exec pg_dumpall -f + kubectl cp", func(int) (cmdResult, error) {
		r, gb, err := b.guideBackup(ctx)
		if err == nil && (g.Seconds == 0 || gb.Seconds < g.Seconds) {
			g = gb
		}
		return r, err
	})
	if err != nil {
		return err
	}
	g.MBps = mbps(f.SQLBytes, g.Seconds)
	f.Guide = g
	f.PluginVsDirect = ratio(f.Direct.Seconds, f.Plugin.Seconds)
	f.PluginSpeedupVsGuide = ratio(g.Seconds, f.Plugin.Seconds)
	return nil
}

// guideBackup runs section 2.2 of the guide: the dump is written in the pod
// (kwok runs it on this host, in a scratch folder), then copied out.
func (b *bench) guideBackup(ctx context.Context) (cmdResult, guideBackup, error) {
	var g guideBackup
	dir, err := os.MkdirTemp(b.work, "guide-backup-")
	if err != nil {
		return cmdResult{}, g, err
	}
	defer os.RemoveAll(dir)
	podDir, localDir := filepath.Join(dir, "pod"), filepath.Join(dir, "local")
	for _, d := range []string{podDir, localDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return cmdResult{}, g, err
		}
	}
	podFile := filepath.Join(podDir, "all_dbs.sql")
	ex, err := b.runCmd(ctx, cmdSpec{name: b.s.Kubectl, env: b.kubectlEn,
		args: []string{"exec", dbPod, "-n", namespace, "--", "pg_dumpall", "-U", "csghub", "-f", podFile}})
	if err != nil {
		return ex, g, err
	}
	cp, err := b.runCmd(ctx, cmdSpec{name: b.s.Kubectl, env: b.kubectlEn, dir: localDir,
		args: []string{"cp", namespace + "/" + dbPod + ":" + podFile, "./all_dbs.sql"}})
	if err != nil {
		return cp, g, err
	}
	st, err := os.Stat(filepath.Join(localDir, "all_dbs.sql"))
	if err != nil {
		return cp, g, fmt.Errorf("kubectl cp left no all_dbs.sql: %w", err)
	}
	if pst, err := os.Stat(podFile); err == nil && pst.Size() != st.Size() {
		return cp, g, fmt.Errorf("kubectl cp copied %d of %d bytes", st.Size(), pst.Size())
	}
	g.ExecSeconds, g.CopySeconds, g.FileBytes = ex.wall.Seconds(), cp.wall.Seconds(), st.Size()
	g.Seconds = g.ExecSeconds + g.CopySeconds
	return cmdResult{wall: ex.wall + cp.wall}, g, nil
}

// ---- restore (issue 6)

func (b *bench) restorePhase(ctx context.Context) error {
	f := &restoreFigures{Parallel: b.cfg.parallel}
	b.res.Restore = f
	dir := filepath.Join(b.backupDir, namespace, release, b.backupID)
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return err
	}
	var m backup.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	f.SQLBytes = m.TotalRawBytes()

	// 4. the floor: the plugin's replay, done by hand on the server's socket
	direct, err := b.best("direct replay with psql", func(int) (cmdResult, error) {
		busy0, t0 := hostBusy(), time.Now()
		err := b.directRestore(ctx, dir, &m)
		return cmdResult{wall: time.Since(t0), hostBusy: hostBusy() - busy0}, err
	})
	if err != nil {
		return err
	}

	// 5. the plugin
	plugin, err := b.best("helm csghub restore", func(int) (cmdResult, error) {
		r, err := b.runCmd(ctx, cmdSpec{name: b.cfg.plugin, env: b.pluginEnv(), capture: true,
			args: []string{"restore", "--backup", b.backupID, "--dir", b.backupDir, "--yes", "-o", "json",
				"--parallel", strconv.Itoa(b.cfg.parallel)}})
		if err != nil {
			return r, err
		}
		var out struct {
			Bytes int64 `json:"sqlBytes"`
		}
		if err := json.Unmarshal(r.stdout, &out); err != nil || out.Bytes == 0 {
			return r, fmt.Errorf("restore -o json: no sqlBytes (%v): %.300s", err, r.stdout)
		}
		return r, nil
	})
	if err != nil {
		return err
	}
	f.Direct = newTiming(direct, f.SQLBytes, false)
	f.Plugin = newTiming(plugin, f.SQLBytes, true)
	f.PluginVsDirect = ratio(f.Direct.Seconds, f.Plugin.Seconds)

	// for reference: the full check of the backup (restore does it on the way)
	v, err := b.runCmd(ctx, cmdSpec{name: b.cfg.plugin, env: b.pluginEnv(), capture: true,
		args: []string{"backup", "verify", b.backupID, "--dir", b.backupDir, "-o", "json"}})
	if err != nil {
		return err
	}
	f.VerifySeconds = v.wall.Seconds()
	return nil
}

// directRestore replays a backup the way the plugin does, without the exec
// stream: roles (errors on existing roles ignored), then per database, biggest
// first and -restore-parallel at once, DROP ... WITH (FORCE) and the dump into
// psql connected to template1.
func (b *bench) directRestore(ctx context.Context, dir string, m *backup.Manifest) error {
	env := b.currentPG().Env()
	var dbs []backup.Dump
	for _, d := range m.Dumps {
		if d.Database == "" {
			if err := zstdToPsql(ctx, filepath.Join(dir, d.Name), env, "-X", "-q", "-v", "ON_ERROR_STOP=0", "-d", "postgres"); err != nil {
				return fmt.Errorf("roles: %w", err)
			}
			continue
		}
		dbs = append(dbs, d)
	}
	sort.Slice(dbs, func(i, j int) bool { return dbs[i].RawBytes > dbs[j].RawBytes })
	return parallel.ForEach(ctx, b.cfg.parallel, dbs, func(ctx context.Context, d backup.Dump) error {
		drop := "DROP DATABASE IF EXISTS " + pgx.Identifier{d.Database}.Sanitize() + " WITH (FORCE)"
		cmd := exec.CommandContext(ctx, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "template1", "-c", drop)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", drop, err, out)
		}
		if err := zstdToPsql(ctx, filepath.Join(dir, d.Name), env, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "template1"); err != nil {
			return fmt.Errorf("database %s: %w", d.Database, err)
		}
		return nil
	})
}

// zstdToPsql runs `zstd -dc file | psql args...` with an OS pipe between the
// two (no copy through this process).
func zstdToPsql(ctx context.Context, file string, env []string, args ...string) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	z := exec.CommandContext(ctx, "zstd", "-dcq", file)
	z.Stdout = w
	zErr := &tailWriter{max: 2048}
	z.Stderr = zErr
	p := exec.CommandContext(ctx, "psql", args...)
	p.Env = append(os.Environ(), env...)
	p.Stdin = r
	pErr := &tailWriter{max: 4096}
	p.Stderr = pErr
	if err := z.Start(); err != nil {
		r.Close()
		w.Close()
		return err
	}
	if err := p.Start(); err != nil {
		r.Close()
		w.Close()
		_ = z.Process.Kill()
		_ = z.Wait()
		return err
	}
	r.Close()
	w.Close()
	errP := p.Wait()
	errZ := z.Wait()
	if errP != nil {
		return fmt.Errorf("psql: %v\n%s", errP, indent(pErr.String()))
	}
	if errZ != nil {
		return fmt.Errorf("zstd: %v\n%s", errZ, indent(zErr.String()))
	}
	return nil
}

// ---- upgrade (issue 5)

func (b *bench) upgradePhase(ctx context.Context) error {
	f := &upgradeFigures{From: fromVersion, To: b.cfg.upgradeVer}
	b.res.Upgrade = f

	// 6. the plugin, on a fresh 1.15.0 with the sample data
	if err := b.freshRelease(ctx, "pg-up-plugin", true); err != nil {
		return err
	}
	logf("helm csghub upgrade --version %s", f.To)
	r, err := b.runCmd(ctx, cmdSpec{name: b.cfg.plugin, env: b.pluginEnv(), capture: true,
		args: []string{"upgrade", "--version", f.To, "--yes", "-o", "json", "--dir", filepath.Join(b.work, "upgrade-backups"), "--timeout", "5m",
			"--skip-dataflow-logs"}}) // the bench stack runs no MongoDB stand-in; make bench-logs measures the move
	if err != nil {
		return fmt.Errorf("%w\nstdout: %.2000s", err, r.stdout)
	}
	sum, err := lastSummary(r.stdout)
	if err != nil {
		return err
	}
	p := &f.Plugin
	p.WallSeconds, p.MaxRSSKiB = r.wall.Seconds(), r.maxRSSKiB
	p.Steps = map[string]float64{}
	for k, v := range sum.Steps {
		p.Steps[k] = v.Seconds()
	}
	if sum.Readiness != nil {
		p.ReadinessWaitedSeconds = sum.Readiness.Waited.Seconds()
	}
	p.OwnSeconds = p.WallSeconds - p.Steps["helm-upgrade"] - p.Steps["backup"] - p.ReadinessWaitedSeconds
	logf("plugin upgrade: %.2fs wall, own time %.2fs", p.WallSeconds, p.OwnSeconds)

	// 7. the guide's steps, scripted, on another fresh 1.15.0 with the same data
	if err := b.freshRelease(ctx, "pg-up-guide", true); err != nil {
		return err
	}
	steps, err := b.guideUpgrade(ctx, f.To)
	f.Guide.Steps = steps
	for _, s := range steps {
		f.Guide.TotalSeconds += s.Seconds
	}
	if err != nil {
		return fmt.Errorf("guide's upgrade steps: %w", err)
	}
	f.Guide.Complete = true
	logf("guide upgrade: %.2fs", f.Guide.TotalSeconds)
	f.PluginVsGuide = ratio(f.Guide.TotalSeconds, p.WallSeconds)
	return nil
}

func lastSummary(out []byte) (*upgrade.Summary, error) {
	var sum *upgrade.Summary
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		var kind struct {
			Event string `json:"event"`
		}
		if err := json.Unmarshal(line, &kind); err != nil {
			return nil, fmt.Errorf("upgrade -o json printed a non-JSON line: %.200s", line)
		}
		if kind.Event == "summary" {
			sum = &upgrade.Summary{}
			if err := json.Unmarshal(line, sum); err != nil {
				return nil, fmt.Errorf("upgrade summary: %w", err)
			}
		}
	}
	if sum == nil {
		return nil, fmt.Errorf("upgrade -o json printed no summary: %.500s", out)
	}
	return sum, nil
}

// guideUpgrade scripts sections 2 to 4 of the guide with helm and kubectl:
// values, dump + copy, the 1.16.0 CRDs, the 1.17.0 takeover, helm upgrade and
// the two kubectl waits. Each step is timed.
func (b *bench) guideUpgrade(ctx context.Context, to string) ([]namedSeconds, error) {
	dir, err := os.MkdirTemp(b.work, "guide-upgrade-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	podDir := filepath.Join(dir, "pod")
	if err := os.MkdirAll(podDir, 0o755); err != nil {
		return nil, err
	}
	values := filepath.Join(dir, "csghub-values-backup.yaml")
	crds := filepath.Join(dir, "crds.yaml")
	podFile := filepath.Join(podDir, "all_dbs.sql")
	var steps []namedSeconds
	step := func(name string, f func() error) error {
		t0 := time.Now()
		err := f()
		steps = append(steps, namedSeconds{Name: name, Seconds: time.Since(t0).Seconds()})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	kubectl := func(args ...string) error { _, err := b.kubectl(ctx, args...); return err }
	for _, s := range []struct {
		name string
		f    func() error
	}{
		{"helm get values > file", func() error {
			out, err := b.helm(ctx, "get", "values", release, "-n", namespace, "-o", "yaml")
			if err != nil {
				return err
			}
			return os.WriteFile(values, out, 0o600)
		}},
		{"kubectl exec pg_dumpall -f", func() error {
			return kubectl("exec", dbPod, "-n", namespace, "--", "pg_dumpall", "-U", "csghub", "-f", podFile)
		}},
		{"kubectl cp", func() error {
			_, err := b.runCmd(ctx, cmdSpec{name: b.s.Kubectl, env: b.kubectlEn, dir: dir,
				args: []string{"cp", namespace + "/" + dbPod + ":" + podFile, "./all_dbs.sql"}})
			return err
		}},
		{"helm repo update", func() error { _, err := b.helm(ctx, "repo", "update", "csghub"); return err }},
		{"CRDs: helm show crds | kubectl apply --server-side", func() error {
			out, err := b.helm(ctx, "show", "crds", "csghub/csghub", "--version", to)
			if err != nil {
				return err
			}
			if err := os.WriteFile(crds, out, 0o600); err != nil {
				return err
			}
			if err := kubectl("apply", "--server-side", "-f", crds); err != nil {
				return err
			}
			return kubectl("wait", "--for=condition=Established", "-f", crds, "--timeout=120s")
		}},
		{"takeover: label/annotate knative/argo/lws objects", func() error { return b.guideTakeover(ctx) }},
		// the init Jobs' pod template is immutable: within their 5-minute TTL a
		// plain helm upgrade fails on them (the plugin does the same delete)
		{"kubectl delete job (finished init Jobs)", func() error {
			return kubectl("-n", namespace, "delete", "job", release+"-casdoor", release+"-server", "--ignore-not-found", "--cascade=background")
		}},
		{"helm upgrade -f values --version", func() error {
			_, err := b.helm(ctx, "upgrade", release, "csghub/csghub", "-n", namespace, "-f", values, "--version", to)
			return err
		}},
		{"kubectl wait Ready -n csghub", func() error { return b.waitPods(ctx, namespace) }},
		{"kubectl wait Ready -n knative-serving", func() error { return b.waitPods(ctx, "knative-serving") }},
	} {
		if err := step(s.name, s.f); err != nil {
			return steps, err
		}
	}
	return steps, nil
}

// guideTakeover does what the guide's crds_takeover.sh does: give existing
// Knative, Argo and LWS objects Helm's ownership metadata (on a 1.15.0 start
// there is usually nothing to adopt, but the script still looks).
func (b *bench) guideTakeover(ctx context.Context) error {
	out, err := b.kubectl(ctx, "get", "crd,mutatingwebhookconfigurations,validatingwebhookconfigurations", "-o", "name")
	if err != nil {
		return err
	}
	var objs []string
	for _, o := range strings.Fields(string(out)) {
		for _, g := range []string{".knative.dev", ".argoproj.io", ".leaderworkerset.x-k8s.io"} {
			if strings.HasPrefix(o, "customresourcedefinition") && strings.HasSuffix(o, g) {
				objs = append(objs, o)
			}
		}
		if strings.Contains(o, "webhookconfiguration") && strings.Contains(o, "lws") {
			objs = append(objs, o)
		}
	}
	ns, err := b.kubectl(ctx, "get", "namespace", "knative-serving", "--ignore-not-found", "-o", "name")
	if err != nil {
		return err
	}
	objs = append(objs, strings.Fields(string(ns))...)
	if len(objs) == 0 {
		return nil
	}
	if _, err := b.kubectl(ctx, append([]string{"label", "--overwrite"}, append(objs, "app.kubernetes.io/managed-by=Helm")...)...); err != nil {
		return err
	}
	_, err = b.kubectl(ctx, append([]string{"annotate", "--overwrite"}, append(objs,
		"meta.helm.sh/release-name="+release, "meta.helm.sh/release-namespace="+namespace)...)...)
	return err
}

// waitPods is the guide's `kubectl wait --for=condition=Ready pod -l '!job-name'`;
// it is repeated while the pods do not exist yet or are being replaced (kubectl
// wait fails then), as someone following the guide would.
func (b *bench) waitPods(ctx context.Context, ns string) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		_, err := b.kubectl(ctx, "wait", "--for=condition=Ready", "pod", "-l", "!job-name", "-n", ns, "--timeout=300s")
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		sleepCtx(ctx, 500*time.Millisecond)
	}
}

// ---- readiness notice latency

func (b *bench) readinessPhase(ctx context.Context) error {
	const ns = "bench-readiness"
	f := &readinessFigures{Replicas: b.cfg.replicas}
	b.res.Readiness = f
	_, err := b.s.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	// the observer's own client: its watch does not share a connection with the waiter
	watcher, err := kubernetes.NewForConfig(b.s.Config)
	if err != nil {
		return err
	}
	for i := 1; i <= b.cfg.reps; i++ {
		run, err := b.readinessRun(ctx, watcher, ns, fmt.Sprintf("ready-%d", i))
		if err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
		logf("readiness run %d: waiter reported %.0f ms after the last pod's Ready event (%.0f ms after the rollout completed)",
			i, run.LatencyMs, run.AfterRolloutMs)
		f.Runs = append(f.Runs, run)
		if i == 1 || run.LatencyMs > f.MaxLatencyMs {
			f.MaxLatencyMs = run.LatencyMs
		}
	}
	return nil
}

// readinessRun creates a Deployment of -replicas pods while the plugin's
// waiter and an independent watch observe the namespace; the latency is the
// waiter's ReadyAt minus the arrival of the last pod's Ready event.
func (b *bench) readinessRun(ctx context.Context, watcher kubernetes.Interface, ns, name string) (readinessRun, error) {
	var run readinessRun
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	n := int32(b.cfg.replicas)
	sel := metav1.ListOptions{LabelSelector: "app=" + name}

	var mu sync.Mutex
	readyAt := map[string]time.Time{}
	var rolledOut time.Time
	pw, err := watcher.CoreV1().Pods(ns).Watch(ctx, sel)
	if err != nil {
		return run, err
	}
	defer pw.Stop()
	dw, err := watcher.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		return run, err
	}
	defer dw.Stop()
	go func() {
		for ev := range pw.ResultChan() {
			now := time.Now()
			if p, ok := ev.Object.(*corev1.Pod); ok && kube.IsPodReady(p) {
				mu.Lock()
				if _, seen := readyAt[p.Name]; !seen {
					readyAt[p.Name] = now
				}
				mu.Unlock()
			}
		}
	}()
	go func() {
		for ev := range dw.ResultChan() {
			now := time.Now()
			if d, ok := ev.Object.(*appsv1.Deployment); ok && d.Status.ObservedGeneration >= d.Generation &&
				d.Status.Replicas == n && d.Status.UpdatedReplicas == n && d.Status.AvailableReplicas == n {
				mu.Lock()
				if rolledOut.IsZero() {
					rolledOut = now
				}
				mu.Unlock()
			}
		}
	}()

	type waitResult struct {
		rep *readiness.Report
		err error
	}
	done := make(chan waitResult, 1)
	go func() {
		w := &readiness.Waiter{Clientset: b.s.Clientset, Namespaces: []string{ns}, Timeout: 2 * time.Minute}
		rep, err := w.Wait(ctx)
		done <- waitResult{rep, err}
	}()

	labels := map[string]string{"app": name}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "bench/readiness:1"}}},
			},
		},
	}
	if _, err := b.s.Clientset.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		return run, err
	}
	wr := <-done
	if wr.err != nil {
		return run, fmt.Errorf("waiter: %w", wr.err)
	}
	// the observer's events may arrive a moment after the waiter's
	for t0 := time.Now(); ; {
		mu.Lock()
		got := len(readyAt)
		mu.Unlock()
		if got >= int(n) {
			break
		}
		if time.Since(t0) > 10*time.Second {
			return run, fmt.Errorf("the watch saw %d of %d pods Ready", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	var last time.Time
	for _, t := range readyAt {
		if t.After(last) {
			last = t
		}
	}
	ro := rolledOut
	mu.Unlock()
	run.LatencyMs = float64(wr.rep.ReadyAt.Sub(last).Microseconds()) / 1000
	if !ro.IsZero() {
		run.AfterRolloutMs = float64(wr.rep.ReadyAt.Sub(ro).Microseconds()) / 1000
	}
	run.WaitedMs = float64(wr.rep.Waited.Microseconds()) / 1000

	// clean up so the next run's waiter sees only its own pods
	bg := metav1.DeletePropagationBackground
	if err := b.s.Clientset.AppsV1().Deployments(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
		return run, err
	}
	for {
		pods, err := b.s.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err == nil && len(pods.Items) == 0 {
			return run, nil
		}
		if ctx.Err() != nil {
			return run, errors.New("pods of the previous run not gone")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
