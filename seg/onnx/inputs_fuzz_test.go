package onnx

import (
	"math"
	"testing"
)

// fuzzChannels is a valid espnode.channels of two channels, so that the fuzzed tiling and
// plausibility entries can name a served channel.
const fuzzChannels = `[{"index":0,"name":"xray","label":"Lung","category":{"scheme":"SCT","value":"91723000","meaning":"Anatomical structure"},"type":{"scheme":"SCT","value":"39607008","meaning":"Lung"},"query":1},` +
	`{"index":1,"name":"fundus","label":"Vessel","category":{"scheme":"SCT","value":"91723000","meaning":"Anatomical structure"},"type":{"scheme":"SCT","value":"59820001","meaning":"Blood vessel"},"query":3}]`

// FuzzParseMetadata: espnode.channel_inputs and espnode.plausibility come from a model file, so
// any bytes there are an error or a description Predict and Judge can use: every accepted input
// mode passes its own validation at the file's size, and judging any figures against accepted
// bounds neither panics nor gives a reason outside the three.
func FuzzParseMetadata(f *testing.F) {
	f.Add(`{"fundus":{"mode":"tiles","long_side":640,"tile":256,"stride":192,"window":"hann","pad":"zero","flips":["h"]},"xray":{"mode":"letterbox"}}`,
		`{"version":1,"measured_on":"train","rule":"r","bounds":"b","channels":{"fundus":{"n":62,"fg_fraction":{"lo":0.016,"hi":0.214},"patch_max":{"lo":0.704,"p0_5":0.946,"p50":0.99}}}}`)
	f.Add(`{"xray":{"mode":"letterbox","flips":["v","hv"]}}`, `{"version":1,"channels":{"xray":{"n":3,"fg_fraction":{"lo":0.5,"hi":1}}}}`)
	f.Add(`{"fundus":{"mode":"tiles","long_side":0,"tile":256,"stride":1}}`, `{"channels":{}}`)
	f.Add(`{"brain":{"mode":"letterbox"}}`, `{"channels":{"xray":{"fg_fraction":{"lo":-1}}}}`)
	f.Add(`{"fundus":{"mode":"tiles","tile":256,"stride":300,"extra":1}}`, `[]`)
	f.Add(`null`, `null`)
	f.Fuzz(func(t *testing.T, inputs, plausibility string) {
		md, err := ParseMetadata(map[string]string{
			KeyChannels: fuzzChannels, KeyInputSize: "256", KeyModelName: "fuzz", KeyModelVersion: "1",
			KeyThreshold: "0", KeyChannelInputs: inputs, KeyPlausibility: plausibility,
		})
		if err != nil {
			return
		}
		for name, ci := range md.ChannelInputs {
			if err := ci.validate(md.InputSize); err != nil {
				t.Fatalf("accepted input of %s fails its validation: %v", name, err)
			}
			if ci.Tiled() && (ci.Stride < 1 || ci.Tile != md.InputSize) {
				t.Fatalf("accepted tiles of %s: %+v", name, ci)
			}
		}
		for _, name := range []string{"xray", "fundus"} {
			b := md.Bounds(name)
			_ = b.String()
			for _, fg := range []float64{0, 0.5, 1, math.NaN()} {
				switch c := b.Judge(fg, fg, true); c.Reason {
				case "", ReasonFgLow, ReasonFgHigh, ReasonPatchLow:
				default:
					t.Fatalf("reason %q", c.Reason)
				}
			}
		}
	})
}
