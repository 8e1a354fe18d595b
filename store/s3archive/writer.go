package s3archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/espnode/espnode/store"
)

// contentType is what the archive's objects are (PS3.10 files).
const contentType = "application/dicom"

// writer is one object being written. It buffers up to one part. An object that ends within its
// first part is PUT once under its key at Commit. A larger one becomes a multipart upload when
// its first part fills: to the key Name gave, or else to a staging key, which Commit completes
// and copies to the key on the server before removing it.
type writer struct {
	a   *Archive
	ctx context.Context // Create's, for the parts uploaded while writing
	buf []byte

	// The multipart upload, once begun.
	uploadKey, uploadID string
	parts               []types.CompletedPart
	size                int64 // bytes uploaded in parts

	named  string // the key Name gave; "" until then
	staged bool   // the upload was completed under its staging key, which still exists
	done   bool
	err    error // a failed part upload: the object is lost, Commit fails

	// peak is the most the buffer held, for the tests of the memory bound.
	peak int
}

var _ store.ObjectNamer = (*writer)(nil)

// Create starts an object; nothing reaches the object store before its first part is full.
func (a *Archive) Create(ctx context.Context) (store.ObjectWriter, error) {
	return &writer{a: a, ctx: ctx}, nil
}

// Name tells the writer the key Commit will be given, before the object outgrows one part:
// a larger object is then uploaded to that key directly and Commit copies nothing. Commit with
// another key fails. Named after the first part was uploaded, it does nothing.
func (w *writer) Name(key string) error {
	if _, err := w.a.objectKey(key); err != nil {
		return err
	}
	if w.uploadID == "" {
		w.named = key
	}
	return nil
}

func (w *writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("s3archive: write after commit or abort")
	}
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		room := int(w.a.partSize) - len(w.buf)
		if room == 0 {
			if err := w.uploadPart(w.ctx); err != nil {
				w.err = err
				return n, err
			}
			continue
		}
		chunk := p[:min(room, len(p))]
		w.grow(len(chunk))
		w.buf = append(w.buf, chunk...)
		w.peak = max(w.peak, len(w.buf))
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// grow makes room for n more bytes, doubling up to the part size and never past it, so that a
// small object costs little and no writer holds more than one part.
func (w *writer) grow(n int) {
	need := len(w.buf) + n
	if need <= cap(w.buf) {
		return
	}
	c := min(max(2*cap(w.buf), need, 64<<10), int(w.a.partSize))
	nb := make([]byte, len(w.buf), c)
	copy(nb, w.buf)
	w.buf = nb
}

// uploadPart sends the buffer as the next part, beginning the multipart upload with the first.
func (w *writer) uploadPart(ctx context.Context) error {
	a := w.a
	if w.uploadID == "" {
		key := a.stagingKey()
		if w.named != "" {
			key, _ = a.objectKey(w.named)
		}
		out, err := a.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
			Bucket: &a.bucket, Key: &key, ContentType: aws.String(contentType),
		})
		if err != nil {
			return fmt.Errorf("s3archive: begin multipart upload: %w", err)
		}
		w.uploadKey, w.uploadID = key, aws.ToString(out.UploadId)
	}
	num := int32(len(w.parts) + 1)
	if num > maxParts {
		return fmt.Errorf("s3archive: object over %d parts of %d bytes: raise the part size", maxParts, a.partSize)
	}
	out, err := a.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: &a.bucket, Key: &w.uploadKey, UploadId: &w.uploadID, PartNumber: &num,
		Body: bytes.NewReader(w.buf), ContentLength: aws.Int64(int64(len(w.buf))),
	})
	if err != nil {
		return fmt.Errorf("s3archive: upload part %d of %s: %w", num, w.uploadKey, err)
	}
	w.parts = append(w.parts, types.CompletedPart{ETag: out.ETag, PartNumber: &num})
	w.size += int64(len(w.buf))
	w.buf = w.buf[:0]
	return nil
}

// Commit makes what was written the object under key, replacing any there, and returns once the
// object store acknowledged it: a PutObject, or the completion of the multipart upload (and,
// from the staging key, the server-side copy). Each of these replaces the key's object whole.
func (w *writer) Commit(ctx context.Context, key string) error {
	if w.done {
		return errors.New("s3archive: object already committed or aborted")
	}
	if w.err != nil {
		return w.err
	}
	final, err := w.a.objectKey(key)
	if err != nil {
		return err
	}
	if w.named != "" && w.named != key {
		return fmt.Errorf("s3archive: commit %s: the object was named %s", key, w.named)
	}
	a := w.a
	if w.uploadID == "" {
		_, err := a.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &a.bucket, Key: &final, Body: bytes.NewReader(w.buf),
			ContentLength: aws.Int64(int64(len(w.buf))), ContentType: aws.String(contentType),
		})
		if err != nil {
			return fmt.Errorf("s3archive: commit %s: %w", key, err)
		}
		w.finish()
		return nil
	}
	if !w.staged {
		if len(w.buf) > 0 {
			if err := w.uploadPart(ctx); err != nil {
				w.err = err
				return err
			}
		}
		_, err := a.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket: &a.bucket, Key: &w.uploadKey, UploadId: &w.uploadID,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: w.parts},
		})
		if err != nil {
			return fmt.Errorf("s3archive: commit %s: complete multipart upload: %w", key, err)
		}
		if w.uploadKey == final {
			w.finish()
			return nil
		}
		w.staged = true
	}
	if err := a.copyObject(ctx, w.uploadKey, final, w.size); err != nil {
		return fmt.Errorf("s3archive: commit %s: %w", key, err)
	}
	w.finish()
	// The object is committed; a staging object left by a failed delete is only garbage, which
	// the sweep of a later Open removes.
	if _, err := a.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &a.bucket, Key: &w.uploadKey}); err != nil {
		a.log.Warn().Err(err).Str("staging_key", w.uploadKey).Str("key", key).Msg("cannot remove a staging object")
	}
	return nil
}

func (w *writer) finish() {
	w.done = true
	w.buf = nil
}

// copyObject copies src to dst on the server: one CopyObject up to S3's 5 GiB limit, ranges of
// a multipart upload past it.
func (a *Archive) copyObject(ctx context.Context, src, dst string, size int64) error {
	source := a.copySource(src)
	if size <= a.copyLimit {
		_, err := a.client.CopyObject(ctx, &s3.CopyObjectInput{
			Bucket: &a.bucket, Key: &dst, CopySource: &source,
			ContentType: aws.String(contentType), MetadataDirective: types.MetadataDirectiveReplace,
		})
		if err != nil {
			return fmt.Errorf("copy from %s: %w", src, err)
		}
		return nil
	}
	up, err := a.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &a.bucket, Key: &dst, ContentType: aws.String(contentType)})
	if err != nil {
		return fmt.Errorf("copy from %s: begin multipart upload: %w", src, err)
	}
	abort := func(err error) error {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		if _, aerr := a.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &a.bucket, Key: &dst, UploadId: up.UploadId}); aerr != nil {
			a.log.Warn().Err(aerr).Str("key", dst).Msg("cannot abort a multipart copy; the sweep of a later start will")
		}
		return err
	}
	var parts []types.CompletedPart
	for off := int64(0); off < size; off += a.copyPart {
		num := int32(len(parts) + 1)
		end := min(off+a.copyPart, size) - 1
		out, err := a.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
			Bucket: &a.bucket, Key: &dst, UploadId: up.UploadId, PartNumber: &num,
			CopySource: &source, CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", off, end)),
		})
		if err != nil {
			return abort(fmt.Errorf("copy from %s: part %d: %w", src, num, err))
		}
		parts = append(parts, types.CompletedPart{ETag: out.CopyPartResult.ETag, PartNumber: &num})
	}
	_, err = a.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &a.bucket, Key: &dst, UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return abort(fmt.Errorf("copy from %s: complete: %w", src, err))
	}
	return nil
}

// Abort drops the buffer and removes what reached the object store: the multipart upload, or
// the staging object it was completed into. After Commit it does nothing.
func (w *writer) Abort() error {
	if w.done {
		return nil
	}
	w.finish()
	if w.uploadID == "" {
		return nil
	}
	a := w.a
	ctx, cancel := context.WithTimeout(context.Background(), abortTimeout)
	defer cancel()
	if w.staged {
		if _, err := a.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &a.bucket, Key: &w.uploadKey}); err != nil {
			return fmt.Errorf("s3archive: abort: remove staging object %s: %w", w.uploadKey, err)
		}
		return nil
	}
	if _, err := a.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &a.bucket, Key: &w.uploadKey, UploadId: &w.uploadID}); err != nil && !isCode(err, "NoSuchUpload") {
		return fmt.Errorf("s3archive: abort multipart upload of %s: %w", w.uploadKey, err)
	}
	return nil
}
