package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencsgs/helm-csghub/internal/devenv"
	"github.com/opencsgs/helm-csghub/internal/testenv"
	"github.com/opencsgs/helm-csghub/internal/verify"
)

// parseVerify reads `verify -o json` (also the "verify" part of upgrade/rollback results).
func parseVerify(t *testing.T, out string) verify.Report {
	t.Helper()
	var rep verify.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("verify -o json: %v\n%s", err, out)
	}
	return rep
}

// statuses maps check name -> status, and fails unless every check is listed with a duration.
func statuses(t *testing.T, rep verify.Report) map[string]verify.Status {
	t.Helper()
	got := map[string]verify.Status{}
	for _, c := range rep.Checks {
		got[c.Name] = c.Status
		if c.Status != verify.Skipped && c.DurationMs <= 0 {
			t.Errorf("check %s has no duration", c.Name)
		}
	}
	if len(got) != len(verify.Names) {
		t.Fatalf("checks listed: %v, want all of %v", got, verify.Names)
	}
	return got
}

func requireAllPassed(t *testing.T, what string, rep *verify.Report) {
	t.Helper()
	if rep == nil {
		t.Fatalf("%s: no verification report", what)
	}
	for name, st := range statuses(t, *rep) {
		if st != verify.Passed {
			t.Errorf("%s: check %s %s: %+v", what, name, st, rep.Checks)
		}
	}
	if !rep.OK {
		t.Errorf("%s: report not OK", what)
	}
}

// Every check of the guide's section 6 passes after an upgrade and after a
// rollback; stopping each component's stand-in in turn fails exactly that
// check, with a one-line reason and exit 1; an upgrade whose verification
// fails is rolled back (exit 5).
func TestVerifyEveryCheck(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.16.0", "--set", "global.mongo.enabled=false") // no FerretDB needed
	dir := t.TempDir()

	r := e.Plugin("upgrade", "--version", "1.17.0", "--yes", "--dir", dir, "--timeout", "3m", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("upgrade: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	sum, _ := lastSummary(t, r.Stdout)
	requireAllPassed(t, "upgrade's verification", sum.Verify)

	v := e.Plugin("verify", "-o", "json")
	if v.Code != 0 {
		t.Fatalf("verify after upgrade: exit %d\n%s\n%s", v.Code, v.Stdout, v.Stderr)
	}
	rep := parseVerify(t, v.Stdout)
	requireAllPassed(t, "verify after upgrade", &rep)

	rb := e.Plugin("rollback", "1", "--yes", "--dir", dir, "-o", "json")
	if rb.Code != 0 {
		t.Fatalf("rollback: exit %d\n%s\n%s", rb.Code, rb.Stdout, rb.Stderr)
	}
	var res struct {
		ToChart string         `json:"toChartVersion"`
		Verify  *verify.Report `json:"verify"`
	}
	if err := json.Unmarshal([]byte(rb.Stdout), &res); err != nil || res.ToChart != "1.16.0" {
		t.Fatalf("rollback result: %v %s", err, rb.Stdout)
	}
	requireAllPassed(t, "rollback's verification", res.Verify)

	ctx := context.Background()
	pgStop := func() error { return e.PG.Stop() }
	pgStart := func() error {
		_, err := e.C.StartPostgresAt(e.PG.DataDir, e.PG.Port)
		return err
	}
	comp := func(name string) (func() error, func() error) {
		return func() error { return e.Components.Stop(name) }, func() error { return e.Components.Start(ctx, name) }
	}
	for _, tc := range []struct{ check, component string }{
		{verify.CheckWebUI, "portal"}, {verify.CheckAPI, "server"}, {verify.CheckLogin, "casdoor"},
		{verify.CheckDatabase, "postgresql"}, {verify.CheckObjectStorage, "minio"},
		{verify.CheckRedis, "redis"}, {verify.CheckGitaly, "gitaly"},
	} {
		stop, start := pgStop, pgStart
		if tc.component != "postgresql" {
			stop, start = comp(tc.component)
		}
		if err := stop(); err != nil {
			t.Fatalf("stop %s: %v", tc.component, err)
		}
		// a stopped component refuses connections: each check retries them
		// within its --timeout before it fails, so keep it short here
		v := e.Plugin("verify", "-o", "json", "--timeout", "8s")
		if err := start(); err != nil {
			t.Fatalf("start %s again: %v", tc.component, err)
		}
		if v.Code != 1 {
			t.Errorf("%s stopped: verify exit %d, want 1\n%s\n%s", tc.component, v.Code, v.Stdout, v.Stderr)
			continue
		}
		if s := pluginStderr(v.Stderr); !oneLineError(v.Stderr) || !strings.HasPrefix(s, "Error: verification failed: "+tc.check+": ") {
			t.Errorf("%s stopped: stderr is not one line naming check %s:\n%s", tc.component, tc.check, v.Stderr)
		}
		for name, st := range statuses(t, parseVerify(t, v.Stdout)) {
			if want := map[bool]verify.Status{true: verify.Failed, false: verify.Passed}[name == tc.check]; st != want {
				t.Errorf("%s stopped: check %s %s, want %s", tc.component, name, st, want)
			}
		}
	}

	// --check / --skip-check
	v = e.Plugin("verify", "-o", "json", "--check", "redis,api", "--skip-check", "api")
	if v.Code != 0 {
		t.Fatalf("verify --check: exit %d: %s", v.Code, v.Stderr)
	}
	for name, st := range statuses(t, parseVerify(t, v.Stdout)) {
		if want := map[bool]verify.Status{true: verify.Passed, false: verify.Skipped}[name == "redis"]; st != want {
			t.Errorf("--check redis,api --skip-check api: %s %s, want %s", name, st, want)
		}
	}
	if v := e.Plugin("verify", "--check", "s3"); v.Code != 2 || !strings.Contains(v.Stderr, `unknown check "s3"`) {
		t.Errorf("unknown check: exit %d: %s", v.Code, v.Stderr)
	}

	// an upgrade whose verification fails is rolled back
	if err := e.Components.Stop("redis"); err != nil {
		t.Fatal(err)
	}
	// the verify step retries Redis's refused connections for
	// --verify-timeout, not for all that --timeout leaves
	start := time.Now()
	r = e.Plugin("upgrade", "--version", "1.17.0", "--yes", "--dir", dir, "--timeout", "5m", "--verify-timeout", "10s", "-o", "json")
	took := time.Since(start)
	if err := e.Components.Start(ctx, "redis"); err != nil {
		t.Fatal(err)
	}
	if r.Code != 5 || !strings.Contains(r.Stderr, "verify") || !strings.Contains(r.Stderr, "redis") {
		t.Fatalf("upgrade with Redis down: exit %d, want 5 naming the redis check\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	// redis failed after its own 10s, not the 30s default of a check nor
	// the minutes --timeout had left
	sum, _ = lastSummary(t, r.Stdout)
	checks := map[string]verify.Check{}
	if sum.Verify != nil {
		for _, c := range sum.Verify.Checks {
			checks[c.Name] = c
		}
	}
	if c, ok := checks[verify.CheckRedis]; !ok || c.Status != verify.Failed || c.DurationMs < 9000 || c.DurationMs > 20000 {
		t.Fatalf("upgrade --verify-timeout 10s with Redis down: redis check %+v (took %s in all), want failed after about 10s", c, took.Round(time.Second))
	}
	wantDeployed(t, e, "1.16.0", 0, "after the automatic rollback")
}

// External S3 (global.objectStore.enabled=false): the configured bucket is
// checked with the release's credentials, which never appear in the output;
// Redis and Gitaly disabled in values are skipped, not failed.
func TestVerifyExternalObjectStorage(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	ports, err := devenv.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	const key, secret = "hub-access", "hub-secret-Xq81"
	m, err := e.C.StartMinIO(filepath.Join(t.TempDir(), "s3"), ports[0], key, secret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop() })
	ctx := context.Background()
	if err := m.MakeBuckets(ctx, "", "csghub-server"); err != nil {
		t.Fatal(err)
	}
	e.Install("2.0.0",
		"--set", "global.objectStore.enabled=false",
		"--set", "global.objectStore.external.endpoint=http://"+m.Endpoint,
		"--set", "global.objectStore.external.accessKey="+key,
		"--set", "global.objectStore.external.secretKey="+secret,
		"--set", "global.redis.enabled=false", "--set", "global.gitaly.enabled=false")

	v := e.Plugin("verify", "-o", "json")
	if v.Code != 0 {
		t.Fatalf("verify: exit %d\n%s\n%s", v.Code, v.Stdout, v.Stderr)
	}
	want := map[string]verify.Status{verify.CheckRedis: verify.Skipped, verify.CheckGitaly: verify.Skipped}
	rep := parseVerify(t, v.Stdout)
	for name, st := range statuses(t, rep) {
		w, ok := want[name]
		if !ok {
			w = verify.Passed
		}
		if st != w {
			t.Errorf("check %s %s, want %s: %+v", name, st, w, rep.Checks)
		}
	}
	if !strings.Contains(v.Stdout, "external object storage "+m.Endpoint+": bucket csghub-server exists") {
		t.Errorf("object storage detail: %s", v.Stdout)
	}

	cl, err := m.Client()
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.RemoveBucket(ctx, "csghub-server"); err != nil {
		t.Fatal(err)
	}
	v = e.Plugin("verify")
	if v.Code != 1 || !strings.Contains(v.Stderr, "object-storage: external object storage "+m.Endpoint+" answers, but bucket csghub-server does not exist") {
		t.Fatalf("bucket gone: exit %d\n%s\n%s", v.Code, v.Stdout, v.Stderr)
	}
	for _, out := range []string{v.Stdout, v.Stderr} {
		if strings.Contains(out, secret) {
			t.Errorf("the secret key is in the output: %s", out)
		}
	}
}

// Issue 27 item 12: a connection that drops unanswered (the stand-in closes
// it; KWOK's port-forward does not pass that on, so the request hangs) is
// given up after its attempt's third of --timeout and tried again on a
// freshly picked pod, and the check passes saying after how many attempts,
// in the JSON report and in the table; nothing fails, exit 0.
func TestVerifyRetriesADroppedConnection(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.16.0", "--set", "global.mongo.enabled=false") // no FerretDB needed
	e.Components.DropNext("server", 1)
	e.Components.DropNext("portal", 1)
	v := e.Plugin("verify", "--timeout", "15s", "-o", "json") // 5 s an attempt
	if v.Code != 0 {
		t.Fatalf("verify with dropped connections: exit %d\n%s%s", v.Code, v.Stdout, v.Stderr)
	}
	rep := parseVerify(t, v.Stdout)
	requireAllPassed(t, "verify with dropped connections", &rep)
	for _, c := range rep.Checks {
		if c.Attempts > 1 && !strings.Contains(c.Detail, fmt.Sprintf("passed after %d attempts", c.Attempts)) ||
			(c.Name == verify.CheckAPI || c.Name == verify.CheckWebUI) && c.Attempts < 2 {
			t.Errorf("check %s: %d attempt(s): %s", c.Name, c.Attempts, c.Detail)
		}
	}
	e.Components.DropNext("server", 1)
	if v := e.Plugin("verify", "--timeout", "15s", "--check", verify.CheckAPI); v.Code != 0 || !strings.Contains(v.Stdout, "passed after 2 attempts") {
		t.Fatalf("verify table with a dropped connection: exit %d\n%s%s", v.Code, v.Stdout, v.Stderr)
	}
}
