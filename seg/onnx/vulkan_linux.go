package onnx

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

// The few Vulkan 1.0 declarations the probe needs, so that it builds without the Vulkan
// headers; the layouts are the C ABI's, fixed by the Vulkan specification.
typedef void (*espVkVoidFn)(void);
typedef espVkVoidFn (*espVkGetInstanceProcAddr)(void *instance, const char *name);
typedef int32_t (*espVkCreateInstance)(const void *info, const void *alloc, void **instance);
typedef void (*espVkDestroyInstance)(void *instance, const void *alloc);
typedef int32_t (*espVkEnumeratePhysicalDevices)(void *instance, uint32_t *count, void **devices);
typedef void (*espVkGetPhysicalDeviceProperties)(void *device, void *properties);

typedef struct {
	int32_t sType; const void *pNext; const char *pApplicationName; uint32_t applicationVersion;
	const char *pEngineName; uint32_t engineVersion; uint32_t apiVersion;
} espVkApplicationInfo;

typedef struct {
	int32_t sType; const void *pNext; uint32_t flags; const espVkApplicationInfo *pApplicationInfo;
	uint32_t enabledLayerCount; const char *const *ppEnabledLayerNames;
	uint32_t enabledExtensionCount; const char *const *ppEnabledExtensionNames;
} espVkInstanceCreateInfo;

#define ESP_VK_MAX_DEVICES 16

typedef struct {
	int32_t type;
	uint32_t vendor;
	char name[256];
} espVkDevice;

// esp_vk_devices lists the Vulkan physical devices the loader finds. It returns 0 and sets
// *count, or an error stage (1 no loader, 2 not a loader, 3 vkCreateInstance failed with
// *result, 4 enumeration failed with *result) with err filled for stages 1 and 2. The loader
// stays loaded: Dawn opens the same library next, and unloading a GPU driver mid-process is
// what drivers handle worst.
static int esp_vk_devices(espVkDevice *out, int *count, int32_t *result, char *err, size_t errlen) {
	void *lib = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		const char *e = dlerror();
		snprintf(err, errlen, "%s", e ? e : "dlopen libvulkan.so.1 failed");
		return 1;
	}
	espVkGetInstanceProcAddr gipa = (espVkGetInstanceProcAddr)dlsym(lib, "vkGetInstanceProcAddr");
	espVkCreateInstance create = gipa ? (espVkCreateInstance)gipa(NULL, "vkCreateInstance") : NULL;
	if (!create) {
		snprintf(err, errlen, "libvulkan.so.1 has no vkGetInstanceProcAddr or vkCreateInstance");
		return 2;
	}
	espVkApplicationInfo app = {0, NULL, "espnode", 1, "espnode", 1, 1u << 22}; // Vulkan 1.0
	espVkInstanceCreateInfo info = {1, NULL, 0, &app, 0, NULL, 0, NULL};
	void *instance = NULL;
	*result = create(&info, NULL, &instance);
	if (*result != 0) {
		return 3;
	}
	espVkEnumeratePhysicalDevices enumerate = (espVkEnumeratePhysicalDevices)gipa(instance, "vkEnumeratePhysicalDevices");
	espVkGetPhysicalDeviceProperties properties = (espVkGetPhysicalDeviceProperties)gipa(instance, "vkGetPhysicalDeviceProperties");
	espVkDestroyInstance destroy = (espVkDestroyInstance)gipa(instance, "vkDestroyInstance");
	void *devices[ESP_VK_MAX_DEVICES];
	uint32_t n = ESP_VK_MAX_DEVICES;
	*result = enumerate ? enumerate(instance, &n, devices) : -3;
	if (*result < 0 || !properties) {
		if (destroy) destroy(instance, NULL);
		return 4;
	}
	for (uint32_t i = 0; i < n; i++) {
		// VkPhysicalDeviceProperties is 824 bytes on 64-bit ABIs: apiVersion, driverVersion,
		// vendorID, deviceID, deviceType, deviceName[256], ...
		uint64_t props[1024] = {0};
		properties(devices[i], props);
		const char *p = (const char *)props;
		memcpy(&out[i].vendor, p + 8, 4);
		memcpy(&out[i].type, p + 16, 4);
		memcpy(out[i].name, p + 20, 256);
		out[i].name[255] = 0;
	}
	*count = (int)n;
	if (destroy) destroy(instance, NULL);
	return 0;
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// vulkanDevices lists the Vulkan devices through the system's loader (libvulkan.so.1), the same
// one Dawn uses. Callers hold a stderr capture around it: the loader prints its errors.
func vulkanDevices() ([]VulkanDevice, error) {
	var (
		devs   [C.ESP_VK_MAX_DEVICES]C.espVkDevice
		count  C.int
		result C.int32_t
		msg    [512]C.char
	)
	stage := C.esp_vk_devices(&devs[0], &count, &result, &msg[0], C.size_t(len(msg)))
	switch stage {
	case 0:
	case 1:
		return nil, fmt.Errorf("no Vulkan loader: %s (install the libvulkan1 package and the GPU's Vulkan driver)", C.GoString(&msg[0]))
	case 2:
		return nil, fmt.Errorf("not a Vulkan loader: %s", C.GoString(&msg[0]))
	case 3:
		return nil, fmt.Errorf("vkCreateInstance: %s", vkResult(int32(result)))
	default:
		return nil, fmt.Errorf("vkEnumeratePhysicalDevices: %s", vkResult(int32(result)))
	}
	out := make([]VulkanDevice, 0, int(count))
	for i := range int(count) {
		d := devs[i]
		out = append(out, VulkanDevice{
			Name:     C.GoString((*C.char)(unsafe.Pointer(&d.name[0]))),
			Type:     vulkanDeviceType(int32(d._type)),
			VendorID: uint32(d.vendor),
		})
	}
	return out, nil
}
