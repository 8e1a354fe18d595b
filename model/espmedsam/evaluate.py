"""Score a trained checkpoint the way ``espnode eval`` does, and measure its plausibility statistics.

    cd model
    # plausibility bounds from the TRAIN split (training rows and validation slice), into the record
    /usr/bin/python3 -m espmedsam.evaluate --run runs/long --record training/compact-s256-tiles.json \
        --split train --write-plausibility
    # the final figures on the TEST split: Dice/IoU per dataset and channel, and the share of test
    # images the plausibility rule would withhold (report only: nothing is chosen from them)
    /usr/bin/python3 -m espmedsam.evaluate --run runs/long --record training/compact-s256-tiles.json \
        --split test --json runs/long/test.json

Each image goes through the reference inference (``infer.predict``) with its channel's input mode
from the record (``inputs``: the modes validation chose); Dice and IoU are computed at the source
size against the mask (> 127), averaged per dataset, per channel and over all images, as
cmd/espnode eval does. fundus/drishti-gs1 (optic disc) is not scored, as in eval.

Plausibility (``espnode.plausibility``): per channel, the predicted foreground fraction (share of
source pixels with logit >= threshold) and the SPPG patch confidence (the largest patch
probability over every model input run for the image); measured over the train split with the
trained model. The rule the node applies: an instance is implausible when its foreground fraction
is outside [fg_fraction.lo, fg_fraction.hi] or its patch confidence is below patch_max.lo.
"""

import argparse
import json
import math
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from . import infer
from .data import channel_indices, load_source, select
from .export import extract_state_dict
from .model import build_model

# bounds: the 0.5 and 99.5 percentiles widened by these margins (the train split is small: a few
# dozen images for some channels, so the raw percentiles are nearly the extremes seen)
FG_LO_FACTOR = 0.5  # lo = FG_LO_FACTOR * min(pred p0.5, reference p0.5)
FG_HI_FACTOR = 1.5  # hi = min(1, FG_HI_FACTOR * max(pred p99.5, reference p99.5))
PATCH_LOGIT_MARGIN = 2.0  # lo = sigmoid(logit(p0.5) - margin)


def load_run_model(run: str, record: Dict, checkpoint: str = "best.pth"):
    m = record["model"]
    model = build_model(m["widths"], m["size"], m["normalization"]).eval()
    model.load_state_dict(extract_state_dict(torch.load(os.path.join(run, checkpoint), map_location="cpu")),
                          strict=True)
    return model


def record_inputs(record: Dict, size: int) -> Dict[int, infer.ChannelInput]:
    """Channel index -> input spec chosen from the record's best validation (train.inputs_from_record;
    a channel without one: letterbox)."""
    from .train import inputs_from_record

    idx = channel_indices()
    chosen = inputs_from_record(record) if "channels" in record.get("best", {}).get("val", {}) else {}
    return {idx[name]: infer.ChannelInput.from_json(v["input"], size) for name, v in chosen.items()}


def measure(model, root: str, rows: Sequence[Dict], inputs: Dict[int, infer.ChannelInput],
            threshold: float = 0.0, batch: int = 9, progress: bool = False) -> List[Dict]:
    """Per image: channel, dataset, Dice, IoU, predicted and reference foreground fractions, patch
    confidence, model inputs run."""
    run = infer.TorchRunner(model, batch)
    size = model.cfg.img_size
    out = []
    t0 = time.time()
    for k, r in enumerate(rows):
        img, mask = load_source(root, r)
        spec = inputs.get(r["channel"], infer.LETTERBOX)
        pr = infer.predict(img, r["channel"], run, size, spec, threshold)
        d, i = infer.dice_iou(pr.mask, mask)
        out.append({"channel": r["channel"], "dataset": r["dataset"], "image": r["image"], "dice": d, "iou": i,
                    "fg_pred": pr.fg_fraction, "fg_ref": float(mask.mean()), "patch_max": pr.patch_max,
                    "inputs": pr.inputs})
        if progress and (k + 1) % 100 == 0:
            print(f"{k + 1}/{len(rows)} images, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return out


def _logit(p: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return math.log(p / (1 - p))


def plausibility(per_image: Sequence[Dict], measured_on: str) -> Dict:
    """Statistics and bounds per channel (by name) from ``measure`` results."""
    names = {v: k for k, v in channel_indices().items()}
    chans = {}
    for c in sorted({m["channel"] for m in per_image}):
        ms = [m for m in per_image if m["channel"] == c]
        fp = np.array([m["fg_pred"] for m in ms])
        fr = np.array([m["fg_ref"] for m in ms])
        q = lambda a, p: float(np.percentile(a, p))  # noqa: E731
        entry = {"n": len(ms), "fg_fraction": {
            "pred_p0_5": q(fp, 0.5), "pred_p50": q(fp, 50), "pred_p99_5": q(fp, 99.5),
            "ref_p0_5": q(fr, 0.5), "ref_p50": q(fr, 50), "ref_p99_5": q(fr, 99.5)}}
        f = entry["fg_fraction"]
        f["lo"] = FG_LO_FACTOR * min(f["pred_p0_5"], f["ref_p0_5"])
        f["hi"] = min(1.0, FG_HI_FACTOR * max(f["pred_p99_5"], f["ref_p99_5"]))
        pm = np.array([m["patch_max"] for m in ms if m["patch_max"] is not None])
        if len(pm):
            p05 = q(pm, 0.5)
            entry["patch_max"] = {"p0_5": p05, "p50": q(pm, 50),
                                  "lo": 1.0 / (1.0 + math.exp(-(_logit(p05) - PATCH_LOGIT_MARGIN)))}
        chans[names[c]] = {k: ({kk: round(vv, 6) for kk, vv in v.items()} if isinstance(v, dict) else v)
                           for k, v in entry.items()}
    return {"version": 1, "measured_on": measured_on,
            "rule": "implausible when fg_fraction < fg_fraction.lo or > fg_fraction.hi, or patch_max < patch_max.lo",
            "bounds": f"fg_fraction lo = {FG_LO_FACTOR} x min(pred, ref) p0.5, hi = min(1, {FG_HI_FACTOR} x "
                      f"max(pred, ref) p99.5); patch_max lo = sigmoid(logit(p0.5) - {PATCH_LOGIT_MARGIN})",
            "channels": chans}


def implausible(m: Dict, bounds: Dict) -> Optional[str]:
    """Why the rule would withhold this image's SEG, or None."""
    f = bounds.get("fg_fraction")
    if f and not f["lo"] <= m["fg_pred"] <= f["hi"]:
        return "fg_fraction"
    p = bounds.get("patch_max")
    if p and m["patch_max"] is not None and m["patch_max"] < p["lo"]:
        return "patch_max"
    return None


def summarise(per_image: Sequence[Dict], plaus: Optional[Dict] = None) -> Dict:
    """espnode eval's table (per dataset, per channel, all) plus the reject share per channel."""
    names = {v: k for k, v in channel_indices().items()}
    rows = []
    groups: Dict = {}
    for m in per_image:
        groups.setdefault((names[m["channel"]], m["dataset"]), []).append(m)
    for ch in sorted({k[0] for k in groups}, key=lambda n: channel_indices()[n]):
        all_ms = []
        for (c, ds), ms in sorted(groups.items()):
            if c != ch:
                continue
            all_ms += ms
            rows.append({"channel": c, "dataset": ds, "n": len(ms), "dice": float(np.mean([m["dice"] for m in ms])),
                         "iou": float(np.mean([m["iou"] for m in ms]))})
        row = {"channel": ch, "dataset": "(all)", "n": len(all_ms),
               "dice": float(np.mean([m["dice"] for m in all_ms])), "iou": float(np.mean([m["iou"] for m in all_ms]))}
        if plaus and ch in plaus["channels"]:
            why = [implausible(m, plaus["channels"][ch]) for m in all_ms]
            row["rejected"] = sum(w is not None for w in why)
            row["reject_share"] = row["rejected"] / len(all_ms)
            row["rejected_by"] = {k: why.count(k) for k in ("fg_fraction", "patch_max") if why.count(k)}
        rows.append(row)
    rows.append({"channel": "(all)", "dataset": "(all)", "n": len(per_image),
                 "dice": float(np.mean([m["dice"] for m in per_image])),
                 "iou": float(np.mean([m["iou"] for m in per_image]))})
    return {"rows": rows}


def add_run_arguments(ap: argparse.ArgumentParser, record_help: str) -> None:
    """The arguments of a command that loads a run's checkpoint and updates its record."""
    ap.add_argument("--run", required=True, help="training run folder (best.pth)")
    ap.add_argument("--record", required=True, help=record_help)
    ap.add_argument("--checkpoint", default="best.pth", help="file in the run folder")
    ap.add_argument("--data", default=None, help="seg2d folder (default: ../shared/data/seg2d beside the checkout)")
    ap.add_argument("--threads", type=int, default=1)


def open_run(a: argparse.Namespace):
    """(seg2d folder, record, model) of add_run_arguments' arguments; sets torch's threads."""
    from .channels import REPO_ROOT

    torch.set_num_threads(a.threads)
    with open(a.record) as f:
        rec = json.load(f)
    return a.data or os.path.join(REPO_ROOT, "..", "shared", "data", "seg2d"), rec, load_run_model(a.run, rec, a.checkpoint)


def write_record(path: str, rec: Dict) -> None:
    """Replace the record at path (written beside it first, so a crash leaves the old one)."""
    with open(path + ".tmp", "w") as f:
        json.dump(rec, f, indent=1)
        f.write("\n")
    os.replace(path + ".tmp", path)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m espmedsam.evaluate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(ap, "the run's record (model, inputs; plausibility is written here)")
    ap.add_argument("--split", choices=["train", "test"], required=True)
    ap.add_argument("--write-plausibility", action="store_true",
                    help="train split only: store the statistics and bounds in the record (key plausibility); "
                         "with --channels only theirs are replaced")
    ap.add_argument("--json", help="write the per-image figures and the summary here")
    ap.add_argument("--channels", help="comma-separated channel names to score (default all)")
    ap.add_argument("--every", type=int, default=1,
                    help="every n-th image per dataset (names sorted) only: a quick look, not for shipping")
    a = ap.parse_args(argv)
    if a.write_plausibility and a.split != "train":
        raise SystemExit("--write-plausibility measures on the train split only")
    root, rec, model = open_run(a)
    inputs = record_inputs(rec, model.cfg.img_size)
    rows = select(root, a.split)
    if a.channels:
        want = {channel_indices()[c] for c in a.channels.split(",")}
        rows = [r for r in rows if r["channel"] in want]
    if a.every > 1:
        seen: Dict = {}
        keep = []
        for r in rows:
            k = seen.get(r["dataset"], 0)
            seen[r["dataset"]] = k + 1
            if k % a.every == 0:
                keep.append(r)
        rows = keep
    per = measure(model, root, rows, inputs, progress=True)
    plaus = rec.get("plausibility")
    if a.split == "train":
        plaus = plausibility(per, f"train split ({len(per)} images: training rows and validation slice"
                                  + (f", every {a.every}th per dataset" if a.every > 1 else "")
                                  + f"), checkpoint {a.checkpoint}, inputs as in the record")
        if a.channels and rec.get("plausibility"):
            # the other channels keep the bounds they were measured with
            old = rec["plausibility"]
            plaus = {**old, "channels": {**old["channels"], **plaus["channels"]},
                     "measured_on": f"{old['measured_on']}; {a.channels} again: {plaus['measured_on']}"}
        if a.write_plausibility:
            rec["plausibility"] = plaus
            write_record(a.record, rec)
    summary = summarise(per, plaus)
    summary["split"] = a.split
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"summary": summary, "plausibility": plaus, "images": per}, f, indent=1)
    for r in summary["rows"]:
        extra = f"  reject {r['rejected']}/{r['n']} ({100 * r['reject_share']:.1f} %)" if "rejected" in r else ""
        print(f"{r['channel']:12s} {r['dataset']:20s} {r['n']:4d}  Dice {r['dice']:.3f}  IoU {r['iou']:.3f}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
