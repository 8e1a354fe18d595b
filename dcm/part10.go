package dcm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// FileMeta is the File Meta Information of a Part-10 file (PS3.10 §7.1), group 0002, with
// padding trimmed from every value.
type FileMeta struct {
	MediaStorageSOPClassUID      string
	MediaStorageSOPInstanceUID   string
	TransferSyntaxUID            string
	ImplementationClassUID       string
	ImplementationVersionName    string
	SourceApplicationEntityTitle string
}

// Part-10 framing (PS3.10 §7.1).
const (
	PreambleLength = 128
	magic          = "DICM"
)

// ErrNoFileMeta means the stream does not start with the 128-byte preamble and "DICM": it is
// not a Part-10 file. ReadFileMeta then leaves the reader where it was, so the caller can read
// it as a bare data set (ACR-NEMA era files are implicit VR little endian).
var ErrNoFileMeta = errors.New("no DICOM file meta information (preamble and DICM prefix missing)")

// ReadFileMeta reads the preamble, the "DICM" prefix and the File Meta Information group,
// leaving r at the first byte of the data set. If the stream has no preamble and prefix it
// returns ErrNoFileMeta and consumes nothing.
//
// The group ends where its group length (0002,0000) says, or at the first element of another
// group if that comes sooner (some writers count an element of the data set in the group
// length). Elements whose VR bytes are not letters are read as implicit VR, which some old
// writers used for group 0002.
func ReadFileMeta(r *bufio.Reader) (FileMeta, error) {
	return readFileMeta(r, Limits{})
}

func readFileMeta(br *bufio.Reader, lim Limits) (FileMeta, error) {
	var m FileMeta
	head, err := br.Peek(PreambleLength + len(magic))
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return m, ErrNoFileMeta
	case errors.Is(err, bufio.ErrBufferFull):
		return m, fmt.Errorf("read file meta: bufio.Reader smaller than %d bytes", PreambleLength+len(magic))
	case err != nil:
		return m, fmt.Errorf("read file meta: %w", err)
	}
	if string(head[PreambleLength:]) != magic {
		return m, ErrNoFileMeta
	}
	if _, err := br.Discard(len(head)); err != nil {
		return m, fmt.Errorf("read file meta: %w", err)
	}

	r := newReader(br, encoding{explicit: true}, lim, -1)
	r.autoVR = true
	limit := r.lim.MaxFileMeta
	groupEnd := int64(-1) // where the group length says the group ends
	for groupEnd < 0 || r.pos < groupEnd {
		group, err := r.peekGroup()
		if err != nil && groupEnd >= 0 {
			return m, fmt.Errorf("%w: file meta: group 0002 ends after %d bytes, its group length says %d", ErrMalformed, r.pos, groupEnd)
		}
		if err != nil || group != 0x0002 {
			// The group ends at the first other group even when its length says more: some
			// writers count the next group's length element in.
			break
		}
		if r.pos > limit {
			return m, fmt.Errorf("%w: %w: file meta: longer than %d bytes", ErrMalformed, ErrLimit, limit)
		}
		h, err := r.Next()
		if err != nil {
			return m, metaErr(err)
		}
		if h.Kind != KindElement || int64(h.Length) > limit {
			return m, fmt.Errorf("%w: file meta: element %s has length %#x", ErrMalformed, h.Tag, h.Length)
		}
		v, err := r.Value()
		if err != nil {
			return m, metaErr(err)
		}
		var dst *string
		switch h.Tag {
		case FileMetaInformationGroupLength:
			if len(v) != 4 {
				return m, fmt.Errorf("%w: file meta: group length has length %d", ErrMalformed, len(v))
			}
			n := int64(binary.LittleEndian.Uint32(v))
			if n > limit {
				return m, fmt.Errorf("%w: file meta: group length %d", ErrMalformed, n)
			}
			// The group length counts the bytes after itself.
			groupEnd = r.pos + n
			continue
		case MediaStorageSOPClassUID:
			dst = &m.MediaStorageSOPClassUID
		case MediaStorageSOPInstanceUID:
			dst = &m.MediaStorageSOPInstanceUID
		case TransferSyntaxUID:
			dst = &m.TransferSyntaxUID
		case ImplementationClassUID:
			dst = &m.ImplementationClassUID
		case ImplementationVersionName:
			dst = &m.ImplementationVersionName
		case SourceApplicationEntityTitle:
			dst = &m.SourceApplicationEntityTitle
		}
		if dst != nil {
			*dst = trimValue(v, true)
		}
	}
	if m.TransferSyntaxUID == "" {
		return m, fmt.Errorf("%w: file meta: no transfer syntax UID (0002,0010)", ErrMalformed)
	}
	return m, nil
}

func metaErr(err error) error {
	if errors.Is(err, ErrMalformed) {
		return fmt.Errorf("file meta: %w", err)
	}
	return fmt.Errorf("read file meta: %w", err)
}

// WriteFileMeta writes the preamble (zeros), "DICM" and group 0002 with its group length first,
// version 00\01, and m's values in tag order. The three UIDs that say what the file holds and
// ImplementationClassUID are required (type 1 in PS3.10 Table 7.1-1); the version name and
// source AE title are written only when set.
func WriteFileMeta(w io.Writer, m FileMeta) error {
	for _, f := range []struct {
		tag Tag
		v   string
	}{
		{MediaStorageSOPClassUID, m.MediaStorageSOPClassUID},
		{MediaStorageSOPInstanceUID, m.MediaStorageSOPInstanceUID},
		{TransferSyntaxUID, m.TransferSyntaxUID},
		{ImplementationClassUID, m.ImplementationClassUID},
	} {
		if err := CheckUID(f.v); err != nil {
			return fmt.Errorf("write file meta: %s: %w", f.tag, err)
		}
	}
	if len(m.ImplementationVersionName) > 16 || strings.ContainsAny(m.ImplementationVersionName, "\\") || !printable(m.ImplementationVersionName) {
		return fmt.Errorf("write file meta: %s: %q is not a valid SH value", ImplementationVersionName, m.ImplementationVersionName)
	}
	if m.SourceApplicationEntityTitle != "" {
		if err := CheckAE(m.SourceApplicationEntityTitle); err != nil {
			return fmt.Errorf("write file meta: %s: %w", SourceApplicationEntityTitle, err)
		}
	}
	group := NewDataSet(
		NewBytes(FileMetaInformationVersion, "OB", []byte{0x00, 0x01}),
		NewText(MediaStorageSOPClassUID, "UI", m.MediaStorageSOPClassUID),
		NewText(MediaStorageSOPInstanceUID, "UI", m.MediaStorageSOPInstanceUID),
		NewText(TransferSyntaxUID, "UI", m.TransferSyntaxUID),
		NewText(ImplementationClassUID, "UI", m.ImplementationClassUID),
	)
	if m.ImplementationVersionName != "" {
		group.Set(NewText(ImplementationVersionName, "SH", m.ImplementationVersionName))
	}
	if m.SourceApplicationEntityTitle != "" {
		group.Set(NewText(SourceApplicationEntityTitle, "AE", m.SourceApplicationEntityTitle))
	}
	// Built in one slice: a stream writer's buffer would cost more than the group itself, and
	// the store writes one of these for every instance it receives.
	out := make([]byte, PreambleLength, 512)
	out = append(out, magic...)
	at := len(out)
	out, err := AppendDataSet(out, NewDataSet(NewUL(FileMetaInformationGroupLength, 0)), ExplicitVRLittleEndian)
	if err != nil {
		return fmt.Errorf("write file meta: %w", err)
	}
	out, err = AppendDataSet(out, group, ExplicitVRLittleEndian)
	if err != nil {
		return fmt.Errorf("write file meta: %w", err)
	}
	// The group length's value (explicit VR UL: after an 8-byte header) is what follows it.
	binary.LittleEndian.PutUint32(out[at+8:], uint32(len(out)-at-12))
	if _, err := w.Write(out); err != nil {
		return fmt.Errorf("write file meta: %w", err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

func printable(s string) bool {
	return !slices.ContainsFunc([]byte(s), func(c byte) bool { return c < 0x20 || c > 0x7e })
}

// File is a Part-10 file read into memory, or a bare data set read as one.
type File struct {
	// Meta is the file meta information. For a bare data set (no preamble: ACR-NEMA era
	// files, data sets received over the network) only TransferSyntaxUID is set, to the
	// encoding the data set was read in.
	Meta FileMeta
	// NoMeta is set for a bare data set.
	NoMeta  bool
	DataSet *DataSet
}

// TransferSyntax returns what PS3.6 says of the file's transfer syntax (a syntax it does not
// list comes back with only its UID set, and explicit VR little endian).
func (f *File) TransferSyntax() TransferSyntax {
	if ts, ok := LookupTransferSyntax(f.Meta.TransferSyntaxUID); ok {
		return ts
	}
	return TransferSyntax{UID: f.Meta.TransferSyntaxUID, ExplicitVR: true}
}

// ReadFile reads a Part-10 file (or a bare data set) into memory; see ReadPart10.
func ReadFile(path string, opts ParseOptions) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	file, err := ReadPart10(f, opts)
	if err != nil {
		return file, fmt.Errorf("read %s: %w", path, err)
	}
	return file, nil
}

// ReadPart10 reads a Part-10 stream into memory: file meta, then the data set in the transfer
// syntax the meta names. A stream without the preamble is read as a bare data set, in explicit
// VR little endian when its first element says so and implicit VR little endian otherwise. On
// error the part read so far is returned with it.
func ReadPart10(r io.Reader, opts ParseOptions) (*File, error) {
	size := knownSize(r)
	cr := &countReader{r: r}
	// Values longer than the buffer are read past it, straight into place; the buffer serves
	// headers and short values, and a small one costs less to allocate for small objects.
	bufSize := 64 << 10
	if size >= 0 {
		bufSize = 16 << 10
	}
	br := bufio.NewReaderSize(cr, bufSize)
	file := &File{DataSet: &DataSet{}}
	m, err := readFileMeta(br, opts.Limits)
	switch {
	case errors.Is(err, ErrNoFileMeta):
		file.NoMeta = true
		m = FileMeta{TransferSyntaxUID: ImplicitVRLittleEndian}
		if b, _ := br.Peek(6); len(b) == 6 && isVRBytes(b[4], b[5]) {
			m.TransferSyntaxUID = ExplicitVRLittleEndian
		}
	case err != nil:
		return file, err
	}
	file.Meta = m
	if size >= 0 {
		size -= cr.n - int64(br.Buffered())
	}
	enc, _ := encodingOf(m.TransferSyntaxUID)
	rd := newReader(br, enc, opts.Limits, size)
	file.DataSet, err = rd.ReadDataSet(opts)
	return file, err
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
