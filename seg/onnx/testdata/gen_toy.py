"""Writes the runtime's small test fixtures (run with Debian's /usr/bin/python3 and python3-onnx).

toy-s64.onnx follows the model contract at S=64 with a graph simple enough to check by hand:
    logits[n,0,y,x] = mean_c(image[n,c,y,x]) / 255 - 0.5 + modality[n] / 10
nometa-s64.onnx has the same graph but no espnode.* metadata: the "not our contract" fixture.
wrongshape-s64.onnx has the metadata but an output of 2 channels.
toy-tiles-s64.onnx is toy-s64.onnx with the tiling contract's additions: the output patch_logits
[N,1,2,2] (the mean of logits over each 32 x 32 cell), espnode.channel_inputs (fundus in tiles
with a flip, ultrasound letterboxed with flips) and espnode.plausibility (bounds for fundus and
xray).
"""
import json
import sys

import onnx
from onnx import TensorProto as T
from onnx import helper

S = 64
CHANNELS = ["dermoscopy", "xray", "ultrasound", "fundus", "microscopy", "colonoscopy"]


def graph(out_channels=1, patch=False):
    img = helper.make_tensor_value_info("image", T.FLOAT, ["N", 3, S, S])
    mod = helper.make_tensor_value_info("modality", T.INT64, ["N"])
    lg = helper.make_tensor_value_info("logits", T.FLOAT, ["N", out_channels, S, S])
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Div", ["m", "c255"], ["m1"]),
        helper.make_node("Sub", ["m1", "half"], ["m2"]),
        helper.make_node("Cast", ["modality"], ["mf"], to=T.FLOAT),
        helper.make_node("Reshape", ["mf", "shp"], ["mr"]),
        helper.make_node("Div", ["mr", "ten"], ["mb"]),
        helper.make_node("Add", ["m2", "mb"], ["one"]),
    ]
    if out_channels == 1:
        nodes[-1].output[0] = "logits"
    else:
        nodes.append(helper.make_node("Concat", ["one", "one"], ["logits"], axis=1))
    inits = [
        helper.make_tensor("c255", T.FLOAT, [], [255.0]),
        helper.make_tensor("half", T.FLOAT, [], [0.5]),
        helper.make_tensor("ten", T.FLOAT, [], [10.0]),
        helper.make_tensor("shp", T.INT64, [4], [-1, 1, 1, 1]),
    ]
    outs = [lg]
    if patch:
        nodes.append(helper.make_node("AveragePool", ["logits"], ["patch_logits"], kernel_shape=[32, 32], strides=[32, 32]))
        outs.append(helper.make_tensor_value_info("patch_logits", T.FLOAT, ["N", 1, S // 32, S // 32]))
    m = helper.make_model(helper.make_graph(nodes, "toy", [img, mod], outs, inits),
                          opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


TILING = {
    "espnode.channel_inputs": json.dumps({
        "fundus": {"mode": "tiles", "long_side": 100, "tile": S, "stride": 48, "window": "hann", "pad": "zero",
                   "flips": ["h"]},
        "ultrasound": {"mode": "letterbox", "flips": ["v", "hv"]},
        "xray": {"mode": "letterbox"}}),
    "espnode.plausibility": json.dumps({
        "version": 1, "measured_on": "toy", "rule": "toy", "bounds": "toy",
        "channels": {
            "fundus": {"n": 3, "fg_fraction": {"lo": 0.1, "hi": 0.9, "pred_p0_5": 0.2, "pred_p50": 0.5,
                                               "pred_p99_5": 0.6, "ref_p0_5": 0.2, "ref_p50": 0.5, "ref_p99_5": 0.6},
                       "patch_max": {"lo": 0.3, "p0_5": 0.5, "p50": 0.6}},
            "xray": {"n": 3, "fg_fraction": {"lo": 0.5, "hi": 1.0}}}}),
}


def metadata(m, extra=None):
    code = {"scheme": "SCT", "value": "49755003", "meaning": "Morphologically abnormal structure"}
    chans = [{"index": i, "name": n, "label": n, "category": code,
              "type": {"scheme": "SCT", "value": "108369006", "meaning": "Neoplasm"}, "query": i}
             for i, n in enumerate(CHANNELS)]
    props = {"espnode.channels": json.dumps(chans), "espnode.input_size": str(S),
             "espnode.model_name": "toy", "espnode.model_version": "1", "espnode.threshold": "0",
             "espnode.normalization": "none", "espnode.checkpoint_sha256": "0" * 64}
    props.update(extra or {})
    for k, v in props.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    return m


def main(out):
    for name, m in [("toy-s64.onnx", metadata(graph())), ("nometa-s64.onnx", graph()),
                    ("wrongshape-s64.onnx", metadata(graph(2))),
                    ("toy-tiles-s64.onnx", metadata(graph(patch=True), TILING))]:
        onnx.checker.check_model(m)
        onnx.save(m, f"{out}/{name}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
