// Package csghub is what the plugin knows about the CSGHub chart
// (OpenCSGs/csghub-charts): the names it gives a release's objects, the
// labels it sets, and what its values say about the databases and the
// components. Every operation asks here instead of spelling the names
// itself, so a chart change is one edit.
package csghub

import (
	"fmt"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chartutil"
)

// InstanceLabel is the label the chart puts on every object of a release.
const InstanceLabel = "app.kubernetes.io/instance"

// InstanceSelector selects every pod of a release.
func InstanceSelector(release string) string { return InstanceLabel + "=" + release }

// PostgresLabels are the labels of the built-in PostgreSQL's pods.
func PostgresLabels(release string) map[string]string {
	return map[string]string{
		InstanceLabel:               release,
		"app.kubernetes.io/name":    "csghub",
		"app.kubernetes.io/service": "postgresql",
	}
}

// PostgresPod is the built-in PostgreSQL's pod (StatefulSet <release>-postgresql).
func PostgresPod(release string) string { return release + "-postgresql-0" }

// PostgresSecret holds the built-in PostgreSQL's superuser and password.
func PostgresSecret(release string) string { return release + "-postgresql" }

// MongoStatefulSet is the MongoDB of charts <= 1.17 (Dataflow's task logs).
func MongoStatefulSet(release string) string { return release + "-mongo" }

// MongoPod is MongoStatefulSet's only pod.
func MongoPod(release string) string { return MongoStatefulSet(release) + "-0" }

// Service is the Service of a component: <release>-<component>.
func Service(release, component string) string { return release + "-" + component }

// Components whose Service verify checks.
const (
	Portal  = "portal"
	Server  = "server"
	Casdoor = "casdoor"
	MinIO   = "minio"
)

// ServerBucket is csghub-server's default bucket name.
func ServerBucket(release string) string { return Service(release, Server) }

// Disabled is true only for an explicit false at path (a missing key keeps
// the chart's default, true): e.g. "global.redis.enabled".
func Disabled(values map[string]any, path string) bool {
	x, err := chartutil.Values(values).PathValue(path)
	b, ok := x.(bool)
	return err == nil && ok && !b
}

// ExternalPostgres reports whether the values turn the bundled PostgreSQL
// off (global.postgresql.enabled: false): the databases are then on the
// servers global.postgresql.external.* names.
func ExternalPostgres(values map[string]any) bool {
	return Disabled(values, "global.postgresql.enabled")
}

// ExpectedDatabases is the chart's postgresql.databases list, sorted.
func ExpectedDatabases(values map[string]any) []string {
	raw, err := chartutil.Values(values).PathValue("postgresql.databases")
	if err != nil {
		return nil
	}
	var out []string
	switch l := raw.(type) {
	case []any:
		for _, x := range l {
			out = append(out, fmt.Sprint(x))
		}
	case string:
		out = strings.FieldsFunc(l, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' })
	}
	sort.Strings(out)
	return out
}
