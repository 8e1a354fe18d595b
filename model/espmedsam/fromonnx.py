"""Recover a trainable state dict from an exported ONNX file (the inverse of ``export``).

    cd model && /usr/bin/python3 -m espmedsam.fromonnx \
        --onnx ../seg/segment/shipped/espmedsam-compact-s256.onnx --out runs/recovered.pth \
        --data ../../shared/data/seg2d

Why: checkpoints live in ignored folders and do not survive a machine replacement; the shipped
ONNX file is committed, so it is the durable copy of the weights. Training can resume from it
with ``train --init``.

How: the exporter keeps most parameters under their own names but folds the rest into anonymous
``onnx::`` initialisers (Linear weights transposed for MatMul, each Conv weight with its
BatchNorm fused in). A reference model of the same preset, with distinct random weights, is
exported the same way; each of its anonymous initialisers is matched by value to the parameter it
came from (as is, transposed, or the fused Conv+BN weight and bias), and that map is applied by
name to the file. The graph is checked to be the same (node count, names, shapes).

A fused Conv+BN cannot be split uniquely; the eval-mode function is what must be exact. The conv
takes the fused weight W'; with calibration images the BN takes the per-channel mean m and variance v
of W'x over them: running stats (m, v), weight sqrt(v+eps), bias m+b'. In eval mode that is W'x+b'
exactly, and in train mode (batch statistics) close to it, so fine-tuning starts where the file
is. Without calibration data the BN is the identity plus b' (exact in eval mode only).
Parameters the graph never uses (the unused classifier head, the prompt encoder's mask path) keep
the reference's fresh initialisation; the tool lists them.
"""

import argparse
import json
import os
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from .encoder import ConvBN
from .export import OUTPUT_PATCH, export_onnx, read_metadata
from .model import ESPMedSAM, build_model

REFERENCE_SEED = 7919  # any seed: only distinct values matter


def _initializers(path: str) -> Tuple[Dict[str, np.ndarray], object]:
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(path)
    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}, proto


def _fused(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> Tuple[np.ndarray, np.ndarray]:
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    w = conv.weight.detach() * scale.reshape(-1, 1, 1, 1)
    b = bn.bias.detach() - bn.running_mean * scale
    return w.numpy(), b.numpy()


def _key(a: np.ndarray) -> Tuple:
    """A value fingerprint: shape plus a few rounded sums (cheap to build, unique for random weights)."""
    a = a.astype(np.float64).ravel()
    return (a.size, round(float(a.sum()), 4), round(float((a * a).sum()), 4), round(float(a[: min(8, a.size)].sum()), 5))


Source = Tuple[str, str]  # (kind, parameter or ConvBN module name)


def build_map(ref: ESPMedSAM, ref_inits: Dict[str, np.ndarray], prefix: str = "") -> Dict[str, Source]:
    """Initialiser name (its own names under ``prefix``) -> where it came from: ("param", name), ("paramT", name),
    ("fused_w", convbn) or ("fused_b", convbn). Raises if an anonymous float initialiser has no
    source or two."""
    candidates: Dict[Tuple, List[Tuple[Source, np.ndarray]]] = {}

    def add(src: Source, value: np.ndarray):
        candidates.setdefault(_key(value), []).append((src, value))

    for name, p in ref.state_dict().items():
        if not p.is_floating_point():
            continue
        v = p.detach().numpy()
        add(("param", name), v)
        if v.ndim == 2:
            add(("paramT", name), v.T)
    for name, mod in ref.named_modules():
        if isinstance(mod, ConvBN):
            w, b = _fused(mod.c, mod.bn)
            add(("fused_w", name), w)
            add(("fused_b", name), b)
    named = set(ref.state_dict())
    out: Dict[str, Source] = {}
    for iname, arr in ref_inits.items():
        own = iname[len(prefix):] if iname.startswith(prefix) else iname
        if own in named:
            out[iname] = ("param", own)
            continue
        if arr.dtype.kind != "f":
            continue  # shapes and indices: the graph's, not the weights'
        hits = [src for src, v in candidates.get(_key(arr), [])
                if v.size == arr.size and np.allclose(v.reshape(arr.shape), arr, rtol=1e-5, atol=1e-6)]
        if not hits and arr.size < 2:
            continue  # a scalar constant of the graph (an epsilon, a scale)
        if len(hits) != 1:
            raise ValueError(f"initialiser {iname} {arr.shape}: {len(hits)} sources {hits[:3]}")
        out[iname] = hits[0]
    return out


def _check_same_graph(ref_proto, proto) -> None:
    if len(ref_proto.graph.node) != len(proto.graph.node):
        raise ValueError(f"graph has {len(proto.graph.node)} nodes, the reference export {len(ref_proto.graph.node)}: "
                         "another preset, size or exporter")
    a = {t.name: tuple(t.dims) for t in ref_proto.graph.initializer}
    b = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    if a != b:
        diff = sorted(set(a.items()) ^ set(b.items()))[:5]
        raise ValueError(f"initialisers differ from the reference export (first: {diff})")


@torch.no_grad()
def recover(onnx_path: str, widths: str, calibration: Optional[torch.Tensor] = None,
            normalization: Optional[str] = None) -> Tuple[Dict[str, torch.Tensor], Dict]:
    """The state dict behind ``onnx_path`` and a report (unused parameters, counts)."""
    meta = read_metadata(onnx_path)
    size = int(meta["espnode.input_size"])
    norm = normalization or meta["espnode.normalization"]
    inits, proto = _initializers(onnx_path)
    patch = any(o.name == OUTPUT_PATCH for o in proto.graph.output)

    ref = build_model(widths, size, norm, seed=REFERENCE_SEED)
    with tempfile.TemporaryDirectory() as d:
        ref_path = os.path.join(d, "ref.onnx")
        export_onnx(ref, ref_path, patch_output=patch)
        ref_inits, ref_proto = _initializers(ref_path)
    _check_same_graph(ref_proto, proto)
    # with patch_output the exporter wrapped the model (export._WithPatch): its names carry "model."
    sources = build_map(ref, ref_inits, prefix="model." if patch else "")

    model = build_model(widths, size, norm, seed=REFERENCE_SEED)
    sd = model.state_dict()
    set_names = set()
    fused: Dict[str, Dict[str, np.ndarray]] = {}
    for iname, (kind, name) in sources.items():
        v = inits[iname]
        if kind == "param":
            sd[name].copy_(torch.from_numpy(v.reshape(sd[name].shape).copy()))
            set_names.add(name)
        elif kind == "paramT":
            sd[name].copy_(torch.from_numpy(v.T.reshape(sd[name].shape).copy()))
            set_names.add(name)
        else:
            fused.setdefault(name, {})[kind] = v
    modules = dict(model.named_modules())
    for name, parts in fused.items():
        if set(parts) != {"fused_w", "fused_b"}:
            raise ValueError(f"{name}: only {sorted(parts)} found")
        mod: ConvBN = modules[name]
        mod.c.weight.copy_(torch.from_numpy(parts["fused_w"].copy()))
        _set_bn(mod.bn, torch.from_numpy(parts["fused_b"].copy()), torch.zeros_like(mod.bn.bias),
                torch.ones_like(mod.bn.bias))
        set_names.update(f"{name}.{s}" for s in ("c.weight", "bn.weight", "bn.bias", "bn.running_mean",
                                                  "bn.running_var", "bn.num_batches_tracked"))
    if calibration is not None and fused:
        calibrate_bn(model, [modules[n] for n in fused], calibration)
    unused = sorted(n for n, t in model.state_dict().items()
                    if n not in set_names and t.is_floating_point())
    report = {"onnx": os.path.basename(onnx_path), "model_version": meta.get("espnode.model_version", ""),
              "input_size": size, "widths": widths, "initialisers": len(inits), "named": sum(
                  1 for k in sources.values() if k[0] == "param"), "transposed": sum(1 for k in sources.values()
                                                                                    if k[0] == "paramT"),
              "fused_convbn": len(fused), "calibrated": calibration is not None, "unused": unused}
    return model.state_dict(), report


def _set_bn(bn: nn.BatchNorm2d, bias: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> None:
    """BN with these running stats whose eval output is x + bias."""
    bn.running_mean.copy_(mean)
    bn.running_var.copy_(var)
    bn.weight.copy_(torch.sqrt(var + bn.eps))
    bn.bias.copy_(mean + bias)
    bn.num_batches_tracked.fill_(1)


@torch.no_grad()
def calibrate_bn(model: ESPMedSAM, convbns: List[ConvBN], images: torch.Tensor, batch: int = 8) -> None:
    """Give each fused ConvBN's BN the statistics of its conv output over ``images`` (eval mode,
    so the function does not change while the statistics are gathered)."""
    model.eval()
    sums = {id(m): [0.0, 0.0, 0] for m in convbns}

    def hook(mod, inp, out):
        s = sums[id(mod)]
        y = out.double()
        s[0] = s[0] + y.sum(dim=(0, 2, 3))
        s[1] = s[1] + (y * y).sum(dim=(0, 2, 3))
        s[2] += y.numel() // y.shape[1]

    handles = [m.c.register_forward_hook(lambda mod, i, o, m=m: hook(m, i, o)) for m in convbns]
    try:
        modality = torch.zeros(1, dtype=torch.int64)
        for i in range(0, len(images), batch):
            x = images[i:i + batch]
            model(x, modality.expand(len(x)))
    finally:
        for h in handles:
            h.remove()
    for m in convbns:
        s0, s1, n = sums[id(m)]
        mean = s0 / n
        var = (s1 / n - mean * mean).clamp_min(0.0)
        # the eval output stays W'x + b': b' is what the BN adds after removing the mean
        eval_bias = m.bn.bias - m.bn.running_mean  # set by _set_bn: mean 0, so this is b'
        _set_bn(m.bn, eval_bias, mean.float(), var.float())


def calibration_images(data: str, size: int, n: int) -> torch.Tensor:
    """``n`` letterboxed training images spread over the channels (train split only)."""
    from .data import load_pair, select

    rows = select(data, "train")
    step = max(1, len(rows) // n)
    ims = [load_pair(data, r, size)[0] for r in rows[::step][:n]]
    return torch.from_numpy(np.stack(ims)).permute(0, 3, 1, 2).float().contiguous()  # [N,3,S,S], 0..255


@torch.no_grad()
def reexport_diff(model: ESPMedSAM, onnx_path: str) -> float:
    """Export ``model`` as the file was exported and compare every initialiser by name: the same
    graph with the same initialisers is the same function. Returns the largest |difference|."""
    inits, proto = _initializers(onnx_path)
    patch = any(o.name == OUTPUT_PATCH for o in proto.graph.output)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "again.onnx")
        export_onnx(model, path, patch_output=patch)
        again, again_proto = _initializers(path)
    _check_same_graph(proto, again_proto)
    worst = 0.0
    for name, want in inits.items():
        got = again[name]
        if want.dtype.kind != "f":
            if not np.array_equal(got, want):
                raise ValueError(f"initialiser {name}: integer constant differs")
            continue
        worst = max(worst, float(np.abs(got.astype(np.float64) - want).max()) if want.size else 0.0)
    return worst


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m espmedsam.fromonnx", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--out", required=True, help="state dict (.pth) to write")
    ap.add_argument("--widths", default="compact", help="the preset the file was exported from")
    ap.add_argument("--data", help="shared/data/seg2d: calibrate the BatchNorm statistics on its train split")
    ap.add_argument("--calibration-images", type=int, default=64)
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    size = int(read_metadata(a.onnx)["espnode.input_size"])
    cal = calibration_images(a.data, size, a.calibration_images) if a.data else None
    sd, report = recover(a.onnx, a.widths, cal)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    torch.save(sd, a.out)
    model = build_model(a.widths, size, report_norm(a.onnx))
    model.load_state_dict(sd, strict=True)
    report["reexport_max_abs_diff"] = reexport_diff(model, a.onnx)
    report["out"] = a.out
    print(json.dumps(report))
    return 0


def report_norm(onnx_path: str) -> str:
    return read_metadata(onnx_path)["espnode.normalization"]


if __name__ == "__main__":
    sys.exit(main())
