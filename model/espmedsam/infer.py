"""Reference inference: one source image -> full-size logits, as the node computes them.

This module is the executable form of the per-channel input contract (model/README.md, "Tiling
contract"; metadata ``espnode.channel_inputs``). The Go runtime implements the same steps; its
parity tests compare against ``predict`` (fixtures: ``python3 -m espmedsam.infer``).

Two input modes per channel:
- ``letterbox``: the whole image resized so that its longer side is S (the model's input size),
  at the top left of an S x S canvas, zeros elsewhere (seg/pixel.Preprocess); the logits of the
  content region are resized back to the source (seg/pixel.Postprocess).
- ``tiles``: the image resized so that its longer side is ``long_side`` (0: kept as it is), cut
  into overlapping S x S tiles (``tile_positions``), each run through the model; the tiles'
  logits are blended with a separable Hann window (``window``) into one map at that working size,
  which is resized back to the source.
Both modes may add flip test-time augmentation (``flips``): the working image is also run
flipped, the flipped result is flipped back, and the logits are averaged.

Resizing is the node's triangle filter (seg/pixel/resize.go): bilinear when enlarging, a
triangle widened by the scale when reducing (area-like antialiasing). Foreground is logit >=
the model's threshold (0).
"""

import argparse
import json
import math
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

MODES = ("letterbox", "tiles")
WINDOWS = ("hann",)
PADS = ("zero",)
FLIPS = ("h", "v", "hv")
PATCH = 32  # SPPG cell side in pixels


@dataclass(frozen=True)
class ChannelInput:
    """How the node feeds one channel to the model (one entry of ``espnode.channel_inputs``)."""

    mode: str = "letterbox"
    long_side: int = 0  # tiles: working size's longer side in pixels; 0 keeps the source size
    tile: int = 0  # tiles: tile side; must equal the model's input size S
    stride: int = 0  # tiles: largest step between tile origins (tiles overlap by tile - step)
    window: str = "hann"  # tiles: blending weights
    pad: str = "zero"  # tiles: value outside the working image (a side shorter than the tile)
    flips: Tuple[str, ...] = field(default_factory=tuple)  # test-time flips averaged with the image

    def validate(self, size: int) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r}: want one of {MODES}")
        bad = [f for f in self.flips if f not in FLIPS]
        if bad or len(set(self.flips)) != len(self.flips):
            raise ValueError(f"flips {list(self.flips)}: want distinct values of {FLIPS}")
        if self.mode == "tiles":
            if self.tile != size:
                raise ValueError(f"tile {self.tile}: must equal the model's input size {size}")
            if not 0 < self.stride <= self.tile:
                raise ValueError(f"stride {self.stride}: want 1..{self.tile}")
            if self.long_side < 0 or self.long_side > 16384:
                raise ValueError(f"long_side {self.long_side}: want 0 (source size) or up to 16384")
            if self.window not in WINDOWS or self.pad not in PADS:
                raise ValueError(f"window {self.window!r} / pad {self.pad!r}: want {WINDOWS} / {PADS}")

    def to_json(self) -> Dict:
        d = {"mode": self.mode}
        if self.mode == "tiles":
            d.update(long_side=self.long_side, tile=self.tile, stride=self.stride, window=self.window, pad=self.pad)
        if self.flips:
            d["flips"] = list(self.flips)
        return d

    @classmethod
    def from_json(cls, d: Dict, size: int) -> "ChannelInput":
        known = {"mode", "long_side", "tile", "stride", "window", "pad", "flips"}
        extra = set(d) - known
        if extra:
            raise ValueError(f"unknown fields {sorted(extra)}")
        ci = cls(mode=d.get("mode", ""), long_side=int(d.get("long_side", 0)), tile=int(d.get("tile", 0)),
                 stride=int(d.get("stride", 0)), window=d.get("window", "hann"), pad=d.get("pad", "zero"),
                 flips=tuple(d.get("flips", ())))
        ci.validate(size)
        return ci


LETTERBOX = ChannelInput()


def tiles(long_side: int, size: int, stride: int, flips: Sequence[str] = ()) -> ChannelInput:
    return ChannelInput("tiles", long_side, size, stride, "hann", "zero", tuple(flips))


# ---------------------------------------------------------------- the node's geometry and resampler

def fit(width: int, height: int, size: int) -> Tuple[int, int]:
    """seg/pixel.Fit: the longer side to ``size``, aspect kept, rounded half away from zero."""
    long = max(width, height)
    w = max(1, int(math.floor(width * size / long + 0.5)))
    h = max(1, int(math.floor(height * size / long + 0.5)))
    return min(w, size), min(h, size)


def working_size(width: int, height: int, long_side: int) -> Tuple[int, int]:
    """Tiles: the size the source is resized to before tiling (``long_side`` 0: unchanged). Unlike
    ``fit`` this may enlarge and is not capped."""
    if long_side == 0:
        return width, height
    long = max(width, height)
    return (max(1, int(math.floor(width * long_side / long + 0.5))),
            max(1, int(math.floor(height * long_side / long + 0.5))))


def triangle_taps(n_in: int, n_out: int) -> Tuple[np.ndarray, np.ndarray]:
    """seg/pixel's triangleWeights as (index, weight) arrays of shape (n_out, K): output i is
    sum_k weight[i, k] * input[index[i, k]] (unused taps have weight 0); rows sum to 1."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    rows = []
    for i in range(n_out):
        center = (i + 0.5) * scale
        lo = max(int(math.floor(center - support)), 0)
        hi = min(int(math.ceil(center + support)), n_in)
        j = np.arange(lo, hi)
        w = np.maximum(1 - np.abs((j + 0.5 - center) / support), 0)
        if w.sum() == 0:
            j, w = np.array([min(max(int(center), 0), n_in - 1)]), np.array([1.0])
        rows.append((j, w / w.sum()))
    k = max(len(j) for j, _ in rows)
    idx = np.zeros((n_out, k), np.int64)
    wts = np.zeros((n_out, k), np.float32)
    for i, (j, w) in enumerate(rows):
        idx[i, :len(j)], wts[i, :len(j)] = j, w
    return idx, wts


def _resample_axis(src: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    idx, wts = triangle_taps(src.shape[axis], n_out)
    moved = np.moveaxis(src, axis, 0)
    out = np.zeros((n_out,) + moved.shape[1:], np.float32)
    shape = (n_out,) + (1,) * (moved.ndim - 1)
    for k in range(idx.shape[1]):
        out += wts[:, k].reshape(shape) * moved[idx[:, k]]
    return np.moveaxis(out, 0, axis)


def resample(src: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an (H, W) or (H, W, C) float32 raster to (height, width[, C]) with the node's filter
    (along rows first, then along columns, as seg/pixel.resample)."""
    src = np.asarray(src, np.float32)
    h, w = src.shape[:2]
    if (w, h) == (width, height):
        return src.copy()
    return _resample_axis(_resample_axis(src, width, 1), height, 0)


def tile_positions(length: int, tile: int, stride: int) -> List[int]:
    """Origins of the tiles along one axis of ``length`` pixels: one tile at 0 when the axis fits
    in a tile; else n = ceil((length - tile) / stride) + 1 tiles, the first at 0, the last flush
    with the end, the others evenly spread, each origin rounded half up:
    p_i = floor((2 i (length - tile) + (n - 1)) / (2 (n - 1)))."""
    if length <= tile:
        return [0]
    span = length - tile
    n = -(-span // stride) + 1
    return [(2 * i * span + (n - 1)) // (2 * (n - 1)) for i in range(n)]


def window(tile: int, kind: str = "hann") -> np.ndarray:
    """(tile, tile) float32 blending weights: w(y, x) = h(y) h(x), h(k) = sin^2(pi (k + 0.5) / tile),
    positive everywhere (so a pixel covered by one tile takes that tile's logit exactly)."""
    if kind != "hann":
        raise ValueError(f"window {kind!r}")
    k = np.arange(tile, dtype=np.float64)
    h = np.sin(np.pi * (k + 0.5) / tile) ** 2
    return np.outer(h, h).astype(np.float32)


def _flip(a: np.ndarray, f: str) -> np.ndarray:
    """Flip an (H, W[, C]) array: h = left-right, v = top-bottom, hv = both (a 180-degree turn)."""
    if "h" in f:
        a = a[:, ::-1]
    if "v" in f:
        a = a[::-1]
    return np.ascontiguousarray(a)


# ---------------------------------------------------------------- runners

Runner = Callable[[np.ndarray, np.ndarray], Tuple[np.ndarray, Optional[np.ndarray]]]


class TorchRunner:
    """Runs an ESPMedSAM (torch) model: (images float32 (N,3,S,S) 0..255, queries int64 (N,)) ->
    (logits (N,1,S,S), SPPG patch logits (N,1,S/32,S/32)), in chunks of ``batch``."""

    def __init__(self, model, batch: int = 8, device: str = "cpu"):
        self.model, self.batch, self.device = model, batch, device
        self.size = model.cfg.img_size

    def __call__(self, images: np.ndarray, queries: np.ndarray):
        import torch

        was = self.model.training
        self.model.eval()
        outs, patches = [], []
        with torch.no_grad():
            for i in range(0, len(images), self.batch):
                img = torch.from_numpy(np.ascontiguousarray(images[i:i + self.batch])).to(self.device)
                q = torch.from_numpy(np.asarray(queries[i:i + self.batch], np.int64)).to(self.device)
                lg, pt = self.model.forward_with_patch(img, q)
                outs.append(lg.float().cpu().numpy())
                patches.append(pt.float().cpu().numpy())
        self.model.train(was)
        return np.concatenate(outs), np.concatenate(patches)


class OrtRunner:
    """Runs an exported ONNX file through ONNX Runtime's C library (tools/ort_run.c, as
    espmedsam.ortcheck): logits only (patch logits None)."""

    def __init__(self, model_path: str, size: int, threads: int = 1):
        from . import ortcheck

        self.exe = ortcheck.build_tool()
        if self.exe is None:
            raise RuntimeError("OrtRunner needs a C compiler, onnxruntime_c_api.h and libonnxruntime.so.1")
        self.model_path, self.size, self.threads = model_path, size, threads

    def __call__(self, images: np.ndarray, queries: np.ndarray):
        from . import ortcheck

        n = len(images)
        with tempfile.TemporaryDirectory() as tmp:
            ip, mp, op = (os.path.join(tmp, x) for x in ("image.f32", "modality.i64", "logits.f32"))
            np.ascontiguousarray(images, "<f4").tofile(ip)
            np.ascontiguousarray(queries, "<i8").tofile(mp)
            ortcheck.run_ort(self.exe, self.model_path, ip, mp, n, self.size, op, self.threads)
            return np.fromfile(op, "<f4").reshape(n, 1, self.size, self.size), None


# ---------------------------------------------------------------- prediction

@dataclass
class Prediction:
    logits: np.ndarray  # float32 (H, W) at the source size
    threshold: float = 0.0
    patch_max: Optional[float] = None  # max SPPG patch probability over every model input run
    inputs: int = 0  # model inputs run (tiles x flip variants)
    working: Tuple[int, int] = (0, 0)  # (w, h) the model's output was assembled at

    @property
    def mask(self) -> np.ndarray:
        return self.logits >= self.threshold

    @property
    def fg_fraction(self) -> float:
        return float(self.mask.mean())

    def probability(self) -> np.ndarray:
        return (1.0 / (1.0 + np.exp(-self.logits.astype(np.float64)))).astype(np.float32)


def _letterbox_logits(work: np.ndarray, query: int, run: Runner, size: int):
    h, w = work.shape[:2]
    gw, gh = fit(w, h, size)
    canvas = np.zeros((3, size, size), np.float32)
    canvas[:, :gh, :gw] = np.clip(resample(work, gw, gh), 0, 255).transpose(2, 0, 1)
    lg, pt = run(canvas[None], np.array([query], np.int64))
    return lg[0, 0, :gh, :gw], (gw, gh), pt, 1


def _tiled_logits(work: np.ndarray, query: int, run: Runner, size: int, spec: ChannelInput):
    h, w = work.shape[:2]
    xs, ys = tile_positions(w, size, spec.stride), tile_positions(h, size, spec.stride)
    batch, where = [], []
    for y in ys:
        for x in xs:
            t = np.zeros((size, size, 3), np.float32)  # pad "zero"
            part = work[y:y + size, x:x + size]
            t[:part.shape[0], :part.shape[1]] = part
            batch.append(t.transpose(2, 0, 1))
            where.append((x, y))
    lg, pt = run(np.stack(batch), np.full(len(batch), query, np.int64))
    win = window(size, spec.window)
    acc = np.zeros((h, w), np.float64)
    wsum = np.zeros((h, w), np.float64)
    for k, (x, y) in enumerate(where):
        ph, pw = min(size, h - y), min(size, w - x)
        acc[y:y + ph, x:x + pw] += win[:ph, :pw] * lg[k, 0, :ph, :pw]
        wsum[y:y + ph, x:x + pw] += win[:ph, :pw]
    return (acc / wsum).astype(np.float32), (w, h), pt, len(batch)


def predict_many(image: np.ndarray, query: int, run: Runner, size: int, spec: ChannelInput,
                 variants: Sequence[Sequence[str]], threshold: float = 0.0) -> List[Prediction]:
    """``predict`` for several flip sets at once (each pass run once): one Prediction per entry of
    ``variants`` (a tuple of flips; () is the plain image). The spec's own ``flips`` are ignored."""
    src = np.asarray(image, np.float32)
    if src.ndim == 2:
        src = np.repeat(src[:, :, None], 3, axis=2)
    if src.ndim != 3 or src.shape[2] != 3:
        raise ValueError(f"image shape {src.shape}: want (H, W, 3) or (H, W)")
    spec.validate(size)
    h, w = src.shape[:2]
    if spec.mode == "tiles":
        ww, wh = working_size(w, h, spec.long_side)
        work = np.clip(resample(src, ww, wh), 0, 255)
    else:
        work = src
    passes = {}
    for f in sorted({f for v in variants for f in v} | {""}):
        img = _flip(work, f) if f else work
        if spec.mode == "tiles":
            lg, geo, pt, k = _tiled_logits(img, query, run, size, spec)
        else:
            lg, geo, pt, k = _letterbox_logits(img, query, run, size)
        pmax = None if pt is None else float(1.0 / (1.0 + np.exp(-float(np.max(pt)))))
        passes[f] = (_flip(lg, f) if f else lg, geo, pmax, k)
    out = []
    for v in variants:
        keys = [""] + [f for f in v if f]
        mean = np.mean([passes[k][0].astype(np.float64) for k in keys], axis=0).astype(np.float32)
        pm = [passes[k][2] for k in keys if passes[k][2] is not None]
        out.append(Prediction(resample(mean, w, h), threshold, max(pm) if pm else None,
                              sum(passes[k][3] for k in keys), passes[""][1]))
    return out


def predict(image: np.ndarray, query: int, run: Runner, size: int, spec: ChannelInput = LETTERBOX,
            threshold: float = 0.0) -> Prediction:
    """One source image (uint8 or float (H, W, 3) RGB 0..255, or (H, W) grey) -> logits at the
    source size, by the channel's input mode and flips (see the module doc)."""
    return predict_many(image, query, run, size, spec, [spec.flips], threshold)[0]


def dice_iou(pred: np.ndarray, target: np.ndarray) -> Tuple[float, float]:
    """espnode eval's per-image figures (cmd/espnode eval): both empty count as 1."""
    p, t = pred.astype(bool), target.astype(bool)
    inter = float((p & t).sum())
    ps, ts = float(p.sum()), float(t.sum())
    if ps + ts == 0:
        return 1.0, 1.0
    return 2 * inter / (ps + ts), inter / (ps + ts - inter)


# ---------------------------------------------------------------- metadata

def parse_channel_inputs(text: str, size: int) -> Dict[str, ChannelInput]:
    """``espnode.channel_inputs`` (JSON object: channel name -> entry) -> specs. A channel the
    object does not name is ``letterbox``."""
    obj = json.loads(text)
    if not isinstance(obj, dict):
        raise ValueError("espnode.channel_inputs: want a JSON object keyed by channel name")
    return {k: ChannelInput.from_json(v, size) for k, v in obj.items()}


def format_channel_inputs(specs: Dict[str, ChannelInput]) -> str:
    return json.dumps({k: v.to_json() for k, v in specs.items()}, separators=(",", ":"), sort_keys=True)


def spec_from_text(text: str, size: int) -> ChannelInput:
    """CLI shorthand: ``letterbox``, or ``tiles:LONG_SIDE:STRIDE``; ``+h``/``+v``/``+hv`` adds flips
    (``tiles:640:192+h``)."""
    parts = text.split("+")
    base, flips = parts[0], tuple(parts[1:])
    if base == "letterbox":
        ci = ChannelInput("letterbox", flips=flips)
    else:
        kind, long_side, stride = base.split(":")
        if kind != "tiles":
            raise ValueError(f"input mode {text!r}")
        ci = tiles(int(long_side), size, int(stride), flips)
    ci.validate(size)
    return ci


# ---------------------------------------------------------------- CLI: parity fixtures for the Go runtime

def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m espmedsam.infer", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", required=True, help="exported model file (espnode contract)")
    ap.add_argument("--image", required=True, help="PNG/JPEG source image")
    ap.add_argument("--channel", required=True, help="channel name (its query and input mode come from the file)")
    ap.add_argument("--out", required=True, help="folder: logits.f32 (float32 [H,W] at the source size), meta.json")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    from PIL import Image

    from .export import read_metadata

    meta = read_metadata(a.onnx)
    size = int(meta["espnode.input_size"])
    chans = {c["name"]: c for c in json.loads(meta["espnode.channels"])}
    specs = parse_channel_inputs(meta.get("espnode.channel_inputs", "{}"), size)
    spec = specs.get(a.channel, LETTERBOX)
    with Image.open(a.image) as im:
        img = np.asarray(im.convert("RGB"))
    pred = predict(img, chans[a.channel]["query"], OrtRunner(a.onnx, size, a.threads), size, spec,
                   float(meta["espnode.threshold"]))
    os.makedirs(a.out, exist_ok=True)
    pred.logits.astype("<f4").tofile(os.path.join(a.out, "logits.f32"))
    info = {"image": os.path.basename(a.image), "channel": a.channel, "width": img.shape[1], "height": img.shape[0],
            "input": spec.to_json(), "model_inputs": pred.inputs, "working": list(pred.working),
            "fg_fraction": pred.fg_fraction}
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
