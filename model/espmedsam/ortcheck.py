"""Check a parity fixture with ONNX Runtime from Python, through its C API.

ONNX Runtime's Python package is not installed here; the node's Go runtime is the reference
check. This developer tool compiles ``tools/ort_run.c`` against the C header shipped with the Go
binding (onnxruntime_go in the Go module cache) and runs the same shared library the node uses
(third_party/onnxruntime/libonnxruntime.so.1, or $ONNXRUNTIME_SHARED_LIBRARY_PATH).

    cd model && /usr/bin/python3 -m espmedsam.ortcheck DIR [--threads 2]

prints {"max_abs_diff": ..., ...} comparing ONNX Runtime's logits with DIR/logits.f32.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from .channels import REPO_ROOT

MODEL_DIR = os.path.join(REPO_ROOT, "model")
TOOL_SRC = os.path.join(MODEL_DIR, "tools", "ort_run.c")


def find_library():
    env = os.environ.get("ONNXRUNTIME_SHARED_LIBRARY_PATH")
    for p in ([env] if env else []) + [os.path.join(REPO_ROOT, "third_party", "onnxruntime", "libonnxruntime.so.1")]:
        if p and os.path.isfile(p):
            return p
    return None


def find_header():
    roots = []
    try:
        out = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            roots.append(out.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    roots += [os.path.expanduser("~/go/pkg/mod"), "/root/go/pkg/mod"]
    for r in roots:
        hits = sorted(glob.glob(os.path.join(r, "github.com", "yalue", "onnxruntime_go@*", "onnxruntime_c_api.h")))
        if hits:
            return hits[-1]
    return None


def build_tool(out_dir=None):
    """Path of a compiled ort_run, or None if a compiler, the header or the library is missing."""
    cc = shutil.which("cc") or shutil.which("gcc")
    header, lib = find_header(), find_library()
    if not (cc and header and lib):
        return None
    out_dir = out_dir or os.path.join(tempfile.gettempdir(), "espmedsam-ort-%d" % os.getuid())
    os.makedirs(out_dir, exist_ok=True)
    exe = os.path.join(out_dir, "ort_run")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(TOOL_SRC):
        subprocess.run([cc, "-O2", "-I", os.path.dirname(header), TOOL_SRC, "-ldl", "-o", exe + ".tmp"],
                       check=True, capture_output=True)
        os.replace(exe + ".tmp", exe)
    return exe


def run_ort(exe, model, image_path, modality_path, n, size, out_path, threads=1, repeats=1):
    env = dict(os.environ, ONNXRUNTIME_SHARED_LIBRARY_PATH=find_library())
    r = subprocess.run([exe, model, image_path, modality_path, str(n), str(size), out_path, str(threads),
                        str(repeats)], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"ort_run failed: {r.stderr.strip()}")
    return float(r.stdout.strip()) if repeats > 1 else None


def check_dir(d, threads=1):
    exe = build_tool()
    if exe is None:
        raise RuntimeError("need a C compiler, onnxruntime_c_api.h (Go module cache) and libonnxruntime.so.1")
    with open(os.path.join(d, "meta.json")) as f:
        meta = json.load(f)
    n, s = meta["n"], meta["size"]
    out = os.path.join(d, "ort_logits.f32")
    t0 = time.time()
    run_ort(exe, os.path.join(d, "model.onnx"), os.path.join(d, "image.f32"), os.path.join(d, "modality.i64"),
            n, s, out, threads)
    secs = time.time() - t0
    got = np.fromfile(out, dtype="<f4").reshape(n, 1, s, s)
    want = np.fromfile(os.path.join(d, "logits.f32"), dtype="<f4").reshape(n, 1, s, s)
    diff = np.abs(got - want)
    return {"dir": d, "n": n, "size": s, "max_abs_diff": float(diff.max()),
            "per_sample_max_abs_diff": [float(x) for x in diff.reshape(n, -1).max(1)],
            "logits_abs_max": float(np.abs(want).max()), "ort_seconds_incl_load": round(secs, 3)}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m espmedsam.ortcheck", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args(argv)
    res = check_dir(a.dir, a.threads)
    res["ok"] = res["max_abs_diff"] <= a.tol
    print(json.dumps(res))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
