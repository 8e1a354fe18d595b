"""Parity fixtures: a model, saved inputs and PyTorch's outputs, for checking ONNX Runtime.

    cd model && /usr/bin/python3 -m espmedsam.parity --size 1024 --modalities 0,3,5 --seed 1 --out DIR

Writes DIR/model.onnx (random weights from --seed, all channels), DIR/image.f32 (float32
little-endian [N,3,S,S], values 0..255), DIR/modality.i64 (int64 little-endian [N]),
DIR/logits.f32 (PyTorch's float32 [N,1,S,S]) and DIR/meta.json. N is the number of modalities;
one batch holds them all, so ONNX Runtime must give every sample its own query.
Out-of-range modalities are allowed (the graph clamps them). The image is drawn from --seed
(redrawn, deterministically, while an SPPG patch logit lies within 2e-5 of its threshold).
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from .config import PRESETS
from .export import export
from .model import DEFAULT_NORMALIZATION, NORMALIZATIONS, build_model


MARGIN = 2e-5  # smallest |patch logit| accepted in a fixture (runtimes differ by about 1e-6)
MAX_ATTEMPTS = 10


def make_inputs(n: int, size: int, seed: int) -> np.ndarray:
    """Image-like float32 0..255: smooth random shapes plus noise (not only white noise, so the
    SPPG patch map has both foreground and background cells)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out = np.empty((n, 3, size, size), dtype=np.float32)
    for i in range(n):
        base = np.zeros((size, size), dtype=np.float32)
        for _ in range(4):
            cy, cx, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.3)
            base += ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) * rng.uniform(40, 120)
        for c in range(3):
            out[i, c] = np.clip(base * rng.uniform(0.6, 1.2) + rng.uniform(0, 255 - 160, 1)
                                + rng.normal(0, 12, (size, size)), 0, 255)
    return out


def write_fixture(out_dir: str, size: int, modalities, seed: int, widths: str = "published",
                  normalization: str = DEFAULT_NORMALIZATION) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    model = build_model(widths, size, normalization, seed=seed, calibrate=True)  # = export --seed
    modality = np.asarray(modalities, dtype=np.int64)
    # The SPPG prompt thresholds patch logits at 0: one within float error of 0 could flip between
    # runtimes and change a whole 32x32 cell. Draw inputs (deterministically) until every patch
    # logit is at least MARGIN away, so that the fixture tests arithmetic, not luck.
    for attempt in range(MAX_ATTEMPTS):
        image = make_inputs(len(modalities), size, seed + 1000 * attempt)
        t0 = time.time()
        with torch.no_grad():
            logits, patch = model.forward_with_patch(torch.from_numpy(image), torch.from_numpy(modality))
        torch_s = time.time() - t0
        logits = logits.numpy().astype(np.float32)
        margin = float(patch.abs().min())
        if margin >= MARGIN:
            break
    else:
        print(f"parity: warning: a patch logit is {margin:.2e} from the threshold; "
              "ONNX Runtime may threshold it differently (try another --seed)", file=sys.stderr)
    export(os.path.join(out_dir, "model.onnx"), model=model, seed=seed)
    image.astype("<f4").tofile(os.path.join(out_dir, "image.f32"))
    modality.astype("<i8").tofile(os.path.join(out_dir, "modality.i64"))
    logits.astype("<f4").tofile(os.path.join(out_dir, "logits.f32"))
    meta = {"n": len(modalities), "size": size, "modalities": [int(m) for m in modalities], "seed": seed,
            "widths": widths, "normalization": normalization,
            "logits_abs_max": float(np.abs(logits).max()), "torch_seconds": round(torch_s, 3),
            "patch_foreground_fraction": round(float((patch >= 0).float().mean()), 4),
            "patch_logit_min_abs": margin, "input_attempt": attempt,
            "torch_version": torch.__version__}
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m espmedsam.parity", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--modalities", default="0,3,5", help="comma-separated modality index per sample")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--widths", default="published", choices=sorted(PRESETS))
    ap.add_argument("--normalization", default=DEFAULT_NORMALIZATION, choices=sorted(NORMALIZATIONS))
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    mods = [int(m) for m in a.modalities.split(",") if m.strip()]
    if not mods:
        ap.error("--modalities: at least one")
    meta = write_fixture(a.out, a.size, mods, a.seed, a.widths, a.normalization)
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
