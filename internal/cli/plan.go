package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/opencsgs/helm-csghub/internal/plan"
)

type planCmd struct {
	app      *App
	target   targetFlags
	switches switchFlags
	skipDB   bool
	dir      catalogDir
	pg       pgClientFlags
	diff     diffFlags
	output   output
}

func newPlanCmd(app *App) *command {
	c := &planCmd{app: app}
	return &command{
		Name:    "plan",
		Summary: "Show what an upgrade would do, step by step, and change nothing",
		Flags: func(fs *pflag.FlagSet) {
			c.target.bind(fs, true)
			c.switches.bind(fs, "plan")
			fs.BoolVar(&c.skipDB, "skip-db-backup", false, "do not check that an external PostgreSQL answers from the cluster (as upgrade --skip-db-backup)")
			c.dir.bind(fs)
			c.pg.bind(fs)
			c.diff.bind(fs)
			c.output.bind(fs)
		},
		Run: c.run,
	}
}

func (c *planCmd) run(ctx context.Context, _ []string) error {
	if err := c.dir.resolve(); err != nil {
		return err
	}
	if err := c.diff.check("plan"); err != nil {
		return err
	}
	rel, kc, err := c.app.resolve()
	if err != nil {
		return err
	}
	v := &plan.Preview{Options: c.target.options(rel, kc, c.app.warner()), Skip: c.switches.off(),
		SkipDBCheck: c.skipDB, PGImage: c.pg.image, PGPodTimeout: c.pg.timeout, Log: c.app.stepLogger(c.output),
		Diff: c.diff.options(), BackupLocation: c.dir.loc()}
	pl, err := v.Run(ctx)
	if pl == nil {
		return err
	}
	if perr := c.app.print(c.output, pl, func(w io.Writer) {
		printPlan(w, pl)
		if pl.Diff != nil {
			fmt.Fprintln(w)
			c.app.writeDiff(w, pl.Diff)
		}
	}); perr != nil {
		return perr
	}
	// the plan is printed; the exit code says an upgrade would be refused
	if err != nil {
		return err
	}
	return c.diff.exit(pl.Diff)
}

func printPlan(w io.Writer, pl *plan.Plan) {
	fmt.Fprintf(w, "Upgrade plan for %s/%s (revision %d): %s -> %s (%s)\n\n", pl.Namespace, pl.Release, pl.Revision, pl.From, pl.To, pl.Chart)
	for i, s := range pl.Steps {
		name := s.Name
		if s.Version != "" {
			name = "v" + s.Version + " " + name
		}
		fmt.Fprintf(w, "%d. %s\n   why: %s\n", i+1, name, s.Reason)
		if len(s.Touches) > 0 {
			fmt.Fprintf(w, "   touches: %s\n", strings.Join(s.Touches, "; "))
		}
		if s.Status != "" {
			fmt.Fprintf(w, "   status: %s\n", s.Status)
		}
	}
	if len(pl.Warnings) > 0 {
		fmt.Fprintln(w)
	}
	for _, x := range pl.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", x)
	}
}

// warner prints non-fatal notes on stderr.
func (a *App) warner() func(string, ...any) {
	return func(format string, args ...any) { fmt.Fprintf(a.Stderr, "WARNING: "+format+"\n", args...) }
}
