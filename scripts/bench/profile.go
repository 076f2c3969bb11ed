package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/opencsgs/helm-csghub/internal/devenv"
)

// profilePhase (-profile DIR) runs one more plugin backup and restore under
// `perf record -a` (system-wide: the stream crosses pg_dump, kwok, the API
// server and the plugin, all on this host) with an unstripped build of the
// plugin, and keeps the reports in DIR: CPU share per process and the top
// symbols. These runs are not timed figures (perf slows everything a little).
func (b *bench) profilePhase(ctx context.Context) error {
	dir := b.cfg.profile
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if _, err := exec.LookPath("perf"); err != nil {
		return fmt.Errorf("-profile needs perf (Debian package linux-perf): %w", err)
	}
	bin := filepath.Join(dir, "helm-csghub")
	logf("building an unstripped plugin for the profile: %s", bin)
	if _, err := b.runCmd(ctx, cmdSpec{name: devenv.GoBin(), args: []string{"build", "-trimpath", "-o", bin, "."},
		env: []string{"CGO_ENABLED=0", "GOFLAGS="}, timeout: 10 * time.Minute}); err != nil {
		return err
	}
	ops := []struct {
		name string
		args []string
	}{
		{"backup", []string{"backup", "--dir", b.backupDir, "--keep", strconv.Itoa(b.cfg.repeat + 3), "-o", "json"}},
	}
	if b.cfg.phases["restore"] {
		ops = append(ops, struct {
			name string
			args []string
		}{"restore", []string{"restore", "--backup", b.backupID, "--dir", b.backupDir, "--yes", "-o", "json", "--parallel", strconv.Itoa(b.cfg.parallel)}})
	}
	b.res.Profile = map[string][]string{}
	for _, op := range ops {
		data := filepath.Join(dir, op.name+".perf.data")
		args := append([]string{"record", "-a", "-g", "-F", "499", "-o", data, "--", bin}, op.args...)
		r, err := b.runCmd(ctx, cmdSpec{name: "perf", args: args, env: b.pluginEnv()})
		if err != nil {
			return fmt.Errorf("profiling %s: %w", op.name, err)
		}
		logf("profiled %s: %.2fs under perf", op.name, r.wall.Seconds())
		byProc := filepath.Join(dir, op.name+"-by-process.txt")
		bySym := filepath.Join(dir, op.name+"-by-symbol.txt")
		if err := perfReport(ctx, data, byProc, "comm", "0.5", "--no-children", "-g", "none"); err != nil {
			return err
		}
		if err := perfReport(ctx, data, bySym, "comm,dso,sym", "0.4", "--no-children", "-g", "none"); err != nil {
			return err
		}
		// where the plugin's own CPU goes, with callers (Go keeps frame pointers)
		if err := perfReport(ctx, data, filepath.Join(dir, op.name+"-plugin-callers.txt"), "sym", "1",
			"--no-children", "--comms", filepath.Base(bin), "-g", "caller,0.5,callee,function,percent"); err != nil {
			return err
		}
		top, err := topLines(byProc, 8)
		if err != nil {
			return err
		}
		b.res.Profile[op.name] = append([]string{fmt.Sprintf("wall under perf %.2fs; CPU share of %d CPUs (swapper = idle):", r.wall.Seconds(), runtime.NumCPU())}, top...)
	}
	logf("profiles in %s (*-by-process.txt, *-by-symbol.txt, *-plugin-callers.txt; perf report -i <op>.perf.data for more)", dir)
	return nil
}

func perfReport(ctx context.Context, data, out, sort, limit string, extra ...string) error {
	args := append([]string{"report", "-i", data, "--stdio", "--sort", sort, "--percent-limit", limit}, extra...)
	cmd := exec.CommandContext(ctx, "perf", args...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("perf report %s: %w", data, err)
	}
	return os.WriteFile(out, stdout.Bytes(), 0o644)
}

// topLines returns the first n sample lines ("12.34%  name ...") of a perf report.
func topLines(file string, n int) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() && len(out) < n {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || !strings.Contains(line, "%") {
			continue
		}
		out = append(out, strings.Join(strings.Fields(line), " "))
	}
	return out, sc.Err()
}
