// Package history is `helm csghub history`: Helm's history of the release
// joined with the complete backups taken at each revision, so an operator
// sees which revisions a rollback can restore.
package history

import (
	"time"

	"helm.sh/helm/v3/pkg/release"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/helmenv"
)

// Row is one revision and the backups taken at it.
type Row struct {
	Revision     int       `json:"revision"`
	Updated      time.Time `json:"updated"`
	Status       string    `json:"status"`
	Chart        string    `json:"chart"`
	ChartVersion string    `json:"chartVersion"`
	AppVersion   string    `json:"appVersion"`
	Description  string    `json:"description"`
	Backups      []string  `json:"backups"`
}

// History reads; it changes nothing.
type History struct {
	Release *helmenv.Release
	Dir     string // backup catalog root
}

// Run lists every stored revision, oldest first.
func (h *History) Run() ([]Row, error) {
	hist, err := h.Release.History()
	if err != nil {
		return nil, err
	}
	entries, err := backup.CatalogAt(h.Dir).List(h.Release.Namespace, h.Release.Name)
	if err != nil {
		return nil, err
	}
	byRev := map[int][]string{}
	for _, e := range entries {
		if e.Complete {
			byRev[e.Revision] = append(byRev[e.Revision], e.ID)
		}
	}
	rows := make([]Row, 0, len(hist))
	for _, r := range hist {
		rows = append(rows, toRow(r, byRev[r.Version]))
	}
	return rows, nil
}

func toRow(h *release.Release, backups []string) Row {
	r := Row{Revision: h.Version, Updated: h.Info.LastDeployed.Time, Status: h.Info.Status.String(),
		Description: h.Info.Description, Backups: backups, ChartVersion: helmenv.ChartVersion(h)}
	if r.Backups == nil {
		r.Backups = []string{}
	}
	if h.Chart != nil && h.Chart.Metadata != nil {
		r.Chart, r.AppVersion = h.Chart.Metadata.Name, h.Chart.Metadata.AppVersion
	}
	return r
}
