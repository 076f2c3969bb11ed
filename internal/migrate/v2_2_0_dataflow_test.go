package migrate

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func obj(kind, name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{"kind": kind, "metadata": map[string]any{"name": name}, "spec": spec}}
}

// The volumes a target leaves behind: neither rendered, nor a pod template's
// claim, nor <template>-<statefulset>-<ordinal> of a rendered StatefulSet.
func TestUnmountedVolumes(t *testing.T) {
	objs := []*unstructured.Unstructured{
		obj("PersistentVolumeClaim", "r-dataflow", nil),
		obj("StatefulSet", "r-postgresql", map[string]any{"volumeClaimTemplates": []any{map[string]any{"metadata": map[string]any{"name": "data"}}}}),
		obj("Deployment", "r-agentichub", map[string]any{"template": map[string]any{"spec": map[string]any{
			"volumes": []any{map[string]any{"name": "x", "persistentVolumeClaim": map[string]any{"claimName": "r-agentichub-data"}}}}}}),
	}
	pvcs := []string{"data-r-postgresql-0", "data-r-postgresql-1", "r-dataflow", "r-agentichub-data",
		"data-r-dataflow-0", "data-r-mongo-0", "data-r-postgresql-x"}
	got := UnmountedVolumes(pvcs, objs)
	want := []string{"data-r-dataflow-0", "data-r-mongo-0", "data-r-postgresql-x"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("UnmountedVolumes = %v, want %v", got, want)
	}
}

// From 2.2.0 the Dataflow logs stay in the backup: nothing waits for
// csghub_dataflow_logs, which those charts do not create.
func TestDataflowLogsKeptForTargetsFrom220(t *testing.T) {
	for v, want := range map[string]bool{"2.0.0": false, "2.1.0": false, "2.2.0": true, "2.4.0": true} {
		if got := keepsExportOnly(&Context{Target: MustVersion(v)}); got != want {
			t.Errorf("target %s: export only = %v, want %v", v, got, want)
		}
	}
}

// The 2.2.0 hook step is planned for every upgrade to >= 2.2.0 and is off
// with dataflow.migrations.enabled=false.
func TestDataflowTablesHookPlanned(t *testing.T) {
	if got := names(Between(MustVersion("2.2.0"), MustVersion("2.4.0"))); !contains(got, "v2.2.0 dataflow-tables-hook") || !contains(got, "v2.2.0 leftovers") {
		t.Errorf("2.2.0 -> 2.4.0: %s", got)
	}
	if got := names(Between(MustVersion("2.0.0"), MustVersion("2.1.0"))); contains(got, "dataflow-tables-hook") {
		t.Errorf("2.0.0 -> 2.1.0 plans the hook: %s", got)
	}
	off := &Context{Values: map[string]any{"dataflow": map[string]any{"migrations": map[string]any{"enabled": false}}}}
	if applied, _, _ := (dataflowTablesHook{}).Check(context.Background(), off); !applied {
		t.Error("hook disabled but planned as to apply")
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
