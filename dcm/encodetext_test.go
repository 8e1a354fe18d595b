package dcm

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEncodeText(t *testing.T) {
	// PS3.5 H.3.1: the name of Example 1 in ISO 2022 IR 87.
	const jisName = "Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B"
	for _, tt := range []struct {
		name, text string
		charset    []string
		want       string // "" with ok false: ErrNotEncodable
		ok         bool
	}{
		{"ASCII in the default repertoire", "Doe^John", nil, "Doe^John", true},
		{"ASCII in any set", "Doe^John", []string{"ISO_IR 100"}, "Doe^John", true},
		{"Latin-1", "Müller^Jürgen", []string{"ISO_IR 100"}, "M\xfcller^J\xfcrgen", true},
		{"Latin-1, ISO 2022 form", "Müller^Jürgen", []string{"ISO 2022 IR 100"}, "M\xfcller^J\xfcrgen", true},
		{"UTF-8", "Müller^Jürgen", []string{"ISO_IR 192"}, "Müller^Jürgen", true},
		{"Japanese in ISO 2022 IR 87 (Annex H)", "Yamada^Tarou=山田^太郎=やまだ^たろう", []string{"", "ISO 2022 IR 87"}, jisName, true},
		{"Japanese with ISO 2022 IR 6 first", "Yamada^Tarou=山田^太郎=やまだ^たろう", []string{"ISO 2022 IR 6", "ISO 2022 IR 87"}, jisName, true},
		{"Latin-1 text in the default repertoire", "Müller", nil, "", false},
		{"Japanese text in Latin-1", "山田", []string{"ISO_IR 100"}, "", false},
		{"Latin-1 text in ISO 2022 IR 87", "Müller", []string{"", "ISO 2022 IR 87"}, "", false},
		{"kanji in ISO_IR 13", "山田", []string{"ISO_IR 13"}, "", false},
		{"unknown term", "Müller", []string{"ISO_IR 999"}, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := EncodeText(tt.text, tt.charset)
			if !tt.ok {
				if !errors.Is(err, ErrNotEncodable) {
					t.Fatalf("EncodeText = %q, %v; want ErrNotEncodable", b, err)
				}
				return
			}
			if err != nil || string(b) != tt.want {
				t.Fatalf("EncodeText = %q, %v; want %q", b, err, tt.want)
			}
			back, err := DecodeText(b, tt.charset)
			if err != nil || back != tt.text {
				t.Errorf("DecodeText of the result = %q, %v; want %q", back, err, tt.text)
			}
		})
	}
}

// FuzzText decodes any bytes in any Specific Character Set, as C-FIND identifiers and stored
// instances are: the result is UTF-8, and when EncodeText can write it back in the same
// character set, decoding that gives the same text. Seeds live in testdata/fuzz/FuzzText.
func FuzzText(f *testing.F) {
	f.Add([]byte("M\xfcller^J\xfcrgen"), `ISO_IR 100`)
	f.Add([]byte("Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B"), `\ISO 2022 IR 87`)
	f.Fuzz(func(t *testing.T, b []byte, charset string) {
		cs := strings.Split(charset, `\`)
		s, _ := DecodeText(b, cs)
		if !utf8.ValidString(s) {
			t.Fatalf("DecodeText(%q, %q) = %q: not UTF-8", b, charset, s)
		}
		enc, err := EncodeText(s, cs)
		if err != nil {
			if !errors.Is(err, ErrNotEncodable) {
				t.Fatalf("EncodeText error %v is not ErrNotEncodable", err)
			}
			return
		}
		if back, _ := DecodeText(enc, cs); back != s {
			t.Fatalf("%q in %q: decoded %q, encoded %q, decoded again %q", b, charset, s, enc, back)
		}
	})
}
