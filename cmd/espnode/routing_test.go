package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/config"
	"github.com/espnode/espnode/dcm"
	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/pipeline"
	"github.com/espnode/espnode/store"
	"github.com/espnode/espnode/store/datadir"
)

// TestDefaultRouting: the embedded configuration's routing table (the only one) through the
// pipeline's router: each channel gets what its model was trained on where a tag tells, and
// every other instance is stored with a reason.
func TestDefaultRouting(t *testing.T) {
	r := pipeline.NewRouter(routes(config.Default().Pipeline.Routing))
	type inst = store.Instance
	for _, tt := range []struct {
		name         string
		inst         inst
		want, reason string
	}{
		{"ES", inst{Modality: "ES"}, "colonoscopy", ""},
		{"ES of the colon", inst{Modality: "ES", BodyPartExamined: "COLON"}, "colonoscopy", ""},
		{"ES, region colon", inst{Modality: "ES", AnatomicRegion: `SCT:71854001`}, "colonoscopy", ""},
		{"ES of the stomach", inst{Modality: "ES", BodyPartExamined: "STOMACH"}, "", "endoscopy_not_colon"},
		{"ES, region stomach", inst{Modality: "ES", AnatomicRegion: `SCT:69695003`}, "", "endoscopy_not_colon"},
		{"ES, Barrett's esophagus", inst{Modality: "ES", StudyDescription: "Barretts Esophagus"}, "", "endoscopy_not_colon"},
		{"XC", inst{Modality: "XC"}, "dermoscopy", ""},
		{"DMS", inst{Modality: "DMS"}, "dermoscopy", ""},
		{"OP", inst{Modality: "OP"}, "fundus", ""},
		{"GM", inst{Modality: "GM"}, "microscopy", ""},
		{"SM", inst{Modality: "SM"}, "microscopy", ""},
		{"CT", inst{Modality: "CT", BodyPartExamined: "CHEST"}, "", pipeline.ReasonNoRule},
		{"MG", inst{Modality: "MG", BodyPartExamined: "BREAST"}, "", pipeline.ReasonNoRule},

		{"CR chest", inst{Modality: "CR", BodyPartExamined: "CHEST"}, "xray", ""},
		{"DX thorax", inst{Modality: "DX", BodyPartExamined: "THORAX"}, "xray", ""},
		{"DX lung, lower case", inst{Modality: "dx", BodyPartExamined: "lung"}, "xray", ""},
		{"CR CHEST_PA", inst{Modality: "CR", BodyPartExamined: "CHEST_PA"}, "xray", ""},
		{"CR PA CHEST", inst{Modality: "CR", BodyPartExamined: "PA CHEST"}, "xray", ""},
		{"CR Chest PA, padded", inst{Modality: "CR ", BodyPartExamined: " Chest PA "}, "xray", ""},
		{"CR chest, PA view", inst{Modality: "CR", BodyPartExamined: "CHEST", ViewPosition: "PA"}, "xray", ""},
		{"CR chest, AP view", inst{Modality: "CR", BodyPartExamined: "CHEST", ViewPosition: "AP"}, "xray", ""},
		{"CR chest, lateral view", inst{Modality: "CR", BodyPartExamined: "CHEST", ViewPosition: "LL"}, "", "xray_lateral_or_oblique"},
		{"DX chest, RL", inst{Modality: "DX", BodyPartExamined: "CHEST", ViewPosition: "RL"}, "", "xray_lateral_or_oblique"},
		{"CR hip (wg04 RG2)", inst{Modality: "CR", BodyPartExamined: "HIP", StudyDescription: "HIP JOINT"}, "", "xray_not_chest"},
		{"CR extremity (wg04 RG3)", inst{Modality: "CR", BodyPartExamined: "EXTREMITY", ViewPosition: "AP"}, "", "xray_not_chest"},
		{"CR chest and abdomen", inst{Modality: "CR", BodyPartExamined: "CHESTABDOMEN"}, "", "xray_not_chest"},
		{"CR thoracic spine", inst{Modality: "CR", BodyPartExamined: "TSPINE"}, "", "xray_not_chest"},
		{"CR hip, described as chest", inst{Modality: "CR", BodyPartExamined: "HIP", SeriesDescription: "CHEST"}, "", "xray_not_chest"},
		{"CR nothing said", inst{Modality: "CR"}, "", "xray_not_chest"},
		{"CR teeth (fo-dicom)", inst{Modality: "CR", StudyDescription: "MODALITYLUT - TEETH"}, "", "xray_not_chest"},
		{"DX, region chest (SCT)", inst{Modality: "DX", AnatomicRegion: `SCT:51185008`}, "xray", ""},
		{"DX, region chest (SRT)", inst{Modality: "DX", AnatomicRegion: `srt:t-d3000`}, "xray", ""},
		{"DX, region lung", inst{Modality: "DX", AnatomicRegion: `SCT:39607008`}, "xray", ""},
		{"DX, region knee", inst{Modality: "DX", AnatomicRegion: `SCT:72696002`, StudyDescription: "CHEST"}, "", "xray_not_chest"},
		{"CR, study chest", inst{Modality: "CR", StudyDescription: "XR CHEST 2 VIEWS"}, "xray", ""},
		{"CR, series Chest-PA", inst{Modality: "CR", SeriesDescription: "Chest-PA"}, "xray", ""},
		{"CR, protocol thorax", inst{Modality: "CR", ProtocolName: "THORAX AP"}, "xray", ""},
		{"CR, view position CHEST PA", inst{Modality: "CR", ViewPosition: "CHEST PA"}, "xray", ""},

		{"US breast", inst{Modality: "US", BodyPartExamined: "BREAST"}, "ultrasound", ""},
		{"US left breast", inst{Modality: "us", BodyPartExamined: "LEFT_BREAST"}, "ultrasound", ""},
		{"US, region breast", inst{Modality: "US", AnatomicRegion: `SCT:76752008`}, "ultrasound", ""},
		{"US, study breast", inst{Modality: "US", StudyDescription: "US BREAST BILATERAL"}, "ultrasound", ""},
		{"US nothing said", inst{Modality: "US"}, "", "ultrasound_not_breast"},
		{"US echocardiogram", inst{Modality: "US", StudyDescription: "Echocardiogram"}, "", "ultrasound_not_breast"},
		{"US thyroid", inst{Modality: "US", BodyPartExamined: "THYROID", StudyDescription: "breast"}, "", "ultrasound_not_breast"},
		{"US, region heart", inst{Modality: "US", AnatomicRegion: `SCT:80891009`}, "", "ultrasound_not_breast"},
	} {
		d := r.Decide(tt.inst)
		if d.Channel != tt.want || d.Reason != tt.reason {
			t.Errorf("%s: Decide = %+v; want channel %q, reason %q", tt.name, d, tt.want, tt.reason)
		}
		if ch, _, ok := r.Route(tt.inst); ch != tt.want || ok != (tt.want != "") {
			t.Errorf("%s: Route = %q, %v", tt.name, ch, ok)
		}
	}
}

// TestSegmentRoutesAsServe: for every shared file, `espnode segment` picks the channel the node
// gives the same file when it stores it (the segmentation job's channel), or none when the
// node makes no job.
func TestSegmentRoutesAsServe(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := datadir.Open(ctx, datadir.Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := config.Default()
	pl, err := pipeline.New(ctx, pipeline.Options{Store: st, Config: pipelineConfig(cfg.Pipeline, cfg.Model, false), AETitle: "ESPNODE", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	cli := &segmenter{router: pipeline.NewRouter(routes(cfg.Pipeline.Routing))}

	want := map[string]string{} // file -> channel the CLI picks ("" none)
	uids := map[string]string{} // SOP Instance UID -> file
	root := testutil.SharedData(t, "dicom")
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".dcm") {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		br := bufio.NewReader(f)
		meta, err := dcm.ReadFileMeta(br)
		if err != nil {
			return nil // no meta: neither stores it as a file
		}
		// As storescu would: the command's UIDs from the data set.
		inst, err := store.Describe(br, meta.TransferSyntaxUID)
		if err != nil || dcm.CheckUID(inst.SOPInstanceUID) != nil || uids[inst.SOPInstanceUID] != "" {
			return nil
		}
		if _, err := f.Seek(0, 0); err != nil {
			return err
		}
		br.Reset(f)
		if _, err := dcm.ReadFileMeta(br); err != nil {
			return err
		}
		if _, err := pl.Put(ctx, store.PutRequest{SOPClassUID: inst.SOPClassUID, SOPInstanceUID: inst.SOPInstanceUID,
			TransferSyntaxUID: meta.TransferSyntaxUID, CalledAE: "ESPNODE", Data: br}); err != nil {
			return nil // the node refuses it (no study UID...): nothing to compare
		}
		uids[inst.SOPInstanceUID] = path
		ch, err := cli.route(path)
		if err != nil && !strings.Contains(err.Error(), "no channel for Modality") {
			t.Errorf("%s: %v", path, err)
		}
		want[path] = ch
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pipeline.NewAdmin(func() store.Queue { q, _ := st.Queue(); return q }())
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := admin.List(ctx, nil, []string{pipeline.KindSegment}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, j := range jobs {
		var a pipeline.SegmentArgs
		if err := json.Unmarshal([]byte(j.Args), &a); err != nil {
			t.Fatal(err)
		}
		got[uids[a.SOPInstanceUID]] = a.Channel
	}
	routed := 0
	for path, ch := range want {
		if got[path] != ch {
			t.Errorf("%s: espnode segment picks %q, serve %q", path, ch, got[path])
		}
		if ch != "" {
			routed++
		}
	}
	if len(want) < 50 || routed < 10 {
		t.Errorf("compared %d files, %d of them routed: too few to mean anything", len(want), routed)
	}
}

// TestSharedFilesRouting: the shared radiographs and ultrasound files, read as serve and segment
// read them (store.Describe), get the lung channel only when they are of the chest, and the
// breast-lesion channel never (none of them says it is of the breast).
func TestSharedFilesRouting(t *testing.T) {
	cli := &segmenter{router: pipeline.NewRouter(routes(config.Default().Pipeline.Routing))}
	for _, tt := range []struct {
		file, want string // want: channel, or the reason in the error
	}{
		{"CR/wg04_RG2_J2KR_mono2.dcm", "xray_not_chest"},
		{"CR/wg04_RG2_JLSL_mono2.dcm", "xray_not_chest"},
		{"CR/wg04_RG2_JPLY_mono2.dcm", "xray_not_chest"},
		{"CR/wg04_RG2_RLE_mono2.dcm", "xray_not_chest"},
		{"CR/wg04_RG3_J2KI_mono1.dcm", "xray_not_chest"},
		{"CR/wg04_RG3_JLSN_mono1.dcm", "xray_not_chest"},
		{"CR/wg04_RG3_JPLL_mono1.dcm", "xray_not_chest"},
		{"CR/wg04_RG3_UNC_mono1.dcm", "xray_not_chest"},
		{"CR/fodicom_CR_modality_lut_seq_jpegll.dcm", "xray_not_chest"}, // "MODALITYLUT - TEETH"
		{"CR/orthanc_Issue44_mono1_jpegbaseline.dcm", "xray_not_chest"}, // nothing said
		{"DX/highdicom_dx_image_mono1_evrle.dcm", "xray"},               // THORAX
		{"DX/pylibjpeg_DX_j2k_lossless.dcm", "xray_not_chest"},          // empty region sequence
		{"US/wg04_US1_UNC.dcm", "ultrasound_not_breast"},
		{"US/dcm4che_US_ybrfull_rle.dcm", "ultrasound_not_breast"}, // Thyroid
		{"US_multiframe/barre_US_PAL_8_10x_echo_rle.dcm", "ultrasound_not_breast"},
		{"wrapped/ES_polypgen_C3_EndoCV2021_00428.dcm", "colonoscopy"},
		{"wrapped/OP_drive_drive_05.dcm", "fundus"},
	} {
		ch, err := cli.route(testutil.SharedData(t, "dicom", tt.file))
		got := ch
		if err != nil {
			got = err.Error()
		}
		if ch != tt.want && (err == nil || !strings.Contains(got, "(routing: "+tt.want+")")) {
			t.Errorf("%s: %s, want %s", tt.file, got, tt.want)
		}
	}
}
