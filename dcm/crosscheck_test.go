package dcm

import (
	"bytes"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/espnode/espnode/internal/testutil"
)

// token is one line of a data set dump, the same from our parse and from dcmdump's: an element
// (tag, VR, value length, value), an item (its element count) or a fragment (its length), at
// its nesting level.
type token struct {
	level  int
	tag    Tag
	vr     string // "item", "fragment", or the element's VR
	length int64  // -1 for undefined
	count  int    // items of a sequence, elements of an item, fragments of pixel data
	value  string // normalized; "\x00skip" when dcmdump did not load it
	e      *Element
}

func (k token) String() string {
	return fmt.Sprintf("%*s%s %s len=%d n=%d %q", 2*k.level, "", k.tag, k.vr, k.length, k.count, k.value)
}

// ourTokens flattens a parsed data set the way dcmdump prints one.
func ourTokens(ds *DataSet, level int) []token {
	var out []token
	for i := range ds.Elements {
		e := &ds.Elements[i]
		k := token{level: level, tag: e.Tag, vr: e.VR, length: int64(e.Length), e: e}
		if e.Length == UndefinedLength {
			k.length = -1
		}
		switch {
		case e.VR == "SQ":
			k.count = len(e.Items)
			out = append(out, k)
			for _, item := range e.Items {
				out = append(out, token{level: level + 1, tag: Item, vr: "item", count: len(item.Elements)})
				out = append(out, ourTokens(item, level+2)...)
			}
		case e.Fragments != nil:
			k.count = len(e.Fragments)
			out = append(out, k)
			for _, f := range e.Fragments {
				out = append(out, token{level: level + 1, tag: Item, vr: "fragment", length: int64(len(f))})
			}
		default:
			out = append(out, k)
		}
	}
	return out
}

var (
	dumpElement = regexp.MustCompile(`^( *)\(([0-9a-f]{4}),([0-9a-f]{4})\) (\S\S) (.*?) +# *(\d+|u/l), *\d+ .+$`)
	dumpCount   = regexp.MustCompile(`#=(\d+)\)`)
)

// dcmdumpTokens runs dcmdump on a file and returns its data set (file meta left out) as tokens.
func dcmdumpTokens(t *testing.T, path string) []token {
	t.Helper()
	tool := testutil.Tool(t, "dcmdump", "dcmtk")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(tool, "-M", "+L", "-Un", path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("dcmdump %s: %v\n%s", path, err, stderr.String())
	}
	var out []token
	inData := false
	for _, line := range strings.Split(stdout.String(), "\n") {
		if strings.HasPrefix(line, "# Dicom-Data-Set") {
			inData = true
			continue
		}
		m := dumpElement.FindStringSubmatch(line)
		// DCMTK puts an element of the data set that the group length counts in into the
		// meta header; ReadFileMeta leaves it to the data set.
		if m == nil || !inData && m[2] == "0002" {
			continue
		}
		g, _ := strconv.ParseUint(m[2], 16, 16)
		el, _ := strconv.ParseUint(m[3], 16, 16)
		k := token{level: len(m[1]) / 2, tag: NewTag(uint16(g), uint16(el)), vr: m[4], value: m[5], length: -1}
		if m[6] != "u/l" {
			k.length, _ = strconv.ParseInt(m[6], 10, 64)
		}
		switch {
		case k.tag == ItemDelimitationItem || k.tag == SequenceDelimitationItem:
			continue
		case k.tag == Item && k.vr == "pi":
			k.vr, k.value = "fragment", ""
		case k.tag == Item:
			k.vr, k.length = "item", 0
			k.count = countOf(k.value)
			k.value = ""
		case k.vr == "SQ" || strings.HasPrefix(k.value, "(PixelSequence"):
			k.count = countOf(k.value)
			k.value = ""
		}
		out = append(out, k)
	}
	return out
}

func countOf(s string) int {
	m := dumpCount.FindStringSubmatch(s)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// sameValue compares our element with dcmdump's rendering of it, in the VR dcmdump read it
// in (an element we know only as UN, dcmdump may know from its dictionary).
func sameValue(e *Element, vr, dump string) (bool, string) {
	if dump == "(not loaded)" {
		return true, ""
	}
	if dump == "(no value available)" {
		dump = ""
	}
	switch vr {
	case "xs", "lt":
		vr = "US"
	case "ox":
		vr = "OW"
	case "??":
		vr = "UN"
	}
	bo := e.order()
	var ours string
	switch {
	case isText(vr):
		dump = strings.TrimSuffix(strings.TrimPrefix(dump, "["), "]")
		dump = strings.TrimRight(dump, " \x00")
		if leadingSpaceInsignificant(vr) {
			dump = strings.TrimLeft(dump, " ")
		}
		ours = trimValue(e.Value, leadingSpaceInsignificant(vr))
	case vr == "US" || vr == "SS" || vr == "UL" || vr == "SL" || vr == "SV" || vr == "UV":
		c := *e
		c.VR = vr
		ours = strings.Join(c.Strings(), `\`)
	case vr == "FL" || vr == "FD":
		var got []float64
		if vr == "FL" {
			for b := e.Value; len(b) >= 4; b = b[4:] {
				got = append(got, float64(math.Float32frombits(bo.Uint32(b))))
			}
		} else {
			for b := e.Value; len(b) >= 8; b = b[8:] {
				got = append(got, math.Float64frombits(bo.Uint64(b)))
			}
		}
		parts := strings.Split(dump, `\`)
		if dump == "" {
			parts = nil
		}
		if len(parts) != len(got) {
			return false, fmt.Sprint(got)
		}
		for i, p := range parts {
			w, err := strconv.ParseFloat(p, 64)
			if err != nil || math.Abs(w-got[i]) > 1e-5*math.Max(1, math.Abs(w)) {
				return false, fmt.Sprint(got)
			}
		}
		return true, ""
	case vr == "AT":
		c := *e
		c.VR = "AT"
		ours = strings.ToLower(strings.Join(c.Strings(), `\`))
	case vr == "OB" || vr == "UN":
		hex := make([]string, len(e.Value))
		for i, b := range e.Value {
			hex[i] = fmt.Sprintf("%02x", b)
		}
		ours = strings.Join(hex, `\`)
	case vr == "OW":
		var hex []string
		for b := e.Value; len(b) >= 2; b = b[2:] {
			hex = append(hex, fmt.Sprintf("%04x", bo.Uint16(b)))
		}
		ours = strings.Join(hex, `\`)
	default:
		return true, "" // OF, OD, OL, OV: the length says enough
	}
	return ours == dump, ours
}

// TestReaderMatchesDcmdump parses every shared file whole and compares every element, item
// and fragment with what DCMTK's dcmdump reads: nesting, tag, VR, length, and value (of the
// values dcmdump loads: up to 4 KiB).
func TestReaderMatchesDcmdump(t *testing.T) {
	for _, path := range sharedFiles(t) {
		rel, _ := filepath.Rel(testutil.SharedData(t, "dicom"), path)
		t.Run(rel, func(t *testing.T) {
			f, err := ReadFile(path, ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ours, want := ourTokens(f.DataSet, 0), dcmdumpTokens(t, path)
			if len(want) < 10 {
				t.Fatalf("dcmdump gave only %d elements", len(want))
			}
			compared := 0
			for i := 0; i < len(ours) && i < len(want); i++ {
				o, w := ours[i], want[i]
				vrOK := o.vr == w.vr || o.vr == "UN" || w.vr == "??" || w.vr == "ox" || w.vr == "xs" || w.vr == "lt" ||
					o.vr == "SQ" && w.vr == "UN" ||
					// DCMTK calls encapsulated pixel data OB, whatever the stream says.
					o.e != nil && o.e.Fragments != nil && w.vr == "OB"
				if o.level != w.level || o.tag != w.tag || !vrOK || o.count != w.count ||
					(o.vr != "item" && o.vr != "SQ" && o.length != w.length) {
					t.Fatalf("element %d differs:\n ours    %v\n dcmdump %v", i, o, w)
				}
				if o.e != nil && o.vr != "SQ" && o.e.Fragments == nil {
					if ok, got := sameValue(o.e, w.vr, w.value); !ok {
						t.Fatalf("element %d %s %s: value %q, dcmdump %q", i, o.tag, w.vr, got, w.value)
					}
					compared++
				}
			}
			if len(ours) != len(want) {
				t.Fatalf("%d elements, dcmdump %d", len(ours), len(want))
			}
			if compared < 10 {
				t.Errorf("only %d values compared", compared)
			}
		})
	}
}
