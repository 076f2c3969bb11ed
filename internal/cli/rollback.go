package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/rollback"
)

type rollbackCmd struct {
	app           *App
	dir           catalogDir
	backupID      string
	skipDBRestore bool
	insecure      bool
	pg            pgClientFlags
	recreateSTS   bool
	timeout       time.Duration
	yes           bool
	output        output
}

func newRollbackCmd(app *App) *command {
	c := &rollbackCmd{app: app}
	return &command{
		Name:    "rollback",
		Summary: "Roll the release back to a revision and restore the database from that revision's backup",
		Usage:   "[REVISION] [flags]",
		Long: `REVISION defaults to the previous revision, as with helm rollback. The backup taken
when the release was at REVISION is verified first; then the release is rolled back with
Helm (waiting for its resources) and the databases are restored exactly (see: restore).
A release left pending-upgrade by a killed helm csghub run (its lease says so) is
recovered: rolled back to the revision the run came from, the run's backup restored.`,
		Flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&c.backupID, "backup", "", "restore this backup instead of the one taken at REVISION")
			fs.BoolVar(&c.skipDBRestore, "skip-db-restore", false, "roll back the release only, leave the database as it is")
			c.pg.bind(fs)
			c.dir.bind(fs)
			c.dir.bindIdentity(fs)
			fs.BoolVar(&c.insecure, "allow-insecure-permissions", false, "restore a backup whose folder or files others can read or change")
			fs.BoolVar(&c.recreateSTS, "recreate-statefulsets", false, "delete StatefulSets whose immutable fields differ with --cascade=orphan (pods and volumes kept) so Helm recreates them")
			fs.DurationVar(&c.timeout, "timeout", 10*time.Minute, "one budget for the waits (Helm rollback, pods Ready), the second gets what the first left; the restore is not counted")
			fs.BoolVarP(&c.yes, "yes", "y", false, "do not ask for confirmation")
			c.output.bind(fs)
		},
		Args: func(args []string) error {
			if len(args) > 1 {
				return errs.Usagef("rollback takes at most one argument (REVISION), got %d", len(args))
			}
			return nil
		},
		Run: c.run,
	}
}

func (c *rollbackCmd) run(ctx context.Context, args []string) error {
	if err := c.dir.resolve(); err != nil {
		return err
	}
	rev := 0
	if len(args) == 1 {
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 1 {
			return errs.Usagef("rollback: REVISION must be a revision number of at least 1, got %q", args[0])
		}
		rev = n
	}
	if c.backupID != "" && c.skipDBRestore {
		return usageError("rollback: --backup and --skip-db-restore exclude each other")
	}
	if c.timeout <= 0 {
		return usageError("rollback: --timeout must be positive")
	}
	rel, kc, err := c.app.resolve()
	if err != nil {
		return err
	}
	if done, err := c.recoverKilledRun(ctx, rel, kc, rev); done {
		return err
	}
	rb := &rollback.Rollback{Release: rel, Kube: kc, Dir: c.dir.loc(), Revision: rev, BackupID: c.backupID,
		SkipDBRestore: c.skipDBRestore, AllowInsecurePermissions: c.insecure, RecreateStatefulSets: c.recreateSTS, Timeout: c.timeout, Progress: c.app.progressWriter(c.output), Log: c.app.stepLogger(c.output),
		PGImage: c.pg.image, PGPodTimeout: c.pg.timeout}
	t, err := rb.Prepare(ctx)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("Roll back %q from revision %d (chart %s) to revision %d (chart %s)", rel.Name,
		t.Current.Version, chartOf(t.Current), t.To.Version, chartOf(t.To))
	if t.Backup != nil {
		what += fmt.Sprintf(" and replace the databases with backup %s", t.Backup.ID)
	}
	if err := c.app.confirm(ctx, c.yes, what+"."); err != nil {
		return err
	}
	rb.Target = t
	res, err := rb.Run(ctx)
	if res != nil && c.output == outputJSON {
		_ = writeJSON(c.app.Stdout, res)
	}
	if err != nil {
		return err
	}
	if c.output == outputJSON {
		return nil
	}
	tb := newTable(c.app.Stdout)
	tb.row("ROLLED BACK:", fmt.Sprintf("revision %d (chart %s) -> revision %d (chart %s)", res.From, res.FromChart, res.To, res.ToChart))
	tb.row("NEW REVISION:", fmt.Sprintf("%d (%s)", res.NewRevision, res.Status))
	_ = tb.flush()
	if res.Restore != nil {
		printRestore(c.app.Stdout, res.Restore)
	} else {
		fmt.Fprintln(c.app.Stdout, "DATABASE:       not restored (--skip-db-restore)")
	}
	tb = newTable(c.app.Stdout)
	if res.Readiness != nil {
		tb.row("PODS:", fmt.Sprintf("%d/%d Ready", res.Readiness.Ready, res.Readiness.Total))
	}
	if res.Verify != nil {
		for _, ch := range res.Verify.Checks {
			tb.row("VERIFY "+strings.ToUpper(ch.Name)+":", string(ch.Status)+": "+ch.Detail)
		}
	}
	return tb.flush()
}
