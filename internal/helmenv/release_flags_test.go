package helmenv

import "testing"

// The commands the plugin prints name the backup location the way the
// operator gave it: a folder with --dir, a bucket with --backup-location.
func TestReleaseFlagsNameTheBackupLocation(t *testing.T) {
	r := &Release{Name: "hub", Namespace: "prod"}
	for dir, want := range map[string]string{
		"":                   " -n prod --release hub",
		"/var/backups":       " -n prod --release hub --dir /var/backups",
		"s3://bkp/team/prod": " -n prod --release hub --backup-location s3://bkp/team/prod",
	} {
		if got := r.Flags(dir); got != want {
			t.Errorf("Flags(%q) = %q, want %q", dir, got, want)
		}
	}
}
