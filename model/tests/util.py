"""Shared helpers for the model tests (run: cd model && /usr/bin/python3 -m unittest discover -v -s tests)."""

import functools
import os
import re

import torch

torch.set_num_threads(2)  # two cores shared with colleagues

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.path.dirname(HERE)
REPO_ROOT = os.path.dirname(MODEL_DIR)
# the published checkpoints' parameter names and shapes, in their order (a copy kept in the repo)
LOCAL_REF = os.path.join(HERE, "data", "esp-medsam-state-dict.txt")
TINY_ONNX = os.path.join(REPO_ROOT, "seg", "onnx", "testdata", "espmedsam-tiny-s256.onnx")

_LINE = re.compile(r"^(\S+) \(([0-9, ]*)\)$")


def parse_state_dict_listing(path):
    """[(name, shape)] from lines like ``name (3, 4)``, ``name (32,)`` or ``name ()``."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = _LINE.match(line)
            if not m:
                raise ValueError(f"{path}:{n}: cannot parse {line!r}")
            shape = tuple(int(x) for x in m.group(2).split(",") if x.strip())
            out.append((m.group(1), shape))
    return out


def reference_path():
    return LOCAL_REF


@functools.lru_cache(maxsize=None)
def ort_tool():
    """Compiled ort_run (ONNX Runtime C API) or None when unavailable here."""
    from espmedsam import ortcheck
    try:
        return ortcheck.build_tool()
    except Exception:  # a compile failure means: no tool
        return None


def image_batch(n, size, seed=0):
    from espmedsam.parity import make_inputs
    return torch.from_numpy(make_inputs(n, size, seed))
