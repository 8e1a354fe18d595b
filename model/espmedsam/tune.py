"""Score other working sizes of a tiled channel on the validation slice, for a trained model.

    cd model && /usr/bin/python3 -m espmedsam.tune --run runs/NAME --record training/REC.json \
        --channel fundus --geometries 640:192,672:208,704:224,720:232,736:240,768:256

A tiled channel trains on random crops of its images resized to one working size (``train
--tiles CHANNEL=LONG_SIDE:STRIDE``), with scale augmentation around it, so the trained model may
segment better when the node resizes to another one. Each geometry (the working size's long
side and the largest step between tiles) is scored the way validation scores the training one
(``train.evaluate_sources``: ``infer.predict`` at the source size, Dice per image, no flip) on the
same validation slice of the train split; the test split is never read. The record gains
``tuning.CHANNEL``: every geometry's Dice, per dataset too, and its worst-case model inputs. The
choice is ``train.tuned_geometry``'s, applied wherever the record's inputs are read
(``train.inputs_from_record``: ``ship``, ``evaluate``): the best geometry within the channel's
input budget, kept only when it beats the training geometry by ``GEOMETRY_MIN_GAIN``.
"""

import argparse
import sys
from typing import Dict, List, Sequence, Tuple

from . import infer
from .data import Sources, channel_indices, select, split_validation, validation_rule
from .evaluate import add_run_arguments, open_run, write_record
from .train import evaluate_sources, mode_name, tuned_geometry, worst_case_inputs


def parse_geometries(s: str) -> List[Tuple[int, int]]:
    """"L:S,L:S,..." -> [(L, S), ...]; ValueError on anything else."""
    out = []
    for part in s.split(","):
        long_side, _, stride = part.partition(":")
        out.append((int(long_side), int(stride)))
    return out


def tune(model, root: str, record: Dict, channel: str, geometries: Sequence[Tuple[int, int]],
         val_every: int = 10) -> Dict:
    """The record's ``tuning`` entry for channel: each geometry scored on the validation slice."""
    idx = channel_indices()[channel]
    trained = record.get("training", {}).get("tiles", {}).get(str(idx))
    if trained is None:
        raise ValueError(f"{channel} did not train on tiles: nothing to tune")
    size = model.cfg.img_size
    geometries = list(dict.fromkeys([(trained["long_side"], trained["stride"]), *geometries]))
    _, val_rows = split_validation(select(root, "train"), val_every)
    val_rows = [r for r in val_rows if r["channel"] == idx]
    if not val_rows:
        raise ValueError(f"no validation images of {channel}")
    specs = [infer.tiles(long_side, size, stride) for long_side, stride in geometries]
    res = evaluate_sources(model, Sources(root, val_rows), {idx: specs}, tta=False)
    modes = res["channels"][idx]["modes"]
    entry = {
        "validation": f"the train split's slice: {validation_rule(val_every)} ({len(val_rows)} images); "
                      "infer.predict at the source size, no flip",
        "trained": mode_name(specs[0]),
        "geometries": {mode_name(s): {"long_side": s.long_side, "stride": s.stride, "dice": modes[mode_name(s)]["dice"],
                                      "datasets": modes[mode_name(s)]["datasets"],
                                      "model_inputs_worst_case": worst_case_inputs(s, size)}
                       for s in specs},
    }
    spec, why = tuned_geometry(entry, idx, size)
    entry["chosen"], entry["why"] = mode_name(spec), why
    return entry


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m espmedsam.tune", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(ap, "the run's record; tuning.CHANNEL is written here")
    ap.add_argument("--channel", required=True, help="a channel that trained on tiles")
    ap.add_argument("--geometries", required=True, help="LONG_SIDE:STRIDE,... (the training one is always scored)")
    ap.add_argument("--val-every", type=int, default=10, help="the validation slice's rule, as train --val-every")
    a = ap.parse_args(argv)
    root, rec, model = open_run(a)
    entry = tune(model, root, rec, a.channel, parse_geometries(a.geometries), a.val_every)
    rec.setdefault("tuning", {})[a.channel] = entry
    write_record(a.record, rec)
    for name, g in entry["geometries"].items():
        print(f"{a.channel} {name:16s} inputs {g['model_inputs_worst_case']:3d}  Dice {g['dice']:.4f}")
    print(f"chosen {entry['chosen']}: {entry['why']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
