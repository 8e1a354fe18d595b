package dcm

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/text/encoding/japanese"
)

// ErrNotEncodable is returned by EncodeText for text a Specific Character Set cannot hold, or
// holds only with code extensions this package does not write.
var ErrNotEncodable = errors.New("text not encodable in the character set")

// EncodeText encodes UTF-8 text in the character sets of a Specific Character Set, the inverse
// of DecodeText: ASCII text as it is in any of them; otherwise the one set of a single-valued
// Specific Character Set (ISO_IR 100 and the other single-byte sets, ISO_IR 192, GB18030, GBK),
// the first set of an ISO 2022 one when it holds the whole text, or, for ISO 2022 IR 87 beside
// ASCII (PS3.5 Annex H), JIS X 0208 runs between escape sequences that go back to ASCII before
// every delimiter and at the end. Any other text is ErrNotEncodable: the caller answers in
// ISO_IR 192 instead.
func EncodeText(s string, specificCharacterSet []string) ([]byte, error) {
	if isASCII(s) {
		return []byte(s), nil
	}
	terms := make([]string, len(specificCharacterSet))
	for i, t := range specificCharacterSet {
		terms[i] = strings.TrimSpace(t)
	}
	first := ""
	if len(terms) > 0 {
		first = terms[0]
	}
	fail := func() ([]byte, error) {
		return nil, fmt.Errorf("%w: %q in %q", ErrNotEncodable, s, strings.Join(terms, `\`))
	}
	if first == "ISO_IR 13" || first == "ISO 2022 IR 13" {
		// JIS X 0201 holds katakana only; Shift JIS would write kanji it does not have.
		return fail()
	}
	if ce, ok := lookupCharset(first); ok && ce.set != nil && !ce.setG0 {
		if b, err := ce.set.NewEncoder().String(s); err == nil {
			return []byte(b), nil
		}
	}
	if len(terms) > 1 && (first == "" || first == "ISO 2022 IR 6") && slices.Contains(terms[1:], "ISO 2022 IR 87") {
		return encodeJIS(s)
	}
	return fail()
}

// encodeJIS writes text as ISO 2022 IR 6 with ISO 2022 IR 87: the ISO-2022-JP encoder's output
// when it uses only those two sets (ESC ( B and ESC $ B), which also returns to ASCII before
// each ASCII character, so before every delimiter, and at the end of the value.
func encodeJIS(s string) ([]byte, error) {
	b, err := japanese.ISO2022JP.NewEncoder().Bytes([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("%w: %q in ISO 2022 IR 87: %w", ErrNotEncodable, s, err)
	}
	for i := 0; i < len(b); i++ {
		if b[i] != 0x1B {
			continue
		}
		if !bytes.HasPrefix(b[i:], []byte("\x1b(B")) && !bytes.HasPrefix(b[i:], []byte("\x1b$B")) {
			return nil, fmt.Errorf("%w: %q needs a set beside ISO 2022 IR 87 (JIS X 0201 or 0212)", ErrNotEncodable, s)
		}
	}
	return b, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || s[i] == 0x1B {
			return false
		}
	}
	return true
}
