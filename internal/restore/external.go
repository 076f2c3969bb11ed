package restore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"sigs.k8s.io/yaml"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/dbpod"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/progress"
	"github.com/opencsgs/helm-csghub/internal/quiesce"
	"github.com/opencsgs/helm-csghub/internal/readlimit"
)

// terminateExternalSQL ends the sessions in the restored databases that the
// restore user may end (a managed server's other tenants and superuser
// sessions are not ours to touch). :'dbs' is a JSON array set with psql -v.
const terminateExternalSQL = `SELECT count(*) FILTER (WHERE ok) FROM (
  SELECT pg_terminate_backend(a.pid) AS ok FROM pg_stat_activity a
  WHERE a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
    AND a.datname IN (SELECT json_array_elements_text(:'dbs'::json))
    AND (pg_has_role(current_user, a.usesysid, 'USAGE') OR pg_has_role(current_user, 'pg_signal_backend', 'USAGE'))
    AND (NOT coalesce((SELECT rolsuper FROM pg_roles WHERE oid = a.usesysid), false)
         OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))
) t;
`

// podWait bounds the wait for the scaled-down pods to be gone.
const podWait = 2 * time.Minute

// runExternal restores a backup of external servers: client pods reach them
// from inside the cluster, the release's workloads are scaled to 0 (a
// NetworkPolicy cannot fence a server outside the cluster) and back on every
// path, the remaining sessions are ended, then roles and databases are
// replayed as for the built-in database.
func (r *Restore) runExternal(ctx context.Context, entry *backup.Entry, t0 time.Time, logf func(string, ...any)) (res *Result, err error) {
	ns, rel := r.Release.Namespace, r.Release.Name
	m := entry.Manifest
	servers, err := r.externalServers(entry)
	if err != nil {
		return nil, err
	}
	// 2. client pods: the servers answer before anything changes
	var image string
	if r.PGImage != "" {
		image = r.PGImage
	} else if len(m.Servers) > 0 && m.Servers[0].Image != "" {
		image = m.Servers[0].Image
	}
	if image == "" {
		image = dbpod.ClientImage(nil)
	}
	clients, err := dbpod.StartClients(ctx, dbpod.ClientOptions{Kube: r.Kube, Namespace: ns, Release: rel, Image: image, Timeout: r.PodTimeout}, servers, logf)
	if err != nil {
		return nil, err
	}
	res = &Result{BackupID: entry.ID}
	var guard *quiesce.Guard
	var scaled []string
	defer func() {
		var problems []string
		if rerr := guard.Resume(); rerr != nil {
			problems = append(problems, rerr.Error())
		} else if len(scaled) > 0 {
			logf("scaled back %d workload(s)", len(scaled))
		}
		if cerr := dbpod.CloseAll(clients); cerr != nil {
			problems = append(problems, cerr.Error())
		}
		if len(problems) > 0 {
			err = errs.NeedsAttentionf("%v; %v", errOrOK(err), errors.Join(errorsOf(problems)...))
		}
	}()
	if ctx.Err() != nil {
		return nil, errs.Wrap(errs.Interrupted, fmt.Errorf("restore interrupted before it started, nothing changed"))
	}

	// 3. stop the writers
	guard, err = quiesce.Stop(ctx, r.Kube.Clientset, ns, rel, podWait)
	res.ScaledDown = guard.Names()
	scaled = res.ScaledDown
	if len(guard.Adopted) > 0 {
		logf("%d workload(s) were still scaled down by an interrupted restore: adopted", len(guard.Adopted))
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, errs.Wrap(errs.Interrupted, fmt.Errorf("restore interrupted while stopping the workloads, database unchanged"))
		}
		return nil, errs.Failedf("stopping the release's workloads before the restore: %v (database unchanged)", err)
	}
	logf("scaled to 0: %v", res.ScaledDown)

	defer kube.LimitHeap()()
	var counter atomic.Int64
	if r.Progress != nil {
		prog := progress.StartBytes(r.Progress, fmt.Sprintf("restoring %s of SQL", progress.HumanBytes(m.TotalRawBytes())), &counter)
		defer prog.Stop()
	}
	// every server's dumps go into copies first; only then is anything
	// swapped in, server by server
	var prepared []*server
	var dbsOf [][]string
	for i, c := range clients {
		srv := m.Servers[i]
		if srv.NoRolePasswords {
			res.NoRolePasswords = append(res.NoRolePasswords, srv.Key())
		}
		s, dbs, err := r.prepareServer(ctx, entry, c, srv, res, &counter, logf)
		if err != nil {
			for j, p := range prepared { // the copies made on the servers before
				if derr := p.dropCopies(dbsOf[j]); derr != nil {
					return nil, errs.NeedsAttentionf("%v; removing the copies on %s failed: %v (the next restore removes them)", err, m.Servers[j].Key(), derr)
				}
			}
			return nil, err
		}
		prepared, dbsOf = append(prepared, s), append(dbsOf, dbs)
	}
	for i, s := range prepared {
		leftover, err := s.swap(dbsOf[i], logf)
		if err != nil {
			if i > 0 {
				return nil, errs.NeedsAttentionf("%s: %v; the databases of %v were already restored: rerun `helm csghub restore --backup %s`", m.Servers[i].Key(), err, serverKeys(m.Servers[:i]), entry.ID)
			}
			var rest []backup.Dump
			for _, d := range m.Dumps {
				if d.Server == m.Servers[i].Key() && d.Database != "" {
					rest = append(rest, d)
				}
			}
			for j := 1; j < len(prepared); j++ {
				_ = prepared[j].dropCopies(dbsOf[j])
			}
			return nil, r.swapFailed(ctx, s, entry, rest, err)
		}
		res.LeftOver = append(res.LeftOver, leftover...)
	}
	for i, c := range clients {
		if _, missing, err := c.InspectDatabases(ctx, dbsOf[i]); err != nil {
			return nil, errs.NeedsAttentionf("the databases were restored from %s, but reading %s afterwards failed: %v", entry.ID, m.Servers[i].Key(), err)
		} else if len(missing) > 0 {
			return nil, errs.NeedsAttentionf("database(s) %v missing on %s after the restore", missing, m.Servers[i].Key())
		}
	}
	res.Databases = append(res.Databases, m.Databases...)
	res.Bytes = counter.Load()
	res.Duration = time.Since(t0)
	return res, nil
}

// prepareServer ends the sessions, removes a killed restore's leftovers,
// replays the roles (past refusals: a managed server's restore user may not
// alter every role) and replays each database of one server into its copy.
// Nothing live is changed but the roles.
func (r *Restore) prepareServer(ctx context.Context, entry *backup.Entry, c *dbpod.Client, srv backup.Server, res *Result,
	counter *atomic.Int64, logf func(string, ...any)) (*server, []string, error) {
	key := srv.Key()
	dbsJSON, _ := jsonList(srv.Databases)
	out, err := c.QueryVars(ctx, "postgres", terminateExternalSQL, map[string]string{"dbs": dbsJSON})
	if err != nil {
		return nil, nil, r.unchanged(ctx, entry, "terminating connections on "+key, err)
	}
	var n int
	fmt.Sscan(out, &n)
	res.Terminated += n
	logf("%s: terminated %d connection(s)", key, n)
	// postgres: the sessions must not sit in the databases they create,
	// rename or drop (managed servers may refuse template1)
	sv := &server{pod: c.Pod, maint: "postgres", terminate: terminateExternalSQL, label: key + ": "}
	if err := sv.cleanLeftovers(ctx, srv.Databases, logf); err != nil {
		return nil, nil, r.unchanged(ctx, entry, "removing what an interrupted restore left on "+key, err)
	}

	var dbDumps []backup.Dump
	for _, d := range entry.Manifest.Dumps {
		if d.Server != key {
			continue
		}
		if d.Database != "" {
			dbDumps = append(dbDumps, d)
			continue
		}
		logf("%s: restoring roles", key)
		rc, err := entry.OpenStoredDump(ctx, d)
		if err != nil {
			return nil, nil, r.unchanged(ctx, entry, "restoring roles", err)
		}
		refused, err := c.RunScriptTolerant(ctx, "postgres", globalsFilter(&countingReader{r: rc, n: counter}))
		rerr := rc.Err()
		rc.Close()
		if err == nil && rerr != nil {
			err = fmt.Errorf("%s: the SQL replayed does not match the backup: %w", d.Name, rerr)
		}
		if err != nil {
			return nil, nil, r.unchanged(ctx, entry, "restoring roles on "+key, err)
		}
		for _, line := range refused {
			res.RolesRefused = append(res.RolesRefused, key+": "+line)
		}
		if len(refused) > 0 {
			logf("%s: the server refused %d role statement(s) (roles left as they are), first: %s", key, len(refused), refused[0])
		}
	}
	if err := r.replayAll(ctx, sv, entry, dbDumps, counter, logf); err != nil {
		return nil, nil, err
	}
	return sv, dbNames(dbDumps), nil
}

func serverKeys(list []backup.Server) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = s.Key()
	}
	return out
}

// externalServers matches the backup's servers with credentials: from the
// deployed release's values first (a password changed since the backup is
// the one that works now), else from the backup's own values.
func (r *Restore) externalServers(entry *backup.Entry) ([]*dbpod.Server, error) {
	rel := r.Release.Name
	byKey := map[string]*dbpod.Server{}
	collect := func(values map[string]any) {
		list, err := dbpod.ExternalServers(values, rel)
		if err != nil {
			return
		}
		for _, s := range list {
			if _, ok := byKey[s.Key()]; !ok && s.Password() != "" {
				byKey[s.Key()] = s
			}
		}
	}
	get := action.NewGetValues(r.Release.Helm)
	get.AllValues = true
	if v, err := get.Run(rel); err == nil {
		collect(v)
	}
	if data, err := entry.ReadFile("values-all.yaml", readlimit.Values); err == nil {
		var v map[string]any
		if yaml.Unmarshal(data, &v) == nil {
			collect(v)
		}
	}
	var out []*dbpod.Server
	for _, s := range entry.Manifest.Servers {
		have, ok := byKey[s.Key()]
		if !ok {
			return nil, errs.Preconditionf("no password for PostgreSQL %s in the release's values nor in backup %s", s.Key(), entry.ID)
		}
		srv := &dbpod.Server{Host: s.Host, Port: s.Port, User: s.User, SSLMode: s.SSLMode, Databases: s.Databases}
		srv.SetPassword(have.Password())
		out = append(out, srv)
	}
	return out, nil
}

func errorsOf(msgs []string) []error {
	out := make([]error, len(msgs))
	for i, m := range msgs {
		out[i] = errors.New(m)
	}
	return out
}

func jsonList(names []string) (string, error) {
	b, err := json.Marshal(names)
	return string(b), err
}
