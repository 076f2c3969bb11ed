package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/opencsgs/helm-csghub/internal/quiesce"
	"github.com/opencsgs/helm-csghub/internal/status"
)

type statusCmd struct {
	app    *App
	output output
}

func newStatusCmd(app *App) *command {
	c := &statusCmd{app: app}
	return &command{
		Name:    "status",
		Summary: "Show the release, its revision and chart, and whether its pods are Ready",
		Flags:   func(fs *pflag.FlagSet) { c.output.bind(fs) },
		Run:     c.run,
	}
}

func (c *statusCmd) run(ctx context.Context, _ []string) error {
	rel, kc, err := c.app.resolve()
	if err != nil {
		return err
	}
	rep, err := (&status.Status{Release: rel, Clientset: kc.Clientset}).Run(ctx)
	if err != nil {
		return err
	}
	if rep.BlockingPolicy != nil {
		fmt.Fprintf(c.app.Stderr, "WARNING: %s\n", rep.BlockingPolicy.Hint())
	}
	for _, l := range rep.PGClients {
		state := "in use by a running backup or restore"
		if l.Stale {
			state = "left by an interrupted run; the next backup or restore removes it"
		}
		fmt.Fprintf(c.app.Stderr, "WARNING: PostgreSQL client %s %s/%s (server %s, %s, age %s): %s, or: kubectl -n %s delete pod,secret %s\n",
			strings.ToLower(l.Kind), rep.Namespace, l.Name, l.Server, l.Holder, l.Age, state, rep.Namespace, l.Name)
	}
	if len(rep.ScaledDown) > 0 {
		fmt.Fprintf(c.app.Stderr, "WARNING: %s\n", quiesce.Hint(rep.Namespace, rep.ScaledDown))
	}
	if c.output == outputJSON {
		return writeJSON(c.app.Stdout, rep)
	}
	t := newTable(c.app.Stdout)
	t.row("RELEASE:", rep.Release)
	t.row("NAMESPACE:", rep.Namespace)
	t.row("REVISION:", rep.Revision)
	t.row("CHART:", fmt.Sprintf("%s-%s", rep.Chart, rep.ChartVersion))
	t.row("APP VERSION:", rep.AppVersion)
	t.row("STATUS:", rep.Status)
	t.row("UPDATED:", rep.Updated.UTC().Format("2006-01-02 15:04:05 MST"))
	t.row("HISTORY:", fmt.Sprintf("%d revision(s)", rep.History))
	if l := rep.Lease; l != nil {
		state := "held by a running operation"
		if !l.Alive {
			state = "LEFT BY A STOPPED RUN"
		}
		t.row("LOCK:", fmt.Sprintf("%s: %s, renewed %s", state, l.Holder, l.Renewed.UTC().Format("2006-01-02 15:04:05 MST")))
	}
	if rep.Todo != "" {
		t.row("TO DO:", rep.Todo)
	}
	for _, p := range rep.Pods {
		line := fmt.Sprintf("%d/%d Ready", p.Ready, p.Total)
		if len(p.NotReady) > 0 {
			line += " (not ready: " + strings.Join(p.NotReady, ", ") + ")"
		}
		t.row(fmt.Sprintf("PODS %s:", p.Namespace), line)
	}
	return t.flush()
}
