package steplog

import (
	"fmt"
	"testing"
)

func TestPrintfNilIsSilent(t *testing.T) {
	var f Func
	f.Printf("nothing %d", 1) // must not panic
	var got string
	f = func(format string, args ...any) { got = fmt.Sprintf(format, args...) }
	f.Printf("step %d", 2)
	if got != "step 2" {
		t.Fatalf("got %q", got)
	}
}

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                 "plain",
		"  padded \n":           "padded",
		"first line \nsecond\n": "first line | second",
		// psql's error spans lines; the plugin's advice after it must survive
		"restoring databases: psql stopped at an error (exit 3): ERROR:  division by zero\nCONTEXT:  line 12\n\n (database unchanged; rerun `helm csghub restore --backup 1-x`)": "restoring databases: psql stopped at an error (exit 3): ERROR:  division by zero | CONTEXT:  line 12 | (database unchanged; rerun `helm csghub restore --backup 1-x`)",
		"a\r\nb": "a | b",
		"\n\n\n": "",
	} {
		if got := OneLine(in); got != want {
			t.Errorf("OneLine(%q) = %q, want %q", in, got, want)
		}
	}
}
