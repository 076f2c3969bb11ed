package backup

import (
	"github.com/minio/minio-go/v7/pkg/encrypt"

	"github.com/opencsgs/helm-csghub/internal/errs"
)

// Server-side encryption modes of --sse, named as the AWS CLI names them.
const (
	SSES3  = "AES256"  // SSE-S3: keys the storage service manages
	SSEKMS = "aws:kms" // SSE-KMS: a key of the service's KMS (--sse-kms-key-id, else its default key)
)

// SSE asks the bucket to encrypt what a backup writes. Reading needs no
// setting: the service decrypts for whoever may read the object.
type SSE struct {
	Mode     string `json:"mode,omitempty"`
	KMSKeyID string `json:"kmsKeyId,omitempty"` // an identifier, no secret (a rerun command names it)
}

// CheckSSE validates --sse and --sse-kms-key-id for location loc (usage
// errors, exit 2).
func CheckSSE(s SSE, loc string) error {
	switch {
	case s.Mode == "" && s.KMSKeyID != "":
		return errs.Usagef("--sse-kms-key-id needs --sse %s", SSEKMS)
	case s.Mode == "":
		return nil
	case s.Mode != SSES3 && s.Mode != SSEKMS:
		return errs.Usagef("--sse %q: one of %s (SSE-S3) or %s (SSE-KMS)", s.Mode, SSES3, SSEKMS)
	case s.Mode == SSES3 && s.KMSKeyID != "":
		return errs.Usagef("--sse-kms-key-id goes with --sse %s, not %s", SSEKMS, SSES3)
	case !IsBucket(loc):
		return errs.Usagef("--sse %s: server-side encryption is for a bucket location (s3://); this location is a folder", s.Mode)
	}
	return nil
}

func (s SSE) serverSide() (encrypt.ServerSide, error) {
	switch s.Mode {
	case SSES3:
		return encrypt.NewSSE(), nil
	case SSEKMS:
		return encrypt.NewSSEKMS(s.KMSKeyID, nil)
	}
	return nil, nil
}

// WithSSE is the catalog writing with server-side encryption s (a bucket;
// a folder is returned as it is).
func (c Catalog) WithSSE(s SSE) Catalog {
	if c.s3 == nil || s.Mode == "" {
		return c
	}
	st := *c.s3
	sse, err := s.serverSide()
	if err != nil {
		c.err = errs.Usagef("--sse %s: %v", s.Mode, err)
		return c
	}
	st.sse = sse
	c.s3 = &st
	return c
}
