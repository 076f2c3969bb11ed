// Command testsummary reads `go test -json` on stdin, prints the tests' output
// as `go test -v` would while they run, and ends with the slowest tests, each
// package's time and the line "N passed, N failed, N skipped" (every test and
// subtest counted). It exits 1 when a test or package failed or nothing
// passed, so a pipe never hides a failure; go test's own status comes through
// pipefail as well.
//
//	go test -json ./... 2>&1 | go run ./scripts/testsummary
//
// Lines that are not JSON (go's own messages on stderr) are printed as they
// come; one starting with "FAIL" or "panic: " counts as a failure.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type timing struct {
	name    string
	seconds float64
	result  string
}

type summary struct {
	pass, fail, skip int
	failed           bool // a package failed, or a non-JSON line said FAIL or panic
	tests            []timing
	packages         []timing
}

// slowest is how many tests the summary lists.
const slowest = 15

func main() {
	s, err := run(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stdout, "testsummary: %v\n", err)
		os.Exit(1)
	}
	if !s.ok() {
		os.Exit(1)
	}
}

func (s *summary) ok() bool { return s.fail == 0 && !s.failed && s.pass > 0 }

// run copies the output through and prints the summary at the end.
func run(in io.Reader, out io.Writer) (*summary, error) {
	s := &summary{}
	w := bufio.NewWriter(out)
	r := bufio.NewReaderSize(in, 1<<20)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			s.line(w, line)
			// flush per line: people and CI logs follow the run as it goes
			if ferr := w.Flush(); ferr != nil {
				return s, ferr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return s, err
		}
	}
	s.print(w)
	return s, w.Flush()
}

func (s *summary) line(w io.Writer, line string) {
	var ev event
	if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &ev) != nil || ev.Action == "" {
		fmt.Fprint(w, line)
		if !strings.HasSuffix(line, "\n") {
			fmt.Fprintln(w)
		}
		if strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "panic: ") {
			s.failed = true
		}
		return
	}
	switch ev.Action {
	case "output", "build-output":
		fmt.Fprint(w, ev.Output)
	case "pass", "fail", "skip":
		if ev.Test == "" {
			if ev.Action == "fail" {
				s.failed = true
			}
			s.packages = append(s.packages, timing{ev.Package, ev.Elapsed, ev.Action})
			return
		}
		switch ev.Action {
		case "pass":
			s.pass++
		case "fail":
			s.fail++
		case "skip":
			s.skip++
		}
		if !strings.Contains(ev.Test, "/") {
			s.tests = append(s.tests, timing{shortPkg(ev.Package) + "." + ev.Test, ev.Elapsed, ev.Action})
		}
	case "build-fail":
		s.failed = true
	}
}

func (s *summary) print(w io.Writer) {
	if len(s.tests) > 0 {
		tests := append([]timing(nil), s.tests...)
		sort.SliceStable(tests, func(i, j int) bool { return tests[i].seconds > tests[j].seconds })
		if len(tests) > slowest {
			tests = tests[:slowest]
		}
		fmt.Fprintf(w, "\nslowest tests:\n")
		for _, t := range tests {
			fmt.Fprintf(w, "  %8.1fs  %s%s\n", t.seconds, t.name, mark(t.result))
		}
	}
	if len(s.packages) > 0 {
		pkgs := append([]timing(nil), s.packages...)
		sort.SliceStable(pkgs, func(i, j int) bool { return pkgs[i].seconds > pkgs[j].seconds })
		fmt.Fprintf(w, "\npackages:\n")
		for _, p := range pkgs {
			fmt.Fprintf(w, "  %8.1fs  %s%s\n", p.seconds, p.name, mark(p.result))
		}
	}
	fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", s.pass, s.fail, s.skip)
}

func mark(result string) string {
	if result == "pass" {
		return ""
	}
	return " (" + strings.ToUpper(result) + ")"
}

// shortPkg drops the module path: internal/e2e.TestPlan reads better.
func shortPkg(p string) string {
	const mod = "github.com/opencsgs/helm-csghub/"
	return strings.TrimPrefix(p, mod)
}
