package onnx

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/espnode/espnode/seg/channel"
)

// Metadata keys of the model contract (ONNX metadata_props).
const (
	KeyChannels         = "espnode.channels"
	KeyInputSize        = "espnode.input_size"
	KeyModelName        = "espnode.model_name"
	KeyModelVersion     = "espnode.model_version"
	KeyThreshold        = "espnode.threshold"
	KeyNormalization    = "espnode.normalization"
	KeyCheckpointSHA256 = "espnode.checkpoint_sha256"
)

// Tensor names of the model contract.
const (
	InputImage     = "image"
	InputModality  = "modality"
	OutputLogits   = "logits"
	maxInputSize   = 8192
	imageChannels  = 3
	logitsChannels = 1
)

// ChannelInfo is one decoding channel as a model file describes it: seg/channel's record of the
// channel (the file may describe one the node's table lacks) and the query that selects it.
type ChannelInfo struct {
	channel.Channel
	// Query is the value fed to the model's modality input for this channel.
	Query int64 `json:"query"`
}

// Metadata is a model file's validated description of itself.
type Metadata struct {
	ModelName        string
	ModelVersion     string
	InputSize        int
	Threshold        float32
	Normalization    string
	CheckpointSHA256 string
	Channels         []ChannelInfo
	// ChannelInputs are espnode.channel_inputs: how each channel named there is fed to the
	// model; a channel not named is letterboxed (Input).
	ChannelInputs map[string]ChannelInput
	// Plausibility is espnode.plausibility, nil when the file has none (no guard).
	Plausibility *Plausibility
	// Extra holds metadata_props outside the espnode.* contract, for display.
	Extra map[string]string
}

// Channel returns the channel with the given name.
func (m *Metadata) Channel(name string) (ChannelInfo, bool) {
	for _, c := range m.Channels {
		if c.Name == name {
			return c, true
		}
	}
	return ChannelInfo{}, false
}

// Input returns how the channel of the file with the given name is fed to the model.
func (m *Metadata) Input(name string) ChannelInput {
	if ci, ok := m.ChannelInputs[name]; ok {
		return ci
	}
	return ChannelInput{Mode: ModeLetterbox}
}

// Bounds returns the plausibility bounds of the file's channel with the given name, or nil when
// the file gives none for it.
func (m *Metadata) Bounds(name string) *ChannelBounds {
	if m.Plausibility == nil {
		return nil
	}
	b, ok := m.Plausibility.Channels[name]
	if !ok {
		return nil
	}
	return &b
}

// ErrNotContract is wrapped by every error that says a file does not follow the model contract.
var ErrNotContract = errors.New("not an espnode model (see docs/DESIGN.md, \"The model contract\")")

// ParseMetadata validates the metadata_props of a model file against the contract.
func ParseMetadata(props map[string]string) (*Metadata, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	required := func(key string) string {
		v, ok := props[key]
		if !ok {
			bad("metadata %s is missing", key)
		} else if strings.TrimSpace(v) == "" {
			bad("metadata %s is empty", key)
		}
		return strings.TrimSpace(v)
	}
	md := &Metadata{Extra: map[string]string{}}
	md.ModelName = required(KeyModelName)
	md.ModelVersion = required(KeyModelVersion)
	if v := required(KeyInputSize); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > maxInputSize {
			bad("metadata %s = %q: want an integer in 1..%d", KeyInputSize, v, maxInputSize)
		}
		md.InputSize = n
	}
	if v, ok := props[KeyThreshold]; ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 32)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			bad("metadata %s = %q: want a finite number", KeyThreshold, v)
		}
		md.Threshold = float32(f)
	} else {
		bad("metadata %s is missing", KeyThreshold)
	}
	md.Normalization = strings.TrimSpace(props[KeyNormalization])
	if v := strings.TrimSpace(props[KeyCheckpointSHA256]); v != "" {
		if b, err := hex.DecodeString(v); err != nil || len(b) != 32 {
			bad("metadata %s = %q: want 64 hexadecimal digits", KeyCheckpointSHA256, v)
		}
		md.CheckpointSHA256 = v
	}
	if v := required(KeyChannels); v != "" {
		dec := json.NewDecoder(strings.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&md.Channels); err != nil {
			bad("metadata %s is not a JSON list of channels: %v", KeyChannels, err)
		} else {
			problems = append(problems, checkChannels(md.Channels)...)
		}
	}
	served := servedNames(md.Channels)
	if v, ok := props[KeyChannelInputs]; ok && md.InputSize > 0 {
		ci, err := parseChannelInputs(v, md.InputSize, served)
		if err != nil {
			bad("metadata %s: %v", KeyChannelInputs, err)
		}
		md.ChannelInputs = ci
	}
	if v, ok := props[KeyPlausibility]; ok {
		p, err := parsePlausibility(v, served)
		if err != nil {
			bad("metadata %s: %v", KeyPlausibility, err)
		}
		md.Plausibility = p
	}
	for k, v := range props {
		if !strings.HasPrefix(k, "espnode.") {
			md.Extra[k] = v
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotContract, strings.Join(problems, "; "))
	}
	sort.Slice(md.Channels, func(i, j int) bool { return md.Channels[i].Index < md.Channels[j].Index })
	return md, nil
}

func checkChannels(chs []ChannelInfo) []string {
	var problems []string
	if len(chs) == 0 {
		return []string{"metadata " + KeyChannels + " lists no channel"}
	}
	names := map[string]bool{}
	indexes := map[int]bool{}
	for i, c := range chs {
		where := fmt.Sprintf("%s[%d]", KeyChannels, i)
		switch {
		case c.Name == "":
			problems = append(problems, where+": name is empty")
		case names[c.Name]:
			problems = append(problems, fmt.Sprintf("%s: name %q appears twice", where, c.Name))
		}
		names[c.Name] = true
		if c.Index < 0 || indexes[c.Index] {
			problems = append(problems, fmt.Sprintf("%s: index %d is negative or appears twice", where, c.Index))
		}
		indexes[c.Index] = true
		if c.Query < 0 {
			problems = append(problems, fmt.Sprintf("%s: query %d is negative", where, c.Query))
		}
		if c.Label == "" {
			problems = append(problems, where+": label is empty")
		}
		for _, code := range []struct {
			what string
			c    channel.Code
		}{{"category", c.Category}, {"type", c.Type}} {
			if code.c.Scheme == "" || code.c.Value == "" || code.c.Meaning == "" {
				problems = append(problems, fmt.Sprintf("%s: %s code needs scheme, value and meaning", where, code.what))
			}
		}
	}
	return problems
}

// checkSignature validates a model's inputs and output against the contract for input size s.
func checkSignature(inputs, outputs []ort.InputOutputInfo, s int) error {
	var problems []string
	want := func(infos []ort.InputOutputInfo, kind, name string, dt ort.TensorElementDataType, dims []int64, optional bool) {
		for _, in := range infos {
			if in.Name != name {
				continue
			}
			if in.OrtValueType != ort.ONNXTypeTensor || in.DataType != dt {
				problems = append(problems, fmt.Sprintf("%s %q is %v %v, want a %v tensor", kind, name, in.OrtValueType, in.DataType, dt))
				return
			}
			if len(in.Dimensions) != len(dims) {
				problems = append(problems, fmt.Sprintf("%s %q has shape %v, want %s", kind, name, in.Dimensions, shapeText(dims)))
				return
			}
			for i, d := range dims {
				// A dimension of -1 in the file is symbolic (dynamic); -1 in dims means any.
				if d >= 0 && in.Dimensions[i] >= 0 && in.Dimensions[i] != d {
					problems = append(problems, fmt.Sprintf("%s %q has shape %v, want %s", kind, name, in.Dimensions, shapeText(dims)))
					return
				}
			}
			return
		}
		if !optional {
			problems = append(problems, fmt.Sprintf("%s %q is missing", kind, name))
		}
	}
	n, ss := int64(-1), int64(s)
	want(inputs, "input", InputImage, ort.TensorElementDataTypeFloat, []int64{n, imageChannels, ss, ss}, false)
	want(inputs, "input", InputModality, ort.TensorElementDataTypeInt64, []int64{n}, false)
	want(outputs, "output", OutputLogits, ort.TensorElementDataTypeFloat, []int64{n, logitsChannels, ss, ss}, false)
	if s%PatchCell == 0 {
		want(outputs, "output", OutputPatch, ort.TensorElementDataTypeFloat, []int64{n, logitsChannels, ss / PatchCell, ss / PatchCell}, true)
	} else if hasOutput(outputs, OutputPatch) {
		problems = append(problems, fmt.Sprintf("output %q needs an input size that is a multiple of %d, not %d", OutputPatch, PatchCell, s))
	}
	if len(inputs) != 2 {
		problems = append(problems, fmt.Sprintf("the model has %d inputs, want 2 (%s, %s)", len(inputs), InputImage, InputModality))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrNotContract, strings.Join(problems, "; "))
	}
	return nil
}

func hasOutput(outputs []ort.InputOutputInfo, name string) bool {
	for _, o := range outputs {
		if o.Name == name {
			return true
		}
	}
	return false
}

func shapeText(dims []int64) string {
	parts := make([]string, len(dims))
	for i, d := range dims {
		if d < 0 {
			parts[i] = "N"
		} else {
			parts[i] = strconv.FormatInt(d, 10)
		}
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// ModelInfo is what `espnode model info` prints: the validated metadata and the signature.
type ModelInfo struct {
	Path     string
	Metadata *Metadata
	Inputs   []ort.InputOutputInfo
	Outputs  []ort.InputOutputInfo
}

// Inspect reads and validates a model file's metadata and signature without creating a
// session for inference. The ONNX Runtime library must be loaded (LoadLibrary).
func Inspect(path string) (*ModelInfo, error) {
	if !ort.IsInitialized() {
		return nil, errors.New("inspect model: ONNX Runtime is not loaded (call LoadLibrary first)")
	}
	// Reading the signature and the metadata each loads the model into a throwaway session;
	// without graph optimisation that costs a file read, not a compilation.
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("inspect model: %w", err)
	}
	defer opts.Destroy()
	if err := opts.SetGraphOptimizationLevel(ort.GraphOptimizationLevelDisableAll); err != nil {
		return nil, fmt.Errorf("inspect model: %w", err)
	}
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("inspect model: %w", err)
	}
	ins, outs, err := ort.GetInputOutputInfoWithOptions(path, opts)
	if err != nil {
		return nil, fmt.Errorf("read model %s: %w", path, err)
	}
	props, err := readProps(path, opts)
	if err != nil {
		return nil, err
	}
	md, err := ParseMetadata(props)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	if err := checkSignature(ins, outs, md.InputSize); err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	return &ModelInfo{Path: path, Metadata: md, Inputs: ins, Outputs: outs}, nil
}

func readProps(path string, opts *ort.SessionOptions) (map[string]string, error) {
	meta, err := ort.GetModelMetadataWithOptions(path, opts)
	if err != nil {
		return nil, fmt.Errorf("read metadata of %s: %w", path, err)
	}
	defer meta.Destroy()
	keys, err := meta.GetCustomMetadataMapKeys()
	if err != nil {
		return nil, fmt.Errorf("read metadata keys of %s: %w", path, err)
	}
	props := make(map[string]string, len(keys))
	for _, k := range keys {
		v, _, err := meta.LookupCustomMetadataMap(k)
		if err != nil {
			return nil, fmt.Errorf("read metadata %s of %s: %w", k, path, err)
		}
		props[k] = v
	}
	return props, nil
}

// Signature describes the model's inputs and outputs, one line each, as
// "input image float32 [N,3,1024,1024]".
func (mi *ModelInfo) Signature() []string {
	var lines []string
	for _, group := range []struct {
		kind  string
		infos []ort.InputOutputInfo
	}{{"input", mi.Inputs}, {"output", mi.Outputs}} {
		for _, in := range group.infos {
			lines = append(lines, fmt.Sprintf("%s %s %s %s", group.kind, in.Name, elementTypeName(in.DataType), shapeText(in.Dimensions)))
		}
	}
	return lines
}

func elementTypeName(t ort.TensorElementDataType) string {
	switch t {
	case ort.TensorElementDataTypeFloat:
		return "float32"
	case ort.TensorElementDataTypeInt64:
		return "int64"
	case ort.TensorElementDataTypeFloat16:
		return "float16"
	case ort.TensorElementDataTypeInt32:
		return "int32"
	case ort.TensorElementDataTypeUint8:
		return "uint8"
	}
	return t.String()
}
