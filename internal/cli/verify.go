package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/opencsgs/helm-csghub/internal/verify"
)

type verifyCmd struct {
	app        *App
	timeout    time.Duration
	only, skip []string
	output     output
}

func newVerifyCmd(app *App) *command {
	c := &verifyCmd{app: app}
	return &command{
		Name:    "verify",
		Summary: "Check the release as the guide's section 6: web UI, API, login, database, object storage, Redis, Gitaly",
		Flags: func(fs *pflag.FlagSet) {
			fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "time for each check")
			names := strings.Join(verify.Names, ", ")
			fs.StringSliceVar(&c.only, "check", nil, "run only this check (can repeat or be comma-separated): "+names)
			fs.StringSliceVar(&c.skip, "skip-check", nil, "leave this check out (can repeat or be comma-separated)")
			c.output.bind(fs)
		},
		Run: c.run,
	}
}

func (c *verifyCmd) run(ctx context.Context, _ []string) error {
	if c.timeout <= 0 {
		return usageError("verify: --timeout must be positive")
	}
	if err := verify.Select(c.only, c.skip); err != nil {
		return err
	}
	rel, kc, err := c.app.resolve()
	if err != nil {
		return err
	}
	rep, err := (&verify.Verify{Release: rel, Kube: kc, Timeout: c.timeout, Only: c.only, Skip: c.skip}).Run(ctx)
	if rep != nil {
		if c.output == outputJSON {
			_ = writeJSON(c.app.Stdout, rep)
		} else {
			t := newTable(c.app.Stdout)
			for _, ch := range rep.Checks {
				t.row(ch.Name+":", strings.ToUpper(string(ch.Status)), fmt.Sprintf("%.0fms", ch.DurationMs), ch.Detail)
			}
			_ = t.flush()
		}
	}
	return err
}
