package dicomweb

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/internal/testutil"
)

func encodeJSON(t *testing.T, ds *dcm.DataSet, bulk func([]int, *dcm.Element) string) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	(&jsonEncoder{buf: &buf, bulk: bulk}).dataSet(ds, nil)
	var out map[string]any
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	return out
}

func le(values ...any) []byte {
	var b bytes.Buffer
	for _, v := range values {
		_ = binary.Write(&b, binary.LittleEndian, v)
	}
	return b.Bytes()
}

// TestJSONModel checks the model of PS3.18 F.2 for every VR: numbers as numbers, text split into
// values with null for an empty one, person names by component group, AT as hex, binary values as
// base64 in little endian, sequences as arrays of objects, and an element without a value as its
// VR alone.
func TestJSONModel(t *testing.T) {
	tag := func(e uint16) dcm.Tag { return dcm.NewTag(0x0011, e) }
	tests := []struct {
		name string
		e    dcm.Element
		want string // the element's JSON object
	}{
		{"AE", dcm.Element{Tag: tag(1), VR: "AE", Value: []byte("STORESCU ")}, `{"vr":"AE","Value":["STORESCU"]}`},
		{"AS", dcm.Element{Tag: tag(2), VR: "AS", Value: []byte("042Y")}, `{"vr":"AS","Value":["042Y"]}`},
		{"AT", dcm.Element{Tag: tag(3), VR: "AT", Value: le(uint16(0x0010), uint16(0x0020), uint16(0x7FE0), uint16(0x0010))}, `{"vr":"AT","Value":["00100020","7FE00010"]}`},
		{"CS multi-valued, one empty", dcm.Element{Tag: tag(4), VR: "CS", Value: []byte(`ORIGINAL\\AXIAL `)}, `{"vr":"CS","Value":["ORIGINAL",null,"AXIAL"]}`},
		{"DA", dcm.Element{Tag: tag(5), VR: "DA", Value: []byte("20240101")}, `{"vr":"DA","Value":["20240101"]}`},
		{"DS as numbers", dcm.Element{Tag: tag(6), VR: "DS", Value: []byte(" 0.5\\-1.25E2\\+3 ")}, `{"vr":"DS","Value":[0.5,-125,3]}`},
		{"DS that is no number is kept as text", dcm.Element{Tag: tag(7), VR: "DS", Value: []byte("abc ")}, `{"vr":"DS","Value":["abc"]}`},
		{"DT", dcm.Element{Tag: tag(8), VR: "DT", Value: []byte("20240101120000.5+0100")}, `{"vr":"DT","Value":["20240101120000.5+0100"]}`},
		{"FL", dcm.Element{Tag: tag(9), VR: "FL", Value: le(float32(1.5), float32(math.NaN()))}, `{"vr":"FL","Value":[1.5,null]}`},
		{"FD", dcm.Element{Tag: tag(10), VR: "FD", Value: le(float64(-2.25))}, `{"vr":"FD","Value":[-2.25]}`},
		{"IS", dcm.Element{Tag: tag(11), VR: "IS", Value: []byte("+12\\-3")}, `{"vr":"IS","Value":[12,-3]}`},
		{"LO", dcm.Element{Tag: tag(12), VR: "LO", Value: []byte(" Chest  ")}, `{"vr":"LO","Value":["Chest"]}`},
		{"LT keeps backslashes and leading spaces", dcm.Element{Tag: tag(13), VR: "LT", Value: []byte(`  a\b "q" `)}, `{"vr":"LT","Value":["  a\\b \"q\""]}`},
		{"OB", dcm.Element{Tag: tag(14), VR: "OB", Value: []byte{0, 1, 2, 0xFF}}, `{"vr":"OB","InlineBinary":"AAEC/w=="}`},
		{"OD", dcm.Element{Tag: tag(15), VR: "OD", Value: le(float64(1))}, `{"vr":"OD","InlineBinary":"AAAAAAAA8D8="}`},
		{"OF", dcm.Element{Tag: tag(16), VR: "OF", Value: le(float32(1))}, `{"vr":"OF","InlineBinary":"AACAPw=="}`},
		{"OL", dcm.Element{Tag: tag(17), VR: "OL", Value: le(uint32(1))}, `{"vr":"OL","InlineBinary":"AQAAAA=="}`},
		{"OV", dcm.Element{Tag: tag(18), VR: "OV", Value: le(uint64(1))}, `{"vr":"OV","InlineBinary":"AQAAAAAAAAA="}`},
		{"OW", dcm.Element{Tag: tag(19), VR: "OW", Value: le(uint16(0x0102))}, `{"vr":"OW","InlineBinary":"AgE="}`},
		{"OW big endian goes out little endian", dcm.Element{Tag: tag(20), VR: "OW", Value: []byte{0x01, 0x02}, BigEndian: true}, `{"vr":"OW","InlineBinary":"AgE="}`},
		{"PN groups", dcm.Element{Tag: tag(21), VR: "PN", Value: []byte("Yamada^Tarou=YAMADA^T=yamada^tarou")},
			`{"vr":"PN","Value":[{"Alphabetic":"Yamada^Tarou","Ideographic":"YAMADA^T","Phonetic":"yamada^tarou"}]}`},
		{"PN without alphabetic group, and an empty value", dcm.Element{Tag: tag(22), VR: "PN", Value: []byte(`=Ideo\`)}, `{"vr":"PN","Value":[{"Ideographic":"Ideo"},null]}`},
		{"SH", dcm.Element{Tag: tag(23), VR: "SH", Value: []byte("A\\B")}, `{"vr":"SH","Value":["A","B"]}`},
		{"SL", dcm.Element{Tag: tag(24), VR: "SL", Value: le(int32(-5))}, `{"vr":"SL","Value":[-5]}`},
		{"SS", dcm.Element{Tag: tag(25), VR: "SS", Value: le(int16(-2), int16(3))}, `{"vr":"SS","Value":[-2,3]}`},
		{"ST", dcm.Element{Tag: tag(26), VR: "ST", Value: []byte("line1\r\nline2")}, `{"vr":"ST","Value":["line1\r\nline2"]}`},
		{"SV beyond 2^53 as a string", dcm.Element{Tag: tag(27), VR: "SV", Value: le(int64(-7), int64(1)<<60)}, `{"vr":"SV","Value":[-7,"1152921504606846976"]}`},
		{"TM", dcm.Element{Tag: tag(28), VR: "TM", Value: []byte("120000.123 ")}, `{"vr":"TM","Value":["120000.123"]}`},
		{"UC", dcm.Element{Tag: tag(29), VR: "UC", Value: []byte("x\\y")}, `{"vr":"UC","Value":["x","y"]}`},
		{"UI", dcm.Element{Tag: tag(30), VR: "UI", Value: []byte("1.2.3\x00")}, `{"vr":"UI","Value":["1.2.3"]}`},
		{"UL", dcm.Element{Tag: tag(31), VR: "UL", Value: le(uint32(4000000000))}, `{"vr":"UL","Value":[4000000000]}`},
		{"UN", dcm.Element{Tag: tag(32), VR: "UN", Value: []byte{9, 8}}, `{"vr":"UN","InlineBinary":"CQg="}`},
		{"UR", dcm.Element{Tag: tag(33), VR: "UR", Value: []byte("http://x/y\\z ")}, `{"vr":"UR","Value":["http://x/y\\z"]}`},
		{"US", dcm.Element{Tag: tag(34), VR: "US", Value: le(uint16(512))}, `{"vr":"US","Value":[512]}`},
		{"US big endian", dcm.Element{Tag: tag(35), VR: "US", Value: []byte{0x02, 0x00}, BigEndian: true}, `{"vr":"US","Value":[512]}`},
		{"UT", dcm.Element{Tag: tag(36), VR: "UT", Value: []byte("tab\there")}, `{"vr":"UT","Value":["tab\there"]}`},
		{"UV", dcm.Element{Tag: tag(37), VR: "UV", Value: le(uint64(42))}, `{"vr":"UV","Value":[42]}`},
		{"empty", dcm.Element{Tag: tag(38), VR: "LO"}, `{"vr":"LO"}`},
		{"only padding", dcm.Element{Tag: tag(39), VR: "DA", Value: []byte("  ")}, `{"vr":"DA"}`},
		{"SQ", dcm.NewSequence(tag(40), dcm.NewDataSet(dcm.NewText(dcm.CodeValue, "SH", "121322")), dcm.NewDataSet()),
			`{"vr":"SQ","Value":[{"00080100":{"vr":"SH","Value":["121322"]}},{}]}`},
		{"empty SQ", dcm.NewSequence(tag(41)), `{"vr":"SQ"}`},
		{"control character escaped", dcm.Element{Tag: tag(42), VR: "LO", Value: []byte("a\x01b")}, `{"vr":"LO","Value":["a\u0001b"]}`},
		{"UN of a tag dcm knows is written in its VR", dcm.Element{Tag: dcm.Rows, VR: "UN", Value: le(uint16(7))}, `{"vr":"US","Value":[7]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := encodeJSON(t, dcm.NewDataSet(tt.e), nil)
			var want any
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatalf("bad want: %v", err)
			}
			key := hex8(uint32(tt.e.Tag))
			if !reflect.DeepEqual(got[key], want) {
				g, _ := json.Marshal(got[key])
				t.Fatalf("got %s\nwant %s", g, tt.want)
			}
		})
	}
}

// TestJSONCharacterSets decodes the values of PS3.5 Annexes H and I to UTF-8, in a data set and in
// an item that inherits its character set, and says so in Specific Character Set.
func TestJSONCharacterSets(t *testing.T) {
	jp := "Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B"
	ds := dcm.NewDataSet(
		dcm.NewText(dcm.SpecificCharacterSet, "CS", "", "ISO 2022 IR 87"),
		dcm.Element{Tag: dcm.PatientName, VR: "PN", Value: []byte(jp)},
		dcm.NewSequence(dcm.ReferencedStudySequence, dcm.NewDataSet(dcm.Element{Tag: dcm.StudyDescription, VR: "LO", Value: []byte("\x1b$B;3ED\x1b(B")})),
	)
	got := encodeJSON(t, ds, nil)
	want := map[string]any{"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}
	if pn := value(got, "00100010"); !reflect.DeepEqual(pn, want) {
		t.Errorf("PatientName %v, want %v", pn, want)
	}
	item := value(got, "00081110").(map[string]any)
	if d := value(item, "00081030"); d != "山田" {
		t.Errorf("item's StudyDescription %v", d)
	}
	if cs := value(got, "00080005"); cs != "ISO_IR 192" {
		t.Errorf("SpecificCharacterSet %v, want ISO_IR 192 (the values are UTF-8 now)", cs)
	}
	latin := encodeJSON(t, dcm.NewDataSet(dcm.NewText(dcm.SpecificCharacterSet, "CS", "ISO_IR 100"),
		dcm.Element{Tag: dcm.PatientName, VR: "PN", Value: []byte("Buc^J\xe9r\xf4me")}), nil)
	if pn := value(latin, "00100010"); !reflect.DeepEqual(pn, map[string]any{"Alphabetic": "Buc^Jérôme"}) {
		t.Errorf("Latin-1 PatientName %v", pn)
	}
}

// TestJSONBulkData gives a value by reference when the encoder's function says so, inline
// otherwise, and the element alone when it was not read and has no reference.
func TestJSONBulkData(t *testing.T) {
	ds := dcm.NewDataSet(
		dcm.NewBytes(dcm.PixelData, "OW", make([]byte, 8)),
		dcm.NewBytes(dcm.NewTag(0x0011, 0x1010), "OB", []byte{1, 2}),
		dcm.Element{Tag: dcm.NewTag(0x0011, 0x1011), VR: "OB", Skipped: true, Length: 1 << 20},
	)
	got := encodeJSON(t, ds, func(path []int, e *dcm.Element) string {
		if dcm.Tag(path[0]) == dcm.PixelData {
			return "http://node/bulk/7FE00010"
		}
		return ""
	})
	if got["7FE00010"].(map[string]any)["BulkDataURI"] != "http://node/bulk/7FE00010" {
		t.Errorf("pixel data: %v", got["7FE00010"])
	}
	if got["00111010"].(map[string]any)["InlineBinary"] != "AQI=" {
		t.Errorf("short value: %v", got["00111010"])
	}
	if !reflect.DeepEqual(got["00111011"], map[string]any{"vr": "OB"}) {
		t.Errorf("skipped value without reference: %v", got["00111011"])
	}
}

// TestJSONMatchesPydicom compares the metadata of every shared file in explicit VR little endian
// (or an encapsulated syntax) with the JSON model pydicom makes of it, element by element:
// values, numbers, person names, inline binary and which values go by reference.
func TestJSONMatchesPydicom(t *testing.T) {
	const threshold = 1024
	var files []string
	for _, p := range sharedFiles(t) {
		m := readFile(t, p).Meta
		if syn, ok := dcm.LookupTransferSyntax(m.TransferSyntaxUID); ok && syn.ExplicitVR && !syn.BigEndian && !syn.Deflated {
			files = append(files, p)
		}
	}
	if len(files) < 40 {
		t.Fatalf("%d shared files in explicit VR little endian", len(files))
	}
	cmd := exec.Command(testutil.Python(t), append([]string{"testdata/pydicom_json.py", fmt.Sprint(threshold)}, files...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pydicom (install Debian's python3-pydicom): %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(files) {
		t.Fatalf("pydicom wrote %d lines for %d files", len(lines), len(files))
	}
	for i, p := range files {
		var want map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &want); err != nil {
			t.Fatal(err)
		}
		f := readFile(t, p)
		got := encodeJSON(t, f.DataSet, bulkRule(threshold, "BULK"))
		compareJSON(t, p, "", got, want, threshold)
	}
}

// compareJSON compares two JSON model objects; pydicom's full dictionary knows VRs dcm's does
// not, so elements the node writes as UN are left out, as are group lengths and the character
// set (which the node rewrites to UTF-8).
func compareJSON(t *testing.T, file, path string, got, want map[string]any, threshold int) {
	t.Helper()
	for tag, w := range want {
		if strings.HasSuffix(tag, "0000") || tag == "00080005" {
			continue
		}
		g, ok := got[tag].(map[string]any)
		wm := w.(map[string]any)
		if !ok {
			t.Errorf("%s: %s%s missing (pydicom: %v)", file, path, tag, w)
			continue
		}
		if g["vr"] == "UN" && wm["vr"] != "UN" {
			continue
		}
		if g["vr"] != wm["vr"] {
			t.Errorf("%s: %s%s VR %v, pydicom %v", file, path, tag, g["vr"], wm["vr"])
			continue
		}
		if (g["BulkDataURI"] != nil) != (wm["BulkDataURI"] != nil) {
			// pydicom leaves encapsulated pixel data inline below its threshold, where the node
			// always gives it by reference, and compares the threshold with the base64 text,
			// where the node takes the value's length.
			inline, _ := g["InlineBinary"].(string)
			if !(tag == "7FE00010" && g["BulkDataURI"] != nil) && len(inline) <= threshold {
				t.Errorf("%s: %s%s by reference %v, pydicom %v", file, path, tag, g["BulkDataURI"] != nil, wm["BulkDataURI"] != nil)
			}
			continue
		}
		if g["InlineBinary"] != wm["InlineBinary"] {
			t.Errorf("%s: %s%s InlineBinary differs", file, path, tag)
		}
		gv, _ := g["Value"].([]any)
		wv, _ := wm["Value"].([]any)
		if len(gv) != len(wv) {
			t.Errorf("%s: %s%s has %d values, pydicom %d (%v / %v)", file, path, tag, len(gv), len(wv), gv, wv)
			continue
		}
		for k := range gv {
			switch a := gv[k].(type) {
			case map[string]any:
				if wm["vr"] == "SQ" {
					compareJSON(t, file, fmt.Sprintf("%s%s[%d].", path, tag, k), a, wv[k].(map[string]any), threshold)
				} else if !reflect.DeepEqual(a, wv[k]) {
					t.Errorf("%s: %s%s value %d: %v, pydicom %v", file, path, tag, k, a, wv[k])
				}
			case float64:
				b, ok := wv[k].(float64)
				single := g["vr"] == "FL" || g["vr"] == "OF"
				if !ok || (single && float32(a) != float32(b)) || (!single && math.Abs(a-b) > 1e-9*math.Max(1, math.Abs(b))) {
					t.Errorf("%s: %s%s value %d: %v, pydicom %v", file, path, tag, k, a, wv[k])
				}
			case nil:
				// PS3.18 F.2.5: an empty value among several is null; pydicom writes "".
				if wv[k] != nil && wv[k] != "" {
					t.Errorf("%s: %s%s value %d: null, pydicom %v", file, path, tag, k, wv[k])
				}
			default:
				// Trailing spaces are padding (PS3.5 §6.2); pydicom keeps some of them.
				if fmt.Sprint(gv[k]) != strings.TrimRight(fmt.Sprint(wv[k]), " ") {
					t.Errorf("%s: %s%s value %d: %q, pydicom %q", file, path, tag, k, gv[k], wv[k])
				}
			}
		}
	}
	for tag := range got {
		if _, ok := want[tag]; !ok && !strings.HasSuffix(tag, "0000") {
			t.Errorf("%s: %s%s written, pydicom has no such element", file, path, tag)
		}
	}
}
