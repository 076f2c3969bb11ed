package cli

import (
	"context"
	"strings"

	"github.com/spf13/pflag"
	"helm.sh/helm/v3/pkg/release"

	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/history"
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

func (c *historyCmd) run(_ context.Context, _ []string) error {
	if err := c.dir.resolve(); err != nil {
		return err
	}
	rel, err := c.app.Env.Resolve()
	if err != nil {
		return err
	}
	rows, err := (&history.History{Release: rel, Dir: c.dir.loc()}).Run()
	if err != nil {
		return err
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

func chartOf(h *release.Release) string { return helmenv.ChartVersion(h) }
