package devenv

import (
	"os/exec"
	"strings"
	"testing"
)

// make builds the tests with -trimpath, where runtime.GOROOT is empty: GoBin
// must still name a go command that runs (the e2e tests run `go run` with it).
func TestGoBinRuns(t *testing.T) {
	g := GoBin()
	out, err := exec.Command(g, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "go version ") {
		t.Fatalf("%s version: %q, %v", g, out, err)
	}
}
