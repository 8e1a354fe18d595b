// Package channel holds the model's modality channels: which index of the ESP-MedSAM decoder
// serves which kind of image, and what the resulting segment is, coded for a DICOM Segmentation.
//
// The table lives in channels.json so that the Python ONNX exporter (model/) reads the very same
// data into the model's espnode.channels metadata. It is the node's one channel catalogue: the
// model runtime (seg/onnx) describes a model's channels with its Channel type, configuration
// validates routing rules against its names, and the SEG's segment codes come from it (a model's
// own description serves only a channel this table lacks).
//
// Where the codes come from: DICOM PS3.16 context groups, checked as rendered in
// github.com/bvdh/dicom-terminology-in-fhir (one ValueSet file per CID), and SNOMED CT.
// Categories are from CID 7150 "Segmentation Property Category"; each type comes from the group
// that CID 7151 pairs with its category.
//
//   - 49755003 Morphologically Abnormal Structure (category) with 52988006 Lesion, from CID 7159
//     "Lesion Segmentation Type" via CID 7194: skin and breast lesions. The organ is in the
//     segment label rather than a pre-coordinated code.
//   - 91723000 Anatomical Structure (category; it replaced 123037004, now "Body structure", in
//     CID 7150) with 39607008 Lung, from CID 7155 "Thoracic Segmentation Type" via CID 7192.
//   - 85756007 Tissue (category) with 59820001 Blood vessel, from CID 7166 "Common Tissue
//     Segmentation Type" via CID 7191. DICOM has no retina-specific vessel code, so the label
//     says "Retinal".
//   - 91723000 Anatomical Structure with 84640000 Nucleus, from CID 8135 "Microscopy Annotation
//     Property Type", the group DICOM uses for nuclei in slide microscopy.
//   - 49755003 Morphologically Abnormal Structure with 41329004 Polyp, SNOMED CT's morphologic
//     abnormality concept: no DICOM lesion group lists polyps, and CID 6201 has only the
//     disorder 68496003 "Polyp of colon".
package channel

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
)

//go:embed channels.json
var channelsJSON []byte

// Code is a coded concept: a DICOM Code Sequence item's scheme designator, value and meaning.
type Code struct {
	Scheme  string `json:"scheme"`
	Value   string `json:"value"`
	Meaning string `json:"meaning"`
}

// Channel is one decoder channel of the model and the segment it produces.
type Channel struct {
	Index    int    `json:"index"`
	Name     string `json:"name"`
	Label    string `json:"label"`
	Category Code   `json:"category"`
	Type     Code   `json:"type"`
}

// Defaults returns the built-in channel table, ordered by index. Each call returns a fresh copy,
// so callers may change it (to apply configuration overrides) without affecting others.
func Defaults() []Channel {
	chs, err := Parse(channelsJSON)
	if err != nil {
		// The file is compiled in and checked by the package tests.
		panic("seg/channel: embedded channels.json: " + err.Error())
	}
	return chs
}

// None is what a routing rule names instead of a channel to store an instance without segmenting
// it. No channel may take the name.
const None = "none"

// Names returns the names of the default channels, in index order.
func Names() []string {
	chs := Defaults()
	names := make([]string, len(chs))
	for i, c := range chs {
		names[i] = c.Name
	}
	return names
}

// ByName returns the default channel with the given name.
func ByName(name string) (Channel, bool) {
	for _, c := range Defaults() {
		if c.Name == name {
			return c, true
		}
	}
	return Channel{}, false
}

// ByIndex returns the default channel with the given model index.
func ByIndex(index int) (Channel, bool) {
	for _, c := range Defaults() {
		if c.Index == index {
			return c, true
		}
	}
	return Channel{}, false
}

// Parse reads a channel table in the channels.json shape and validates it.
func Parse(data []byte) ([]Channel, error) {
	var chs []Channel
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&chs); err != nil {
		return nil, fmt.Errorf("parse channel table: %w", err)
	}
	if err := Validate(chs); err != nil {
		return nil, err
	}
	return chs, nil
}

// Validate checks that indices and names are unique, indices are 0..n-1 in order, and every
// code is complete and fits DICOM's limits (SH value, LO meaning).
func Validate(chs []Channel) error {
	if len(chs) == 0 {
		return fmt.Errorf("channel table is empty")
	}
	names := make(map[string]bool, len(chs))
	for i, c := range chs {
		if c.Index != i {
			return fmt.Errorf("channel %d (%q): index %d, want %d (indices must be 0..n-1 in order)", i, c.Name, c.Index, i)
		}
		if c.Name == "" {
			return fmt.Errorf("channel %d: empty name", i)
		}
		if names[c.Name] {
			return fmt.Errorf("channel %d: duplicate name %q", i, c.Name)
		}
		if c.Name == None {
			return fmt.Errorf("channel %d: %q is reserved for routing to no channel", i, None)
		}
		names[c.Name] = true
		if c.Label == "" || len(c.Label) > 64 {
			return fmt.Errorf("channel %q: label must be 1..64 characters (DICOM LO), got %q", c.Name, c.Label)
		}
		for _, code := range []struct {
			what string
			c    Code
		}{{"category", c.Category}, {"type", c.Type}} {
			if err := code.c.Validate(); err != nil {
				return fmt.Errorf("channel %q %s: %w", c.Name, code.what, err)
			}
		}
	}
	return nil
}

// Validate checks a code against the DICOM limits of its three attributes.
func (c Code) Validate() error {
	switch {
	case c.Scheme == "" || len(c.Scheme) > 16:
		return fmt.Errorf("coding scheme designator must be 1..16 characters, got %q", c.Scheme)
	case c.Value == "" || len(c.Value) > 16:
		// Longer values belong in Long Code Value, which this table does not need.
		return fmt.Errorf("code value must be 1..16 characters, got %q", c.Value)
	case c.Meaning == "" || len(c.Meaning) > 64:
		return fmt.Errorf("code meaning must be 1..64 characters, got %q", c.Meaning)
	}
	return nil
}
