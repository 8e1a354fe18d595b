"""Training throughput of one configuration: optimisation steps per second of the compact model.

    cd model && OMP_NUM_THREADS=1 /usr/bin/python3 tools/train_speed.py --threads 1 [--channels-last]
    LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tools/train_speed.py

Random images and masks (batch B at S x S, mixed modalities), the trainer's model (SafeGELU), losses
(BCE + Dice + SPPG patch BCE), AdamW and gradient clipping: what one step of ``espmedsam.train``
costs without data loading and augmentation. Prints one JSON line; ``blas`` says which BLAS
library the process mapped (reference or OpenBLAS), read from /proc/self/maps.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

from espmedsam import train  # noqa: E402
from espmedsam.model import build_model  # noqa: E402


def blas_in_use() -> str:
    with open("/proc/self/maps") as f:
        maps = f.read()
    if "openblas" in maps:
        return "openblas"
    if "libblas.so" in maps:
        return "reference"
    return "other"


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", default="compact")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--channels-last", action="store_true")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = build_model(a.widths, a.size).train()
    train.use_safe_gelu(model)
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    img = torch.rand(a.batch, 3, a.size, a.size) * 255
    msk = (torch.rand(a.batch, 1, a.size, a.size) > 0.7).float()
    chans = torch.arange(a.batch) % 6
    if a.channels_last:
        img = img.contiguous(memory_format=torch.channels_last)
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        logits, patch = model.forward_with_patch(img, chans)
        loss = train.seg_losses(logits, patch, msk)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    s = sum(times) / len(times)
    print(json.dumps({"widths": a.widths, "size": a.size, "batch": a.batch, "threads": a.threads,
                      "channels_last": a.channels_last, "blas": blas_in_use(), "torch": torch.__version__,
                      "s_per_step": round(s, 3), "steps_per_s": round(1 / s, 3),
                      "images_per_s": round(a.batch / s, 2), "load": os.getloadavg()[0]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
