package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opencsgs/helm-csghub/internal/testenv"
)

// pluginCmd is the installed plugin binary with the environment helm gives it
// (run directly, so the test holds its pid and its stdin).
func pluginCmd(e *testenv.Env, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(e.C.Root, "bin", "helm-csghub"), args...)
	cmd.Dir = e.C.Root
	cmd.Env = append(os.Environ(), e.HelmEnv()...)
	return cmd
}

// runWithStdin runs the plugin with stdin opened from path; it must end
// within limit.
func runWithStdin(t *testing.T, e *testenv.Env, path string, limit time.Duration, args ...string) (int, string) {
	t.Helper()
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := pluginCmd(e, args...)
	cmd.Stdin = in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	defer stop()
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("with stdin %s the plugin did not end within %s", path, limit)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// ptyOutput collects what the plugin writes to its terminal.
type ptyOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (p *ptyOutput) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.Write(b)
}

func (p *ptyOutput) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

// The confirmation prompt: asked only on a real terminal (a pty), never on
// /dev/null or /dev/zero (refused at once, exit 2, bounded memory); SIGTERM
// and Ctrl-C (SIGINT) while it waits end the run with exit 130 and nothing
// changed; "n" is not confirmed (exit 2); "y" proceeds.
func TestConfirmationPrompt(t *testing.T) {
	t.Parallel()
	e := testenv.NewEnv(t)
	e.Install("1.15.0")
	e.LoadSampleData()
	e.Bulk("csghub_server", 2000) // changeData edits it
	dir := t.TempDir()
	b := runBackup(t, e, dir)
	changeData(t, e)
	before := testenv.TakeSnapshot(t, e.PG)
	args := []string{"restore", "--backup", b.Manifest.ID, "--dir", dir}

	for _, dev := range []string{"/dev/null", "/dev/zero"} {
		code, stderr := runWithStdin(t, e, dev, 20*time.Second, args...)
		if code != 2 || !oneLineError(stderr) || !strings.Contains(stderr, "not asking on a non-interactive input") {
			t.Fatalf("stdin %s: exit %d, stderr %q; want 2, refused without asking", dev, code, stderr)
		}
	}

	prompt := func(t *testing.T) (*exec.Cmd, *os.File, *ptyOutput) {
		t.Helper()
		cmd := pluginCmd(e, args...)
		f, err := pty.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		out := &ptyOutput{}
		go func() { _, _ = bytes.NewBuffer(nil).ReadFrom(teeReader{f, out}) }()
		testenv.Eventually(t, 30*time.Second, "the prompt", func() bool { return strings.Contains(out.String(), "Proceed? [y/N]") })
		return cmd, f, out
	}
	wait := func(t *testing.T, cmd *exec.Cmd) int {
		t.Helper()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("the plugin did not end after the signal/answer")
		}
		return cmd.ProcessState.ExitCode()
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		cmd, _, out := prompt(t)
		time.Sleep(200 * time.Millisecond)
		_ = cmd.Process.Signal(sig)
		if code := wait(t, cmd); code != 130 {
			t.Fatalf("%s at the prompt: exit %d, want 130; output %q", sig, code, out.String())
		}
		// the pty reader may copy the last line a moment after the exit
		testenv.Eventually(t, 5*time.Second, sig.String()+" at the prompt: the interruption's message", func() bool {
			return strings.Contains(out.String(), "interrupted at the confirmation prompt, nothing changed")
		})
	}
	cmd, f, out := prompt(t)
	f.Write([]byte("n\n"))
	if code := wait(t, cmd); code != 2 {
		t.Fatalf("answer n: exit %d, output %q", code, out.String())
	}
	testenv.Eventually(t, 5*time.Second, "answer n: not confirmed", func() bool { return strings.Contains(out.String(), "not confirmed") })
	testenv.RequireEqual(t, before, testenv.TakeSnapshot(t, e.PG), "database after the unconfirmed restores")
	assertNoNetworkPolicy(t, e)
	if _, err := e.C.Clientset.CoordinationV1().Leases(e.Namespace).Get(context.Background(), "helm-csghub-csghub", metav1.GetOptions{}); err == nil {
		t.Fatal("a lease was left by an unconfirmed restore")
	}

	cmd, f, out = prompt(t)
	f.Write([]byte("y\n"))
	if code := wait(t, cmd); code != 0 {
		t.Fatalf("answer y: exit %d, output %q", code, out.String())
	}
}

type teeReader struct {
	r *os.File
	w *ptyOutput
}

func (t teeReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.w.Write(p[:n])
	return n, err
}
