package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/upgrade"
)

type upgradeCmd struct {
	app            *App
	target         targetFlags
	timeout        time.Duration
	rbTimeout      time.Duration
	verifyTimeout  time.Duration
	dryRun         bool
	noRollback     bool
	skipDBBackup   bool
	pg             pgClientFlags
	switches       switchFlags
	forceConflicts bool
	recreateSTS    bool
	yes            bool
	dir            catalogDir
	sse            sseFlags
	encrypt        encryptFlags
	keep           int
	recover        bool
	diff           diffFlags
	output         output
}

func newUpgradeCmd(app *App) *command {
	c := &upgradeCmd{app: app}
	return &command{
		Name:    "upgrade",
		Summary: "Upgrade CSGHub safely: preflight, backup, migrations, helm upgrade, readiness, verification",
		Long: `Replaces the guide's sections 2 to 4 and 6 in one run. The deployed revision's values (as
backed up) are the base, -f/--set go on top. If the Helm upgrade, readiness or verification
fails, the release is rolled back to the previous revision and the database restored from
the backup this run took (unless --no-rollback). Ctrl-C before the Helm upgrade stops with
nothing changed but the backup; after it, the automatic rollback is finished.`,
		Flags: func(fs *pflag.FlagSet) {
			c.target.bind(fs, true)
			fs.DurationVar(&c.timeout, "timeout", upgrade.DefaultTimeout, "one budget for all the run's waits (Helm upgrade, post-upgrade imports' wait, pods Ready), each gets what is left; backup and restore are not counted")
			fs.DurationVar(&c.rbTimeout, "rollback-timeout", upgrade.DefaultTimeout, "one budget for the automatic rollback's waits (Helm rollback, pods Ready), apart from --timeout")
			fs.DurationVar(&c.verifyTimeout, "verify-timeout", 0, "time for each verification check after the upgrade, retries included (as verify --timeout); a check still failing then rolls the upgrade back (default: what --timeout leaves)")
			fs.BoolVar(&c.dryRun, "dry-run", false, "run preflight and the plan, render the upgrade, change nothing")
			fs.BoolVar(&c.noRollback, "no-rollback", false, "on failure, leave the release and database as they are")
			fs.BoolVar(&c.skipDBBackup, "skip-db-backup", false, "do not dump PostgreSQL before upgrading (explicit opt-out)")
			c.pg.bind(fs)
			c.switches.bind(fs, "upgrade")
			fs.BoolVar(&c.forceConflicts, "force-conflicts", false, "take over CRD fields owned by another field manager")
			fs.BoolVar(&c.recreateSTS, "recreate-statefulsets", false, "delete StatefulSets whose immutable fields change with --cascade=orphan (pods and volumes kept) so Helm recreates them")
			c.dir.bind(fs)
			c.dir.bindIdentity(fs)
			c.sse.bind(fs)
			c.encrypt.bind(fs)
			fs.IntVar(&c.keep, "keep", backup.DefaultKeep, "complete backups to keep for the release (at least 2)")
			fs.BoolVarP(&c.yes, "yes", "y", false, "do not ask for confirmation")
			fs.BoolVar(&c.recover, "recover", false, "first recover a release left pending by a killed helm csghub run (as helm csghub rollback does)")
			c.diff.bind(fs)
			c.output.bind(fs)
		},
		Run: c.run,
	}
}

func (c *upgradeCmd) run(ctx context.Context, _ []string) error {
	recipients, err := writeSettings(&c.dir, &c.sse, &c.encrypt)
	if err != nil {
		return err
	}
	// the automatic rollback restores this run's backup: it must open
	if len(recipients) > 0 {
		if err := backup.CheckCanDecrypt(recipients); err != nil {
			return err
		}
	}
	if c.timeout <= 0 {
		return usageError("upgrade: --timeout must be positive")
	}
	if c.rbTimeout <= 0 {
		return usageError("upgrade: --rollback-timeout must be positive")
	}
	if c.verifyTimeout < 0 {
		return usageError("upgrade: --verify-timeout must be positive (or 0: what --timeout leaves)")
	}
	if c.keep < backup.MinKeep {
		return usageError(fmt.Sprintf("upgrade: --keep %d: at least %d backups are kept", c.keep, backup.MinKeep))
	}
	if c.target.version != "" {
		if _, err := parseVersionFlag(c.target.version); err != nil {
			return err
		}
	}
	if err := c.diff.check("upgrade"); err != nil {
		return err
	}
	if c.diff.on && !c.dryRun {
		return usageError("upgrade: --diff goes with --dry-run (or see the changes first with helm csghub plan --diff)")
	}
	rel, kc, err := c.app.resolve()
	if err != nil {
		return err
	}
	if !c.dryRun {
		what := fmt.Sprintf("Upgrade release %q to %s", rel.Name, orDefault(c.target.version, "the newest version"))
		if err := c.app.confirm(ctx, c.yes, what+"."); err != nil {
			return err
		}
	}
	u := &upgrade.Upgrade{Release: rel, Kube: kc, Plan: c.target.options(rel, kc, c.app.warner()),
		Timeout: c.timeout, RollbackTimeout: c.rbTimeout, VerifyTimeout: c.verifyTimeout, DryRun: c.dryRun, NoRollback: c.noRollback, SkipDBBackup: c.skipDBBackup,
		ForceConflicts: c.forceConflicts, RecreateStatefulSets: c.recreateSTS, BackupDir: c.dir.loc(), BackupSSE: c.sse.sse, BackupEncryptTo: recipients, Keep: c.keep, Recover: c.recover,
		MigrationSkip: c.switches.off(),
		Progress:      c.app.progressWriter(c.output), Log: c.app.stepLogger(c.output),
		PGImage: c.pg.image, PGPodTimeout: c.pg.timeout, Diff: c.diff.options()}
	enc := json.NewEncoder(c.app.Stdout)
	if c.output == outputJSON {
		u.Events = func(e upgrade.Event) {
			_ = enc.Encode(struct {
				Kind string `json:"event"`
				upgrade.Event
			}{"step", e})
		}
	} else {
		u.Events = func(e upgrade.Event) {
			switch e.Status {
			case "started":
				fmt.Fprintf(c.app.Stderr, "==> %s\n", e.Step)
			case "warning":
				fmt.Fprintf(c.app.Stderr, "WARNING: %s\n", e.Detail)
			case "done":
				fmt.Fprintf(c.app.Stderr, "    %s: %s (%s)\n", e.Step, e.Detail, e.Duration.Round(time.Millisecond))
			}
		}
	}
	sum, err := u.Run(ctx)
	if sum != nil {
		if c.output == outputJSON {
			_ = enc.Encode(struct {
				Kind string `json:"event"`
				*upgrade.Summary
			}{"summary", sum})
		} else {
			printUpgradeSummary(c.app, sum, err)
			if sum.Diff != nil {
				fmt.Fprintln(c.app.Stdout)
				c.app.writeDiff(c.app.Stdout, sum.Diff)
			}
		}
	}
	if err != nil || sum == nil {
		return err
	}
	return c.diff.exit(sum.Diff)
}

func printUpgradeSummary(app *App, s *upgrade.Summary, runErr error) {
	w := app.Stdout
	title := "UPGRADE SUCCEEDED"
	switch {
	case s.DryRun:
		title = "DRY RUN (nothing changed)"
	case s.RolledBack:
		title = "UPGRADE FAILED, ROLLED BACK"
	case runErr != nil:
		title = "UPGRADE FAILED"
	}
	fmt.Fprintf(w, "\n%s\n", title)
	t := newTable(w)
	t.row("release:", fmt.Sprintf("%s/%s", s.Namespace, s.Release))
	t.row("version:", fmt.Sprintf("%s -> %s", s.From, s.To))
	t.row("revision:", fmt.Sprintf("%d -> %d (%s)", s.FromRevision, s.Revision, s.Status))
	if s.Backup != "" {
		t.row("backup:", s.BackupPath)
	}
	for _, m := range s.Migrations {
		state := m.Summary()
		if m.AlreadyApplied {
			state = "already applied"
		}
		t.row("migration:", fmt.Sprintf("v%s %s: %s", m.Version, m.Name, state))
	}
	for _, c := range s.Rewrites {
		t.row("values:", c.String())
	}
	if s.Readiness != nil {
		t.row("pods:", fmt.Sprintf("%d/%d Ready (waited %s)", s.Readiness.Ready, s.Readiness.Total, s.Readiness.Waited.Round(time.Millisecond)))
	}
	if s.Verify != nil {
		for _, ch := range s.Verify.Checks {
			t.row("verify "+ch.Name+":", string(ch.Status)+": "+ch.Detail)
		}
	}
	for _, x := range s.Warnings {
		t.row("warning:", x)
	}
	for _, x := range s.Notes {
		t.row("note:", x)
	}
	for _, x := range s.Recovered {
		t.row("recovered:", x)
	}
	if s.Failure != "" {
		t.row("failed:", s.Failure)
	}
	if len(s.Undone) > 0 {
		t.row("undone:", strings.Join(s.Undone, "; "))
	}
	var steps []string
	for _, name := range []string{"plan", "preflight", "backup", "migrations", "helm-upgrade", "readiness", "verify"} {
		if d, ok := s.Steps[name]; ok {
			steps = append(steps, fmt.Sprintf("%s %s", name, d.Round(time.Millisecond)))
		}
	}
	t.row("steps:", strings.Join(steps, ", "))
	_ = t.flush()
	if s.DryRun && s.Manifest != "" {
		fmt.Fprintf(w, "\n(rendered manifest: %d bytes; use -o json to see it)\n", len(s.Manifest))
	}
}
