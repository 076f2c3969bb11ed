package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// results are the run's figures; they are printed as a table and, with -json,
// written as JSON. Throughputs are in MB/s (10^6 bytes) of uncompressed SQL.
type results struct {
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
	Error      string    `json:"error,omitempty"`
	Host       struct {
		CPUs      int    `json:"cpus"`
		LoadStart string `json:"loadAvgStart"`
		LoadEnd   string `json:"loadAvgEnd"`
	} `json:"host"`
	SizeMB    int                 `json:"sizeMB"`
	Data      dataInfo            `json:"data"`
	Backup    *backupFigures      `json:"backup,omitempty"`
	Restore   *restoreFigures     `json:"restore,omitempty"`
	Bucket    *bucketFigures      `json:"bucket,omitempty"`
	Upgrade   *upgradeFigures     `json:"upgrade,omitempty"`
	Readiness *readinessFigures   `json:"readiness,omitempty"`
	RealSize  *realSizeFigures    `json:"realSize,omitempty"`
	Profile   map[string][]string `json:"profile,omitempty"`
	Checks    []check             `json:"checks"`
}

type dataInfo struct {
	Databases       []dbSize `json:"databases,omitempty"`
	TotalBytes      int64    `json:"totalBytes,omitempty"`
	GenerateSeconds float64  `json:"generateSeconds,omitempty"`
}

type dbSize struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

type timing struct {
	Seconds   float64 `json:"seconds"`
	MBps      float64 `json:"mbPerSecond"`
	MaxRSSKiB int64   `json:"maxRssKiB,omitempty"`
	// CPU: the command's own CPU seconds; HostBusy: the share of all the
	// host's CPUs busy meanwhile (1 = every core saturated). They tell a slow
	// command from a starved one.
	CPUSeconds float64 `json:"cpuSeconds"`
	HostBusy   float64 `json:"hostBusy"`
}

func newTiming(r cmdResult, bytes int64, rss bool) timing {
	t := timing{Seconds: r.wall.Seconds(), MBps: mbps(bytes, r.wall.Seconds()), CPUSeconds: r.cpu.Seconds()}
	if r.wall > 0 {
		t.HostBusy = r.hostBusy.Seconds() / r.wall.Seconds() / float64(runtime.NumCPU())
	}
	if rss {
		t.MaxRSSKiB = r.maxRSSKiB
	}
	return t
}

// othersBound is the best ratio to direct a command run as t could reach if
// its own CPU cost nothing: the rest of the host's work (database, dump
// tool, API server, node agent) still needs (busy - own) CPU seconds on
// NumCPU cores. Meaningful when t saturated the host.
func othersBound(direct, t timing) float64 {
	others := t.HostBusy*t.Seconds*float64(runtime.NumCPU()) - t.CPUSeconds
	if others <= 0 {
		return 0
	}
	return ratio(direct.Seconds, others/float64(runtime.NumCPU()))
}

type backupFigures struct {
	SQLBytes             int64       `json:"sqlBytes"`
	CompressedBytes      int64       `json:"compressedBytes"`
	Databases            int         `json:"databases"`
	Direct               timing      `json:"direct"`
	Plugin               timing      `json:"plugin"`
	Guide                guideBackup `json:"guide"`
	PluginVsDirect       float64     `json:"pluginVsDirect"`
	PluginSpeedupVsGuide float64     `json:"pluginSpeedupVsGuide"`
}

type guideBackup struct {
	Seconds     float64 `json:"seconds"`
	MBps        float64 `json:"mbPerSecond"`
	ExecSeconds float64 `json:"execSeconds"`
	CopySeconds float64 `json:"copySeconds"`
	FileBytes   int64   `json:"fileBytes"`
}

type restoreFigures struct {
	SQLBytes       int64   `json:"sqlBytes"`
	Parallel       int     `json:"parallel"`
	Direct         timing  `json:"direct"`
	Plugin         timing  `json:"plugin"`
	PluginVsDirect float64 `json:"pluginVsDirect"`
	// VerifySeconds is `helm csghub backup verify` alone (full check, SQL decompressed);
	// restore checks the stored files up front and the SQL while it replays it.
	VerifySeconds float64 `json:"verifySeconds"`
}

type upgradeFigures struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Plugin struct {
		WallSeconds            float64            `json:"wallSeconds"`
		Steps                  map[string]float64 `json:"stepSeconds"`
		ReadinessWaitedSeconds float64            `json:"readinessWaitedSeconds"`
		OwnSeconds             float64            `json:"ownSeconds"`
		MaxRSSKiB              int64              `json:"maxRssKiB"`
	} `json:"plugin"`
	Guide struct {
		TotalSeconds float64        `json:"totalSeconds"`
		Steps        []namedSeconds `json:"steps"`
		Complete     bool           `json:"complete"`
	} `json:"guide"`
	PluginVsGuide float64 `json:"guideSecondsPerPluginSecond"`
}

type namedSeconds struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

type readinessFigures struct {
	Replicas     int            `json:"replicas"`
	Runs         []readinessRun `json:"runs"`
	MaxLatencyMs float64        `json:"maxLatencyMs"`
}

type readinessRun struct {
	LatencyMs      float64 `json:"latencyMs"`      // ReadyAt - last pod's Ready event
	AfterRolloutMs float64 `json:"afterRolloutMs"` // ReadyAt - the Deployment's rolled-out event
	WaitedMs       float64 `json:"waitedMs"`
}

type check struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Target string `json:"target"`
	Pass   bool   `json:"pass"`
}

func newResults(cfg *config) *results {
	r := &results{StartedAt: time.Now().UTC(), SizeMB: cfg.sizeMB}
	r.Host.CPUs = runtime.NumCPU()
	r.Host.LoadStart = loadAvg()
	return r
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func (r *results) finish(err error) {
	r.FinishedAt = time.Now().UTC()
	r.Host.LoadEnd = loadAvg()
	if err != nil {
		r.Error = err.Error()
	}
	r.Checks = nil
	add := func(name, value, target string, pass bool) {
		r.Checks = append(r.Checks, check{Name: name, Value: value, Target: target, Pass: pass})
	}
	if f := r.RealSize; f != nil && f.Upgrade.WallSeconds > 0 {
		add("real size: plan seconds", secs(f.Plan.Seconds), "< 5", f.Plan.Seconds < 5)
		add("real size: plan API requests", fmt.Sprint(f.Plan.Requests), "< 100", f.Plan.Requests >= 0 && f.Plan.Requests < 100)
		add("real size: migrations seconds", secs(f.Upgrade.MigrationsSeconds), "< 15", f.Upgrade.MigrationsSeconds < 15)
		add("real size: upgrade's own time", secs(f.Upgrade.OwnSeconds), "< 5", f.Upgrade.OwnSeconds < 5)
	}
	if f := r.Backup; f != nil && f.Plugin.Seconds > 0 {
		add("backup: plugin throughput / pg_dumpall direct", fmt.Sprintf("%.2f", f.PluginVsDirect), ">= 0.80", f.PluginVsDirect >= 0.80)
		if f.Guide.Seconds > 0 {
			add("backup: plugin speed-up vs guide (exec + cp)", fmt.Sprintf("%.2fx", f.PluginSpeedupVsGuide), ">= 1.30x", f.PluginSpeedupVsGuide >= 1.30)
		}
	}
	if f := r.Restore; f != nil && f.Plugin.Seconds > 0 {
		add("restore: plugin throughput / psql direct", fmt.Sprintf("%.2f", f.PluginVsDirect), ">= 0.80", f.PluginVsDirect >= 0.80)
		add("restore: plugin peak RSS", fmt.Sprintf("%.1f MiB", float64(f.Plugin.MaxRSSKiB)/1024), "< 100 MiB", f.Plugin.MaxRSSKiB < 100*1024)
	}
	if f := r.Bucket; f != nil && f.Backup.Seconds > 0 {
		if f.BackupVsFolder > 0 {
			add("bucket: backup throughput / folder", fmt.Sprintf("%.2f", f.BackupVsFolder), ">= 0.90", f.BackupVsFolder >= 0.90)
		}
		if f.RestoreVsFolder > 0 {
			add("bucket: restore throughput / folder", fmt.Sprintf("%.2f", f.RestoreVsFolder), ">= 0.90", f.RestoreVsFolder >= 0.90)
		}
		add("bucket: plugin peak RSS, backup", fmt.Sprintf("%.1f MiB", float64(f.Backup.MaxRSSKiB)/1024), "< 150 MiB", f.Backup.MaxRSSKiB < 150*1024)
		add("bucket: plugin peak RSS, restore", fmt.Sprintf("%.1f MiB", float64(f.Restore.MaxRSSKiB)/1024), "< 150 MiB", f.Restore.MaxRSSKiB < 150*1024)
	}
	if f := r.Upgrade; f != nil && f.Plugin.WallSeconds > 0 {
		add("upgrade: plugin's own time", fmt.Sprintf("%.2f s", f.Plugin.OwnSeconds), "< 2 s", f.Plugin.OwnSeconds < 2)
		if f.Guide.Complete {
			add("upgrade: plugin wall vs guide steps", fmt.Sprintf("%.1f s vs %.1f s", f.Plugin.WallSeconds, f.Guide.TotalSeconds),
				"plugin no slower", f.Plugin.WallSeconds <= f.Guide.TotalSeconds)
		}
	}
	if f := r.Readiness; f != nil && len(f.Runs) > 0 {
		add("readiness: notice latency, max of runs", fmt.Sprintf("%.0f ms", f.MaxLatencyMs), "< 1000 ms", f.MaxLatencyMs < 1000)
	}
}

func (r *results) writeJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

func mbps(bytes int64, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / seconds
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func verdict(pass bool) string {
	if pass {
		return "PASS"
	}
	return "MISS"
}

// report prints the figures as one table per area, then the targets.
func (b *bench) report(w io.Writer) {
	r := b.res
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cols ...string) { fmt.Fprintln(tw, strings.Join(cols, "\t")) }
	fmt.Fprintf(w, "\nhelm-csghub bench: %d CPUs, load %s at start, %s at end (the machine may be shared: expect timing noise)\n",
		r.Host.CPUs, r.Host.LoadStart, r.Host.LoadEnd)
	if len(r.Data.Databases) > 0 {
		var parts []string
		for _, d := range r.Data.Databases {
			parts = append(parts, fmt.Sprintf("%s %s", d.Name, mib(d.Bytes)))
		}
		fmt.Fprintf(w, "data: -size-mb %d generated in %.1fs; databases on disk %s (%s)\n", r.SizeMB, r.Data.GenerateSeconds,
			mib(r.Data.TotalBytes), strings.Join(parts, ", "))
	}
	if f := r.Backup; f != nil && f.Plugin.Seconds > 0 {
		fmt.Fprintf(w, "\nBACKUP: %d databases, %s of SQL (%s compressed by the plugin)\n", f.Databases, mib(f.SQLBytes), mib(f.CompressedBytes))
		row("  #", "measurement", "seconds", "MB/s", "peak RSS", "own CPU s", "host busy")
		row("  1", "pg_dumpall -U csghub > /dev/null (direct, socket)", secs(f.Direct.Seconds), rate(f.Direct.MBps), "", secs(f.Direct.CPUSeconds), pct(f.Direct.HostBusy))
		row("  2", "helm csghub backup -o json", secs(f.Plugin.Seconds), rate(f.Plugin.MBps), mib(f.Plugin.MaxRSSKiB*1024), secs(f.Plugin.CPUSeconds), pct(f.Plugin.HostBusy))
		if f.Guide.Seconds > 0 {
			row("  3", fmt.Sprintf("guide: kubectl exec pg_dumpall -f (%.2fs) + kubectl cp (%.2fs)", f.Guide.ExecSeconds, f.Guide.CopySeconds),
				secs(f.Guide.Seconds), rate(f.Guide.MBps), "")
		}
		tw.Flush()
		fmt.Fprintf(w, "  bound: with a plugin costing no CPU, the rest of the work in run 2 allows at most %.2f of direct on %d CPUs\n",
			othersBound(f.Direct, f.Plugin), r.Host.CPUs)
	}
	if f := r.Restore; f != nil && f.Plugin.Seconds > 0 {
		fmt.Fprintf(w, "\nRESTORE: %s of SQL, %d databases at once\n", mib(f.SQLBytes), f.Parallel)
		row("  #", "measurement", "seconds", "MB/s", "peak RSS", "own CPU s", "host busy")
		row("  4", "zstd -dc | psql (direct, socket; DROP ... WITH (FORCE) first)", secs(f.Direct.Seconds), rate(f.Direct.MBps), "", "", pct(f.Direct.HostBusy))
		row("  5", "helm csghub restore --yes -o json", secs(f.Plugin.Seconds), rate(f.Plugin.MBps), mib(f.Plugin.MaxRSSKiB*1024), secs(f.Plugin.CPUSeconds), pct(f.Plugin.HostBusy))
		if f.VerifySeconds > 0 {
			row("", "  (for reference: helm csghub backup verify alone; restore checks the SQL as it streams)", secs(f.VerifySeconds), "", "")
		}
		tw.Flush()
		fmt.Fprintf(w, "  bound: with a plugin costing no CPU, the rest of the work in run 5 allows at most %.2f of direct on %d CPUs\n",
			othersBound(f.Direct, f.Plugin), r.Host.CPUs)
	}
	if f := r.Bucket; f != nil && f.Backup.Seconds > 0 {
		fmt.Fprintf(w, "\nBUCKET: the same %s of SQL to and from a MinIO server on this machine (s3://, 16 MiB parts)\n", mib(f.SQLBytes))
		row("  #", "measurement", "seconds", "MB/s", "peak RSS", "own CPU s", "host busy")
		row(" 2b", "helm csghub backup --backup-location s3://...", secs(f.Backup.Seconds), rate(f.Backup.MBps), mib(f.Backup.MaxRSSKiB*1024), secs(f.Backup.CPUSeconds), pct(f.Backup.HostBusy))
		row(" 5b", "helm csghub restore --backup-location s3://...", secs(f.Restore.Seconds), rate(f.Restore.MBps), mib(f.Restore.MaxRSSKiB*1024), secs(f.Restore.CPUSeconds), pct(f.Restore.HostBusy))
		tw.Flush()
		fmt.Fprintf(w, "  vs the folder (runs 2 and 5): backup %.2f, restore %.2f; plugin CPU per GB of SQL: backup %.2f s, restore %.2f s\n",
			f.BackupVsFolder, f.RestoreVsFolder, f.BackupCPUPerGB, f.RestoreCPUPerGB)
	}
	if f := r.Upgrade; f != nil && f.Plugin.WallSeconds > 0 {
		p := f.Plugin
		fmt.Fprintf(w, "\nUPGRADE %s -> %s (sample data, fresh release each)\n", f.From, f.To)
		row("  6", "helm csghub upgrade (wall)", secs(p.WallSeconds))
		names := make([]string, 0, len(p.Steps))
		for k := range p.Steps {
			names = append(names, k)
		}
		order := map[string]int{"plan": 1, "preflight": 2, "backup": 3, "migrations": 4, "helm-upgrade": 5, "readiness": 6, "verify": 7}
		sort.Slice(names, func(i, j int) bool {
			oi, oj := order[names[i]], order[names[j]]
			if oi == 0 {
				oi = 99
			}
			if oj == 0 {
				oj = 99
			}
			return oi < oj || oi == oj && names[i] < names[j]
		})
		for _, k := range names {
			extra := ""
			if k == "readiness" {
				extra = fmt.Sprintf("(waited %.2fs)", p.ReadinessWaitedSeconds)
			}
			row("", "  step "+k, secs(p.Steps[k]), extra)
		}
		row("", "  own time = wall - helm-upgrade - backup - readiness wait", secs(p.OwnSeconds))
		row("", "  peak RSS", mib(p.MaxRSSKiB*1024))
		if len(f.Guide.Steps) > 0 {
			row("  7", "guide's steps with helm + kubectl (total)", secs(f.Guide.TotalSeconds))
			for _, s := range f.Guide.Steps {
				row("", "  "+s.Name, secs(s.Seconds))
			}
		}
		tw.Flush()
	}
	if f := r.Readiness; f != nil && len(f.Runs) > 0 {
		fmt.Fprintf(w, "\nREADINESS: Deployment of %d replicas; waiter's ReadyAt minus arrival of the last pod's Ready event\n", f.Replicas)
		row("  8", "run", "latency", "after rollout event", "waited")
		for i, run := range f.Runs {
			row("", fmt.Sprint(i+1), ms(run.LatencyMs), ms(run.AfterRolloutMs), ms(run.WaitedMs))
		}
		row("", "max", ms(f.MaxLatencyMs))
		tw.Flush()
	}
	if f := r.RealSize; f != nil && f.Plan.Seconds > 0 {
		fmt.Fprintf(w, "\nREAL SIZE: 1.15.0 -> %s with bench.extraObjects=%d (about 270 objects), API requests counted by the plugin\n", b.cfg.upgradeVer, f.ExtraObjects)
		row("  9", "helm csghub plan", secs(f.Plan.Seconds), fmt.Sprintf("%d requests (render: %d lookups, %d requests)", f.Plan.Requests, f.Plan.Lookups, f.Plan.LookupRequests))
		row("", "  by verb and resource: "+f.Plan.Detail)
		if f.PlanDiff.Seconds > 0 {
			row("", "helm csghub plan --diff", secs(f.PlanDiff.Seconds), fmt.Sprintf("%d requests, %d objects in the diff (targets < 5 s, < 100 requests)", f.PlanDiff.Requests, f.PlanDiff.Changed))
			row("", "  by verb and resource: "+f.PlanDiff.Detail)
		}
		if u := f.Upgrade; u.WallSeconds > 0 {
			row(" 10", "helm csghub upgrade (wall)", secs(u.WallSeconds), fmt.Sprintf("%d requests", u.Requests))
			for _, k := range []string{"plan", "preflight", "backup", "migrations", "clear-immutable", "helm-upgrade", "readiness", "verify"} {
				if v, ok := u.Steps[k]; ok {
					row("", "  step "+k, secs(v))
				}
				if k == "migrations" {
					var ms []string
					for name := range u.Steps {
						if strings.HasPrefix(name, "migration ") {
							ms = append(ms, name)
						}
					}
					sort.Strings(ms)
					for _, name := range ms {
						row("", "    "+name, secs(u.Steps[name]))
					}
				}
			}
			row("", "  own time = wall - helm-upgrade - backup - readiness wait", secs(u.OwnSeconds))
			row("", "  plugin CPU (user+system, whole run)", secs(u.CPUSeconds))
			if u.APITime != "" {
				row("", "  time in API requests: "+u.APITime)
			}
		}
		tw.Flush()
		if len(f.Upgrade.Profile) > 0 {
			fmt.Fprintln(w, "  plugin CPU profile of the upgrade (go tool pprof -top -cum):")
			for _, l := range f.Upgrade.Profile {
				fmt.Fprintf(w, "    %s\n", l)
			}
		}
	}
	for _, op := range []string{"backup", "restore"} {
		if lines := r.Profile[op]; len(lines) > 0 {
			fmt.Fprintf(w, "\nPROFILE of the plugin's %s (perf record -a): %s\n", op, lines[0])
			for _, l := range lines[1:] {
				fmt.Fprintf(w, "  %s\n", l)
			}
		}
	}
	if len(r.Checks) > 0 {
		fmt.Fprintln(w, "\nTARGETS (a MISS is reported, never fatal)")
		for _, c := range r.Checks {
			row("  "+c.Name, c.Value, c.Target, verdict(c.Pass))
		}
		tw.Flush()
	}
	if r.Error != "" {
		fmt.Fprintf(w, "\nINCOMPLETE: %s\n", firstLine(r.Error))
	}
}

func secs(s float64) string { return fmt.Sprintf("%.2f", s) }
func pct(v float64) string  { return fmt.Sprintf("%.0f%%", 100*v) }
func rate(v float64) string { return fmt.Sprintf("%.1f", v) }
func ms(v float64) string   { return fmt.Sprintf("%.0f ms", math.Round(v)+0) }

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
