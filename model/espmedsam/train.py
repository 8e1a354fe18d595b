"""Train ESP-MedSAM on the seg2d tree (all channels jointly), or distil an encoder (MMDKD).

    cd model && nice -n 15 /usr/bin/python3 -m espmedsam.train --data ../../shared/data/seg2d \
        --widths compact --size 256 --tiles fundus=640:192 --max-minutes 600 --out runs/long

Mode ``seg`` (default), following the paper as far as it is published:
- SPPG patch loss: binary cross-entropy of the patch logits against the mask max-pooled over
  32x32 pixels (one cell per patch);
- mask loss: binary cross-entropy plus Dice on the logits of each sample's own channel, plus
  optionally soft clDice on thin-structure channels (``--thin-loss cldice``);
- QDMD: batches mix modalities (``MixedSampler``), and each sample's decoder query is its
  channel's (the model gathers one query per sample, as the exported graph does);
- augmentation per modality (``augment.POLICIES``);
- tiled channels (``--tiles CHANNEL=LONG_SIDE:STRIDE[@P]``): a share P of the channel's samples
  are random S x S crops of the image resized to its working size (``infer.working_size``), what
  the node's tiling feeds the model (model/README.md, "Tiling contract"); the rest letterboxed.
Mode ``distill`` (MMDKD), with ``--teacher CKPT``: mean squared error between the student's and
the teacher's image embeddings (before the SPPG prompt), and only parameters whose names contain
``med`` are trainable (the rest of the encoder stays as loaded with ``--init``).

Data: ``train`` rows of MANIFEST.csv only (fundus/drishti-gs1 kept out, see data.py); model
selection on a validation slice of train (every ``--val-every``-th item per dataset), scored the
way ``espnode eval`` scores (``evaluate_sources``: reference inference at the source size, every
input mode the channel trains on, with and without a test-time flip). The test split is never
read here.

The run stops at ``--epochs`` or ``--max-minutes`` (over all sessions; the learning-rate schedule
follows whichever comes first), or when ``OUT/STOP`` exists, validating every ``--val-minutes``
and at the end. ``OUT/last.pth`` (model, optimiser, sampler and random state, history; also
written every ``--checkpoint-every`` steps) resumes with ``--resume``; ``OUT/best.pth`` is the state
dict with the best validation score; ``OUT/log.jsonl`` has one line per validation; ``--record
FILE`` writes the run's configuration, data-manifest hash, throughput, validation history and the
input modes validation chose (``inputs``) as JSON.
"""

import argparse
import json
import math
import os
import platform
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from . import infer
from .augment import POLICIES, Policy, augment, photometric, random_crop
from .channels import REPO_ROOT
from .config import PRESETS
from .data import EXCLUDED, Packed, Sources, Tiled, channel_indices, manifest_sha256, select, split_validation, validation_rule
from .export import extract_state_dict, sha256_file
from .model import DEFAULT_NORMALIZATION, NORMALIZATIONS, ESPMedSAM, build_model, count_parameters

PATCH = 32  # SPPG cell side in pixels


# ---------------------------------------------------------------- a GELU whose backward is right

class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


class SafeGELU(torch.nn.GELU):
    """nn.GELU for training. Debian's torch 1.13 computes GELU's backward wrongly on the CPU when the
    incoming gradient is not contiguous (zeros or garbage, e.g. after a transpose or a
    channels-last reshape, as the encoder's token/map conversions and the decoder's flatten of the
    prompted embedding give): gradients of 1e20 and more reached the SPPG dense prompter and made
    the loss NaN. Same forward; the gradient is made contiguous before GELU's backward."""

    def forward(self, x):
        return _ContiguousGrad.apply(F.gelu(x.contiguous(), approximate=self.approximate))


def use_safe_gelu(model: torch.nn.Module) -> int:
    """Replace every nn.GELU of ``model`` with SafeGELU (no parameters: the state dict is
    unchanged, and export uses the plain model). Returns how many were replaced."""
    n = 0
    for mod in list(model.modules()):
        for name, child in list(mod.named_children()):
            if type(child) is torch.nn.GELU:
                setattr(mod, name, SafeGELU(approximate=child.approximate))
                n += 1
    return n


# ---------------------------------------------------------------- losses

def patch_target(mask: torch.Tensor) -> torch.Tensor:
    """(B,1,S,S) 0..1 -> (B,1,S/32,S/32): the mask max-pooled over each 32x32 patch."""
    return F.max_pool2d(mask, PATCH, PATCH)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per sample, averaged over the batch."""
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    inter = (p * t).sum(1)
    return (1 - (2 * inter + eps) / (p.sum(1) + t.sum(1) + eps)).mean()


def seg_losses(logits: torch.Tensor, patch_logits: torch.Tensor, mask: torch.Tensor,
               patch_weight: float = 1.0) -> Dict[str, torch.Tensor]:
    """Mask loss (BCE + Dice) and SPPG patch loss (BCE against the 32x32-max-pooled mask)."""
    bce = F.binary_cross_entropy_with_logits(logits, mask)
    dice = dice_loss(logits, mask)
    patch = F.binary_cross_entropy_with_logits(patch_logits, patch_target(mask))
    return {"loss": bce + dice + patch_weight * patch, "bce": bce, "dice": dice, "patch": patch}


def soft_skeleton(x: torch.Tensor, iters: int = 5) -> torch.Tensor:
    """Soft morphological skeleton of a (B,1,H,W) map in 0..1 (Shit et al. 2021, clDice): the
    residues of ``iters`` successive soft erosions (min-pooling), each minus its soft opening."""
    def erode(a):
        return -F.max_pool2d(-a, 3, 1, 1)

    def dilate(a):
        return F.max_pool2d(a, 3, 1, 1)

    skel = F.relu(x - dilate(erode(x)))
    for _ in range(iters):
        x = erode(x)
        delta = F.relu(x - dilate(erode(x)))
        skel = skel + F.relu(delta - skel * delta)
    return skel


def cldice_loss(logits: torch.Tensor, target: torch.Tensor, iters: int = 5, eps: float = 1.0) -> torch.Tensor:
    """1 - soft clDice per sample (harmonic mean of the predicted skeleton's precision inside the
    target and the target skeleton's sensitivity inside the prediction), averaged over the batch:
    it rewards connected thin structures that per-pixel losses barely see."""
    p = torch.sigmoid(logits)
    sp, st = soft_skeleton(p, iters), soft_skeleton(target, iters)
    tprec = ((sp * target).flatten(1).sum(1) + eps) / (sp.flatten(1).sum(1) + eps)
    tsens = ((st * p).flatten(1).sum(1) + eps) / (st.flatten(1).sum(1) + eps)
    return (1 - 2 * tprec * tsens / (tprec + tsens)).mean()


def distill_loss(student: ESPMedSAM, teacher: ESPMedSAM, image: torch.Tensor) -> torch.Tensor:
    """MMDKD: MSE between the student's and the teacher's image embeddings (the teacher's resized
    to the student's grid when their input sizes differ)."""
    with torch.no_grad():
        t = teacher.encode(image if teacher.cfg.img_size == student.cfg.img_size else
                           F.interpolate(image, size=(teacher.cfg.img_size,) * 2, mode="bilinear",
                                         align_corners=False))[1]
    s = student.encode(image)[1]
    if t.shape[1] != s.shape[1]:
        raise ValueError(f"teacher embedding has {t.shape[1]} channels, student {s.shape[1]}")
    if t.shape[-2:] != s.shape[-2:]:
        t = F.interpolate(t, size=s.shape[-2:], mode="bilinear", align_corners=False)
    return F.mse_loss(s, t)


def med_only(model: torch.nn.Module) -> List[torch.nn.Parameter]:
    """Freeze every parameter whose name lacks ``med`` (MMDKD); returns the trainable ones."""
    params = []
    for name, p in model.named_parameters():
        p.requires_grad_("med" in name)
        if p.requires_grad:
            params.append(p)
    if not params:
        raise ValueError("no parameter name contains 'med'")
    return params


# ---------------------------------------------------------------- sampling

class MixedSampler:
    """Mixed-modality batches: each slot draws a channel with probability proportional to
    (its sample count) ** ``alpha`` (0.5 lifts the small channels), then the next sample of that
    channel's shuffled queue (refilled when empty)."""

    def __init__(self, channels: Sequence[int], batch: int, alpha: float = 0.5, seed: int = 0):
        self.batch = batch
        self.rng = np.random.default_rng(seed)
        chans = np.asarray(channels)
        self.keys = sorted(set(int(c) for c in chans))
        self.members = {c: np.flatnonzero(chans == c) for c in self.keys}
        w = np.array([len(self.members[c]) ** alpha for c in self.keys], np.float64)
        self.prob = w / w.sum()
        self.queues = {c: [] for c in self.keys}

    def _next(self, c: int) -> int:
        if not self.queues[c]:
            self.queues[c] = list(self.rng.permutation(self.members[c]))
        return int(self.queues[c].pop())

    def __next__(self) -> np.ndarray:
        picks = self.rng.choice(len(self.keys), size=self.batch, p=self.prob)
        return np.array([self._next(self.keys[k]) for k in picks], np.int64)

    def __iter__(self):
        return self

    def state(self):
        return {"rng": self.rng.bit_generator.state, "queues": {c: list(map(int, q)) for c, q in self.queues.items()}}

    def restore(self, st):
        self.rng.bit_generator.state = st["rng"]
        self.queues = {int(c): list(q) for c, q in st["queues"].items()}


def batch_tensors(packed: Packed, idx: np.ndarray):
    """(images float (B,3,S,S) 0..255, masks float (B,1,S,S) 0..1, sizes (B,2), channels (B,))."""
    img = torch.from_numpy(packed.images[idx]).permute(0, 3, 1, 2).float()
    msk = torch.from_numpy(packed.masks[idx]).unsqueeze(1).float() / 255.0
    return img, msk, torch.from_numpy(packed.sizes[idx]), torch.from_numpy(packed.channels[idx])


# ---------------------------------------------------------------- validation

@torch.no_grad()
def evaluate(model: ESPMedSAM, packed: Packed, batch: int = 8, teacher: Optional[ESPMedSAM] = None,
             device: str = "cpu") -> Dict:
    """Letterbox figures at the model's resolution, inside each sample's content region (quick; the
    distillation mode's check, and a cross-check of ``evaluate_sources``): per channel mean Dice
    and IoU of (logit >= 0) against (soft mask >= 0.5); ``score`` is the mean over channels. With a
    teacher: ``mse`` of the embeddings, score = -mse."""
    was = model.training
    model.eval()
    per: Dict[int, List] = {}
    mse_sum, n_mse = 0.0, 0
    for start in range(0, len(packed), batch):
        idx = np.arange(start, min(start + batch, len(packed)))
        img, msk, sizes, chans = batch_tensors(packed, idx)
        img, msk, chans = img.to(device), msk.to(device), chans.to(device)
        if teacher is not None:
            mse_sum += float(distill_loss(model, teacher, img)) * len(idx)
            n_mse += len(idx)
            continue
        logits = model(img, chans)
        for j in range(len(idx)):
            w, h = int(sizes[j, 0]), int(sizes[j, 1])
            p = logits[j, 0, :h, :w] >= 0
            t = msk[j, 0, :h, :w] >= 0.5
            inter = float((p & t).sum())
            ps, ts = float(p.sum()), float(t.sum())
            dice = 1.0 if ps + ts == 0 else 2 * inter / (ps + ts)
            iou = 1.0 if ps + ts == 0 else inter / (ps + ts - inter)
            per.setdefault(int(chans[j]), []).append((dice, iou))
    model.train(was)
    if teacher is not None:
        mse = mse_sum / max(n_mse, 1)
        return {"mse": mse, "score": -mse, "n": n_mse}
    chans = {c: {"n": len(v), "dice": float(np.mean([d for d, _ in v])), "iou": float(np.mean([i for _, i in v]))}
             for c, v in sorted(per.items())}
    score = float(np.mean([v["dice"] for v in chans.values()])) if chans else 0.0
    return {"score": score, "channels": chans, "n": len(packed)}


def mode_name(spec: infer.ChannelInput) -> str:
    return "letterbox" if spec.mode == "letterbox" else f"tiles:{spec.long_side}:{spec.stride}"


def channel_modes(tiles: Dict[int, Tuple[int, int, float]], size: int) -> Dict[int, List[infer.ChannelInput]]:
    """The input modes validation tries per channel: tiles only where every training sample of the
    channel is a tile, both where the channel trains on a mix, else letterbox."""
    out = {}
    for c in range(6):
        if c in tiles:
            long_side, stride, p = tiles[c]
            t = infer.tiles(long_side, size, stride)
            out[c] = [t] if p >= 1.0 else [infer.LETTERBOX, t]
        else:
            out[c] = [infer.LETTERBOX]
    return out


def tta_flips(channel: int) -> Tuple[str, ...]:
    """The test-time flip validation tries: left-right where the channel's augmentation allows it
    (chest X-ray has none)."""
    return ("h",) if POLICIES.get(channel, Policy()).hflip > 0 else ()


def _mean(v):
    return float(np.mean(v)) if v else 0.0


@torch.no_grad()
def evaluate_sources(model: ESPMedSAM, sources: Sources, modes: Dict[int, List[infer.ChannelInput]],
                     tta: bool = True, batch: int = 9, device: str = "cpu") -> Dict:
    """espnode-eval-equivalent validation: each image through the reference inference
    (infer.predict: the node's resizing, letterbox or blended tiles, logits resized to the source,
    threshold 0), Dice and IoU at the source size against the mask, averaged per dataset and per
    channel. Every mode of ``modes`` is scored, with and without the channel's test-time flip;
    a channel's ``dice`` is its best mode without flips (``mode``), and ``score`` the mean of those
    over channels (each channel counted once)."""
    run = infer.TorchRunner(model, batch, device)
    size = model.cfg.img_size
    per: Dict[int, Dict[str, Dict[str, List]]] = {}
    for row, (img, mask) in zip(sources.rows, sources.items):
        c = row["channel"]
        flips = tta_flips(c) if tta else ()
        for spec in modes.get(c, [infer.LETTERBOX]):
            variants = [()] + ([flips] if flips else [])
            preds = infer.predict_many(img, c, run, size, spec, variants)
            slot = per.setdefault(c, {}).setdefault(mode_name(spec), {})
            for v, pr in zip(variants, preds):
                d, i = infer.dice_iou(pr.mask, mask)
                key = "" if not v else "+" + "".join(v)
                slot.setdefault("dice" + key, []).append(d)
                slot.setdefault("iou" + key, []).append(i)
                slot.setdefault("ds" + key, []).append((row["dataset"], d))
    chans = {}
    for c, by_mode in sorted(per.items()):
        entry = {"n": len(next(iter(by_mode.values()))["dice"]), "modes": {}}
        for name, slot in by_mode.items():
            m = {k: round(_mean(v), 5) for k, v in slot.items() if not k.startswith("ds")}
            for k in [k for k in slot if k.startswith("ds")]:
                sfx = k[2:]
                by_ds: Dict[str, List[float]] = {}
                for ds, d in slot[k]:
                    by_ds.setdefault(ds, []).append(d)
                m["datasets" + sfx] = {ds: round(_mean(v), 5) for ds, v in sorted(by_ds.items())}
            entry["modes"][name] = m
        best = max(entry["modes"], key=lambda k: entry["modes"][k]["dice"])
        entry.update(mode=best, dice=entry["modes"][best]["dice"], iou=entry["modes"][best]["iou"])
        chans[c] = entry
    score = _mean([v["dice"] for v in chans.values()])
    return {"score": score, "channels": chans, "n": len(sources)}


# ---------------------------------------------------------------- training

def lr_at(progress: float, step: int, base: float, warmup: int, floor: float = 0.02) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``floor * base`` at progress 1."""
    w = min(1.0, (step + 1) / max(1, warmup))
    c = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return base * w * c


def per_dataset_counts(rows: Sequence[Dict]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for r in rows:
        k = f"{r['modality']}/{r['dataset']}"
        out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items()))


def parse_tiles(specs: Sequence[str]) -> Dict[int, Tuple[int, int, float]]:
    """``--tiles CHANNEL=LONG_SIDE:STRIDE[@P]`` -> {channel index: (long side, stride, P)}: P is the
    share of the channel's training samples drawn as native-resolution crops (1: all)."""
    idx = channel_indices()
    out = {}
    for s in specs or ():
        name, rest = s.split("=", 1)
        p = 1.0
        if "@" in rest:
            rest, ps = rest.split("@", 1)
            p = float(ps)
        long_side, stride = (int(x) for x in rest.split(":"))
        c = int(name) if name.isdigit() else idx[name]
        if not 0 < p <= 1 or long_side < 0 or stride <= 0:
            raise ValueError(f"--tiles {s!r}")
        out[c] = (long_side, stride, p)
    return out


def blas_in_use() -> str:
    """Which BLAS library this process mapped (Debian's torch uses the system libblas.so.3)."""
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return "unknown"
    return "openblas" if "openblas" in maps else "reference" if "libblas.so" in maps else "other"


def make_batch(idx: np.ndarray, tr: Packed, tiled: Optional[Tiled], tiles: Dict[int, Tuple[int, int, float]],
               size: int, gen: torch.Generator, do_augment: bool = True):
    """One training batch: each sample of a tiled channel is, with its channel's P, a random
    native-resolution crop of its working-size image (augment.random_crop), else the letterboxed
    sample (augment.augment); photometric changes for both. Returns (images, masks, channels,
    number of crops)."""
    chans = tr.channels[idx]
    crop_pos = []
    for j, i in enumerate(idx):
        c = int(chans[j])
        if tiled is not None and c in tiles and int(i) in tiled.slot:
            if tiles[c][2] >= 1.0 or float(torch.rand((), generator=gen)) < tiles[c][2]:
                crop_pos.append(j)
    lb = np.array([j for j in range(len(idx)) if j not in set(crop_pos)], np.int64)
    imgs, msks, chs = [], [], []
    if len(lb):
        img, msk, sizes, ch = batch_tensors(tr, idx[lb])
        if do_augment:
            img, msk = augment(img, msk, sizes, ch, gen)
        imgs.append(img)
        msks.append(msk)
        chs.append(ch)
    if crop_pos:
        ci, cm, ck, cc = [], [], [], []
        for j in crop_pos:
            k = tiled.slot[int(idx[j])]
            im = torch.from_numpy(tiled.images[k]).permute(2, 0, 1).float()
            mk = torch.from_numpy(tiled.masks[k]).unsqueeze(0).float() / 255.0
            a, b, v = random_crop(im, mk, size, int(chans[j]), gen)
            ci.append(a)
            cm.append(b)
            ck.append(v)
            cc.append(int(chans[j]))
        ch = torch.tensor(cc, dtype=torch.int64)
        img = torch.stack(ci)
        if do_augment:
            img = photometric(img, torch.stack(ck), ch, gen)
        imgs.append(img)
        msks.append(torch.stack(cm))
        chs.append(ch)
    return torch.cat(imgs), torch.cat(msks), torch.cat(chs), len(crop_pos)


def train(args) -> Dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    rows = select(args.data, "train")
    if args.limit:
        keep, seen = [], {}
        for r in rows:
            k = (r["modality"], r["dataset"])
            if seen.get(k, 0) < args.limit:
                keep.append(r)
                seen[k] = seen.get(k, 0) + 1
        rows = keep
    if args.channels:
        want = {int(c) if c.isdigit() else channel_indices()[c] for c in args.channels.split(",")}
        rows = [r for r in rows if r["channel"] in want]
    train_rows, val_rows = split_validation(rows, args.val_every)
    if not train_rows:
        raise ValueError("no training rows")
    tiles = parse_tiles(args.tiles)
    thin = {int(c) if c.isdigit() else channel_indices()[c] for c in args.thin_channels.split(",") if c}
    cache = args.cache if args.cache else None
    t0 = time.time()
    tr = Packed.load_or_build(args.data, train_rows, args.size, cache and cache + f"-train-s{args.size}.npz")
    long_sides = {c: v[0] for c, v in tiles.items()}
    tiled = Tiled.load_or_build(args.data, train_rows, long_sides,
                                cache and cache + "-tiled-" + "-".join(f"{c}x{l}" for c, l in sorted(long_sides.items()))
                                + ".npz") if tiles else None
    va = Sources(args.data, val_rows) if val_rows and args.mode == "seg" else None
    va_packed = Packed.load_or_build(args.data, val_rows, args.size, cache and cache + f"-val-s{args.size}.npz") \
        if val_rows and args.mode == "distill" else None
    pack_s = time.time() - t0
    modes = channel_modes(tiles, args.size)

    dev = torch.device(args.device)
    model = build_model(args.widths, args.size, args.normalization).train()
    use_safe_gelu(model)
    init = "random"
    if args.init:
        model.load_state_dict(extract_state_dict(torch.load(args.init, map_location="cpu")), strict=True)
        init = {"file": os.path.basename(args.init), "sha256": sha256_file(args.init)}
    teacher = None
    if args.mode == "distill":
        if not args.teacher:
            raise ValueError("--mode distill needs --teacher CKPT")
        teacher = build_model(args.teacher_widths, args.teacher_size or args.size, args.normalization).eval()
        teacher.load_state_dict(extract_state_dict(torch.load(args.teacher, map_location="cpu")), strict=True)
        for p in teacher.parameters():
            p.requires_grad_(False)
        teacher.to(dev)
        params = med_only(model)
    else:
        params = [p for p in model.parameters() if p.requires_grad]
    model.to(dev)
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)

    steps_per_epoch = max(1, math.ceil(len(tr) / args.batch))
    total_steps = max(1, int(args.epochs * steps_per_epoch))
    budget_s = args.max_minutes * 60.0 if args.max_minutes else float("inf")
    sampler = MixedSampler(tr.channels, args.batch, args.alpha, args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)
    step, elapsed0, best, history, skipped, crops = 0, 0.0, -float("inf"), [], 0, 0
    train_s0, sessions = 0.0, []
    last_path, best_path = os.path.join(args.out, "last.pth"), os.path.join(args.out, "best.pth")
    if args.resume and os.path.isfile(last_path):
        st = torch.load(last_path, map_location="cpu")  # the optimiser state follows its parameters
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, elapsed0, best, history = st["step"], st["elapsed"], st["best"], st["history"]
        skipped, crops = st.get("skipped", 0), st.get("crops", 0)
        train_s0, sessions = st.get("train_seconds", 0.0), st.get("sessions", [])
        sampler.restore(st["sampler"])
        gen.set_state(st["gen"])
    if teacher is not None:
        for m in model.modules():  # frozen encoder: BatchNorm statistics stay as loaded
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()
    session = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "from_step": step, "blas": blas_in_use(),
               "threads": args.threads, "torch": torch.__version__}
    sessions.append(session)

    start = time.time()
    last_val = time.time()
    run_loss: Dict[str, float] = {}
    train_s = 0.0  # seconds spent in optimisation steps in this session (throughput)
    log = open(os.path.join(args.out, "log.jsonl"), "a")
    stop_file = os.path.join(args.out, "STOP")

    def elapsed():
        return elapsed0 + time.time() - start

    def progress():
        return max(step / total_steps, elapsed() / budget_s)

    def save_last():
        session.update(to_step=step, train_seconds=round(train_s, 1),
                       steps_per_s=round((step - session["from_step"]) / train_s, 4) if train_s else None)
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed(),
                    "best": best, "history": history, "sampler": sampler.state(), "gen": gen.get_state(),
                    "skipped": skipped, "crops": crops, "train_seconds": train_s0 + train_s,
                    "sessions": sessions}, last_path + ".tmp")
        os.replace(last_path + ".tmp", last_path)

    def validate():
        nonlocal best, last_val
        if args.mode == "distill":
            res = evaluate(model, va_packed, args.batch, teacher, args.device) if va_packed is not None else \
                {"score": -float(run_loss.get("loss", 0))}
        elif va is not None:
            res = evaluate_sources(model, va, modes, not args.no_tta_eval, device=args.device)
        else:
            res = {"score": -float(run_loss.get("loss", 0))}
        entry = {"step": step, "epoch": round(step * args.batch / len(tr), 3), "minutes": round(elapsed() / 60, 2),
                 "lr": opt.param_groups[0]["lr"], "train": {k: round(v, 4) for k, v in run_loss.items()},
                 "skipped_steps": skipped, "val": res}
        improved = res["score"] > best
        if improved:
            best = res["score"]
            torch.save(model.state_dict(), best_path + ".tmp")
            os.replace(best_path + ".tmp", best_path)
        entry["best"] = improved
        history.append(entry)
        log.write(json.dumps(entry) + "\n")
        log.flush()
        save_last()
        if args.mode == "seg" or va_packed is not None:
            write_summary("running")
        if not args.quiet:
            short = {str(c): (v["dice"], v["mode"]) for c, v in res.get("channels", {}).items()}
            print(json.dumps({"step": step, "minutes": entry["minutes"], "score": round(res["score"], 4),
                              "best": improved, "channels": short}), flush=True)
        last_val = time.time()

    def write_summary(status: str) -> Dict:
        """The run's record so far (``status`` running or finished): summary.json and ``--record``."""
        best_entry = max((h for h in history), key=lambda h: h["val"]["score"])
        summary = {
            "status": status, "mode": args.mode,
            "model": {"widths": args.widths, "size": args.size, "normalization": args.normalization,
                      "config": model.cfg.to_dict(), "parameters": count_parameters(model),
                      "trainable_parameters": sum(p.numel() for p in params)},
            "data": {"root": os.path.relpath(os.path.abspath(args.data), REPO_ROOT) + " (relative to the repository root)",
                     "manifest_sha256": manifest_sha256(rows), "rows": len(rows),
                     "manifest_rows_hashed": "train rows used (training and validation slice), sorted raw MANIFEST.csv lines",
                     "excluded": {f"{m}/{d}": why for (m, d), why in EXCLUDED.items()},
                     "train": per_dataset_counts(train_rows), "validation": per_dataset_counts(val_rows),
                     "validation_rule": validation_rule(args.val_every),
                     "test_split": "never read"},
            "training": {k: getattr(args, k) for k in ("batch", "lr", "weight_decay", "warmup", "epochs", "max_minutes",
                                                         "alpha", "patch_weight", "clip", "seed", "threads", "val_minutes",
                                                         "checkpoint_every", "thin_loss", "thin_weight", "cldice_iters")}
            | {"optimizer": "AdamW", "schedule": "linear warm-up, cosine to 2% over min(epochs, max-minutes)",
               "losses": ("mask: BCE + Dice; SPPG patch: BCE vs 32x32 max-pooled mask"
                          + (f"; soft clDice ({args.cldice_iters} iterations, weight {args.thin_weight}) on channels "
                             f"{sorted(thin)}" if args.thin_loss == "cldice" else "")) if args.mode == "seg"
               else "MSE of image embeddings vs teacher; only 'med' parameters trainable",
               "augment": "per modality, espmedsam/augment.py POLICIES" if not args.no_augment else "none",
               "sampler": f"mixed-modality batches, channel probability ~ count^{args.alpha}",
               "tiles": {str(c): {"long_side": l, "stride": s, "crop_share": p} for c, (l, s, p) in sorted(tiles.items())},
               "crops_drawn": crops,
               "init": init,
               "validation": "espnode-eval-equivalent (espmedsam.infer.predict at the source size), every input mode "
                             "a channel trains on, with and without its test-time flip"},
            "steps": step, "skipped_steps": skipped, "epochs_done": round(step * args.batch / len(tr), 2),
            "minutes": round(elapsed() / 60, 2), "pack_seconds": round(pack_s, 1),
            "throughput": {"steps_per_s": round(step / max(train_s0 + train_s, 1e-9), 4),
                           "note": "optimisation steps (batch, augmentation, forward, backward, AdamW) per second of "
                                   "step time, validation excluded", "sessions": sessions},
            "best": {"step": best_entry["step"], "epoch": best_entry["epoch"], "val": best_entry["val"]},
            "final": history[-1]["val"],
            "history": [{"step": h["step"], "minutes": h["minutes"], "score": round(h["val"]["score"], 5),
                         "channels": {str(c): round(v["dice"], 5) for c, v in h["val"].get("channels", {}).items()}}
                        for h in history],
            "host": {"torch": torch.__version__, "python": platform.python_version(), "device": args.device,
                     "cpus": os.cpu_count(), "blas": blas_in_use()},
        }
        if args.mode == "seg" and "channels" in best_entry["val"]:
            summary["inputs"] = choose_inputs(best_entry["val"], tiles, args.size)
        if args.mode == "distill":
            summary["teacher"] = {"checkpoint": os.path.basename(args.teacher), "widths": args.teacher_widths}
        with open(os.path.join(args.out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        if args.record:
            os.makedirs(os.path.dirname(os.path.abspath(args.record)), exist_ok=True)
            with open(args.record, "w") as f:
                json.dump(summary, f, indent=1)
                f.write("\n")
        return summary

    while progress() < 1.0 and not os.path.exists(stop_file):
        t_step = time.time()
        idx = next(sampler)
        if args.mode == "seg":
            img, msk, chans, nc = make_batch(idx, tr, tiled, tiles, args.size, gen, not args.no_augment)
            crops += nc
        else:
            img, msk, _, chans = batch_tensors(tr, idx)
        img, msk, chans = img.to(dev), msk.to(dev), chans.to(dev)
        lr = lr_at(progress(), step, args.lr, args.warmup)
        for gr in opt.param_groups:
            gr["lr"] = lr
        if teacher is not None:
            loss = distill_loss(model, teacher, img)
            parts = {"loss": loss}
        else:
            logits, patch_logits = model.forward_with_patch(img, chans)
            parts = seg_losses(logits, patch_logits, msk, args.patch_weight)
            if args.thin_loss == "cldice" and thin:
                sel = torch.tensor([int(c) in thin for c in chans.tolist()], device=chans.device)
                if bool(sel.any()):
                    parts["cldice"] = cldice_loss(logits[sel], msk[sel], args.cldice_iters)
                    parts["loss"] = parts["loss"] + args.thin_weight * parts["cldice"] * float(sel.float().mean())
            loss = parts["loss"]
        opt.zero_grad(set_to_none=True)
        step += 1
        if not torch.isfinite(loss):
            skipped += 1  # a non-finite loss never reaches the weights
            continue
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, args.clip if args.clip else float("inf"))
        if not torch.isfinite(norm):
            skipped += 1
            opt.zero_grad(set_to_none=True)
            continue
        opt.step()
        train_s += time.time() - t_step
        for k, v in parts.items():
            run_loss[k] = 0.9 * run_loss.get(k, float(v)) + 0.1 * float(v)
        if args.log_every and step % args.log_every == 0 and not args.quiet:
            print(f"step {step} epoch {step * args.batch / len(tr):.2f} min {elapsed() / 60:.1f} lr {lr:.2e} "
                  f"steps/s {(step - session['from_step']) / max(train_s, 1e-9):.3f} skipped {skipped} "
                  + " ".join(f"{k} {v:.4f}" for k, v in run_loss.items()), flush=True)
        if args.checkpoint_every and step % args.checkpoint_every == 0:
            save_last()
        if args.val_minutes and time.time() - last_val >= args.val_minutes * 60 and progress() < 1.0:
            validate()
    validate()
    log.close()

    summary = write_summary("finished")
    return summary


def choose_inputs(val: Dict, tiles: Dict[int, Tuple[int, int, float]], size: int,
                  tuning: Optional[Dict[str, Dict]] = None) -> Dict[str, Dict]:
    """Per channel (by name), the input the validation supports: the best mode (tiles over letterbox
    only by ``TILES_MIN_GAIN``), tiles at the working size ``tuning`` chose (``tuned_geometry``) or
    else the training one, and its test-time flip only where it raised validation Dice by at
    least ``TTA_MIN_GAIN`` and the speed budget (``MAX_INPUTS``; fundus ``MAX_INPUTS_TILED_FUNDUS``) allows it;
    each with the figures that decided it."""
    names = {v: k for k, v in channel_indices().items()}
    tuning = tuning or {}
    out = {}
    for c, ch in val["channels"].items():
        c = int(c)
        mode = ch["mode"]
        if mode != "letterbox" and "letterbox" in ch["modes"] and \
                ch["modes"][mode]["dice"] - ch["modes"]["letterbox"]["dice"] < TILES_MIN_GAIN:
            mode = "letterbox"  # tiles cost several inputs an image: only for a clear gain
        m = ch["modes"][mode]
        if mode == "letterbox":
            spec = infer.LETTERBOX
        else:
            long_side, stride, _ = tiles[c]
            spec = infer.tiles(long_side, size, stride)
        tuned = None
        # a sweep run from another training geometry belongs to another run: ignored
        if spec.mode == "tiles" and tuning.get(names[c], {}).get("trained") == mode_name(spec):
            spec, tuned = tuned_geometry(tuning[names[c]], c, size)
        flips = tta_flips(c)
        key = "dice+" + "".join(flips) if flips else None
        gain = m.get(key, -1.0) - m["dice"] if key else None
        budget = MAX_INPUTS_BY_CHANNEL.get(c, MAX_INPUTS)
        fits = worst_case_inputs(spec, size) * (1 + len(flips)) <= budget
        why = None
        if gain is not None and gain >= TTA_MIN_GAIN and fits:
            spec = infer.ChannelInput(**{**spec.__dict__, "flips": flips})
        elif gain is not None and gain >= TTA_MIN_GAIN:
            why = (f"flip gained {gain:.4f} Dice but {worst_case_inputs(spec, size) * (1 + len(flips))} model inputs "
                   f"exceed the budget of {budget}")
        out[names[c]] = {"input": spec.to_json(), "dice": m["dice"], "dice_with_flip": m.get(key) if key else None,
                         "modes": {k: v["dice"] for k, v in ch["modes"].items()},
                         "model_inputs_worst_case": worst_case_inputs(spec, size) * (1 + len(spec.flips))}
        if why:
            out[names[c]]["flip_not_kept"] = why
        if tuned:
            out[names[c]]["geometry"] = tuned
    return out


def tuned_geometry(entry: Dict, channel: int, size: int) -> Tuple[infer.ChannelInput, str]:
    """The tiles a ``tune`` entry supports, and why: the geometry with the best validation Dice
    among those within the channel's input budget, if it beats the training geometry (scored in
    the same sweep) by ``GEOMETRY_MIN_GAIN``; else the training geometry."""
    geos = entry["geometries"]
    trained = geos[entry["trained"]]
    budget = MAX_INPUTS_BY_CHANNEL.get(channel, MAX_INPUTS)
    fits = {k: g for k, g in geos.items() if g["model_inputs_worst_case"] <= budget}
    best = max(fits, key=lambda k: fits[k]["dice"], default=entry["trained"])
    if geos[best]["dice"] - trained["dice"] < GEOMETRY_MIN_GAIN:
        g, why = trained, (f"the training geometry {entry['trained']}: no other within {budget} inputs beat it "
                           f"by {GEOMETRY_MIN_GAIN}")
    else:
        g, why = geos[best], (f"{best} over the training geometry {entry['trained']}: "
                              f"validation Dice {geos[best]['dice']:.4f} against {trained['dice']:.4f}, "
                              f"{geos[best]['model_inputs_worst_case']} inputs at most (budget {budget})")
    return infer.tiles(g["long_side"], size, g["stride"]), why


TTA_MIN_GAIN = 0.005  # a flip doubles the inference time: keep it only for a clear gain
TILES_MIN_GAIN = 0.01  # where a channel trains both ways, tiles (4 or more inputs) must beat letterbox by this
# a working size other than the one the channel trained at must beat it by this on validation (espmedsam.tune):
# a tiled channel's validation slice is small (17 fundus images)
GEOMETRY_MIN_GAIN = 0.005
# Speed budget (issue 15): 100 ms an image, 300 ms a tiled fundus image, through the Go runtime on
# two cores; one compact-256 input costs about 25 ms batched there (load about 1).
MAX_INPUTS = 4
MAX_INPUTS_TILED_FUNDUS = 12
MAX_INPUTS_BY_CHANNEL = {3: MAX_INPUTS_TILED_FUNDUS}  # the fundus channel (index 3) has the 300 ms budget


def inputs_from_record(record: Dict) -> Dict[str, Dict]:
    """The record's input choice, recomputed from its best validation with this code's rules (so
    that a record written by an older trainer is judged by today's budget)."""
    tiles = {int(c): (v["long_side"], v["stride"], v["crop_share"])
             for c, v in record.get("training", {}).get("tiles", {}).items()}
    return choose_inputs(record["best"]["val"], tiles, record["model"]["size"], record.get("tuning"))


def worst_case_inputs(spec: infer.ChannelInput, size: int) -> int:
    """Model inputs for a square image of the channel (the most tiles its working size gives)."""
    if spec.mode != "tiles":
        return 1
    side = spec.long_side or size
    return len(infer.tile_positions(side, size, spec.stride)) ** 2


def parser():
    ap = argparse.ArgumentParser(prog="python3 -m espmedsam.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the seg2d folder (MANIFEST.csv)")
    ap.add_argument("--out", required=True, help="run folder: last.pth, best.pth, log.jsonl, summary.json")
    ap.add_argument("--mode", choices=["seg", "distill"], default="seg")
    ap.add_argument("--widths", default="compact", choices=sorted(PRESETS))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--normalization", default=DEFAULT_NORMALIZATION, choices=sorted(NORMALIZATIONS))
    ap.add_argument("--init", help="start from this checkpoint (strict)")
    ap.add_argument("--teacher", help="distill: teacher checkpoint")
    ap.add_argument("--teacher-widths", default="published", choices=sorted(PRESETS))
    ap.add_argument("--teacher-size", type=int, default=0, help="default: --size")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--warmup", type=int, default=50, help="warm-up steps")
    ap.add_argument("--epochs", type=float, default=100.0)
    ap.add_argument("--max-minutes", type=float, default=0.0, help="time budget over all sessions (0: none)")
    ap.add_argument("--val-minutes", type=float, default=10.0, help="validate (and checkpoint) this often")
    ap.add_argument("--checkpoint-every", type=int, default=0, help="also write OUT/last.pth every N steps")
    ap.add_argument("--val-every", type=int, default=10, help="every n-th train item per dataset validates")
    ap.add_argument("--no-tta-eval", action="store_true", help="validate without the test-time-flip variant")
    ap.add_argument("--tiles", action="append", default=[], metavar="CHANNEL=LONG_SIDE:STRIDE[@P]",
                    help="train CHANNEL on random native-resolution crops of its image resized to LONG_SIDE "
                         "(0: source size), a share P of its samples (default 1), and validate it tiled "
                         "(and letterboxed too when P < 1); repeatable")
    ap.add_argument("--thin-loss", choices=["none", "cldice"], default="none")
    ap.add_argument("--thin-weight", type=float, default=1.0)
    ap.add_argument("--thin-channels", default="fundus", help="channels the thin-structure loss applies to")
    ap.add_argument("--cldice-iters", type=int, default=5)
    ap.add_argument("--alpha", type=float, default=0.5, help="channel sampling exponent")
    ap.add_argument("--patch-weight", type=float, default=1.0)
    ap.add_argument("--clip", type=float, default=1.0, help="gradient norm clip (0: none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on shared cores, 2 OpenMP threads ran 4-10x slower here)")
    ap.add_argument("--cache", help="prefix of packed-data cache files (.npz; never commit them)")
    ap.add_argument("--limit", type=int, default=0, help="at most this many train rows per dataset (tests)")
    ap.add_argument("--channels", help="comma-separated channel indices or names to train on (default all)")
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last.pth")
    ap.add_argument("--record", help="write the run's configuration and figures to this JSON file")
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--quiet", action="store_true")
    return ap


def main(argv=None):
    args = parser().parse_args(argv)
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
