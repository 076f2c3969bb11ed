package backup

import (
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/opencsgs/helm-csghub/internal/errs"
)

// LocationEnv names the backup location when no flag does.
const LocationEnv = "HELM_CSGHUB_BACKUP_LOCATION"

// s3Scheme starts a bucket location: s3://BUCKET/PREFIX.
const s3Scheme = "s3://"

// IsBucket reports whether loc is an s3:// location (else it is a folder).
func IsBucket(loc string) bool { return strings.HasPrefix(loc, s3Scheme) }

// ResolveLocation picks the backup location of a command: --backup-location,
// else --dir, else $HELM_CSGHUB_BACKUP_LOCATION, else "" (the default
// folder). The result is a folder path or a checked s3:// URL; anything
// else is a usage error (exit 2).
func ResolveLocation(flagLocation, flagDir string) (string, error) {
	if flagLocation != "" && flagDir != "" {
		return "", errs.Usagef("--dir and --backup-location both name the backup location: give one")
	}
	loc, from := flagLocation, "--backup-location"
	switch {
	case flagDir != "":
		if strings.Contains(flagDir, "://") {
			return "", errs.Usagef("--dir %s: --dir takes a folder; use --backup-location for a bucket", flagDir)
		}
		return flagDir, nil
	case loc == "":
		loc, from = os.Getenv(LocationEnv), LocationEnv
	}
	if loc == "" {
		return "", nil
	}
	if err := CheckLocation(loc); err != nil {
		return "", errs.Usagef("%s %s", from, err)
	}
	if IsBucket(loc) {
		return strings.TrimRight(loc, "/"), nil
	}
	return loc, nil
}

// CheckLocation says what is wrong with a location's syntax (nil: a folder
// path or s3://BUCKET[/PREFIX]).
func CheckLocation(loc string) error {
	scheme, _, found := strings.Cut(loc, "://")
	if !found {
		return nil // a folder
	}
	if scheme != "s3" {
		return fmt.Errorf("%q: unknown scheme %q (a folder path, or s3://BUCKET/PREFIX)", loc, scheme+"://")
	}
	_, _, err := parseBucketURL(loc)
	return err
}

// parseBucketURL splits s3://BUCKET/PREFIX; the prefix has no leading or
// trailing slash and no empty, "." or ".." segment.
func parseBucketURL(loc string) (bucket, prefix string, err error) {
	u, err := url.Parse(loc)
	if err != nil || u.Scheme != "s3" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", "", fmt.Errorf("%q: not of the form s3://BUCKET/PREFIX", loc)
	}
	if err := s3utils.CheckValidBucketNameStrict(u.Host); err != nil {
		return "", "", fmt.Errorf("%q: bucket %q: %v", loc, u.Host, err)
	}
	prefix = strings.Trim(u.Path, "/")
	if prefix != "" {
		for _, seg := range strings.Split(prefix, "/") {
			if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "\x00\r\n\\") {
				return "", "", fmt.Errorf("%q: prefix %q has an empty, \".\", \"..\" or control-character segment", loc, prefix)
			}
		}
	}
	return u.Host, prefix, nil
}
