package migrate

import (
	"strings"
	"testing"
)

// Every migration that needs rights beyond the upgrade's declares them;
// preflight only sums them up.
func TestPermissionsAreDeclared(t *testing.T) {
	c := &Context{Namespace: "ns"}
	got := map[string]bool{}
	for _, p := range Permissions(c, All()) {
		got[p.Verb+" "+p.Resource+"."+p.Group+"@"+p.Namespace] = true
	}
	for _, want := range []string{
		"patch customresourcedefinitions.apiextensions.k8s.io@",              // envoy-gateway-crds, takeovers
		"list customresourcedefinitions.apiextensions.k8s.io@",               // envoy-gateway-crds
		"delete mutatingwebhookconfigurations.admissionregistration.k8s.io@", // takeovers
		"get statefulsets.apps@ns",                                           // dataflow-logs
		"list persistentvolumeclaims.@ns",                                    // dataflow-logs
	} {
		if !got[want] {
			t.Errorf("no migration declares %q (declared: %v)", want, got)
		}
	}
}

// --skip-dataflow-logs is the dataflow-logs migration's own switch, with
// the help each command shows; turning it off is seen through Context.Off.
func TestSwitchesComeFromTheMigrations(t *testing.T) {
	var sw *Switch
	for _, s := range Switches() {
		if s.Flag == "skip-dataflow-logs" {
			sw = s
		}
	}
	if sw == nil {
		t.Fatal("no migration offers --skip-dataflow-logs")
	}
	for _, cmd := range []string{"upgrade", "migrate", "plan"} {
		if sw.Help[cmd] == "" {
			t.Errorf("--skip-dataflow-logs has no help for %s", cmd)
		}
	}
	c := &Context{Skip: map[*Switch]bool{sw: true}}
	if !c.Off(sw) || (&Context{}).Off(sw) {
		t.Error("Context.Off does not report the switch as given")
	}
}

// FollowUps lists only migrations that applied something.
func TestFollowUpsOnlyForApplied(t *testing.T) {
	c := &Context{Namespace: "ns"}
	ms := All()
	var applied, already []Result
	for _, m := range ms {
		applied = append(applied, Result{Name: m.Name()})
		already = append(already, Result{Name: m.Name(), AlreadyApplied: true})
	}
	got := FollowUps(c, ms, applied)
	if len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), "helm csghub dataflow-logs import -n ns") {
		t.Errorf("applied: follow-ups %q, want the Dataflow logs import", got)
	}
	if got := FollowUps(c, ms, already); len(got) != 0 {
		t.Errorf("already applied: follow-ups %q, want none", got)
	}
}
