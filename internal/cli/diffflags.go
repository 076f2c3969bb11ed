package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/opencsgs/helm-csghub/internal/diff"
)

// diffFlags are plan's and upgrade --dry-run's --diff and its options.
type diffFlags struct {
	on           bool
	context      int
	showSecrets  bool
	detailedExit bool
	fs           *pflag.FlagSet // to tell --context 3 given from the default
}

func (d *diffFlags) bind(fs *pflag.FlagSet) {
	d.fs = fs
	fs.BoolVar(&d.on, "diff", false, "show what the Helm upgrade changes, object by object (deployed manifest vs the target render, live hand edits it overwrites); Secrets' values masked")
	fs.IntVar(&d.context, "context", 3, "with --diff: lines of context around each change")
	fs.BoolVar(&d.showSecrets, "show-secrets", false, "with --diff: print Secrets' values (masked otherwise, in -o json too)")
	fs.BoolVar(&d.detailedExit, "detailed-exitcode", false, "with --diff: exit 2 when the upgrade changes something, 0 when not")
}

// check refuses the options without --diff, and a negative --context.
func (d *diffFlags) check(cmd string) error {
	if !d.on && (d.showSecrets || d.detailedExit || d.fs != nil && d.fs.Changed("context")) {
		return usageError(cmd + ": --context, --show-secrets and --detailed-exitcode go with --diff")
	}
	if d.context < 0 {
		return usageError(cmd + ": --context must be 0 or more")
	}
	return nil
}

// options are the diff's (nil without --diff).
func (d *diffFlags) options() *diff.Options {
	if !d.on {
		return nil
	}
	return &diff.Options{Context: d.context, ShowSecrets: d.showSecrets}
}

// exit is the run's end for a report already printed: exit 2 with
// --detailed-exitcode when something changes.
func (d *diffFlags) exit(r *diff.Report) error {
	if d.detailedExit && r != nil && r.HasChanges() {
		return exitStatus(2)
	}
	return nil
}

// exitStatus ends a run with this exit code and no error message (the
// output said it all).
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// writeDiff prints a report for people, in colour on a terminal.
func (a *App) writeDiff(w io.Writer, r *diff.Report) {
	diff.Write(w, r, a.Color)
}

// colorWanted: stdout is a terminal and colour is not turned off (NO_COLOR,
// TERM=dumb).
func colorWanted() bool {
	return isTerminal(os.Stdout) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
}
