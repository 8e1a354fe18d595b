package dcm

import (
	"fmt"
	"strings"
	"unicode/utf8"

	textencoding "golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// Text in DICOM is in the character sets Specific Character Set (0008,0005) names (PS3.3
// C.12.1.1.2, PS3.5 §6.1): one of them for the whole value, or, with the "ISO 2022" terms,
// several, switched by escape sequences. Text and String give a value's bytes as they are (what
// the index stores and matches); Unicode decodes them to UTF-8, as a copy into another object
// that declares UTF-8 needs.

// codeElement is one character set a value can be in: how to decode (and encode) its bytes, and
// whether it is a multi-byte set written with its high bits clear (the ISO 2022 G0 ones).
type codeElement struct {
	set   textencoding.Encoding // nil: ASCII, with bytes above 0x7F read as Latin-1
	setG0 bool
	// eucPrefix is put before each two-byte code of a G0 set to make EUC of it (JIS X 0212).
	eucPrefix byte
}

// charsets maps the defined terms of Specific Character Set to their code elements. The
// "ISO 2022" form of a term names the same set, used with code extensions.
var charsets = map[string]codeElement{
	"":           {},
	"ISO_IR 6":   {},
	"ISO_IR 100": {set: charmap.ISO8859_1},
	"ISO_IR 101": {set: charmap.ISO8859_2},
	"ISO_IR 109": {set: charmap.ISO8859_3},
	"ISO_IR 110": {set: charmap.ISO8859_4},
	"ISO_IR 144": {set: charmap.ISO8859_5},
	"ISO_IR 127": {set: charmap.ISO8859_6},
	"ISO_IR 126": {set: charmap.ISO8859_7},
	"ISO_IR 138": {set: charmap.ISO8859_8},
	"ISO_IR 148": {set: charmap.ISO8859_9},
	"ISO_IR 203": {set: charmap.ISO8859_15},
	"ISO_IR 166": {set: charmap.Windows874},
	"ISO_IR 13":  {set: japanese.ShiftJIS},
	"ISO_IR 192": {set: textencoding.Nop},
	"GB18030":    {set: simplifiedchinese.GB18030},
	"GBK":        {set: simplifiedchinese.GBK},
	// Multi-byte sets, only with code extensions.
	"ISO 2022 IR 87":  {set: japanese.EUCJP, setG0: true},
	"ISO 2022 IR 159": {set: japanese.EUCJP, setG0: true, eucPrefix: 0x8F},
	"ISO 2022 IR 149": {set: korean.EUCKR},
	"ISO 2022 IR 58":  {set: simplifiedchinese.GBK},
}

// escapes maps the ISO 2022 escape sequences of PS3.3 Table C.12-3 and C.12-4 (after ESC) to
// the term of the set they designate.
var escapes = map[string]string{
	"(B": "ISO_IR 6", "(J": "ISO_IR 6", ")I": "ISO_IR 13",
	"-A": "ISO_IR 100", "-B": "ISO_IR 101", "-C": "ISO_IR 109", "-D": "ISO_IR 110", "-L": "ISO_IR 144",
	"-G": "ISO_IR 127", "-F": "ISO_IR 126", "-H": "ISO_IR 138", "-M": "ISO_IR 148", "-T": "ISO_IR 166",
	"$B": "ISO 2022 IR 87", "$(D": "ISO 2022 IR 159", "$)C": "ISO 2022 IR 149", "$)A": "ISO 2022 IR 58",
}

func lookupCharset(term string) (codeElement, bool) {
	term = strings.TrimSpace(term)
	if ce, ok := charsets[term]; ok {
		return ce, true
	}
	// "ISO 2022 IR 100" is "ISO_IR 100" with code extensions.
	if rest, ok := strings.CutPrefix(term, "ISO 2022 IR "); ok {
		ce, ok := charsets["ISO_IR "+rest]
		return ce, ok
	}
	return codeElement{}, false
}

// DecodeText decodes a text value in the character sets of a Specific Character Set to UTF-8.
// Escape sequences switch sets; every value, and each component group of a person name, starts
// again in the first set (PS3.5 §6.1.2.5.3). Bytes a set cannot decode become U+FFFD; a term
// this package does not know is an error, with the value decoded as Latin-1. The result is
// always valid UTF-8.
func DecodeText(b []byte, specificCharacterSet []string) (string, error) {
	var err error
	first := ""
	if len(specificCharacterSet) > 0 {
		first = strings.TrimSpace(specificCharacterSet[0])
		if _, ok := lookupCharset(first); !ok {
			err = fmt.Errorf("specific character set %q is not one this node knows", first)
			first = "ISO_IR 100"
		}
	}
	var out strings.Builder
	term := first
	cur, _ := lookupCharset(term)
	start := 0
	flush := func(end int) {
		if end > start {
			out.WriteString(decodeRun(b[start:end], cur))
		}
	}
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == 0x1B:
			// ESC, intermediate bytes (0x20-0x2F), a final byte (0x30-0x7E).
			flush(i)
			j := i + 1
			for j < len(b) && b[j] >= 0x20 && b[j] <= 0x2F {
				j++
			}
			if j < len(b) {
				if t, ok := escapes[string(b[i+1:j+1])]; ok {
					term = t
					cur, _ = lookupCharset(term)
				}
			}
			i = j
			start = i + 1
		case term != first && !cur.setG0 && (c == '\\' || c == '^' || c == '=' || c == '\r' || c == '\n' || c == '\f' || c == '\t'):
			// The delimiters go back to the first set. In a G0 multi-byte set these bytes
			// are halves of codes: only an escape sequence leaves it.
			flush(i)
			out.WriteByte(c)
			start = i + 1
			term = first
			cur, _ = lookupCharset(term)
		}
	}
	flush(len(b))
	// A value declared UTF-8 may not be: the result is UTF-8 whatever came in, since the index
	// and the objects the node writes hold it as such.
	return strings.ToValidUTF8(out.String(), "\uFFFD"), err
}

// decodeRun decodes bytes all in one set.
func decodeRun(b []byte, ce codeElement) string {
	if ce.set == nil {
		if utf8.Valid(b) && !hasHigh(b) {
			return string(b)
		}
		s, _ := charmap.ISO8859_1.NewDecoder().Bytes(b)
		return string(s)
	}
	if ce.setG0 {
		// A G0 multi-byte set writes its codes with the high bits clear: EUC sets them.
		e := make([]byte, 0, len(b)+len(b)/2)
		for i := 0; i+1 < len(b); i += 2 {
			if ce.eucPrefix != 0 {
				e = append(e, ce.eucPrefix)
			}
			e = append(e, b[i]|0x80, b[i+1]|0x80)
		}
		b = e
	}
	s, err := ce.set.NewDecoder().Bytes(b)
	if err != nil {
		return strings.Repeat("\uFFFD", utf8.RuneCount(b))
	}
	return string(s)
}

func hasHigh(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// Unicode returns the text of the element with the tag (see Element.Text) decoded to UTF-8 in
// the data set's Specific Character Set; "" when absent. An item without its own Specific
// Character Set is in the one of the data set around it, which the caller then passes to
// DecodeText.
func (d *DataSet) Unicode(t Tag) string {
	e := d.Find(t)
	if e == nil {
		return ""
	}
	s, _ := DecodeText([]byte(e.Text()), d.Strings(SpecificCharacterSet))
	return s
}
