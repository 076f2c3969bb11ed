package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/lock"
	"github.com/opencsgs/helm-csghub/internal/progress"
	"github.com/opencsgs/helm-csghub/internal/steplog"
)

type backupCmd struct {
	app          *App
	dir          catalogDir
	sse          sseFlags
	encrypt      encryptFlags
	keep         int
	skipDatabase bool
	pg           pgClientFlags
	output       output
}

func newBackupCmd(app *App) *command {
	c := &backupCmd{app: app}
	return &command{
		Name:    "backup",
		Summary: "Back up the release's Helm values and its PostgreSQL databases",
		Long: `Writes one backup folder <dir>/<namespace>/<release>/<revision>-<UTC time>/ with the
user-supplied and computed values, a zstd-compressed pg_dumpall --globals-only and one
pg_dump --create per database, all streamed out of the database pod (nothing is written
in the pod), checksummed, and a manifest.json written last. Older backups beyond --keep
are pruned, never a rollback target: the newest backup of each of Helm's last
max(2, --keep) revisions is always kept, and so is the newest backup.

With --backup-location s3://BUCKET/PREFIX (or $HELM_CSGHUB_BACKUP_LOCATION) the
same files are objects under PREFIX/<namespace>/<release>/<id>/, streamed into
multipart uploads (no local copy), the manifest written last. Endpoint, region
and credentials come from the AWS variables (AWS_ENDPOINT_URL_S3, AWS_REGION,
AWS_ACCESS_KEY_ID, ..., AWS_PROFILE); see docs/backups.md.`,
		Flags: func(fs *pflag.FlagSet) {
			c.dir.bind(fs)
			c.sse.bind(fs)
			c.encrypt.bind(fs)
			fs.IntVar(&c.keep, "keep", backup.DefaultKeep, "complete backups to keep for the release (at least 2)")
			fs.BoolVar(&c.skipDatabase, "skip-db-backup", false, "back up the values only (the database is not dumped)")
			c.pg.bind(fs)
			c.output.bind(fs)
		},
		Run: c.run,
		Subs: []*command{
			newBackupListCmd(app),
			newBackupVerifyCmd(app),
			newBackupCopyCmd(app),
		},
	}
}

func (c *backupCmd) run(ctx context.Context, _ []string) error {
	recipients, err := writeSettings(&c.dir, &c.sse, &c.encrypt)
	if err != nil {
		return err
	}
	if c.keep < backup.MinKeep { // 0 too: it is not "the default"
		return backup.KeepError(c.keep)
	}
	rel, kc, err := c.app.resolve()
	if err != nil {
		return err
	}
	// the release lock, as every operation that writes: a restore or
	// rollback reading a backup holds it, so this backup's retention can
	// never prune the backup being restored
	l, err := lock.Take(ctx, kc.Clientset, rel.Namespace, rel.Name, "backup", c.app.stepLogger(c.output))
	if err != nil {
		return err
	}
	defer l.Release()
	b := &backup.Backup{Release: rel, Kube: kc, Dir: c.dir.loc(), Keep: c.keep, SkipDatabase: c.skipDatabase,
		Progress: c.app.progressWriter(c.output), PGImage: c.pg.image, PodTimeout: c.pg.timeout, Log: c.app.stepLogger(c.output),
		SSE: c.sse.sse, EncryptTo: recipients}
	res, err := b.Run(ctx)
	if err != nil {
		return err
	}
	return c.app.print(c.output, res, func(w io.Writer) { printBackup(w, res) })
}

func printBackup(w io.Writer, res *backup.Result) {
	m := res.Manifest
	t := newTable(w)
	t.row("BACKUP:", m.ID)
	t.row("PATH:", res.Path)
	t.row("RELEASE:", fmt.Sprintf("%s/%s revision %d (%s-%s)", m.Namespace, m.Release, m.Revision, m.Chart, m.ChartVersion))
	if m.HasDatabase() {
		t.row("POSTGRESQL:", m.PostgresVersion)
		for _, s := range m.Servers {
			line := fmt.Sprintf("%s, PostgreSQL %s, %d database(s)", s.Key(), s.Version, len(s.Databases))
			if s.NoRolePasswords {
				line += ", roles WITHOUT passwords (the user may not read pg_authid; a restore leaves role passwords as they are)"
			}
			if len(s.Missing) > 0 {
				line += fmt.Sprintf(", not on the server: %v", s.Missing)
			}
			t.row("SERVER:", line)
		}
		t.row("DATABASES:", fmt.Sprintf("%d (%v)", len(m.Databases), m.Databases))
		t.row("DUMP:", fmt.Sprintf("%s of SQL, %s on disk, in %s", progress.HumanBytes(m.TotalRawBytes()),
			progress.HumanBytes(m.TotalBytes()), m.FinishedAt.Sub(m.StartedAt).Round(1e7)))
	} else {
		t.row("DATABASE:", "not backed up: "+m.DatabaseSkipped)
	}
	for _, p := range res.Pruned {
		t.row("PRUNED:", p)
	}
	_ = t.flush()
}

type backupListCmd struct {
	app    *App
	dir    catalogDir
	keep   int
	output output
}

func newBackupListCmd(app *App) *command {
	c := &backupListCmd{app: app}
	return &command{
		Name:    "list",
		Summary: "List the release's backups, oldest first, and which retention keeps",
		Flags: func(fs *pflag.FlagSet) {
			c.dir.bind(fs)
			fs.IntVar(&c.keep, "keep", backup.DefaultKeep, "the --keep of the next backup, to show what it would keep")
			c.output.bind(fs)
		},
		Run: c.run,
	}
}

func (c *backupListCmd) run(_ context.Context, _ []string) error {
	if err := c.dir.resolve(); err != nil {
		return err
	}
	if c.keep < backup.MinKeep {
		return backup.KeepError(c.keep)
	}
	ns, rel, err := c.app.catalogNamespace()
	if err != nil {
		return err
	}
	name := c.app.Env.Release
	cat := c.dir.catalog()
	list, err := cat.List(ns, name)
	if err != nil {
		return err
	}
	// which backups retention keeps needs Helm's history: without the
	// cluster, only the newest is known to be kept
	var hist []int
	if rel != nil {
		hist, _ = backup.HelmRevisions(rel.Helm, rel.Name)
	}
	backup.Retention{Keep: c.keep, History: hist}.Apply(list)
	if c.output == outputJSON {
		if list == nil {
			list = []backup.Entry{}
		}
		return writeJSON(c.app.Stdout, list)
	}
	if len(list) == 0 {
		fmt.Fprintf(c.app.Stdout, "no backups of %s/%s under %s\n", ns, name, cat.Root)
		return nil
	}
	t := newTable(c.app.Stdout)
	t.row("ID", "REVISION", "CHART", "TAKEN (UTC)", "DATABASES", "SIZE", "STATUS", "RETENTION")
	for _, e := range list {
		if !e.Complete {
			t.row(e.ID, e.Revision, "-", e.Time.Format("2006-01-02 15:04:05"), "-", "-", "NOT USABLE: "+e.Problem, "-")
			continue
		}
		m := e.Manifest
		dbs := fmt.Sprint(len(m.Databases))
		if !m.HasDatabase() {
			dbs = "none"
		}
		kept := "KEPT: " + e.Kept
		if e.Kept == "" {
			kept = fmt.Sprintf("pruned by the next backup (--keep %d)", c.keep)
		}
		st := "complete"
		if len(e.Insecure) > 0 {
			st = "complete, WARNING: readable by others (" + strings.Join(e.Insecure, ", ") + ")"
		}
		if len(e.IncompleteExtras) > 0 {
			st += ", incomplete extra file(s) " + strings.Join(e.IncompleteExtras, ", ") + " (not part of it)"
		}
		t.row(e.ID, e.Revision, m.Chart+"-"+m.ChartVersion, e.Time.Format("2006-01-02 15:04:05"), dbs,
			progress.HumanBytes(m.TotalBytes()), st, kept)
	}
	return t.flush()
}

type backupVerifyCmd struct {
	app    *App
	dir    catalogDir
	output output
}

func newBackupVerifyCmd(app *App) *command {
	c := &backupVerifyCmd{app: app}
	return &command{
		Name:    "verify",
		Summary: "Recompute a backup's checksums and check every dump is complete",
		Usage:   "ID|latest [flags]",
		Flags: func(fs *pflag.FlagSet) {
			c.dir.bind(fs)
			c.dir.bindIdentity(fs)
			c.output.bind(fs)
		},
		Args: exactArgs("backup verify", 1, "ID"),
		Run:  c.run,
	}
}

func (c *backupVerifyCmd) run(ctx context.Context, args []string) error {
	if err := c.dir.resolve(); err != nil {
		return err
	}
	ns, _, err := c.app.catalogNamespace()
	if err != nil {
		return err
	}
	cat := c.dir.catalog()
	e, err := cat.Find(ns, c.app.Env.Release, args[0])
	if err != nil {
		return err
	}
	rep := backup.VerifyContext(ctx, e)
	if len(e.Insecure) > 0 {
		rep.Warnings = append(rep.Warnings, "readable or writable by others: "+strings.Join(e.Insecure, ", ")+
			"; restore refuses it without --allow-insecure-permissions; fix: chmod -R go-rwx "+e.Path)
	}
	if c.output == outputJSON {
		if err := writeJSON(c.app.Stdout, rep); err != nil {
			return err
		}
	} else {
		t := newTable(c.app.Stdout)
		for _, ch := range rep.Checks {
			res := "ok"
			if !ch.OK {
				res = "FAILED: " + ch.Error
			}
			t.row(ch.File, res)
		}
		for _, w := range rep.Warnings {
			what := "permissions"
			if name, _, ok := strings.Cut(w, ": incomplete"); ok && slices.Contains(e.IncompleteExtras, name) {
				what = name
			}
			t.row(what, "WARNING: "+w)
		}
		_ = t.flush()
	}
	return backup.VerifyError(rep)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

type backupCopyCmd struct {
	app    *App
	dir    catalogDir
	sse    sseFlags
	to     string
	output output
}

func newBackupCopyCmd(app *App) *command {
	c := &backupCopyCmd{app: app}
	return &command{
		Name:    "copy",
		Summary: "Copy a complete backup to another location (folder or bucket), verified there",
		Usage:   "ID|latest --to LOCATION [flags]",
		Long: `Copies the backup from the command's location (--backup-location, --dir or
$HELM_CSGHUB_BACKUP_LOCATION) to --to, a folder or s3://BUCKET/PREFIX, under the same
namespace, release and id: each file streamed and checked against the manifest on the
way, the manifest written last, then the copy verified at the destination (a copy that
does not verify is removed). An id already at the destination is refused (exit 4).`,
		Flags: func(fs *pflag.FlagSet) {
			c.dir.bind(fs)
			c.dir.bindIdentity(fs)
			fs.StringVar(&c.to, "to", "", "destination: a folder, or s3://BUCKET/PREFIX (required)")
			c.sse.bind(fs)
			c.output.bind(fs)
		},
		Args: exactArgs("backup copy", 1, "ID"),
		Run:  c.run,
	}
}

func (c *backupCopyCmd) run(ctx context.Context, args []string) error {
	if err := c.dir.resolve(); err != nil {
		return err
	}
	if c.to == "" {
		return usageError("backup copy: --to LOCATION is required (a folder, or s3://BUCKET/PREFIX)")
	}
	to, err := backup.ResolveLocation(c.to, "")
	if err != nil {
		return err
	}
	if err := backup.CheckSSE(c.sse.sse, to); err != nil {
		return err
	}
	src, dst := c.dir.catalog(), backup.CatalogAt(to).WithSSE(c.sse.sse)
	if src.Root == dst.Root {
		return usageError("backup copy: --to names the location the backup is read from")
	}
	ns, _, err := c.app.catalogNamespace()
	if err != nil {
		return err
	}
	e, err := src.Find(ns, c.app.Env.Release, args[0])
	if err != nil {
		return err
	}
	steplog.Func(c.app.stepLogger(c.output)).Printf("copying backup %s to %s", e.ID, dst.ReleaseDir(ns, c.app.Env.Release))
	res, err := backup.Copy(ctx, e, dst, ns, c.app.Env.Release)
	if err != nil {
		return err
	}
	return c.app.print(c.output, res, func(w io.Writer) {
		t := newTable(w)
		t.row("COPIED:", res.ID)
		t.row("FROM:", res.From)
		t.row("TO:", res.To)
		t.row("SIZE:", progress.HumanBytes(res.Bytes))
		t.row("VERIFIED:", "yes, at the destination")
		_ = t.flush()
	})
}
