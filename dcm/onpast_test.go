package dcm

import (
	"bytes"
	"testing"
)

// TestOnPast: OnPast sees the kept elements up to Past once, while the pixel data after them is
// still unread; a data set that ends before Past never calls it.
func TestOnPast(t *testing.T) {
	ds := &DataSet{}
	ds.Set(StrElement(SOPInstanceUID, "1.2.3.4.5"))
	ds.Set(StrElement(StudyInstanceUID, "1.2.3"))
	ds.Set(StrElement(SeriesInstanceUID, "1.2.3.4"))
	ds.Set(NewUS(Rows, 8))
	ds.Set(NewBytes(PixelData, "OW", make([]byte, 4<<20)))
	data, err := Encode(ds, ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	keep := NewTagSet(SOPInstanceUID, StudyInstanceUID, SeriesInstanceUID, Rows)
	for _, c := range []struct {
		name  string
		past  Tag
		calls int
	}{
		{"series", SeriesInstanceUID, 1},
		{"past everything", PixelData, 0},
	} {
		r := &countingReader{r: bytes.NewReader(data)}
		var calls int
		var readAt int64
		var study, series string
		var rows bool
		_, err := ReadDataSet(r, ExplicitVRLittleEndian, ParseOptions{Keep: keep, SkipValuesOver: 1 << 10, Past: c.past, OnPast: func(ds *DataSet) {
			calls++
			readAt = r.n
			study, series = ds.String(StudyInstanceUID), ds.String(SeriesInstanceUID)
			_, err := ds.Int(Rows)
			rows = err == nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		if calls != c.calls {
			t.Fatalf("%s: OnPast called %d times, want %d", c.name, calls, c.calls)
		}
		if calls == 0 {
			continue
		}
		if study != "1.2.3" || series != "1.2.3.4" || rows {
			t.Errorf("%s: OnPast saw study %q, series %q, rows %v; want the UIDs and nothing after them", c.name, study, series, rows)
		}
		if readAt >= int64(len(data)-1<<20) {
			t.Errorf("%s: OnPast called after %d of %d bytes were read: not before the pixel data", c.name, readAt, len(data))
		}
	}
}
