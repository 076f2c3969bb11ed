package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/pflag"

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

func (c *migrateCmd) run(ctx context.Context, _ []string) error {
	if err := c.dir.resolve(); err != nil {
		return err
	}
	if c.target.version == "" {
		return usageError("migrate: --version is required (the chart version you will upgrade to)")
	}
	rel, kc, err := c.app.resolve()
	if err != nil {
		return err
	}
	m := &plan.Migrate{Options: c.target.options(rel, kc, c.app.warner()), DryRun: c.dryRun, ForceConflicts: c.forceConflicts,
		Skip: c.switches.off(), Dir: c.dir.loc(), Progress: c.app.progressWriter(c.output), Log: c.app.stepLogger(c.output)}
	out, err := m.Run(ctx)
	if out == nil {
		return err
	}
	if perr := c.app.print(c.output, out, func(w io.Writer) { printMigrated(w, out) }); perr != nil {
		return perr
	}
	return err
}

func printMigrated(w io.Writer, out *plan.Migrated) {
	if out.Planned == 0 {
		fmt.Fprintf(w, "no migrations between %s and %s\n", out.From, out.To)
	}
	for _, r := range out.Results {
		state := "applied"
		switch {
		case r.AlreadyApplied:
			state = "already applied, nothing changed"
		case out.DryRun:
			state = "dry run, nothing changed"
		}
		fmt.Fprintf(w, "v%s %s: %s (%s)\n", r.Version, r.Name, state, r.Detail)
		for _, ch := range r.Changes {
			fmt.Fprintf(w, "  %s\n", ch)
		}
	}
	for _, line := range out.FollowUps {
		fmt.Fprintln(w, line)
	}
}
