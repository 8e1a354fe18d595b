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
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

import torch

from .export import export, sha256_file
from .train import inputs_from_record

MAX_BYTES = 25 * 1000 * 1000  # issue 15: the shipped ONNX file is at most 25 MB


def ship(run: str, record: str, out: str, model_version: str, name: str = "") -> dict:
    with open(record) as f:
        rec = json.load(f)
    m = rec["model"]
    name = name or f"espmedsam-{m['widths']}-s{m['size']}-seg2d.pth"
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, name)
        shutil.copyfile(os.path.join(run, "best.pth"), ckpt)
        if "channels" in rec.get("best", {}).get("val", {}):
            rec["inputs"] = inputs_from_record(rec)  # today's rules, whichever trainer wrote the record
        inputs = {k: v["input"] for k, v in rec.get("inputs", {}).items()} or None
        plaus = rec.get("plausibility")
        meta = export(out, checkpoint=ckpt, widths=m["widths"], size=m["size"], normalization=m["normalization"],
                      channels=[0, 1, 2, 3, 4, 5], model_name=f"esp-medsam-{m['widths']}", model_version=model_version,
                      channel_inputs=inputs, plausibility=plaus, patch_output=bool(inputs or plaus))
    if os.path.getsize(out) > MAX_BYTES:
        raise ValueError(f"{out}: {os.path.getsize(out)} bytes, over the {MAX_BYTES} allowed")
    rec["export"] = {
        "file": os.path.relpath(os.path.abspath(out), os.path.dirname(os.path.abspath(record))),
        "bytes": os.path.getsize(out), "onnx_sha256": sha256_file(out),
        "checkpoint": name, "checkpoint_sha256": meta["espnode.checkpoint_sha256"],
        "model_name": meta["espnode.model_name"], "model_version": meta["espnode.model_version"],
        "channels": [c["name"] for c in json.loads(meta["espnode.channels"])], "opset": 17,
        "torch": torch.__version__,
        "channel_inputs": json.loads(meta["espnode.channel_inputs"]) if "espnode.channel_inputs" in meta else None,
        "plausibility": "espnode.plausibility" in meta,
    }
    tmp_rec = record + ".tmp"
    with open(tmp_rec, "w") as f:
        json.dump(rec, f, indent=1)
        f.write("\n")
    os.replace(tmp_rec, record)
    return rec["export"]


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m espmedsam.ship", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="training run folder (best.pth)")
    ap.add_argument("--record", required=True, help="the run's record (train --record), updated in place")
    ap.add_argument("--out", required=True, help="ONNX file to write")
    ap.add_argument("--model-version", default="1.0.0-seg2d")
    ap.add_argument("--name", default="", help="checkpoint file name recorded as weights_source")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(json.dumps(ship(a.run, a.record, a.out, a.model_version, a.name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
