// Package restore replays a backup's PostgreSQL dumps into the live database
// pod so that every database equals the backup: rows inserted since are gone,
// deleted rows are back, sequences match. It follows the guide's section 5 with
// its failure modes removed: the backup is checked before anything changes,
// PostgreSQL is blocked by a NetworkPolicy that is removed on every exit path,
// connections are terminated, and dumps stream through the exec stdin (no copy
// in the pod).
package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/dbpod"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/lock"
	"github.com/opencsgs/helm-csghub/internal/netpol"
	"github.com/opencsgs/helm-csghub/internal/parallel"
	"github.com/opencsgs/helm-csghub/internal/progress"
	"github.com/opencsgs/helm-csghub/internal/steplog"
)

// Restore restores one backup's databases.
type Restore struct {
	Release *helmenv.Release
	Kube    *kube.Client
	// Dir is the catalog root (backup.DefaultDir when empty).
	Dir string
	// BackupID selects the backup ("latest" for the newest). Ignored when Entry is set.
	BackupID string
	Entry    *backup.Entry
	// AllowInsecurePermissions restores a backup others can read or change.
	AllowInsecurePermissions bool
	// Verified: Entry was fully verified (backup.Verify) by the caller.
	Verified bool
	// Parallel is how many databases are replayed at once (default 2).
	Parallel int
	Progress io.Writer
	// Log receives one line per step (nil: silent).
	Log steplog.Func
	// PGImage and PodTimeout: the client pod for an external database (see backup).
	PGImage    string
	PodTimeout time.Duration
	// Lock is the release lock the caller already holds (a rollback, an
	// upgrade's undo); nil: Run takes it.
	Lock *lock.Lock

	// proveOnReplay: each database dump is proven whole (stored size and
	// sha256, SQL size, sha256, trailer, identity) as it replays into its
	// copy, instead of by a read of its own before (a bucket: one download
	// per dump instead of two). Every copy is replayed before the first
	// DROP or rename of a live database, so the guarantee is the same:
	// no database is dropped unless every dump proved whole.
	proveOnReplay bool
}

// Result is a finished restore.
type Result struct {
	BackupID   string        `json:"backupId"`
	Databases  []string      `json:"databases"`
	Terminated int           `json:"terminatedConnections"`
	Extra      []string      `json:"extraDatabases,omitempty"` // on the server but not in the backup: left alone
	Bytes      int64         `json:"sqlBytes"`
	Duration   time.Duration `json:"durationNs"`
	Adopted    bool          `json:"adoptedLeftoverPolicy,omitempty"`
	// External database only: the workloads scaled to 0 during the restore
	// (and back), role statements the server refused, servers without role
	// passwords in the backup.
	ScaledDown      []string `json:"scaledDown,omitempty"`
	RolesRefused    []string `json:"rolesRefused,omitempty"`
	NoRolePasswords []string `json:"serversWithoutRolePasswords,omitempty"`
	// LeftOver are replaced databases (<db>__old) that could not be dropped
	// after the swap; the next restore removes them.
	LeftOver []string `json:"leftoverDatabases,omitempty"`
}

// terminateSQL ends every other client session, as the guide intends; its
// quoting is broken in the guide (nested single quotes), here it is a constant
// passed as one argv element.
const terminateSQL = `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity ` +
	`WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'`

// held is the lock's Held when the caller gave its lock (every caller does:
// the restore command, rollback.Revert): no DROP, no policy removal without it.
func (r *Restore) held(ctx context.Context, before string) error {
	if r.Lock == nil {
		return nil
	}
	return r.Lock.Held(ctx, before)
}

// Run restores. The NetworkPolicy is removed whatever happens, also on Ctrl-C.
func (r *Restore) Run(ctx context.Context) (res *Result, err error) {
	logf := r.Log.Printf
	t0 := time.Now()
	ns, rel := r.Release.Namespace, r.Release.Name
	if r.Lock == nil {
		l, err := lock.Take(ctx, r.Kube.Clientset, ns, rel, "restore", r.Log)
		if err != nil {
			return nil, err
		}
		defer l.Release()
	}
	entry := r.Entry
	if entry == nil {
		cat := backup.CatalogAt(r.Dir)
		if entry, err = cat.Find(ns, rel, r.BackupID); err != nil {
			return nil, err
		}
	}
	if len(entry.Insecure) > 0 && !r.AllowInsecurePermissions {
		return nil, backup.InsecureError(entry)
	}
	m := entry.Manifest
	if !m.HasDatabase() {
		return nil, errs.Preconditionf("backup %s holds no database dump (%s)", entry.ID, m.DatabaseSkipped)
	}
	// 1. check first: a corrupt, cut or partial backup is refused before
	// anything changes. Every dump is proven whole (stored size and sha256,
	// then decompressed: SQL size, SQL sha256, completion trailer) before
	// the first DROP, so no database is dropped for a dump that cannot
	// replace it. Verified: the caller (rollback) has just done it.
	switch {
	case r.Verified:
	case entry.InBucket():
		// A bucket: every object there with its size (metadata only), the
		// roles' dumps proven whole now (they replay on the live server
		// first), and each database dump proven as it replays into its
		// copy (see proveOnReplay): one download per dump, not two.
		logf("checking backup %s: every object present with its size, the roles' dump whole; each database dump is proven whole as it replays into its copy, before any live database is dropped", entry.ID)
		if err := backup.CheckStoredSizes(ctx, entry); err != nil {
			return nil, err
		}
		for _, d := range m.Dumps {
			if d.Database == "" {
				if err := backup.VerifyDump(ctx, entry, d); err != nil {
					return nil, err
				}
			}
		}
		r.proveOnReplay = true
	default:
		logf("verifying backup %s", entry.ID)
		if err := backup.VerifyError(backup.VerifyContext(ctx, entry)); err != nil {
			return nil, err
		}
	}
	if m.External() {
		return r.runExternal(ctx, entry, t0, logf)
	}
	pod := dbpod.New(r.Kube, ns, rel)
	if err := pod.CheckReady(ctx); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, errs.Wrap(errs.Interrupted, fmt.Errorf("restore interrupted before it started, nothing changed"))
	}

	// 2. block PostgreSQL; removed on every path out of here
	block, err := netpol.Create(ctx, r.Kube.Clientset, ns, rel)
	if err != nil {
		return nil, errs.Failedf("%w", err)
	}
	logf("NetworkPolicy %s/%s blocks PostgreSQL", ns, netpol.Name)
	defer func() {
		// a run that lost its lock leaves the policy to the run that took it
		// over (whose restore it may now be blocking for)
		if lerr := r.held(context.WithoutCancel(ctx), "removing NetworkPolicy "+netpol.Name); lerr != nil {
			err = lerr
			return
		}
		if rmErr := block.Remove(); rmErr != nil {
			err = errs.NeedsAttentionf("%v; %v", errOrOK(err), rmErr)
			return
		}
		logf("NetworkPolicy %s/%s removed", ns, netpol.Name)
	}()
	res = &Result{BackupID: entry.ID, Adopted: block.Adopted}

	// 3. terminate the other sessions
	out, err := pod.Query(ctx, "postgres", terminateSQL)
	if err != nil {
		return nil, r.unchanged(ctx, entry, "terminating connections", err)
	}
	fmt.Sscan(out, &res.Terminated)
	logf("terminated %d connection(s)", res.Terminated)

	// template1: the sessions must not sit in the databases they create,
	// rename or drop
	srv := &server{pod: pod, maint: "template1", terminate: terminateDBsSQL}
	if err := srv.cleanLeftovers(ctx, m.Databases, logf); err != nil {
		return nil, r.unchanged(ctx, entry, "removing what an interrupted restore left", err)
	}

	defer kube.LimitHeap()()
	var counter atomic.Int64
	var prog *progress.Bytes
	if r.Progress != nil {
		prog = progress.StartBytes(r.Progress, fmt.Sprintf("restoring %s of SQL", progress.HumanBytes(m.TotalRawBytes())), &counter)
		defer prog.Stop()
	}

	// 4a. roles first: databases refer to their owners
	var dbDumps []backup.Dump
	for _, d := range m.Dumps {
		if d.Database != "" {
			dbDumps = append(dbDumps, d)
			continue
		}
		logf("restoring roles")
		if err := r.replay(ctx, pod, entry, d, "postgres", globalsFilter, &counter); err != nil {
			return nil, r.unchanged(ctx, entry, "restoring roles", err)
		}
	}
	// 4b. each database replayed into a copy, a few at a time; nothing live
	// is touched until all of them are there
	if err := r.replayAll(ctx, srv, entry, dbDumps, &counter, logf); err != nil {
		return nil, err
	}
	// 4c. the copies swapped in, in one transaction; the replaced ones
	// dropped. Only under a lease still held: a run that lost it stops here
	// with every live database as it was.
	if err := r.held(ctx, "swapping the restored databases in"); err != nil {
		// the run holding the lock now owns the copies' names (its restore
		// clears and rebuilds them): they are left to it
		return nil, fmt.Errorf("%w; the live databases are unchanged, the copies are left to the run that holds the lock", err)
	}
	leftover, err := srv.swap(dbNames(dbDumps), logf)
	if err != nil {
		return nil, r.swapFailed(ctx, srv, entry, dbDumps, err)
	}
	res.LeftOver = leftover
	res.Databases = append(res.Databases, m.Databases...)
	res.Bytes = counter.Load()

	// 5. what is on the server now but not in the backup is reported, not dropped
	info, err := pod.Inspect(ctx)
	if err != nil {
		return nil, errs.NeedsAttentionf("the databases were restored from %s, but reading the server afterwards failed: %v", entry.ID, err)
	}
	inBackup := map[string]bool{}
	for _, db := range m.Databases {
		inBackup[db] = true
	}
	present := map[string]bool{}
	for _, db := range info.Databases {
		present[db.Name] = true
		if !inBackup[db.Name] && !contains(res.LeftOver, db.Name) {
			res.Extra = append(res.Extra, db.Name)
		}
	}
	for _, db := range m.Databases {
		if !present[db] {
			return nil, errs.NeedsAttentionf("database %s is missing after the restore", db)
		}
	}
	res.Duration = time.Since(t0)
	return res, nil
}

// replayAll replays each database dump into its copy, biggest first, a few
// at a time. On failure (and Ctrl-C) the copies are removed: the live
// databases were never touched.
func (r *Restore) replayAll(ctx context.Context, srv *server, entry *backup.Entry, dbDumps []backup.Dump, counter *atomic.Int64, logf func(string, ...any)) error {
	workers := r.Parallel
	if workers <= 0 {
		workers = 2
	}
	sort.Slice(dbDumps, func(i, j int) bool { return dbDumps[i].RawBytes > dbDumps[j].RawBytes }) // biggest first
	// When one replay fails, ForEach's context stops the others. It only
	// ends their input (psql sees EOF, finishes and exits), and each waits
	// for its psql to exit: a stream cut instead would leave psql running in
	// the pod, and a copy it creates after the copies are dropped would stay.
	// Ctrl-C (ctx) still cuts the streams at once.
	err := parallel.ForEach(ctx, workers, dbDumps, func(stop context.Context, d backup.Dump) error {
		logf("%srestoring database %s into %s (%s of SQL)", srv.label, d.Database, sideName(d.Database, restoreSuffix), progress.HumanBytes(d.RawBytes))
		return r.replayCopy(ctx, stop, srv, entry, d, counter)
	})
	if err == nil {
		return nil
	}
	// a run that lost its lock (stopped while another restore took over,
	// whose psql sessions ended ours) leaves the copies' names to that run:
	// they may be its own copies by now
	if lerr := r.held(context.WithoutCancel(ctx), "removing the partial copies"); lerr != nil {
		return fmt.Errorf("%w; the live databases are unchanged, the copies are left to the run that holds the lock (%v)", lerr, steplog.OneLine(err.Error()))
	}
	if derr := srv.dropCopies(dbNames(dbDumps)); derr != nil {
		return errs.NeedsAttentionf("%srestoring databases: %v; the live databases are unchanged, but removing the copies failed: %v (the next restore removes them)", srv.label, err, derr)
	}
	logf("%sremoved the partial copies; the live databases are unchanged", srv.label)
	var bad *corruptDump
	if errors.As(err, &bad) {
		return errs.Preconditionf("backup %s is corrupt: %s: %v (found while replaying it into its copy: the copies are removed, the live databases unchanged)", entry.ID, bad.file, bad.err)
	}
	return r.unchanged(ctx, entry, srv.label+"restoring databases", err)
}

// corruptDump is a dump that did not prove whole while it replayed
// (proveOnReplay).
type corruptDump struct {
	file string
	err  error
}

func (c *corruptDump) Error() string { return c.file + ": " + c.err.Error() }

// swapFailed is the error of a failed swap: before its commit nothing
// changed (the copies are removed); otherwise the state is named.
func (r *Restore) swapFailed(ctx context.Context, srv *server, entry *backup.Entry, dbDumps []backup.Dump, err error) error {
	if errors.Is(err, errNotSwapped) {
		if derr := srv.dropCopies(dbNames(dbDumps)); derr != nil {
			return errs.NeedsAttentionf("%sswapping the restored databases in: %v; the live databases are unchanged, but removing the copies failed: %v (the next restore removes them)", srv.label, err, derr)
		}
		return r.unchanged(context.WithoutCancel(ctx), entry, srv.label+"swapping the restored databases in", err)
	}
	return errs.NeedsAttentionf("%s%v: check which of the databases and their %s/%s copies exist (psql \\l), then rerun `helm csghub restore --backup %s`", srv.label, err, restoreSuffix, oldSuffix, entry.ID)
}

func dbNames(dumps []backup.Dump) []string {
	out := make([]string, len(dumps))
	for i, d := range dumps {
		out[i] = d.Database
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// replay streams one dump (through filter) into psql in db. Its stored file
// was checked up front (size, sha256); zstd's frame checksums, the SQL's size
// and its completion trailer are checked as it goes, and a mismatch fails the
// restore even though psql has taken the stream.
func (r *Restore) replay(ctx context.Context, pod *dbpod.Pod, entry *backup.Entry, d backup.Dump, db string,
	filter func(io.Reader) io.Reader, counter *atomic.Int64) error {
	rc, err := entry.OpenStoredDump(ctx, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	in := filter(&countingReader{r: rc, n: counter})
	if err := pod.RunScript(ctx, db, in); err != nil {
		return fmt.Errorf("%s: %w", d.Name, err)
	}
	// the exec stream drops stdin read errors: ask the reader
	if err := rc.Err(); err != nil {
		return fmt.Errorf("%s: the SQL replayed does not match the backup: %w", d.Name, err)
	}
	return nil
}

func prefix(sql string) func(io.Reader) io.Reader {
	return func(r io.Reader) io.Reader { return io.MultiReader(strings.NewReader(sql), r) }
}

// stoppingReader reads r until stop is done, then fails: the exec stream
// then ends psql's input instead of cutting the stream.
type stoppingReader struct {
	stop context.Context
	r    io.Reader
}

func (s stoppingReader) Read(p []byte) (int, error) {
	if err := s.stop.Err(); err != nil {
		return 0, fmt.Errorf("stopped: %w", context.Cause(s.stop))
	}
	return s.r.Read(p)
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func errOrOK(err error) string {
	if err == nil {
		return "restore finished"
	}
	return err.Error()
}
