package dcm

import (
	"bufio"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Transfer syntaxes whose data set encoding Scan distinguishes. Every other
// transfer syntax, the encapsulated (compressed) ones included, encodes the
// data set in explicit VR little endian.
const (
	ImplicitVRLittleEndian         = "1.2.840.10008.1.2"
	ExplicitVRLittleEndian         = "1.2.840.10008.1.2.1"
	DeflatedExplicitVRLittleEndian = "1.2.840.10008.1.2.1.99"
	ExplicitVRBigEndian            = "1.2.840.10008.1.2.2"
	JPIPReferencedDeflate          = "1.2.840.10008.1.2.4.95"
)

// MaxValueLength is the largest value Scan reads into memory. A wanted
// attribute with a longer value is skipped like any other, never allocated.
const MaxValueLength = 64 << 10

// maxDepth bounds the nesting of undefined-length sequences and items, so a
// hostile stream cannot grow the stack without limit.
const maxDepth = 64

// TagSet is a set of tags to extract.
type TagSet map[Tag]struct{}

// NewTagSet returns a set holding tags.
func NewTagSet(tags ...Tag) TagSet {
	s := make(TagSet, len(tags))
	for _, t := range tags {
		s[t] = struct{}{}
	}
	return s
}

// Value is one extracted attribute.
type Value struct {
	// VR is the value representation as encoded, or from the dictionary for
	// implicit VR streams and values encoded as UN ("UN" for tags it does
	// not know).
	VR string
	// Str is the value as text with its padding trimmed; binary numbers (US,
	// UL, SS, SL) are written in decimal; multiple values are separated by
	// backslashes. Text is returned in the bytes received: no character set
	// conversion is done.
	Str string
	// Int is the first value of a US, UL, SS, SL or IS attribute, valid when
	// HasInt is true.
	Int    int64
	HasInt bool
}

// Attrs holds the attributes Scan found, by tag.
type Attrs map[Tag]Value

// String returns the text of the attribute with tag t, "" if absent.
func (a Attrs) String(t Tag) string { return a[t].Str }

// Int returns the first numeric value of the attribute with tag t, and
// whether there was one.
func (a Attrs) Int(t Tag) (int64, bool) {
	v, ok := a[t]
	return v.Int, ok && v.HasInt
}

// Scan reads a data set (no file meta) encoded in the given transfer syntax
// from r and returns the top-level attributes in want that have a value.
//
// Scan consumes r to its end, always: callers tee the stream to a file and
// need all of it to pass through. Everything it does not want is skipped
// without buffering, sequences of defined and undefined length and
// encapsulated pixel data included, so memory use does not grow with the
// size of the data set. It parses the whole structure, so a stream that ends
// inside an element or holds garbage gives an error wrapping ErrMalformed
// (with io.ErrUnexpectedEOF for truncation). Errors from r itself are
// returned wrapped but otherwise as they are. On error the attributes found
// so far are returned with it.
func Scan(r io.Reader, transferSyntaxUID string, want TagSet) (Attrs, error) {
	return scan(r, transferSyntaxUID, want, 0)
}

// ScanHead is Scan that stops at the first top-level element past the last wanted tag: for a
// reader of a file, which needs a few attributes near the start and not the pixel data after them.
// It leaves r somewhere inside the data set.
func ScanHead(r io.Reader, transferSyntaxUID string, want TagSet) (Attrs, error) {
	var last Tag
	for t := range want {
		last = max(last, t)
	}
	return scan(r, transferSyntaxUID, want, last)
}

// scan stops after the top-level element stopAfter when it is not zero.
func scan(r io.Reader, transferSyntaxUID string, want TagSet, stopAfter Tag) (Attrs, error) {
	out := make(Attrs, len(want))
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 32<<10)
	}
	s := &scanner{want: want, out: out, stopAfter: stopAfter}
	switch transferSyntaxUID {
	case "":
		return out, errors.New("scan: no transfer syntax")
	case ImplicitVRLittleEndian:
		s.r, s.enc = br, enc{binary.LittleEndian, false}
	case ExplicitVRBigEndian:
		s.r, s.enc = br, enc{binary.BigEndian, true}
	case DeflatedExplicitVRLittleEndian, JPIPReferencedDeflate:
		fr := flate.NewReader(br)
		defer fr.Close()
		s.r, s.enc = bufio.NewReaderSize(fr, 32<<10), enc{binary.LittleEndian, true}
		if err := s.dataSet(); err != nil || stopAfter != 0 {
			return out, err
		}
		// The deflate stream may end before r does (a pad byte, say); the
		// rest must still be read for the caller's tee.
		if _, err := io.Copy(io.Discard, br); err != nil {
			return out, fmt.Errorf("scan: %w", err)
		}
		return out, nil
	default:
		s.r, s.enc = br, enc{binary.LittleEndian, true}
	}
	return out, s.dataSet()
}

// enc is a data set encoding: byte order and whether VRs are explicit.
type enc struct {
	bo       binary.ByteOrder
	explicit bool
}

type scanner struct {
	r    *bufio.Reader
	enc  enc
	want TagSet
	out  Attrs
	pos  int64 // bytes of the (inflated) data set consumed, for error messages
	// stopAfter, when not zero, ends the scan at the first top-level element past it (ScanHead).
	stopAfter Tag
	hdr       [12]byte
}

// header is one element or item header.
type header struct {
	tag    Tag
	vr     string // "" for items and delimiters, and in implicit VR
	length uint32
}

func (s *scanner) malformed(format string, args ...any) error {
	return fmt.Errorf("%w: offset %d: %s", ErrMalformed, s.pos, fmt.Sprintf(format, args...))
}

// readErr turns an error of the reader into one for the caller: the end of
// the stream inside a structure is truncation (malformed); a corrupt deflate
// stream is malformed; anything else came from below and is passed on.
func (s *scanner) readErr(err error) error {
	var ce flate.CorruptInputError
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: offset %d: data set truncated: %w", ErrMalformed, s.pos, io.ErrUnexpectedEOF)
	case errors.As(err, &ce):
		return fmt.Errorf("%w: offset %d: deflate: %v", ErrMalformed, s.pos, err)
	}
	return fmt.Errorf("scan: offset %d: %w", s.pos, err)
}

func (s *scanner) read(b []byte) error {
	n, err := io.ReadFull(s.r, b)
	s.pos += int64(n)
	if err != nil {
		return s.readErr(err)
	}
	return nil
}

func (s *scanner) skip(n uint32) error {
	// bufio's Discard reads through its buffer without allocating: the same
	// as io.CopyN(io.Discard, r, n) without the extra copy. Chunks keep the
	// count within an int on 32-bit platforms.
	for n > 0 {
		c := min(n, 1<<30)
		d, err := s.r.Discard(int(c))
		s.pos += int64(d)
		if err != nil {
			return s.readErr(err)
		}
		n -= c
	}
	return nil
}

// readHeader reads the next header in encoding e. At the top level, the end
// of the stream before the first byte of a header is the normal end: it
// returns io.EOF then.
func (s *scanner) readHeader(e enc, top bool) (header, error) {
	var h header
	if top {
		if _, err := s.r.Peek(1); errors.Is(err, io.EOF) {
			return h, io.EOF
		}
	}
	b := s.hdr[:8]
	if err := s.read(b); err != nil {
		return h, err
	}
	h.tag = Tag(uint32(e.bo.Uint16(b[0:]))<<16 | uint32(e.bo.Uint16(b[2:])))
	if h.tag.Group() == 0xFFFE || !e.explicit {
		// Items and delimiters have no VR in any encoding.
		h.length = e.bo.Uint32(b[4:])
		return h, nil
	}
	if !isVRBytes(b[4], b[5]) {
		return h, s.malformed("element %s: invalid VR bytes % x", h.tag, b[4:6])
	}
	h.vr = string(b[4:6])
	if hasLongLength(h.vr) {
		if err := s.read(s.hdr[8:12]); err != nil {
			return h, err
		}
		h.length = e.bo.Uint32(s.hdr[8:12])
	} else {
		h.length = uint32(e.bo.Uint16(b[6:]))
	}
	return h, nil
}

// dataSet reads the top-level data set to the end of the stream.
func (s *scanner) dataSet() error {
	for {
		h, err := s.readHeader(s.enc, true)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if h.tag.Group() == 0xFFFE {
			return s.malformed("item tag %s outside a sequence", h.tag)
		}
		if s.stopAfter != 0 && h.tag > s.stopAfter {
			return nil
		}
		if h.length == undefinedLength {
			if err := s.undefined(h, s.enc, 1); err != nil {
				return err
			}
			continue
		}
		if _, ok := s.want[h.tag]; ok && h.length <= MaxValueLength {
			if err := s.value(h); err != nil {
				return err
			}
			continue
		}
		if err := s.skip(h.length); err != nil {
			return err
		}
	}
}

// undefined reads the body of an undefined-length element (a sequence or
// encapsulated pixel data) up to and including its sequence delimiter.
func (s *scanner) undefined(h header, e enc, depth int) error {
	switch {
	case depth > maxDepth:
		return s.malformed("element %s: sequences nested deeper than %d", h.tag, maxDepth)
	case h.vr == "UN":
		// The contents of an undefined-length UN element are implicit VR
		// little endian whatever the transfer syntax (PS3.5 §6.2.2).
		e = enc{binary.LittleEndian, false}
	case h.vr != "" && h.vr != "SQ" && h.vr != "OB" && h.vr != "OW":
		return s.malformed("element %s: VR %s with undefined length", h.tag, h.vr)
	}
	// Sequence items and pixel data fragments are both items, ended by a
	// sequence delimiter; only undefined-length items (never fragments) need
	// parsing, everything else is skipped by its length.
	for {
		ih, err := s.readHeader(e, false)
		if err != nil {
			return err
		}
		switch ih.tag {
		case SequenceDelimitationItem:
			return nil
		case Item:
		default:
			return s.malformed("element %s: %s where an item or sequence delimiter belongs", h.tag, ih.tag)
		}
		if ih.length != undefinedLength {
			if err := s.skip(ih.length); err != nil {
				return err
			}
			continue
		}
		if err := s.item(e, depth); err != nil {
			return err
		}
	}
}

// item reads the elements of an undefined-length item up to and including its
// item delimiter.
func (s *scanner) item(e enc, depth int) error {
	for {
		h, err := s.readHeader(e, false)
		if err != nil {
			return err
		}
		switch {
		case h.tag == ItemDelimitationItem:
			return nil
		case h.tag.Group() == 0xFFFE:
			return s.malformed("%s inside an item", h.tag)
		case h.length == undefinedLength:
			if err := s.undefined(h, e, depth+1); err != nil {
				return err
			}
		default:
			if err := s.skip(h.length); err != nil {
				return err
			}
		}
	}
}

// value reads and records a wanted top-level element of defined length at
// most MaxValueLength.
func (s *scanner) value(h header) error {
	buf := make([]byte, h.length)
	if err := s.read(buf); err != nil {
		return err
	}
	vr := h.vr
	if vr == "" || vr == "UN" {
		// Implicit VR, or a writer that did not know the tag: a value
		// encoded as UN is still in its own VR's encoding (PS3.5 §6.2.2).
		if d := dictVR(h.tag); d != "UN" || vr == "" {
			vr = d
		}
	}
	v := Value{VR: vr}
	bo := s.enc.bo
	switch vr {
	case "US", "SS":
		v.Str, v.Int, v.HasInt = binaryInts(buf, 2, func(b []byte) int64 {
			if vr == "SS" {
				return int64(int16(bo.Uint16(b)))
			}
			return int64(bo.Uint16(b))
		})
	case "UL", "SL":
		v.Str, v.Int, v.HasInt = binaryInts(buf, 4, func(b []byte) int64 {
			if vr == "SL" {
				return int64(int32(bo.Uint32(b)))
			}
			return int64(bo.Uint32(b))
		})
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UN", "SV", "UV", "FL", "FD", "AT":
		// Binary: kept as raw bytes (UN may be text of an unknown tag in
		// implicit VR; its padding is trimmed like text).
		v.Str = trimValue(buf, false)
	default:
		v.Str = trimValue(buf, leadingSpaceInsignificant(vr))
		if vr == "IS" {
			first, _, _ := strings.Cut(v.Str, `\`)
			if n, err := strconv.ParseInt(strings.TrimSpace(first), 10, 64); err == nil {
				v.Int, v.HasInt = n, true
			}
		}
	}
	if v.Str == "" && !v.HasInt {
		return nil // an empty value is as good as absent
	}
	s.out[h.tag] = v
	return nil
}

// binaryInts decodes a binary integer value of n-byte units.
func binaryInts(b []byte, n int, dec func([]byte) int64) (string, int64, bool) {
	if len(b) < n {
		return "", 0, false
	}
	var sb strings.Builder
	first := dec(b)
	for i := 0; i+n <= len(b); i += n {
		if i > 0 {
			sb.WriteByte('\\')
		}
		sb.WriteString(strconv.FormatInt(dec(b[i:i+n]), 10))
	}
	return sb.String(), first, true
}
