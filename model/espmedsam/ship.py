"""Export a training run's best checkpoint as the model the node ships, and note it in the run's record.

    cd model && /usr/bin/python3 -m espmedsam.ship --run out/train/compact-s256 \
        --record training/compact-s256.json --out ../seg/segment/shipped/espmedsam-compact-s256.onnx

The checkpoint (``RUN/best.pth``) is copied under a descriptive name (the ONNX metadata's
``weights_source``), exported with all six channels (``espmedsam.export``), validated against the
contract, and the record gains an ``export`` section: file, bytes, sha256 of the ONNX file and of the
checkpoint, model name and version. When the record has them, the per-channel input modes chosen on
validation (``inputs``) become ``espnode.channel_inputs`` and the plausibility bounds
(``plausibility``, from ``espmedsam.evaluate --split train --write-plausibility``) become
``espnode.plausibility``; the file then also has the optional output ``patch_logits``. A file over
``MAX_BYTES`` is refused.

With ``--weights-from FILE`` nothing is exported: FILE's graph and weights are copied as they are
and only the metadata the record decides (inputs, plausibility, model version) is rewritten, for a
release that changes how the node feeds the model, not the model (``espmedsam.tune``). The record
must then describe FILE's weights: its ``export.checkpoint_sha256`` must be FILE's.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

import torch

from .evaluate import write_record
from .export import export, feeding_metadata, read_metadata, sha256_file, validate_onnx, write_metadata
from .train import inputs_from_record

MAX_BYTES = 25 * 1000 * 1000  # issue 15: the shipped ONNX file is at most 25 MB


def ship(run: str, record: str, out: str, model_version: str, name: str = "", weights_from: str = "") -> dict:
    with open(record) as f:
        rec = json.load(f)
    m = rec["model"]
    name = name or f"espmedsam-{m['widths']}-s{m['size']}-seg2d.pth"
    exported_by = torch.__version__
    if weights_from:
        meta = restamp(weights_from, out, rec, model_version)
        name, exported_by = meta["weights_source"], rec["export"].get("torch", "")
    else:
        meta = export_run(run, rec, out, model_version, name)
    if os.path.getsize(out) > MAX_BYTES:
        raise ValueError(f"{out}: {os.path.getsize(out)} bytes, over the {MAX_BYTES} allowed")
    rec["export"] = {
        "file": os.path.relpath(os.path.abspath(out), os.path.dirname(os.path.abspath(record))),
        "bytes": os.path.getsize(out), "onnx_sha256": sha256_file(out),
        "checkpoint": name, "checkpoint_sha256": meta["espnode.checkpoint_sha256"],
        "model_name": meta["espnode.model_name"], "model_version": meta["espnode.model_version"],
        "channels": [c["name"] for c in json.loads(meta["espnode.channels"])], "opset": 17,
        "torch": exported_by,
        "channel_inputs": json.loads(meta["espnode.channel_inputs"]) if "espnode.channel_inputs" in meta else None,
        "plausibility": "espnode.plausibility" in meta,
    }
    write_record(record, rec)
    return rec["export"]


def record_metadata(rec: dict) -> tuple:
    """The channel inputs (today's rules over the record's validation and tuning) and the
    plausibility bounds the record decides."""
    if "channels" in rec.get("best", {}).get("val", {}):
        rec["inputs"] = inputs_from_record(rec)  # today's rules, whichever trainer wrote the record
    inputs = {k: v["input"] for k, v in rec.get("inputs", {}).items()} or None
    return inputs, rec.get("plausibility")


def export_run(run: str, rec: dict, out: str, model_version: str, name: str) -> dict:
    m = rec["model"]
    inputs, plaus = record_metadata(rec)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, name)
        shutil.copyfile(os.path.join(run, "best.pth"), ckpt)
        return export(out, checkpoint=ckpt, widths=m["widths"], size=m["size"], normalization=m["normalization"],
                      channels=[0, 1, 2, 3, 4, 5], model_name=f"esp-medsam-{m['widths']}", model_version=model_version,
                      channel_inputs=inputs, plausibility=plaus, patch_output=bool(inputs or plaus))


def restamp(src: str, out: str, rec: dict, model_version: str) -> dict:
    """src's graph and weights under out, with the record's inputs, bounds and model_version."""
    old = read_metadata(src)
    want = rec.get("export", {}).get("checkpoint_sha256")
    if old.get("espnode.checkpoint_sha256") != want:
        raise ValueError(f"{src} holds the weights {old.get('espnode.checkpoint_sha256')}, the record describes {want}")
    inputs, plaus = record_metadata(rec)
    if not inputs or not plaus:
        raise ValueError("the record has no inputs or no plausibility to write")
    meta = {**old, "espnode.model_version": model_version,
            **feeding_metadata(inputs, plaus, int(old["espnode.input_size"]))}
    if os.path.abspath(src) != os.path.abspath(out):
        shutil.copyfile(src, out)
    write_metadata(out, meta)
    return validate_onnx(out)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m espmedsam.ship", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="training run folder (best.pth)")
    ap.add_argument("--record", required=True, help="the run's record (train --record), updated in place")
    ap.add_argument("--out", required=True, help="ONNX file to write")
    ap.add_argument("--model-version", default="1.0.0-seg2d")
    ap.add_argument("--name", default="", help="checkpoint file name recorded as weights_source")
    ap.add_argument("--weights-from", default="", help="an ONNX file whose graph and weights to keep (no export; "
                                                         "only the metadata the record decides is rewritten)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(json.dumps(ship(a.run, a.record, a.out, a.model_version, a.name, a.weights_from)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
