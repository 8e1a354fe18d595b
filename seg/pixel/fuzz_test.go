package pixel

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"

	"github.com/espnode/espnode/dcm"
)

// The decoders below read bytes that arrive from the network; they must fail cleanly, never
// panic or allocate without bound.

func FuzzDecodeRLE(f *testing.F) {
	hdr := make([]byte, 64)
	binary.LittleEndian.PutUint32(hdr, 1)
	binary.LittleEndian.PutUint32(hdr[4:], 64)
	f.Add(append(hdr, 0xFD, 7), 2, 2, 1, 8)
	f.Add(append(hdr, 0x03, 1, 2, 3, 4), 2, 2, 1, 8)
	f.Add(append(hdr, 0x80, 0x00), 1, 1, 1, 16)
	f.Fuzz(func(t *testing.T, data []byte, rows, cols, samples, bits int) {
		if rows < 0 || cols < 0 || rows*cols > 1<<16 || samples < 1 || samples > 3 {
			return
		}
		out, err := DecodeRLE(data, rows, cols, samples, bits)
		if err == nil && len(out) != rows*cols*samples*bits/8 {
			t.Fatalf("decoded %d bytes for %dx%dx%d at %d bits", len(out), rows, cols, samples, bits)
		}
	})
}

func FuzzParseItemsAndSplitFrames(f *testing.F) {
	item := func(b ...byte) []byte {
		return append([]byte{0xFE, 0xFF, 0x00, 0xE0, byte(len(b)), 0, 0, 0}, b...)
	}
	f.Add(append(append(item(0, 0, 0, 0, 10, 0, 0, 0), item(1, 2)...), item(0xFF, 0xD8)...), 2)
	f.Add(append(item(), item(0xFF, 0xD8, 0xFF, 0xD9)...), 1)
	f.Fuzz(func(t *testing.T, value []byte, frames int) {
		offsets, frags, err := dcm.ParseFragments(value)
		if err != nil || frames < 1 || frames > 1<<10 {
			return
		}
		for _, starts := range []func([]byte) bool{nil, FrameStart(dcm.JPEGBaseline8Bit), FrameStart(dcm.JPEG2000)} {
			out, err := SplitFrames(frags, offsets, frames, starts)
			if err == nil && len(out) != frames {
				t.Fatalf("split into %d frames, want %d", len(out), frames)
			}
		}
	})
}

func FuzzSegmentedPalette(f *testing.F) {
	f.Add([]byte{0, 0, 2, 0, 1, 0, 2, 0, 1, 0, 4, 0, 0, 0}, 6)
	f.Fuzz(func(t *testing.T, raw []byte, n int) {
		if n < 1 || n > 65536 {
			return
		}
		out, err := expandSegmented(words(raw, binary.LittleEndian), n)
		if err == nil && len(out) != n {
			t.Fatalf("expanded to %d entries, want %d", len(out), n)
		}
	})
}

// FuzzDecodeImage reads any bytes as a file and decodes its first frame: the path a received
// instance takes to the model, through every codec (seeds in RLE, JPEG-LS, JPEG 2000 and
// 12-bit JPEG besides native).
func FuzzDecodeImage(f *testing.F) {
	for _, rel := range []string{"MR/pydicom_MR_small_evrbe.dcm", "US/wg04_US1_RLE.dcm", "SM/highdicom_sm_image_rgb_jpegls.dcm",
		"CT/cornerstone_CT_j2k.dcm", "CT/cornerstone_CT_jpegext.dcm", "CT/cornerstone_CT_jpegls_nearlossless.dcm"} {
		data, err := os.ReadFile(dicomFile(f, rel))
		if err != nil {
			f.Fatal(err)
		}
		if len(data) > 160<<10 {
			data = data[:160<<10]
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := dcm.ReadPart10(bytes.NewReader(data), dcm.ParseOptions{})
		if err != nil {
			return
		}
		im, err := NewImage(file)
		if err != nil {
			return
		}
		if fr, err := im.Frame(0); err == nil {
			_, _ = im.Render(fr)
		}
	})
}
