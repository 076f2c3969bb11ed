package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := &App{Env: helmenv.New(), Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader("")}
	code := Main(context.Background(), app, args)
	return code, out.String(), errOut.String()
}

func TestUsageErrorsAreOneLineExit2(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"nosuch"},
		{"--bogus"},
		{"status", "--bogus"},
		{"status", "extra"},
		{"status", "-o", "yaml"},
		{"version", "-o"},
	} {
		code, _, stderr := run(t, args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
		if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "Error: ") {
			t.Errorf("%v: stderr %q, want a single Error: line", args, stderr)
		}
	}
}

func TestHelpOnEveryCommand(t *testing.T) {
	root := newRoot(&App{}, &globalFlags{})
	var walk func(c *command, path []string)
	walk = func(c *command, path []string) {
		for _, s := range c.Subs {
			p := append(append([]string{}, path...), s.Name)
			code, out, stderr := run(t, append(p, "--help")...)
			if code != 0 || !strings.Contains(out, "Usage:") || stderr != "" {
				t.Errorf("%v --help: exit %d, stdout %q, stderr %q", p, code, out, stderr)
			}
			walk(s, p)
		}
	}
	walk(root, nil)
	if code, out, _ := run(t, "help", "status"); code != 0 || !strings.Contains(out, "helm csghub status") {
		t.Errorf("help status: exit %d: %s", code, out)
	}
}

func TestVersionJSON(t *testing.T) {
	code, out, _ := run(t, "version", "-o", "json")
	// (test binaries carry no module list, so the Helm SDK version is checked end to end)
	if code != 0 || !strings.Contains(out, `"goVersion": "go1.`) {
		t.Fatalf("version: exit %d: %s", code, out)
	}
}

func TestConfirmRefusesNonTerminalsWithoutReading(t *testing.T) {
	for _, dev := range []string{os.DevNull, "/dev/zero"} {
		f, err := os.Open(dev)
		if err != nil {
			t.Fatal(err)
		}
		a := &App{Stdin: f, Stderr: io.Discard}
		err = a.confirm(context.Background(), false, "x")
		f.Close()
		if errs.ExitCode(err) != 2 || !strings.Contains(err.Error(), "non-interactive") {
			t.Fatalf("%s: %v", dev, err)
		}
	}
}

func TestReadAnswerIsBounded(t *testing.T) {
	if got := readAnswer(strings.NewReader("yes\nrest")); got != "yes" {
		t.Fatalf("got %q", got)
	}
	if got := readAnswer(strings.NewReader(strings.Repeat("y", 10000))); got != "" {
		t.Fatalf("a line without end gave %q", got[:10])
	}
}

func TestMissingKubeconfigIsNamed(t *testing.T) {
	t.Setenv("KUBECONFIG", "/nonexistent/a"+string(os.PathListSeparator)+"/nonexistent/b")
	code, _, stderr := run(t, "status")
	if code != 2 || !strings.Contains(stderr, "/nonexistent/a, /nonexistent/b: no such file") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	code, _, stderr = run(t, "status", "--release", "../../x")
	if code != 2 || !strings.Contains(stderr, "not a valid release name") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

// On a real terminal (a pty) the prompt asks, accepts "y", and a signal
// (the cancelled context) ends the wait with exit 130.
func TestConfirmOnAPty(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()
	go io.Copy(io.Discard, ptmx)
	a := &App{Stdin: tty, Stderr: io.Discard}
	ptmx.Write([]byte("y\n"))
	if err := a.confirm(context.Background(), false, "x"); err != nil {
		t.Fatalf("answer y: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	if err := a.confirm(ctx, false, "x"); errs.ExitCode(err) != 130 {
		t.Fatalf("signal at the prompt: %v (exit %d)", err, errs.ExitCode(err))
	}
}

// Issue 27 item 10: an empty KUBECONFIG without ~/.kube/config fell back to
// localhost:8080, and a missing context exited 4 where a missing file exits
// 2: both are usage errors now, named.
func TestNoKubeconfigAndMissingContextAreUsageErrors(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBECONFIG", "")
	code, _, stderr := run(t, "status")
	if code != 2 || !strings.Contains(stderr, "no kubeconfig") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("empty KUBECONFIG: exit %d: %s", code, stderr)
	}
	kc := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: a, context: {cluster: c, user: u}}, {name: b, context: {cluster: c, user: u}}]
current-context: a
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kc)
	t.Setenv("HELM_KUBECONTEXT", "nosuch")
	code, _, stderr = run(t, "status")
	if code != 2 || !strings.Contains(stderr, `kube context "nosuch": not in the kubeconfig (it has: a, b)`) {
		t.Fatalf("missing context: exit %d: %s", code, stderr)
	}
}

// --diff's options without --diff, a negative --context and upgrade --diff
// without --dry-run are usage errors, refused before the cluster is read
// (the kubeconfig's server answers nothing); exitStatus ends a run with its
// code and no message.
func TestDiffFlags(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: a, context: {cluster: c, user: u}}]
current-context: a
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kc)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"plan", "--show-secrets"}, "go with --diff"},
		{[]string{"plan", "--detailed-exitcode"}, "go with --diff"},
		{[]string{"plan", "--context", "5"}, "go with --diff"},
		{[]string{"plan", "--context", "3"}, "go with --diff"}, // the default's value, given
		{[]string{"plan", "--diff", "--context", "-1"}, "--context must be 0 or more"},
		{[]string{"upgrade", "--diff", "--yes"}, "--diff goes with --dry-run"},
	} {
		code, _, stderr := run(t, c.args...)
		if code != 2 || !strings.HasPrefix(stderr, "Error: ") || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d %q, want a usage error with %q", c.args, code, stderr, c.want)
		}
	}
	var errOut bytes.Buffer
	if code := mainExit(context.Background(), &App{Stderr: &errOut}, exitStatus(2)); code != 2 || errOut.String() != "" {
		t.Errorf("exitStatus(2): exit %d, stderr %q", code, errOut.String())
	}
}

// Issue 27 item 10: a Helm description of several lines (or with tabs)
// broke `history`'s table; every table cell is one line.
func TestTableCellsAreOneLine(t *testing.T) {
	var out bytes.Buffer
	tb := newTable(&out)
	tb.row("REVISION", "DESCRIPTION", "BACKUPS")
	tb.row(3, "Upgrade \"csghub\" failed:\nline two\r\n\tline\tthree", "-")
	if err := tb.flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], `failed: | line two | line three`) || !strings.HasSuffix(lines[1], "-") {
		t.Fatalf("table:\n%s", out.String())
	}
}
