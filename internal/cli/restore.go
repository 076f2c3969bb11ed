package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/opencsgs/helm-csghub/internal/lock"
	"github.com/opencsgs/helm-csghub/internal/progress"
	"github.com/opencsgs/helm-csghub/internal/restore"
	"github.com/opencsgs/helm-csghub/internal/rollback"
)

type restoreCmd struct {
	app      *App
	dir      catalogDir
	backupID string
	parallel int
	insecure bool
	yes      bool
	pg       pgClientFlags
	output   output
}

func newRestoreCmd(app *App) *command {
	c := &restoreCmd{app: app}
	return &command{
		Name:    "restore",
		Summary: "Restore the release's PostgreSQL databases from a backup, exactly",
		Long: `Verifies the backup, blocks PostgreSQL with NetworkPolicy block-postgresql-access,
terminates every other connection, drops and recreates each database of the backup from
its dump (streamed through the exec stdin, stopping at the first error), and removes the
NetworkPolicy on every exit path, Ctrl-C included. Databases not in the backup are kept
and listed. Rerunning it after a failure finishes the job.`,
		Flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&c.backupID, "backup", "", "backup ID to restore, or \"latest\" (required; see: helm csghub backup list)")
			c.dir.bind(fs)
			c.dir.bindIdentity(fs)
			fs.IntVar(&c.parallel, "parallel", 2, "databases restored at once")
			fs.BoolVar(&c.insecure, "allow-insecure-permissions", false, "restore a backup whose folder or files others can read or change")
			fs.BoolVarP(&c.yes, "yes", "y", false, "do not ask for confirmation")
			c.pg.bind(fs)
			c.output.bind(fs)
		},
		Run: c.run,
	}
}

func (c *restoreCmd) run(ctx context.Context, _ []string) error {
	if err := c.dir.resolve(); err != nil {
		return err
	}
	if c.backupID == "" {
		return usageError("restore: --backup ID is required (see: helm csghub backup list)")
	}
	if c.parallel < 1 {
		return usageError("restore: --parallel must be at least 1")
	}
	rel, kc, err := c.app.resolve()
	if err != nil {
		return err
	}
	if err := c.app.confirm(ctx, c.yes, fmt.Sprintf("This replaces every database of release %q with backup %s.", rel.Name, c.backupID)); err != nil {
		return err
	}
	log := c.app.stepLogger(c.output)
	// The lock is taken here, not by the restore, to mark it: killed, the
	// databases may be half replayed and status names the command that
	// finishes (this one again).
	l, err := lock.Take(ctx, kc.Clientset, rel.Namespace, rel.Name, "restore", log)
	if err != nil {
		return err
	}
	defer l.Release()
	if err := l.SetMark(ctx, &lock.Mark{Operation: "restore", Step: lock.StepRestore, Backup: c.backupID,
		Command: rollback.RestoreCommand(rel, c.dir.loc(), c.backupID)}); err != nil {
		return err
	}
	r := &restore.Restore{Release: rel, Kube: kc, Dir: c.dir.loc(), BackupID: c.backupID, Parallel: c.parallel, Lock: l,
		AllowInsecurePermissions: c.insecure, Progress: c.app.progressWriter(c.output), Log: log, PGImage: c.pg.image, PodTimeout: c.pg.timeout}
	res, err := r.Run(ctx)
	if err != nil {
		return err
	}
	// the databases are the backup's: a killed run's restore is resolved (a
	// killed migrate or logs import is not: the restore does not redo them)
	l.ForgetObsolete(rel.Pending)
	l.ForgetFinished(lock.StepRestore)
	return c.app.print(c.output, res, func(w io.Writer) { printRestore(w, res) })
}

func printRestore(w io.Writer, res *restore.Result) {
	t := newTable(w)
	t.row("RESTORED FROM:", res.BackupID)
	t.row("DATABASES:", strings.Join(res.Databases, ", "))
	t.row("SQL REPLAYED:", progress.HumanBytes(res.Bytes))
	t.row("CONNECTIONS TERMINATED:", res.Terminated)
	if len(res.ScaledDown) > 0 {
		t.row("STOPPED DURING RESTORE:", strings.Join(res.ScaledDown, ", ")+" (scaled back)")
	}
	for _, s := range res.NoRolePasswords {
		t.row("ROLES:", s+": backup has no role passwords; existing passwords left as they are")
	}
	if len(res.RolesRefused) > 0 {
		t.row("ROLES REFUSED:", fmt.Sprintf("%d statement(s) refused by the server, those roles left as they are (first: %s)", len(res.RolesRefused), res.RolesRefused[0]))
	}
	if len(res.Extra) > 0 {
		t.row("KEPT (not in backup):", strings.Join(res.Extra, ", "))
	}
	t.row("DURATION:", res.Duration.Round(1e7))
	_ = t.flush()
}
