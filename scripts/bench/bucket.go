package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/devenv"
)

// ---- backups in a bucket (issue 25)

// bucketFigures: the plugin's backup and restore of the same data to and
// from a MinIO server on this machine, against the folder figures.
type bucketFigures struct {
	SQLBytes int64  `json:"sqlBytes"`
	Backup   timing `json:"backup"`
	Restore  timing `json:"restore"`
	// ratios to the folder's throughput (runs 2 and 5)
	BackupVsFolder  float64 `json:"backupVsFolder"`
	RestoreVsFolder float64 `json:"restoreVsFolder"`
	// the plugin's CPU seconds per GB of SQL
	BackupCPUPerGB  float64 `json:"backupCpuSecondsPerGB"`
	RestoreCPUPerGB float64 `json:"restoreCpuSecondsPerGB"`
}

const benchBucket = "bench-backups"

func (b *bench) bucketPhase(ctx context.Context) error {
	f := &bucketFigures{}
	b.res.Bucket = f
	ports, err := devenv.FreePorts(1)
	if err != nil {
		return err
	}
	user, secret := "bench-backup", "bench-backup-secret-1"
	m, err := b.s.StartMinIO(filepath.Join(b.work, "bucket"), ports[0], user, secret)
	if err != nil {
		return err
	}
	defer m.Stop()
	mctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := m.MakeBuckets(mctx, "", benchBucket); err != nil {
		return err
	}
	loc := "s3://" + benchBucket + "/bench"
	env := append(b.pluginEnv(), "AWS_ENDPOINT_URL_S3=http://"+m.Endpoint, "AWS_ACCESS_KEY_ID="+user,
		"AWS_SECRET_ACCESS_KEY="+secret, "AWS_REGION=us-east-1", backup.LocationEnv+"="+loc)
	var id string
	bk, err := b.best("helm csghub backup (bucket)", func(int) (cmdResult, error) {
		r, err := b.runCmd(ctx, cmdSpec{name: b.cfg.plugin, env: env, capture: true,
			args: []string{"backup", "--keep", strconv.Itoa(b.cfg.repeat + 2), "-o", "json"}})
		if err != nil {
			return r, err
		}
		var out struct {
			Manifest *backup.Manifest `json:"manifest"`
		}
		if err := json.Unmarshal(r.stdout, &out); err != nil || out.Manifest == nil {
			return r, fmt.Errorf("backup -o json printed no manifest (%v): %.300s", err, r.stdout)
		}
		id, f.SQLBytes = out.Manifest.ID, out.Manifest.TotalRawBytes()
		return r, nil
	})
	if err != nil {
		return err
	}
	rs, err := b.best("helm csghub restore (bucket)", func(int) (cmdResult, error) {
		return b.runCmd(ctx, cmdSpec{name: b.cfg.plugin, env: env, capture: true,
			args: []string{"restore", "--backup", id, "--yes", "-o", "json", "--parallel", strconv.Itoa(b.cfg.parallel)}})
	})
	if err != nil {
		return err
	}
	f.Backup, f.Restore = newTiming(bk, f.SQLBytes, true), newTiming(rs, f.SQLBytes, true)
	if r := b.res.Backup; r != nil {
		f.BackupVsFolder = ratio(r.Plugin.Seconds, f.Backup.Seconds)
	}
	if r := b.res.Restore; r != nil {
		f.RestoreVsFolder = ratio(r.Plugin.Seconds, f.Restore.Seconds)
	}
	gb := float64(f.SQLBytes) / 1e9
	if gb > 0 {
		f.BackupCPUPerGB, f.RestoreCPUPerGB = f.Backup.CPUSeconds/gb, f.Restore.CPUSeconds/gb
	}
	return nil
}
