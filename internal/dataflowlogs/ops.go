package dataflowlogs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/jackc/pgx/v5/pgconn"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/csghub"
	"github.com/opencsgs/helm-csghub/internal/dbpod"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/progress"
)

// Release names the CSGHub release whose logs move.
type Release struct {
	Kube      *kube.Client
	Namespace string
	Name      string
	// Progress gets live progress on a terminal (nil: silent).
	Progress io.Writer
}

// RunsMongo reports whether the release runs the chart's MongoDB
// (StatefulSet `<release>-mongo`).
func (r *Release) RunsMongo(ctx context.Context) (bool, error) {
	_, err := r.Kube.Clientset.AppsV1().StatefulSets(r.Namespace).Get(ctx, csghub.MongoStatefulSet(r.Name), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading StatefulSet %s/%s: %w", r.Namespace, csghub.MongoStatefulSet(r.Name), err)
	}
	return true, nil
}

// Inventory connects to the release's MongoDB and counts what an export
// would write.
func (r *Release) Inventory(ctx context.Context) (*ExportResult, error) {
	m, err := ConnectMongo(ctx, r.Kube, r.Namespace, r.Name)
	if err != nil {
		return nil, err
	}
	defer m.Close(context.WithoutCancel(ctx))
	return Inventory(ctx, m.Client)
}

// Export writes the release's task logs into the complete backup e.
func (r *Release) Export(ctx context.Context, e *backup.Entry) (*ExportResult, error) {
	m, err := ConnectMongo(ctx, r.Kube, r.Namespace, r.Name)
	if err != nil {
		return nil, err
	}
	defer m.Close(context.WithoutCancel(ctx))
	var docs atomic.Int64
	prog := progress.StartCount(r.Progress, "exporting Dataflow logs", "documents", &docs)
	defer prog.Stop()
	return ExportToBackup(ctx, m.Client, e, &docs)
}

// HasExport reports whether the backup holds a Dataflow logs export.
func HasExport(e *backup.Entry) bool { return e.Manifest.FindExtra(ExportFile) != nil }

// Import verifies the export of backup e and imports it into LogsDatabase,
// waiting up to wait for the new version to create that database.
func (r *Release) Import(ctx context.Context, e *backup.Entry, wait time.Duration) (*ImportResult, error) {
	if !HasExport(e) {
		return nil, fmt.Errorf("backup %s holds no Dataflow logs export (%s)", e.ID, ExportFile)
	}
	// its stored bytes first (one streamed read): nothing is imported
	// from an export that is not the one the backup recorded
	if err := backup.VerifyExtraContext(ctx, e, ExportFile); err != nil {
		return nil, err
	}
	open := func() (io.ReadCloser, error) { return openExport(ctx, e) }
	if empty, err := emptyExport(open); err != nil {
		return nil, err
	} else if empty {
		return &ImportResult{Collections: []ImportedCollection{}}, nil // MongoDB held no logs
	}
	t0 := time.Now()
	conn, err := r.connectLogs(ctx, wait)
	waited := time.Since(t0)
	if err != nil {
		return &ImportResult{Waited: waited}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var rows atomic.Int64
	prog := progress.StartCount(r.Progress, "importing Dataflow logs", "rows", &rows)
	defer prog.Stop()
	im := &Importer{Conn: conn.Conn, Rows: &rows}
	res, err := im.importFrom(ctx, open)
	if res != nil {
		res.Waited = waited
	}
	return res, err
}

// connectLogs connects to LogsDatabase, waiting while it does not exist yet
// (the chart's db-init hook creates it during the upgrade).
func (r *Release) connectLogs(ctx context.Context, wait time.Duration) (*dbpod.Conn, error) {
	if wait <= 0 {
		wait = 5 * time.Minute
	}
	deadline := time.Now().Add(wait)
	for {
		conn, err := dbpod.Connect(ctx, r.Kube, r.Namespace, r.Name, LogsDatabase)
		if err == nil {
			return conn, nil
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "3D000" { // invalid_catalog_name: not created yet
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("database %s still does not exist after %s: the new version's database init did not create it", LogsDatabase, wait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// KeptVolumes are the PersistentVolumeClaims of the release's MongoDB that
// still exist (Helm keeps PVCs of a removed StatefulSet).
func (r *Release) KeptVolumes(ctx context.Context) ([]string, error) {
	pvcs, err := r.Kube.Clientset.CoreV1().PersistentVolumeClaims(r.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []string
	suffix := "-" + csghub.MongoPod(r.Name) // <template>-<statefulset>-<ordinal>
	for _, p := range pvcs.Items {
		if strings.HasSuffix(p.Name, suffix) && len(p.Name) > len(suffix) {
			out = append(out, p.Name)
		}
	}
	return out, nil
}

// NoLogsDatabase says chart version v has no LogsDatabase: from 2.2.0 the
// chart drops it and Dataflow writes task logs to files in its pod
// (data_server/log_tools/tools.py of csghub-dataflow v2.2.0).
func NoLogsDatabase(v string) bool {
	sv, err := semver.NewVersion(v)
	return err == nil && !sv.LessThan(semver.MustParse("2.2.0"))
}
