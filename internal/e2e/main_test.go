// Package e2e holds the end-to-end tests: the real plugin binary run by real
// helm v3 and v4 CLIs against a real local control plane and real PostgreSQL.
package e2e

import (
	"go/ast"
	"go/parser"
	"go/token"
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

// Every test of the package calls t.Parallel first: each takes a cluster of
// the pool (testenv.NewEnv), and one that did not would run alone while the
// other clusters idle.
func TestEveryTestRunsInParallel(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*_test.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files found (err %v)", err)
	}
	fset := token.NewFileSet()
	n := 0
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") || fn.Name.Name == "TestMain" {
				continue
			}
			n++
			if !startsWithParallel(fn.Body) {
				t.Errorf("%s: %s does not call t.Parallel() first", fset.Position(fn.Pos()), fn.Name.Name)
			}
		}
	}
	if n < 2 {
		t.Fatalf("found %d tests: the check read the wrong files", n)
	}
}

func startsWithParallel(body *ast.BlockStmt) bool {
	if body == nil || len(body.List) == 0 {
		return false
	}
	es, ok := body.List[0].(*ast.ExprStmt)
	if !ok {
		return false
	}
	call, ok := es.X.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "Parallel" && len(call.Args) == 0
}
