// Package e2e holds the end-to-end tests: the real plugin binary run by real
// helm v3 and v4 CLIs against a real local control plane and real PostgreSQL.
package e2e

import (
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/opencsgs/helm-csghub/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func filepathJoin(parts ...string) string { return filepath.Join(parts...) }
