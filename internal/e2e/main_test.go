// Package e2e holds the end-to-end tests: the real plugin binary run by real
// helm v3 and v4 CLIs against a real local control plane and real PostgreSQL.
package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opencsgs/helm-csghub/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func filepathJoin(parts ...string) string { return filepath.Join(parts...) }

// pluginStderr drops the line Helm itself adds when a plugin exits non-zero
// ("Error: plugin "csghub" exited with error"), leaving what the plugin wrote.
func pluginStderr(stderr string) string {
	var keep []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if strings.Contains(l, `plugin "csghub" exited with error`) {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

// oneLineError reports whether the plugin's stderr is a single "Error: " line.
func oneLineError(stderr string) bool {
	s := pluginStderr(stderr)
	return s != "" && !strings.Contains(s, "\n") && strings.HasPrefix(s, "Error: ")
}

// errorLines counts the plugin's "Error: " lines (a failing operation may log
// its steps first; its error is still one line).
func errorLines(stderr string) int {
	n := 0
	for _, l := range strings.Split(pluginStderr(stderr), "\n") {
		if strings.HasPrefix(l, "Error: ") {
			n++
		}
	}
	return n
}
