package dicomseg

import (
	"bufio"
	"bytes"
	"io"
	"testing"

	"github.com/espnode/espnode/dcm"
)

// TestResultDescribesItself: a Result names its SOP class, study and transfer syntax, and
// DataSet is exactly what follows the file meta, as a meta reader finds it.
func TestResultDescribesItself(t *testing.T) {
	n := 15
	res, err := Encode(testSource(), []Segment{testSegment(ones(n), ones(n), ones(n))}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(bytes.NewReader(res.Bytes))
	m, err := dcm.ReadFileMeta(br)
	if err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(br)
	if !bytes.Equal(res.DataSet(), rest) {
		t.Errorf("DataSet is %d bytes, the data set after the meta %d", len(res.DataSet()), len(rest))
	}
	if res.SOPClassUID != m.MediaStorageSOPClassUID || res.SOPInstanceUID != m.MediaStorageSOPInstanceUID ||
		res.TransferSyntaxUID != m.TransferSyntaxUID || res.StudyInstanceUID != "1.2.3" {
		t.Errorf("result %s %s %s study %s; meta %+v", res.SOPClassUID, res.SOPInstanceUID, res.TransferSyntaxUID, res.StudyInstanceUID, m)
	}
}
