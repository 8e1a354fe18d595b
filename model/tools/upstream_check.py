"""Developer check: our ESP-MedSAM against the authors' reference code, same random weights, 1024.

Not part of the test suite: it needs a checkout of xq141839/ESP-MedSAM (research code, not in this
repository), e.g.
    mkdir -p /tmp/upstream && git -C <mirror of xq141839/ESP-MedSAM> archive HEAD | tar -x -C /tmp/upstream
    cd model && /usr/bin/python3 tools/upstream_check.py --upstream /tmp/upstream
The reference code's imports of timm, cv2 and tqdm are stubbed (identity DropPath; nothing else of
them runs at inference). Loads one random state dict into both models (strict) and compares the
image embedding and the logits per modality. Prints one JSON line.
"""

import argparse
import builtins
import json
import os
import sys
import types

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def stub_modules():
    class DropPath(nn.Module):
        def __init__(self, drop_prob=None):
            super().__init__()
            self.drop_prob = drop_prob

        def forward(self, x):
            return x

    timm = types.ModuleType("timm")
    models = types.ModuleType("timm.models")
    layers = types.ModuleType("timm.models.layers")
    registry = types.ModuleType("timm.models.registry")
    layers.DropPath = DropPath
    layers.to_2tuple = lambda x: x if isinstance(x, tuple) else (x, x)
    layers.trunc_normal_ = lambda t, std=1.0: nn.init.normal_(t, std=std)
    registry.register_model = lambda f: f
    models.create_model, models.layers, models.registry = None, layers, registry
    timm.models = models
    tqdm = types.ModuleType("tqdm")
    tqdm.tqdm = lambda x, **k: x
    sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers,
                        "timm.models.registry": registry, "cv2": types.ModuleType("cv2"), "tqdm": tqdm})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upstream", required=True, help="directory with the reference model.py and SAM/")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--modalities", default="0,3,5")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    stub_modules()
    sys.path.append(os.path.abspath(a.upstream))
    from espmedsam import build_model
    from espmedsam.model import NORMALIZATIONS
    from espmedsam.parity import make_inputs

    quiet, builtins.print = builtins.print, (lambda *x, **k: None)  # the reference prints LR scales
    try:
        import model as reference  # the upstream model.py
        ref = reference.ESPMedSAM().eval()
    finally:
        builtins.print = quiet
    ours = build_model("published", 1024, seed=a.seed)
    ref.load_state_dict(ours.state_dict(), strict=True)
    ref.eval()  # the reference caches TinyViT's attention bias in eval(): rebuild it from the loaded weights
    x = torch.from_numpy(make_inputs(1, 1024, a.seed))
    m = torch.tensor(NORMALIZATIONS["mean_over_mean"][0]).view(1, 3, 1, 1)
    out = {"seed": a.seed}
    with torch.no_grad():
        out["embedding_max_abs_diff"] = float((ref.SemiTViT((x - m) / m) - ours.encode(x)[1]).abs().max())
        for mod in (int(v) for v in a.modalities.split(",")):
            r = ref(x=(x - m) / m, domain_seq=mod)[0]
            o = ours(x, torch.tensor([mod]))
            out[f"logits_max_abs_diff_modality_{mod}"] = float((r - o).abs().max())
            out[f"logits_abs_max_modality_{mod}"] = float(o.abs().max())
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
