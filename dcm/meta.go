package dcm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// FileMeta is the File Meta Information of a Part-10 file (PS3.10 §7.1),
// group 0002, with padding trimmed from every value.
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

// ErrNoFileMeta means the stream does not start with the 128-byte preamble and
// "DICM": it is not a Part-10 file. ReadFileMeta then leaves the reader where
// it was, so the caller can read it as a bare data set (ACR-NEMA era files are
// implicit VR little endian).
var ErrNoFileMeta = errors.New("no DICOM file meta information (preamble and DICM prefix missing)")

// ErrMalformed is wrapped by errors that report data which does not follow the
// encoding rules, truncation included. Errors from the underlying reader are
// passed through unwrapped, so a caller can tell a broken object from a broken
// connection.
var ErrMalformed = errors.New("malformed DICOM data")

// maxMetaLength bounds the whole group 0002. Real ones are a few hundred
// bytes; the bound keeps a hostile length field from making us read for ever.
const maxMetaLength = 1 << 20

// ReadFileMeta reads the preamble, the "DICM" prefix and the File Meta
// Information group, leaving r at the first byte of the data set. If the
// stream has no preamble and prefix it returns ErrNoFileMeta and consumes
// nothing.
//
// The group ends where its group length (0002,0000) says, or at the first
// element of another group if that comes sooner (some writers count an element
// of the data set in the group length). Elements whose VR bytes are not letters are
// read as implicit VR, which some old writers used for group 0002.
func ReadFileMeta(r *bufio.Reader) (FileMeta, error) {
	var m FileMeta
	head, err := r.Peek(PreambleLength + len(magic))
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
	if _, err := r.Discard(len(head)); err != nil {
		return m, fmt.Errorf("read file meta: %w", err)
	}

	var (
		consumed int64
		groupLen int64 = -1
		hdr      [12]byte
	)
	for {
		if groupLen >= 0 && consumed >= groupLen {
			break
		}
		peek, err := r.Peek(2)
		if err != nil && groupLen >= 0 {
			return m, fmt.Errorf("%w: file meta: group 0002 ends after %d bytes, its group length says %d", ErrMalformed, consumed, groupLen)
		}
		if err != nil || binary.LittleEndian.Uint16(peek) != 0x0002 {
			// The group ends at the first other group even when its length
			// says more: some writers count the next group's length element in.
			break
		}
		if consumed > maxMetaLength {
			return m, fmt.Errorf("%w: file meta: longer than %d bytes", ErrMalformed, maxMetaLength)
		}
		if _, err := io.ReadFull(r, hdr[:8]); err != nil {
			return m, metaReadErr(err)
		}
		tag := Tag(uint32(binary.LittleEndian.Uint16(hdr[0:]))<<16 | uint32(binary.LittleEndian.Uint16(hdr[2:])))
		vr := string(hdr[4:6])
		var length uint32
		n := int64(8)
		switch {
		case !isVRBytes(hdr[4], hdr[5]):
			length = binary.LittleEndian.Uint32(hdr[4:8])
		case hasLongLength(vr):
			if _, err := io.ReadFull(r, hdr[8:12]); err != nil {
				return m, metaReadErr(err)
			}
			length = binary.LittleEndian.Uint32(hdr[8:12])
			n += 4
		default:
			length = uint32(binary.LittleEndian.Uint16(hdr[6:8]))
		}
		if length == undefinedLength || int64(length) > maxMetaLength {
			return m, fmt.Errorf("%w: file meta: element %s has length %#x", ErrMalformed, tag, length)
		}
		consumed += n + int64(length)
		var dst *string
		switch tag {
		case FileMetaInformationGroupLength:
			if length != 4 {
				return m, fmt.Errorf("%w: file meta: group length has length %d", ErrMalformed, length)
			}
			if _, err := io.ReadFull(r, hdr[:4]); err != nil {
				return m, metaReadErr(err)
			}
			groupLen = int64(binary.LittleEndian.Uint32(hdr[:4]))
			if groupLen > maxMetaLength {
				return m, fmt.Errorf("%w: file meta: group length %d", ErrMalformed, groupLen)
			}
			consumed = 0 // the group length counts the bytes after itself
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
		if dst == nil {
			if _, err := r.Discard(int(length)); err != nil {
				return m, metaReadErr(err)
			}
			continue
		}
		buf := make([]byte, length)
		if _, err := io.ReadFull(r, buf); err != nil {
			return m, metaReadErr(err)
		}
		*dst = trimValue(buf, true)
	}
	if m.TransferSyntaxUID == "" {
		return m, fmt.Errorf("%w: file meta: no transfer syntax UID (0002,0010)", ErrMalformed)
	}
	return m, nil
}

func metaReadErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: file meta: %w", ErrMalformed, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("read file meta: %w", err)
}

// WriteFileMeta writes the preamble (zeros), "DICM" and group 0002 with its
// group length first, version 00\01, and m's values in tag order. The three
// UIDs that say what the file holds and ImplementationClassUID are required
// (type 1 in PS3.10 Table 7.1-1); the version name and source AE title are
// written only when set.
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

	var body bytes.Buffer
	body.Grow(256)
	putElement(&body, FileMetaInformationVersion, "OB", []byte{0x00, 0x01})
	putElement(&body, MediaStorageSOPClassUID, "UI", []byte(m.MediaStorageSOPClassUID))
	putElement(&body, MediaStorageSOPInstanceUID, "UI", []byte(m.MediaStorageSOPInstanceUID))
	putElement(&body, TransferSyntaxUID, "UI", []byte(m.TransferSyntaxUID))
	putElement(&body, ImplementationClassUID, "UI", []byte(m.ImplementationClassUID))
	if m.ImplementationVersionName != "" {
		putElement(&body, ImplementationVersionName, "SH", []byte(m.ImplementationVersionName))
	}
	if m.SourceApplicationEntityTitle != "" {
		putElement(&body, SourceApplicationEntityTitle, "AE", []byte(m.SourceApplicationEntityTitle))
	}

	out := make([]byte, 0, PreambleLength+len(magic)+12+body.Len())
	out = append(out, make([]byte, PreambleLength)...)
	out = append(out, magic...)
	var gl bytes.Buffer
	putElement(&gl, FileMetaInformationGroupLength, "UL", binary.LittleEndian.AppendUint32(nil, uint32(body.Len())))
	out = append(out, gl.Bytes()...)
	out = append(out, body.Bytes()...)
	if _, err := w.Write(out); err != nil {
		return fmt.Errorf("write file meta: %w", err)
	}
	return nil
}

// putElement appends one explicit VR little endian element, padding the value
// to even length with the VR's pad byte (PS3.5 §6.2: NUL for UI and OB, space
// for text).
func putElement(b *bytes.Buffer, tag Tag, vr string, value []byte) {
	padded := len(value)%2 == 1
	n := len(value)
	if padded {
		n++
	}
	var h [12]byte
	binary.LittleEndian.PutUint16(h[0:], tag.Group())
	binary.LittleEndian.PutUint16(h[2:], tag.Element())
	copy(h[4:6], vr)
	if hasLongLength(vr) {
		binary.LittleEndian.PutUint32(h[8:], uint32(n))
		b.Write(h[:12])
	} else {
		binary.LittleEndian.PutUint16(h[6:], uint16(n))
		b.Write(h[:8])
	}
	b.Write(value)
	if padded {
		b.WriteByte(padByte(vr))
	}
}

func padByte(vr string) byte {
	switch vr {
	case "UI", "OB", "UN":
		return 0
	}
	return ' '
}

func printable(s string) bool {
	return !slices.ContainsFunc([]byte(s), func(c byte) bool { return c < 0x20 || c > 0x7e })
}
