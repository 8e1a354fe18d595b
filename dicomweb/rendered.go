package dicomweb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"net/http"
	"strconv"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/seg/dicomseg"
	"github.com/espnode/espnode/seg/pixel"
	"github.com/espnode/espnode/store"
)

// maxRenderedBytes bounds an instance read whole to render it, and a SEG read to draw it.
const maxRenderedBytes = 1 << 30

// segColors are the colours the segments of an overlay are drawn in, by segment number.
var segColors = [][3]uint8{{255, 40, 40}, {40, 220, 40}, {40, 120, 255}, {255, 200, 0}, {220, 40, 220}, {0, 220, 220}}

// renderedType negotiates the media type of a rendered frame: JPEG unless PNG is preferred.
func renderedType(ranges []mediaRange) (string, bool) {
	for _, r := range ranges {
		switch {
		case r.mediaType == "image/png":
			return "image/png", true
		case r.matches("image/jpeg"):
			return "image/jpeg", true
		}
	}
	return "", false
}

// renderParams are the query parameters of a rendered request (PS3.18 §8.3.5) this node
// applies: quality, and overlay=seg, its own, which draws the SEGs stored for the image over it.
type renderParams struct {
	quality int
	overlay bool
}

func parseRenderParams(q map[string][]string) (renderParams, error) {
	p := renderParams{quality: 90}
	for k, v := range q {
		last := v[len(v)-1]
		switch k {
		case "quality":
			n, err := strconv.Atoi(last)
			if err != nil || n < 1 || n > 100 {
				return p, fmt.Errorf("quality=%q: want 1..100", last)
			}
			p.quality = n
		case "overlay":
			switch last {
			case "seg":
				p.overlay = true
			case "", "none":
			default:
				return p, fmt.Errorf("overlay=%q: this node draws seg", last)
			}
		case "viewport", "window", "iccprofile":
			return p, fmt.Errorf("the %s parameter is not supported", k)
		}
	}
	return p, nil
}

// rendered answers WADO-RS Retrieve Rendered Instance and Frames: one frame through the display
// pipeline of seg/pixel (modality and VOI LUT or window, colour conversion) as JPEG or PNG.
func (s *Server) rendered(w http.ResponseWriter, r *http.Request) {
	study, series, instance, ranges, err := target(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ct, ok := renderedType(ranges)
	if !ok {
		s.fail(w, r, statusErr(http.StatusNotAcceptable, "rendered frames are image/jpeg or image/png"))
		return
	}
	params, err := parseRenderParams(r.URL.Query())
	if err != nil {
		s.fail(w, r, statusErr(http.StatusBadRequest, "%v", err))
		return
	}
	frame := 1
	if fl := r.PathValue("frames"); fl != "" {
		n, err := strconv.Atoi(fl)
		if err != nil || n < 1 {
			s.fail(w, r, statusErr(http.StatusBadRequest, "rendered: one frame number, got %q", fl))
			return
		}
		frame = n
	}
	ctx := r.Context()
	insts, err := s.instances(ctx, study, series, instance)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	in := insts[0]
	img, err := s.render(ctx, in, frame)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if params.overlay {
		if err := s.drawSEGs(ctx, in, frame, img); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	var buf bytes.Buffer
	nrgba := toNRGBA(img)
	if ct == "image/png" {
		err = png.Encode(&buf, nrgba)
	} else {
		err = jpeg.Encode(&buf, nrgba, &jpeg.Options{Quality: params.quality})
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", ct)
	_, _ = w.Write(buf.Bytes())
}

// readWhole reads an instance's data set into memory, pixel data included.
func (s *Server) readWhole(ctx context.Context, in store.Instance) (*dcm.DataSet, error) {
	if in.Size > maxRenderedBytes {
		return nil, statusErr(http.StatusRequestEntityTooLarge, "instance of %d bytes is larger than this node renders", in.Size)
	}
	rc, _, err := s.archive.OpenDataSetAt(ctx, in.SOPInstanceUID, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	ds, err := dcm.ReadDataSet(bufio.NewReaderSize(rc, 256<<10), in.TransferSyntaxUID, dcm.ParseOptions{})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", in.SOPInstanceUID, err)
	}
	return ds, nil
}

// render decodes and renders frame (1-based) of an instance.
func (s *Server) render(ctx context.Context, in store.Instance, frame int) (*pixel.RGB, error) {
	ds, err := s.readWhole(ctx, in)
	if err != nil {
		return nil, err
	}
	im, err := pixel.NewImage(&dcm.File{Meta: dcm.FileMeta{TransferSyntaxUID: in.TransferSyntaxUID}, DataSet: ds})
	if err != nil {
		if errors.Is(err, pixel.ErrUnsupportedTransferSyntax) {
			return nil, statusErr(http.StatusNotAcceptable, "%v", err)
		}
		return nil, statusErr(http.StatusUnprocessableEntity, "cannot render %s: %v", in.SOPInstanceUID, err)
	}
	if frame > im.NumFrames() {
		return nil, statusErr(http.StatusNotFound, "frame %d: the instance has %d", frame, im.NumFrames())
	}
	f, err := im.Frame(frame - 1)
	if err != nil {
		if errors.Is(err, pixel.ErrUnsupportedTransferSyntax) {
			return nil, statusErr(http.StatusNotAcceptable, "%v", err)
		}
		return nil, statusErr(http.StatusUnprocessableEntity, "cannot decode frame %d of %s: %v", frame, in.SOPInstanceUID, err)
	}
	rgb, err := im.Render(f)
	if err != nil {
		return nil, statusErr(http.StatusUnprocessableEntity, "cannot render %s: %v", in.SOPInstanceUID, err)
	}
	return rgb, nil
}

// segSOPClasses are the SEG storage classes whose masks an overlay draws.
var segSOPClasses = []string{dicomseg.SegmentationStorage, dicomseg.LabelmapSegmentationStorage}

// drawSEGs draws over img the segments of every SEG of the study that has a frame for this
// source frame: filled at half strength, their edges at full.
func (s *Server) drawSEGs(ctx context.Context, src store.Instance, frame int, img *pixel.RGB) error {
	var segs []store.Instance
	err := s.archive.Find(ctx, store.Query{Level: store.ImageLevel, Matches: []store.Match{
		{Tag: dcm.StudyInstanceUID, Values: []string{src.StudyInstanceUID}},
		{Tag: dcm.SOPClassUID, Values: segSOPClasses},
	}}, func(rec store.Record) error {
		segs = append(segs, rec.Instance)
		return nil
	})
	if err != nil {
		return err
	}
	sourceFrame := 0
	if src.NumberOfFrames > 1 {
		sourceFrame = frame
	}
	for _, in := range segs {
		seg, err := s.decodeSEG(ctx, in)
		if err != nil {
			s.opts.Logger.Warn().Err(err).Str("sop_instance_uid", in.SOPInstanceUID).Msg("overlay: SEG not drawn")
			continue
		}
		if seg.Rows != img.Height || seg.Columns != img.Width {
			continue
		}
		if seg.Type == "LABELMAP" {
			if m := seg.Mask(0, src.SOPInstanceUID, sourceFrame); m != nil {
				drawMask(img, m, func(v byte) ([3]uint8, bool) { return segColors[int(v-1)%len(segColors)], v != 0 })
			}
			continue
		}
		threshold := byte(0)
		if seg.Type == "FRACTIONAL" {
			threshold = byte(seg.MaxFractional / 2)
		}
		for _, info := range seg.Segments {
			m := seg.Mask(info.Number, src.SOPInstanceUID, sourceFrame)
			if m == nil {
				continue
			}
			c := segColors[(info.Number-1+len(segColors))%len(segColors)]
			drawMask(img, m, func(v byte) ([3]uint8, bool) { return c, v > threshold })
		}
	}
	return nil
}

// decodeSEG reads and decodes a stored SEG.
func (s *Server) decodeSEG(ctx context.Context, in store.Instance) (*dicomseg.Segmentation, error) {
	if in.Size > maxRenderedBytes {
		return nil, fmt.Errorf("SEG of %d bytes", in.Size)
	}
	rc, _, err := s.archive.OpenDataSetAt(ctx, in.SOPInstanceUID, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if err := dcm.WriteFileMeta(&buf, dcm.FileMeta{MediaStorageSOPClassUID: in.SOPClassUID, MediaStorageSOPInstanceUID: in.SOPInstanceUID,
		TransferSyntaxUID: in.TransferSyntaxUID, ImplementationClassUID: s.opts.ImplementationClassUID}); err != nil {
		return nil, err
	}
	if _, err := buf.ReadFrom(rc); err != nil {
		return nil, err
	}
	return dicomseg.Decode(buf.Bytes())
}

// drawMask blends the pixels whose mask value counts (at) with its colour: half over the
// inside, whole on the edge (a pixel with a 4-neighbour outside the mask).
func drawMask(img *pixel.RGB, m []byte, at func(byte) ([3]uint8, bool)) {
	img.Gray = false // the colours make its channels differ
	w, h := img.Width, img.Height
	in := func(x, y int) bool {
		if x < 0 || y < 0 || x >= w || y >= h {
			return false
		}
		_, ok := at(m[y*w+x])
		return ok
	}
	for y := range h {
		for x := range w {
			c, ok := at(m[y*w+x])
			if !ok {
				continue
			}
			p := img.Pix[3*(y*w+x):]
			if !in(x-1, y) || !in(x+1, y) || !in(x, y-1) || !in(x, y+1) {
				p[0], p[1], p[2] = c[0], c[1], c[2]
				continue
			}
			for k := range 3 {
				p[k] = uint8((uint16(p[k]) + uint16(c[k])) / 2)
			}
		}
	}
}

func toNRGBA(img *pixel.RGB) *image.NRGBA {
	out := image.NewNRGBA(image.Rect(0, 0, img.Width, img.Height))
	for i := range img.Width * img.Height {
		copy(out.Pix[4*i:4*i+3], img.Pix[3*i:3*i+3])
		out.Pix[4*i+3] = 255
	}
	return out
}
