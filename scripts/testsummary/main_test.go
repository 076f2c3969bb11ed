package main

import (
	"strings"
	"testing"
)

const passing = `{"Action":"start","Package":"example.com/a"}
{"Action":"run","Package":"example.com/a","Test":"TestFast"}
{"Action":"output","Package":"example.com/a","Test":"TestFast","Output":"=== RUN   TestFast\n"}
{"Action":"output","Package":"example.com/a","Test":"TestFast","Output":"--- PASS: TestFast (0.50s)\n"}
{"Action":"pass","Package":"example.com/a","Test":"TestFast","Elapsed":0.5}
{"Action":"pass","Package":"example.com/a","Test":"TestSlow/sub","Elapsed":3}
{"Action":"pass","Package":"example.com/a","Test":"TestSlow","Elapsed":7.25}
{"Action":"skip","Package":"example.com/a","Test":"TestSkipped","Elapsed":0}
go: downloading example.com/x v1.0.0
{"Action":"pass","Package":"example.com/a","Elapsed":8.1}
`

func TestSummaryOfPassingRun(t *testing.T) {
	var out strings.Builder
	s, err := run(strings.NewReader(passing), &out)
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"=== RUN   TestFast\n--- PASS: TestFast (0.50s)\n",
		"go: downloading example.com/x v1.0.0\n",
		"slowest tests:\n       7.2s  example.com/a.TestSlow\n       0.5s  example.com/a.TestFast\n       0.0s  example.com/a.TestSkipped (SKIP)\n",
		"packages:\n       8.1s  example.com/a\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if !strings.HasSuffix(got, "3 passed, 0 failed, 1 skipped\n") {
		t.Errorf("last line is not the count:\n%s", got)
	}
	if !s.ok() {
		t.Error("a passing run is reported as failed")
	}
}

func TestSummaryFailsTheRun(t *testing.T) {
	for name, in := range map[string]string{
		"failed test": `{"Action":"pass","Package":"p","Test":"TestA","Elapsed":1}
{"Action":"fail","Package":"p","Test":"TestB","Elapsed":1}
{"Action":"fail","Package":"p","Elapsed":2}
`,
		"failed package, no failed test (TestMain exits 1)": `{"Action":"pass","Package":"p","Test":"TestA","Elapsed":1}
{"Action":"fail","Package":"p","Elapsed":2}
`,
		"build failure": `{"Action":"pass","Package":"p","Test":"TestA","Elapsed":1}
{"ImportPath":"q","Action":"build-fail"}
`,
		"FAIL line outside JSON": `{"Action":"pass","Package":"p","Test":"TestA","Elapsed":1}
FAIL	q [setup failed]
`,
		"nothing passed": `{"Action":"skip","Package":"p","Test":"TestA","Elapsed":0}
{"Action":"pass","Package":"p","Elapsed":0}
`,
		"empty input": "",
	} {
		t.Run(name, func(t *testing.T) {
			var out strings.Builder
			s, err := run(strings.NewReader(in), &out)
			if err != nil {
				t.Fatal(err)
			}
			if s.ok() {
				t.Errorf("run reported ok:\n%s", out.String())
			}
		})
	}
}
