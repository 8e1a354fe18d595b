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

// shippedModel is the model the binary carries: the tiny test model of
// seg/runtime/testdata until a trained one exists. It has random weights, so
// its masks mean nothing, but it follows the model contract and lets the node
// run end to end with no configuration.
//
//go:embed shipped/espmedsam-tiny-s256.onnx
var shippedModel []byte

// ShippedModelName is the file name of the shipped model.
const ShippedModelName = "espmedsam-tiny-s256.onnx"

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
