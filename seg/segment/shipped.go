package segment

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
)

// shippedModel is the model the binary carries: ESP-MedSAM at compact widths and
// input 256, trained on the CPU on all six channels of shared/data/seg2d (train
// split), universal (one file, every channel). docs/MODEL.md has its training
// (model/training/compact-s256-tiles.json), its speed and its scores.
//
//go:embed shipped/espmedsam-compact-s256.onnx
var shippedModel []byte

// ShippedModelName is the file name of the shipped model.
const ShippedModelName = "espmedsam-compact-s256.onnx"

// WriteShippedModel writes the shipped model under dir, named by its content
// hash so that another binary's model never overwrites it, and returns its
// path. ONNX Runtime loads models from files.
func WriteShippedModel(dir string) (string, error) {
	sum := sha256.Sum256(shippedModel)
	path := filepath.Join(dir, hex.EncodeToString(sum[:8])+"-"+ShippedModelName)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, shippedModel) {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("shipped model: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".model-*")
	if err != nil {
		return "", fmt.Errorf("shipped model: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(shippedModel); err != nil {
		tmp.Close()
		return "", fmt.Errorf("shipped model: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("shipped model: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("shipped model: %w", err)
	}
	return path, nil
}
