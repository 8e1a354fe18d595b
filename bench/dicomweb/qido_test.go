// Package dicomwebbench measures the node's DICOMweb: QIDO-RS over a large index here (go test
// -bench), WADO-RS frame retrieval beside Orthanc in run.sh.
package dicomwebbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/dicomweb"
	"github.com/espnode/espnode/store"
	"github.com/espnode/espnode/store/sqlite"
)

// indexOnly is an archive of index rows without objects: a search reads only the index.
type indexOnly struct{ *sqlite.Engine }

func (indexOnly) OpenDataSetAt(context.Context, string, int64) (io.ReadCloser, store.Instance, error) {
	return nil, store.Instance{}, errors.New("the benchmark's index holds no objects")
}

// index100k is an index of 100,000 instances: 1,000 patients, each with one study of two series
// (CT and SEG) of 50 instances, the shape of store/sqlite's BenchmarkFindStudy. It lives in
// /dev/shm when there is one: each row is its own durable transaction, and the fsyncs of 100,000
// commits on a disk would take minutes without changing what is measured, which is the query.
func index100k(b *testing.B) *sqlite.Engine {
	b.Helper()
	dir := b.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "espnode-bench-")
		if err == nil {
			dir = d
			b.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	x, err := sqlite.Open(context.Background(), filepath.Join(dir, "index.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { x.Close() })
	now := time.Now()
	for p := range 1000 {
		for se := range 2 {
			for i := range 50 {
				in := store.Instance{PatientID: fmt.Sprintf("P%04d", p), PatientName: fmt.Sprintf("NAME%04d^TEST", p),
					StudyInstanceUID: fmt.Sprintf("1.%d", p), StudyDate: fmt.Sprintf("2020%02d%02d", 1+p%12, 1+p%28),
					SeriesInstanceUID: fmt.Sprintf("1.%d.%d", p, se), Modality: []string{"CT", "SEG"}[se],
					SOPInstanceUID: fmt.Sprintf("1.%d.%d.%d", p, se, i), SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", InstanceNumber: i + 1,
					Path: "x", ReceivedAt: now, TransferSyntaxUID: dcm.ExplicitVRLittleEndian}
				if _, err := x.Put(context.Background(), in, nil); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	return x
}

// BenchmarkQIDOStudies: a QIDO-RS study search (patient name wildcard and a date range; the
// answer has each study's related counts and modalities) over 100,000 indexed instances, through
// the node's DICOMweb server over loopback HTTP with the JSON decoded, beside the same query on
// the index alone, in the same loop. Reports both per query and their ratio.
func BenchmarkQIDOStudies(b *testing.B) {
	x := index100k(b)
	srv := httptest.NewServer(dicomweb.New(dicomweb.Options{Logger: zerolog.Nop()}, nil, indexOnly{x}))
	defer srv.Close()
	q := store.Query{Level: store.StudyLevel, Matches: []store.Match{
		{Tag: dcm.PatientName, Pattern: "NAME01*"},
		{Tag: dcm.StudyDate, Range: true, Lo: "20200301", Hi: "20200630"},
	}}
	url := srv.URL + "/dicom-web/studies?PatientName=NAME01*&StudyDate=20200301-20200630"
	client := srv.Client()
	var indexTime, qidoTime time.Duration
	matches := 0
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		n := 0
		if err := x.Find(context.Background(), q, func(store.Record) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Accept", "application/dicom+json")
		rsp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var studies []map[string]any
		err = json.NewDecoder(rsp.Body).Decode(&studies)
		rsp.Body.Close()
		if err != nil || rsp.StatusCode != http.StatusOK {
			b.Fatalf("QIDO-RS: %s %v", rsp.Status, err)
		}
		qidoTime += time.Since(t1)
		indexTime += t1.Sub(t0)
		if len(studies) != n {
			b.Fatalf("QIDO-RS found %d studies, the index %d", len(studies), n)
		}
		matches = n
	}
	if matches == 0 {
		b.Fatal("the query matched nothing")
	}
	runs := float64(b.N)
	b.ReportMetric(float64(matches), "matches")
	b.ReportMetric(float64(indexTime.Microseconds())/runs, "index-µs/query")
	b.ReportMetric(float64(qidoTime.Microseconds())/runs, "qido-µs/query")
	b.ReportMetric(float64(qidoTime)/float64(indexTime), "qido/index")
}
