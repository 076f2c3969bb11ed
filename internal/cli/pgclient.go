package cli

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/opencsgs/helm-csghub/internal/dbpod"
)

// pgClientFlags choose the client pod of an external PostgreSQL
// (global.postgresql.enabled=false), where pg_dump and psql run.
type pgClientFlags struct {
	image   string
	timeout time.Duration
}

func (f *pgClientFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.image, "pg-image", "", "image of the PostgreSQL client pod for an external database (default: the chart's PostgreSQL image)")
	fs.DurationVar(&f.timeout, "pg-pod-timeout", dbpod.DefaultPodTimeout, "how long the PostgreSQL client pod may take to start")
}
