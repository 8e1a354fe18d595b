"""The parity fixture generator and the benchmark CLIs."""

import contextlib
import io
import json
import os
import tempfile
import unittest

import numpy as np
import torch

import util  # noqa: F401  (thread settings)
from espmedsam import bench, build_model, parity
from espmedsam.export import validate_onnx


class ParityCliTest(unittest.TestCase):
    def test_fixture_files(self):
        with tempfile.TemporaryDirectory() as d:
            with contextlib.redirect_stdout(io.StringIO()):
                rc = parity.main(["--size", "64", "--widths", "tiny", "--modalities", "0,3,5", "--seed", "2",
                                  "--out", d])
            self.assertEqual(rc, 0)
            with open(os.path.join(d, "meta.json")) as f:
                meta = json.load(f)
            self.assertEqual((meta["n"], meta["size"], meta["modalities"], meta["seed"]), (3, 64, [0, 3, 5], 2))
            img = np.fromfile(os.path.join(d, "image.f32"), dtype="<f4")
            mods = np.fromfile(os.path.join(d, "modality.i64"), dtype="<i8")
            logits = np.fromfile(os.path.join(d, "logits.f32"), dtype="<f4")
            self.assertEqual(img.size, 3 * 3 * 64 * 64)
            self.assertTrue(0 <= img.min() and img.max() <= 255 and img.std() > 10)
            self.assertEqual(mods.tolist(), [0, 3, 5])
            self.assertEqual(logits.size, 3 * 64 * 64)
            model = build_model("tiny", 64, seed=2, calibrate=True)
            with torch.no_grad():
                want = model(torch.from_numpy(img.reshape(3, 3, 64, 64)), torch.from_numpy(mods)).numpy()
            self.assertLess(np.abs(want.ravel() - logits).max(), 1e-5)
            validate_onnx(os.path.join(d, "model.onnx"))


class BenchCliTest(unittest.TestCase):
    def test_json_line(self):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = bench.main(["--size", "64", "--widths", "tiny", "--threads", "1", "--iters", "2", "--batch", "2",
                             "--warmup", "0"])
        self.assertEqual(rc, 0)
        lines = buf.getvalue().strip().splitlines()
        self.assertEqual(len(lines), 1)
        r = json.loads(lines[0])
        self.assertEqual((r["runtime"], r["size"], r["batch"]), ("pytorch", 64, 2))
        self.assertGreater(r["ms_per_image"], 0)
        self.assertAlmostEqual(r["images_per_s"], 1000.0 / r["ms_per_image"], delta=0.02 * r["images_per_s"])
        torch.set_num_threads(2)


if __name__ == "__main__":
    unittest.main()
