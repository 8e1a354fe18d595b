package dicomweb

import (
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/store"
)

func TestParseQIDO(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		level   store.Level
		study   string
		matches []store.Match
		limit   int
		offset  int
		ignored []string
		bad     bool
	}{
		{name: "wildcard by keyword", query: "PatientName=Doe*", level: store.StudyLevel,
			matches: []store.Match{{Tag: dcm.PatientName, Pattern: "Doe*"}}, limit: 100},
		{name: "date range by tag", query: "00080020=20200101-20201231", level: store.StudyLevel,
			matches: []store.Match{{Tag: dcm.StudyDate, Range: true, Lo: "20200101", Hi: "20201231"}}, limit: 100},
		{name: "UID list with commas", query: "StudyInstanceUID=1.2.3,1.2.4", level: store.StudyLevel,
			matches: []store.Match{{Tag: dcm.StudyInstanceUID, Values: []string{"1.2.3", "1.2.4"}}}, limit: 100},
		{name: "repeated key is a list", query: "Modality=CT&Modality=SEG", level: store.SeriesLevel,
			matches: []store.Match{{Tag: dcm.Modality, Values: []string{"CT", "SEG"}}}, limit: 100},
		{name: "universal matching is a return key only", query: "PatientID=&AccessionNumber=*", level: store.StudyLevel, limit: 100},
		{name: "the path's study", query: "", level: store.SeriesLevel, study: "1.2.3",
			matches: []store.Match{{Tag: dcm.StudyInstanceUID, Values: []string{"1.2.3"}}}, limit: 100},
		{name: "limit bounded, offset", query: "limit=5000&offset=20", level: store.StudyLevel, limit: 100, offset: 20},
		{name: "limit", query: "limit=7", level: store.StudyLevel, limit: 7},
		{name: "keys the index cannot match are ignored", query: "00400275.00321060=x&Modality=CT&PatientAge=042Y", level: store.StudyLevel,
			ignored: []string{"00400275.00321060", "Modality", "PatientAge"}, limit: 100},
		{name: "limit zero", query: "limit=0", level: store.StudyLevel, bad: true},
		{name: "negative offset", query: "offset=-1", level: store.StudyLevel, bad: true},
		{name: "unknown includefield", query: "includefield=NoSuchKeyword", level: store.StudyLevel, bad: true},
		{name: "bad escape", query: "PatientName=%zz", level: store.StudyLevel, bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := parseQIDO(tt.query, tt.level, tt.study, "", 100)
			if tt.bad {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(q.query.Matches, tt.matches) && !(len(q.query.Matches) == 0 && len(tt.matches) == 0) {
				t.Errorf("matches %+v, want %+v", q.query.Matches, tt.matches)
			}
			if q.limit != tt.limit || q.offset != tt.offset {
				t.Errorf("limit %d offset %d", q.limit, q.offset)
			}
			if !reflect.DeepEqual(q.unsupported, tt.ignored) {
				t.Errorf("ignored %v, want %v", q.unsupported, tt.ignored)
			}
		})
	}
}

// TestSearch runs QIDO-RS over a few studies: levels, nested resources, matching, includefield
// (from the index and from the files), paging with its Warning, and refusals.
func TestSearch(t *testing.T) {
	f := newFixture(t, Options{MaxResults: 3})
	liver := []string{"SEG", "dcmqi_liver"}
	for _, n := range []string{"ct_01.dcm", "ct_02.dcm", "ct_03.dcm", "liver_seg.dcm"} {
		f.put(shared(t, append(liver, n)...))
	}
	us := f.put(shared(t, "US", "wg04_US1_UNC.dcm"))
	dx := f.put(shared(t, "DX", "highdicom_dx_image_mono1_evrle.dcm"))
	liverStudy := readFile(t, shared(t, append(liver, "ct_01.dcm")...)).DataSet.String(dcm.StudyInstanceUID)

	uids := func(objs []map[string]any, tag string) []string {
		var out []string
		for _, o := range objs {
			s, _ := value(o, tag).(string)
			out = append(out, s)
		}
		return out
	}
	studies := f.getJSON("/studies")
	if len(studies) != 3 {
		t.Fatalf("%d studies", len(studies))
	}
	for _, st := range studies {
		if value(st, "0020000D") == liverStudy {
			if value(st, "00201208") != float64(4) || value(st, "00201206") != float64(2) {
				t.Errorf("liver study counts: %v instances, %v series", value(st, "00201208"), value(st, "00201206"))
			}
			if !strings.HasSuffix(value(st, "00081190").(string), "/dicom-web/studies/"+liverStudy) {
				t.Errorf("RetrieveURL %v", value(st, "00081190"))
			}
		}
	}
	if got := uids(f.getJSON("/studies?ModalitiesInStudy=SEG"), "0020000D"); !reflect.DeepEqual(got, []string{liverStudy}) {
		t.Errorf("ModalitiesInStudy=SEG: %v", got)
	}
	if got := uids(f.getJSON("/studies?StudyInstanceUID="+url.QueryEscape(us.StudyInstanceUID+","+dx.StudyInstanceUID)), "0020000D"); len(got) != 2 {
		t.Errorf("UID list: %v", got)
	}
	if got := f.getJSON("/studies?PatientName=jan*"); len(got) != 1 {
		t.Errorf("PatientName=jan* (case-insensitive): %d", len(got))
	}
	series := f.getJSON("/studies/" + liverStudy + "/series")
	if len(series) != 2 || value(series[0], "00080060") == nil {
		t.Fatalf("series of the liver study: %v", series)
	}
	if got := f.getJSON("/series?Modality=SEG"); len(got) != 1 || value(got[0], "00100010") == nil {
		t.Errorf("/series?Modality=SEG: %d, with the study's attributes %v", len(got), got)
	}
	// Paging: 4 instances, MaxResults 3.
	rsp, _ := f.get("/studies/"+liverStudy+"/instances", "")
	if !strings.Contains(rsp.Header.Get("Warning"), "additional results") {
		t.Errorf("no Warning of more results: %v", rsp.Header)
	}
	page2 := f.getJSON("/studies/" + liverStudy + "/instances?offset=3")
	if len(page2) != 1 {
		t.Errorf("offset=3: %d instances", len(page2))
	}
	inst := f.getJSON("/studies/" + us.StudyInstanceUID + "/series/" + us.SeriesInstanceUID + "/instances?includefield=00280100,PhotometricInterpretation,00180050")
	if len(inst) != 1 || value(inst[0], "00280100") != float64(8) || value(inst[0], "00280004") != "RGB" || value(inst[0], "00280010") != float64(480) {
		t.Errorf("instance with includefield from the file: %v", inst)
	}
	all := f.getJSON("/instances?SOPInstanceUID=" + dx.SOPInstanceUID + "&includefield=all")
	if len(all) != 1 || all[0]["00280030"] == nil && all[0]["00181164"] == nil || all[0]["7FE00010"] != nil {
		t.Errorf("includefield=all: %v", all)
	}
	studyInc := f.getJSON("/studies?StudyInstanceUID=" + us.StudyInstanceUID + "&includefield=00080070,00080060")
	if len(studyInc) != 1 || value(studyInc[0], "00080070") == nil || studyInc[0]["00080060"] != nil {
		t.Errorf("study with Manufacturer (from the first instance) and not Modality (a series attribute): %v", studyInc)
	}
	rsp, _ = f.get("/studies?fuzzymatching=true&PatientAge=1", "")
	if w := rsp.Header.Values("Warning"); len(w) != 2 {
		t.Errorf("warnings %v, want fuzzymatching and the ignored key", w)
	}
	for _, bad := range []struct{ path, accept string }{{"/studies?limit=x", ""}, {"/studies", "application/dicom+xml"}, {"/studies/1..2/series", ""}} {
		if rsp, _ := f.get(bad.path, bad.accept); rsp.StatusCode != 400 && rsp.StatusCode != 406 {
			t.Errorf("%s (%s): %s", bad.path, bad.accept, rsp.Status)
		}
	}
}
