// Package s3archive is the archive engine on an S3-compatible object store: each object is an
// object of one bucket, named by its key under a prefix. It implements store.Archive; several
// nodes may share one bucket and prefix. docs/STORAGE.md ("The S3 archive") gives the write
// scheme and what a crash leaves behind.
package s3archive

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/rs/zerolog"

	"github.com/espnode/espnode/store"
)

// Sizes S3 fixes.
const (
	// MinPartSize is the smallest part of a multipart upload but its last.
	MinPartSize = 5 << 20
	// DefaultPartSize is the part size when Config gives none: what one writer buffers at most.
	DefaultPartSize = 8 << 20
	// maxParts is the most parts one multipart upload may have.
	maxParts = 10_000
	// maxCopySize is the largest object one CopyObject copies; larger ones are copied in
	// ranges with UploadPartCopy.
	maxCopySize = 5 << 30
	// copyPartSize is the range of one UploadPartCopy: 10,000 of them reach S3's 5 TiB limit.
	copyPartSize = 512 << 20
)

// StagingDir is the first element of the staging keys under the prefix: objects larger than one
// part are uploaded there before Commit knows their key. No object key may begin with it.
const StagingDir = ".incoming"

// StaleAfter is the age past which Open removes staging objects and aborts multipart uploads
// under the prefix: older than any write in progress on a node sharing the bucket.
const StaleAfter = 24 * time.Hour

// retryAttempts bounds the SDK's standard retryer (attempts per request, the first included).
const retryAttempts = 4

// abortTimeout bounds the clean-up of Abort, whose interface has no context.
const abortTimeout = time.Minute

// responseTimeout bounds the wait for a response's headers once a request was sent: the Store
// commits with a context that is never cancelled (the peer may leave after sending everything),
// so a server that stops answering must not hold a Put for ever. It is long enough for a server
// that completes a large multipart upload or copy before it answers.
const responseTimeout = 5 * time.Minute

// maxIdleConns is how many idle connections to the server the client keeps: about one per
// association writing at once, so that concurrent Puts do not open a connection each time.
const maxIdleConns = 64

// Config says where the archive lives. Empty fields take the standard AWS variables
// (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and the rest of the
// SDK's default chain (shared configuration files, instance roles).
type Config struct {
	Bucket, Prefix                                 string
	Endpoint, Region, AccessKeyID, SecretAccessKey string
	// PathStyle addresses the bucket in the URL's path rather than its host name (most servers
	// other than AWS want it).
	PathStyle bool
	// PartSize is the size of a multipart upload's parts and the most a writer buffers;
	// 0 means DefaultPartSize. At least MinPartSize.
	PartSize int64
}

// bucketName is S3's rule for bucket names (3 to 63 lower-case letters, digits, dots and hyphens,
// beginning and ending with a letter or digit).
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// ParseURL splits s3://BUCKET/PREFIX into the bucket and the prefix (without slashes at its
// ends; "" for the whole bucket).
func ParseURL(s string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return "", "", fmt.Errorf("s3archive: %q is not an s3://BUCKET/PREFIX URL", s)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if !bucketName.MatchString(bucket) {
		return "", "", fmt.Errorf("s3archive: %q: %q is not a bucket name (3 to 63 of a-z, 0-9, '.', '-')", s, bucket)
	}
	prefix = strings.TrimSuffix(prefix, "/")
	if err := checkPrefix(prefix); err != nil {
		return "", "", fmt.Errorf("s3archive: %q: %w", s, err)
	}
	return bucket, prefix, nil
}

// checkPrefix refuses a prefix with empty, "." or ".." elements or characters a key may not hold.
func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	for _, e := range strings.Split(prefix, "/") {
		if e == "" || e == "." || e == ".." || e == StagingDir {
			return fmt.Errorf("prefix %q: element %q not allowed", prefix, e)
		}
	}
	if strings.ContainsFunc(prefix, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return fmt.Errorf("prefix %q: control character or backslash", prefix)
	}
	return nil
}

// Archive is a store.Archive on one bucket under a prefix. Its methods are safe for concurrent
// use, by any number of processes sharing the bucket.
type Archive struct {
	client   *s3.Client
	bucket   string
	prefix   string // "" or ending in "/"
	partSize int64
	log      zerolog.Logger

	// The copy thresholds S3 fixes; tests lower them to reach the ranged copy.
	copyLimit, copyPart int64
}

var _ store.Archive = (*Archive)(nil)

// Open connects to the bucket (a clear error when it cannot be reached), then removes what
// writers that died left under the prefix more than StaleAfter ago.
func Open(ctx context.Context, cfg Config, log zerolog.Logger) (*Archive, error) {
	if !bucketName.MatchString(cfg.Bucket) {
		return nil, fmt.Errorf("s3archive: %q is not a bucket name", cfg.Bucket)
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if err := checkPrefix(prefix); err != nil {
		return nil, fmt.Errorf("s3archive: %w", err)
	}
	if prefix != "" {
		prefix += "/"
	}
	part := cfg.PartSize
	if part == 0 {
		part = DefaultPartSize
	}
	if part < MinPartSize || part > maxCopySize {
		return nil, fmt.Errorf("s3archive: part size %d: S3 wants %d to %d bytes", part, MinPartSize, maxCopySize)
	}
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.ResponseHeaderTimeout = responseTimeout
		tr.MaxIdleConns, tr.MaxIdleConnsPerHost = maxIdleConns, maxIdleConns
	})
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = retryAttempts })
		}),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" || cfg.SecretAccessKey != "" {
		if cfg.AccessKeyID == "" || cfg.SecretAccessKey == "" {
			return nil, errors.New("s3archive: an access key id needs its secret access key, and the other way round")
		}
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	if cfg.Endpoint != "" {
		opts = append(opts, config.WithBaseEndpoint(cfg.Endpoint))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3archive: AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("s3archive: no region: set s3.region or AWS_REGION (us-east-1 suits most S3-compatible servers)")
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		o.UsePathStyle = cfg.PathStyle
		// Checksums only where S3 requires them: sigv4 signs each request, TCP and TLS
		// check the bytes, and servers other than AWS differ in the checksums they accept.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	a := &Archive{client: client, bucket: cfg.Bucket, prefix: prefix, partSize: part, log: log,
		copyLimit: maxCopySize, copyPart: copyPartSize}
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &a.bucket}); err != nil {
		return nil, fmt.Errorf("s3archive: bucket %q at %s cannot be reached (check s3.endpoint or AWS_ENDPOINT_URL, the credentials and that the bucket exists): %w",
			a.bucket, endpointName(awsCfg), err)
	}
	if err := a.sweep(ctx, time.Now().Add(-StaleAfter)); err != nil {
		// Nothing is lost by leaving them: a later start or the bucket's lifecycle rule
		// removes them.
		log.Warn().Err(err).Str("bucket", a.bucket).Str("prefix", a.prefix).
			Msg("cannot remove what unfinished stores left in the object store")
	}
	return a, nil
}

func endpointName(cfg aws.Config) string {
	if cfg.BaseEndpoint != nil {
		return *cfg.BaseEndpoint
	}
	if e := os.Getenv("AWS_ENDPOINT_URL_S3"); e != "" {
		return e
	}
	return "AWS S3 (" + cfg.Region + ")"
}

// Close does nothing: the archive holds no connection of its own beyond the HTTP client's idle
// ones.
func (a *Archive) Close() error { return nil }

// objectKey returns the object-store key of an archive key, refusing one that is not a clean
// relative slash path or that names the staging area.
func (a *Archive) objectKey(key string) (string, error) {
	first, _, _ := strings.Cut(key, "/")
	if key == "" || path.Clean(key) != key || strings.HasPrefix(key, "/") || first == "." || first == ".." || first == StagingDir ||
		strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return "", fmt.Errorf("s3archive: %q is not an object key", key)
	}
	return a.prefix + key, nil
}

// Open returns the object under key from offset on (a ranged GET). A key that holds nothing is
// an error wrapping fs.ErrNotExist, as fsarchive's is; an offset at or past the end reads
// nothing.
func (a *Archive) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	k, err := a.objectKey(key)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("s3archive: open %s at %d: negative offset", key, offset)
	}
	in := &s3.GetObjectInput{Bucket: &a.bucket, Key: &k}
	if offset > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	}
	out, err := a.client.GetObject(ctx, in)
	switch {
	case err == nil:
		return out.Body, nil
	case isCode(err, "NoSuchKey", "NotFound"):
		return nil, fmt.Errorf("s3archive: open %s: %w", key, fs.ErrNotExist)
	case offset > 0 && isCode(err, "InvalidRange"):
		// The object is there and shorter than offset.
		return io.NopCloser(strings.NewReader("")), nil
	}
	return nil, fmt.Errorf("s3archive: open %s: %w", key, err)
}

// Remove deletes the object under key; S3 answers a key that holds nothing with success too.
func (a *Archive) Remove(ctx context.Context, key string) error {
	k, err := a.objectKey(key)
	if err != nil {
		return err
	}
	if _, err := a.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &a.bucket, Key: &k}); err != nil && !isCode(err, "NoSuchKey", "NotFound") {
		return fmt.Errorf("s3archive: remove %s: %w", key, err)
	}
	return nil
}

// Keys calls fn with every object key under the archive's prefix that begins with sub (keys as
// the archive names them, without the prefix), staging objects included, with its size and
// last modification.
func (a *Archive) Keys(ctx context.Context, sub string, fn func(key string, size int64, modified time.Time) error) error {
	p := s3.NewListObjectsV2Paginator(a.client, &s3.ListObjectsV2Input{Bucket: &a.bucket, Prefix: aws.String(a.prefix + sub)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("s3archive: list %s%s: %w", a.prefix, sub, err)
		}
		for _, o := range page.Contents {
			if err := fn(strings.TrimPrefix(aws.ToString(o.Key), a.prefix), aws.ToInt64(o.Size), aws.ToTime(o.LastModified)); err != nil {
				return err
			}
		}
	}
	return nil
}

// sweep removes the staging objects and aborts the multipart uploads under the prefix that
// began before cutoff: what writers that were killed left. Younger ones may belong to a write
// in progress on another node.
func (a *Archive) sweep(ctx context.Context, cutoff time.Time) error {
	var stale []string
	err := a.Keys(ctx, StagingDir+"/", func(key string, _ int64, modified time.Time) error {
		if modified.Before(cutoff) {
			stale = append(stale, a.prefix+key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range stale {
		if _, err := a.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &a.bucket, Key: &k}); err != nil {
			return fmt.Errorf("remove stale staging object %s: %w", k, err)
		}
	}
	aborted := 0
	in := &s3.ListMultipartUploadsInput{Bucket: &a.bucket, Prefix: aws.String(a.prefix)}
	for {
		out, err := a.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return fmt.Errorf("list multipart uploads under %q: %w", a.prefix, err)
		}
		for _, u := range out.Uploads {
			if !aws.ToTime(u.Initiated).Before(cutoff) {
				continue
			}
			if _, err := a.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &a.bucket, Key: u.Key, UploadId: u.UploadId}); err != nil && !isCode(err, "NoSuchUpload") {
				return fmt.Errorf("abort stale multipart upload of %s: %w", aws.ToString(u.Key), err)
			}
			aborted++
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
	if len(stale) > 0 || aborted > 0 {
		a.log.Warn().Int("staging_objects", len(stale)).Int("multipart_uploads", aborted).Str("bucket", a.bucket).Str("prefix", a.prefix).
			Dur("older_than", StaleAfter).Msg("removed what unfinished stores left in the object store (a crash or kill during a transfer)")
	}
	return nil
}

// isCode reports whether err is an S3 error with one of the codes.
func isCode(err error, codes ...string) bool {
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return contains(codes, "NoSuchKey")
	}
	var api smithy.APIError
	return errors.As(err, &api) && contains(codes, api.ErrorCode())
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// stagingKey returns a new random key in the staging area.
func (a *Archive) stagingKey() string {
	var b [16]byte
	rand.Read(b[:])
	return a.prefix + StagingDir + "/" + hex.EncodeToString(b[:])
}

// copySource is the x-amz-copy-source of an object of the bucket.
func (a *Archive) copySource(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return a.bucket + "/" + strings.Join(parts, "/")
}
