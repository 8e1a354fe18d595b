// A stand-in for libvulkan.so.1 (TestServeKeepsGPULibrariesQuiet builds it with gcc): it reports
// one discrete GPU to the node's Vulkan probe, so that the node goes on to ONNX Runtime's WebGPU
// provider, and it has nothing else, so that Dawn fails there and prints its warnings. Every
// call prints a line to standard error, as a real loader and Dawn do from C.
#include <stdint.h>
#include <stdio.h>
#include <string.h>
typedef void (*fn)(void);
static int32_t create(const void *info, const void *alloc, void **instance) {
	fprintf(stderr, "fake Vulkan: vkCreateInstance\n");
	*instance = (void *)0x1;
	return 0;
}
static void destroy(void *instance, const void *alloc) {}
static int32_t enumerate(void *instance, uint32_t *count, void **devices) {
	if (devices) {
		if (*count < 1) return 5;
		devices[0] = (void *)0x2;
	}
	*count = 1;
	return 0;
}
static void properties(void *device, void *p) {
	memset(p, 0, 824);
	*(int32_t *)((char *)p + 16) = 2;
	strcpy((char *)p + 20, "Fake Vulkan GPU");
}
fn vkGetInstanceProcAddr(void *instance, const char *name) {
	fprintf(stderr, "fake Vulkan: vkGetInstanceProcAddr(%s)\n", name);
	if (!strcmp(name, "vkCreateInstance")) return (fn)create;
	if (!strcmp(name, "vkDestroyInstance")) return (fn)destroy;
	if (!strcmp(name, "vkEnumeratePhysicalDevices")) return (fn)enumerate;
	if (!strcmp(name, "vkGetPhysicalDeviceProperties")) return (fn)properties;
	return NULL;
}
