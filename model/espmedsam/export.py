"""Export ESP-MedSAM to espnode's ONNX contract.

    cd model && /usr/bin/python3 -m espmedsam.export --checkpoint ESP_isic_best.pth --out isic.onnx
    cd model && /usr/bin/python3 -m espmedsam.export --seed 0 --widths tiny --size 256 --out tiny.onnx

Graph: ``image`` float32 [N,3,S,S] (RGB 0..255, normalised inside), ``modality`` int64 [N]
(clamped to 0..5), ``logits`` float32 [N,1,S,S]; N dynamic, one query gathered per sample.
Metadata (``espnode.*``): channels served (with their decoder query), input size, model name and
version, threshold, normalisation, sha256 of the checkpoint file (for random weights: sha256 of
the weights, with `weights_source` = `random-seed-N`).
A per-dataset checkpoint (ESP_<dataset>_best.pth) serves its channel only; a joint one all six.
"""

import argparse
import hashlib
import inspect
import json
import os
import sys
import warnings
from typing import Dict, List, Optional, Sequence

import torch

from . import __version__
from .channels import channel_for_checkpoint, load_channels, select, validate_channel
from .infer import ChannelInput, format_channel_inputs, parse_channel_inputs
from .model import DEFAULT_NORMALIZATION, NORMALIZATIONS, ESPMedSAM, build_model
from .config import preset, PRESETS

OPSET = 17
META_PREFIX = "espnode."
OUTPUT_LOGITS = "logits"
OUTPUT_PATCH = "patch_logits"  # optional second output
MODEL_NAMES = {"published": "esp-medsam", "compact": "esp-medsam-compact", "tiny": "esp-medsam-tiny"}


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def state_dict_sha256(model: torch.nn.Module) -> str:
    """Digest of the weights themselves (names, dtypes, shapes, little-endian bytes, in state-dict
    order): the ``checkpoint_sha256`` of a model with random weights, which has no file."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{str(t.dtype)}|{tuple(t.shape)}\n".encode())
        h.update(t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes())
    return h.hexdigest()


def extract_state_dict(obj) -> Dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: a bare state dict, or one under 'state_dict'/'model';
    a DataParallel 'module.' prefix is removed."""
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError("checkpoint holds no state dict")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def load_checkpoint(model: ESPMedSAM, path: str) -> None:
    """Strict load: every name and shape must match."""
    obj = torch.load(path, map_location="cpu")
    model.load_state_dict(extract_state_dict(obj), strict=True)


class _WithPatch(torch.nn.Module):
    """Export view: (logits, SPPG patch logits) as two graph outputs."""

    def __init__(self, model: ESPMedSAM):
        super().__init__()
        self.model = model

    def forward(self, image, modality):
        return self.model.forward_with_patch(image, modality)


def export_onnx(model: ESPMedSAM, path: str, opset: int = OPSET, batch: int = 2, patch_output: bool = False) -> None:
    """Trace with a mixed-modality example batch; N is a dynamic axis. ``patch_output`` adds the
    optional second output ``patch_logits`` [N,1,S/32,S/32] (the SPPG patch head's logits)."""
    model = model.eval()
    s = model.cfg.img_size
    image = torch.rand(batch, 3, s, s) * 255.0
    modality = torch.arange(batch, dtype=torch.int64) % model.cfg.num_masks
    kwargs = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # torch 2.x: the TorchScript exporter, as with torch 1.13
    outputs = [OUTPUT_LOGITS] + ([OUTPUT_PATCH] if patch_output else [])
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter's shape-inference and constant-folding chatter
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            _WithPatch(model).eval() if patch_output else model, (image, modality), path,
            input_names=["image", "modality"], output_names=outputs,
            dynamic_axes={"image": {0: "N"}, "modality": {0: "N"}, **{o: {0: "N"} for o in outputs}},
            opset_version=opset, do_constant_folding=True, **kwargs,
        )


def build_metadata(model: ESPMedSAM, channels: List[Dict], model_name: str, model_version: str,
                   checkpoint_sha256: str, weights_source: str, threshold: float = 0.0,
                   channel_inputs: Optional[Dict[str, Dict]] = None,
                   plausibility: Optional[Dict] = None) -> Dict[str, str]:
    meta = {
        # outside the espnode.* contract: where the weights came from (file name or random seed)
        "weights_source": weights_source,
        "espnode.channels": json.dumps(channels, separators=(",", ":"), ensure_ascii=False),
        "espnode.input_size": str(model.cfg.img_size),
        "espnode.model_name": model_name,
        "espnode.model_version": model_version,
        "espnode.threshold": format_threshold(threshold),
        "espnode.normalization": model.normalization,
        "espnode.checkpoint_sha256": checkpoint_sha256,
    }
    meta.update(feeding_metadata(channel_inputs, plausibility, model.cfg.img_size))
    return meta


def feeding_metadata(channel_inputs: Optional[Dict[str, Dict]], plausibility: Optional[Dict],
                     size: int) -> Dict[str, str]:
    """``espnode.channel_inputs`` and ``espnode.plausibility`` (each only when given): how the node
    feeds each channel and judges its output."""
    meta = {}
    if channel_inputs:
        specs = {k: ChannelInput.from_json(v, size) for k, v in channel_inputs.items()}
        meta["espnode.channel_inputs"] = format_channel_inputs(specs)
    if plausibility:
        meta["espnode.plausibility"] = json.dumps(plausibility, separators=(",", ":"), sort_keys=True)
    return meta


def format_threshold(t: float) -> str:
    return "0" if t == 0 else repr(float(t))


def write_metadata(path: str, meta: Dict[str, str], doc: str = "") -> None:
    import onnx

    proto = onnx.load(path)
    keep = [p for p in proto.metadata_props if p.key not in meta]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    fix_io_shapes(proto, int(meta["espnode.input_size"]))
    proto.producer_name = "espnode-model"
    proto.producer_version = __version__
    if doc:
        proto.doc_string = doc
    onnx.checker.check_model(proto)
    onnx.save(proto, path)


def fix_io_shapes(proto, size: int) -> None:
    """Declare logits as [N,1,S,S] (and patch_logits as [N,1,S/32,S/32]): the exporter cannot
    infer the resized output's static dims."""
    want = {OUTPUT_LOGITS: ["N", 1, size, size], OUTPUT_PATCH: ["N", 1, size // 32, size // 32]}
    for vi in proto.graph.output:
        if vi.name in want:
            dims = vi.type.tensor_type.shape.dim
            while len(dims) < 4:
                dims.add()
            for d, v in zip(dims, want[vi.name]):
                if isinstance(v, str):
                    d.dim_param = v
                else:
                    d.dim_value = v


def read_metadata(path_or_proto) -> Dict[str, str]:
    import onnx

    proto = onnx.load(path_or_proto) if isinstance(path_or_proto, str) else path_or_proto
    return {p.key: p.value for p in proto.metadata_props}


def validate_onnx(path_or_proto) -> Dict[str, str]:
    """Check a file against the contract (what the node validates at load time, and the graph's
    inputs and outputs); returns its metadata. Raises ValueError."""
    import onnx

    proto = onnx.load(path_or_proto) if isinstance(path_or_proto, str) else path_or_proto
    onnx.checker.check_model(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    sha = meta.get(META_PREFIX + "checkpoint_sha256", "")
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ValueError(f"espnode.checkpoint_sha256 {sha!r}: want 64 lower-case hex digits")
    for key in ("channels", "input_size", "model_name", "model_version", "threshold",
                "normalization", "checkpoint_sha256"):
        if not meta.get(META_PREFIX + key):
            raise ValueError(f"metadata {META_PREFIX + key} missing or empty")
    size = int(meta["espnode.input_size"])
    float(meta["espnode.threshold"])
    if meta["espnode.normalization"] not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {meta['espnode.normalization']!r}")
    chans = json.loads(meta["espnode.channels"])
    if not isinstance(chans, list) or not chans:
        raise ValueError("espnode.channels: expected a non-empty list")
    for ch in chans:
        validate_channel(ch, need_query=True)
    if len({c["index"] for c in chans}) != len(chans):
        raise ValueError("espnode.channels: duplicate index")

    def dims(vi):
        return [d.dim_param if d.dim_param else d.dim_value for d in vi.type.tensor_type.shape.dim]

    elem = onnx.TensorProto
    ins = {i.name: i for i in proto.graph.input}
    outs = {o.name: o for o in proto.graph.output}
    if set(ins) != {"image", "modality"} or set(outs) not in ({OUTPUT_LOGITS}, {OUTPUT_LOGITS, OUTPUT_PATCH}):
        raise ValueError(f"graph inputs/outputs {sorted(ins)}/{sorted(outs)}, want image, modality / logits "
                         f"[, {OUTPUT_PATCH}]")
    if proto.graph.output[0].name != OUTPUT_LOGITS:
        raise ValueError("logits must be the first output")
    checks = [(ins["image"], elem.FLOAT, 4, [3, size, size]), (ins["modality"], elem.INT64, 1, []),
              (outs["logits"], elem.FLOAT, 4, [1, size, size])]
    if OUTPUT_PATCH in outs:
        checks.append((outs[OUTPUT_PATCH], elem.FLOAT, 4, [1, size // 32, size // 32]))
    served = {c["name"] for c in chans}
    if meta.get(META_PREFIX + "channel_inputs"):
        specs = parse_channel_inputs(meta[META_PREFIX + "channel_inputs"], size)
        if set(specs) - served:
            raise ValueError(f"espnode.channel_inputs names channels the file does not serve: {sorted(set(specs) - served)}")
    if meta.get(META_PREFIX + "plausibility"):
        validate_plausibility(json.loads(meta[META_PREFIX + "plausibility"]), served)
    for vi, et, rank, tail in checks:
        d = dims(vi)
        if vi.type.tensor_type.elem_type != et or len(d) != rank or d[1:] != tail or not isinstance(d[0], str):
            raise ValueError(f"{vi.name}: type {vi.type.tensor_type.elem_type} dims {d}; want dynamic N and {tail}")
    return meta


def validate_plausibility(p: Dict, served) -> None:
    """``espnode.plausibility``: {"version": 1, "channels": {name: {"fg_fraction": {"lo", "hi", ...},
    "patch_max": {"lo", ...}}}, ...}; bounds are numbers in 0..1 with lo <= hi."""
    if not isinstance(p, dict) or p.get("version") != 1 or not isinstance(p.get("channels"), dict):
        raise ValueError("espnode.plausibility: want an object with version 1 and channels")
    for name, c in p["channels"].items():
        if name not in served:
            raise ValueError(f"espnode.plausibility: channel {name!r} is not served by this file")
        for key in ("fg_fraction", "patch_max"):
            if key not in c:
                continue
            lo, hi = c[key].get("lo", 0.0), c[key].get("hi", 1.0)
            if not all(isinstance(v, (int, float)) and 0.0 <= v <= 1.0 for v in (lo, hi)) or lo > hi:
                raise ValueError(f"espnode.plausibility: {name}.{key} bounds {lo!r}..{hi!r}")


def export(out: str, checkpoint: Optional[str] = None, seed: Optional[int] = None, widths: str = "published",
           size: int = 1024, normalization: str = DEFAULT_NORMALIZATION, channels: Optional[Sequence] = None,
           channels_file: Optional[str] = None, model_name: Optional[str] = None,
           model_version: Optional[str] = None, threshold: float = 0.0, opset: int = OPSET,
           model: Optional[ESPMedSAM] = None, channel_inputs: Optional[Dict[str, Dict]] = None,
           plausibility: Optional[Dict] = None, patch_output: bool = False) -> Dict[str, str]:
    """Export and stamp metadata; returns the metadata. ``channels`` None means: the checkpoint
    name's channel for a per-dataset checkpoint, else all channels (universal)."""
    if (checkpoint is None) == (seed is None) and model is None:
        raise ValueError("give exactly one of checkpoint or seed")
    if model is None:
        model = build_model(widths, size, normalization, seed=seed, calibrate=seed is not None)
        if checkpoint is not None:
            load_checkpoint(model, checkpoint)
    all_chans = load_channels(channels_file)
    if channels is None:
        one = channel_for_checkpoint(checkpoint) if checkpoint else None
        channels = [one] if one is not None else [c["index"] for c in all_chans if c["index"] < model.cfg.num_masks]
    served = select(all_chans, channels)
    # sha256 of the checkpoint file; for random weights (no file) sha256 of the weights, since the
    # node's validator wants 64 hex digits; weights_source then says "random-seed-N"
    if checkpoint:
        sha, source = sha256_file(checkpoint), os.path.basename(checkpoint)
    else:
        sha, source = state_dict_sha256(model), f"random-seed-{seed}"
    meta = build_metadata(model, served, model_name or MODEL_NAMES.get(model.cfg.widths, "esp-medsam"),
                          model_version or __version__, sha, source, threshold, channel_inputs, plausibility)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    export_onnx(model, out, opset, patch_output=patch_output)
    doc = (f"ESP-MedSAM ({model.cfg.widths} widths, input {model.cfg.img_size}) for espnode: "
           f"image[N,3,S,S] RGB 0..255, modality int64[N] -> logits[N,1,S,S]"
           + (", patch_logits[N,1,S/32,S/32]" if patch_output else ""))
    write_metadata(out, meta, doc)
    validate_onnx(out)
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m espmedsam.export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a state dict (.pth), e.g. ESP_isic_best.pth")
    src.add_argument("--seed", type=int, help="random weights from this seed instead of a checkpoint")
    ap.add_argument("--out", required=True, help="output .onnx path")
    ap.add_argument("--widths", default="published", choices=sorted(PRESETS))
    ap.add_argument("--size", type=int, default=1024, help="input side S (multiple of 32)")
    ap.add_argument("--normalization", default=DEFAULT_NORMALIZATION, choices=sorted(NORMALIZATIONS))
    ap.add_argument("--channels", help="comma-separated channel names or indices, or 'all' "
                    "(default: the checkpoint name's channel for ESP_<dataset>_best.pth, else all)")
    ap.add_argument("--channels-file", help="default: seg/channel/channels.json in the repository")
    ap.add_argument("--model-name")
    ap.add_argument("--model-version")
    ap.add_argument("--threshold", type=float, default=0.0)
    ap.add_argument("--opset", type=int, default=OPSET)
    ap.add_argument("--channel-inputs", help="JSON object for espnode.channel_inputs (channel name -> entry)")
    ap.add_argument("--patch-output", action="store_true", help="add the optional output patch_logits")
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    chans = None
    if a.channels and a.channels != "all":
        chans = [c for c in a.channels.split(",") if c.strip()]
    elif a.channels == "all":
        chans = [c["index"] for c in load_channels(a.channels_file) if c["index"] < preset(a.widths).num_masks]
    meta = export(a.out, checkpoint=a.checkpoint, seed=a.seed, widths=a.widths, size=a.size,
                  normalization=a.normalization, channels=chans, channels_file=a.channels_file,
                  model_name=a.model_name, model_version=a.model_version, threshold=a.threshold, opset=a.opset,
                  channel_inputs=json.loads(a.channel_inputs) if a.channel_inputs else None,
                  patch_output=a.patch_output)
    import onnx
    proto = onnx.load(a.out, load_external_data=False)
    served = [c["name"] for c in json.loads(meta["espnode.channels"])]
    print(json.dumps({"out": a.out, "bytes": os.path.getsize(a.out), "nodes": len(proto.graph.node),
                      "channels": served, "input_size": int(meta["espnode.input_size"]),
                      "checkpoint_sha256": meta["espnode.checkpoint_sha256"],
                      "weights_source": meta["weights_source"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
