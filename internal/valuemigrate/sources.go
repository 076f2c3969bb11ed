package valuemigrate

import (
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"
)

// Sources parses each -f/--set flag of o on its own, so a warning can name the
// flag that passed an old key. Helm's own parser is used, as for the merge.
func Sources(o values.Options, p getter.Providers) ([]Source, error) {
	var out []Source
	add := func(flag string, one values.Options) error {
		m, err := one.MergeValues(p)
		if err != nil {
			return err
		}
		out = append(out, Source{Flag: flag, Values: m})
		return nil
	}
	for _, f := range o.ValueFiles {
		if err := add("-f "+f, values.Options{ValueFiles: []string{f}}); err != nil {
			return nil, err
		}
	}
	for _, s := range o.JSONValues {
		if err := add("--set-json", values.Options{JSONValues: []string{s}}); err != nil {
			return nil, err
		}
	}
	for _, s := range o.Values {
		if err := add("--set", values.Options{Values: []string{s}}); err != nil {
			return nil, err
		}
	}
	for _, s := range o.StringValues {
		if err := add("--set-string", values.Options{StringValues: []string{s}}); err != nil {
			return nil, err
		}
	}
	for _, s := range o.FileValues {
		if err := add("--set-file", values.Options{FileValues: []string{s}}); err != nil {
			return nil, err
		}
	}
	return out, nil
}
