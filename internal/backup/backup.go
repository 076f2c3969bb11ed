package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"filippo.io/age"
	"helm.sh/helm/v3/pkg/action"
	"sigs.k8s.io/yaml"

	"github.com/opencsgs/helm-csghub/internal/buildinfo"
	"github.com/opencsgs/helm-csghub/internal/csghub"
	"github.com/opencsgs/helm-csghub/internal/dbpod"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/parallel"
	"github.com/opencsgs/helm-csghub/internal/progress"
	"github.com/opencsgs/helm-csghub/internal/steplog"
)

// Backup takes one backup of the release's values and database.
type Backup struct {
	Release *helmenv.Release
	Kube    *kube.Client
	// Dir is the catalog root (DefaultDir when empty).
	Dir string
	// Keep is how many complete backups retention keeps (DefaultKeep when 0).
	Keep int
	// SkipDatabase takes the values only; the manifest says why. Upgrades never
	// set it unless the operator asked (--skip-db-backup).
	SkipDatabase bool
	// Progress receives the live byte counter display (nil: silent).
	Progress io.Writer
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
	// PGImage is the client image for an external database (the chart's
	// PostgreSQL image when empty); PodTimeout bounds its start.
	PGImage    string
	PodTimeout time.Duration
	// Log receives one line per step (nil: silent).
	Log steplog.Func
	// SSE asks a bucket location to encrypt the backup (CheckSSE first).
	SSE SSE
	// EncryptTo encrypts every file but the manifest to these age
	// recipients (ParseRecipients); nil: plain.
	EncryptTo []age.Recipient
}

// Result is a finished backup.
type Result struct {
	Manifest *Manifest `json:"manifest"`
	// Path is the backup's folder, or its s3:// URL.
	Path   string   `json:"path"`
	Pruned []string `json:"pruned,omitempty"`
	entry  *Entry
}

// Entry is the backup just written, as the catalog lists it.
func (r *Result) Entry() *Entry { return r.entry }

// Run writes the backup. On any failure, and on Ctrl-C, the partial folder is
// removed and no manifest exists: a backup is complete or absent.
func (b *Backup) Run(ctx context.Context) (res *Result, err error) {
	now := b.Now
	if now == nil {
		now = time.Now
	}
	keep := b.Keep
	if keep == 0 {
		keep = DefaultKeep
	}
	if keep < MinKeep {
		return nil, KeepError(keep)
	}
	cfg := b.Release.Helm
	rel, err := b.Release.Last()
	if err != nil {
		return nil, err
	}
	userValues, allValues, err := releaseValues(cfg, b.Release.Name, rel.Version)
	if err != nil {
		return nil, err
	}

	m := &Manifest{
		FormatVersion: FormatVersion,
		Release:       rel.Name,
		Namespace:     rel.Namespace,
		Revision:      rel.Version,
		ReleaseStatus: rel.Info.Status.String(),
		Compression:   "zstd",
		PluginVersion: buildinfo.Version,
		StartedAt:     now().UTC(),
	}
	if md := rel.Chart.Metadata; md != nil {
		m.Chart, m.ChartVersion, m.AppVersion = md.Name, md.Version, md.AppVersion
	}

	var pod *dbpod.Pod
	var clients []*dbpod.Client
	external := csghub.ExternalPostgres(allValues.m)
	switch {
	case b.SkipDatabase:
		m.DatabaseSkipped = "skipped on request (--skip-db-backup)"
	case external:
		// the client pods start (and the servers answer) before anything is
		// written; they are deleted on every path out of here
		if clients, err = StartExternalClients(ctx, b.Kube, b.Release.Namespace, rel.Name, allValues.m, b.PGImage, b.PodTimeout, b.Log); err != nil {
			return nil, err
		}
		defer func() {
			if cerr := dbpod.CloseAll(clients); cerr != nil {
				if err == nil {
					err = errs.NeedsAttentionf("backup %s is complete, but %v", m.ID, cerr)
				} else {
					err = errs.NeedsAttentionf("%v; %v", err, cerr)
				}
			}
		}()
	default:
		pod = dbpod.New(b.Kube, b.Release.Namespace, b.Release.Name)
		if err := pod.CheckReady(ctx); err != nil {
			return nil, err
		}
	}

	cat := CatalogAt(b.Dir).WithSSE(b.SSE)
	sink, err := cat.newSink(ctx, rel.Namespace, rel.Name, rel.Version, m)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			sink.discard()
		}
	}()
	if len(b.EncryptTo) > 0 {
		m.Encryption = &Encryption{Method: "age"}
		for _, r := range b.EncryptTo {
			m.Encryption.Recipients = append(m.Encryption.Recipients, fmt.Sprint(r))
		}
		sink = encryptingSink{backupSink: sink, to: b.EncryptTo}
	}

	if m.Values, err = putFile(sink, valuesName, userValues); err != nil {
		return nil, errs.Failedf("writing values: %w", describeFSError(err))
	}
	if m.AllValues, err = putFile(sink, allValuesName, allValues.yaml); err != nil {
		return nil, errs.Failedf("writing values: %w", describeFSError(err))
	}

	if pod != nil || clients != nil {
		sources, err := b.inspect(ctx, pod, clients, m)
		if err != nil {
			return nil, err
		}
		if err := b.dumpDatabase(ctx, sources, sink, m); err != nil {
			return nil, err
		}
	}

	m.FinishedAt = now().UTC()
	data, err := jsonIndent(m)
	if err != nil {
		return nil, err
	}
	if err := sink.complete(ctx, data); err != nil {
		return nil, err
	}
	ok = true

	res = &Result{Manifest: m, Path: sink.where(), entry: cat.entryFor(sink.where(), m)}
	hist, err := HelmRevisions(cfg, rel.Name)
	if err != nil {
		return res, err
	}
	res.Pruned, err = cat.Prune(rel.Namespace, rel.Name, Retention{Keep: keep, History: hist})
	if err != nil {
		return res, err
	}
	return res, nil
}

// dumpParallel is how many dumps stream at once. Two keep both ends busy: the
// small databases and the exec round trips overlap the biggest dump, without
// flooding the API server or the database pod (restore replays two at once too).
const dumpParallel = 2

// dumpJob is one dump of the backup: the globals (db "") or one database.
type dumpJob struct {
	index  int // position in the manifest: per server, globals first, then the server's order
	db     string
	file   string
	server string
	size   int64 // on-disk size of the database: the biggest start first
	run    func(context.Context, io.Writer) error
}

// source is one server to dump: the built-in pod, or a client pod for an
// external server.
type source struct {
	pod         *dbpod.Pod
	dbs         []dbpod.Database
	globalsFile string
	server      string // key of the external server; "" for the built-in one
	noPasswords bool
}

// inspect reads what each server holds and records it in m.
func (b *Backup) inspect(ctx context.Context, pod *dbpod.Pod, clients []*dbpod.Client, m *Manifest) ([]source, error) {
	if pod != nil {
		info, err := pod.Inspect(ctx)
		if err != nil {
			return nil, errs.Failedf("PostgreSQL in %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		m.PostgresVersion = info.Version
		return []source{{pod: pod, dbs: info.Databases, globalsFile: globalsName}}, nil
	}
	var sources []source
	for i, c := range clients {
		info, missing, err := c.InspectDatabases(ctx, c.Server.Databases)
		if err != nil {
			return nil, errs.Failedf("PostgreSQL %s: %w", c.Server.Key(), err)
		}
		if len(info.Databases) == 0 {
			return nil, errs.Preconditionf("PostgreSQL %s has none of the release's databases (%s)", c.Server.Key(), strings.Join(c.Server.Databases, ", "))
		}
		canRead, err := c.CanReadRolePasswords(ctx)
		if err != nil {
			return nil, errs.Failedf("PostgreSQL %s: %w", c.Server.Key(), err)
		}
		if m.PostgresVersion == "" {
			m.PostgresVersion = info.Version
		}
		srv := Server{Host: c.Server.Host, Port: c.Server.Port, User: c.Server.User, SSLMode: c.Server.SSLMode,
			Version: info.Version, Missing: missing, NoRolePasswords: !canRead, Image: c.Image}
		src := source{pod: c.Pod, dbs: info.Databases, globalsFile: globalsName, server: c.Server.Key(), noPasswords: !canRead}
		if i > 0 {
			src.globalsFile = fmt.Sprintf("globals-%d.sql.zst", i+1)
		}
		for _, d := range info.Databases {
			srv.Databases = append(srv.Databases, d.Name)
		}
		for _, n := range missing {
			b.Log.Printf("PostgreSQL %s has no database %s (named in the release's values): not backed up", c.Server.Key(), n)
		}
		if !canRead {
			b.Log.Printf("PostgreSQL %s: user %s may not read role password hashes (pg_authid): roles are backed up without passwords (--no-role-passwords)", c.Server.Key(), c.Server.User)
		}
		m.Servers = append(m.Servers, srv)
		sources = append(sources, src)
	}
	return sources, nil
}

// dumpDatabase streams globals and one dump per database of every source
// into dir, a few at a time. The first failure (or Ctrl-C) cancels the
// others; their files are dropped with the partial folder.
func (b *Backup) dumpDatabase(ctx context.Context, sources []source, sink backupSink, m *Manifest) error {
	var partBuffers int64
	inner := sink
	if es, ok := sink.(encryptingSink); ok {
		inner = es.backupSink
	}
	if _, ok := inner.(*s3Sink); ok {
		partBuffers = dumpParallel * UploadPartSize
	}
	defer kube.LimitHeapAbove(partBuffers)()
	var counter atomic.Int64
	var labels *activeLabels
	if b.Progress != nil {
		prog := progress.StartBytes(b.Progress, "dumping globals", &counter)
		defer prog.Stop()
		labels = &activeLabels{set: prog.SetLabel}
	}

	var jobs []dumpJob
	files := map[string]bool{}
	for _, src := range sources {
		pod := src.pod
		globals := pod.DumpGlobals
		if src.noPasswords {
			globals = pod.DumpGlobalsNoRolePasswords
		}
		jobs = append(jobs, dumpJob{index: len(jobs), file: src.globalsFile, server: src.server, run: globals})
		for _, db := range src.dbs {
			name := db.Name
			file := dumpFileName(name)
			for n := 2; files[file]; n++ { // the same name on two servers
				file = dumpFileName(fmt.Sprintf("%s-%d", name, n))
			}
			files[file] = true
			jobs = append(jobs, dumpJob{index: len(jobs), db: name, file: file, server: src.server, size: db.Bytes,
				run: func(ctx context.Context, w io.Writer) error { return pod.DumpDatabase(ctx, name, w) }})
		}
	}
	// globals first (tiny, and a failure there is cheap to report), then
	// biggest first so that the longest dump does not start last
	order := append([]dumpJob{}, jobs...)
	sort.SliceStable(order, func(i, j int) bool {
		gi, gj := order[i].db == "", order[j].db == ""
		if gi != gj {
			return gi
		}
		return order[i].size > order[j].size
	})

	dumps := make([]Dump, len(jobs))
	err := parallel.ForEach(ctx, dumpParallel, order, func(jctx context.Context, j dumpJob) error {
		labels.add(j.db)
		defer labels.remove(j.db)
		d, err := b.dumpOne(ctx, jctx, sink, j, &counter)
		d.Server = j.server
		dumps[j.index] = d
		return err
	})
	if err != nil {
		var typed *errs.Error
		if ctx.Err() != nil && !errors.As(err, &typed) { // Ctrl-C between two dumps
			return errs.Wrap(errs.Interrupted, fmt.Errorf("backup interrupted, nothing kept"))
		}
		return err
	}
	m.Dumps = append(m.Dumps, dumps...)
	for _, src := range sources {
		for _, db := range src.dbs {
			m.Databases = append(m.Databases, db.Name)
		}
	}
	return nil
}

// dumpOne streams one dump into sink. ctx is the backup's (Ctrl-C), jctx the
// job's, also cancelled when another dump failed.
func (b *Backup) dumpOne(ctx, jctx context.Context, sink backupSink, j dumpJob, counter *atomic.Int64) (Dump, error) {
	out, err := sink.create(j.file)
	if err != nil {
		return Dump{}, errs.Failedf("creating %s: %w", j.file, describeFSError(err))
	}
	w, err := newDumpWriterTo(out, j.file, counter)
	if err != nil {
		return Dump{}, errs.Failedf("creating %s: %w", j.file, describeFSError(err))
	}
	err = j.run(jctx, w)
	if werr := w.firstErr(); werr != nil { // the stream may report a failed local write as success or as a stream error
		err = werr
	}
	if err == nil && jctx.Err() != nil { // cancelled after the stream ended: the backup is failing anyway
		err = jctx.Err()
	}
	if err != nil {
		w.abort()
		switch {
		case ctx.Err() != nil:
			return Dump{}, errs.Wrap(errs.Interrupted, fmt.Errorf("backup interrupted while dumping %s, nothing kept", orGlobals(j.db)))
		case isFSError(err):
			return Dump{}, errs.Failedf("writing %s: %w", j.file, describeFSError(err))
		}
		return Dump{}, errs.Failedf("dumping %s: %w", orGlobals(j.db), err)
	}
	if err := checkTrailer(w.tailBytes(), j.db == ""); err != nil {
		w.abort()
		return Dump{}, errs.Failedf("dumping %s: %w", orGlobals(j.db), err)
	}
	var owner string
	if j.db != "" {
		// the manifest records who owns the database as the dump says it, so
		// that verify and restore can hold the dump to it
		id, err := w.identity()
		if err == nil && id.Database != j.db {
			err = fmt.Errorf("the dump is of database %q", id.Database)
		}
		if err != nil {
			w.abort()
			return Dump{}, errs.Failedf("dumping %s: %w", j.db, err)
		}
		owner = id.Owner
	}
	d, err := w.finish(j.db)
	if err != nil {
		return Dump{}, errs.Failedf("writing %s: %w", j.file, describeFSError(err))
	}
	d.Owner = owner
	return d, nil
}

// activeLabels shows the dumps in progress on the progress line (nil: no
// progress display).
type activeLabels struct {
	mu     sync.Mutex
	set    func(string)
	active []string
}

func (a *activeLabels) add(db string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.active = append(a.active, db)
	a.show()
}

func (a *activeLabels) remove(db string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, x := range a.active {
		if x == db {
			a.active = append(a.active[:i], a.active[i+1:]...)
			break
		}
	}
	if len(a.active) > 0 {
		a.show()
	}
}

func (a *activeLabels) show() {
	names := make([]string, len(a.active))
	for i, db := range a.active {
		names[i] = db
		if db == "" {
			names[i] = "globals"
		}
	}
	a.set("dumping " + strings.Join(names, ", "))
}

func orGlobals(db string) string {
	if db == "" {
		return "roles (pg_dumpall --globals-only)"
	}
	return "database " + db
}

// HelmRevisions lists the revisions Helm's history holds for release name.
func HelmRevisions(cfg *action.Configuration, name string) ([]int, error) {
	hist, err := cfg.Releases.History(name)
	if err != nil {
		return nil, errs.Failedf("reading history of %q: %w", name, err)
	}
	revs := make([]int, 0, len(hist))
	for _, h := range hist {
		revs = append(revs, h.Version)
	}
	return revs, nil
}

// values are a release's values as a map and as YAML.
type values struct {
	m    map[string]any
	yaml []byte
}

// releaseValues reads what `helm get values -o yaml` and `helm get values -a -o
// yaml` print for revision.
func releaseValues(cfg *action.Configuration, name string, revision int) ([]byte, values, error) {
	get := action.NewGetValues(cfg)
	get.Version = revision
	user, err := get.Run(name)
	if err != nil {
		return nil, values{}, errs.Failedf("reading values of %s revision %d: %w", name, revision, err)
	}
	get.AllValues = true
	all, err := get.Run(name)
	if err != nil {
		return nil, values{}, errs.Failedf("reading computed values of %s revision %d: %w", name, revision, err)
	}
	userYAML, err := yaml.Marshal(nonNil(user))
	if err != nil {
		return nil, values{}, err
	}
	allYAML, err := yaml.Marshal(nonNil(all))
	if err != nil {
		return nil, values{}, err
	}
	return userYAML, values{m: all, yaml: allYAML}, nil
}

func nonNil(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// StartExternalClients starts a client pod for every external server the
// release's values name (see dbpod.ExternalServers), with the chart's
// PostgreSQL image unless image is set. Also used by restore and preflight.
func StartExternalClients(ctx context.Context, kc *kube.Client, ns, release string, values map[string]any,
	image string, timeout time.Duration, logf func(string, ...any)) ([]*dbpod.Client, error) {
	servers, err := dbpod.ExternalServers(values, release)
	if err != nil {
		return nil, errs.Preconditionf("%v", err)
	}
	if image == "" {
		image = dbpod.ClientImage(values)
	}
	return dbpod.StartClients(ctx, dbpod.ClientOptions{Kube: kc, Namespace: ns, Release: release, Image: image, Timeout: timeout}, servers, logf)
}

// reserveID picks a folder name not used yet (two backups in one second get a suffix).
func reserveID(relDir string, revision int, t time.Time) (string, string, error) {
	base := newID(revision, t)
	for i := 0; i < 100; i++ {
		id := base
		if i > 0 {
			id = fmt.Sprintf("%s-%d", base, i+1)
		}
		final := filepath.Join(relDir, id)
		_, err1 := os.Stat(final)
		_, err2 := os.Stat(final + partialSuffix)
		if os.IsNotExist(err1) && os.IsNotExist(err2) {
			return id, final, nil
		}
	}
	return "", "", errs.Failedf("cannot pick a backup name under %s", relDir)
}

// mkdirAll creates dir and its parents with mode 0700 and tightens dir itself.
func mkdirAll(dir string) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return describeFSError(err)
	}
	return os.Chmod(dir, dirMode)
}

func isFSError(err error) bool {
	var pe *os.PathError
	return errors.As(err, &pe) || errors.Is(err, syscall.ENOSPC)
}

// describeFSError gives full disks and permissions a plain explanation.
func describeFSError(err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("no space left on the backup device (%w); free space or choose --dir", err)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%w; choose a writable --dir", err)
	}
	return err
}
