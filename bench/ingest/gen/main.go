// Command gen writes synthetic Secondary Capture files for the ingest benchmark: N files of a
// given pixel size, each with its own SOP Instance UID, all in one study and series.
package main

import (
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/espnode/espnode/dcm"
)

const (
	secondaryCapture = "1.2.840.10008.5.1.4.1.1.7"
	root             = "2.25.1234567890123456789" // a private UUID-style root for synthetic data
)

func main() {
	n := flag.Int("n", 1000, "number of files")
	side := flag.Int("side", 64, "rows = columns of the 16-bit image")
	out := flag.String("out", "", "output folder")
	flag.Parse()
	if *out == "" {
		log.Fatal("gen: -out is required")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	pixels := make([]byte, 2**side**side)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range pixels {
		pixels[i] = byte(rng.IntN(256))
	}
	study := fmt.Sprintf("%s.1.%d", root, *side)
	series := study + ".1"
	for i := 1; i <= *n; i++ {
		sop := fmt.Sprintf("%s.2.%d", series, i)
		if err := write(filepath.Join(*out, fmt.Sprintf("%06d.dcm", i)), study, series, sop, i, *side, pixels); err != nil {
			log.Fatal(err)
		}
	}
}

func write(path, study, series, sop string, number, side int, pixels []byte) error {
	ds := dcm.NewDataSet(
		dcm.NewText(dcm.SOPClassUID, "UI", secondaryCapture),
		dcm.NewText(dcm.SOPInstanceUID, "UI", sop),
		dcm.NewText(dcm.Modality, "CS", "OT"),
		dcm.NewText(dcm.ConversionType, "CS", "WSD"),
		dcm.NewText(dcm.PatientName, "PN", "BENCH^INGEST"),
		dcm.NewText(dcm.PatientID, "LO", "BENCH1"),
		dcm.NewText(dcm.StudyInstanceUID, "UI", study),
		dcm.NewText(dcm.SeriesInstanceUID, "UI", series),
		dcm.NewIS(dcm.InstanceNumber, number),
		dcm.NewUS(dcm.SamplesPerPixel, 1),
		dcm.NewText(dcm.PhotometricInterpretation, "CS", "MONOCHROME2"),
		dcm.NewUS(dcm.Rows, uint16(side)),
		dcm.NewUS(dcm.Columns, uint16(side)),
		dcm.NewUS(dcm.BitsAllocated, 16),
		dcm.NewUS(dcm.BitsStored, 16),
		dcm.NewUS(dcm.HighBit, 15),
		dcm.NewUS(dcm.PixelRepresentation, 0),
		dcm.NewBytes(dcm.PixelData, "OW", pixels),
	)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := dcm.WriteFileMeta(f, dcm.FileMeta{MediaStorageSOPClassUID: secondaryCapture, MediaStorageSOPInstanceUID: sop,
		TransferSyntaxUID: dcm.ExplicitVRLittleEndian, ImplementationClassUID: root, ImplementationVersionName: "BENCH"}); err != nil {
		return err
	}
	w, err := dcm.NewWriter(f, dcm.ExplicitVRLittleEndian)
	if err != nil {
		return err
	}
	if err := w.WriteDataSet(ds); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return f.Close()
}
