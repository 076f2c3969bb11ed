package cli

import (
	"context"

	"github.com/spf13/pflag"

	"github.com/opencsgs/helm-csghub/internal/buildinfo"
)

type versionCmd struct {
	app    *App
	output output
}

func newVersionCmd(app *App) *command {
	c := &versionCmd{app: app}
	return &command{
		Name:    "version",
		Summary: "Show the plugin version, Helm SDK, Go version and git commit",
		Flags:   func(fs *pflag.FlagSet) { c.output.bind(fs) },
		Run:     c.run,
	}
}

func (c *versionCmd) run(_ context.Context, _ []string) error {
	info := buildinfo.Get()
	if c.output == outputJSON {
		return writeJSON(c.app.Stdout, info)
	}
	t := newTable(c.app.Stdout)
	t.row("plugin:", info.Version)
	t.row("git commit:", orDash(info.GitCommit))
	t.row("helm sdk:", info.HelmSDK)
	t.row("client-go:", info.ClientGo)
	t.row("go:", info.GoVersion)
	t.row("platform:", info.Platform)
	return t.flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
