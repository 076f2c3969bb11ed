package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opencsgs/helm-csghub/internal/testenv"
)

type badCase struct {
	args []string
	env  []string
	code int
}

// badInputCases builds the table: every command with each kind of bad input
// that applies to it, with the exit code the README documents.
func badInputCases(dir, backupID string) []badCase {
	type cmd struct {
		path   []string
		output bool // takes -o
		noArgs bool // takes no positional argument
	}
	cmds := []cmd{
		{[]string{"status"}, true, true},
		{[]string{"backup"}, true, true},
		{[]string{"backup", "list"}, true, true},
		{[]string{"backup", "verify", backupID}, true, false},
		{[]string{"plan"}, true, true},
		{[]string{"migrate", "--version", "2.0.0", "--dry-run"}, false, true},
		{[]string{"upgrade", "--yes"}, true, true},
		{[]string{"dataflow-logs", "export"}, true, true},
		{[]string{"dataflow-logs", "import"}, true, true},
		{[]string{"verify"}, true, true},
		{[]string{"rollback", "--yes"}, true, false},
		{[]string{"restore", "--backup", backupID, "--yes"}, true, true},
		{[]string{"history"}, true, true},
	}
	with := func(c cmd, extra ...string) []string {
		args := append([]string{}, c.path...)
		if c.path[0] != "status" && c.path[0] != "plan" && c.path[0] != "verify" {
			args = append(args, "--dir", dir)
		}
		return append(args, extra...)
	}
	var out []badCase
	add := func(code int, env []string, args ...string) {
		out = append(out, badCase{args: args, env: env, code: code})
	}
	for _, c := range cmds {
		add(2, nil, with(c, "--nosuch")...)
		add(2, nil, with(c, "--release")...)            // flag without its value
		add(2, nil, with(c, "--release", "../../x")...) // a path, not a name
		add(2, nil, with(c, "--release", strings.Repeat("a", 54))...)
		add(2, nil, with(c, "--release", "UPPER")...)
		add(2, nil, with(c, "--release", "a_b")...)
		add(2, []string{"KUBECONFIG=/nonexistent/kubeconfig"}, with(c)...)
		add(2, []string{"KUBECONFIG=/nonexistent/a:/nonexistent/b"}, with(c)...)
		if c.output {
			add(2, nil, with(c, "-o", "yaml")...)
			add(2, nil, with(c, "--output=")...)
		}
		if c.noArgs {
			add(2, nil, with(c, "extra")...)
		}
		if c.path[0] != "backup" || len(c.path) == 1 || c.path[1] != "list" { // an empty list is no error
			add(3, nil, with(c, "--release", "nosuchrelease")...)
		}
	}
	for _, sub := range []string{"nosuch", "backups", "upgrad"} {
		add(2, nil, sub)
	}
	add(2, nil, "backup", "nosuch", "--dir", dir)
	add(2, nil, "dataflow-logs")
	add(2, nil, "dataflow-logs", "nosuch")
	add(2, nil, "dataflow-logs", "--nosuch")
	add(2, nil, "version", "--nosuch")
	add(2, nil, "version", "extra")
	for _, k := range []string{"0", "1", "-1", "abc", ""} {
		add(2, nil, "backup", "--dir", dir, "--keep", k)
		add(2, nil, "upgrade", "--yes", "--dir", dir, "--keep", k)
	}
	add(2, nil, "backup", "list", "--dir", dir, "--keep", "0")
	add(2, nil, "backup", "verify", "--dir", dir)
	add(2, nil, "backup", "verify", "a", "b", "--dir", dir)
	add(3, nil, "backup", "verify", "nosuch", "--dir", dir)
	add(3, nil, "backup", "verify", "1-20200101T000000Z", "--dir", dir)
	add(3, nil, "backup", "verify", "../../../etc", "--dir", dir)
	// every check asked for also left out: refused, not "nothing ran, exit 0"
	add(2, nil, "verify", "--check", "api", "--skip-check", "api")
	add(2, nil, "verify", "--check", "redis,api", "--skip-check", "gitaly,api,redis")
	for _, to := range []string{"0", "-1s", "abc", "1x"} {
		add(2, nil, "verify", "--timeout", to)
		add(2, nil, "upgrade", "--yes", "--dir", dir, "--timeout", to)
		add(2, nil, "upgrade", "--yes", "--dir", dir, "--rollback-timeout", to)
		if to != "0" { // 0 is the default: what --timeout leaves
			add(2, nil, "upgrade", "--yes", "--dir", dir, "--verify-timeout", to)
		}
		add(2, nil, "rollback", "--yes", "--dir", dir, "--timeout", to)
	}
	for _, rev := range []string{"abc", "0", "-1", "1.5"} {
		add(2, nil, "rollback", rev, "--yes", "--dir", dir)
	}
	add(3, nil, "rollback", "99", "--yes", "--dir", dir)
	add(2, nil, "rollback", "2", "--yes", "--dir", dir) // the current revision
	add(2, nil, "rollback", "1", "2", "--yes", "--dir", dir)
	add(2, nil, "rollback", "1", "--yes", "--dir", dir, "--backup", backupID, "--skip-db-restore")
	add(3, nil, "rollback", "1", "--yes", "--dir", dir, "--backup", "nosuch")
	add(2, nil, "rollback", "1", "--dir", dir) // not confirmed: not a terminal
	add(2, nil, "restore", "--dir", dir, "--yes")
	add(2, nil, "restore", "--backup", backupID, "--dir", dir)
	add(3, nil, "restore", "--backup", "nosuch", "--dir", dir, "--yes")
	for _, p := range []string{"0", "-1", "x"} {
		add(2, nil, "restore", "--backup", backupID, "--dir", dir, "--yes", "--parallel", p)
	}
	for _, v := range []string{"latest-please", "x.y.z", "v2..0", "2.0.0.0"} {
		add(2, nil, "upgrade", "--yes", "--dir", dir, "--version", v)
		add(2, nil, "plan", "--version", v)
		add(2, nil, "migrate", "--dir", dir, "--version", v)
	}
	add(3, nil, "upgrade", "--yes", "--dir", dir, "--version", "1.14.0")
	add(3, nil, "plan", "--version", "9.9.9")
	add(2, nil, "migrate", "--dir", dir)
	add(2, nil, "upgrade", "--dir", dir, "--version", "2.0.0") // not confirmed
	add(2, nil, "upgrade", "--yes", "--dir", dir, "--version", "2.0.0", "--set", "server.replicas")
	add(2, nil, "upgrade", "--yes", "--dir", dir, "--version", "2.0.0", "-f", "/nonexistent/values.yaml")
	// issue 27 item 5: inputs that never end or are not files are refused
	// before anything reads them (they grew memory at ~150 MB/s before)
	for _, bad := range [][]string{{"-f", "/dev/zero"}, {"--set-file", "k=/dev/zero"}, {"-f", "-"}, {"-f", dir}} {
		add(2, nil, append([]string{"upgrade", "--yes", "--dir", dir, "--version", "2.0.0"}, bad...)...)
		add(2, nil, append([]string{"plan", "--version", "2.0.0"}, bad...)...)
		add(2, nil, append([]string{"migrate", "--dir", dir, "--version", "2.0.0", "--dry-run"}, bad...)...)
	}
	// the lease's duration (issue 27 item 6's e2e shortens it): bounded
	for _, secs := range []string{"2", "3601", "30s"} {
		lease := []string{"HELM_CSGHUB_LEASE_SECONDS=" + secs}
		add(2, lease, "restore", "--backup", backupID, "--dir", dir, "--yes")
		add(2, lease, "backup", "--dir", dir)
	}
	add(2, []string{"HELM_CSGHUB_LEASE_SECONDS=0"}, "upgrade", "--yes", "--dir", dir, "--version", "2.0.0")
	add(2, nil, "dataflow-logs", "import", "--dir", dir, "--wait", "0")
	add(2, nil, "dataflow-logs", "import", "--dir", dir, "--wait", "-1s")
	return out
}

// unchanged is what a refused command must not touch.
type unchanged struct {
	history, policies, leases, catalog string
	db                                 testenv.Snapshot
}

func takeUnchanged(t *testing.T, e *testenv.Env, dir string) unchanged {
	t.Helper()
	ctx := context.Background()
	var u unchanged
	secs, err := e.C.Clientset.CoreV1().Secrets(e.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm"})
	if err != nil {
		t.Fatal(err)
	}
	var hist []string
	for _, s := range secs.Items {
		hist = append(hist, s.Name+"@"+s.ResourceVersion+"="+s.Labels["status"])
	}
	sort.Strings(hist)
	u.history = strings.Join(hist, " ")
	nps, err := e.C.Clientset.NetworkingV1().NetworkPolicies(e.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u.policies = fmt.Sprint(len(nps.Items))
	ls, err := e.C.Clientset.CoordinationV1().Leases(e.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u.leases = fmt.Sprint(len(ls.Items))
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			fi, _ := d.Info()
			files = append(files, fmt.Sprintf("%s %v %d %d", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano()))
		}
		return nil
	})
	u.catalog = strings.Join(files, "\n")
	u.db = testenv.TakeSnapshot(t, e.PG)
	return u
}

func (u unchanged) require(t *testing.T, got unchanged, batch string) {
	t.Helper()
	for _, c := range []struct{ what, a, b string }{{"release history", u.history, got.history},
		{"NetworkPolicies", u.policies, got.policies}, {"Leases", u.leases, got.leases}, {"backup catalog", u.catalog, got.catalog}} {
		if c.a != c.b {
			t.Fatalf("%s: %s changed:\n  before %s\n  after  %s", batch, c.what, c.a, c.b)
		}
	}
	testenv.RequireEqual(t, u.db, got.db, batch+": database")
}

// At least 150 distinct bad invocations across all commands: each exits with
// its documented code and one "Error:" line, and leaves release history,
// NetworkPolicies, Leases, the backup catalog and the database as they were
// (compared once per batch of cases).
func TestBadInputTable(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.LoadSampleData()
	dir := t.TempDir()
	b := runBackup(t, e, dir)
	e.MustHelm("upgrade", e.Release, "csghub/csghub", "--version", "1.15.0", "-n", e.Namespace, "--reuse-values") // revision 2
	cases := badInputCases(dir, b.Manifest.ID)
	seen := map[string]bool{}
	for _, c := range cases {
		k := strings.Join(c.env, " ") + "|" + strings.Join(c.args, " ")
		if seen[k] {
			t.Fatalf("duplicate case %s", k)
		}
		seen[k] = true
	}
	if len(cases) < 150 {
		t.Fatalf("only %d bad invocations", len(cases))
	}
	t.Logf("running %d distinct bad invocations", len(cases))
	fmt.Fprintf(os.Stderr, "bad-input table: %d distinct bad invocations\n", len(cases))
	const batch, workers = 60, 3
	for start := 0; start < len(cases); start += batch {
		end := min(start+batch, len(cases))
		before := takeUnchanged(t, e, dir)
		var mu sync.Mutex
		var failures []string
		work := make(chan badCase)
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for c := range work {
					r := e.RunHelm(c.env, append([]string{"-n", e.Namespace, "csghub"}, c.args...)...)
					if r.Code != c.code || errorLines(r.Stderr) != 1 {
						mu.Lock()
						failures = append(failures, fmt.Sprintf("%v %v: exit %d (want %d), stderr %q", c.env, c.args, r.Code, c.code, pluginStderr(r.Stderr)))
						mu.Unlock()
					}
				}
			}()
		}
		// upgrade and restore take the release's lock before some of their
		// checks: two of them at once would meet each other's lock (exit 4)
		var serial []badCase
		for _, c := range cases[start:end] {
			if c.args[0] == "upgrade" || c.args[0] == "restore" {
				serial = append(serial, c)
				continue
			}
			work <- c
		}
		close(work)
		wg.Wait()
		for _, c := range serial {
			r := e.RunHelm(c.env, append([]string{"-n", e.Namespace, "csghub"}, c.args...)...)
			if r.Code != c.code || errorLines(r.Stderr) != 1 {
				failures = append(failures, fmt.Sprintf("%v %v: exit %d (want %d), stderr %q", c.env, c.args, r.Code, c.code, pluginStderr(r.Stderr)))
			}
		}
		sort.Strings(failures)
		for _, f := range failures {
			t.Error(f)
		}
		before.require(t, takeUnchanged(t, e, dir), fmt.Sprintf("cases %d-%d", start+1, end))
	}
}
