/* ort_run: run an espnode ONNX model once with ONNX Runtime's C API on raw input files.
 *
 *   ort_run MODEL.onnx IMAGE.f32 MODALITY.i64 N S OUT.f32 [THREADS] [REPEATS]
 *
 * Reads image float32 [N,3,S,S] and modality int64 [N], writes logits float32 [N,1,S,S].
 * With REPEATS > 1, prints the mean seconds per run (after one warm-up run) on stdout.
 * A developer check for the Python side (espmedsam.ortcheck); the node itself uses the Go runtime.
 * Build: cc -O2 -I<dir of onnxruntime_c_api.h> ort_run.c -ldl -o ort_run (the library is dlopen'ed
 * from $ONNXRUNTIME_SHARED_LIBRARY_PATH).
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "onnxruntime_c_api.h"

static const OrtApi *api;

static void check(OrtStatus *st, const char *what) {
  if (st) {
    fprintf(stderr, "ort_run: %s: %s\n", what, api->GetErrorMessage(st));
    api->ReleaseStatus(st);
    exit(1);
  }
}

static void *read_file(const char *path, size_t want) {
  FILE *f = fopen(path, "rb");
  if (!f) { perror(path); exit(1); }
  void *buf = malloc(want);
  if (fread(buf, 1, want, f) != want) { fprintf(stderr, "ort_run: %s: short file\n", path); exit(1); }
  fclose(f);
  return buf;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: ort_run MODEL IMAGE.f32 MODALITY.i64 N S OUT.f32 [THREADS] [REPEATS]\n");
    return 2;
  }
  const char *lib = getenv("ONNXRUNTIME_SHARED_LIBRARY_PATH");
  void *h = dlopen(lib ? lib : "libonnxruntime.so.1", RTLD_NOW);
  if (!h) { fprintf(stderr, "ort_run: %s\n", dlerror()); return 1; }
  const OrtApiBase *(*get_base)(void) = (const OrtApiBase *(*)(void))dlsym(h, "OrtGetApiBase");
  if (!get_base) { fprintf(stderr, "ort_run: OrtGetApiBase missing\n"); return 1; }
  api = get_base()->GetApi(ORT_API_VERSION);
  if (!api) { fprintf(stderr, "ort_run: API version %d unsupported\n", ORT_API_VERSION); return 1; }

  int64_t n = atoll(argv[4]), s = atoll(argv[5]);
  int threads = argc > 7 ? atoi(argv[7]) : 1;
  int repeats = argc > 8 ? atoi(argv[8]) : 1;
  size_t img_count = (size_t)(n * 3 * s * s), out_count = (size_t)(n * s * s);
  float *img = read_file(argv[2], img_count * sizeof(float));
  int64_t *mod = read_file(argv[3], (size_t)n * sizeof(int64_t));

  OrtEnv *env;
  check(api->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "ort_run", &env), "CreateEnv");
  OrtSessionOptions *so;
  check(api->CreateSessionOptions(&so), "CreateSessionOptions");
  check(api->SetIntraOpNumThreads(so, threads), "SetIntraOpNumThreads");
  check(api->SetInterOpNumThreads(so, 1), "SetInterOpNumThreads");
  check(api->SetSessionGraphOptimizationLevel(so, ORT_ENABLE_ALL), "SetSessionGraphOptimizationLevel");
  OrtSession *sess;
  check(api->CreateSession(env, argv[1], so, &sess), "CreateSession");

  OrtMemoryInfo *mi;
  check(api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &mi), "CreateCpuMemoryInfo");
  int64_t img_shape[4] = {n, 3, s, s}, mod_shape[1] = {n};
  OrtValue *inputs[2] = {NULL, NULL};
  check(api->CreateTensorWithDataAsOrtValue(mi, img, img_count * sizeof(float), img_shape, 4,
                                            ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &inputs[0]), "image tensor");
  check(api->CreateTensorWithDataAsOrtValue(mi, mod, (size_t)n * sizeof(int64_t), mod_shape, 1,
                                            ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, &inputs[1]), "modality tensor");
  const char *in_names[2] = {"image", "modality"}, *out_names[1] = {"logits"};

  double total = 0;
  OrtValue *out = NULL;
  for (int r = 0; r < (repeats > 1 ? repeats + 1 : 1); r++) {
    if (out) { api->ReleaseValue(out); out = NULL; }
    double t0 = now();
    check(api->Run(sess, NULL, in_names, (const OrtValue *const *)inputs, 2, out_names, 1, &out), "Run");
    if (r > 0 || repeats <= 1) total += now() - t0;
  }
  if (repeats > 1) printf("%.6f\n", total / repeats);

  OrtTensorTypeAndShapeInfo *info;
  check(api->GetTensorTypeAndShape(out, &info), "GetTensorTypeAndShape");
  size_t count;
  check(api->GetTensorShapeElementCount(info, &count), "GetTensorShapeElementCount");
  if (count != out_count) { fprintf(stderr, "ort_run: got %zu logits, want %zu\n", count, out_count); return 1; }
  float *data;
  check(api->GetTensorMutableData(out, (void **)&data), "GetTensorMutableData");
  FILE *f = fopen(argv[6], "wb");
  if (!f || fwrite(data, sizeof(float), count, f) != count) { perror(argv[6]); return 1; }
  fclose(f);
  return 0;
}
