package config

import (
	"slices"
	"testing"

	"github.com/espnode/espnode/seg/onnx"
)

// TestProvidersAreTheRuntimes: model.provider accepts exactly the names seg/onnx knows, so the
// list kept here (config must not link ONNX Runtime's bindings) cannot drift from it.
func TestProvidersAreTheRuntimes(t *testing.T) {
	got, want := slices.Sorted(slices.Values(providers)), slices.Sorted(slices.Values(onnx.Providers()))
	if !slices.Equal(got, want) {
		t.Errorf("config accepts providers %v, seg/onnx knows %v", got, want)
	}
}
