package dicomweb

import (
	"bytes"
	"image/jpeg"
	"image/png"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/dcm/dcmtest"
	"github.com/espnode/espnode/seg/dicomseg"
	"github.com/espnode/espnode/seg/pixel"
)

// TestLayoutAgreesWithSplitFrames reads the frames of every shared file with encapsulated pixel
// data through the layout (one seek per frame) and compares them with what seg/pixel's
// SplitFrames makes of the same fragments read whole; native frames with the pixel data's slices.
func TestLayoutAgreesWithSplitFrames(t *testing.T) {
	f := newFixture(t, Options{})
	checked := 0
	for _, p := range sharedFiles(t) {
		file := readFile(t, p)
		e := file.DataSet.Find(dcm.PixelData)
		if e == nil {
			continue
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		in, err := f.tryPut(raw)
		if err != nil {
			continue // a file the store refuses (its meta and data set disagree)
		}
		l, err := f.server.layout(t.Context(), in)
		frames, _ := file.DataSet.Int(dcm.NumberOfFrames)
		frames = max(frames, 1)
		var want [][]byte
		var werr error
		if e.Fragments != nil {
			offsets, _ := e.OffsetTable()
			want, werr = pixel.SplitFrames(e.Fragments[1:], offsets, int(frames), pixel.FrameStart(file.Meta.TransferSyntaxUID))
		}
		if (err != nil) != (werr != nil) {
			t.Errorf("%s: layout error %v, SplitFrames error %v", p, err, werr)
			continue
		}
		if err != nil {
			continue
		}
		for i := range int(frames) {
			got, err := f.server.readFrame(t.Context(), in, l, i)
			if err != nil {
				t.Errorf("%s frame %d: %v", p, i+1, err)
				break
			}
			if e.Fragments != nil {
				if !bytes.Equal(got, want[i]) {
					t.Errorf("%s frame %d: %d bytes, SplitFrames %d", p, i+1, len(got), len(want[i]))
				}
				continue
			}
			size := int(l.frameBytes())
			if l.bitsAllocated == 1 || file.TransferSyntax().BigEndian {
				continue // checked by TestFramesNative
			}
			if !bytes.Equal(got, e.Value[i*size:(i+1)*size]) {
				t.Errorf("%s frame %d differs from its slice of the pixel data", p, i+1)
			}
		}
		checked++
	}
	if checked < 60 {
		t.Fatalf("%d shared files checked", checked)
	}
}

// TestFramesNative retrieves native frames: little endian from a big endian file, and 1-bit
// frames that do not start on a byte boundary, each starting at its first bit.
func TestFramesNative(t *testing.T) {
	f := newFixture(t, Options{})
	be := f.put(shared(t, "CT", "cornerstone_CT_evrbe.dcm"))
	le := readFile(t, shared(t, "CT", "cornerstone_CT_evrle.dcm"))
	rsp, body := f.get(instancePath(be)+"/frames/1", `multipart/related; type="application/octet-stream"`)
	ps := parts(t, rsp, body)
	if rsp.StatusCode != 200 || len(ps) != 1 || ps[0].contentType != "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1" {
		t.Fatalf("frames of the big endian CT: %s, %d parts", rsp.Status, len(ps))
	}
	if !bytes.Equal(ps[0].body, le.DataSet.Bytes(dcm.PixelData)) {
		t.Error("frame 1 of the big endian CT is not the little endian CT's pixel data")
	}

	// A 1-bit image of three 3x3 frames: 9 bits each, so frames 2 and 3 start mid-byte.
	bits := []byte{0b10100101, 0b11000011, 0b00111100, 0b00000101}
	in := f.putBytes(synthetic(t, 3, 3, 3, 1, bits))
	rsp, body = f.get(instancePath(in)+"/frames/2,3,1", "multipart/related; type=application/octet-stream")
	ps = parts(t, rsp, body)
	want := [][]byte{realignBits(bits, 9, 9), realignBits(bits, 18, 9), realignBits(bits, 0, 9)}
	for k := range want {
		if k >= len(ps) || !bytes.Equal(ps[k].body, want[k]) {
			t.Fatalf("1-bit frames: got %v, want %v", ps, want)
		}
	}
	if got := realignBits(bits, 9, 9); !bytes.Equal(got, []byte{0b01100001, 0}) {
		t.Fatalf("realignBits: %08b", got)
	}
	for _, bad := range []string{"0", "4", "1,x", ""} {
		if rsp, _ := f.get(instancePath(in)+"/frames/"+bad, ""); rsp.StatusCode != 400 && rsp.StatusCode != 404 {
			t.Errorf("frame list %q: %s", bad, rsp.Status)
		}
	}
}

// synthetic makes a Part-10 Secondary Capture of native frames.
func synthetic(t testing.TB, rows, cols, frames, bitsAllocated int, pixels []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := dcm.WriteFileMeta(&buf, dcm.FileMeta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.7", MediaStorageSOPInstanceUID: "1.2.3.4.5.6",
		TransferSyntaxUID: dcm.ExplicitVRLittleEndian, ImplementationClassUID: "1.2.3"}); err != nil {
		t.Fatal(err)
	}
	return append(buf.Bytes(), syntheticDataSet(t, rows, cols, frames, bitsAllocated, pixels)...)
}

// syntheticDataSet is synthetic's data set, in explicit VR little endian.
func syntheticDataSet(t testing.TB, rows, cols, frames, bitsAllocated int, pixels []byte) []byte {
	t.Helper()
	ds := dcm.NewDataSet(
		dcm.NewText(dcm.SOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.7"),
		dcm.NewText(dcm.SOPInstanceUID, "UI", "1.2.3.4.5.6"),
		dcm.NewText(dcm.StudyInstanceUID, "UI", "1.2.3.4"),
		dcm.NewText(dcm.SeriesInstanceUID, "UI", "1.2.3.4.5"),
		dcm.NewText(dcm.Modality, "CS", "OT"),
		dcm.NewText(dcm.PatientName, "PN", "Synthetic^Image"),
		dcm.NewUS(dcm.SamplesPerPixel, 1),
		dcm.NewText(dcm.PhotometricInterpretation, "CS", "MONOCHROME2"),
		dcm.NewIS(dcm.NumberOfFrames, frames),
		dcm.NewUS(dcm.Rows, uint16(rows)), dcm.NewUS(dcm.Columns, uint16(cols)),
		dcm.NewUS(dcm.BitsAllocated, uint16(bitsAllocated)), dcm.NewUS(dcm.BitsStored, uint16(bitsAllocated)),
		dcm.NewUS(dcm.HighBit, uint16(bitsAllocated-1)), dcm.NewUS(dcm.PixelRepresentation, 0),
		dcm.NewBytes(dcm.PixelData, "OB", pixels),
	)
	b, err := dcm.Encode(ds, dcm.ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFramesNegotiation: encapsulated frames come as stored for "*" (in the part type asked for)
// and for their codec's media type; uncompressed when seg/pixel decodes the syntax without
// changing what the pixels mean; else 406.
func TestFramesNegotiation(t *testing.T) {
	// JPEG 2000 Part 2 has no decoder in this build: a JPEG-LS file relabelled so stands for it.
	part2 := dcmtest.Relabelled(t, shared(t, "CT", "cornerstone_CT_jpegls_lossless.dcm"), "1.2.840.10008.1.2.4.92")
	fs, ins := putEach(t, Options{}, shared(t, "CT", "cornerstone_CT_rle.dcm"), shared(t, "CT", "cornerstone_CT_jpegls_lossless.dcm"),
		shared(t, "US", "gdcm_philips_US_jpegbaseline_ybr422.dcm"), part2)
	const rle, jls, ybr, undecodable = 0, 1, 2, 3
	native := readFile(t, shared(t, "CT", "cornerstone_CT_evrle.dcm")).DataSet.Bytes(dcm.PixelData)
	tests := []struct {
		name     string
		which    int
		accept   string
		status   int
		partType string
	}{
		{"RLE as stored", rle, "multipart/related; type=application/octet-stream; transfer-syntax=*", 200, "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.5"},
		{"RLE by its media type", rle, `multipart/related; type="image/dicom-rle"`, 200, "image/dicom-rle; transfer-syntax=1.2.840.10008.1.2.5"},
		{"RLE decoded", rle, "multipart/related; type=application/octet-stream", 200, "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"},
		{"JPEG-LS as stored", jls, "multipart/related; type=image/jls", 200, "image/jls; transfer-syntax=1.2.840.10008.1.2.4.80"},
		{"JPEG-LS decoded", jls, "multipart/related; type=application/octet-stream", 200, "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"},
		{"JPEG 2000 Part 2 uncompressed: not decodable here", undecodable, "multipart/related; type=application/octet-stream", 406, ""},
		{"YBR JPEG uncompressed: would become RGB", ybr, "multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1", 406, ""},
		{"anything", ybr, "*/*", 200, "image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50"},
		{"JSON only", rle, "application/dicom+json", 406, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rsp, body := fs[tt.which].get(instancePath(ins[tt.which])+"/frames/1", tt.accept)
			if rsp.StatusCode != tt.status {
				t.Fatalf("%s\n%s", rsp.Status, body)
			}
			if tt.status != 200 {
				return
			}
			ps := parts(t, rsp, body)
			if len(ps) != 1 || ps[0].contentType != tt.partType {
				t.Fatalf("parts %d, type %q", len(ps), ps[0].contentType)
			}
			if strings.HasSuffix(tt.name, " decoded") && !bytes.Equal(ps[0].body, native) {
				t.Errorf("the %s frame is not the uncompressed CT's pixel data", tt.name)
			}
		})
	}
}

// TestRetrieveTransferSyntax: instances go as stored for "*", converted to the default (explicit
// VR little endian) when no syntax is asked for, and left out, with a Warning, when neither the
// stored syntax nor a conversion is acceptable.
func TestRetrieveTransferSyntax(t *testing.T) {
	fs, ins := putEach(t, Options{}, shared(t, "CT", "cornerstone_CT_ivrle.dcm"), shared(t, "CT", "cornerstone_CT_jpegbaseline_8bit.dcm"))
	f, ivr, jpeg := fs[0], ins[0], ins[1]
	// A study of two instances, one in a syntax this build does not decode (JPEG 2000 Part 2,
	// a relabelled JPEG-LS file).
	study := newFixture(t, Options{})
	study.put(shared(t, "CT", "cornerstone_CT_evrle.dcm"))
	raw, err := os.ReadFile(dcmtest.Relabelled(t, shared(t, "CT", "cornerstone_CT_jpegls_lossless.dcm"), "1.2.840.10008.1.2.4.92"))
	if err != nil {
		t.Fatal(err)
	}
	jls := study.putBytes(withUID(t, raw, "1.2.826.0.1.3680043.10.1.9999"))
	read := func(p part) *dcm.File {
		t.Helper()
		df, err := dcm.ReadPart10(bytes.NewReader(p.body), dcm.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return df
	}
	rsp, body := f.get(instancePath(ivr), `multipart/related; type="application/dicom"; transfer-syntax=*`)
	ps := parts(t, rsp, body)
	if len(ps) != 1 || read(ps[0]).Meta.TransferSyntaxUID != dcm.ImplicitVRLittleEndian || ps[0].contentType != "application/dicom; transfer-syntax=1.2.840.10008.1.2" {
		t.Fatalf("'*': %d parts, %q", len(ps), ps[0].contentType)
	}
	rsp, body = f.get(instancePath(ivr), `multipart/related; type="application/dicom"`)
	got := read(parts(t, rsp, body)[0])
	orig := readFile(t, shared(t, "CT", "cornerstone_CT_ivrle.dcm"))
	if got.Meta.TransferSyntaxUID != dcm.ExplicitVRLittleEndian || !bytes.Equal(got.DataSet.Bytes(dcm.PixelData), orig.DataSet.Bytes(dcm.PixelData)) ||
		got.DataSet.String(dcm.PatientName) != orig.DataSet.String(dcm.PatientName) {
		t.Fatalf("default: %s, pixel data equal %v", got.Meta.TransferSyntaxUID, bytes.Equal(got.DataSet.Bytes(dcm.PixelData), orig.DataSet.Bytes(dcm.PixelData)))
	}
	// JPEG Baseline decodes to native pixel data; the photometric interpretation follows.
	rsp, body = fs[1].get(instancePath(jpeg), "multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.1")
	got = read(parts(t, rsp, body)[0])
	if got.Meta.TransferSyntaxUID != dcm.ExplicitVRLittleEndian || len(got.DataSet.Bytes(dcm.PixelData)) != 512*512 {
		t.Fatalf("decoded JPEG: %s, %d bytes of pixel data", got.Meta.TransferSyntaxUID, len(got.DataSet.Bytes(dcm.PixelData)))
	}
	// The study: the JPEG 2000 Part 2 CT cannot be given uncompressed.
	rsp, body = study.get("/studies/"+jls.StudyInstanceUID, "multipart/related; type=application/dicom")
	ps = parts(t, rsp, body)
	if len(ps) != 1 {
		t.Errorf("study: %d instances sent, want the uncompressed one", len(ps))
	}
	if !strings.Contains(rsp.Header.Get("Warning"), "left out") {
		t.Errorf("no Warning for the instance left out: %v", rsp.Header)
	}
	for _, p := range ps {
		if read(p).Meta.MediaStorageSOPInstanceUID == jls.SOPInstanceUID {
			t.Error("the JPEG 2000 Part 2 instance was sent although its syntax was not acceptable")
		}
	}
	if rsp, _ := study.get(instancePath(jls), "multipart/related; type=application/dicom"); rsp.StatusCode != http.StatusNotAcceptable {
		t.Errorf("the JPEG 2000 Part 2 instance alone: %s, want 406", rsp.Status)
	}
}

// TestMetadata: instance, series and study metadata; pixel data and long values by reference,
// which bulkdata answers with the value.
func TestMetadata(t *testing.T) {
	f := newFixture(t, Options{BulkDataThreshold: 256})
	pal := f.put(shared(t, "US_multiframe", "pydicom_OBXXXX1A_2fr_evrle_palette.dcm"))
	orig := readFile(t, shared(t, "US_multiframe", "pydicom_OBXXXX1A_2fr_evrle_palette.dcm"))
	md := f.getJSON(instancePath(pal) + "/metadata")
	if len(md) != 1 || value(md[0], "00080018") != pal.SOPInstanceUID || value(md[0], "00280010") != float64(600) {
		t.Fatalf("metadata: %d objects", len(md))
	}
	lut := md[0]["00281201"].(map[string]any)
	uri, _ := lut["BulkDataURI"].(string)
	if uri == "" {
		t.Fatalf("red palette LUT data (%d bytes) inline: %v", len(orig.DataSet.Bytes(dcm.RedPaletteColorLookupTableData)), lut)
	}
	path := strings.TrimPrefix(uri, f.base)
	for _, accept := range []string{"application/octet-stream", "multipart/related; type=application/octet-stream"} {
		rsp, body := f.get(path, accept)
		if accept != "application/octet-stream" {
			body = parts(t, rsp, body)[0].body
		}
		if rsp.StatusCode != 200 || !bytes.Equal(body, orig.DataSet.Bytes(dcm.RedPaletteColorLookupTableData)) {
			t.Errorf("bulk data (%s): %s, %d bytes", accept, rsp.Status, len(body))
		}
	}
	if pd := md[0]["7FE00010"].(map[string]any); !strings.HasSuffix(pd["BulkDataURI"].(string), "/bulkdata/7FE00010") {
		t.Errorf("pixel data: %v", pd)
	}
	if n := len(f.getJSON("/studies/" + pal.StudyInstanceUID + "/metadata")); n != 1 {
		t.Errorf("study metadata: %d instances", n)
	}
	if n := len(f.getJSON("/studies/" + pal.StudyInstanceUID + "/series/" + pal.SeriesInstanceUID + "/metadata")); n != 1 {
		t.Errorf("series metadata: %d instances", n)
	}
	for _, bad := range []string{"/bulkdata/7FE0", "/bulkdata/00281201/0", "/bulkdata/00101010", "/bulkdata/0008111599/0/00081150"} {
		if rsp, _ := f.get(instancePath(pal)+bad, "application/octet-stream"); rsp.StatusCode != 400 && rsp.StatusCode != 404 {
			t.Errorf("bulk data %s: %s", bad, rsp.Status)
		}
	}
}

// TestRendered renders frames as JPEG and PNG, and with overlay=seg draws the SEG that
// references the frame: pixels change inside the mask only.
func TestRendered(t *testing.T) {
	f := newFixture(t, Options{})
	dir := []string{"SEG", "highdicom_ct"}
	ct := f.put(shared(t, append(dir, "ct_image.dcm")...))
	f.put(shared(t, append(dir, "seg_image_ct_binary_single_frame.dcm")...))
	rsp, body := f.get(instancePath(ct)+"/rendered", "image/jpeg")
	if _, err := jpeg.Decode(bytes.NewReader(body)); err != nil || rsp.Header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("JPEG: %v, %s", err, rsp.Header.Get("Content-Type"))
	}
	_, plainPNG := f.get(instancePath(ct)+"/frames/1/rendered", "image/png")
	_, overPNG := f.get(instancePath(ct)+"/rendered?overlay=seg", "image/png")
	plain, err1 := png.Decode(bytes.NewReader(plainPNG))
	over, err2 := png.Decode(bytes.NewReader(overPNG))
	if err1 != nil || err2 != nil {
		t.Fatalf("PNG: %v %v", err1, err2)
	}
	raw, err := os.ReadFile(shared(t, append(dir, "seg_image_ct_binary_single_frame.dcm")...))
	if err != nil {
		t.Fatal(err)
	}
	seg, err := dicomseg.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	mask := seg.Mask(1, ct.SOPInstanceUID, 0)
	if mask == nil {
		t.Fatal("the SEG has no frame for the CT")
	}
	changedIn, changedOut := 0, 0
	w := plain.Bounds().Dx()
	for y := range plain.Bounds().Dy() {
		for x := range w {
			if plain.At(x, y) != over.At(x, y) {
				if mask[y*w+x] != 0 {
					changedIn++
				} else {
					changedOut++
				}
			}
		}
	}
	if changedIn == 0 || changedOut != 0 {
		t.Fatalf("overlay changed %d pixels in the mask and %d outside", changedIn, changedOut)
	}
	for _, q := range []string{"?quality=0", "?overlay=rt", "?viewport=10,10"} {
		if rsp, _ := f.get(instancePath(ct)+"/rendered"+q, "image/jpeg"); rsp.StatusCode != 400 {
			t.Errorf("rendered%s: %s", q, rsp.Status)
		}
	}
	if rsp, _ := f.get(instancePath(ct)+"/rendered", "image/gif"); rsp.StatusCode != 406 {
		t.Errorf("rendered as GIF: %s", rsp.Status)
	}
}

// TestPaths: a URL names objects only through valid UIDs; anything else is refused before the
// store is asked, and an instance is found only under its own study and series.
func TestPaths(t *testing.T) {
	f := newFixture(t, Options{})
	in := f.put(shared(t, "CT", "cornerstone_CT_evrle.dcm"))
	for _, tt := range []struct {
		path   string
		status int
	}{
		{"/studies/1.2.3x", 400},
		{"/studies/01.2", 400},
		{"/studies/" + strings.Repeat("1.", 40) + "1", 400},
		{"/studies/..%2F..%2Fetc/series/1/instances/2", 400},
		{"/studies/1.2.3/series/" + in.SeriesInstanceUID + "/instances/" + in.SOPInstanceUID, 404},
		{"/studies/" + in.StudyInstanceUID + "/series/1.2/instances/" + in.SOPInstanceUID, 404},
		{"/studies/" + in.StudyInstanceUID + "/series/" + in.SeriesInstanceUID + "/instances/1.2.3/metadata", 404},
		{"/studies/9.9.9", 404},
		{instancePath(in), 200},
	} {
		if rsp, body := f.get(tt.path, ""); rsp.StatusCode != tt.status {
			t.Errorf("%s: %s, want %d\n%s", tt.path, rsp.Status, tt.status, body)
		}
	}
}

// withUID gives a Part-10 file another SOP Instance UID, in its meta and its data set.
func withUID(t *testing.T, raw []byte, uid string) []byte {
	t.Helper()
	f, err := dcm.ReadPart10(bytes.NewReader(raw), dcm.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.Meta.MediaStorageSOPInstanceUID = uid
	f.Meta.SourceApplicationEntityTitle = ""
	f.DataSet.Set(dcm.NewText(dcm.SOPInstanceUID, "UI", uid))
	var buf bytes.Buffer
	if err := dcm.WriteFileMeta(&buf, f.Meta); err != nil {
		t.Fatal(err)
	}
	b, err := dcm.Encode(f.DataSet, f.Meta.TransferSyntaxUID)
	if err != nil {
		t.Fatal(err)
	}
	return append(buf.Bytes(), b...)
}
