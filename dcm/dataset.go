package dcm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Element is one data element held in memory.
type Element struct {
	Tag Tag
	// VR is as encoded in explicit VR, or from the dictionary in implicit VR ("UN" for tags
	// it does not know); "SQ" for every sequence, undefined-length UN ones included.
	VR string
	// Value is the value as encoded, padding included, in the byte order BigEndian says; nil
	// for sequences, encapsulated pixel data and skipped values.
	Value []byte
	// Items are the items of a sequence.
	Items []*DataSet
	// Fragments are the items of encapsulated pixel data, in order: the Basic Offset Table
	// (often empty), then the fragments.
	Fragments [][]byte
	// Offset and Length say where the value was in the data set read (Offset from its first
	// byte; of the inflated bytes when deflated) and how long it was as encoded
	// (UndefinedLength for undefined): what a caller needs to find a skipped value again.
	Offset int64
	Length uint32
	// Skipped is set when the value was not read (ParseOptions.SkipValuesOver).
	Skipped bool
	// BigEndian is the byte order of the binary values in Value.
	BigEndian bool
}

// DataSet is a data set or sequence item: its elements sorted by tag.
type DataSet struct {
	Elements []Element
}

// NewDataSet returns a data set of the elements sorted by tag (in a stable order: the writer
// refuses a tag given twice).
func NewDataSet(elems ...Element) *DataSet {
	ds := &DataSet{Elements: slices.Clone(elems)}
	slices.SortStableFunc(ds.Elements, func(a, b Element) int { return cmpTag(a.Tag, b.Tag) })
	return ds
}

func cmpTag(a, b Tag) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (d *DataSet) index(t Tag) (int, bool) {
	return slices.BinarySearchFunc(d.Elements, t, func(e Element, t Tag) int { return cmpTag(e.Tag, t) })
}

// Find returns the element with the tag, or nil.
func (d *DataSet) Find(t Tag) *Element {
	if d == nil {
		return nil
	}
	if i, ok := d.index(t); ok {
		return &d.Elements[i]
	}
	return nil
}

// Has reports whether the data set holds an element with the tag.
func (d *DataSet) Has(t Tag) bool { return d.Find(t) != nil }

// Set puts e in the data set, in place of an element with its tag.
func (d *DataSet) Set(e Element) {
	i, ok := d.index(e.Tag)
	if ok {
		d.Elements[i] = e
		return
	}
	d.Elements = slices.Insert(d.Elements, i, e)
}

// Remove takes the element with the tag out of the data set.
func (d *DataSet) Remove(t Tag) {
	if i, ok := d.index(t); ok {
		d.Elements = slices.Delete(d.Elements, i, i+1)
	}
}

// ErrNoValue is wrapped by the errors of the accessors for an element that is absent or empty.
var ErrNoValue = errors.New("no value")

func absent(t Tag) error { return fmt.Errorf("%s: %w", t.describe(), ErrNoValue) }

// String returns the value of the element with the tag as text (see Element.Text); "" when
// absent.
func (d *DataSet) String(t Tag) string {
	if e := d.Find(t); e != nil {
		return e.Text()
	}
	return ""
}

// Strings returns the values of the element with the tag (see Element.Strings); nil when
// absent.
func (d *DataSet) Strings(t Tag) []string {
	if e := d.Find(t); e != nil {
		return e.Strings()
	}
	return nil
}

// Int returns the first value of the element with the tag as an integer (see Element.Int).
func (d *DataSet) Int(t Tag) (int64, error) {
	if e := d.Find(t); e != nil {
		return e.Int()
	}
	return 0, absent(t)
}

// Ints returns the values of the element with the tag as integers (see Element.Ints).
func (d *DataSet) Ints(t Tag) ([]int64, error) {
	if e := d.Find(t); e != nil {
		return e.Ints()
	}
	return nil, absent(t)
}

// Float returns the first value of the element with the tag as a number (see Element.Float).
func (d *DataSet) Float(t Tag) (float64, error) {
	if e := d.Find(t); e != nil {
		return e.Float()
	}
	return 0, absent(t)
}

// Floats returns the values of the element with the tag as numbers (see Element.Floats).
func (d *DataSet) Floats(t Tag) ([]float64, error) {
	if e := d.Find(t); e != nil {
		return e.Floats()
	}
	return nil, absent(t)
}

// Tags returns the values of an AT element with the tag.
func (d *DataSet) Tags(t Tag) ([]Tag, error) {
	if e := d.Find(t); e != nil {
		return e.Tags()
	}
	return nil, absent(t)
}

// Bytes returns the raw value of the element with the tag; nil when absent.
func (d *DataSet) Bytes(t Tag) []byte {
	if e := d.Find(t); e != nil {
		return e.Value
	}
	return nil
}

// Items returns the items of the sequence with the tag; nil when absent.
func (d *DataSet) Items(t Tag) []*DataSet {
	if e := d.Find(t); e != nil {
		return e.Items
	}
	return nil
}

// valueVR is the VR the value is to be read in: a value encoded as UN (or read in implicit
// VR) is still in its own VR's encoding (PS3.5 §6.2.2), which the dictionary knows for its tags.
func (e *Element) valueVR() string {
	if e.VR == "" || e.VR == "UN" {
		if d := VROf(e.Tag); d != "UN" || e.VR == "" {
			return d
		}
	}
	return e.VR
}

func (e *Element) order() binary.ByteOrder {
	if e.BigEndian {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// Text returns the value as text: padding removed (trailing spaces and NULs; leading spaces
// where PS3.5 makes them insignificant), several values joined by backslashes as encoded.
// Binary numbers (US, SS, UL, SL, SV, UV, FL, FD) come out in decimal, AT as (gggg,eeee).
// No character set conversion is done: text is in the bytes received.
func (e *Element) Text() string {
	vr := e.valueVR()
	switch vr {
	case "US", "SS", "UL", "SL", "SV", "UV", "FL", "FD", "AT":
		return strings.Join(e.Strings(), `\`)
	case "SQ":
		return ""
	}
	return trimValue(e.Value, leadingSpaceInsignificant(vr))
}

// Strings returns the values: text split at backslashes for the VRs that allow several
// values, each without its padding; binary numbers in decimal.
func (e *Element) Strings() []string {
	vr := e.valueVR()
	if n := unitSize(vr); n > 0 && vr != "OW" && vr != "OF" && vr != "OD" && vr != "OL" && vr != "OV" {
		out := make([]string, 0, len(e.Value)/n)
		bo := e.order()
		for b := e.Value; len(b) >= n; b = b[n:] {
			switch vr {
			case "US":
				out = append(out, strconv.FormatUint(uint64(bo.Uint16(b)), 10))
			case "SS":
				out = append(out, strconv.FormatInt(int64(int16(bo.Uint16(b))), 10))
			case "UL":
				out = append(out, strconv.FormatUint(uint64(bo.Uint32(b)), 10))
			case "SL":
				out = append(out, strconv.FormatInt(int64(int32(bo.Uint32(b))), 10))
			case "UV":
				out = append(out, strconv.FormatUint(bo.Uint64(b), 10))
			case "SV":
				out = append(out, strconv.FormatInt(int64(bo.Uint64(b)), 10))
			case "FL":
				out = append(out, strconv.FormatFloat(float64(math.Float32frombits(bo.Uint32(b))), 'g', -1, 32))
			case "FD":
				out = append(out, strconv.FormatFloat(math.Float64frombits(bo.Uint64(b)), 'g', -1, 64))
			case "AT":
				if len(b) >= 4 {
					out = append(out, NewTag(bo.Uint16(b), bo.Uint16(b[2:])).String())
					b = b[2:]
				}
			}
		}
		return out
	}
	if !isMultiValuedText(vr) {
		if s := trimValue(e.Value, leadingSpaceInsignificant(vr)); s != "" || len(e.Value) > 0 {
			return []string{s}
		}
		return nil
	}
	if len(e.Value) == 0 {
		return nil
	}
	parts := bytes.Split(e.Value, []byte{'\\'})
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = trimValue(p, leadingSpaceInsignificant(vr))
	}
	return out
}

// Int returns the first value as an integer: IS text, or a binary US, SS, UL, SL, SV or UV.
func (e *Element) Int() (int64, error) {
	vr := e.valueVR()
	if len(e.Value) == 0 {
		return 0, absent(e.Tag)
	}
	switch vr {
	case "IS":
		first, _, _ := bytes.Cut(e.Value, []byte{'\\'})
		if trimValue(first, true) == "" {
			return 0, absent(e.Tag)
		}
		return e.parseInt(first)
	case "US", "SS", "UL", "SL", "SV", "UV":
		// The first value where it lies: Ints would build the list of all of them (a DIMSE
		// command set reads a dozen of these per message).
		bo, b := e.order(), e.Value
		switch {
		case vr == "US" && len(b) >= 2:
			return int64(bo.Uint16(b)), nil
		case vr == "SS" && len(b) >= 2:
			return int64(int16(bo.Uint16(b))), nil
		case vr == "UL" && len(b) >= 4:
			return int64(bo.Uint32(b)), nil
		case vr == "SL" && len(b) >= 4:
			return int64(int32(bo.Uint32(b))), nil
		case (vr == "SV" || vr == "UV") && len(b) >= 8:
			return int64(bo.Uint64(b)), nil
		}
		return 0, absent(e.Tag)
	}
	return 0, fmt.Errorf("%s has VR %s, which holds no integer", e.Tag.describe(), vr)
}

func (e *Element) parseInt(b []byte) (int64, error) {
	s := strings.Trim(string(b), " \x00")
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s = %q is not an integer", e.Tag.describe(), s)
	}
	return n, nil
}

// Ints returns the values as integers: IS text, or binary US, SS, UL, SL, SV or UV.
func (e *Element) Ints() ([]int64, error) {
	vr := e.valueVR()
	bo := e.order()
	var out []int64
	switch vr {
	case "IS":
		if trimValue(e.Value, true) == "" {
			return nil, absent(e.Tag)
		}
		for _, p := range bytes.Split(e.Value, []byte{'\\'}) {
			n, err := e.parseInt(p)
			if err != nil {
				return nil, err
			}
			out = append(out, n)
		}
		return out, nil
	case "US":
		for b := e.Value; len(b) >= 2; b = b[2:] {
			out = append(out, int64(bo.Uint16(b)))
		}
	case "SS":
		for b := e.Value; len(b) >= 2; b = b[2:] {
			out = append(out, int64(int16(bo.Uint16(b))))
		}
	case "UL":
		for b := e.Value; len(b) >= 4; b = b[4:] {
			out = append(out, int64(bo.Uint32(b)))
		}
	case "SL":
		for b := e.Value; len(b) >= 4; b = b[4:] {
			out = append(out, int64(int32(bo.Uint32(b))))
		}
	case "SV", "UV":
		for b := e.Value; len(b) >= 8; b = b[8:] {
			out = append(out, int64(bo.Uint64(b)))
		}
	default:
		return nil, fmt.Errorf("%s has VR %s, which holds no integer", e.Tag.describe(), vr)
	}
	if len(out) == 0 {
		return nil, absent(e.Tag)
	}
	return out, nil
}

// Float returns the first value as a number: DS or IS text, binary FL or FD, or an integer VR.
func (e *Element) Float() (float64, error) {
	v, err := e.Floats()
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

// Floats returns the values as numbers: DS or IS text, binary FL, FD, OF or OD, or an integer VR.
func (e *Element) Floats() ([]float64, error) {
	vr := e.valueVR()
	bo := e.order()
	var out []float64
	switch vr {
	case "DS", "IS":
		if trimValue(e.Value, true) == "" {
			return nil, absent(e.Tag)
		}
		for _, p := range bytes.Split(e.Value, []byte{'\\'}) {
			s := strings.Trim(string(p), " \x00")
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, fmt.Errorf("%s = %q is not a number", e.Tag.describe(), s)
			}
			out = append(out, f)
		}
		return out, nil
	case "FL", "OF":
		for b := e.Value; len(b) >= 4; b = b[4:] {
			out = append(out, float64(math.Float32frombits(bo.Uint32(b))))
		}
	case "FD", "OD":
		for b := e.Value; len(b) >= 8; b = b[8:] {
			out = append(out, math.Float64frombits(bo.Uint64(b)))
		}
	case "US", "SS", "UL", "SL", "SV", "UV":
		ints, err := e.Ints()
		if err != nil {
			return nil, err
		}
		for _, n := range ints {
			out = append(out, float64(n))
		}
	default:
		return nil, fmt.Errorf("%s has VR %s, which holds no number", e.Tag.describe(), vr)
	}
	if len(out) == 0 {
		return nil, absent(e.Tag)
	}
	return out, nil
}

// Tags returns the values of an AT element.
func (e *Element) Tags() ([]Tag, error) {
	if vr := e.valueVR(); vr != "AT" {
		return nil, fmt.Errorf("%s has VR %s, not AT", e.Tag.describe(), vr)
	}
	bo := e.order()
	var out []Tag
	for b := e.Value; len(b) >= 4; b = b[4:] {
		out = append(out, NewTag(bo.Uint16(b), bo.Uint16(b[2:])))
	}
	if len(out) == 0 {
		return nil, absent(e.Tag)
	}
	return out, nil
}

// OffsetTable decodes the Basic Offset Table of encapsulated pixel data: nil when it is empty.
func (e *Element) OffsetTable() ([]uint32, error) {
	if len(e.Fragments) == 0 {
		return nil, fmt.Errorf("encapsulated pixel data %s has no basic offset table item", e.Tag)
	}
	return offsetTable(e.Fragments[0])
}

func offsetTable(item []byte) ([]uint32, error) {
	if len(item)%4 != 0 {
		return nil, fmt.Errorf("basic offset table of %d bytes is not a multiple of 4", len(item))
	}
	var out []uint32
	for i := 0; i < len(item); i += 4 {
		out = append(out, binary.LittleEndian.Uint32(item[i:]))
	}
	return out, nil
}

// ParseOptions say what of a data set to keep in memory. The zero value keeps everything, within
// DefaultLimits.
type ParseOptions struct {
	Limits Limits
	// Keep, when not nil, is the set of top-level elements to hold; the rest is still read and
	// checked, and dropped.
	Keep TagSet
	// StopAfter, when not zero, ends the parse at the first top-level element past it: a
	// file's head (its header is read, nothing after it). The input is left there.
	StopAfter Tag
	// SkipValuesOver, when above zero, leaves values longer than it unread: their elements
	// hold Offset, Length and Skipped but no Value. Encapsulated pixel data is then always
	// skipped. This keeps pixel data out of memory.
	SkipValuesOver int64
	// OnPast, when not nil, is called once with the top-level elements kept so far when the
	// parse first meets a top-level element past Past, before that element is read: a caller
	// learns the attributes it needs early (the UIDs that name an object) while the rest, such
	// as pixel data, is still to come. It is not called when the data set ends before.
	Past   Tag
	OnPast func(*DataSet)

	// dropGroupLengths and rejectOdd serve ExplicitToImplicit, whose output must not grow.
	dropGroupLengths bool
	rejectOdd        bool
}

// ReadDataSet reads a data set (no file meta) encoded in the transfer syntax from r into
// memory. Unless opts.StopAfter ends it early it consumes r to its end, so that a tee sees all
// of it; every element is checked, kept or not. On error the part read so far is returned with
// it.
func ReadDataSet(r io.Reader, transferSyntaxUID string, opts ParseOptions) (*DataSet, error) {
	rd, err := NewReader(r, transferSyntaxUID, opts.Limits)
	if err != nil {
		return &DataSet{}, err
	}
	return rd.ReadDataSet(opts)
}

// Parse decodes a whole data set held in memory, such as a query identifier.
func Parse(b []byte, transferSyntaxUID string) (*DataSet, error) {
	return ReadDataSet(bytes.NewReader(b), transferSyntaxUID, ParseOptions{})
}

// ReadDataSet reads what is left of the reader's data set into memory; see the function
// ReadDataSet.
func (r *Reader) ReadDataSet(opts ParseOptions) (*DataSet, error) {
	p := parser{r: r, opts: opts, top: make([]Tag, 0, 128)}
	ds := &DataSet{}
	if opts.Keep != nil {
		ds.Elements = make([]Element, 0, len(opts.Keep))
	}
	err := p.items(ds, true)
	return ds, err
}

type parser struct {
	r    *Reader
	opts ParseOptions
	// top holds every top-level tag seen, kept or not, sorted: a tag given twice is an error
	// whether or not it is kept.
	top []Tag
	// passed is set once OnPast was called.
	passed bool
	// slab is where small values are carved from, one allocation for many.
	slab     []byte
	slabSize int
}

// items reads elements into ds up to the end of the data set (top) or of the current item.
func (p *parser) items(ds *DataSet, top bool) error {
	for {
		hp, err := p.r.advance()
		if err != nil {
			if err == io.EOF && top {
				return nil
			}
			return err
		}
		h := hp // valid until the next advance, which element may make: read it first
		switch h.Kind {
		case KindItemEnd:
			if !top {
				return nil
			}
			return p.r.malformed("item end at the top level")
		case KindElement, KindSequence, KindFragments:
		default:
			return p.r.malformed("unexpected %v header %s", h.Kind, h.Tag)
		}
		if top && p.opts.StopAfter != 0 && h.Tag > p.opts.StopAfter {
			return nil
		}
		if top && p.opts.OnPast != nil && !p.passed && h.Tag > p.opts.Past {
			p.passed = true
			p.opts.OnPast(ds)
		}
		if top {
			if n := len(p.top); n == 0 || p.top[n-1] < h.Tag {
				p.top = append(p.top, h.Tag) // in order, as nearly always
			} else if i, found := slices.BinarySearch(p.top, h.Tag); found {
				return p.r.malformed("element %s appears twice", h.Tag)
			} else {
				p.top = slices.Insert(p.top, i, h.Tag)
			}
		}
		if top && p.opts.Keep != nil && !p.opts.Keep.Has(h.Tag) {
			if h.Kind != KindElement {
				if err := p.r.skipContainer(); err != nil {
					return err
				}
			}
			continue
		}
		groupLength := h.Kind == KindElement && h.Tag.Element() == 0 && h.VR == "UL" && h.Length == 4
		e, err := p.element(h)
		if err != nil {
			return err
		}
		if p.opts.dropGroupLengths && groupLength {
			continue
		}
		if err := p.add(ds, e); err != nil {
			return err
		}
	}
}

// element reads what follows the header h into an element.
func (p *parser) element(h *Header) (Element, error) {
	e := Element{Tag: h.Tag, VR: h.VR, Offset: h.Offset, Length: h.Length, BigEndian: h.BigEndian}
	switch h.Kind {
	case KindElement:
		if p.opts.rejectOdd && h.Length%2 == 1 {
			return e, p.r.malformed("element %s has odd length %d", h.Tag, h.Length)
		}
		if p.opts.SkipValuesOver > 0 && int64(h.Length) > p.opts.SkipValuesOver {
			e.Skipped = true
			return e, nil
		}
		v, err := p.value(h.Length)
		e.Value = v
		return e, err
	case KindSequence:
		for {
			ih, err := p.r.advance()
			if err != nil {
				return e, eofInside(p.r, err)
			}
			if ih.Kind == KindSequenceEnd {
				return e, nil
			}
			item := &DataSet{}
			if err := p.items(item, false); err != nil {
				return e, err
			}
			e.Items = append(e.Items, item)
		}
	case KindFragments:
		skip := p.opts.SkipValuesOver > 0
		e.Skipped = skip
		for {
			fh, err := p.r.advance()
			if err != nil {
				return e, eofInside(p.r, err)
			}
			if fh.Kind == KindSequenceEnd {
				return e, nil
			}
			if skip {
				continue
			}
			v, err := p.r.Value()
			if err != nil {
				return e, err
			}
			e.Fragments = append(e.Fragments, v)
		}
	}
	return e, nil
}

// eofInside: the reader gives io.EOF only at the top level, which a sequence is not.
func eofInside(r *Reader, err error) error {
	if err == io.EOF {
		return r.readErr(io.ErrUnexpectedEOF)
	}
	return err
}

func (p *parser) value(n uint32) ([]byte, error) {
	if n > 512 || int64(n) > p.r.lim.MaxValueLength {
		return p.r.Value()
	}
	if int(n) > len(p.slab) {
		// Slabs grow from 1 KiB to 16 KiB: a parse that keeps a few attributes allocates
		// little, one that keeps thousands allocates rarely.
		p.slabSize = min(max(2*p.slabSize, 1<<10), 16<<10)
		p.slab = make([]byte, max(p.slabSize, int(n)))
	}
	b := p.slab[:n:n]
	p.slab = p.slab[n:]
	return b, p.r.readInto(b)
}

// add puts e in ds, which the stream should give in tag order; elements out of order are
// accepted and sorted, a tag given twice is not.
func (p *parser) add(ds *DataSet, e Element) error {
	n := len(ds.Elements)
	if n == 0 || ds.Elements[n-1].Tag < e.Tag {
		ds.Elements = append(ds.Elements, e)
		return nil
	}
	i, found := ds.index(e.Tag)
	if found {
		return p.r.malformed("element %s appears twice", e.Tag)
	}
	ds.Elements = slices.Insert(ds.Elements, i, e)
	return nil
}

// ParseFragments splits the value of an encapsulated Pixel Data element as it comes from
// outside a data set (PS3.5 A.4: a Basic Offset Table item, an item per fragment, an optional
// Sequence Delimitation Item) into the offset table and the fragments.
func ParseFragments(value []byte) (offsets []uint32, fragments [][]byte, err error) {
	r := newReader(bytes.NewReader(value), encoding{}, Limits{}, int64(len(value)))
	r.push(frame{kind: KindFragments, tag: PixelData, end: int64(len(value))})
	first := true
	for {
		h, err := r.Next()
		if err != nil {
			return nil, nil, fmt.Errorf("encapsulated pixel data: %w", err)
		}
		if h.Kind == KindSequenceEnd {
			break
		}
		v, err := r.Value()
		if err != nil {
			return nil, nil, fmt.Errorf("encapsulated pixel data: %w", err)
		}
		if first {
			first = false
			if offsets, err = offsetTable(v); err != nil {
				return nil, nil, fmt.Errorf("encapsulated pixel data: %w", err)
			}
			continue
		}
		fragments = append(fragments, v)
	}
	if first {
		return nil, nil, errors.New("encapsulated pixel data has no basic offset table item")
	}
	return offsets, fragments, nil
}

// StrElement builds a text element, its values joined by backslashes; the VR comes from VROf.
func StrElement(t Tag, values ...string) Element { return NewText(t, VROf(t), values...) }

// NewText builds a text element of the VR.
func NewText(t Tag, vr string, values ...string) Element {
	return Element{Tag: t, VR: vr, Value: []byte(strings.Join(values, `\`))}
}

// NewBytes builds an element of the VR holding b as it is (little endian for binary VRs).
func NewBytes(t Tag, vr string, b []byte) Element { return Element{Tag: t, VR: vr, Value: b} }

// NewUS builds a US element.
func NewUS(t Tag, values ...uint16) Element {
	b := make([]byte, 0, 2*len(values))
	for _, v := range values {
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	return Element{Tag: t, VR: "US", Value: b}
}

// NewUL builds a UL element.
func NewUL(t Tag, values ...uint32) Element {
	b := make([]byte, 0, 4*len(values))
	for _, v := range values {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	return Element{Tag: t, VR: "UL", Value: b}
}

// NewAT builds an AT element: each tag's group then element.
func NewAT(t Tag, tags ...Tag) Element {
	b := make([]byte, 0, 4*len(tags))
	for _, v := range tags {
		b = binary.LittleEndian.AppendUint16(b, v.Group())
		b = binary.LittleEndian.AppendUint16(b, v.Element())
	}
	return Element{Tag: t, VR: "AT", Value: b}
}

// NewIS builds an IS element.
func NewIS(t Tag, n int) Element { return NewText(t, "IS", strconv.Itoa(n)) }

// NewDS builds a DS element, each value in at most the 16 characters DS allows.
func NewDS(t Tag, values ...float64) Element {
	s := make([]string, len(values))
	for i, v := range values {
		s[i] = FormatDS(v)
	}
	return NewText(t, "DS", s...)
}

// NewSequence builds a sequence of the items.
func NewSequence(t Tag, items ...*DataSet) Element { return Element{Tag: t, VR: "SQ", Items: items} }

// FormatDS renders a number in at most 16 characters, the DS limit, keeping as many
// significant digits as fit.
func FormatDS(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "0"
	}
	for prec := -1; ; {
		s := strconv.FormatFloat(v, 'g', prec, 64)
		if len(s) <= 16 {
			return s
		}
		if prec == -1 {
			prec = 16
		}
		prec--
	}
}

func (k Kind) String() string {
	switch k {
	case KindElement:
		return "element"
	case KindSequence:
		return "sequence"
	case KindItem:
		return "item"
	case KindItemEnd:
		return "item end"
	case KindFragments:
		return "encapsulated pixel data"
	case KindFragment:
		return "fragment"
	case KindSequenceEnd:
		return "sequence end"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}
