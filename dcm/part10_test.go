package dcm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestReadFileMetaMatchesDcmdump(t *testing.T) {
	for _, path := range sharedFiles(t) {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReader(bytes.NewReader(raw))
			m, err := ReadFileMeta(r)
			if strings.Contains(name, "nometa") {
				if !errors.Is(err, ErrNoFileMeta) {
					t.Fatalf("err = %v, want ErrNoFileMeta", err)
				}
				rest, _ := io.ReadAll(r)
				if !bytes.Equal(rest, raw) {
					t.Fatal("ReadFileMeta consumed bytes of a file without meta")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want, stderr := dcmdumpTop(t, path)
			for tag, got := range map[Tag]string{
				MediaStorageSOPClassUID:      m.MediaStorageSOPClassUID,
				MediaStorageSOPInstanceUID:   m.MediaStorageSOPInstanceUID,
				TransferSyntaxUID:            m.TransferSyntaxUID,
				ImplementationClassUID:       m.ImplementationClassUID,
				ImplementationVersionName:    m.ImplementationVersionName,
				SourceApplicationEntityTitle: m.SourceApplicationEntityTitle,
			} {
				if w := strings.TrimSpace(want[tag]); got != w {
					t.Errorf("%s = %q, dcmdump says %q", tag, got, w)
				}
			}
			// r must stand at the first data set byte: right after the group,
			// whose length dcmdump reports.
			gl, err := strconv.Atoi(want[FileMetaInformationGroupLength])
			if err != nil {
				t.Fatalf("dcmdump group length %q: %v", want[FileMetaInformationGroupLength], err)
			}
			rest, _ := io.ReadAll(r)
			off := PreambleLength + 4 + 12 + gl
			if strings.Contains(stderr, "Invalid Element") {
				// The group length counts a data set element in; the data
				// set starts at that element.
				off = len(raw) - len(rest)
				if len(rest) < 2 || rest[0] == 2 && rest[1] == 0 {
					t.Fatalf("reader left inside group 0002 at offset %d", off)
				}
			}
			if !bytes.Equal(rest, raw[off:]) {
				t.Errorf("reader left at offset %d, want %d", len(raw)-len(rest), off)
			}
		})
	}
}

func TestWriteFileMetaRoundTrip(t *testing.T) {
	tests := []FileMeta{
		{
			MediaStorageSOPClassUID:      "1.2.840.10008.5.1.4.1.1.2",
			MediaStorageSOPInstanceUID:   "1.2.3.4.5",             // odd: padded with NUL
			TransferSyntaxUID:            "1.2.840.10008.1.2.1",   // odd
			ImplementationClassUID:       "1.2.826.0.1.3680043.2", // even
			ImplementationVersionName:    "ESPNODE_0.1",           // odd: padded with space
			SourceApplicationEntityTitle: "CT1",                   // odd: padded with space
		},
		{
			MediaStorageSOPClassUID:    "1.2.840.10008.5.1.4.1.1.7",
			MediaStorageSOPInstanceUID: "1.2.3.44",
			TransferSyntaxUID:          "1.2.840.10008.1.2",
			ImplementationClassUID:     "1.2.3",
		},
	}
	for _, m := range tests {
		var buf bytes.Buffer
		if err := WriteFileMeta(&buf, m); err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()
		if !bytes.Equal(b[:PreambleLength], make([]byte, PreambleLength)) || string(b[128:132]) != "DICM" {
			t.Fatal("preamble or prefix wrong")
		}
		if !bytes.Equal(b[132:140], []byte{2, 0, 0, 0, 'U', 'L', 4, 0}) {
			t.Fatalf("group length header = % x", b[132:140])
		}
		if gl := binary.LittleEndian.Uint32(b[140:144]); int(gl) != len(b)-144 {
			t.Errorf("group length %d, group is %d bytes", gl, len(b)-144)
		}
		if !bytes.Equal(b[144:158], []byte{2, 0, 1, 0, 'O', 'B', 0, 0, 2, 0, 0, 0, 0, 1}) {
			t.Errorf("version element = % x", b[144:158])
		}
		if len(b)%2 != 0 {
			t.Errorf("odd length %d", len(b))
		}
		got, err := ReadFileMeta(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatal(err)
		}
		if got != m {
			t.Errorf("round trip: got %+v, want %+v", got, m)
		}
		if m.ImplementationVersionName == "" && bytes.Contains(b, []byte{2, 0, 0x13, 0}) {
			t.Error("empty version name written")
		}
	}
	// Pad bytes: UI with NUL, SH and AE with space.
	var buf bytes.Buffer
	if err := WriteFileMeta(&buf, tests[0]); err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]byte{[]byte("1.2.3.4.5\x00"), []byte("ESPNODE_0.1 "), []byte("CT1 ")} {
		if !bytes.Contains(buf.Bytes(), want) {
			t.Errorf("meta lacks padded value %q", want)
		}
	}
}

// TestWriteFileMetaDcmdump has DCMTK read a file made of our meta and a tiny
// data set: it must parse without a warning.
func TestWriteFileMetaDcmdump(t *testing.T) {
	m := FileMeta{
		MediaStorageSOPClassUID:      "1.2.840.10008.5.1.4.1.1.7",
		MediaStorageSOPInstanceUID:   "1.2.3.4.5",
		TransferSyntaxUID:            "1.2.840.10008.1.2.1",
		ImplementationClassUID:       "1.2.826.0.1.3680043.2.1",
		ImplementationVersionName:    "ESPNODE_1",
		SourceApplicationEntityTitle: "SENDER",
	}
	var buf bytes.Buffer
	if err := WriteFileMeta(&buf, m); err != nil {
		t.Fatal(err)
	}
	buf.Write(encode(t, NewDataSet(NewText(SOPClassUID, "UI", m.MediaStorageSOPClassUID),
		NewText(SOPInstanceUID, "UI", m.MediaStorageSOPInstanceUID)), ExplicitVRLittleEndian))
	path := filepath.Join(t.TempDir(), "x.dcm")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	vals, stderr := dcmdumpTop(t, path)
	if stderr != "" {
		t.Errorf("dcmdump complained: %s", stderr)
	}
	for tag, want := range map[Tag]string{
		FileMetaInformationVersion:   `00\01`,
		MediaStorageSOPInstanceUID:   "1.2.3.4.5",
		TransferSyntaxUID:            "1.2.840.10008.1.2.1",
		ImplementationVersionName:    "ESPNODE_1",
		SourceApplicationEntityTitle: "SENDER",
		SOPInstanceUID:               "1.2.3.4.5",
	} {
		if vals[tag] != want {
			t.Errorf("dcmdump %s = %q, want %q", tag, vals[tag], want)
		}
	}
}

func TestWriteFileMetaRejects(t *testing.T) {
	good := FileMeta{
		MediaStorageSOPClassUID:    "1.2.3",
		MediaStorageSOPInstanceUID: "1.2.4",
		TransferSyntaxUID:          "1.2.840.10008.1.2",
		ImplementationClassUID:     "1.2.5",
	}
	tests := map[string]func(m *FileMeta){
		"empty class":        func(m *FileMeta) { m.MediaStorageSOPClassUID = "" },
		"bad instance":       func(m *FileMeta) { m.MediaStorageSOPInstanceUID = "../../etc" },
		"bad ts":             func(m *FileMeta) { m.TransferSyntaxUID = "1.2.03" },
		"no impl class":      func(m *FileMeta) { m.ImplementationClassUID = "" },
		"long version":       func(m *FileMeta) { m.ImplementationVersionName = "12345678901234567" },
		"control in version": func(m *FileMeta) { m.ImplementationVersionName = "A\nB" },
		"bad ae":             func(m *FileMeta) { m.SourceApplicationEntityTitle = `A\B` },
	}
	for name, mutate := range tests {
		m := good
		mutate(&m)
		if err := WriteFileMeta(io.Discard, m); err == nil {
			t.Errorf("%s: WriteFileMeta accepted %+v", name, m)
		}
	}
	if err := WriteFileMeta(io.Discard, good); err != nil {
		t.Errorf("good meta rejected: %v", err)
	}
}

func TestReadFileMetaErrors(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFileMeta(&buf, FileMeta{
		MediaStorageSOPClassUID:    "1.2.3",
		MediaStorageSOPInstanceUID: "1.2.4",
		TransferSyntaxUID:          "1.2.840.10008.1.2",
		ImplementationClassUID:     "1.2.5",
	}); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	lying := bytes.Clone(good)
	binary.LittleEndian.PutUint32(lying[140:], uint32(len(good)-144+100))
	huge := bytes.Clone(good)
	binary.LittleEndian.PutUint32(huge[140:], 0xFFFFFFF0)
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrNoFileMeta},
		{"short", good[:100], ErrNoFileMeta},
		{"no DICM", append(make([]byte, 128), "DICX"...), ErrNoFileMeta},
		{"truncated in group", good[:len(good)-5], ErrMalformed},
		{"group length past the group", lying, ErrMalformed},
		{"huge group length", huge, ErrMalformed},
		{"no transfer syntax", good[:144], ErrMalformed},
	}
	for _, tt := range tests {
		_, err := ReadFileMeta(bufio.NewReader(bytes.NewReader(tt.data)))
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
}
