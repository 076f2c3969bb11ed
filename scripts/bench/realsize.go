package main

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
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
	} `json:"plan"`
	Upgrade struct {
		WallSeconds       float64            `json:"wallSeconds"`
		Steps             map[string]float64 `json:"stepSeconds"`
		MigrationsSeconds float64            `json:"migrationsSeconds"`
		OwnSeconds        float64            `json:"ownSeconds"`
		Requests          int                `json:"apiRequests"`
		Detail            string             `json:"requestsDetail"`
	} `json:"upgrade"`
}

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
	logf("plan: %.2fs, %d API requests", f.Plan.Seconds, f.Plan.Requests)

	logf("helm csghub upgrade --version %s (%d extra objects)", b.cfg.upgradeVer, f.ExtraObjects)
	r, err = b.runCmd(ctx, cmdSpec{name: b.cfg.plugin, env: env, capture: true,
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
	waited := 0.0
	if sum.Readiness != nil {
		waited = sum.Readiness.Waited.Seconds()
	}
	u.OwnSeconds = u.WallSeconds - u.Steps["helm-upgrade"] - u.Steps["backup"] - waited
	u.Requests, u.Detail = apiRequests(r.stderr)
	logf("upgrade: %.2fs wall, migrations %.2fs, own time %.2fs, %d API requests", u.WallSeconds, u.MigrationsSeconds, u.OwnSeconds, u.Requests)
	return nil
}
