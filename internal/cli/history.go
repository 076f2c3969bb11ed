package cli

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
)

type historyCmd struct {
	app    *App
	dir    catalogDir
	output output
}

func newHistoryCmd(app *App) *command {
	c := &historyCmd{app: app}
	return &command{
		Name:    "history",
		Summary: "Show helm history with the backups available for each revision",
		Flags: func(fs *pflag.FlagSet) {
			c.dir.bind(fs)
			c.output.bind(fs)
		},
		Run: c.run,
	}
}

type historyRow struct {
	Revision     int       `json:"revision"`
	Updated      time.Time `json:"updated"`
	Status       string    `json:"status"`
	Chart        string    `json:"chart"`
	ChartVersion string    `json:"chartVersion"`
	AppVersion   string    `json:"appVersion"`
	Description  string    `json:"description"`
	Backups      []string  `json:"backups"`
}

func (c *historyCmd) run(_ context.Context, _ []string) error {
	env := c.app.Env
	if err := env.Resolve(); err != nil {
		return err
	}
	cfg, err := env.ActionConfig(env.Namespace)
	if err != nil {
		return err
	}
	hist, err := action.NewHistory(cfg).Run(env.Release)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return errs.NotFoundf("release %q not found in namespace %q", env.Release, env.Namespace)
	}
	if err != nil {
		return errs.Failedf("reading history: %w", err)
	}
	sort.Slice(hist, func(i, j int) bool { return hist[i].Version < hist[j].Version })
	entries, err := c.dir.catalog().List(env.Namespace, env.Release)
	if err != nil {
		return err
	}
	byRev := map[int][]string{}
	for _, e := range entries {
		if e.Complete {
			byRev[e.Revision] = append(byRev[e.Revision], e.ID)
		}
	}
	rows := make([]historyRow, 0, len(hist))
	for _, h := range hist {
		rows = append(rows, toRow(h, byRev[h.Version]))
	}
	if c.output == outputJSON {
		return writeJSON(c.app.Stdout, rows)
	}
	t := newTable(c.app.Stdout)
	t.row("REVISION", "UPDATED (UTC)", "STATUS", "CHART", "APP VERSION", "BACKUPS", "DESCRIPTION")
	for _, r := range rows {
		b := "-"
		if len(r.Backups) > 0 {
			b = strings.Join(r.Backups, ",")
		}
		t.row(r.Revision, r.Updated.UTC().Format("2006-01-02 15:04:05"), r.Status, r.Chart+"-"+r.ChartVersion, r.AppVersion, b, r.Description)
	}
	return t.flush()
}

func toRow(h *release.Release, backups []string) historyRow {
	r := historyRow{Revision: h.Version, Updated: h.Info.LastDeployed.Time, Status: h.Info.Status.String(),
		Description: h.Info.Description, Backups: backups, ChartVersion: helmenv.ChartVersion(h)}
	if r.Backups == nil {
		r.Backups = []string{}
	}
	if h.Chart != nil && h.Chart.Metadata != nil {
		r.Chart, r.AppVersion = h.Chart.Metadata.Name, h.Chart.Metadata.AppVersion
	}
	return r
}

func chartOf(h *release.Release) string { return helmenv.ChartVersion(h) }
