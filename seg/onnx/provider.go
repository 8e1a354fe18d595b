package onnx

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
	ort "github.com/yalue/onnxruntime_go"
)

// Execution providers a model can run on.
const (
	ProviderCPU      = "cpu"
	ProviderCUDA     = "cuda"
	ProviderTensorRT = "tensorrt"
	ProviderWebGPU   = "webgpu"
	// ProviderAuto tries the GPU providers in the order of AutoOrder and falls back to the CPU.
	ProviderAuto = "auto"
)

// GPU providers need more than libonnxruntime.so.1. The CPU build that scripts/deps.sh takes
// from onnxruntime-node contains WebGPU (Dawn, needing Vulkan at run time) but not CUDA or
// TensorRT: those come from the onnxruntime-linux-x64-gpu release of the same version, whose
// libonnxruntime_providers_shared.so and libonnxruntime_providers_cuda.so (and _tensorrt.so)
// must sit beside the libonnxruntime.so.1 that is loaded, with CUDA 12 and cuDNN 9 installed.
// Without them, appending the provider fails with "Failed to load library ...", which is what
// ProviderAuto logs before it falls back.

// AutoOrder is the order in which ProviderAuto tries the GPU providers.
var AutoOrder = []string{ProviderCUDA, ProviderTensorRT, ProviderWebGPU}

// Providers lists every accepted provider name.
func Providers() []string {
	return []string{ProviderCPU, ProviderCUDA, ProviderTensorRT, ProviderWebGPU, ProviderAuto}
}

// ParseProvider normalises a provider name and rejects unknown ones.
func ParseProvider(s string) (string, error) {
	p := strings.ToLower(strings.TrimSpace(s))
	if p == "" {
		return ProviderAuto, nil
	}
	for _, known := range Providers() {
		if p == known {
			return p, nil
		}
	}
	return "", fmt.Errorf("unknown execution provider %q (want one of %s)", s, strings.Join(Providers(), ", "))
}

// sessionOptions builds ONNX Runtime session options for one provider. Appending a GPU
// provider is where ONNX Runtime loads its provider library (libonnxruntime_providers_cuda.so
// and the CUDA libraries it needs), so most "no GPU here" failures surface here; the rest
// (no device, driver too old) surface when the session is created.
func sessionOptions(provider string, o Options) (*ort.SessionOptions, error) {
	threads, deviceID := o.Threads, o.DeviceID
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("create session options: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			opts.Destroy()
		}
	}()
	if threads > 0 {
		if err := opts.SetIntraOpNumThreads(threads); err != nil {
			return nil, fmt.Errorf("set intra-op threads to %d: %w", threads, err)
		}
	}
	// One request at a time per session run; inter-op parallelism only competes with intra-op
	// threads for the same cores on this kind of graph.
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("set inter-op threads: %w", err)
	}
	if !o.Spin {
		if err := opts.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
			return nil, fmt.Errorf("disable thread spinning: %w", err)
		}
	}
	dev := strconv.Itoa(deviceID)
	switch provider {
	case ProviderCPU:
	case ProviderCUDA:
		cuda, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return nil, fmt.Errorf("cuda provider options: %w", err)
		}
		defer cuda.Destroy()
		if err := cuda.Update(map[string]string{"device_id": dev}); err != nil {
			return nil, fmt.Errorf("cuda provider options: %w", err)
		}
		if err := opts.AppendExecutionProviderCUDA(cuda); err != nil {
			return nil, fmt.Errorf("append cuda provider: %w", err)
		}
	case ProviderTensorRT:
		trt, err := ort.NewTensorRTProviderOptions()
		if err != nil {
			return nil, fmt.Errorf("tensorrt provider options: %w", err)
		}
		defer trt.Destroy()
		if err := trt.Update(map[string]string{"device_id": dev}); err != nil {
			return nil, fmt.Errorf("tensorrt provider options: %w", err)
		}
		if err := opts.AppendExecutionProviderTensorRT(trt); err != nil {
			return nil, fmt.Errorf("append tensorrt provider: %w", err)
		}
	case ProviderWebGPU:
		// WebGPU has no dedicated C API entry; the generic one takes it by name.
		if err := opts.AppendExecutionProvider("WebGPU", map[string]string{"deviceId": dev}); err != nil {
			return nil, fmt.Errorf("append webgpu provider: %w", err)
		}
	default:
		return nil, fmt.Errorf("unknown execution provider %q", provider)
	}
	ok = true
	return opts, nil
}

// newSession creates a session on the requested provider; ProviderAuto walks AutoOrder then
// the CPU, logging why each GPU provider was passed over. It returns the provider that runs.
func newSession(path, provider string, o Options, log zerolog.Logger) (*ort.DynamicAdvancedSession, string, []error, error) {
	try := []string{provider}
	if provider == ProviderAuto {
		try = append(append([]string{}, AutoOrder...), ProviderCPU)
	}
	var skipped []error
	for _, p := range try {
		s, err := newSessionOn(path, p, o)
		if err == nil {
			if provider == ProviderAuto {
				log.Info().Str("provider", p).Str("model", path).Int("skipped", len(skipped)).Msg("execution provider selected")
			}
			return s, p, skipped, nil
		}
		if provider != ProviderAuto {
			return nil, "", nil, err
		}
		log.Warn().Str("provider", p).Str("model", path).Err(err).Msg("execution provider unavailable, trying the next")
		skipped = append(skipped, fmt.Errorf("%s: %w", p, err))
	}
	return nil, "", skipped, fmt.Errorf("no execution provider could run %s: %v", path, skipped)
}

func newSessionOn(path, provider string, o Options) (*ort.DynamicAdvancedSession, error) {
	opts, err := sessionOptions(provider, o)
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	s, err := ort.NewDynamicAdvancedSession(path, []string{InputImage, InputModality}, sessionOutputs(o), opts)
	if err != nil {
		return nil, fmt.Errorf("create %s session: %w", provider, err)
	}
	return s, nil
}
