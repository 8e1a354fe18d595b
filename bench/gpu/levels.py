"""Puts every large weight tensor of an ONNX model on a few levels, so that xz packs it small.

The GPU benchmark carries the 1024 published-widths export to a machine it reaches through a
64 MiB transfer; random float32 weights do not compress (50 MB). With each tensor of more than
--min-size values replaced by the nearest of --levels of its own quantiles, the graph, its
shapes and so its cost are unchanged, the values keep each tensor's spread, and the file packs
to a few MB. Small tensors (biases, norms, the calibrated patch head bias) keep their values.

usage: python3 levels.py IN.onnx OUT.onnx [--levels 4] [--min-size 4096]
"""
import argparse
import json
import os

import numpy as np
import onnx
from onnx import numpy_helper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--min-size", type=int, default=4096)
    a = ap.parse_args()
    model = onnx.load(a.src)
    changed = 0
    for init in model.graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        w = numpy_helper.to_array(init)
        if w.size <= a.min_size:
            continue
        q = np.quantile(w, (np.arange(a.levels) + 0.5) / a.levels).astype(np.float32)
        idx = np.abs(w.reshape(-1, 1) - q.reshape(1, -1)).argmin(axis=1)
        init.CopyFrom(numpy_helper.from_array(q[idx].reshape(w.shape), init.name))
        changed += 1
    for prop in model.metadata_props:
        if prop.key == "weights_source":
            prop.value += f", large tensors on {a.levels} levels (bench/gpu/levels.py)"
    onnx.save(model, a.dst)
    print(json.dumps({"out": a.dst, "bytes": os.path.getsize(a.dst), "tensors_on_levels": changed,
                      "levels": a.levels, "min_size": a.min_size}))


if __name__ == "__main__":
    main()
