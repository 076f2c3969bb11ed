package cli

import (
	"context"
	"time"

	"github.com/spf13/pflag"

	"github.com/opencsgs/helm-csghub/internal/verify"
)

type verifyCmd struct {
	app     *App
	timeout time.Duration
	output  output
}

func newVerifyCmd(app *App) *command {
	c := &verifyCmd{app: app}
	return &command{
		Name:    "verify",
		Summary: "Check the release: deployed, PostgreSQL reachable with its databases, web UI answering",
		Flags: func(fs *pflag.FlagSet) {
			fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "time for each network check")
			c.output.bind(fs)
		},
		Run: c.run,
	}
}

func (c *verifyCmd) run(ctx context.Context, _ []string) error {
	if c.timeout <= 0 {
		return usageError("verify: --timeout must be positive")
	}
	kc, err := c.app.kubeClient()
	if err != nil {
		return err
	}
	rep, err := (&verify.Verify{Env: c.app.Env, Kube: kc, Timeout: c.timeout}).Run(ctx)
	if rep != nil {
		if c.output == outputJSON {
			_ = writeJSON(c.app.Stdout, rep)
		} else {
			t := newTable(c.app.Stdout)
			for _, ch := range rep.Checks {
				mark := "ok"
				if !ch.OK {
					mark = "FAILED"
				}
				t.row(ch.Name+":", mark, ch.Detail)
			}
			_ = t.flush()
		}
	}
	return err
}
