// Command gen writes synthetic Secondary Capture files for the ingest benchmark: N files of a
// given pixel size, each with its own SOP Instance UID, all in one study and series.
package main

import (
	"bytes"
	"encoding/binary"
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
	explicitLE       = "1.2.840.10008.1.2.1"
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
		var ds bytes.Buffer
		el := func(group, elem uint16, vr string, v []byte) {
			if len(v)%2 == 1 {
				pad := byte(' ')
				if vr == "UI" {
					pad = 0
				}
				v = append(v, pad)
			}
			binary.Write(&ds, binary.LittleEndian, [2]uint16{group, elem})
			ds.WriteString(vr)
			if vr == "OW" || vr == "OB" || vr == "UN" || vr == "SQ" || vr == "UT" {
				ds.Write([]byte{0, 0})
				binary.Write(&ds, binary.LittleEndian, uint32(len(v)))
			} else {
				binary.Write(&ds, binary.LittleEndian, uint16(len(v)))
			}
			ds.Write(v)
		}
		us := func(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
		el(0x0008, 0x0016, "UI", []byte(secondaryCapture))
		el(0x0008, 0x0018, "UI", []byte(sop))
		el(0x0008, 0x0060, "CS", []byte("OT"))
		el(0x0008, 0x0064, "CS", []byte("WSD"))
		el(0x0010, 0x0010, "PN", []byte("BENCH^INGEST"))
		el(0x0010, 0x0020, "LO", []byte("BENCH1"))
		el(0x0020, 0x000D, "UI", []byte(study))
		el(0x0020, 0x000E, "UI", []byte(series))
		el(0x0020, 0x0013, "IS", []byte(fmt.Sprint(i)))
		el(0x0028, 0x0002, "US", us(1))
		el(0x0028, 0x0004, "CS", []byte("MONOCHROME2"))
		el(0x0028, 0x0010, "US", us(uint16(*side)))
		el(0x0028, 0x0011, "US", us(uint16(*side)))
		el(0x0028, 0x0100, "US", us(16))
		el(0x0028, 0x0101, "US", us(16))
		el(0x0028, 0x0102, "US", us(15))
		el(0x0028, 0x0103, "US", us(0))
		hdr := ds.Len()
		el(0x7FE0, 0x0010, "OW", nil)
		// Patch the pixel data length and write the pixels after it, without copying them.
		b := ds.Bytes()
		binary.LittleEndian.PutUint32(b[hdr+8:], uint32(len(pixels)))
		f, err := os.Create(filepath.Join(*out, fmt.Sprintf("%06d.dcm", i)))
		if err != nil {
			log.Fatal(err)
		}
		if err := dcm.WriteFileMeta(f, dcm.FileMeta{MediaStorageSOPClassUID: secondaryCapture, MediaStorageSOPInstanceUID: sop,
			TransferSyntaxUID: explicitLE, ImplementationClassUID: root, ImplementationVersionName: "BENCH"}); err != nil {
			log.Fatal(err)
		}
		if _, err := f.Write(b); err != nil {
			log.Fatal(err)
		}
		if _, err := f.Write(pixels); err != nil {
			log.Fatal(err)
		}
		if err := f.Close(); err != nil {
			log.Fatal(err)
		}
	}
}
