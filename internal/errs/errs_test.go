package errs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestExitCodes(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("plain"), 1},
		{Usagef("bad flag %q", "x"), 2},
		{NotFoundf("release %q", "csghub"), 3},
		{Preconditionf("locked"), 4},
		{RolledBackf("upgrade failed"), 5},
		{NeedsAttentionf("rollback failed"), 6},
		{fmt.Errorf("wrapped: %w", context.Canceled), 130},
		{fmt.Errorf("outer: %w", NotFoundf("inner")), 3},
		{Wrap(Usage, errors.New("x")), 2},
		// Ctrl-C inside an API call of a step that calls its failures Failed
		{Failedf("reading pod csghub/csghub-postgresql-0: %w", fmt.Errorf("Get x: %w", context.Canceled)), 130},
		// what was left to undo still says so
		{NeedsAttentionf("restore: %w", context.Canceled), 6},
	}
	for _, c := range cases {
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("ExitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

func TestMessageKeepsCauseForIs(t *testing.T) {
	err := Failedf("writing backup: %w", fs.ErrPermission)
	if err.Error() != "writing backup: permission denied" {
		t.Fatalf("message %q", err.Error())
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Fatal("cause lost for errors.Is")
	}
	if Wrap(Failed, nil) != nil {
		t.Fatal("Wrap(nil) must stay nil")
	}
}
