package dcm

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/espnode/espnode/internal/testutil"
)

// suyashkumar/dicom (the library the project's design card names) is the reference this
// package is measured against: the benchmark parses the shared files with both, and the test
// below records where that library cannot read what this package reads.

// parseSuyashkumar parses a Part-10 file with suyashkumar/dicom, pixel data kept raw (or
// skipped). That library panics on some inputs (transfer syntaxes it does not know); the test
// turns a panic into an error so that it can report it.
func parseSuyashkumar(data []byte, skipPixels bool) (ds dicom.Dataset, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	opt := dicom.SkipProcessingPixelDataValue()
	if skipPixels {
		opt = dicom.SkipPixelData()
	}
	return dicom.Parse(bytes.NewReader(data), int64(len(data)), nil, opt)
}

type sharedFile struct {
	rel  string
	data []byte
}

func loadShared(tb testing.TB) []sharedFile {
	tb.Helper()
	root := testutil.SharedData(tb, "dicom")
	var out []sharedFile
	for _, p := range sharedFiles(tb) {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, sharedFile{rel, b})
	}
	return out
}

// suyashkumarFails are the shared files suyashkumar/dicom v1.1.0 cannot parse: it panics on
// transfer syntaxes newer than it (HTJ2K, JPEG XL), having no byte order for them.
var suyashkumarFails = []string{
	"OT/pydicom_SC_rgb_htj2k_lossless.dcm",
	"OT/pydicom_SC_rgb_htj2k_rpcl.dcm",
	"US_multiframe/dcm4che_will_27fr_jpegxl.dcm",
}

// TestSuyashkumarDisagreements parses every shared file with both libraries and checks that,
// where suyashkumar/dicom reads a file, it finds the same top-level elements with the same text
// values; the files it cannot read are listed above, so the list stays true.
func TestSuyashkumarDisagreements(t *testing.T) {
	var failed []string
	for _, f := range loadShared(t) {
		ours, err := ReadPart10(bytes.NewReader(f.data), ParseOptions{})
		if err != nil {
			t.Fatalf("%s: %v", f.rel, err)
		}
		theirs, err := parseSuyashkumar(f.data, false)
		if err != nil {
			t.Logf("suyashkumar/dicom fails on %s: %v", f.rel, err)
			failed = append(failed, f.rel)
			continue
		}
		var theirTags []Tag
		for _, e := range theirs.Elements {
			tg := NewTag(e.Tag.Group, e.Tag.Element)
			if tg.Group() == 0x0002 {
				continue
			}
			theirTags = append(theirTags, tg)
			o := ours.DataSet.Find(tg)
			if o == nil {
				t.Errorf("%s: suyashkumar/dicom has %s, we do not", f.rel, tg)
				continue
			}
			if e.Value.ValueType() != dicom.Strings || !isText(o.valueVR()) {
				continue
			}
			if !ours.DataSet.Has(SpecificCharacterSet) && hasHigh(o.Value) {
				// Bytes outside the default repertoire, no character set to say what they
				// are: suyashkumar/dicom passes them on raw; we read them as Latin-1, as
				// pydicom does, so that they stay valid text.
				continue
			}
			want := strings.Join(dicom.MustGetStrings(e.Value), `\`)
			got := ours.DataSet.Unicode(tg)
			if strings.TrimRight(strings.TrimLeft(want, " "), " \x00") != strings.TrimLeft(got, " ") {
				t.Errorf("%s %s: we read %q, suyashkumar/dicom %q", f.rel, tg, got, want)
			}
		}
		slices.Sort(theirTags)
		var ourTags []Tag
		for _, e := range ours.DataSet.Elements {
			ourTags = append(ourTags, e.Tag)
		}
		if !slices.Equal(ourTags, theirTags) {
			t.Errorf("%s: %d top-level elements, suyashkumar/dicom %d", f.rel, len(ourTags), len(theirTags))
		}
	}
	if !slices.Equal(failed, suyashkumarFails) {
		t.Errorf("suyashkumar/dicom fails on %q, the list says %q", failed, suyashkumarFails)
	}
}

// BenchmarkParseShared parses every shared file that both libraries read, from memory, with
// this package and with suyashkumar/dicom side by side: "whole" keeps every value (pixel data
// raw, not decoded), "attributes" leaves pixel data out (values over 64 KiB here,
// SkipPixelData there). The ratio of the ns/op of the pairs is what docs/DCM.md reports.
func BenchmarkParseShared(b *testing.B) {
	var files []sharedFile
	var size int64
	for _, f := range loadShared(b) {
		if slices.Contains(suyashkumarFails, f.rel) {
			continue
		}
		files = append(files, f)
		size += int64(len(f.data))
	}
	for _, mode := range []struct {
		name string
		ours ParseOptions
		skip bool
	}{
		{"whole", ParseOptions{}, false},
		{"attributes", ParseOptions{SkipValuesOver: 64 << 10}, true},
	} {
		b.Run(mode.name+"/dcm", func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				for _, f := range files {
					if _, err := ReadPart10(bytes.NewReader(f.data), mode.ours); err != nil {
						b.Fatalf("%s: %v", f.rel, err)
					}
				}
			}
		})
		b.Run(mode.name+"/suyashkumar", func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				for _, f := range files {
					if _, err := parseSuyashkumar(f.data, mode.skip); err != nil {
						b.Fatalf("%s: %v", f.rel, err)
					}
				}
			}
		})
	}
}

// TestSuyashkumarPixelPaths records where suyashkumar/dicom's own pixel decoding is wrong,
// which is why the node keeps pixel data raw and decodes it in seg/pixel: it unpacks 1-bit
// frames most significant bit first (DICOM packs them least significant bit first, PS3.5 8.1.1;
// seg/pixel checks its decoding of this file against DCMTK), and it makes a frame of every
// fragment of encapsulated pixel data, whatever Number of Frames says.
func TestSuyashkumarPixelPaths(t *testing.T) {
	read := func(rel string) ([]byte, *DataSet, dicom.PixelDataInfo) {
		data, err := os.ReadFile(testutil.SharedData(t, "dicom", rel))
		if err != nil {
			t.Fatal(err)
		}
		ours, err := ReadPart10(bytes.NewReader(data), ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := dicom.Parse(bytes.NewReader(data), int64(len(data)), nil)
		if err != nil {
			t.Fatalf("suyashkumar/dicom: %s: %v", rel, err)
		}
		e, err := theirs.FindElementByTag(suyashkumarTag(PixelData))
		if err != nil {
			t.Fatal(err)
		}
		return data, ours.DataSet, e.Value.GetValue().(dicom.PixelDataInfo)
	}

	_, ds, pd := read("SEG/dcmqi_liver/liver_seg.dcm")
	raw := ds.Bytes(PixelData)
	wrong, set, total := 0, 0, 0
	for fi, f := range pd.Frames {
		fr, err := f.GetNativeFrame()
		if err != nil {
			t.Fatal(err)
		}
		size := fr.Rows() * fr.Cols()
		total += size
		for k := range size {
			bit := int(raw[(fi*size+k)>>3]>>((fi*size+k)&7)) & 1
			px, _ := fr.GetPixel(k%fr.Cols(), k/fr.Cols())
			set += bit
			if px[0] != bit {
				wrong++
			}
		}
	}
	t.Logf("1-bit SEG: %d of %d pixels (%d set) differ from DICOM's bit order", wrong, total, set)
	if wrong == 0 {
		t.Error("suyashkumar/dicom unpacks 1-bit frames right now: seg/pixel's reason to decode them itself is gone")
	}

	_, ds, pd = read("CT/cornerstone_EnhancedCT_2fr_fragmented_nobot_jpegext.dcm")
	frames, _ := ds.Int(NumberOfFrames)
	t.Logf("encapsulated, %d fragments for %d frames: %d frames", len(ds.Find(PixelData).Fragments)-1, frames, len(pd.Frames))
	if int64(len(pd.Frames)) == frames {
		t.Error("suyashkumar/dicom splits fragmented frames right now")
	}
}

// suyashkumarTag is suyashkumar/dicom's form of a tag.
func suyashkumarTag(t Tag) tag.Tag { return tag.Tag{Group: t.Group(), Element: t.Element()} }
