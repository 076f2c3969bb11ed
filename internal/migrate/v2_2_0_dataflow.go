package migrate

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Chart 2.2.0 changes Dataflow in two ways Helm does not tell about:
//   - a pre-upgrade hook Job <release>-dataflow-migrations (charts/dataflow/
//     templates/dataflow/job.yaml) runs 20260609_dataflow_rename_tables.sql on
//     csghub_dataflow: the Dataflow tables are copied to <table>_20260608 and
//     TRUNCATEd. It is in every chart from 2.2.0 and runs on every upgrade
//     unless its ledger (table _migrations) records the script, so the first
//     upgrade to >= 2.2.0 of any installation empties them;
//   - Dataflow moves from a StatefulSet to a Deployment with its own PVC; the
//     StatefulSet's PVC (data-<release>-dataflow-0) stays, unused (its NOTES say
//     to delete it by hand), as MongoDB's since 2.0.0.
// Neither needs a change by the plugin: the hook is named in plan (the backup
// taken first is the way back) and the volumes nothing mounts any more are
// named in the summary with the command that deletes them.

// DataflowHookJob is the name of the 2.2.0+ hook Job that empties Dataflow's tables.
func DataflowHookJob(release string) string { return release + "-dataflow-migrations" }

// dataflowTables are the tables 20260609_dataflow_rename_tables.sql empties.
var dataflowTables = []string{"collection_tasks", "data_format_tasks", "datasources", "deletion_status", "job", "workers"}

type dataflowTablesHook struct{}

type leftoverVolumes struct{}

func init() {
	Register(dataflowTablesHook{})
	Register(leftoverVolumes{})
}

func (dataflowTablesHook) Version() *semver.Version { return MustVersion("2.2.0") }
func (dataflowTablesHook) Name() string             { return "dataflow-tables-hook" }

// EveryUpgrade: the hook is in every chart from 2.2.0 and applies its script
// the first time any upgrade runs it (a fresh 2.2.0 install has no ledger).
func (dataflowTablesHook) EveryUpgrade() {}

func (dataflowTablesHook) Describe(c *Context) Description {
	return Description{
		Reason: "the target chart's pre-upgrade hook Job " + DataflowHookJob(c.Release) + " runs 20260609_dataflow_rename_tables.sql " +
			"in database csghub_dataflow: it copies the Dataflow tables to <table>_20260608 and TRUNCATEs them (unless table _migrations " +
			"already records the script); the plugin does not change it: the backup is the way back",
		Touches: []string{"PostgreSQL csghub_dataflow: " + strings.Join(dataflowTables, ", ") + " (emptied by the chart's hook, copies *_20260608)"},
	}
}

func hookEnabled(c *Context) bool {
	df, _ := c.Values["dataflow"].(map[string]any)
	mig, _ := df["migrations"].(map[string]any)
	if v, ok := mig["enabled"].(bool); ok && !v {
		return false
	}
	return true
}

func (dataflowTablesHook) Check(_ context.Context, c *Context) (bool, string, error) {
	if !hookEnabled(c) {
		return true, "the hook is off (dataflow.migrations.enabled=false)", nil
	}
	return false, "Helm runs the hook during the upgrade: the Dataflow tables are emptied (copies *_20260608); the backup is the way back", nil
}

// Apply changes nothing: the hook is Helm's; it records what will happen.
func (dataflowTablesHook) Apply(_ context.Context, c *Context) ([]Change, error) {
	c.Note("Dataflow: the chart's pre-upgrade hook %s empties tables %s of csghub_dataflow (copies in <table>_20260608) the first time it runs; the backup taken first is the way back",
		DataflowHookJob(c.Release), strings.Join(dataflowTables, ", "))
	return []Change{{Action: "unchanged", Kind: "Job", Name: DataflowHookJob(c.Release), Detail: "pre-upgrade hook of the chart, run by Helm; the backup is the way back"}}, nil
}

func (leftoverVolumes) Version() *semver.Version { return MustVersion("2.2.0") }
func (leftoverVolumes) Name() string             { return "leftovers" }
func (leftoverVolumes) EveryUpgrade()            {}

func (leftoverVolumes) Describe(c *Context) Description {
	return Description{
		Reason: "Helm keeps the PersistentVolumeClaims of StatefulSets the target no longer has (Dataflow's data-" + c.Release +
			"-dataflow-0 from 2.2.0, MongoDB's from 2.0.0) and nothing drops csghub_dataflow_logs (unused from 2.2.0): after the upgrade " +
			"they are named in the summary, the volumes with the delete command; nothing is deleted",
		Touches: []string{"PersistentVolumeClaims of release " + c.Release + " (read only)"},
	}
}

func (leftoverVolumes) Check(context.Context, *Context) (bool, string, error) {
	return false, "after the upgrade: name the volumes the target no longer mounts", nil
}

func (leftoverVolumes) Apply(context.Context, *Context) ([]Change, error) { return nil, nil }

// AfterUpgrade names the release's PVCs that the target neither renders nor
// mounts (volumes, or a StatefulSet's volumeClaimTemplates).
func (leftoverVolumes) AfterUpgrade(ctx context.Context, c *Context) ([]Change, error) {
	if c.Rendered == nil || c.Clientset == nil {
		return nil, nil
	}
	objs, err := c.Rendered()
	if err != nil {
		return nil, err
	}
	pvcs, err := c.Clientset.CoreV1().PersistentVolumeClaims(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + c.Release})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range pvcs.Items {
		names = append(names, p.Name)
	}
	var changes []Change
	if c.Current != nil && !c.Current.LessThan(MustVersion("2.0.0")) && c.Current.LessThan(MustVersion("2.2.0")) {
		// 2.0.x/2.1.x created it; 2.2.0 stops listing it and nothing drops it
		c.Note("Database csghub_dataflow_logs (Dataflow 2.0/2.1 task logs) is no longer used by chart %s and was kept (it is in the backup's dump too); drop it once you no longer need the logs", c.Target)
		changes = append(changes, Change{Action: "unchanged", Kind: "database", Name: "csghub_dataflow_logs", Detail: "no longer used by the target; kept"})
	}
	left := UnmountedVolumes(names, objs)
	var fresh []string
	for _, n := range left {
		changes = append(changes, Change{Action: "unchanged", Kind: "PersistentVolumeClaim", Name: n, Detail: "no longer mounted by the target; kept"})
		if !strings.Contains(strings.Join(c.Notes, "\n"), n) {
			fresh = append(fresh, n)
		}
	}
	if len(fresh) > 0 {
		c.Note("PersistentVolumeClaim(s) %s (namespace %s) are no longer mounted by chart %s and were kept; once you no longer need their data, delete them with: kubectl -n %s delete pvc %s",
			strings.Join(fresh, ", "), c.Namespace, c.Target, c.Namespace, strings.Join(fresh, " "))
	}
	return changes, nil
}

// UnmountedVolumes returns the PVC names the rendered objects neither define
// nor use: a PersistentVolumeClaim, a pod template's persistentVolumeClaim
// volume, or <template>-<statefulset>-<ordinal> of a StatefulSet.
func UnmountedVolumes(pvcs []string, objs []*unstructured.Unstructured) []string {
	used := map[string]bool{}
	var prefixes []string
	for _, o := range objs {
		switch o.GetKind() {
		case "PersistentVolumeClaim":
			used[o.GetName()] = true
			continue
		case "StatefulSet":
			vcts, _, _ := unstructured.NestedSlice(o.Object, "spec", "volumeClaimTemplates")
			for _, v := range vcts {
				if m, ok := v.(map[string]any); ok {
					n, _, _ := unstructured.NestedString(m, "metadata", "name")
					prefixes = append(prefixes, fmt.Sprintf("%s-%s-", n, o.GetName()))
				}
			}
		}
		vols, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "volumes")
		for _, v := range vols {
			if m, ok := v.(map[string]any); ok {
				if n, _, _ := unstructured.NestedString(m, "persistentVolumeClaim", "claimName"); n != "" {
					used[n] = true
				}
			}
		}
	}
	var out []string
	for _, p := range pvcs {
		if used[p] {
			continue
		}
		mounted := false
		for _, pre := range prefixes {
			if rest, ok := strings.CutPrefix(p, pre); ok && rest != "" && strings.Trim(rest, "0123456789") == "" {
				mounted = true
			}
		}
		if !mounted {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}
