package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/opencsgs/helm-csghub/internal/devenv"
)

// ---- real-size chart (issue 12 part 3): plan and upgrade on the mirror charts
// rendering about 270 objects (bench.extraObjects), with the API request count
// (HELM_CSGHUB_API_STATS: the plugin counts through a wrapping RoundTripper
// and prints "api-requests: N (...)" on stderr at exit).

type realSizeFigures struct {
	ExtraObjects int `json:"extraObjects"`
	Objects      int `json:"renderedObjects"`
	Plan         struct {
		Seconds  float64 `json:"seconds"`
		Requests int     `json:"apiRequests"`
		Detail   string  `json:"requestsDetail"`
		// Lookups the target's templates made (answered by the cluster in
		// LookupRequests of the Requests: repeats are answered once)
		Lookups        int `json:"lookups"`
		LookupRequests int `json:"lookupRequests"`
	} `json:"plan"`
	// PlanDiff is plan --diff: the plan, the object-by-object comparison
	// and the live lists of drift (targets < 5 s, < 100 requests).
	PlanDiff struct {
		Seconds  float64 `json:"seconds"`
		Requests int     `json:"apiRequests"`
		Detail   string  `json:"requestsDetail"`
		// Changed is how many objects the diff lists (added, changed, removed).
		Changed int `json:"objectsInDiff"`
	} `json:"planDiff"`
	Upgrade struct {
		WallSeconds       float64            `json:"wallSeconds"`
		Steps             map[string]float64 `json:"stepSeconds"`
		MigrationsSeconds float64            `json:"migrationsSeconds"`
		OwnSeconds        float64            `json:"ownSeconds"`
		Requests          int                `json:"apiRequests"`
		Detail            string             `json:"requestsDetail"`
		// APITime is the plugin's time in API requests, by verb and resource
		// (the 8 largest); CPUSeconds its own user+system CPU.
		APITime    string  `json:"apiTime"`
		CPUSeconds float64 `json:"cpuSeconds"`
		// Profile: the top of the plugin's CPU profile of the upgrade
		// (HELM_CSGHUB_CPUPROFILE; go tool pprof -top).
		Profile []string `json:"cpuProfileTop,omitempty"`
	} `json:"upgrade"`
}

var apiTimeRE = regexp.MustCompile(`api-time: (.*)`)

var apiRequestsRE = regexp.MustCompile(`api-requests: (\d+) \(([^)]*)\)`)

func apiRequests(stderr string) (int, string) {
	m := apiRequestsRE.FindAllStringSubmatch(stderr, -1)
	if len(m) == 0 {
		return -1, ""
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n, m[len(m)-1][2]
}

func (b *bench) realSizePhase(ctx context.Context) error {
	f := &realSizeFigures{ExtraObjects: b.cfg.extraObjects}
	b.res.RealSize = f
	if err := b.freshRelease(ctx, "pg-realsize", true, "--set", fmt.Sprintf("bench.extraObjects=%d", f.ExtraObjects)); err != nil {
		return err
	}
	// the init Jobs (ordinary resources) finish, as before an operator's next command
	if err := b.s.WaitJobsFinished(ctx, namespace, 2*time.Minute); err != nil {
		return err
	}
	env := append(b.pluginEnv(), "HELM_CSGHUB_API_STATS=1")
	logf("helm csghub plan --version %s (%d extra objects)", b.cfg.upgradeVer, f.ExtraObjects)
	r, err := b.runCmd(ctx, cmdSpec{name: b.cfg.plugin, env: env, capture: true,
		args: []string{"plan", "--version", b.cfg.upgradeVer, "-o", "json"}})
	if err != nil {
		return err
	}
	f.Plan.Seconds = r.wall.Seconds()
	f.Plan.Requests, f.Plan.Detail = apiRequests(r.stderr)
	var pl struct {
		Lookups        int `json:"lookups"`
		LookupRequests int `json:"lookupRequests"`
	}
	if err := json.Unmarshal(r.stdout, &pl); err != nil {
		return fmt.Errorf("plan -o json: %w", err)
	}
	f.Plan.Lookups, f.Plan.LookupRequests = pl.Lookups, pl.LookupRequests
	logf("plan: %.2fs, %d API requests (the render's lookups: %d, answered in %d requests)", f.Plan.Seconds, f.Plan.Requests, f.Plan.Lookups, f.Plan.LookupRequests)

	logf("helm csghub plan --diff --version %s (%d extra objects)", b.cfg.upgradeVer, f.ExtraObjects)
	r, err = b.runCmd(ctx, cmdSpec{name: b.cfg.plugin, env: env, capture: true,
		args: []string{"plan", "--version", b.cfg.upgradeVer, "--diff", "-o", "json"}})
	if err != nil {
		return err
	}
	f.PlanDiff.Seconds = r.wall.Seconds()
	f.PlanDiff.Requests, f.PlanDiff.Detail = apiRequests(r.stderr)
	var pd struct {
		Diff struct {
			Objects []json.RawMessage `json:"objects"`
		} `json:"diff"`
	}
	if err := json.Unmarshal(r.stdout, &pd); err != nil {
		return fmt.Errorf("plan --diff -o json: %w", err)
	}
	f.PlanDiff.Changed = len(pd.Diff.Objects)
	logf("plan --diff: %.2fs, %d API requests, %d objects in the diff", f.PlanDiff.Seconds, f.PlanDiff.Requests, f.PlanDiff.Changed)

	logf("helm csghub upgrade --version %s (%d extra objects)", b.cfg.upgradeVer, f.ExtraObjects)
	prof := filepath.Join(b.work, "realsize-upgrade.cpu.pprof")
	r, err = b.runCmd(ctx, cmdSpec{name: b.cfg.plugin, env: append(env, "HELM_CSGHUB_CPUPROFILE="+prof), capture: true,
		args: []string{"upgrade", "--version", b.cfg.upgradeVer, "--yes", "-o", "json", "--dir", filepath.Join(b.work, "realsize-backups"),
			"--timeout", "5m", "--skip-dataflow-logs"}})
	if err != nil {
		return fmt.Errorf("%w\nstdout: %.2000s", err, r.stdout)
	}
	sum, err := lastSummary(r.stdout)
	if err != nil {
		return err
	}
	u := &f.Upgrade
	u.WallSeconds = r.wall.Seconds()
	u.Steps = map[string]float64{}
	for k, v := range sum.Steps {
		u.Steps[k] = v.Seconds()
	}
	u.MigrationsSeconds = u.Steps["migrations"]
	for _, m := range sum.Migrations {
		u.Steps["migration "+m.Name] = m.Seconds
	}
	waited := 0.0
	if sum.Readiness != nil {
		waited = sum.Readiness.Waited.Seconds()
	}
	u.OwnSeconds = u.WallSeconds - u.Steps["helm-upgrade"] - u.Steps["backup"] - waited
	u.Requests, u.Detail = apiRequests(r.stderr)
	if m := apiTimeRE.FindAllStringSubmatch(r.stderr, -1); len(m) > 0 {
		u.APITime = m[len(m)-1][1]
	}
	u.CPUSeconds = r.cpu.Seconds()
	if top, err := pprofTop(ctx, prof, 12); err != nil {
		logf("CPU profile of the upgrade: %v", err)
	} else {
		u.Profile = top
	}
	logf("upgrade: %.2fs wall, migrations %.2fs, own time %.2fs, %d API requests", u.WallSeconds, u.MigrationsSeconds, u.OwnSeconds, u.Requests)
	return nil
}

// pprofTop returns the n functions with the most cumulative CPU in a profile
// (go tool pprof -top -cum), header lines first.
func pprofTop(ctx context.Context, prof string, n int) ([]string, error) {
	out, err := exec.CommandContext(ctx, devenv.GoBin(), "tool", "pprof", "-top", "-cum",
		fmt.Sprintf("-nodecount=%d", n), prof).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof %s: %w", prof, err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Type:") || strings.HasPrefix(l, "Time:") || strings.HasPrefix(l, "Showing") {
			continue
		}
		lines = append(lines, strings.TrimRight(l, " "))
	}
	return lines, nil
}
