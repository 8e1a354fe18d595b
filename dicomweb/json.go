package dicomweb

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/espnode/espnode/dcm"
)

// The DICOM JSON model (PS3.18 F.2): a data set is an object whose keys are the tags as eight
// upper-case hex digits, each with its "vr" and either "Value" (an array), "InlineBinary"
// (base64 of the value in little endian) or "BulkDataURI"; an element without a value has the
// vr alone. Text is decoded from the data set's Specific Character Set to UTF-8, person names
// are objects of their Alphabetic, Ideographic and Phonetic groups, numbers (IS, DS and the
// binary VRs) are JSON numbers, and an empty value among several is null.

// jsonEncoder writes data sets in the JSON model.
type jsonEncoder struct {
	buf *bytes.Buffer
	// bulk returns the BulkDataURI of an element at the path (tags and item indices from the
	// top level) when its value goes by reference; "" keeps it inline. Nil keeps every value
	// inline.
	bulk func(path []int, e *dcm.Element) string
	path []int
}

// unitOf is the size of one binary value, whose bytes a change of byte order reverses.
func unitOf(vr string) int {
	switch vr {
	case "US", "SS", "OW", "AT":
		return 2
	case "UL", "SL", "FL", "OF", "OL":
		return 4
	case "FD", "OD", "SV", "UV", "OV":
		return 8
	}
	return 0
}

// elementVR is the VR an element is written with: its own, or the dictionary's for a value that
// arrived as UN (or in implicit VR) whose tag dcm knows.
func elementVR(e *dcm.Element) string {
	vr := e.VR
	if vr == "" || vr == "UN" {
		if d := dcm.VROf(e.Tag); d != "UN" {
			return d
		}
		return "UN"
	}
	return vr
}

// dataSet writes one data set (or item) as an object; charset is the Specific Character Set in
// force (an item's own one replaces it).
func (j *jsonEncoder) dataSet(ds *dcm.DataSet, charset []string) {
	if own := ds.Strings(dcm.SpecificCharacterSet); len(own) > 0 {
		charset = own
	}
	j.buf.WriteByte('{')
	first := true
	for i := range ds.Elements {
		e := &ds.Elements[i]
		// Group lengths carry nothing the model needs, and are wrong once values change.
		if e.Tag.Element() == 0 {
			continue
		}
		if !first {
			j.buf.WriteByte(',')
		}
		first = false
		j.element(e, charset)
	}
	j.buf.WriteByte('}')
}

func (j *jsonEncoder) element(e *dcm.Element, charset []string) {
	vr := elementVR(e)
	j.buf.WriteByte('"')
	j.buf.WriteString(hex8(uint32(e.Tag)))
	j.buf.WriteString(`":{"vr":"`)
	j.buf.WriteString(vr)
	j.buf.WriteByte('"')
	defer j.buf.WriteByte('}')
	j.path = append(j.path, int(e.Tag))
	defer func() { j.path = j.path[:len(j.path)-1] }()

	if vr == "SQ" {
		if len(e.Items) == 0 {
			return
		}
		j.buf.WriteString(`,"Value":[`)
		for k, item := range e.Items {
			if k > 0 {
				j.buf.WriteByte(',')
			}
			j.path = append(j.path, k)
			j.dataSet(item, charset)
			j.path = j.path[:len(j.path)-1]
		}
		j.buf.WriteByte(']')
		return
	}
	if j.bulk != nil {
		if uri := j.bulk(j.path, e); uri != "" {
			j.buf.WriteString(`,"BulkDataURI":`)
			appendString(j.buf, uri)
			return
		}
	}
	if e.Tag == dcm.SpecificCharacterSet && e.Tag.Group() == 0x0008 {
		// Every text value below is decoded to UTF-8: that is the character set of the JSON.
		if len(bytes.TrimRight(e.Value, " \x00")) > 0 {
			j.buf.WriteString(`,"Value":["ISO_IR 192"]`)
		}
		return
	}
	if e.Skipped || e.Fragments != nil {
		// A value not read and not offered by reference: the element alone says it exists.
		return
	}
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "UN":
		if len(e.Value) == 0 {
			return
		}
		b := e.Value
		if n := unitOf(vr); e.BigEndian && n > 1 {
			b = swap(b, n)
		}
		j.buf.WriteString(`,"InlineBinary":"`)
		enc := base64.NewEncoder(base64.StdEncoding, j.buf)
		enc.Write(b)
		enc.Close()
		j.buf.WriteByte('"')
	case "US", "SS", "UL", "SL", "SV", "UV", "FL", "FD":
		j.binaryNumbers(e, vr)
	case "AT":
		tags, err := e.Tags()
		if err != nil || len(tags) == 0 {
			return
		}
		j.buf.WriteString(`,"Value":[`)
		for k, t := range tags {
			if k > 0 {
				j.buf.WriteByte(',')
			}
			j.buf.WriteByte('"')
			j.buf.WriteString(hex8(uint32(t)))
			j.buf.WriteByte('"')
		}
		j.buf.WriteByte(']')
	default:
		j.text(e, vr, charset)
	}
}

func (j *jsonEncoder) binaryNumbers(e *dcm.Element, vr string) {
	n := unitOf(vr)
	if len(e.Value) < n {
		return
	}
	bo := binary.ByteOrder(binary.LittleEndian)
	if e.BigEndian {
		bo = binary.BigEndian
	}
	j.buf.WriteString(`,"Value":[`)
	for k, b := 0, e.Value; len(b) >= n; k, b = k+1, b[n:] {
		if k > 0 {
			j.buf.WriteByte(',')
		}
		var s []byte
		switch vr {
		case "US":
			s = strconv.AppendUint(nil, uint64(bo.Uint16(b)), 10)
		case "SS":
			s = strconv.AppendInt(nil, int64(int16(bo.Uint16(b))), 10)
		case "UL":
			s = strconv.AppendUint(nil, uint64(bo.Uint32(b)), 10)
		case "SL":
			s = strconv.AppendInt(nil, int64(int32(bo.Uint32(b))), 10)
		case "UV":
			v := bo.Uint64(b)
			s = strconv.AppendUint(nil, v, 10)
			if v > 1<<53 {
				// Beyond what a JSON number keeps exactly in JavaScript: a string (PS3.18 F.2.3.1).
				s = strconv.AppendQuote(nil, string(s))
			}
		case "SV":
			v := int64(bo.Uint64(b))
			s = strconv.AppendInt(nil, v, 10)
			if v > 1<<53 || v < -(1<<53) {
				s = strconv.AppendQuote(nil, string(s))
			}
		case "FL":
			s = appendFloat(nil, float64(math.Float32frombits(bo.Uint32(b))), 32)
		case "FD":
			s = appendFloat(nil, math.Float64frombits(bo.Uint64(b)), 64)
		}
		j.buf.Write(s)
	}
	j.buf.WriteByte(']')
}

// appendFloat writes a number JSON can hold; NaN and the infinities, which it cannot, are null.
func appendFloat(b []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

// multiValued reports the text VRs whose backslash separates values (PS3.5 §6.2).
func multiValued(vr string) bool {
	switch vr {
	case "LT", "ST", "UT", "UR":
		return false
	}
	return true
}

// decoded are the text VRs in the Specific Character Set; the others are in the default
// repertoire.
func decoded(vr string) bool {
	switch vr {
	case "SH", "LO", "ST", "LT", "UT", "UC", "PN":
		return true
	}
	return false
}

func (j *jsonEncoder) text(e *dcm.Element, vr string, charset []string) {
	raw := strings.TrimRight(string(e.Value), " \x00")
	if raw == "" {
		return
	}
	s := raw
	if decoded(vr) {
		s, _ = dcm.DecodeText([]byte(raw), charset)
	} else if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	values := []string{s}
	if multiValued(vr) {
		values = strings.Split(s, `\`)
	}
	j.buf.WriteString(`,"Value":[`)
	for k, v := range values {
		if k > 0 {
			j.buf.WriteByte(',')
		}
		switch vr {
		case "ST", "LT", "UT", "UC", "PN":
			v = strings.TrimRight(v, " ")
		default:
			v = strings.Trim(v, " ")
		}
		if v == "" {
			j.buf.WriteString("null")
			continue
		}
		switch vr {
		case "PN":
			j.personName(v)
		case "IS":
			if n, err := strconv.ParseInt(strings.TrimPrefix(v, "+"), 10, 64); err == nil {
				j.buf.WriteString(strconv.FormatInt(n, 10))
			} else {
				appendString(j.buf, v) // not a number: kept as written rather than lost
			}
		case "DS":
			if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				j.buf.Write(strconv.AppendFloat(nil, f, 'g', -1, 64))
			} else {
				appendString(j.buf, v)
			}
		default:
			appendString(j.buf, v)
		}
	}
	j.buf.WriteByte(']')
}

// personName writes one PN value as its component groups (PS3.18 F.2.2).
func (j *jsonEncoder) personName(v string) {
	groups := strings.SplitN(v, "=", 3)
	j.buf.WriteByte('{')
	n := 0
	for k, name := range []string{"Alphabetic", "Ideographic", "Phonetic"} {
		if k >= len(groups) || groups[k] == "" {
			continue
		}
		if n > 0 {
			j.buf.WriteByte(',')
		}
		n++
		j.buf.WriteByte('"')
		j.buf.WriteString(name)
		j.buf.WriteString(`":`)
		appendString(j.buf, groups[k])
	}
	j.buf.WriteByte('}')
}

const hexDigits = "0123456789ABCDEF"

func hex8(v uint32) string {
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = hexDigits[v&0xF]
		v >>= 4
	}
	return string(b[:])
}

// appendString writes s as a JSON string: quotes, backslashes and control characters escaped,
// invalid UTF-8 replaced.
func appendString(buf *bytes.Buffer, s string) {
	buf.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			buf.WriteString(s[start:i])
			switch c {
			case '"', '\\':
				buf.WriteByte('\\')
				buf.WriteByte(c)
			case '\n':
				buf.WriteString(`\n`)
			case '\r':
				buf.WriteString(`\r`)
			case '\t':
				buf.WriteString(`\t`)
			default:
				buf.WriteString(`\u00`)
				buf.WriteByte(hexDigits[c>>4])
				buf.WriteByte(hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf.WriteString(s[start:i])
			buf.WriteString("\uFFFD")
			i++
			start = i
			continue
		}
		i += size
	}
	buf.WriteString(s[start:])
	buf.WriteByte('"')
}

// swap returns a copy of b with each unit of n bytes reversed.
func swap(b []byte, n int) []byte {
	out := make([]byte, len(b)-len(b)%n)
	for i := 0; i+n <= len(b); i += n {
		for k := 0; k < n; k++ {
			out[i+k] = b[i+n-1-k]
		}
	}
	return out
}
