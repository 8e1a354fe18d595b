//go:build !linux

package onnx

import "os"

// DupStderr returns os.Stderr: outside Linux the package does not redirect descriptor 2.
func DupStderr() *os.File { return os.Stderr }

type stderrCapture struct{}

func captureStderr() *stderrCapture { return nil }

func (c *stderrCapture) stop() string { return "" }
