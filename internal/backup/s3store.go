package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/encrypt"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/readlimit"
)

// UploadPartSize is the part size of the streamed (multipart) uploads: the
// one buffer each upload holds, so with dumpParallel dumps at once the
// uploads hold 2 x 16 MiB. S3 allows 10,000 parts: one file (a compressed
// dump) can be up to 156 GiB, several times that of SQL.
const UploadPartSize = 16 << 20

// s3MetaTimeout bounds one metadata request (list, small get/put, delete);
// the streams are bounded by the command's context only.
const s3MetaTimeout = 2 * time.Minute

// s3Store is a catalog in a bucket: objects
// <prefix>/<namespace>/<release>/<id>/<file>, the manifest written last.
type s3Store struct {
	client   *minio.Client
	bucket   string
	prefix   string             // no leading or trailing slash; may be empty
	url      string             // s3://bucket/prefix, for messages
	endpoint string             // for messages
	sse      encrypt.ServerSide // server-side encryption of what is written (nil: the bucket's default)
}

// newS3Store connects (lazily: no request is made) to the bucket of loc,
// with endpoint, region and credentials found the way the AWS tools find
// them.
func newS3Store(loc string) (*s3Store, error) {
	bucket, prefix, err := parseBucketURL(loc)
	if err != nil {
		return nil, errs.Usagef("backup location %v", err)
	}
	host, secure, pathStyle := "s3.amazonaws.com", true, false
	endpoint := firstEnv("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	if endpoint != "" {
		u, err := url.Parse(endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
			return nil, errs.Usagef("S3 endpoint %q (AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL): want http(s)://HOST[:PORT]", endpoint)
		}
		// a custom endpoint (MinIO, Ceph, ...) is addressed path-style:
		// bucket names in host names need wildcard DNS there
		host, secure, pathStyle = u.Host, u.Scheme == "https", true
	}
	lookup := minio.BucketLookupAuto
	if pathStyle {
		lookup = minio.BucketLookupPath
	}
	providers := []credentials.Provider{&credentials.EnvAWS{}, &credentials.FileAWSCredentials{}}
	// the instance/pod role only where one is configured: probing the
	// metadata address elsewhere costs seconds before every command
	if firstEnv("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") != "" {
		providers = append(providers, &credentials.IAM{})
	}
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, errs.Failedf("S3 transport: %v", err)
	}
	// an endpoint that is down answers in seconds, not after the default 30 s
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = 2 * time.Minute
	client, err := minio.New(host, &minio.Options{
		Creds:        credentials.NewChainCredentials(providers),
		Secure:       secure,
		Region:       firstEnv("AWS_REGION", "AWS_DEFAULT_REGION"),
		BucketLookup: lookup,
		Transport:    tr,
		MaxRetries:   3,
	})
	if err != nil {
		return nil, errs.Usagef("S3 endpoint %s: %v", host, err)
	}
	scheme := "https://"
	if !secure {
		scheme = "http://"
	}
	return &s3Store{client: client, bucket: bucket, prefix: prefix, url: strings.TrimRight(s3Scheme+bucket+"/"+prefix, "/"), endpoint: scheme + host}, nil
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// key is the object key of parts under the prefix.
func (s *s3Store) key(parts ...string) string {
	if s.prefix != "" {
		parts = append([]string{s.prefix}, parts...)
	}
	return path.Join(parts...)
}

// urlOf is the s3:// URL of parts, for messages and Entry.Path.
func (s *s3Store) urlOf(parts ...string) string { return s3Scheme + s.bucket + "/" + s.key(parts...) }

// describe turns a client error into one line naming the bucket and what to
// check; the location is unusable, so it is a precondition (exit 4).
func (s *s3Store) describe(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return errs.Wrap(errs.Interrupted, fmt.Errorf("%s: interrupted", what))
	}
	resp := minio.ToErrorResponse(err)
	var why string
	switch resp.Code {
	case "NoSuchBucket":
		why = fmt.Sprintf("bucket %s does not exist at %s", s.bucket, s.endpoint)
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "AllAccessDisabled":
		why = fmt.Sprintf("access denied to bucket %s at %s (%s: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, and the bucket's policy)", s.bucket, s.endpoint, resp.Code)
	case "AuthorizationHeaderMalformed", "InvalidRegion", "IllegalLocationConstraintException", "PermanentRedirect":
		why = fmt.Sprintf("wrong region for bucket %s at %s (%s; set AWS_REGION to the bucket's region)", s.bucket, s.endpoint, oneLine(resp.Message))
	}
	if why == "" {
		var nerr net.Error
		var uerr *url.Error
		switch {
		case errors.As(err, &nerr) || errors.As(err, &uerr) || strings.Contains(err.Error(), "connection refused"):
			why = fmt.Sprintf("S3 endpoint %s does not answer (%v)", s.endpoint, oneLine(err.Error()))
		default:
			why = fmt.Sprintf("bucket %s at %s: %s", s.bucket, s.endpoint, oneLine(err.Error()))
		}
	}
	return errs.Preconditionf("%s: %s", what, why)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// isNotFound reports a missing object.
func isNotFound(err error) bool {
	c := minio.ToErrorResponse(err).Code
	return c == "NoSuchKey" || c == "NotFound"
}

// check makes sure the location can be used before anything changes: the
// bucket answers a listing under the prefix and, with write, takes (and
// gives back) a small object.
func (s *s3Store) check(ctx context.Context, write bool) error {
	ctx, cancel := context.WithTimeout(ctx, s3MetaTimeout)
	defer cancel()
	for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.key() + "/", MaxKeys: 1}) {
		if o.Err != nil {
			return s.describe("backup location "+s.url, o.Err)
		}
		break
	}
	if !write {
		return nil
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	probe := s.key(".write-check-" + hex.EncodeToString(rnd[:]))
	if _, err := s.client.PutObject(ctx, s.bucket, probe, bytes.NewReader(nil), 0, minio.PutObjectOptions{ServerSideEncryption: s.sse}); err != nil {
		return s.describe("backup location "+s.url+" is not writable", err)
	}
	if err := s.client.RemoveObject(ctx, s.bucket, probe, minio.RemoveObjectOptions{}); err != nil {
		return s.describe("backup location "+s.url+": removing the write check "+probe, err)
	}
	return nil
}

// exists reports whether any object is under dir (a backup id "folder").
func (s *s3Store) exists(ctx context.Context, dir string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s3MetaTimeout)
	defer cancel()
	for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: dir + "/", Recursive: true, MaxKeys: 1}) {
		if o.Err != nil {
			return false, s.describe("reading "+s3Scheme+s.bucket+"/"+dir, o.Err)
		}
		return true, nil
	}
	// an upload in progress (or killed) counts too: its id is taken
	for u := range s.client.ListIncompleteUploads(ctx, s.bucket, dir+"/", true) {
		if u.Err != nil {
			return false, s.describe("reading "+s3Scheme+s.bucket+"/"+dir, u.Err)
		}
		return true, nil
	}
	return false, nil
}

// readSmall reads a whole small object (at most limit bytes); a missing
// object is os.ErrNotExist.
func (s *s3Store) readSmall(key string, limit int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s3MetaTimeout)
	defer cancel()
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.describe("reading "+s3Scheme+s.bucket+"/"+key, err)
	}
	defer obj.Close()
	data, err := io.ReadAll(io.LimitReader(obj, limit+1))
	switch {
	case isNotFound(err):
		return nil, fmt.Errorf("%s%s/%s: %w", s3Scheme, s.bucket, key, os.ErrNotExist)
	case err != nil:
		return nil, s.describe("reading "+s3Scheme+s.bucket+"/"+key, err)
	case int64(len(data)) > limit:
		return nil, fmt.Errorf("%s%s/%s: larger than %d bytes", s3Scheme, s.bucket, key, limit)
	}
	return data, nil
}

// putSmall writes a small object in one request; with create it refuses
// to replace an object of that key (If-None-Match: *).
func (s *s3Store) putSmall(ctx context.Context, key string, data []byte, create bool) error {
	ctx, cancel := context.WithTimeout(ctx, s3MetaTimeout)
	defer cancel()
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", ServerSideEncryption: s.sse}
	if create {
		opts.SetMatchETagExcept("*")
	}
	_, err := s.client.PutObject(ctx, s.bucket, key, bytes.NewReader(data), int64(len(data)), opts)
	if c := minio.ToErrorResponse(err).Code; c == "PreconditionFailed" {
		return errs.Preconditionf("%s%s/%s exists already: backups are never overwritten", s3Scheme, s.bucket, key)
	}
	return s.describe("writing "+s3Scheme+s.bucket+"/"+key, err)
}

// removeAll removes every object under dir and aborts the uploads left
// there (a killed run's). Works on a fresh context: it also cleans up
// after Ctrl-C.
func (s *s3Store) removeAll(dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), s3MetaTimeout)
	defer cancel()
	// the uploads first: while their record exists, a failure here leaves
	// them findable by the next run
	if data, err := s.readSmall(dir+"/"+uploadsName, readlimit.Metadata); err == nil {
		var names []string
		if json.Unmarshal(data, &names) == nil {
			for _, n := range names {
				if n != path.Base(n) {
					continue
				}
				if err := s.client.RemoveIncompleteUpload(ctx, s.bucket, dir+"/"+n); err != nil {
					return s.describe("aborting the upload of "+s3Scheme+s.bucket+"/"+dir+"/"+n, err)
				}
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	objs := make(chan minio.ObjectInfo)
	var listErr error
	go func() {
		defer close(objs)
		for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: dir + "/", Recursive: true}) {
			if o.Err != nil {
				listErr = o.Err
				return
			}
			objs <- o
		}
	}()
	var first error
	for e := range s.client.RemoveObjects(ctx, s.bucket, objs, minio.RemoveObjectsOptions{}) {
		if first == nil && e.Err != nil {
			first = e.Err
		}
	}
	if first == nil {
		first = listErr
	}
	if first == nil {
		first = s.abortUploads(ctx, dir)
	}
	return s.describe("removing "+s3Scheme+s.bucket+"/"+dir, first)
}

// abortUploads aborts the multipart uploads under dir (their parts cost
// storage but are no object). Servers that list uploads by exact key only
// (MinIO) return none here: removeAll finds those by their record.
func (s *s3Store) abortUploads(ctx context.Context, dir string) error {
	seen := map[string]bool{}
	for u := range s.client.ListIncompleteUploads(ctx, s.bucket, dir+"/", true) {
		if u.Err != nil {
			return u.Err
		}
		if seen[u.Key] {
			continue
		}
		seen[u.Key] = true
		if err := s.client.RemoveIncompleteUpload(ctx, s.bucket, u.Key); err != nil {
			return err
		}
	}
	return nil
}

// sseOf is the server-side encryption object key is stored with, to write
// what joins it the same way (nil: none, or the bucket's default).
func (s *s3Store) sseOf(ctx context.Context, key string) (encrypt.ServerSide, error) {
	ctx, cancel := context.WithTimeout(ctx, s3MetaTimeout)
	defer cancel()
	info, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return nil, s.describe("reading "+s3Scheme+s.bucket+"/"+key, err)
	}
	switch info.Metadata.Get("X-Amz-Server-Side-Encryption") {
	case SSES3:
		return encrypt.NewSSE(), nil
	case SSEKMS:
		id := info.Metadata.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id")
		// AWS names the key by its ARN, which it takes back as an id;
		// MinIO answers "arn:aws:kms:<key name>" and wants the name
		if rest, ok := strings.CutPrefix(id, "arn:aws:kms:"); ok && !strings.Contains(rest, ":") {
			id = rest
		}
		sse, err := encrypt.NewSSEKMS(id, nil)
		if err != nil {
			return nil, errs.Failedf("the server-side encryption of %s%s/%s: %v", s3Scheme, s.bucket, key, err)
		}
		return sse, nil
	}
	return nil, nil
}

// open streams an object; a missing one is os.ErrNotExist.
func (s *s3Store) open(ctx context.Context, key string) (io.ReadCloser, error) {
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.describe("reading "+s3Scheme+s.bucket+"/"+key, err)
	}
	// GetObject is lazy: ask now, so a missing object fails here
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		if isNotFound(err) {
			return nil, fmt.Errorf("%s%s/%s: %w", s3Scheme, s.bucket, key, os.ErrNotExist)
		}
		return nil, s.describe("reading "+s3Scheme+s.bucket+"/"+key, err)
	}
	return obj, nil
}

// s3Upload streams one object through a multipart upload of unknown size:
// Write hands bytes to the uploader through a pipe (it fills one part
// buffer, then sends it); commit ends the stream and waits for the upload
// to complete; abort makes it fail (the upload is aborted, nothing stored).
type s3Upload struct {
	pw   *io.PipeWriter
	done chan error
	key  string
	s    *s3Store

	once sync.Once
	err  error // the upload's outcome, once done
}

// wait is the upload's outcome (safe to call again: commit, then abort).
func (u *s3Upload) wait() error {
	u.once.Do(func() { u.err = <-u.done })
	return u.err
}

var errUploadAborted = errors.New("upload aborted")

func (s *s3Store) upload(ctx context.Context, key string) *s3Upload {
	pr, pw := io.Pipe()
	u := &s3Upload{pw: pw, done: make(chan error, 1), key: key, s: s}
	go func() {
		// DisableContentSha256: over plain HTTP minio-go would sign every
		// 64 KiB chunk with a sha256 (aws-chunked), a hash pass over the
		// dump on each side; instead the parts go as over HTTPS: unsigned
		// payload with a CRC32C trailer the server checks, and the file's
		// own sha256 in the manifest checked end to end by verify/restore
		_, err := s.client.PutObject(ctx, s.bucket, key, pr, -1, minio.PutObjectOptions{PartSize: UploadPartSize, ContentType: "application/octet-stream",
			ServerSideEncryption: s.sse, DisableContentSha256: true})
		pr.CloseWithError(err) // a writer still writing learns the upload failed
		u.done <- err
	}()
	return u
}

func (u *s3Upload) Write(p []byte) (int, error) {
	n, err := u.pw.Write(p)
	if err != nil && !errors.Is(err, errUploadAborted) {
		err = u.s.describe("uploading "+s3Scheme+u.s.bucket+"/"+u.key, err)
	}
	return n, err
}

func (u *s3Upload) commit() error {
	u.pw.Close()
	if err := u.wait(); err != nil {
		return u.s.describe("uploading "+s3Scheme+u.s.bucket+"/"+u.key, err)
	}
	return nil
}

func (u *s3Upload) abort() {
	u.pw.CloseWithError(errUploadAborted)
	_ = u.wait()
}
