package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
// Without them ProviderAuto passes over CUDA and TensorRT without trying them (providerNeeds),
// and says so in its one info line.

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

// ProviderError is why an execution provider could not run a model.
type ProviderError struct {
	Provider string
	Err      error
}

func (e *ProviderError) Error() string { return e.Provider + ": " + e.Err.Error() }

func (e *ProviderError) Unwrap() error { return e.Err }

// newSession creates a session on the requested provider and returns the provider that runs and,
// for ProviderAuto, why each provider before it was passed over. ProviderAuto walks AutoOrder,
// then the CPU: a GPU provider that is not there is the normal case on most machines, so the
// attempts are logged at debug level and the outcome in one info line, with each reason.
// lib is the loaded ONNX Runtime library, beside which the CUDA and TensorRT providers must be.
func newSession(path, lib, provider string, o Options, log zerolog.Logger) (*ort.DynamicAdvancedSession, string, []error, error) {
	if provider != ProviderAuto {
		s, err := openOn(path, lib, provider, false, o, log)
		if err != nil {
			return nil, "", nil, err
		}
		return s, provider, nil, nil
	}
	var skipped []error
	tried := make([]string, 0, len(AutoOrder)+1)
	unavailable := zerolog.Dict()
	for _, p := range append(append([]string{}, AutoOrder...), ProviderCPU) {
		tried = append(tried, p)
		s, err := openOn(path, lib, p, true, o, log)
		if err == nil {
			log.Info().Str("provider", p).Strs("tried", tried).Dict("unavailable", unavailable).Str("model", path).
				Msg("execution provider selected")
			return s, p, skipped, nil
		}
		log.Debug().Str("provider", p).Str("model", path).Err(err).Msg("execution provider unavailable")
		skipped = append(skipped, &ProviderError{Provider: p, Err: err})
		unavailable.Str(p, err.Error())
	}
	return nil, "", skipped, fmt.Errorf("no execution provider could run %s: %v", path, skipped)
}

// openOn creates a session on one provider. For a GPU provider it first checks what the provider
// needs and ONNX Runtime would only report less clearly (or, for WebGPU, after Dawn has printed
// its warnings); under ProviderAuto a failed check passes the provider over without trying it,
// for a provider asked for by name it is added to the error. Dawn and the Vulkan loader print to
// the process's standard error from C++: that output is kept off the terminal (unless debug
// logging is on, when it flows through) and added to the error of a provider that fails.
func openOn(path, lib, provider string, auto bool, o Options, log zerolog.Logger) (*ort.DynamicAdvancedSession, error) {
	if provider == ProviderCPU {
		return newSessionOn(path, provider, o)
	}
	d := log.Debug()
	debug := d.Enabled()
	d.Discard()
	devices, probeNative, need := providerNeeds(provider, lib, debug)
	if auto && need != nil {
		return nil, need
	}
	var c *stderrCapture
	if !debug {
		c = captureStderr()
	}
	s, err := newSessionOn(path, provider, o)
	native := condenseNative(probeNative + c.stop())
	if err != nil {
		if native != "" {
			err = fmt.Errorf("%w; the library printed: %s", err, native)
		}
		if need != nil {
			err = fmt.Errorf("%w (%v)", err, need)
		}
		return nil, err
	}
	if provider == ProviderWebGPU && len(devices) > 0 && len(gpuDevices(devices)) == 0 {
		log.Warn().Str("provider", provider).Str("vulkan_devices", deviceList(devices)).Str("model", path).
			Msg("webgpu runs on a software Vulkan device: expect it slower than the cpu provider")
	}
	return s, nil
}

// providerNeeds checks what a GPU provider needs besides ONNX Runtime: the CUDA and TensorRT
// provider libraries beside the loaded library (the CPU/WebGPU build lacks them), and for
// WebGPU a Vulkan device that is not a software renderer. It returns why the provider cannot
// run (nil if it may), after the Vulkan devices found and what the Vulkan loader printed.
func providerNeeds(provider, lib string, debug bool) (devices []VulkanDevice, native string, need error) {
	switch provider {
	case ProviderCUDA, ProviderTensorRT:
		dir := filepath.Dir(lib)
		for _, name := range []string{"libonnxruntime_providers_shared.so", "libonnxruntime_providers_" + provider + ".so"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				return nil, "", fmt.Errorf("%s is not beside %s: this ONNX Runtime build has no %s provider "+
					"(it comes with onnxruntime-linux-x64-gpu-%s, and needs CUDA 12 and cuDNN 9)", name, lib, provider, LibraryVersion)
			}
		}
	case ProviderWebGPU:
		var err error
		if debug {
			devices, err = vulkanDevices()
		} else {
			devices, native, err = VulkanDevices()
		}
		switch {
		case err != nil:
			return nil, native, err
		case len(devices) == 0:
			return nil, native, errors.New("the Vulkan loader finds no device")
		case len(gpuDevices(devices)) == 0:
			return devices, native, fmt.Errorf("only software Vulkan devices (%s): the cpu provider is faster", deviceList(devices))
		}
	}
	return devices, native, nil
}

// condenseNative makes one line of what a native library printed: its messages without the
// source locations Dawn appends, at most maxNativeLine bytes.
func condenseNative(s string) string {
	var parts []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "at ") {
			continue
		}
		parts = append(parts, line)
	}
	out := strings.Join(parts, " | ")
	if len(out) > maxNativeLine {
		out = out[:maxNativeLine] + "..."
	}
	return out
}

// maxNativeLine bounds the native output carried in an error.
const maxNativeLine = 2000

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
