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
		"first line \nsecond\n": "first line (…)",
	} {
		if got := OneLine(in); got != want {
			t.Errorf("OneLine(%q) = %q, want %q", in, got, want)
		}
	}
}
