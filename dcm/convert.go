package dcm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// maxBufferedSequence bounds a defined-length sequence converted in memory (its length changes
// with the encoding, so it must be rewritten whole). Sequences are small; pixel data is not in one.
const maxBufferedSequence = 16 << 20

// ExplicitToImplicit rewrites an explicit VR little endian data set as implicit VR little endian,
// streaming: values are copied, not held, except defined-length sequences, whose lengths must be
// recomputed. Group length elements are dropped (PS3.5 7.2: optional), since lengths change.
// Implicit VR little endian is the default transfer syntax every peer accepts, so this lets the
// node send explicit data to any of them without a data dictionary.
func ExplicitToImplicit(dst io.Writer, src io.Reader) error {
	br, ok := src.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(src, 64<<10)
	}
	bw := bufio.NewWriterSize(dst, 64<<10)
	c := converter{r: br}
	if err := c.elements(bw, -1, 0); err != nil {
		return fmt.Errorf("explicit to implicit: %w", err)
	}
	return bw.Flush()
}

type converter struct {
	r   *bufio.Reader
	off int64
}

func (c *converter) read(b []byte) error {
	n, err := io.ReadFull(c.r, b)
	c.off += int64(n)
	if err != nil {
		return fmt.Errorf("%w: offset %d: %w", ErrMalformed, c.off, noEOF(err))
	}
	return nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// elements converts elements until limit bytes are consumed (-1: until EOF, or until an item
// delimiter when inItem).
func (c *converter) elements(w *bufio.Writer, limit int64, depth int) error {
	if depth > 64 {
		return fmt.Errorf("%w: sequences nested deeper than 64", ErrMalformed)
	}
	start := c.off
	for limit < 0 || c.off-start < limit {
		var h [8]byte
		n, err := io.ReadFull(c.r, h[:4])
		c.off += int64(n)
		if limit < 0 && depth == 0 && err == io.EOF && n == 0 {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: offset %d: %w", ErrMalformed, c.off, noEOF(err))
		}
		tag := NewTag(binary.LittleEndian.Uint16(h[0:]), binary.LittleEndian.Uint16(h[2:]))
		if tag == ItemDelimitationItem {
			if depth == 0 {
				return fmt.Errorf("%w: offset %d: item delimiter outside a sequence", ErrMalformed, c.off)
			}
			if err := c.read(h[4:8]); err != nil {
				return err
			}
			_, err := w.Write(h[:8])
			return err
		}
		if err := c.read(h[4:8]); err != nil {
			return err
		}
		vr := string(h[4:6])
		if !isVRBytes(h[4], h[5]) {
			return fmt.Errorf("%w: offset %d: %s has no explicit VR", ErrMalformed, c.off, tag)
		}
		var length uint32
		if hasLongLength(vr) {
			var l [4]byte
			if err := c.read(l[:]); err != nil {
				return err
			}
			length = binary.LittleEndian.Uint32(l[:])
		} else {
			length = uint32(binary.LittleEndian.Uint16(h[6:]))
		}
		if tag.Element() == 0 && length == 4 && vr == "UL" {
			if _, err := c.r.Discard(4); err != nil {
				return fmt.Errorf("%w: %w", ErrMalformed, noEOF(err))
			}
			c.off += 4
			continue
		}
		if vr == "SQ" || (length == undefinedLength && vr == "UN") {
			if err := c.sequence(w, tag, length, depth); err != nil {
				return err
			}
			continue
		}
		if length == undefinedLength {
			// Encapsulated pixel data cannot be in an explicit-to-implicit conversion.
			return fmt.Errorf("%w: %s has undefined length outside a sequence", ErrMalformed, tag)
		}
		writeImplicitHeader(w, tag, length)
		m, err := io.CopyN(w, c.r, int64(length))
		c.off += m
		if err != nil {
			return fmt.Errorf("%w: %s value: %w", ErrMalformed, tag, noEOF(err))
		}
	}
	return nil
}

func writeImplicitHeader(w *bufio.Writer, tag Tag, length uint32) {
	var h [8]byte
	binary.LittleEndian.PutUint16(h[0:], tag.Group())
	binary.LittleEndian.PutUint16(h[2:], tag.Element())
	binary.LittleEndian.PutUint32(h[4:], length)
	w.Write(h[:])
}

// sequence converts a sequence. Undefined lengths stay undefined and stream; defined lengths are
// recomputed from a converted copy in memory.
func (c *converter) sequence(w *bufio.Writer, tag Tag, length uint32, depth int) error {
	if length == undefinedLength {
		writeImplicitHeader(w, tag, undefinedLength)
		return c.items(w, -1, depth)
	}
	if length > maxBufferedSequence {
		return fmt.Errorf("%w: %s: a defined-length sequence of %d bytes", ErrMalformed, tag, length)
	}
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	if err := c.items(bw, int64(length), depth); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	writeImplicitHeader(w, tag, uint32(buf.Len()))
	_, err := w.Write(buf.Bytes())
	return err
}

func (c *converter) items(w *bufio.Writer, limit int64, depth int) error {
	start := c.off
	for limit < 0 || c.off-start < limit {
		var h [8]byte
		if err := c.read(h[:]); err != nil {
			return err
		}
		tag := NewTag(binary.LittleEndian.Uint16(h[0:]), binary.LittleEndian.Uint16(h[2:]))
		n := binary.LittleEndian.Uint32(h[4:])
		switch tag {
		case SequenceDelimitationItem:
			if limit >= 0 {
				return fmt.Errorf("%w: sequence delimiter in a defined-length sequence", ErrMalformed)
			}
			_, err := w.Write(h[:])
			return err
		case Item:
		default:
			return fmt.Errorf("%w: offset %d: %s where an item was expected", ErrMalformed, c.off, tag)
		}
		if n == undefinedLength {
			w.Write(h[:])
			if err := c.elements(w, -1, depth+1); err != nil {
				return err
			}
			continue
		}
		if n > maxBufferedSequence {
			return fmt.Errorf("%w: an item of %d bytes", ErrMalformed, n)
		}
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		if err := c.elements(bw, int64(n), depth+1); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		writeImplicitHeader(w, Item, uint32(buf.Len()))
		w.Write(buf.Bytes())
	}
	if limit < 0 {
		return fmt.Errorf("%w: sequence without delimiter", ErrMalformed)
	}
	return nil
}
