package channel

import (
	"slices"
	"strings"
	"testing"
)

func TestDefaults(t *testing.T) {
	want := []struct {
		index         int
		name          string
		category, typ string
	}{
		{0, "dermoscopy", "49755003", "52988006"},
		{1, "xray", "91723000", "39607008"},
		{2, "ultrasound", "49755003", "52988006"},
		{3, "fundus", "85756007", "59820001"},
		{4, "microscopy", "91723000", "84640000"},
		{5, "colonoscopy", "49755003", "41329004"},
	}
	chs := Defaults()
	if len(chs) != len(want) {
		t.Fatalf("got %d channels, want %d", len(chs), len(want))
	}
	for i, w := range want {
		c := chs[i]
		if c.Index != w.index || c.Name != w.name || c.Category.Value != w.category || c.Type.Value != w.typ {
			t.Errorf("channel %d = %+v, want index %d name %q category %s type %s", i, c, w.index, w.name, w.category, w.typ)
		}
		if c.Category.Scheme != "SCT" || c.Type.Scheme != "SCT" {
			t.Errorf("channel %q: schemes %q/%q, want SCT", c.Name, c.Category.Scheme, c.Type.Scheme)
		}
		byName, ok := ByName(w.name)
		if !ok || byName != c {
			t.Errorf("ByName(%q) = %+v, %v", w.name, byName, ok)
		}
		byIndex, ok := ByIndex(w.index)
		if !ok || byIndex != c {
			t.Errorf("ByIndex(%d) = %+v, %v", w.index, byIndex, ok)
		}
	}
	if _, ok := ByName("nope"); ok {
		t.Error("ByName found a channel that does not exist")
	}
	if _, ok := ByIndex(6); ok {
		t.Error("ByIndex found a channel that does not exist")
	}
}

func TestNames(t *testing.T) {
	want := []string{"dermoscopy", "xray", "ultrasound", "fundus", "microscopy", "colonoscopy"}
	if got := Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
}

func TestDefaultsIsACopy(t *testing.T) {
	a := Defaults()
	a[0].Label = "changed"
	if b := Defaults(); b[0].Label == "changed" {
		t.Fatal("Defaults returned shared state")
	}
}

func TestParseRejects(t *testing.T) {
	const ok = `{"index":0,"name":"a","label":"A","category":{"scheme":"SCT","value":"1","meaning":"x"},"type":{"scheme":"SCT","value":"2","meaning":"y"}}`
	tests := []struct {
		name, json, wantErr string
	}{
		{"empty", `[]`, "empty"},
		{"not json", `{`, "parse"},
		{"unknown field", `[{"index":0,"nam":"a"}]`, "unknown field"},
		{"index gap", `[` + strings.Replace(ok, `"index":0`, `"index":1`, 1) + `]`, "index 1, want 0"},
		{"duplicate name", `[` + ok + `,` + strings.Replace(ok, `"index":0`, `"index":1`, 1) + `]`, "duplicate name"},
		{"reserved name", `[` + strings.Replace(ok, `"name":"a"`, `"name":"none"`, 1) + `]`, "reserved"},
		{"no label", `[` + strings.Replace(ok, `"label":"A"`, `"label":""`, 1) + `]`, "label"},
		{"no meaning", `[` + strings.Replace(ok, `"meaning":"y"`, `"meaning":""`, 1) + `]`, "type: code meaning"},
		{"long value", `[` + strings.Replace(ok, `"value":"1"`, `"value":"12345678901234567"`, 1) + `]`, "category: code value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.json))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Parse error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := Parse([]byte(`[` + ok + `]`)); err != nil {
		t.Fatalf("Parse of a valid table: %v", err)
	}
}
