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
