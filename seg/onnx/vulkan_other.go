//go:build !linux

package onnx

import "errors"

func vulkanDevices() ([]VulkanDevice, error) {
	return nil, errors.New("the Vulkan probe is implemented for Linux only")
}
