package restore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/dbpod"
	"github.com/opencsgs/helm-csghub/internal/errs"
)

// A restore never drops a database before its replacement exists: each dump
// is replayed into <db>__restore; only when every dump of the server was
// replayed without error are the copies swapped in, all of the server's
// databases in one transaction (ALTER DATABASE ... RENAME is transactional:
// every live database keeps its name, or every copy takes it); the replaced
// databases (<db>__old) are dropped last. A failure before the swap removes
// the copies and leaves the live databases as they were.

// server is where a restore runs SQL: the built-in database pod or an
// external server's client pod.
type server struct {
	pod *dbpod.Pod
	// maint is the database the sessions that create, rename and drop sit in.
	maint string
	// terminate ends the sessions in the databases of :'dbs' (a JSON list)
	// that the restore may end; its output is their count.
	terminate string
	label     string // for messages: "" (built-in) or "user@host:port: "
}

// terminateDBsSQL ends every other session in the databases of :'dbs'.
const terminateDBsSQL = `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity ` +
	`WHERE pid <> pg_backend_pid() AND datname IN (SELECT json_array_elements_text(:'dbs'::json));` + "\n"

// swapTimeout bounds the swap and the cleanups, which run on a context of
// their own: a Ctrl-C must not leave a half-known state.
const swapTimeout = 2 * time.Minute

func jsonNames(names []string) string {
	b, _ := json.Marshal(names)
	return string(b)
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

// existing is which of names are databases on the server.
func (s *server) existing(ctx context.Context, names []string) (map[string]bool, error) {
	out, err := s.pod.QueryVars(ctx, s.maint, `SELECT datname FROM pg_database WHERE datname IN (SELECT json_array_elements_text(:'dbs'::json));`+"\n",
		map[string]string{"dbs": jsonNames(names)})
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if l != "" {
			have[l] = true
		}
	}
	return have, nil
}

func (s *server) drop(ctx context.Context, db string) error {
	_, err := s.pod.QueryVars(ctx, s.maint, "DROP DATABASE IF EXISTS "+ident(db)+" WITH (FORCE);\n", nil)
	return err
}

// cleanLeftovers removes what a killed restore of these databases left: the
// copies (<db>__restore, never swapped in) and replaced databases
// (<db>__old) whose swap committed. A <db>__old without <db> is not a
// committed swap's: it is left alone and reported.
func (s *server) cleanLeftovers(ctx context.Context, dbs []string, logf func(string, ...any)) error {
	var names []string
	for _, db := range dbs {
		names = append(names, db, sideName(db, restoreSuffix), sideName(db, oldSuffix))
	}
	have, err := s.existing(ctx, names)
	if err != nil {
		return err
	}
	for _, db := range dbs {
		if tmp := sideName(db, restoreSuffix); have[tmp] {
			if err := s.drop(ctx, tmp); err != nil {
				return fmt.Errorf("removing %s left by an interrupted restore: %w", tmp, err)
			}
			logf("%sremoved database %s left by an interrupted restore (a copy never swapped in)", s.label, tmp)
		}
		if old := sideName(db, oldSuffix); have[old] {
			if !have[db] {
				return fmt.Errorf("database %s exists but %s does not: not a restore's leftover, not touched; rename it back by hand (ALTER DATABASE %s RENAME TO %s) or drop it", old, db, ident(old), ident(db))
			}
			if err := s.drop(ctx, old); err != nil {
				return fmt.Errorf("removing %s left by an interrupted restore: %w", old, err)
			}
			logf("%sremoved database %s left by an interrupted restore (replaced by a completed swap)", s.label, old)
		}
	}
	return nil
}

// replayCopy replays dump d into a new database <db>__restore. When stop
// is done its input ends (see replayAll); ctx cuts the stream.
func (r *Restore) replayCopy(ctx, stop context.Context, s *server, entry *backup.Entry, d backup.Dump, counter *atomic.Int64) error {
	if stop.Err() != nil {
		return context.Cause(stop)
	}
	open := entry.OpenStoredDump
	if r.proveOnReplay {
		open = entry.OpenCheckedDump // every check of Verify, on the way
	}
	rc, err := open(ctx, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	rn := newRenamer(&countingReader{r: rc, n: counter}, d.Database, sideName(d.Database, restoreSuffix))
	runErr := s.pod.RunScript(ctx, s.maint, stoppingReader{stop: stop, r: rn})
	if stop.Err() != nil {
		return context.Cause(stop) // another replay failed: its error is the one reported
	}
	if r.proveOnReplay && ctx.Err() == nil {
		// the dump's verdict first: a corrupt dump also makes psql or the
		// renamer fail; read what psql left to tell which it was
		if err := rc.Drain(); err != nil && ctx.Err() == nil {
			return &corruptDump{file: d.Name, err: err}
		}
	}
	// the exec stream drops stdin read errors: ask the readers
	if err := rn.Err(); err != nil {
		return fmt.Errorf("%s: %w", d.Name, err)
	}
	if runErr != nil {
		return fmt.Errorf("%s: %w", d.Name, runErr)
	}
	if err := rc.Err(); err != nil {
		return fmt.Errorf("%s: the SQL replayed does not match the backup: %w", d.Name, err)
	}
	return nil
}

// dropCopies removes the copies of dbs (after a failure before the swap).
func (s *server) dropCopies(dbs []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), swapTimeout)
	defer cancel()
	var failed []error
	for _, db := range dbs {
		if err := s.drop(ctx, sideName(db, restoreSuffix)); err != nil {
			failed = append(failed, fmt.Errorf("%s: %w", sideName(db, restoreSuffix), err))
		}
	}
	return errors.Join(failed...)
}

// errNotSwapped: the swap's transaction did not commit; every live database
// is as it was and every copy is still there.
var errNotSwapped = errors.New("not swapped")

// swap puts every copy in place of its live database in one transaction,
// then drops the replaced ones. It returns the replaced databases it could
// not drop (the next restore removes them).
func (s *server) swap(dbs []string, logf func(string, ...any)) (leftover []string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), swapTimeout)
	defer cancel()
	var names []string
	for _, db := range dbs {
		names = append(names, db, sideName(db, restoreSuffix))
	}
	have, err := s.existing(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotSwapped, err)
	}
	var sql strings.Builder
	sql.WriteString(s.terminate)
	sql.WriteString("BEGIN;\n")
	for _, db := range dbs {
		if !have[sideName(db, restoreSuffix)] {
			return nil, fmt.Errorf("%w: the copy %s is missing", errNotSwapped, sideName(db, restoreSuffix))
		}
		if have[db] {
			sql.WriteString("ALTER DATABASE " + ident(db) + " RENAME TO " + ident(sideName(db, oldSuffix)) + ";\n")
		}
		sql.WriteString("ALTER DATABASE " + ident(sideName(db, restoreSuffix)) + " RENAME TO " + ident(db) + ";\n")
	}
	sql.WriteString("COMMIT;\n")
	vars := map[string]string{"dbs": jsonNames(names)}
	for attempt := 1; ; attempt++ {
		_, err = s.pod.QueryVars(ctx, s.maint, sql.String(), vars)
		// a session that reconnected between the terminate and the rename
		// makes the rename fail (the transaction rolls back): again
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "is being accessed by other users") {
			break
		}
	}
	if err != nil {
		// did the commit happen? (the stream may break after it)
		after, qerr := s.existing(ctx, names)
		switch {
		case qerr != nil:
			return nil, fmt.Errorf("swapping the restored databases in: %v; and reading the result: %v", err, qerr)
		case allOf(after, dbs, restoreSuffix):
			return nil, fmt.Errorf("%w: %v", errNotSwapped, err)
		case noneOf(after, dbs, restoreSuffix):
			// committed
		default:
			return nil, fmt.Errorf("swapping the restored databases in: %v", err)
		}
	}
	logf("%sswapped in %d restored database(s)", s.label, len(dbs))
	for _, db := range dbs {
		if !have[db] {
			continue
		}
		if err := s.drop(ctx, sideName(db, oldSuffix)); err != nil {
			leftover = append(leftover, sideName(db, oldSuffix))
			logf("%sWARNING: the replaced database %s could not be dropped (%v); the next restore removes it", s.label, sideName(db, oldSuffix), err)
		}
	}
	return leftover, nil
}

func allOf(have map[string]bool, dbs []string, suffix string) bool {
	for _, db := range dbs {
		if !have[sideName(db, suffix)] {
			return false
		}
	}
	return true
}

func noneOf(have map[string]bool, dbs []string, suffix string) bool {
	for _, db := range dbs {
		if have[sideName(db, suffix)] {
			return false
		}
	}
	return true
}

// unchanged is the error of a restore that failed before any swap: the live
// databases are as they were.
func (r *Restore) unchanged(ctx context.Context, entry *backup.Entry, step string, err error) error {
	if ctx.Err() != nil {
		return errs.Wrap(errs.Interrupted, fmt.Errorf("restore interrupted while %s: the live databases are unchanged (the dumps go into copies, removed again); rerun `helm csghub restore --backup %s` to restore", step, entry.ID))
	}
	return errs.Failedf("%s: %v (the live databases are unchanged: the dumps go into copies, removed again; rerun `helm csghub restore --backup %s` once the cause is fixed)", step, err, entry.ID)
}
