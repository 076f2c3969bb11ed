package verify

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"helm.sh/helm/v3/pkg/chartutil"

	"github.com/opencsgs/helm-csghub/internal/csghub"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// S3Config is the external object storage csghub-server uses.
type S3Config struct {
	Endpoint  string // as configured: host[:port] or a URL
	AccessKey string
	SecretKey string `json:"-"`
	Region    string
	Bucket    string
	Secure    bool
	PathStyle bool
}

// ExternalS3 resolves the external object storage of csghub-server as the
// chart does (common.s3.config): global.objectStore.external.* with
// server.objectStore.* on top; the bucket defaults to <release>-server.
func ExternalS3(values map[string]any, release string) S3Config {
	v := chartutil.Values(values)
	c := S3Config{Region: "cn-north-1", Bucket: csghub.ServerBucket(release), PathStyle: true}
	for _, base := range []string{"global.objectStore.external", "server.objectStore"} {
		str := func(key string) string {
			x, err := v.PathValue(base + "." + key)
			if err != nil || x == nil {
				return ""
			}
			return strings.TrimSpace(fmt.Sprint(x))
		}
		set := func(dst *string, key string) {
			if s := str(key); s != "" {
				*dst = s
			}
		}
		set(&c.Endpoint, "endpoint")
		set(&c.AccessKey, "accessKey")
		set(&c.SecretKey, "secretKey")
		set(&c.Region, "region")
		set(&c.Bucket, "bucket")
		if s := str("secure"); s != "" {
			c.Secure = s == "true"
		}
		if s := str("pathStyle"); s != "" {
			c.PathStyle = s == "true"
		}
	}
	return c
}

// hostAndTLS splits the endpoint into what minio-go wants: host[:port] and
// whether to use TLS (a scheme in the endpoint wins over `secure`).
func (c S3Config) hostAndTLS() (string, bool, error) {
	e := c.Endpoint
	if e == "" {
		return "", false, fmt.Errorf("no endpoint configured (global.objectStore.external.endpoint)")
	}
	if strings.Contains(e, "://") {
		u, err := url.Parse(e)
		if err != nil || u.Host == "" {
			return "", false, fmt.Errorf("endpoint %q is not a URL", e)
		}
		return u.Host, u.Scheme == "https", nil
	}
	return strings.TrimSuffix(e, "/"), c.Secure, nil
}

// CheckS3: the configured endpoint answers and the configured bucket exists,
// with the release's credentials (minio-go signs the request).
func CheckS3(ctx context.Context, c S3Config) (string, error) {
	host, tls, err := c.hostAndTLS()
	if err != nil {
		return "", fmt.Errorf("external object storage: %w", err)
	}
	lookup := minio.BucketLookupAuto
	if c.PathStyle {
		lookup = minio.BucketLookupPath
	}
	cl, err := minio.New(host, &minio.Options{
		Creds:        credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""),
		Secure:       tls,
		Region:       c.Region,
		BucketLookup: lookup,
		MaxRetries:   1,
	})
	if err != nil {
		return "", fmt.Errorf("external object storage %s: %w", host, err)
	}
	ok, err := cl.BucketExists(ctx, c.Bucket)
	if err != nil {
		return "", fmt.Errorf("external object storage %s, bucket %s, access key %s: %w", host, c.Bucket, c.AccessKey, err)
	}
	if !ok {
		return "", fmt.Errorf("external object storage %s answers, but bucket %s does not exist", host, c.Bucket)
	}
	return fmt.Sprintf("external object storage %s: bucket %s exists (access key %s)", host, c.Bucket, c.AccessKey), nil
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
