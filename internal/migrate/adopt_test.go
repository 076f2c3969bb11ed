package migrate

import (
	"fmt"
	"strings"
	"testing"

	"github.com/opencsgs/helm-csghub/internal/errs"
)

// Objects the takeover cannot take are a precondition (exit 4), the code
// `upgrade` gives the same refusal (issue 27 item 14), also once the
// migration runner has wrapped it.
func TestTakeoverRefusalIsPrecondition(t *testing.T) {
	p := &takeoverPlan{foreign: []target{{kind: "ConfigMap", namespace: "csghub", name: "x", foreignRel: "other/rel"}}}
	err := p.foreignError()
	if err == nil || !strings.Contains(err.Error(), "owned by release other/rel") {
		t.Fatalf("refusal %v", err)
	}
	wrapped := fmt.Errorf("migration v1.17.0 helm-takeover: checking: %w", err)
	if got := errs.ExitCode(wrapped); got != 4 {
		t.Fatalf("exit %d, want 4 as upgrade", got)
	}
	if (&takeoverPlan{}).foreignError() != nil {
		t.Fatal("no foreign objects: no error")
	}
}

// The CRD step's summary counts what was sent, as its plan line does: five
// updated and nineteen current is "5 change(s), 19 current", not "24 change(s)".
func TestResultSummaryCountsWhatWasSent(t *testing.T) {
	r := Result{}
	for i := 0; i < 5; i++ {
		r.Changes = append(r.Changes, Change{Action: "update", Kind: "CustomResourceDefinition"})
	}
	for i := 0; i < 18; i++ {
		r.Changes = append(r.Changes, Change{Action: "unchanged", Kind: "CustomResourceDefinition"})
	}
	r.Changes = append(r.Changes, Change{Action: "keep", Kind: "CustomResourceDefinition"})
	if got := r.Summary(); got != "5 change(s), 19 current" {
		t.Fatalf("summary %q", got)
	}
	if got := (Result{Changes: []Change{{Action: "create"}}}).Summary(); got != "1 change(s)" {
		t.Fatalf("summary %q", got)
	}
}
