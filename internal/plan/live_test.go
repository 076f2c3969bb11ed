package plan

import (
	"strings"
	"testing"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/livediff"
)

func TestLiveStepAndRefusal(t *testing.T) {
	sts := livediff.Blocker{Object: "StatefulSet csghub/csghub-postgresql", Reason: "changes spec.volumeClaimTemplates", Fix: "kubectl ... --cascade=orphan"}
	p := &Prepared{Live: &Live{
		Immutable: &livediff.Immutable{DeleteJobs: []livediff.Key{{Group: "batch", Kind: "Job", Namespace: "csghub", Name: "csghub-casdoor"}}},
		Ownership: &livediff.Ownership{Owned: 3, Adopt: []livediff.Key{{Group: "operator.knative.dev", Kind: "KnativeServing", Namespace: "knative-serving", Name: "knative-serving"}}},
	}}
	st := p.liveStep()
	if !strings.HasPrefix(st.Status, "ok") || !strings.Contains(st.Status, "KnativeServing knative-serving/knative-serving") || !strings.Contains(st.Status, "Job csghub/csghub-casdoor") {
		t.Errorf("status %q", st.Status)
	}
	if err := p.LiveRefusal(false); err != nil {
		t.Errorf("refused: %v", err)
	}
	p.Live.Immutable.StatefulSets = []livediff.Blocker{sts}
	if st := p.liveStep(); !strings.HasPrefix(st.Status, "refused") || !strings.Contains(st.Status, "--cascade=orphan") {
		t.Errorf("status %q", st.Status)
	}
	if err := p.LiveRefusal(false); errs.KindOf(err) != errs.Precondition || !strings.Contains(err.Error(), "csghub-postgresql") {
		t.Errorf("refusal %v", err)
	}
	if err := p.LiveRefusal(true); err != nil {
		t.Errorf("--recreate-statefulsets still refused: %v", err)
	}
	p.Live.Ownership.Foreign = []livediff.Blocker{{Object: "ConfigMap csghub/x", Reason: "owned by Helm release a/b", Fix: "f"}}
	if err := p.LiveRefusal(true); errs.KindOf(err) != errs.Precondition || !strings.Contains(err.Error(), "ConfigMap csghub/x owned by Helm release a/b") {
		t.Errorf("foreign refusal %v", err)
	}
}
