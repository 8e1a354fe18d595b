package dcm

import (
	"bufio"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Kind says what a Header starts or ends.
type Kind uint8

const (
	// KindElement is an element whose value follows the header: read it with Value or
	// ValueReader, or leave it to Next, which skips it.
	KindElement Kind = iota + 1
	// KindSequence starts a sequence (VR SQ, or an undefined-length UN, whose items are
	// implicit VR little endian): KindItem headers follow, then KindSequenceEnd.
	KindSequence
	// KindItem starts an item of a sequence: its elements follow, then KindItemEnd.
	KindItem
	// KindItemEnd ends an item, at its delimiter or where its length says.
	KindItemEnd
	// KindFragments starts encapsulated pixel data (PS3.5 A.4): KindFragment headers follow,
	// then KindSequenceEnd.
	KindFragments
	// KindFragment is one item of encapsulated pixel data, whose value follows like an
	// element's. The first is the Basic Offset Table.
	KindFragment
	// KindSequenceEnd ends a sequence or encapsulated pixel data.
	KindSequenceEnd
)

// Header is one step of a data set: an element, or the start or end of a sequence, an item or
// encapsulated pixel data.
type Header struct {
	Kind Kind
	// Tag is the element's tag, Item for items and fragments, and for ends the tag of what
	// ends (the sequence's, or Item).
	Tag Tag
	// VR is as encoded in explicit VR, from the dictionary in implicit VR ("UN" for tags it
	// does not know); "SQ" for sequences, "" for items, fragments and ends.
	VR string
	// Length is the value length as encoded: UndefinedLength for undefined.
	Length uint32
	// Offset is where the value (or the first item) starts, counted from the first byte of
	// the data set; in a deflated data set, of the inflated bytes.
	Offset int64
	// Depth is the number of sequences the header is in: 0 at the top level.
	Depth int
	// BigEndian is the byte order of the value: the data set's, except in the items of an
	// undefined-length UN element and in fragments, which are little endian.
	BigEndian bool
}

// Reader reads the elements of one data set from a stream, one header at a time, bounded by
// its Limits: the one DICOM element reader of the node. It holds no value unless asked for it,
// so a data set of any size streams through it in constant memory. It checks the structure as
// it goes (lengths against their containers and, when the size of the input is known, against
// the bytes left; items inside sequences; delimiters); errors for data that breaks the rules
// wrap ErrMalformed, with io.ErrUnexpectedEOF for truncation, while errors of the underlying
// reader are passed on as they are. After an error every call returns it.
type Reader struct {
	src   *bufio.Reader // the caller's stream
	r     *bufio.Reader // headers and values: src, or the inflated stream
	own   *bufio.Reader // the buffer made for a stream that was not a *bufio.Reader, kept by Reset
	flate io.ReadCloser
	enc   encoding
	lim   Limits
	// size is the number of bytes of the data set when the input says (a byte slice, a file);
	// -1 when unknown.
	size  int64
	pos   int64
	stack []frame
	seqs  int // sequences and encapsulated pixel data on the stack
	// headers counts the elements, items and fragments read, against Limits.MaxElements.
	headers int
	// left is what remains unread of the current value.
	left int64
	// autoVR reads elements whose VR bytes are not letters as implicit VR: old writers did
	// that in the file meta group.
	autoVR bool
	err    error
	hdr    [12]byte
	cur    Header
}

// frame is an open sequence, item or encapsulated pixel data.
type frame struct {
	kind  Kind // KindSequence, KindItem or KindFragments
	tag   Tag
	end   int64 // offset after its last byte; -1 for undefined length
	enc   encoding
	count int // items or fragments read
}

// NewReader returns a Reader of a data set (no file meta) encoded in the transfer syntax from
// r. A syntax PS3.6 does not list is read as explicit VR little endian, the encoding every
// syntax defined since has. Reading from a *bufio.Reader reads nothing past what it consumes,
// so the caller can go on reading after a data set, or after part of one.
func NewReader(r io.Reader, transferSyntaxUID string, lim Limits) (*Reader, error) {
	if transferSyntaxUID == "" {
		return nil, errors.New("read data set: no transfer syntax")
	}
	enc, _ := encodingOf(transferSyntaxUID)
	return newReader(r, enc, lim, knownSize(r)), nil
}

func newReader(r io.Reader, enc encoding, lim Limits, size int64) *Reader {
	rd := &Reader{lim: lim.withDefaults()}
	rd.reset(r, enc, size)
	return rd
}

// Reset makes r read another data set, from src in the transfer syntax, with the same limits,
// as NewReader would, keeping the buffer it has: for callers that read many small data sets,
// such as the command set of every DIMSE message.
func (r *Reader) Reset(src io.Reader, transferSyntaxUID string) error {
	if transferSyntaxUID == "" {
		return errors.New("read data set: no transfer syntax")
	}
	enc, _ := encodingOf(transferSyntaxUID)
	r.reset(src, enc, knownSize(src))
	return nil
}

func (r *Reader) reset(src io.Reader, enc encoding, size int64) {
	br, ok := src.(*bufio.Reader)
	switch {
	case ok:
	case r.own != nil:
		r.own.Reset(src)
		br = r.own
	default:
		// A small input known whole (a DIMSE command set of a hundred bytes, a query identifier)
		// gets a buffer its size: allocating and clearing 32 KiB cost more than reading it.
		n := 32 << 10
		if size >= 0 && size < int64(n) {
			n = max(int(size), 16)
		}
		br = bufio.NewReaderSize(src, n)
		r.own = br
	}
	*r = Reader{src: br, r: br, own: r.own, enc: enc, lim: r.lim, size: size, stack: r.stack[:0]}
	if enc.deflated {
		r.flate = flate.NewReader(br)
		r.r = bufio.NewReaderSize(&inflateLimit{r: r.flate, left: r.lim.MaxInflated}, 32<<10)
		r.size = -1
	}
}

// knownSize is how many bytes r holds from where it stands, when r can tell; -1 otherwise.
func knownSize(r io.Reader) int64 {
	switch s := r.(type) {
	case interface{ Len() int }:
		if _, isBuf := r.(*bufio.Reader); !isBuf {
			return int64(s.Len())
		}
	case *os.File:
		st, err := s.Stat()
		if err != nil || !st.Mode().IsRegular() {
			return -1
		}
		off, err := s.Seek(0, io.SeekCurrent)
		if err != nil {
			return -1
		}
		return st.Size() - off
	}
	return -1
}

// errInflateLimit is what the inflater returns past Limits.MaxInflated.
var errInflateLimit = errors.New("inflate limit")

type inflateLimit struct {
	r    io.Reader
	left int64
}

func (l *inflateLimit) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One more byte tells a stream that ends exactly at the limit from one that goes on.
		var b [1]byte
		if n, _ := l.r.Read(b[:]); n > 0 {
			return 0, errInflateLimit
		}
		return l.r.Read(p)
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// Offset returns the number of data set bytes consumed.
func (r *Reader) Offset() int64 { return r.pos }

func (r *Reader) malformed(format string, args ...any) error {
	return fmt.Errorf("%w: offset %d: %s", ErrMalformed, r.pos, fmt.Sprintf(format, args...))
}

func (r *Reader) overLimit(format string, args ...any) error {
	return fmt.Errorf("%w: %w: offset %d: %s", ErrMalformed, ErrLimit, r.pos, fmt.Sprintf(format, args...))
}

// readErr turns an error of the stream into one for the caller: the end of the stream inside
// a structure is truncation (malformed); a corrupt deflate stream is malformed; anything else
// came from below and is passed on.
func (r *Reader) readErr(err error) error {
	var ce flate.CorruptInputError
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		where := ""
		for i := len(r.stack) - 1; i >= 0; i-- {
			if f := r.stack[i]; f.end < 0 {
				where = fmt.Sprintf(" inside %s, before its delimiter", f.describe())
				break
			}
		}
		return fmt.Errorf("%w: offset %d: data set truncated%s: %w", ErrMalformed, r.pos, where, io.ErrUnexpectedEOF)
	case errors.As(err, &ce):
		return fmt.Errorf("%w: offset %d: deflate: %v", ErrMalformed, r.pos, err)
	case errors.Is(err, errInflateLimit):
		return r.overLimit("the deflated data set inflates past %d bytes", r.lim.MaxInflated)
	}
	return fmt.Errorf("read data set: offset %d: %w", r.pos, err)
}

func (f frame) describe() string {
	switch f.kind {
	case KindItem:
		return "an item"
	case KindFragments:
		return "the encapsulated pixel data " + f.tag.String()
	}
	return "the sequence " + f.tag.String()
}

func (r *Reader) read(b []byte) error {
	if r.r.Buffered() >= len(b) {
		// All in the buffer: one copy, no loop.
		n, _ := r.r.Read(b)
		r.pos += int64(n)
		return nil
	}
	n, err := io.ReadFull(r.r, b)
	r.pos += int64(n)
	if err != nil {
		return r.readErr(err)
	}
	return nil
}

func (r *Reader) discard(n int64) error {
	// bufio's Discard reads through its buffer without allocating. Chunks keep the count
	// within an int on 32-bit platforms.
	for n > 0 {
		c := min(n, 1<<30)
		d, err := r.r.Discard(int(c))
		r.pos += int64(d)
		if err != nil {
			return r.readErr(err)
		}
		n -= c
	}
	return nil
}

// Next returns the next header. At the end of the data set it returns io.EOF (after reading
// what follows a deflate stream to the end of the input, so that a tee sees all of it). A value
// not read is skipped.
func (r *Reader) Next() (Header, error) {
	h, err := r.advance()
	if err != nil {
		return Header{}, err
	}
	return *h, nil
}

// advance is Next without the copy: the header stays valid until the next call.
func (r *Reader) advance() (*Header, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.left > 0 {
		if err := r.discard(r.left); err != nil {
			r.err = err
			return nil, err
		}
		r.left = 0
	}
	if err := r.next(&r.cur); err != nil {
		r.err = err
		return nil, err
	}
	return &r.cur, nil
}

func (r *Reader) push(f frame) {
	r.stack = append(r.stack, f)
	if f.kind != KindItem {
		r.seqs++
	}
}

func (r *Reader) pop() frame {
	f := r.stack[len(r.stack)-1]
	r.stack = r.stack[:len(r.stack)-1]
	if f.kind != KindItem {
		r.seqs--
	}
	return f
}

func (r *Reader) next(h *Header) error {
	var f *frame
	enc := r.enc
	if n := len(r.stack); n > 0 {
		f = &r.stack[n-1]
		enc = f.enc
		if f.end >= 0 && r.pos >= f.end {
			// A container of defined length ends where its length says.
			if r.pos > f.end {
				return r.malformed("the contents of %s run %d bytes past its end", f.describe(), r.pos-f.end)
			}
			done := r.pop()
			kind := KindSequenceEnd
			if done.kind == KindItem {
				kind = KindItemEnd
			}
			*h = Header{Kind: kind, Tag: done.tag, Offset: r.pos, Depth: r.seqs, BigEndian: done.enc.bigEndian}
			return nil
		}
	} else {
		// At the top level the end of the stream before a header is the end of the data set.
		if r.r.Buffered() > 0 {
		} else if _, err := r.r.Peek(1); err != nil {
			if errors.Is(err, io.EOF) {
				return r.finish()
			}
			return r.readErr(err)
		}
	}
	if r.headers++; r.headers > r.lim.MaxElements {
		return r.overLimit("more than %d elements, items and fragments", r.lim.MaxElements)
	}
	b := r.hdr[:8]
	if err := r.read(b); err != nil {
		return err
	}
	be := enc.bigEndian
	tag := Tag(uint32(u16(b[0:], be))<<16 | uint32(u16(b[2:], be)))
	if d := r.defined(); d != nil && r.pos > d.end {
		return r.malformed("%s runs past the end of %s", tag, d.describe())
	}
	if tag.Group() == 0xFFFE {
		return r.itemHeader(h, f, tag, u32(b[4:], be))
	}
	if f != nil && f.kind != KindItem {
		if f.kind == KindFragments {
			return r.malformed("element %s: %s where a fragment or sequence delimiter belongs", f.tag, tag)
		}
		return r.malformed("element %s: %s where an item or sequence delimiter belongs", f.tag, tag)
	}

	var vr string
	var length uint32
	switch {
	case !enc.explicit || r.autoVR && !isVRBytes(b[4], b[5]):
		vr, length = VROf(tag), u32(b[4:], be)
	case !isVRBytes(b[4], b[5]):
		return r.malformed("element %s: invalid VR bytes % x", tag, b[4:6])
	default:
		vr = vrString(b[4], b[5])
		if hasLongLength(vr) {
			if err := r.read(r.hdr[8:12]); err != nil {
				return err
			}
			length = u32(r.hdr[8:12], be)
		} else {
			length = uint32(u16(b[6:], be))
		}
	}
	*h = Header{Tag: tag, VR: vr, Length: length, Offset: r.pos, Depth: r.seqs, BigEndian: enc.bigEndian}

	if length == UndefinedLength {
		var contents encoding
		switch {
		case tag == PixelData || vr == "OB" || vr == "OW":
			// Fragments are little endian items in every transfer syntax.
			h.Kind, contents = KindFragments, encoding{}
		case vr == "SQ":
			h.Kind, contents = KindSequence, enc
		case vr == "UN" || !enc.explicit:
			// The items of an undefined-length UN are implicit VR little endian whatever the
			// transfer syntax (PS3.5 §6.2.2); in implicit VR, undefined length means a sequence.
			h.Kind, h.VR, contents = KindSequence, "SQ", encoding{}
		default:
			return r.malformed("element %s: VR %s with undefined length", tag, vr)
		}
		if r.seqs >= r.lim.MaxDepth {
			return r.overLimit("element %s: sequences nested deeper than %d", tag, r.lim.MaxDepth)
		}
		r.push(frame{kind: h.Kind, tag: tag, end: -1, enc: contents})
		return nil
	}
	if err := r.fits(length, tag.String); err != nil {
		return err
	}
	if vr == "SQ" {
		if r.seqs >= r.lim.MaxDepth {
			return r.overLimit("element %s: sequences nested deeper than %d", tag, r.lim.MaxDepth)
		}
		h.Kind = KindSequence
		r.push(frame{kind: KindSequence, tag: tag, end: r.pos + int64(length), enc: enc})
		return nil
	}
	h.Kind = KindElement
	r.left = int64(length)
	return nil
}

// defined returns the innermost open container of defined length, whose end bounds everything
// inside it (undefined-length ones included), or nil.
func (r *Reader) defined() *frame {
	for i := len(r.stack) - 1; i >= 0; i-- {
		if r.stack[i].end >= 0 {
			return &r.stack[i]
		}
	}
	return nil
}

// u16 and u32 decode in a byte order without an interface call on the hot path.
func u16(b []byte, bigEndian bool) uint16 {
	if bigEndian {
		return binary.BigEndian.Uint16(b)
	}
	return binary.LittleEndian.Uint16(b)
}

func u32(b []byte, bigEndian bool) uint32 {
	if bigEndian {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

// fits checks a length against the containers it is in and against the input.
// what names the thing of the length (made only for an error).
func (r *Reader) fits(length uint32, what func() string) error {
	if d := r.defined(); d != nil && r.pos+int64(length) > d.end {
		return r.malformed("%s claims %d bytes, %d remain in %s", what(), length, d.end-r.pos, d.describe())
	}
	if r.size >= 0 && r.pos+int64(length) > r.size {
		return fmt.Errorf("%w: offset %d: data set truncated: %s claims %d bytes, which exceeds the %d that remain: %w",
			ErrMalformed, r.pos, what(), length, r.size-r.pos, io.ErrUnexpectedEOF)
	}
	return nil
}

// itemHeader handles an item or delimiter tag in the container f (nil: the top level).
func (r *Reader) itemHeader(h *Header, f *frame, tag Tag, length uint32) error {
	*h = Header{Tag: tag, Length: length, Offset: r.pos, Depth: r.seqs}
	switch {
	case f == nil:
		return r.malformed("item tag %s outside a sequence", tag)
	case f.kind == KindItem:
		if tag == ItemDelimitationItem && f.end < 0 {
			r.pop()
			h.Kind, h.Tag = KindItemEnd, Item
			return nil
		}
		return r.malformed("%s inside an item", tag)
	}
	if tag == SequenceDelimitationItem {
		if f.kind == KindSequence && f.end >= 0 {
			return r.malformed("sequence delimiter inside the defined-length sequence %s", f.tag)
		}
		done := r.pop()
		h.Kind, h.Tag = KindSequenceEnd, done.tag
		return nil
	}
	if tag != Item {
		return r.malformed("element %s: %s where an item or sequence delimiter belongs", f.tag, tag)
	}
	f.count++
	h.BigEndian = f.enc.bigEndian
	if f.kind == KindFragments {
		switch {
		case length == UndefinedLength:
			return r.malformed("encapsulated pixel data %s: fragment %d has undefined length", f.tag, f.count)
		case f.count > r.lim.MaxFragments:
			return r.overLimit("encapsulated pixel data %s: more than %d fragments", f.tag, r.lim.MaxFragments)
		}
		if err := r.fits(length, func() string { return fmt.Sprintf("fragment %d of %s", f.count, f.tag) }); err != nil {
			return err
		}
		h.Kind = KindFragment
		r.left = int64(length)
		return nil
	}
	end := int64(-1)
	if length != UndefinedLength {
		if err := r.fits(length, func() string { return fmt.Sprintf("item %d of %s", f.count, f.tag) }); err != nil {
			return err
		}
		end = r.pos + int64(length)
	}
	h.Kind = KindItem
	r.push(frame{kind: KindItem, tag: Item, end: end, enc: f.enc})
	return nil
}

// finish ends the data set: a deflate stream may end before the input does (a pad byte, say),
// and the rest must still be read for a caller's tee.
func (r *Reader) finish() error {
	if r.flate != nil {
		r.flate.Close()
		if _, err := io.Copy(io.Discard, r.src); err != nil {
			return fmt.Errorf("read data set: after the deflate stream: %w", err)
		}
	}
	return io.EOF
}

// Value reads the value of the current element or fragment, at most Limits.MaxValueLength
// bytes.
func (r *Reader) Value() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.left > r.lim.MaxValueLength {
		return nil, r.overLimit("a value of %d bytes is longer than the limit of %d", r.left, r.lim.MaxValueLength)
	}
	n := r.left
	if r.size >= 0 || n <= 1<<20 {
		b := make([]byte, n)
		return b, r.readInto(b)
	}
	// The input's size is unknown: grow as the bytes arrive, so that a lying length costs
	// what was sent, not what it claims.
	b := make([]byte, 0, 1<<20)
	for int64(len(b)) < n {
		c := min(n-int64(len(b)), int64(max(cap(b)-len(b), 1<<20)))
		if cap(b)-len(b) < int(c) {
			nb := make([]byte, len(b), 2*cap(b))
			copy(nb, b)
			b = nb
		}
		if err := r.readInto(b[len(b) : len(b)+int(c)]); err != nil {
			return nil, err
		}
		b = b[:len(b)+int(c)]
	}
	return b, nil
}

// readInto reads the next len(b) bytes of the current value.
func (r *Reader) readInto(b []byte) error {
	if int64(len(b)) > r.left {
		return fmt.Errorf("read data set: %d bytes asked of a value with %d left", len(b), r.left)
	}
	r.left -= int64(len(b))
	if err := r.read(b); err != nil {
		r.err = err
		return err
	}
	return nil
}

// ValueReader returns the unread bytes of the current value as a stream, for values too large
// to hold; it ends with io.EOF at the value's end.
func (r *Reader) ValueReader() io.Reader { return valueReader{r} }

type valueReader struct{ r *Reader }

func (v valueReader) Read(p []byte) (int, error) {
	r := v.r
	if r.err != nil {
		return 0, r.err
	}
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.r.Read(p)
	r.pos += int64(n)
	r.left -= int64(n)
	if err != nil && !(errors.Is(err, io.EOF) && r.left == 0) {
		r.err = r.readErr(err)
		return n, r.err
	}
	return n, nil
}

// skipContainer skips what follows the header of a sequence or encapsulated pixel data, up to
// and including its end. A container of undefined length is read through, and checked as it
// goes; one of defined length is skipped whole, as its length already fits its container.
func (r *Reader) skipContainer() error {
	if skipped, err := r.skipDefinedTop(); err != nil || skipped {
		return err
	}
	for depth := 1; depth > 0; {
		h, err := r.advance()
		if err != nil {
			if err == io.EOF {
				return r.readErr(io.ErrUnexpectedEOF)
			}
			return err
		}
		switch h.Kind {
		case KindSequence, KindFragments, KindItem:
			if skipped, err := r.skipDefinedTop(); err != nil {
				return err
			} else if !skipped {
				depth++
			}
		case KindItemEnd, KindSequenceEnd:
			depth--
		}
	}
	return nil
}

// skipDefinedTop skips the container just opened, and reports so, when its length is defined.
func (r *Reader) skipDefinedTop() (bool, error) {
	if r.err != nil {
		return false, r.err
	}
	n := len(r.stack)
	if n == 0 || r.stack[n-1].end < 0 {
		return false, nil
	}
	f := r.pop()
	if err := r.discard(f.end - r.pos); err != nil {
		r.err = err
		return false, err
	}
	return true, nil
}

// peekGroup returns the group of the next element without consuming it.
func (r *Reader) peekGroup() (uint16, error) {
	b, err := r.r.Peek(2)
	if err != nil {
		return 0, err
	}
	return r.enc.order().Uint16(b), nil
}

// vrString returns the VR of two bytes, without allocating for the VRs PS3.5 defines.
func vrString(a, b byte) string {
	switch uint16(a)<<8 | uint16(b) {
	case 'A'<<8 | 'E':
		return "AE"
	case 'A'<<8 | 'S':
		return "AS"
	case 'A'<<8 | 'T':
		return "AT"
	case 'C'<<8 | 'S':
		return "CS"
	case 'D'<<8 | 'A':
		return "DA"
	case 'D'<<8 | 'S':
		return "DS"
	case 'D'<<8 | 'T':
		return "DT"
	case 'F'<<8 | 'D':
		return "FD"
	case 'F'<<8 | 'L':
		return "FL"
	case 'I'<<8 | 'S':
		return "IS"
	case 'L'<<8 | 'O':
		return "LO"
	case 'L'<<8 | 'T':
		return "LT"
	case 'O'<<8 | 'B':
		return "OB"
	case 'O'<<8 | 'D':
		return "OD"
	case 'O'<<8 | 'F':
		return "OF"
	case 'O'<<8 | 'L':
		return "OL"
	case 'O'<<8 | 'V':
		return "OV"
	case 'O'<<8 | 'W':
		return "OW"
	case 'P'<<8 | 'N':
		return "PN"
	case 'S'<<8 | 'H':
		return "SH"
	case 'S'<<8 | 'L':
		return "SL"
	case 'S'<<8 | 'Q':
		return "SQ"
	case 'S'<<8 | 'S':
		return "SS"
	case 'S'<<8 | 'T':
		return "ST"
	case 'S'<<8 | 'V':
		return "SV"
	case 'T'<<8 | 'M':
		return "TM"
	case 'U'<<8 | 'C':
		return "UC"
	case 'U'<<8 | 'I':
		return "UI"
	case 'U'<<8 | 'L':
		return "UL"
	case 'U'<<8 | 'N':
		return "UN"
	case 'U'<<8 | 'R':
		return "UR"
	case 'U'<<8 | 'S':
		return "US"
	case 'U'<<8 | 'T':
		return "UT"
	case 'U'<<8 | 'V':
		return "UV"
	}
	return string([]byte{a, b})
}
