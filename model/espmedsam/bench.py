"""PyTorch inference benchmark, for side-by-side figures with the node's ONNX Runtime benchmark.

    cd model && /usr/bin/python3 -m espmedsam.bench --size 1024 --threads 2 --iters 5

Random weights (seed 0; speed does not depend on the values), image-like inputs 0..255, batch of
--batch images with mixed modalities, torch.inference_mode, --warmup untimed runs first. Prints one
JSON line: {"runtime":"pytorch","size":S,"batch":B,"ms_per_image":..,"images_per_s":..,...}.

BLAS matters: Debian's python3-torch does its Linear layers through the system libblas.so.3, which is
the slow reference BLAS unless an optimised one is selected. ``--blas openblas`` re-runs the
benchmark with Debian's OpenBLAS (package libopenblas0-pthread) put first on the library path,
without changing the system default; the "blas" field says which library was actually loaded.

OpenMP waiting matters on a shared machine: with more runnable threads than cores, libgomp's
default spin-waiting at every parallel region makes small operators take milliseconds (measured
here: compact widths at 256, 2 threads, load ~5: 6.4 s per image spinning, 0.49 s passive, 0.11 s
on 1 thread). The benchmark therefore runs with OMP_WAIT_POLICY=PASSIVE unless --omp-wait default.
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch

from .config import PRESETS
from .model import build_model
from .parity import make_inputs


OPENBLAS_DIR = "/usr/lib/x86_64-linux-gnu/openblas-pthread"


def loaded_blas() -> str:
    """The libblas/openblas shared object mapped into this process."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line.split()[-1]}
    except OSError:
        return "unknown"
    if any("openblas" in p for p in paths):
        return "openblas"
    if any("mkl" in p for p in paths):
        return "mkl"
    return "reference" if any("/blas/" in p for p in paths) else ("+".join(sorted(paths)) or "none")


def bench(size=1024, widths="published", threads=2, iters=5, batch=1, warmup=1, seed=0, device="cpu"):
    """Weights and image are those of ``espmedsam.parity --seed`` (calibrated random weights,
    ``make_inputs``), so that a Go benchmark on that fixture runs the same model on the same input."""
    torch.set_num_threads(threads)
    dev = torch.device(device)
    model = build_model(widths, size, seed=seed, calibrate=True).to(dev)
    image = torch.from_numpy(make_inputs(batch, size, seed)).to(dev)
    modality = (torch.arange(batch, dtype=torch.int64) % model.cfg.num_masks).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(image, modality)
        sync()
        for _ in range(iters):
            t0 = time.perf_counter()
            model(image, modality)
            sync()
            times.append(time.perf_counter() - t0)
    per_image = sum(times) / len(times) / batch
    out = {
        "runtime": "pytorch", "size": size, "batch": batch,
        "ms_per_image": round(per_image * 1000.0, 2), "images_per_s": round(1.0 / per_image, 4),
        "widths": widths, "threads": threads, "iters": iters,
        "ms_per_batch_median": round(statistics.median(times) * 1000.0, 2),
        "torch": torch.__version__, "blas": loaded_blas(), "device": device,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default").lower(),
    }
    if dev.type == "cuda":
        out["device_name"] = torch.cuda.get_device_name(dev)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m espmedsam.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--widths", default="published", choices=sorted(PRESETS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine")
    ap.add_argument("--blas", choices=["system", "openblas"], default="system",
                    help="openblas: re-run with Debian's OpenBLAS first on LD_LIBRARY_PATH")
    ap.add_argument("--omp-wait", choices=["passive", "default"], default="passive",
                    help="OpenMP wait policy (default: passive; see the module doc)")
    a = ap.parse_args(argv)
    # (only from the command line: called in-process, the settings of the running process stay)
    if argv is None and os.environ.get("ESPMEDSAM_BENCH_REEXEC") != "1" and (
            a.blas == "openblas" or a.omp_wait == "passive"):
        # both settings are read when the libraries load: re-run this command with them set
        env = dict(os.environ, ESPMEDSAM_BENCH_REEXEC="1")
        if a.omp_wait == "passive":
            env["OMP_WAIT_POLICY"] = "PASSIVE"
        if a.blas == "openblas":
            if not os.path.isdir(OPENBLAS_DIR):
                ap.error(f"--blas openblas: {OPENBLAS_DIR} missing (apt-get install libopenblas0-pthread)")
            env["OPENBLAS_NUM_THREADS"] = str(a.threads)
            env["LD_LIBRARY_PATH"] = OPENBLAS_DIR + (":" + os.environ["LD_LIBRARY_PATH"]
                                                     if os.environ.get("LD_LIBRARY_PATH") else "")
        os.execve(sys.executable, [sys.executable, "-m", "espmedsam.bench"] + sys.argv[1:], env)
    if a.iters < 1 or a.batch < 1 or a.threads < 1:
        ap.error("--iters, --batch and --threads must be >= 1")
    print(json.dumps(bench(a.size, a.widths, a.threads, a.iters, a.batch, a.warmup, device=a.device)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
