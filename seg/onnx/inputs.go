package onnx

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Optional metadata keys of the model contract's tiling and plausibility additions
// (model/README.md, "Tiling contract"). A file without them is read as before.
const (
	KeyChannelInputs = "espnode.channel_inputs"
	KeyPlausibility  = "espnode.plausibility"
	// OutputPatch is the optional second output, float32 [N,1,S/32,S/32]: the SPPG patch
	// head's logits, one per 32 x 32 input pixels.
	OutputPatch = "patch_logits"
	// PatchCell is the side, in input pixels, of one patch_logits cell.
	PatchCell = 32
)

// Input modes of a channel (ChannelInput.Mode).
const (
	ModeLetterbox = "letterbox"
	ModeTiles     = "tiles"
)

// Flips of the test-time augmentation (ChannelInput.Flips): left-right, top-bottom, both.
const (
	FlipH  = "h"
	FlipV  = "v"
	FlipHV = "hv"
)

const maxLongSide = 16384

// ChannelInput is how the node feeds one channel's images to the model: one letterbox of the
// whole image, or overlapping S x S tiles of the image resized to a working size, their logits
// blended with a Hann window; either with flipped variants averaged in. The zero value is the
// letterbox without flips, what a file without espnode.channel_inputs gets.
type ChannelInput struct {
	Mode string `json:"mode"`
	// LongSide is, for tiles, the working size's longer side in pixels; 0 keeps the source size.
	LongSide int `json:"long_side"`
	// Tile is the tile side; it must equal the model's input size.
	Tile int `json:"tile"`
	// Stride is the largest step between tile origins.
	Stride int `json:"stride"`
	// Window is the blending weight ("hann"), Pad the value outside the image ("zero").
	Window string `json:"window"`
	Pad    string `json:"pad"`
	// Flips are variants run besides the image itself, their logits flipped back and averaged.
	Flips []string `json:"flips"`
}

// Tiled reports whether the channel is fed as tiles.
func (ci ChannelInput) Tiled() bool { return ci.Mode == ModeTiles }

// String is the input as the model's record writes it in short: letterbox, tiles:640:192, +h.
func (ci ChannelInput) String() string {
	s := ModeLetterbox
	if ci.Tiled() {
		s = fmt.Sprintf("%s:%d:%d", ModeTiles, ci.LongSide, ci.Stride)
	}
	for _, f := range ci.Flips {
		s += "+" + f
	}
	return s
}

// validate checks an entry as model/espmedsam/infer.py's ChannelInput.validate does, so that the
// two accept the same files: the tile fields are checked (and used) in tiles mode only.
func (ci *ChannelInput) validate(size int) error {
	if ci.Mode != ModeLetterbox && ci.Mode != ModeTiles {
		return fmt.Errorf("mode %q: want %s or %s", ci.Mode, ModeLetterbox, ModeTiles)
	}
	seen := map[string]bool{}
	for _, f := range ci.Flips {
		if f != FlipH && f != FlipV && f != FlipHV || seen[f] {
			return fmt.Errorf("flips %q: want distinct values of %s, %s, %s", ci.Flips, FlipH, FlipV, FlipHV)
		}
		seen[f] = true
	}
	if !ci.Tiled() {
		return nil
	}
	if ci.Tile != size {
		return fmt.Errorf("tile %d: must equal the model's input size %d", ci.Tile, size)
	}
	if ci.Stride < 1 || ci.Stride > ci.Tile {
		return fmt.Errorf("stride %d: want 1..%d", ci.Stride, ci.Tile)
	}
	if ci.LongSide < 0 || ci.LongSide > maxLongSide {
		return fmt.Errorf("long_side %d: want 0 (the source size) to %d", ci.LongSide, maxLongSide)
	}
	if ci.Window != "hann" || ci.Pad != "zero" {
		return fmt.Errorf("window %q / pad %q: want hann / zero", ci.Window, ci.Pad)
	}
	return nil
}

// parseChannelInputs reads espnode.channel_inputs: a JSON object keyed by the name of a channel
// the file serves. Unknown fields and values are errors.
func parseChannelInputs(text string, size int, served map[string]bool) (map[string]ChannelInput, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &raw); err != nil || raw == nil {
		return nil, fmt.Errorf("not a JSON object keyed by channel name: %v", err)
	}
	out := make(map[string]ChannelInput, len(raw))
	for _, name := range sortedKeys(raw) {
		if !served[name] {
			return nil, fmt.Errorf("channel %q is not one the file serves", name)
		}
		// The Python reference defaults window and pad; the other fields are required in tiles mode.
		ci := ChannelInput{Window: "hann", Pad: "zero"}
		if err := decodeStrict(raw[name], &ci); err != nil {
			return nil, fmt.Errorf("channel %s: %w", name, err)
		}
		if err := ci.validate(size); err != nil {
			return nil, fmt.Errorf("channel %s: %w", name, err)
		}
		out[name] = ci
	}
	return out, nil
}

// Plausibility is espnode.plausibility: per channel, the bounds outside which the model's output
// is not what the channel showed on its training data, and the statistics they came from.
type Plausibility struct {
	Version    int                      `json:"version"`
	MeasuredOn string                   `json:"measured_on"`
	Rule       string                   `json:"rule"`
	Bounds     string                   `json:"bounds"`
	Channels   map[string]ChannelBounds `json:"channels"`
}

// ChannelBounds are one channel's plausibility bounds (either part may be absent).
type ChannelBounds struct {
	// N is how many training images the statistics cover.
	N          int             `json:"n"`
	FgFraction *FgFraction     `json:"fg_fraction"`
	PatchMax   *PatchMaxBounds `json:"patch_max"`
}

// FgFraction bounds the share of an image's pixels that are foreground. The percentiles are
// of the model's masks (Pred) and of the reference masks (Ref) on the training images.
type FgFraction struct {
	Lo       *float64 `json:"lo"`
	Hi       *float64 `json:"hi"`
	PredP0_5 float64  `json:"pred_p0_5"`
	PredP50  float64  `json:"pred_p50"`
	PredP995 float64  `json:"pred_p99_5"`
	RefP0_5  float64  `json:"ref_p0_5"`
	RefP50   float64  `json:"ref_p50"`
	RefP995  float64  `json:"ref_p99_5"`
}

// PatchMaxBounds bounds the patch confidence from below.
type PatchMaxBounds struct {
	Lo   *float64 `json:"lo"`
	Hi   *float64 `json:"hi"`
	P0_5 float64  `json:"p0_5"`
	P50  float64  `json:"p50"`
}

// Reasons an instance is implausible (Check.Reason), the label values of the node's metric.
const (
	ReasonFgLow    = "fg_fraction_low"
	ReasonFgHigh   = "fg_fraction_high"
	ReasonPatchLow = "patch_max_low"
)

// Check is the plausibility verdict on one instance.
type Check struct {
	// FgFraction is foreground pixels over all pixels of the instance's masks.
	FgFraction float64
	// PatchMax is the patch confidence (the largest sigmoid of a patch logit over every model
	// input run for it); valid when HasPatch.
	PatchMax float64
	HasPatch bool
	// Reason is empty when the instance is plausible, else one of the Reason constants.
	Reason string
}

// Implausible reports whether the check failed.
func (c Check) Implausible() bool { return c.Reason != "" }

// Judge applies the contract's rule: implausible when the foreground fraction is below
// fg_fraction.lo or above fg_fraction.hi, or, when the file gives patch logits and the channel
// patch_max, when the patch confidence is below patch_max.lo. A nil receiver (no bounds for
// the channel) judges nothing implausible.
func (b *ChannelBounds) Judge(fg, patchMax float64, hasPatch bool) Check {
	c := Check{FgFraction: fg, PatchMax: patchMax, HasPatch: hasPatch}
	if b == nil {
		return c
	}
	if f := b.FgFraction; f != nil {
		switch {
		case fg < f.lo():
			c.Reason = ReasonFgLow
		case fg > f.hi():
			c.Reason = ReasonFgHigh
		}
	}
	if p := b.PatchMax; c.Reason == "" && p != nil && hasPatch && patchMax < p.lo() {
		c.Reason = ReasonPatchLow
	}
	return c
}

// Absent bounds are the widest, as the reference exporter's validator reads them.
func (f *FgFraction) lo() float64     { return orDefault(f.Lo, 0) }
func (f *FgFraction) hi() float64     { return orDefault(f.Hi, 1) }
func (p *PatchMaxBounds) lo() float64 { return orDefault(p.Lo, 0) }
func (p *PatchMaxBounds) hi() float64 { return orDefault(p.Hi, 1) }

func orDefault(v *float64, d float64) float64 {
	if v == nil {
		return d
	}
	return *v
}

// String is the bounds in short, for logs: fg 0.016..0.214, patch >= 0.704.
func (b *ChannelBounds) String() string {
	if b == nil {
		return "none"
	}
	var parts []string
	if f := b.FgFraction; f != nil {
		parts = append(parts, fmt.Sprintf("fg %.4g..%.4g", f.lo(), f.hi()))
	}
	if p := b.PatchMax; p != nil {
		parts = append(parts, fmt.Sprintf("patch >= %.4g", p.lo()))
	}
	return strings.Join(parts, ", ")
}

// parsePlausibility reads espnode.plausibility (version 1). Unknown fields are errors; bounds
// are numbers in 0..1 with lo <= hi; every channel named is one the file serves.
func parsePlausibility(text string, served map[string]bool) (*Plausibility, error) {
	var p Plausibility
	if err := decodeStrict([]byte(text), &p); err != nil {
		return nil, err
	}
	if p.Version != 1 {
		return nil, fmt.Errorf("version %d: want 1", p.Version)
	}
	if p.Channels == nil {
		return nil, fmt.Errorf("no channels object")
	}
	for _, name := range sortedKeys(p.Channels) {
		b := p.Channels[name]
		if !served[name] {
			return nil, fmt.Errorf("channel %q is not one the file serves", name)
		}
		if f := b.FgFraction; f != nil {
			if err := checkRange(f.Lo, f.Hi); err != nil {
				return nil, fmt.Errorf("channel %s: fg_fraction: %w", name, err)
			}
		}
		if pm := b.PatchMax; pm != nil {
			if err := checkRange(pm.Lo, pm.Hi); err != nil {
				return nil, fmt.Errorf("channel %s: patch_max: %w", name, err)
			}
		}
	}
	return &p, nil
}

func checkRange(lo, hi *float64) error {
	l, h := orDefault(lo, 0), orDefault(hi, 1)
	if math.IsNaN(l) || math.IsNaN(h) || l < 0 || h > 1 || l > h {
		return fmt.Errorf("bounds %g..%g: want 0 <= lo <= hi <= 1", l, h)
	}
	return nil
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and trailing data.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// servedNames is the set of channel names a file lists.
func servedNames(chs []ChannelInfo) map[string]bool {
	out := make(map[string]bool, len(chs))
	for _, c := range chs {
		out[c.Name] = true
	}
	return out
}
