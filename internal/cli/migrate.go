package cli

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/migrate"
	"github.com/opencsgs/helm-csghub/internal/plan"
)

type migrateCmd struct {
	app            *App
	target         targetFlags
	dryRun         bool
	forceConflicts bool
	switches       switchFlags
	dir            catalogDir
	output         output
}

func newMigrateCmd(app *App) *command {
	c := &migrateCmd{app: app}
	return &command{
		Name:    "migrate",
		Summary: "Run only the version-specific migrations (for upgrades done with plain helm upgrade)",
		Long: `Replaces the guide's curl | bash scripts: v1.16.0 applies the target chart's CRDs,
v1.17.0 adopts Knative/Argo/LWS objects into the release, v2.0.0 exports the Dataflow logs
from MongoDB into the newest backup of the deployed revision (take one first with helm csghub
backup; import them after the upgrade with helm csghub dataflow-logs import). Every migration
checks whether it is already applied; a second run changes nothing. Then upgrade with plain
helm upgrade.`,
		Flags: func(fs *pflag.FlagSet) {
			c.target.bind(fs, true)
			fs.BoolVar(&c.dryRun, "dry-run", false, "show each object that would be created, patched or deleted; change nothing")
			fs.BoolVar(&c.forceConflicts, "force-conflicts", false, "take over CRD fields owned by another field manager")
			c.switches.bind(fs, "migrate")
			c.dir.bind(fs)
			c.output.bind(fs)
		},
		Run: c.run,
	}
}

type migrateOutput struct {
	From    string           `json:"from"`
	To      string           `json:"to"`
	DryRun  bool             `json:"dryRun"`
	Results []migrate.Result `json:"migrations"`
}

func (c *migrateCmd) run(ctx context.Context, _ []string) error {
	if c.target.version == "" {
		return usageError("migrate: --version is required (the chart version you will upgrade to)")
	}
	rel, kc, err := c.app.resolve()
	if err != nil {
		return err
	}
	p, err := plan.Prepare(ctx, c.target.options(rel, kc, c.app.warner()))
	if err != nil {
		return err
	}
	p.Migrate.DryRun = c.dryRun
	p.Migrate.ForceConflicts = c.forceConflicts
	p.Migrate.Log = c.app.stepLogger(c.output)
	p.Migrate.Progress = c.app.progressWriter(c.output)
	p.Migrate.Skip = c.switches.off()
	// migrations that export data put it beside the deployed revision's backup
	cat := c.dir.catalog()
	if e, err := cat.ForRevision(rel.Namespace, rel.Name, p.Release.Version); err != nil {
		return err
	} else if e != nil {
		p.Migrate.BackupDir = e.Path
	}
	// the Helm upgrade that follows would fail on a target that does not render
	if err := p.CheckRender(); err != nil {
		return err
	}
	if err := migrate.Preflight(ctx, p.Migrate, p.Migrations); err != nil {
		return errs.Preconditionf("%v", err)
	}
	results, runErr := migrate.Run(ctx, p.Migrate, p.Migrations)
	out := migrateOutput{From: p.Current.String(), To: p.Target.VersionS, DryRun: c.dryRun, Results: results}
	if out.Results == nil {
		out.Results = []migrate.Result{}
	}
	if c.output == outputJSON {
		if err := writeJSON(c.app.Stdout, out); err != nil {
			return err
		}
	} else {
		if len(p.Migrations) == 0 {
			fmt.Fprintf(c.app.Stdout, "no migrations between %s and %s\n", out.From, out.To)
		}
		for _, r := range results {
			state := "applied"
			switch {
			case r.AlreadyApplied:
				state = "already applied, nothing changed"
			case c.dryRun:
				state = "dry run, nothing changed"
			}
			fmt.Fprintf(c.app.Stdout, "v%s %s: %s (%s)\n", r.Version, r.Name, state, r.Detail)
			for _, ch := range r.Changes {
				fmt.Fprintf(c.app.Stdout, "  %s\n", ch)
			}
		}
	}
	if !c.dryRun && runErr == nil && c.output != outputJSON {
		for _, line := range migrate.FollowUps(p.Migrate, p.Migrations, results) {
			fmt.Fprintln(c.app.Stdout, line)
		}
	}
	if runErr != nil {
		return errs.Failedf("%v", runErr)
	}
	return nil
}
