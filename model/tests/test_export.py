"""ONNX export: the contract's graph and metadata, per-dataset vs universal files, and (where ONNX
Runtime's C library is present) parity with PyTorch on a dynamic mixed-modality batch."""

import collections
import contextlib
import hashlib
import io
import json
import os
import tempfile
import unittest

import numpy as np
import onnx
import torch

import util
from espmedsam import build_model, export as ex
from espmedsam.channels import load_channels


class ExportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.path = os.path.join(cls.tmp.name, "tiny.onnx")
        cls.meta = ex.export(cls.path, seed=0, widths="tiny", size=256)
        cls.proto = onnx.load(cls.path)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_metadata(self):
        meta = ex.validate_onnx(self.path)
        self.assertEqual(meta["espnode.input_size"], "256")
        self.assertEqual(meta["espnode.threshold"], "0")
        self.assertEqual(meta["espnode.normalization"], "mean_over_mean")
        self.assertEqual(meta["espnode.model_name"], "esp-medsam-tiny")
        self.assertTrue(meta["espnode.model_version"])
        self.assertEqual(meta["weights_source"], "random-seed-0")
        model = build_model("tiny", 256, seed=0, calibrate=True)
        self.assertEqual(meta["espnode.checkpoint_sha256"], ex.state_dict_sha256(model))
        chans = json.loads(meta["espnode.channels"])
        want = load_channels()
        self.assertEqual([c["name"] for c in chans],
                         ["dermoscopy", "xray", "ultrasound", "fundus", "microscopy", "colonoscopy"])
        for got, ref in zip(chans, want):
            self.assertEqual(got["query"], ref["index"])
            self.assertEqual({k: v for k, v in got.items() if k != "query"}, ref)

    def test_graph_io(self):
        g = self.proto.graph
        self.assertEqual([i.name for i in g.input], ["image", "modality"])
        self.assertEqual([o.name for o in g.output], ["logits"])
        dims = lambda vi: [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
        self.assertEqual(dims(g.input[0]), ["N", 3, 256, 256])
        self.assertEqual(dims(g.input[1]), ["N"])
        self.assertEqual(dims(g.output[0]), ["N", 1, 256, 256])
        self.assertEqual(g.input[1].type.tensor_type.elem_type, onnx.TensorProto.INT64)
        self.assertEqual(self.proto.opset_import[0].version, 17)

    def test_graph_ops(self):
        ops = collections.Counter(n.op_type for n in self.proto.graph.node)
        self.assertEqual(ops["GatherElements"], 1)  # the per-sample query
        self.assertEqual(ops["Clip"], 1)  # modality clamp
        for bad in ("ScatterND", "Loop", "If", "SequenceConstruct"):
            self.assertNotIn(bad, ops)
        self.assertLess(sum(ops.values()), 3000)
        # unused checkpoint parts are not in the graph
        inits = {i.name for i in self.proto.graph.initializer}
        self.assertFalse(any("point_embeddings" in n or "SemiTViT.head" in n for n in inits))

    def test_validate_rejects_broken_metadata(self):
        for key, value in (("espnode.channels", "[]"), ("espnode.input_size", ""),
                           ("espnode.checkpoint_sha256", "random-seed-0"),
                           ("espnode.channels", '[{"index":0,"name":"x","label":"y"}]')):
            proto = onnx.load(self.path)
            for p in proto.metadata_props:
                if p.key == key:
                    p.value = value
            with self.assertRaises(ValueError, msg=key):
                ex.validate_onnx(proto)
        proto = onnx.load(self.path)
        keep = [p for p in proto.metadata_props if p.key != "espnode.threshold"]
        del proto.metadata_props[:]
        proto.metadata_props.extend(keep)
        with self.assertRaises(ValueError):
            ex.validate_onnx(proto)

    def test_per_dataset_and_joint_checkpoints(self):
        model = build_model("tiny", 64, seed=4)
        d = self.tmp.name
        for fname, want in (("ESP_cvccdb_best.pth", ["colonoscopy"]), ("joint.pth", None)):
            ckpt = os.path.join(d, fname)
            torch.save(model.state_dict(), ckpt)
            out = os.path.join(d, fname + ".onnx")
            meta = ex.export(out, checkpoint=ckpt, widths="tiny", size=64)
            chans = json.loads(meta["espnode.channels"])
            names = [c["name"] for c in chans]
            self.assertEqual(names, want or [c["name"] for c in load_channels()], fname)
            self.assertEqual([c["query"] for c in chans], [c["index"] for c in chans])
            with open(ckpt, "rb") as f:
                self.assertEqual(meta["espnode.checkpoint_sha256"], hashlib.sha256(f.read()).hexdigest())
            self.assertEqual(meta["weights_source"], fname)
        # the command line, with an explicit channel list and the other normalisation
        out = os.path.join(d, "cli.onnx")
        with contextlib.redirect_stdout(io.StringIO()) as so:
            rc = ex.main(["--checkpoint", os.path.join(d, "joint.pth"), "--widths", "tiny", "--size", "64",
                          "--channels", "xray,4", "--normalization", "imagenet", "--model-version", "9.9",
                          "--out", out])
        self.assertEqual(rc, 0)
        self.assertEqual(json.loads(so.getvalue())["channels"], ["xray", "microscopy"])
        meta = ex.validate_onnx(out)
        self.assertEqual([c["name"] for c in json.loads(meta["espnode.channels"])], ["xray", "microscopy"])
        self.assertEqual([c["query"] for c in json.loads(meta["espnode.channels"])], [1, 4])
        self.assertEqual(meta["espnode.normalization"], "imagenet")
        self.assertEqual(meta["espnode.model_version"], "9.9")
        self.assertEqual(meta["espnode.input_size"], "64")
        with self.assertRaises(RuntimeError):  # wrong widths: strict load fails
            ex.export(os.path.join(d, "y.onnx"), checkpoint=os.path.join(d, "joint.pth"), widths="compact", size=64)

    def test_committed_tiny_model(self):
        """seg/onnx/testdata's tiny model is what its README's command regenerates."""
        self.assertLess(os.path.getsize(util.TINY_ONNX), 5 * 1024 * 1024)
        meta = ex.validate_onnx(util.TINY_ONNX)
        self.assertEqual(meta["espnode.input_size"], "256")
        self.assertEqual(meta["weights_source"], "random-seed-0")
        self.assertEqual(len(json.loads(meta["espnode.channels"])), 6)
        self.assertEqual(meta["espnode.checkpoint_sha256"], self.meta["espnode.checkpoint_sha256"])
        with open(util.TINY_ONNX, "rb") as a, open(self.path, "rb") as b:
            same = a.read() == b.read()
        if torch.__version__.startswith("1.13"):  # the exporter that wrote it
            self.assertTrue(same, "committed tiny model differs from a fresh export: regenerate it")


class ExportContractExtrasTest(unittest.TestCase):
    """espnode.channel_inputs, espnode.plausibility and the optional output patch_logits."""

    INPUTS = {"fundus": {"mode": "tiles", "long_side": 128, "tile": 64, "stride": 48, "window": "hann",
                         "pad": "zero"}, "dermoscopy": {"mode": "letterbox", "flips": ["h"]}}
    PLAUS = {"version": 1, "measured_on": "test", "channels": {
        "fundus": {"n": 3, "fg_fraction": {"lo": 0.02, "hi": 0.3}, "patch_max": {"lo": 0.5}}}}

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.path = os.path.join(cls.tmp.name, "tiny64.onnx")
        cls.meta = ex.export(cls.path, seed=0, widths="tiny", size=64, channel_inputs=cls.INPUTS,
                             plausibility=cls.PLAUS, patch_output=True)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_metadata_and_outputs(self):
        meta = ex.validate_onnx(self.path)
        self.assertEqual(json.loads(meta["espnode.channel_inputs"]), self.INPUTS)
        self.assertEqual(json.loads(meta["espnode.plausibility"]), self.PLAUS)
        g = onnx.load(self.path).graph
        self.assertEqual([o.name for o in g.output], ["logits", "patch_logits"])
        dims = [d.dim_param or d.dim_value for d in g.output[1].type.tensor_type.shape.dim]
        self.assertEqual(dims, ["N", 1, 2, 2])

    def test_bad_extras_are_refused(self):
        d = self.tmp.name
        with self.assertRaises(ValueError):  # tile must equal the input size
            ex.export(os.path.join(d, "a.onnx"), seed=0, widths="tiny", size=64,
                      channel_inputs={"fundus": dict(self.INPUTS["fundus"], tile=32)})
        with self.assertRaises(ValueError):  # a channel the file does not serve
            ex.export(os.path.join(d, "b.onnx"), seed=0, widths="tiny", size=64, channels=["xray"],
                      channel_inputs=self.INPUTS)
        with self.assertRaises(ValueError):
            ex.export(os.path.join(d, "c.onnx"), seed=0, widths="tiny", size=64,
                      plausibility={"version": 1, "channels": {"fundus": {"fg_fraction": {"lo": 0.5, "hi": 0.1}}}})


@unittest.skipIf(util.ort_tool() is None, "ONNX Runtime C library, its header or a C compiler missing")
class OnnxRuntimeParityTest(unittest.TestCase):
    """ONNX Runtime (the node's shared library, through its C API) against PyTorch."""

    def compare(self, onnx_path, model, size, mods, seed, tol=1e-4):
        """Run one batch through ONNX Runtime and PyTorch; returns ONNX Runtime's logits."""
        from espmedsam import ortcheck
        with tempfile.TemporaryDirectory() as d:
            x = util.image_batch(len(mods), size, seed)
            x.numpy().astype("<f4").tofile(os.path.join(d, "in.f32"))
            np.asarray(mods, dtype="<i8").tofile(os.path.join(d, "in.i64"))
            ortcheck.run_ort(util.ort_tool(), onnx_path, os.path.join(d, "in.f32"), os.path.join(d, "in.i64"),
                             len(mods), size, os.path.join(d, "out.f32"), threads=2)
            got = np.fromfile(os.path.join(d, "out.f32"), dtype="<f4").reshape(len(mods), 1, size, size)
        with torch.no_grad():
            want, patch = model.forward_with_patch(x, torch.tensor(mods))
        # a patch logit within float error of 0 could flip a cell legitimately: fixed seeds avoid it
        self.assertGreater(float(patch.abs().min()), 2e-5, "inputs too close to the SPPG threshold")
        self.assertLessEqual(float(np.abs(got - want.numpy()).max()), tol, (size, mods))
        if len(set(min(max(m, 0), 5) for m in mods)) > 1:  # each sample its own query's mask
            self.assertGreater(float(np.abs(got[0] - got[1]).max()), 1e-3)
        return got

    def test_committed_tiny_model_dynamic_batches(self):
        """The committed tiny model under ONNX Runtime: batches of 3, 1 and 5 with mixed and
        out-of-range modalities, against PyTorch."""
        model = build_model("tiny", 256, seed=0, calibrate=True)
        got = {}
        for i, mods in enumerate(([0, 3, 5], [4], [2, 1, -3, 17, 5])):
            got[i] = self.compare(util.TINY_ONNX, model, 256, mods, seed=10 + i)
        # clamping in the graph: -3 -> 0 and 17 -> 5 equal explicit 0 and 5 on the same images
        clamped = self.compare(util.TINY_ONNX, model, 256, [2, 1, 0, 5, 5], seed=12)
        self.assertTrue(np.array_equal(clamped, got[2]))

    def check(self, widths, size, batches, seed=1, tol=1e-4):
        """A parity fixture (what the Go test reads) checked through ONNX Runtime, then more batches
        through the fixture's model."""
        from espmedsam import ortcheck
        from espmedsam.parity import write_fixture
        with tempfile.TemporaryDirectory() as d:
            meta = write_fixture(d, size, batches[0], seed, widths)
            self.assertTrue(0.0 < meta["patch_foreground_fraction"] < 1.0)
            res = ortcheck.check_dir(d, threads=2)
            self.assertLessEqual(res["max_abs_diff"], tol)
            model = build_model(widths, size, seed=seed, calibrate=True)
            for i, mods in enumerate(batches[1:]):
                self.compare(os.path.join(d, "model.onnx"), model, size, mods, seed=20 + i, tol=tol)

    def test_tiles_through_onnx_runtime(self):
        """The reference tiling run through ONNX Runtime on an export with patch_logits equals the
        same tiling through PyTorch (what the Go runtime's tiling will be checked against)."""
        from espmedsam import infer
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.onnx")
            ex.export(path, seed=3, widths="tiny", size=64, patch_output=True,
                      channel_inputs={"fundus": {"mode": "tiles", "long_side": 150, "tile": 64, "stride": 48}})
            model = build_model("tiny", 64, seed=3, calibrate=True)
            img = np.random.default_rng(5).integers(0, 256, (120, 100, 3)).astype(np.uint8)
            spec = infer.tiles(150, 64, 48)
            a = infer.predict(img, 3, infer.OrtRunner(path, 64, threads=2), 64, spec)
            b = infer.predict(img, 3, infer.TorchRunner(model), 64, spec)
            self.assertEqual(a.inputs, 9)
            self.assertLessEqual(float(np.abs(a.logits - b.logits).max()), 1e-4)

    def test_compact_widths(self):
        self.check("compact", 192, [[1, 3], [5, 0, 2]])

    @unittest.skipUnless(os.environ.get("ESPMEDSAM_SLOW") == "1", "set ESPMEDSAM_SLOW=1 (1024 parity, minutes)")
    def test_published_1024(self):
        self.check("published", 1024, [[0, 3, 5]])


if __name__ == "__main__":
    unittest.main()
