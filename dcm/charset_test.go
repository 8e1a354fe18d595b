package dcm

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"testing"

	"github.com/espnode/espnode/internal/testutil"
)

// charsetCases are values of PS3.5 Annexes H, I and J and a few single-byte sets.
var charsetCases = []struct {
	name    string
	charset []string
	in      string
	want    string
}{
	{"default", nil, "Doe^John", "Doe^John"},
	{"Latin-1", []string{"ISO_IR 100"}, "Scheelev\xe4gen 17", "Scheelevägen 17"},
	{"no set, high bytes read as Latin-1", nil, "Buc^J\xe9r\xf4me", "Buc^Jérôme"},
	{"UTF-8", []string{"ISO_IR 192"}, "Wang^XiaoDong=王^小东=", "Wang^XiaoDong=王^小东="},
	{"Greek", []string{"ISO_IR 126"}, "\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2", "Διονυσιος"},
	{"GB18030", []string{"GB18030"}, "Wang^XiaoDong=\xcd\xf5^\xd0\xa1\xb6\xab=", "Wang^XiaoDong=王^小东="},
	{"Japanese ISO 2022 IR 87", []string{"", "ISO 2022 IR 87"},
		"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B",
		"Yamada^Tarou=山田^太郎=やまだ^たろう"},
	{"Korean ISO 2022 IR 149", []string{"", "ISO 2022 IR 149"},
		"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf",
		"Hong^Gildong=洪^吉洞=홍^길동"},
}

func TestDecodeText(t *testing.T) {
	for _, tt := range charsetCases {
		got, err := DecodeText([]byte(tt.in), tt.charset)
		if err != nil || got != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	if _, err := DecodeText([]byte("x"), []string{"ISO_IR 999"}); err == nil {
		t.Error("an unknown character set was accepted")
	}
}

// TestDecodeTextMatchesPydicom decodes the same values with pydicom.
func TestDecodeTextMatchesPydicom(t *testing.T) {
	type kase struct {
		Charset []string `json:"charset"`
		In      []byte   `json:"in"`
	}
	var in []kase
	for _, tt := range charsetCases {
		cs := tt.charset
		if len(cs) == 0 {
			cs = []string{"ISO_IR 100"} // pydicom reads the default repertoire as ASCII
		}
		in = append(in, kase{cs, []byte(tt.in)})
	}
	b, _ := json.Marshal(in)
	script := `import sys, json, base64
from pydicom.charset import decode_bytes, convert_encodings
for c in json.loads(sys.argv[1]):
    print(json.dumps(decode_bytes(base64.b64decode(c["in"]), convert_encodings(c["charset"]), {b"^", b"="})))`
	cmd := exec.Command(testutil.Python(t), "-c", script, string(b))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pydicom (install Debian's python3-pydicom): %v\n%s", err, stderr.String())
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for _, tt := range charsetCases {
		var want string
		if err := dec.Decode(&want); err != nil {
			t.Fatal(err)
		}
		if want != tt.want {
			t.Errorf("%s: pydicom %q, the case says %q", tt.name, want, tt.want)
		}
	}
}
