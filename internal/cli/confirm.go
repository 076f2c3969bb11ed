package cli

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/opencsgs/helm-csghub/internal/errs"
)

// confirm asks before a change that overwrites data. With --yes it proceeds; on
// a terminal it asks; otherwise (scripts, CI) it refuses, so nothing destructive
// happens without an explicit yes.
func (a *App) confirm(yes bool, what string) error {
	if yes {
		return nil
	}
	f, ok := a.Stdin.(*os.File)
	if !ok || !isTerminal(f) {
		return errs.Usagef("%s: not asking on a non-interactive input; pass --yes to confirm", what)
	}
	fmt.Fprintf(a.Stderr, "%s\nProceed? [y/N] ", what)
	line, _ := bufio.NewReader(a.Stdin).ReadString('\n')
	if s := strings.ToLower(strings.TrimSpace(line)); s == "y" || s == "yes" {
		return nil
	}
	return errs.Usagef("not confirmed, nothing changed")
}
