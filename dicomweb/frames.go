package dicomweb

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/seg/pixel"
	"github.com/espnode/espnode/store"
)

// codecType is the media type PS3.18 Table 8.7.3-5 gives the frames of an encapsulated transfer
// syntax; "" for the native ones (application/octet-stream).
func codecType(ts string) string {
	switch ts {
	case dcm.JPEGBaseline8Bit, "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70":
		return "image/jpeg"
	case "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81":
		return "image/jls"
	case "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91":
		return "image/jp2"
	case "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93":
		return "image/jpx"
	case "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203":
		return "image/jphc"
	case "1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.111", "1.2.840.10008.1.2.4.112":
		return "image/jxl"
	case dcm.RLELossless:
		return "image/dicom-rle"
	case "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101", "1.2.840.10008.1.2.4.100.1", "1.2.840.10008.1.2.4.101.1":
		return "video/mpeg"
	case "1.2.840.10008.1.2.4.102", "1.2.840.10008.1.2.4.103", "1.2.840.10008.1.2.4.104", "1.2.840.10008.1.2.4.105", "1.2.840.10008.1.2.4.106",
		"1.2.840.10008.1.2.4.102.1", "1.2.840.10008.1.2.4.103.1", "1.2.840.10008.1.2.4.104.1", "1.2.840.10008.1.2.4.105.1", "1.2.840.10008.1.2.4.106.1":
		return "video/mp4"
	case "1.2.840.10008.1.2.4.107", "1.2.840.10008.1.2.4.108":
		return "video/H265"
	}
	return ""
}

// frameRep is how frames go out: as stored (the encapsulated frames, or native ones in little
// endian), or decoded from their encapsulated syntax to native.
type frameRep struct {
	decode   bool
	partType string // media type of each part
	syntax   string // its transfer-syntax parameter
}

func (f frameRep) contentType() string { return f.partType + "; transfer-syntax=" + f.syntax }

// frameRepresentation negotiates frames (PS3.18 §8.7.3.5): application/octet-stream is native
// pixel data in explicit VR little endian unless its transfer-syntax says otherwise ("*": the
// stored syntax); the codec's own media type is the stored frames. Native data is always sent as
// native; encapsulated data is decoded for a client that wants it uncompressed when seg/pixel
// decodes the syntax.
func frameRepresentation(ranges []mediaRange, l *pixelLayout) (frameRep, bool) {
	native := frameRep{partType: typeOctetStream, syntax: dcm.ExplicitVRLittleEndian}
	for _, r := range ranges {
		if !l.encapsulated {
			if r.multipartOf(typeOctetStream, typeOctetStream) && (r.syntax == "" || r.syntax == "*" || r.syntax == dcm.ExplicitVRLittleEndian) {
				return native, true
			}
			continue
		}
		stored := frameRep{partType: typeOctetStream, syntax: l.ts}
		mt := codecType(l.ts)
		switch {
		case r.mediaType == "*/*":
			if mt != "" {
				stored.partType = mt
			}
			return stored, true
		case r.multipartOf(typeOctetStream, typeOctetStream):
			switch r.syntax {
			case "*", l.ts:
				return stored, true
			case "", dcm.ExplicitVRLittleEndian:
				if pixel.Decodable(l.ts) {
					native.decode = true
					return native, true
				}
			}
		case mt != "" && r.multipartOf(mt, typeOctetStream) && (r.syntax == "" || r.syntax == "*" || r.syntax == l.ts):
			stored.partType = mt
			return stored, true
		}
	}
	return frameRep{}, false
}

// maxFramesPerRequest bounds the frame list of one request.
const maxFramesPerRequest = 1 << 16

// parseFrameList reads a frame list: 1-based numbers separated by commas.
func parseFrameList(s string, frames int) ([]int, error) {
	parts := strings.Split(s, ",")
	if len(parts) > maxFramesPerRequest {
		return nil, fmt.Errorf("more than %d frames in one request", maxFramesPerRequest)
	}
	out := make([]int, 0, len(parts))
	for _, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("frame list %q: %q is not a frame number", s, p)
		}
		if n > frames {
			return nil, statusErr(http.StatusNotFound, "frame %d: the instance has %d", n, frames)
		}
		out = append(out, n)
	}
	return out, nil
}

// frames answers WADO-RS Retrieve Frames.
func (s *Server) frames(w http.ResponseWriter, r *http.Request) {
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
	in := insts[0]
	l, err := s.layout(ctx, in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !l.hasPixels {
		s.fail(w, r, statusErr(http.StatusNotFound, "instance %s has no pixel data", in.SOPInstanceUID))
		return
	}
	list, err := parseFrameList(r.PathValue("frames"), l.frames)
	if err != nil {
		if _, ok := err.(*httpError); !ok {
			err = statusErr(http.StatusBadRequest, "%v", err)
		}
		s.fail(w, r, err)
		return
	}
	s.sendFrames(w, r, in, l, list, ranges)
}

// sendFrames writes the frames (1-based numbers) as multipart/related parts.
func (s *Server) sendFrames(w http.ResponseWriter, r *http.Request, in store.Instance, l *pixelLayout, list []int, ranges []mediaRange) {
	rep, ok := frameRepresentation(ranges, l)
	if !ok {
		s.fail(w, r, statusErr(http.StatusNotAcceptable, "frames of this instance are available as %s (stored in %s), or uncompressed where this node decodes that syntax",
			codecType(l.ts)+" or application/octet-stream", l.ts))
		return
	}
	ctx := r.Context()
	// Frames are read (and decoded) before the status goes out for the first one, so that a
	// failure can still be answered as one.
	first, err := s.frameBytes(r, in, l, list[0], rep)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	mp := newMultipart(w, rep.partType)
	for k, n := range list {
		b := first
		if k > 0 {
			if b, err = s.frameBytes(r, in, l, n, rep); err != nil {
				s.opts.Logger.Warn().Err(err).Str("sop_instance_uid", in.SOPInstanceUID).Int("frame", n).Msg("WADO-RS frames failed")
				abort()
			}
		}
		pw, err := mp.part(rep.contentType(), "")
		if err != nil {
			return
		}
		if _, err := pw.Write(b); err != nil {
			return
		}
		if ctx.Err() != nil {
			return
		}
	}
	_ = mp.close()
}

// frameBytes reads frame n (1-based) in the representation.
func (s *Server) frameBytes(r *http.Request, in store.Instance, l *pixelLayout, n int, rep frameRep) ([]byte, error) {
	b, err := s.readFrame(r.Context(), in, l, n-1)
	if err != nil || !rep.decode {
		return b, err
	}
	im, err := pixel.NewEncapsulatedImage(pixel.Info{
		TransferSyntax: l.ts, Rows: l.rows, Columns: l.cols, SamplesPerPixel: l.spp,
		BitsAllocated: l.bitsAllocated, BitsStored: l.bitsStored, HighBit: l.highBit,
		PixelRepresentation: l.pixelRep, PlanarConfiguration: l.planar, NumberOfFrames: 1, Photometric: l.photometric,
	}, nil, [][]byte{b})
	if err != nil {
		return nil, err
	}
	f, err := im.Frame(0)
	if err != nil {
		return nil, fmt.Errorf("decode frame %d: %w", n, err)
	}
	if f.Photometric != l.photometric {
		// The bytes would not mean what the metadata says (a JPEG decodes YBR to RGB).
		return nil, statusErr(http.StatusNotAcceptable, "frame %d decodes to %s, not the %s its metadata gives: ask for %s", n, f.Photometric, l.photometric, l.ts)
	}
	return appendSamples(nil, f, l.bitsAllocated, l.planar == 1), nil
}
