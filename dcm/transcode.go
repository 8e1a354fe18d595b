package dcm

import (
	"errors"
	"fmt"
	"io"
)

// ExplicitToImplicit rewrites an explicit VR little endian data set as implicit VR little
// endian, streaming: values are copied, not held, and undefined-length sequences stay undefined;
// only defined-length sequences are held (up to Limits.MaxBufferedSequence), since their lengths
// change with the encoding. Group length elements are dropped (PS3.5 §7.2: optional), since
// lengths change. The output is never longer than the input, so a value of odd length, which
// would need a pad byte, is refused (PS3.5 §7.1.1 wants even lengths). Implicit VR little
// endian is the default transfer syntax every peer accepts, so this lets the node send explicit
// data to any of them without a data dictionary.
func ExplicitToImplicit(dst io.Writer, src io.Reader) error {
	r, err := NewReader(src, ExplicitVRLittleEndian, Limits{})
	if err != nil {
		return fmt.Errorf("explicit to implicit: %w", err)
	}
	w := newWriter(dst, encoding{})
	c := converter{r: r, w: w}
	if err := c.elements(true); err != nil {
		return fmt.Errorf("explicit to implicit: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("explicit to implicit: %w", err)
	}
	return nil
}

type converter struct {
	r *Reader
	w *Writer
}

// elements converts up to the end of the data set (top) or of the current undefined-length
// item.
func (c *converter) elements(top bool) error {
	for {
		h, err := c.r.Next()
		switch {
		case err == io.EOF && top:
			return nil
		case err != nil:
			return eofInside(c.r, err)
		}
		switch h.Kind {
		case KindItemEnd:
			return c.w.EndItem()
		case KindFragments:
			return c.r.malformed("element %s: encapsulated pixel data has no implicit VR encoding", h.Tag)
		case KindSequence:
			if err := c.sequence(h); err != nil {
				return err
			}
		case KindElement:
			if h.Tag.Element() == 0 && h.VR == "UL" && h.Length == 4 {
				continue // a group length
			}
			if h.Length%2 == 1 {
				return c.r.malformed("element %s has odd length %d", h.Tag, h.Length)
			}
			if err := c.w.WriteValueFrom(h.Tag, "UN", int64(h.Length), c.r.ValueReader()); err != nil {
				return c.wrap(err)
			}
		}
	}
}

// wrap marks a writer error caused by the input (elements out of order) as malformed input;
// errors of the reader and of the destination pass as they are.
func (c *converter) wrap(err error) error {
	switch {
	case c.r.err != nil:
		return c.r.err
	case errors.Is(err, errOrder):
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return err
}

func (c *converter) sequence(h Header) error {
	if h.Length != UndefinedLength {
		// Its length changes with the encoding: convert it in memory, within bounds.
		if int64(h.Length) > c.r.lim.MaxBufferedSequence {
			return c.r.overLimit("element %s: a defined-length sequence of %d bytes", h.Tag, h.Length)
		}
		p := parser{r: c.r, opts: ParseOptions{dropGroupLengths: true, rejectOdd: true}}
		e, err := p.element(&h)
		if err != nil {
			return err
		}
		if err := c.w.WriteElement(&e); err != nil {
			return c.wrap(err)
		}
		return nil
	}
	if err := c.w.BeginSequence(h.Tag); err != nil {
		return c.wrap(err)
	}
	for {
		ih, err := c.r.Next()
		if err != nil {
			return eofInside(c.r, err)
		}
		switch {
		case ih.Kind == KindSequenceEnd:
			return c.w.EndSequence()
		case ih.Length == UndefinedLength:
			if err := c.w.BeginItem(); err != nil {
				return c.wrap(err)
			}
			if err := c.elements(false); err != nil {
				return err
			}
		default:
			if int64(ih.Length) > c.r.lim.MaxBufferedSequence {
				return c.r.overLimit("an item of %d bytes", ih.Length)
			}
			item := &DataSet{}
			p := parser{r: c.r, opts: ParseOptions{dropGroupLengths: true, rejectOdd: true}}
			if err := p.items(item, false); err != nil {
				return err
			}
			if err := c.w.WriteItem(item); err != nil {
				return c.wrap(err)
			}
		}
	}
}
