package dicomweb

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/store"
)

// Failure and warning reasons of a STOW-RS response (PS3.18 §10.5.3, the DIMSE statuses of
// PS3.4 B.2.3).
const (
	reasonProcessingFailure  = 0x0110
	reasonDuplicate          = 0x0111
	reasonOutOfResources     = 0xA700
	reasonDoesNotMatch       = 0xA900
	reasonCannotUnderstand   = 0xC000
	reasonSyntaxNotSupported = 0xC122
)

// maxStudyHead bounds what is held of an instance before it is stored, to check its Study
// Instance UID against the path's: the elements before (0020,000D), never pixel data.
const maxStudyHead = 16 << 20

// stowResult is the outcome of one part.
type stowResult struct {
	class, instance string
	study, series   string
	reason          int // 0: stored
	comment         string
	err             error // the store's, when it failed
}

// stow answers STOW-RS Store Instances: every part of a multipart/related application/dicom
// body is one Part-10 instance, stored through the Storer, which returns only when it is durable
// (and, with the pipeline, its job created): Success means what it means for C-STORE.
func (s *Server) stow(w http.ResponseWriter, r *http.Request) {
	study, _, _, err := uids(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ranges, err := accepts(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ct, ok := jsonType(ranges)
	if !ok {
		s.fail(w, r, statusErr(http.StatusNotAcceptable, "the STOW-RS response is application/dicom+json"))
		return
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != typeMultipart || params["boundary"] == "" {
		s.fail(w, r, statusErr(http.StatusUnsupportedMediaType, "STOW-RS takes multipart/related; type=\"application/dicom\" with a boundary"))
		return
	}
	if t := strings.ToLower(params["type"]); t != "" && t != typeDICOM {
		s.fail(w, r, statusErr(http.StatusUnsupportedMediaType, "STOW-RS takes parts of application/dicom, not %s", t))
		return
	}
	body := http.MaxBytesReader(w, r.Body, s.opts.MaxStoreBytes)
	mr := multipart.NewReader(body, params["boundary"])
	var results []stowResult
	var bodyErr error
	for {
		part, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			bodyErr = err
			break
		}
		res := s.storePart(r, part, study)
		// What the store did not read of the part is discarded; the next part starts after it.
		_, _ = io.Copy(io.Discard, part)
		results = append(results, res)
		if errors.As(res.err, new(*http.MaxBytesError)) {
			bodyErr = res.err
			break
		}
		if res.reason != 0 {
			s.opts.Logger.Warn().Str("sop_instance_uid", res.instance).Str("reason", fmt.Sprintf("%04X", res.reason)).
				Str("comment", res.comment).Str("remote", r.RemoteAddr).Msg("STOW-RS: instance not stored")
		} else {
			s.opts.Logger.Info().Str("sop_instance_uid", res.instance).Str("study_uid", res.study).Str("remote", r.RemoteAddr).Msg("STOW-RS: stored")
		}
	}
	stored := 0
	for _, res := range results {
		if res.reason == 0 {
			stored++
		}
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(bodyErr, &tooLarge) && stored == 0:
		s.fail(w, r, statusErr(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", s.opts.MaxStoreBytes))
		return
	case bodyErr != nil && len(results) == 0:
		s.fail(w, r, statusErr(http.StatusBadRequest, "multipart body: %v", bodyErr))
		return
	case len(results) == 0:
		s.fail(w, r, statusErr(http.StatusBadRequest, "no instance in the request"))
		return
	}
	status := http.StatusOK
	switch {
	case stored == 0:
		status = http.StatusConflict
	case stored < len(results) || bodyErr != nil:
		status = http.StatusAccepted
	}
	var buf bytes.Buffer
	(&jsonEncoder{buf: &buf}).dataSet(s.stowResponse(r, study, results), nil)
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// storePart stores one part.
func (s *Server) storePart(r *http.Request, part *multipart.Part, study string) stowResult {
	var res stowResult
	fail := func(reason int, format string, args ...any) stowResult {
		res.reason, res.comment = reason, fmt.Sprintf(format, args...)
		return res
	}
	if pt := part.Header.Get("Content-Type"); pt != "" {
		mt, _, err := mime.ParseMediaType(pt)
		if err != nil || mt != typeDICOM {
			return fail(reasonCannotUnderstand, "part of type %q: only application/dicom is stored", pt)
		}
	}
	br := bufio.NewReaderSize(part, 64<<10)
	meta, err := dcm.ReadFileMeta(br)
	res.class, res.instance = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
	if err != nil {
		return fail(reasonCannotUnderstand, "file meta: %v", err)
	}
	ts := meta.TransferSyntaxUID
	if syn, ok := dcm.LookupTransferSyntax(ts); !ok || !syn.Storable || (s.syntax != nil && !s.syntax[ts]) {
		return fail(reasonSyntaxNotSupported, "transfer syntax %s is not accepted", ts)
	}
	data := io.Reader(br)
	if study != "" {
		// STOW-RS to a study stores only that study's instances: read the data set up to its
		// Study Instance UID before anything is stored, and give the store the bytes read then.
		var head bytes.Buffer
		ds, err := dcm.ReadDataSet(io.TeeReader(io.LimitReader(br, maxStudyHead), &head), ts,
			dcm.ParseOptions{Keep: dcm.NewTagSet(dcm.StudyInstanceUID), StopAfter: dcm.StudyInstanceUID, SkipValuesOver: 1 << 10})
		if err != nil && !errors.Is(err, io.EOF) {
			return fail(reasonCannotUnderstand, "data set: %v", err)
		}
		if got := ds.String(dcm.StudyInstanceUID); got != study {
			return fail(reasonDoesNotMatch, "instance of study %q posted to study %s", got, study)
		}
		data = io.MultiReader(&head, br)
	}
	in, err := s.storer.Put(r.Context(), store.PutRequest{
		SOPClassUID:       meta.MediaStorageSOPClassUID,
		SOPInstanceUID:    meta.MediaStorageSOPInstanceUID,
		TransferSyntaxUID: ts,
		RemoteAddr:        r.RemoteAddr,
		Data:              data,
	})
	res.study, res.series, res.err = in.StudyInstanceUID, in.SeriesInstanceUID, err
	switch {
	case err == nil:
		return res
	case errors.Is(err, store.ErrMismatch):
		return fail(reasonDoesNotMatch, "%v", err)
	case errors.Is(err, store.ErrInvalidUID), errors.Is(err, store.ErrCannotUnderstand):
		return fail(reasonCannotUnderstand, "%v", err)
	case errors.Is(err, store.ErrDuplicate):
		return fail(reasonDuplicate, "%v", err)
	case errors.Is(err, store.ErrOutOfResources), errors.As(err, new(*http.MaxBytesError)):
		return fail(reasonOutOfResources, "%v", err)
	}
	return fail(reasonProcessingFailure, "%v", err)
}

// stowResponse is the Store Instances Response Module (PS3.18 Table 10.5.3-3): the instances
// stored, with where to retrieve them, and those not stored, with why.
func (s *Server) stowResponse(r *http.Request, study string, results []stowResult) *dcm.DataSet {
	base := s.baseURL(r)
	var ok, failed []*dcm.DataSet
	studies := map[string]bool{}
	for _, res := range results {
		item := dcm.NewDataSet(
			dcm.NewText(dcm.ReferencedSOPClassUID, "UI", res.class),
			dcm.NewText(dcm.ReferencedSOPInstanceUID, "UI", res.instance),
		)
		if res.reason != 0 {
			item.Set(dcm.NewUS(dcm.FailureReason, uint16(res.reason)))
			failed = append(failed, item)
			continue
		}
		studies[res.study] = true
		item.Set(dcm.NewText(dcm.RetrieveURL, "UR", instanceURL(base, res.study, res.series, res.instance)))
		ok = append(ok, item)
	}
	ds := &dcm.DataSet{}
	if study == "" && len(studies) == 1 {
		for st := range studies {
			study = st
		}
	}
	if study != "" {
		ds.Set(dcm.NewText(dcm.RetrieveURL, "UR", studyURL(base, study)))
	}
	if len(failed) > 0 {
		ds.Set(dcm.NewSequence(dcm.FailedSOPSequence, failed...))
	}
	if len(ok) > 0 {
		ds.Set(dcm.NewSequence(dcm.ReferencedSOPSequence, ok...))
	}
	return ds
}
