package dcm

import (
	"bufio"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
)

// Writer encodes a data set in a transfer syntax: the one DICOM writer of the node. Elements
// go out in ascending tag order within each data set and item (it refuses any other order, and
// a tag given twice), every value is padded to even length with its VR's pad byte, binary
// values are put in the syntax's byte order, and sequences and items written whole get defined
// lengths. Sequences can also be streamed with undefined lengths (BeginSequence, BeginItem).
// Close flushes it, and ends the deflate stream of a deflated syntax.
type Writer struct {
	bw    *bufio.Writer
	fw    *flate.Writer
	enc   encoding
	stack []writeFrame
	last  Tag // last tag written at the top level
	begun bool
	err   error
	hdr   [12]byte
}

// writeFrame is an undefined-length sequence or item being streamed.
type writeFrame struct {
	item  bool
	last  Tag
	begun bool
}

// errOrder is wrapped by the errors for elements out of tag order.
var errOrder = errors.New("elements go in ascending tag order, each tag once")

// NewWriter returns a Writer of a data set in the transfer syntax to w. A syntax PS3.6 does not
// list is written in explicit VR little endian, as NewReader reads it.
func NewWriter(w io.Writer, transferSyntaxUID string) (*Writer, error) {
	if transferSyntaxUID == "" {
		return nil, errors.New("write data set: no transfer syntax")
	}
	enc, _ := encodingOf(transferSyntaxUID)
	return newWriter(w, enc), nil
}

func newWriter(w io.Writer, enc encoding) *Writer { return newWriterSize(w, enc, 64<<10) }

func newWriterSize(w io.Writer, enc encoding, size int) *Writer {
	wr := &Writer{enc: enc}
	if enc.deflated {
		// flate.NewWriter only fails for a bad level.
		wr.fw, _ = flate.NewWriter(w, flate.DefaultCompression)
		w = wr.fw
	}
	wr.bw = bufio.NewWriterSize(w, size)
	return wr
}

// AppendDataSet appends the encoding of ds in the transfer syntax to dst and returns the
// extended slice: Encode for small data sets built in memory, such as the DIMSE command sets of
// every message, which need no stream buffer of their own.
func AppendDataSet(dst []byte, ds *DataSet, transferSyntaxUID string) ([]byte, error) {
	if transferSyntaxUID == "" {
		return dst, errors.New("write data set: no transfer syntax")
	}
	enc, _ := encodingOf(transferSyntaxUID)
	a := &appender{b: dst}
	w := newWriterSize(a, enc, 256)
	if err := w.WriteDataSet(ds); err != nil {
		return dst, err
	}
	if err := w.Close(); err != nil {
		return dst, err
	}
	return a.b, nil
}

// appender is an io.Writer that appends to a slice.
type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// Encode returns the data set encoded in the transfer syntax.
func Encode(ds *DataSet, transferSyntaxUID string) ([]byte, error) {
	return AppendDataSet(nil, ds, transferSyntaxUID)
}

// Close writes what is buffered and ends a deflate stream; it does not close the underlying
// writer. Sequences still open are an error.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if len(w.stack) > 0 {
		return errors.New("write data set: closed with a sequence still open")
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("write data set: %w", err)
	}
	if w.fw != nil {
		if err := w.fw.Close(); err != nil {
			return fmt.Errorf("write data set: %w", err)
		}
	}
	return nil
}

// Flush writes what is buffered (a deflate stream stays open).
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("write data set: %w", err)
	}
	return w.err
}

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return err
}

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	if _, err := w.bw.Write(b); err != nil {
		w.err = fmt.Errorf("write data set: %w", err)
	}
}

// order checks that tag may come next in the data set or item being written, and records it.
func (w *Writer) order(tag Tag) error {
	last, begun := &w.last, &w.begun
	if n := len(w.stack); n > 0 {
		f := &w.stack[n-1]
		if !f.item {
			return fmt.Errorf("write data set: element %s inside a sequence, outside any item", tag)
		}
		last, begun = &f.last, &f.begun
	}
	if *begun && tag <= *last {
		if tag == *last {
			return fmt.Errorf("write data set: element %s given twice: %w", tag, errOrder)
		}
		return fmt.Errorf("write data set: element %s after %s: %w", tag, *last, errOrder)
	}
	*last, *begun = tag, true
	return nil
}

// WriteDataSet writes the elements of ds, sorted by tag.
func (w *Writer) WriteDataSet(ds *DataSet) error {
	if w.err != nil {
		return w.err
	}
	elems := ds.Elements
	if !slices.IsSortedFunc(elems, func(a, b Element) int { return cmpTag(a.Tag, b.Tag) }) {
		elems = slices.Clone(elems)
		slices.SortStableFunc(elems, func(a, b Element) int { return cmpTag(a.Tag, b.Tag) })
	}
	for i := range elems {
		if err := w.WriteElement(&elems[i]); err != nil {
			return err
		}
	}
	return w.err
}

// WriteElement writes one element whole: a value, a sequence with defined lengths, or
// encapsulated pixel data.
func (w *Writer) WriteElement(e *Element) error {
	if w.err != nil {
		return w.err
	}
	if err := w.order(e.Tag); err != nil {
		return w.fail(err)
	}
	if err := w.element(e); err != nil {
		return w.fail(fmt.Errorf("write data set: element %s: %w", e.Tag, err))
	}
	return w.err
}

func (w *Writer) vrOf(e *Element) string {
	switch {
	case e.VR != "":
		return e.VR
	case e.Items != nil:
		return "SQ"
	}
	return VROf(e.Tag)
}

func (w *Writer) element(e *Element) error {
	vr := w.vrOf(e)
	switch {
	case e.Skipped:
		return errors.New("its value was skipped when it was read")
	case e.Tag.Group() == 0xFFFE:
		return errors.New("an item tag is not an element")
	case vr == "SQ":
		n, err := w.sequenceLength(e)
		if err != nil {
			return err
		}
		if err := w.header(e.Tag, "SQ", n); err != nil {
			return err
		}
		return w.items(e)
	case e.Fragments != nil:
		if w.enc.explicit && vr != "OB" && vr != "OW" && vr != "UN" {
			return fmt.Errorf("encapsulated pixel data of VR %s", vr)
		}
		if err := w.header(e.Tag, vr, UndefinedLength); err != nil {
			return err
		}
		// Fragments are little endian items in every transfer syntax, as the reader reads them.
		for _, f := range e.Fragments {
			w.tagLength(binary.LittleEndian, Item, uint32(padded(len(f))))
			w.write(f)
			if len(f)%2 == 1 {
				w.write([]byte{0})
			}
		}
		w.tagLength(binary.LittleEndian, SequenceDelimitationItem, 0)
		return w.err
	}
	n := padded(len(e.Value))
	if n > math.MaxUint32-1 {
		return fmt.Errorf("a value of %d bytes is too long", len(e.Value))
	}
	if err := w.header(e.Tag, vr, uint32(n)); err != nil {
		return err
	}
	w.value(e, vr)
	return nil
}

func padded(n int) int { return n + n%2 }

// value writes e's value in the writer's byte order, padded.
func (w *Writer) value(e *Element, vr string) {
	v := e.Value
	if u := unitSize(vr); u > 1 && e.BigEndian != w.enc.bigEndian {
		v = swapped(v, u)
	}
	w.write(v)
	if len(v)%2 == 1 {
		w.write([]byte{padByte(vr)})
	}
}

// swapped returns a copy of b with the bytes of each unit-byte value reversed.
func swapped(b []byte, unit int) []byte {
	out := slices.Clone(b)
	for i := 0; i+unit <= len(out); i += unit {
		slices.Reverse(out[i : i+unit])
	}
	return out
}

// header writes an element header with the writer's encoding.
func (w *Writer) header(tag Tag, vr string, length uint32) error {
	bo := w.enc.order()
	h := w.hdr[:]
	bo.PutUint16(h[0:], tag.Group())
	bo.PutUint16(h[2:], tag.Element())
	switch {
	case !w.enc.explicit:
		bo.PutUint32(h[4:], length)
		w.write(h[:8])
	case hasLongLength(vr):
		h[4], h[5], h[6], h[7] = vr[0], vr[1], 0, 0
		bo.PutUint32(h[8:], length)
		w.write(h[:12])
	default:
		if len(vr) != 2 || !isVRBytes(vr[0], vr[1]) {
			return fmt.Errorf("VR %q", vr)
		}
		if length > math.MaxUint16 {
			return fmt.Errorf("a value of %d bytes is too long for VR %s", length, vr)
		}
		h[4], h[5] = vr[0], vr[1]
		bo.PutUint16(h[6:], uint16(length))
		w.write(h[:8])
	}
	return nil
}

// itemHeader writes an item or delimiter tag and length in the data set's byte order.
func (w *Writer) itemHeader(tag Tag, length uint32) error {
	w.tagLength(w.enc.order(), tag, length)
	return w.err
}

func (w *Writer) tagLength(bo binary.ByteOrder, tag Tag, length uint32) {
	h := w.hdr[:8]
	bo.PutUint16(h[0:], tag.Group())
	bo.PutUint16(h[2:], tag.Element())
	bo.PutUint32(h[4:], length)
	w.write(h)
}

// items writes a sequence's items with defined lengths.
func (w *Writer) items(e *Element) error {
	for i, item := range e.Items {
		n, err := w.dataSetLength(item)
		if err != nil {
			return fmt.Errorf("item %d: %w", i+1, err)
		}
		if err := w.itemHeader(Item, n); err != nil {
			return err
		}
		if err := w.itemBody(item); err != nil {
			return fmt.Errorf("item %d: %w", i+1, err)
		}
	}
	return w.err
}

// itemBody writes the elements of an item, sorted, refusing a tag given twice.
func (w *Writer) itemBody(ds *DataSet) error {
	if ds == nil {
		return nil
	}
	elems := ds.Elements
	if !slices.IsSortedFunc(elems, func(a, b Element) int { return cmpTag(a.Tag, b.Tag) }) {
		elems = slices.Clone(elems)
		slices.SortStableFunc(elems, func(a, b Element) int { return cmpTag(a.Tag, b.Tag) })
	}
	for i := range elems {
		if i > 0 && elems[i].Tag == elems[i-1].Tag {
			return fmt.Errorf("element %s given twice", elems[i].Tag)
		}
		if err := w.element(&elems[i]); err != nil {
			return fmt.Errorf("element %s: %w", elems[i].Tag, err)
		}
	}
	return w.err
}

// sequenceLength is the encoded length of a sequence's items.
func (w *Writer) sequenceLength(e *Element) (uint32, error) {
	var n uint64
	for i, item := range e.Items {
		l, err := w.dataSetLength(item)
		if err != nil {
			return 0, fmt.Errorf("item %d: %w", i+1, err)
		}
		n += 8 + uint64(l)
	}
	if n > math.MaxUint32-1 {
		return 0, fmt.Errorf("a sequence of %d bytes is too long", n)
	}
	return uint32(n), nil
}

// dataSetLength is the encoded length of an item's elements.
func (w *Writer) dataSetLength(ds *DataSet) (uint32, error) {
	if ds == nil {
		return 0, nil
	}
	var n uint64
	for i := range ds.Elements {
		e := &ds.Elements[i]
		vr := w.vrOf(e)
		hdr := uint64(8)
		if w.enc.explicit && hasLongLength(vr) {
			hdr = 12
		}
		switch {
		case vr == "SQ":
			l, err := w.sequenceLength(e)
			if err != nil {
				return 0, fmt.Errorf("element %s: %w", e.Tag, err)
			}
			n += hdr + uint64(l)
		case e.Fragments != nil:
			n += hdr + 8
			for _, f := range e.Fragments {
				n += 8 + uint64(padded(len(f)))
			}
		default:
			n += hdr + uint64(padded(len(e.Value)))
		}
	}
	if n > math.MaxUint32-1 {
		return 0, fmt.Errorf("an item of %d bytes is too long", n)
	}
	return uint32(n), nil
}

// WriteValueFrom writes an element whose value of length bytes comes from r, streamed rather
// than held, and padded when length is odd.
func (w *Writer) WriteValueFrom(tag Tag, vr string, length int64, r io.Reader) error {
	if w.err != nil {
		return w.err
	}
	if vr == "" {
		vr = VROf(tag)
	}
	if vr == "SQ" || unitSize(vr) > 1 && w.enc.bigEndian {
		// Values are copied as they come: only little endian binary values can be.
		return w.fail(fmt.Errorf("write data set: element %s: a %s value cannot be streamed in this syntax", tag, vr))
	}
	if length < 0 || padded(int(length)) > math.MaxUint32-1 {
		return w.fail(fmt.Errorf("write data set: element %s: a value of %d bytes", tag, length))
	}
	if err := w.order(tag); err != nil {
		return w.fail(err)
	}
	if err := w.header(tag, vr, uint32(padded(int(length)))); err != nil {
		return w.fail(fmt.Errorf("write data set: element %s: %w", tag, err))
	}
	if w.err != nil {
		return w.err
	}
	n, err := io.CopyN(w.bw, r, length)
	if err != nil {
		if n < length && (err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF)) {
			err = io.ErrUnexpectedEOF
		}
		return w.fail(fmt.Errorf("write data set: element %s: after %d of %d bytes: %w", tag, n, length, err))
	}
	if length%2 == 1 {
		w.write([]byte{padByte(vr)})
	}
	return w.err
}

// BeginSequence starts a sequence of undefined length: BeginItem and WriteItem add items,
// EndSequence ends it.
func (w *Writer) BeginSequence(tag Tag) error {
	if w.err != nil {
		return w.err
	}
	if err := w.order(tag); err != nil {
		return w.fail(err)
	}
	if err := w.header(tag, "SQ", UndefinedLength); err != nil {
		return w.fail(err)
	}
	w.stack = append(w.stack, writeFrame{})
	return w.err
}

func (w *Writer) inSequence() error {
	if n := len(w.stack); n == 0 || w.stack[n-1].item {
		return errors.New("write data set: an item outside a sequence")
	}
	return nil
}

// BeginItem starts an item of undefined length in the open sequence; EndItem ends it.
func (w *Writer) BeginItem() error {
	if w.err != nil {
		return w.err
	}
	if err := w.inSequence(); err != nil {
		return w.fail(err)
	}
	w.stack = append(w.stack, writeFrame{item: true})
	return w.itemHeader(Item, UndefinedLength)
}

// WriteItem writes a whole item, with its defined length, in the open sequence.
func (w *Writer) WriteItem(ds *DataSet) error {
	if w.err != nil {
		return w.err
	}
	if err := w.inSequence(); err != nil {
		return w.fail(err)
	}
	n, err := w.dataSetLength(ds)
	if err != nil {
		return w.fail(fmt.Errorf("write data set: %w", err))
	}
	if err := w.itemHeader(Item, n); err != nil {
		return err
	}
	if err := w.itemBody(ds); err != nil {
		return w.fail(fmt.Errorf("write data set: %w", err))
	}
	return w.err
}

// EndItem ends the item BeginItem started.
func (w *Writer) EndItem() error {
	if w.err != nil {
		return w.err
	}
	if n := len(w.stack); n == 0 || !w.stack[n-1].item {
		return w.fail(errors.New("write data set: no item to end"))
	}
	w.stack = w.stack[:len(w.stack)-1]
	return w.itemHeader(ItemDelimitationItem, 0)
}

// EndSequence ends the sequence BeginSequence started.
func (w *Writer) EndSequence() error {
	if w.err != nil {
		return w.err
	}
	if err := w.inSequence(); err != nil {
		return w.fail(errors.New("write data set: no sequence to end"))
	}
	w.stack = w.stack[:len(w.stack)-1]
	return w.itemHeader(SequenceDelimitationItem, 0)
}
