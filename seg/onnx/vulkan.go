package onnx

import (
	"fmt"
	"strings"
)

// VulkanDevice is a device the Vulkan loader reports: what ONNX Runtime's WebGPU provider
// (Dawn on Vulkan) can run on.
type VulkanDevice struct {
	Name string `json:"name"`
	// Type is VkPhysicalDeviceType in words: "discrete GPU", "integrated GPU", "virtual GPU",
	// "CPU" (a software renderer such as llvmpipe) or "other".
	Type     string `json:"type"`
	VendorID uint32 `json:"vendor_id"`
}

func (d VulkanDevice) String() string { return fmt.Sprintf("%s (%s)", d.Name, d.Type) }

// IsCPU reports a software renderer: WebGPU on it is slower than the CPU provider.
func (d VulkanDevice) IsCPU() bool { return d.Type == "CPU" }

func vulkanDeviceType(t int32) string {
	switch t {
	case 1:
		return "integrated GPU"
	case 2:
		return "discrete GPU"
	case 3:
		return "virtual GPU"
	case 4:
		return "CPU"
	default:
		return "other"
	}
}

// vkResult names the VkResult codes that vkCreateInstance and vkEnumeratePhysicalDevices return.
func vkResult(r int32) string {
	switch r {
	case -1:
		return "VK_ERROR_OUT_OF_HOST_MEMORY"
	case -2:
		return "VK_ERROR_OUT_OF_DEVICE_MEMORY"
	case -3:
		return "VK_ERROR_INITIALIZATION_FAILED"
	case -6:
		return "VK_ERROR_LAYER_NOT_PRESENT"
	case -7:
		return "VK_ERROR_EXTENSION_NOT_PRESENT"
	case -9:
		return "VK_ERROR_INCOMPATIBLE_DRIVER (no Vulkan driver found: install the GPU's Vulkan driver, or name its ICD file in VK_DRIVER_FILES)"
	default:
		return fmt.Sprintf("VkResult %d", r)
	}
}

// VulkanDevices lists the Vulkan devices of this machine, as the WebGPU provider would see them.
// What the loader prints meanwhile is kept off the terminal and returned as native.
func VulkanDevices() (devices []VulkanDevice, native string, err error) {
	c := captureStderr()
	devices, err = vulkanDevices()
	return devices, c.stop(), err
}

// gpuDevices returns the devices that are not software renderers.
func gpuDevices(devs []VulkanDevice) []VulkanDevice {
	var out []VulkanDevice
	for _, d := range devs {
		if !d.IsCPU() {
			out = append(out, d)
		}
	}
	return out
}

func deviceList(devs []VulkanDevice) string {
	s := make([]string, len(devs))
	for i, d := range devs {
		s[i] = d.String()
	}
	return strings.Join(s, ", ")
}
