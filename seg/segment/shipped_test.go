package segment

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"image"
	"image/draw"
	_ "image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/espnode/espnode/internal/testutil"
	"github.com/espnode/espnode/seg/pixel"
)

// TestShippedModel checks that the embedded model is the trained one its record describes
// (model/training/compact-s256-tiles.json) and that it segments: a PH2 dermoscopy test image, wrapped
// as an uncompressed XC DICOM file, against its reference lesion mask from seg2d.
func TestShippedModel(t *testing.T) {
	const maxBytes = 25 << 20
	if len(shippedModel) > maxBytes {
		t.Errorf("shipped model is %d bytes, more than 25 MiB", len(shippedModel))
	}
	raw, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "model", "training", "compact-s256-tiles.json"))
	if err != nil {
		t.Fatalf("training record: %v", err)
	}
	var rec struct {
		Export struct {
			File             string `json:"file"`
			ONNXSHA256       string `json:"onnx_sha256"`
			CheckpointSHA256 string `json:"checkpoint_sha256"`
		} `json:"export"`
		Data struct {
			ManifestSHA256 string `json:"manifest_sha256"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(shippedModel)
	if got := hex.EncodeToString(sum[:]); got != rec.Export.ONNXSHA256 || filepath.Base(rec.Export.File) != ShippedModelName {
		t.Errorf("shipped model sha256 %s (%s); the training record exports %s (%s)", got, ShippedModelName,
			rec.Export.ONNXSHA256, rec.Export.File)
	}
	if len(rec.Data.ManifestSHA256) != 64 {
		t.Errorf("training record: manifest sha256 %q", rec.Data.ManifestSHA256)
	}

	e := engine(t)
	route, err := e.Route("dermoscopy")
	if err != nil {
		t.Fatal(err)
	}
	md := route.Model.Metadata()
	if md.ModelName != "esp-medsam-compact" || md.InputSize != 256 || len(md.Channels) != 6 ||
		md.CheckpointSHA256 != rec.Export.CheckpointSHA256 {
		t.Errorf("metadata: %s, input %d, %d channels, checkpoint %s; want esp-medsam-compact, 256, 6, %s",
			md.ModelName, md.InputSize, len(md.Channels), md.CheckpointSHA256, rec.Export.CheckpointSHA256)
	}

	path := testutil.SharedData(t, "dicom", "wrapped", "XC_ph2_IMD092.dcm")
	var mask *pixel.Mask
	_, err = New(e).Segment(context.Background(), Request{Sources: []Input{File(path)}, Channel: "dermoscopy",
		Frame: func(f Frame) error { mask = f.Mask; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(testutil.SharedData(t, "seg2d", "dermoscopy", "ph2", "test", "masks", "IMD092.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	if b.Dx() != mask.Width || b.Dy() != mask.Height {
		t.Fatalf("mask %dx%d, reference %dx%d", mask.Width, mask.Height, b.Dx(), b.Dy())
	}
	ref := image.NewGray(b)
	draw.Draw(ref, b, img, b.Min, draw.Src)
	var inter, pred, truth int
	for i, p := range mask.Bits {
		in := ref.Pix[i] >= 128
		pred += int(p)
		if in {
			truth++
			inter += int(p)
		}
	}
	dice := 2 * float64(inter) / float64(pred+truth)
	t.Logf("IMD092 lesion: Dice %.3f (%d predicted, %d reference pixels)", dice, pred, truth)
	if dice < 0.8 {
		t.Errorf("IMD092 lesion Dice %.3f with the shipped model, want >= 0.8", dice)
	}
}
