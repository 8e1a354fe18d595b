package dicomweb

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/seg/pixel"
	"github.com/espnode/espnode/store"
)

// multipartResponse writes a multipart/related response (RFC 2387) part by part; the status
// and headers go out with the first part.
type multipartResponse struct {
	w        http.ResponseWriter
	mw       *multipart.Writer
	partType string
	started  bool
}

func newMultipart(w http.ResponseWriter, partType string) *multipartResponse {
	return &multipartResponse{w: w, mw: multipart.NewWriter(w), partType: partType}
}

func (m *multipartResponse) part(contentType, location string) (io.Writer, error) {
	if !m.started {
		m.started = true
		m.w.Header().Set("Content-Type", fmt.Sprintf(`%s; type="%s"; boundary=%s`, typeMultipart, m.partType, m.mw.Boundary()))
		m.w.WriteHeader(http.StatusOK)
	}
	h := textproto.MIMEHeader{"Content-Type": {contentType}}
	if location != "" {
		h.Set("Content-Location", location)
	}
	return m.mw.CreatePart(h)
}

func (m *multipartResponse) close() error {
	if !m.started {
		return nil
	}
	return m.mw.Close()
}

// abort ends a response that failed after its first byte: the client must not take a
// truncated payload for a whole one, and only a broken connection tells it so.
func abort() { panic(http.ErrAbortHandler) }

// nativeSyntax reports the syntaxes whose pixel data is not encapsulated.
func nativeSyntax(ts string) bool {
	switch ts {
	case dcm.ImplicitVRLittleEndian, dcm.ExplicitVRLittleEndian, dcm.ExplicitVRBigEndian, dcm.DeflatedExplicitVRLittleEndian:
		return true
	}
	return false
}

// canConvert reports whether an instance stored in from can be sent in to: native syntaxes
// are re-encoded, and encapsulated pixel data that seg/pixel decodes is decoded, into explicit
// or implicit VR little endian.
func canConvert(from, to string) bool {
	if to != dcm.ExplicitVRLittleEndian && to != dcm.ImplicitVRLittleEndian {
		return false
	}
	return nativeSyntax(from) || pixel.Decodable(from)
}

// instanceSyntax negotiates the transfer syntax an instance stored in ts is sent in
// (PS3.18 §8.7.3.5): the first acceptable range's, where "*" takes the stored one and none
// means explicit VR little endian.
func instanceSyntax(ranges []mediaRange, ts string) (string, bool) {
	for _, r := range ranges {
		if !r.multipartOf(typeDICOM, typeDICOM) {
			continue
		}
		syn := r.syntax
		switch {
		case syn == "*":
			return ts, true
		case syn == "" && r.mediaType == "*/*":
			return ts, true
		case syn == "":
			syn = dcm.ExplicitVRLittleEndian
		}
		if syn == ts || canConvert(ts, syn) {
			return syn, true
		}
	}
	return "", false
}

// retrieve answers WADO-RS Retrieve Study, Series and Instance: multipart/related of Part-10
// objects.
func (s *Server) retrieve(w http.ResponseWriter, r *http.Request) {
	study, series, instance, ranges, err := target(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx := r.Context()
	insts, err := s.instances(ctx, study, series, instance)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	type send struct {
		in store.Instance
		ts string
	}
	var sends []send
	var refused []string
	for _, in := range insts {
		ts, ok := instanceSyntax(ranges, in.TransferSyntaxUID)
		if !ok {
			refused = append(refused, in.SOPInstanceUID)
			continue
		}
		sends = append(sends, send{in, ts})
	}
	if len(sends) == 0 {
		s.fail(w, r, statusErr(http.StatusNotAcceptable, "no acceptable media type: stored in %s, which this node cannot convert to what was asked for", insts[0].TransferSyntaxUID))
		return
	}
	if len(refused) > 0 {
		w.Header().Add("Warning", fmt.Sprintf("299 espnode: %q", fmt.Sprintf("%d instances left out: none of the acceptable transfer syntaxes can be provided for them", len(refused))))
	}
	mp := newMultipart(w, typeDICOM)
	base := s.baseURL(r)
	for _, snd := range sends {
		pw, err := mp.part(typeDICOM+"; transfer-syntax="+snd.ts, instanceURL(base, snd.in.StudyInstanceUID, snd.in.SeriesInstanceUID, snd.in.SOPInstanceUID))
		if err != nil {
			return
		}
		if err := s.writeInstance(ctx, pw, snd.in, snd.ts); err != nil {
			s.opts.Logger.Warn().Err(err).Str("sop_instance_uid", snd.in.SOPInstanceUID).Msg("WADO-RS: sending an instance failed")
			abort()
		}
	}
	_ = mp.close()
}

// writeInstance writes one instance as a Part-10 object in transfer syntax ts.
func (s *Server) writeInstance(ctx context.Context, w io.Writer, in store.Instance, ts string) error {
	rc, _, err := s.archive.OpenDataSetAt(ctx, in.SOPInstanceUID, 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	bw := bufio.NewWriterSize(w, 256<<10)
	if err := dcm.WriteFileMeta(bw, dcm.FileMeta{
		MediaStorageSOPClassUID:    in.SOPClassUID,
		MediaStorageSOPInstanceUID: in.SOPInstanceUID,
		TransferSyntaxUID:          ts,
		ImplementationClassUID:     s.opts.ImplementationClassUID,
		ImplementationVersionName:  s.opts.ImplementationVersionName,
	}); err != nil {
		return err
	}
	switch {
	case ts == in.TransferSyntaxUID:
		if _, err := io.Copy(bw, rc); err != nil {
			return err
		}
	case in.TransferSyntaxUID == dcm.ExplicitVRLittleEndian && ts == dcm.ImplicitVRLittleEndian:
		if err := dcm.ExplicitToImplicit(bw, bufio.NewReaderSize(rc, 256<<10)); err != nil {
			return err
		}
	default:
		ds, err := dcm.ReadDataSet(bufio.NewReaderSize(rc, 256<<10), in.TransferSyntaxUID, dcm.ParseOptions{})
		if err != nil {
			return err
		}
		if !nativeSyntax(in.TransferSyntaxUID) {
			if ds, err = decodePixelData(ds, in.TransferSyntaxUID); err != nil {
				return err
			}
		}
		dw, err := dcm.NewWriter(bw, ts)
		if err != nil {
			return err
		}
		if err := dw.WriteDataSet(ds); err != nil {
			return err
		}
		if err := dw.Close(); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// decodePixelData replaces encapsulated pixel data with the native frames seg/pixel decodes,
// and the attributes that describe them (a JPEG frame decodes to RGB).
func decodePixelData(ds *dcm.DataSet, ts string) (*dcm.DataSet, error) {
	im, err := pixel.NewImage(&dcm.File{Meta: dcm.FileMeta{TransferSyntaxUID: ts}, DataSet: ds})
	if err != nil {
		return nil, err
	}
	var native []byte
	photometric := im.Photometric
	for i := range im.NumFrames() {
		f, err := im.Frame(i)
		if err != nil {
			return nil, fmt.Errorf("frame %d: %w", i+1, err)
		}
		photometric = f.Photometric
		native = appendSamples(native, f, im.BitsAllocated, false)
	}
	out := dcm.NewDataSet(ds.Elements...)
	vr := "OB"
	if im.BitsAllocated > 8 {
		vr = "OW"
	}
	out.Set(dcm.NewBytes(dcm.PixelData, vr, native))
	out.Set(dcm.NewText(dcm.PhotometricInterpretation, "CS", photometric))
	if im.SamplesPerPixel > 1 {
		out.Set(dcm.NewUS(dcm.PlanarConfiguration, 0))
	}
	return out, nil
}

// appendSamples appends a decoded frame's stored values in little endian, BitsAllocated wide,
// interleaved or, when planar, one plane after the other.
func appendSamples(b []byte, f *pixel.Frame, bitsAllocated int, planar bool) []byte {
	px := f.Rows * f.Columns
	put := func(v int32) {
		switch bitsAllocated {
		case 8:
			b = append(b, byte(v))
		case 16:
			b = append(b, byte(v), byte(v>>8))
		default:
			b = append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
		}
	}
	if planar && f.Samples > 1 {
		for s := range f.Samples {
			for p := range px {
				put(f.Data[p*f.Samples+s])
			}
		}
		return b
	}
	for _, v := range f.Data {
		put(v)
	}
	return b
}

// metadata answers WADO-RS Retrieve Metadata: the JSON model of each instance, with its bulk
// data by reference.
func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	study, series, instance, ranges, err := target(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ct, ok := jsonType(ranges)
	if !ok {
		s.fail(w, r, statusErr(http.StatusNotAcceptable, "metadata is served as application/dicom+json only"))
		return
	}
	ctx := r.Context()
	insts, err := s.instances(ctx, study, series, instance)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	base := s.baseURL(r)
	w.Header().Set("Content-Type", ct)
	var buf bytes.Buffer
	buf.WriteByte('[')
	started := false
	for i, in := range insts {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := s.instanceJSON(ctx, &buf, in, base); err != nil {
			if !started {
				s.fail(w, r, err)
				return
			}
			s.opts.Logger.Warn().Err(err).Str("sop_instance_uid", in.SOPInstanceUID).Msg("WADO-RS metadata failed")
			abort()
		}
		if buf.Len() > 256<<10 {
			started = true
			if _, err := w.Write(buf.Bytes()); err != nil {
				return
			}
			buf.Reset()
		}
	}
	buf.WriteByte(']')
	_, _ = w.Write(buf.Bytes())
}

// isPixelData reports the pixel data elements, which metadata always gives by reference.
func isPixelData(t dcm.Tag) bool {
	return t == dcm.PixelData || t == dcm.NewTag(0x7FE0, 0x0008) || t == dcm.NewTag(0x7FE0, 0x0009)
}

// instanceJSON writes one instance's metadata.
func (s *Server) instanceJSON(ctx context.Context, buf *bytes.Buffer, in store.Instance, base string) error {
	rc, _, err := s.archive.OpenDataSetAt(ctx, in.SOPInstanceUID, 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	ds, err := dcm.ReadDataSet(bufio.NewReaderSize(rc, 64<<10), in.TransferSyntaxUID, dcm.ParseOptions{SkipValuesOver: s.opts.BulkDataThreshold})
	if err != nil {
		return fmt.Errorf("read %s: %w", in.SOPInstanceUID, err)
	}
	// The transfer syntax the data set is stored in is what frames come in with "*": clients
	// read it from the metadata (PS3.18 F.2: file meta is not part of the model, but OHIF and
	// others look for it).
	ds.Set(dcm.NewText(dcm.TransferSyntaxUID, "UI", in.TransferSyntaxUID))
	uri := instanceURL(base, in.StudyInstanceUID, in.SeriesInstanceUID, in.SOPInstanceUID) + "/bulkdata/"
	enc := &jsonEncoder{buf: buf, bulk: bulkRule(s.opts.BulkDataThreshold, uri)}
	enc.dataSet(ds, nil)
	return nil
}

// bulkRule decides which values metadata gives by reference, under uri: pixel data, values of
// the binary VRs longer than threshold, and values not read (longer than that whatever their VR).
// The reference is the element's path: tags and item indices.
func bulkRule(threshold int64, uri string) func(path []int, e *dcm.Element) string {
	return func(path []int, e *dcm.Element) string {
		switch {
		case e.Skipped, e.Fragments != nil, len(path) == 1 && isPixelData(e.Tag):
		case int64(len(e.Value)) > threshold:
			switch elementVR(e) {
			case "OB", "OD", "OF", "OL", "OV", "OW", "UN":
			default:
				return ""
			}
		default:
			return ""
		}
		var sb strings.Builder
		sb.WriteString(uri)
		for k, p := range path {
			if k > 0 {
				sb.WriteByte('/')
			}
			if k%2 == 0 {
				sb.WriteString(hex8(uint32(p)))
			} else {
				sb.WriteString(strconv.Itoa(p))
			}
		}
		return sb.String()
	}
}

// bulkdata answers WADO-RS Retrieve Bulkdata for the BulkDataURIs metadata gives: the value of
// the element at the path (tags and item indices), in little endian; pixel data as frames.
func (s *Server) bulkdata(w http.ResponseWriter, r *http.Request) {
	study, series, instance, err := uids(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	path, err := parseBulkPath(r.PathValue("path"))
	if err != nil {
		s.fail(w, r, statusErr(http.StatusBadRequest, "%v", err))
		return
	}
	ranges, err := accepts(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx := r.Context()
	insts, err := s.instances(ctx, study, series, instance)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	in := insts[0]
	multi, single := acceptsOctetStream(ranges)
	if len(path) == 1 && dcm.Tag(path[0]) == dcm.PixelData {
		l, err := s.layout(ctx, in)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if !multi && single && !l.encapsulated && l.frames == 1 {
			b, err := s.readFrame(ctx, in, l, 0)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			w.Header().Set("Content-Type", typeOctetStream)
			_, _ = w.Write(b)
			return
		}
		all := make([]int, l.frames)
		for i := range all {
			all[i] = i + 1
		}
		s.sendFrames(w, r, in, l, all, ranges)
		return
	}
	if !multi && !single {
		s.fail(w, r, statusErr(http.StatusNotAcceptable, "bulk data is served as application/octet-stream, in multipart/related or alone"))
		return
	}
	rc, _, err := s.archive.OpenDataSetAt(ctx, in.SOPInstanceUID, 0)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer rc.Close()
	ds, err := dcm.ReadDataSet(bufio.NewReaderSize(rc, 64<<10), in.TransferSyntaxUID, dcm.ParseOptions{Keep: dcm.NewTagSet(dcm.Tag(path[0]))})
	if err != nil {
		s.fail(w, r, fmt.Errorf("read %s: %w", in.SOPInstanceUID, err))
		return
	}
	e := findPath(ds, path)
	if e == nil || e.VR == "SQ" || e.Fragments != nil {
		s.fail(w, r, statusErr(http.StatusNotFound, "no bulk data at %s", r.PathValue("path")))
		return
	}
	v := e.Value
	if n := unitOf(elementVR(e)); e.BigEndian && n > 1 {
		v = swap(v, n)
	}
	if !multi {
		w.Header().Set("Content-Type", typeOctetStream)
		_, _ = w.Write(v)
		return
	}
	mp := newMultipart(w, typeOctetStream)
	pw, err := mp.part(typeOctetStream, "")
	if err != nil {
		return
	}
	if _, err := pw.Write(v); err != nil {
		return
	}
	_ = mp.close()
}

// acceptsOctetStream reports whether the ranges admit application/octet-stream in
// multipart/related, and alone; the first range that admits either decides which is preferred.
func acceptsOctetStream(ranges []mediaRange) (multi, single bool) {
	for _, r := range ranges {
		if r.mediaType != "*/*" && r.multipartOf(typeOctetStream, typeOctetStream) {
			return true, false
		}
		if r.matches(typeOctetStream) {
			return false, true
		}
	}
	return false, false
}

// parseBulkPath reads a bulk data path: tags (eight hex digits) alternating with item indices.
func parseBulkPath(p string) ([]int, error) {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	if len(parts)%2 == 0 || len(parts) > 2*64+1 {
		return nil, fmt.Errorf("bulk data path %q: want tag[/item/tag]...", p)
	}
	out := make([]int, len(parts))
	for i, s := range parts {
		if i%2 == 0 {
			if len(s) != 8 {
				return nil, fmt.Errorf("bulk data path %q: %q is not a tag", p, s)
			}
			n, err := strconv.ParseUint(s, 16, 32)
			if err != nil {
				return nil, fmt.Errorf("bulk data path %q: %q is not a tag", p, s)
			}
			out[i] = int(n)
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 1<<20 {
			return nil, fmt.Errorf("bulk data path %q: %q is not an item index", p, s)
		}
		out[i] = n
	}
	return out, nil
}

// findPath finds the element at a bulk data path.
func findPath(ds *dcm.DataSet, path []int) *dcm.Element {
	for k := 0; ; k += 2 {
		e := ds.Find(dcm.Tag(path[k]))
		if e == nil || k == len(path)-1 {
			return e
		}
		if path[k+1] >= len(e.Items) {
			return nil
		}
		ds = e.Items[path[k+1]]
	}
}
