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

// TestDefaultRouting: the embedded configuration's routing table (the only one) routes each
// modality it names to its channel, and nothing else, through the pipeline's router.
func TestDefaultRouting(t *testing.T) {
	r := pipeline.NewRouter(routes(config.Default().Pipeline.Routing))
	for _, tt := range []struct {
		modality, want string
	}{
		{"ES", "colonoscopy"}, {"XC", "dermoscopy"}, {"DMS", "dermoscopy"}, {"DX", "xray"}, {"CR", "xray"},
		{"OP", "fundus"}, {"GM", "microscopy"}, {"SM", "microscopy"}, {"us", "ultrasound"}, {"CT", ""},
	} {
		got, _, ok := r.Route(store.Instance{Modality: tt.modality})
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("Modality %s: Route = %q, %v; want %q", tt.modality, got, ok, tt.want)
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
	pl, err := pipeline.New(ctx, pipeline.Options{Store: st, Config: pipelineConfig(cfg.Pipeline), AETitle: "ESPNODE", Logger: zerolog.Nop()})
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
