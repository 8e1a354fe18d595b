"""Reference inference (espmedsam.infer): the node's resampler, tile geometry, blending, flips, and
the channel-input metadata; the evaluation helpers (espmedsam.evaluate)."""

import json
import unittest

import numpy as np
import torch

import util  # noqa: F401  (thread count)
from espmedsam import evaluate, infer
from espmedsam.model import build_model


def pixelwise(images, queries):
    """A translation-equivariant stand-in for the model: logit = (R - G) / 16 + query, per pixel;
    patch logits = the mean logit of each 32x32 cell."""
    lg = (images[:, 0:1] - images[:, 1:2]) / 16.0 + queries.reshape(-1, 1, 1, 1)
    n, _, s, _ = lg.shape
    pt = lg.reshape(n, 1, s // 32, 32, s // 32, 32).mean(axis=(3, 5))
    return lg.astype(np.float32), pt.astype(np.float32)


def image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.uint8)


class TestGeometry(unittest.TestCase):
    def test_tile_positions(self):
        cases = [((256, 256, 192), [0]), ((200, 256, 192), [0]), ((512, 256, 192), [0, 128, 256]),
                 ((640, 256, 192), [0, 192, 384]), ((641, 256, 192), [0, 128, 257, 385]),
                 ((512, 256, 256), [0, 256]), ((300, 256, 64), [0, 44])]
        for (n, t, s), want in cases:
            got = infer.tile_positions(n, t, s)
            self.assertEqual(got, want, (n, t, s))
            self.assertEqual(got[-1] + t >= n, True)
            self.assertTrue(all(b - a <= s for a, b in zip(got, got[1:])), "a gap wider than the stride")

    def test_window(self):
        w = infer.window(256)
        self.assertEqual(w.shape, (256, 256))
        self.assertGreater(float(w.min()), 0.0)
        self.assertTrue(np.allclose(w, w[::-1, ::-1]) and np.allclose(w, w.T))
        self.assertAlmostEqual(float(w.max()), 1.0, places=3)

    def test_fit_and_working_size(self):
        self.assertEqual(infer.fit(256, 191, 64), (64, 48))
        self.assertEqual(infer.working_size(495, 512, 640), (619, 640))
        self.assertEqual(infer.working_size(495, 512, 0), (495, 512))

    def test_resample(self):
        a = np.array([[0.0, 4.0]], np.float32)
        # enlarging: bilinear with pixel centres at +0.5 (align_corners=False), clamped at the border
        np.testing.assert_allclose(infer.resample(a, 4, 1), [[0, 1, 3, 4]], atol=1e-6)
        flat = np.full((37, 53, 3), 7.0, np.float32)
        np.testing.assert_allclose(infer.resample(flat, 20, 11), 7.0, atol=1e-5)
        x = image(40, 30).astype(np.float32)
        np.testing.assert_array_equal(infer.resample(x, 30, 40), x)
        # reducing by an integer factor 2: a triangle of support 2 (weights 1/8, 3/8, 3/8, 1/8)
        r = np.arange(8, dtype=np.float32)[None]
        self.assertAlmostEqual(float(infer.resample(r, 4, 1)[0, 1]), (1 * 1 + 3 * 2 + 3 * 3 + 1 * 4) / 8, places=5)


class TestPredict(unittest.TestCase):
    def test_tiles_equal_the_untiled_map_for_a_pixelwise_model(self):
        src = image(341, 512, 1)
        spec = infer.tiles(640, 256, 192)
        pr = infer.predict(src, 3, pixelwise, 256, spec)
        ww, wh = infer.working_size(512, 341, 640)
        work = np.clip(infer.resample(src.astype(np.float32), ww, wh), 0, 255)
        want = infer.resample((work[..., 0] - work[..., 1]) / 16.0 + 3, 512, 341)
        np.testing.assert_allclose(pr.logits, want, atol=1e-4)
        self.assertEqual(pr.inputs, 3 * 2)
        self.assertEqual(pr.working, (640, 426))
        self.assertEqual(pr.logits.shape, (341, 512))

    def test_letterbox_and_flips(self):
        src = image(191, 256, 2)
        pr = infer.predict(src, 0, pixelwise, 64)
        gw, gh = infer.fit(256, 191, 64)
        small = np.clip(infer.resample(src.astype(np.float32), gw, gh), 0, 255)
        want = infer.resample((small[..., 0] - small[..., 1]) / 16.0, 256, 191)
        np.testing.assert_allclose(pr.logits, want, atol=1e-4)
        flipped = infer.predict(src, 0, pixelwise, 64, infer.ChannelInput(flips=("h", "v", "hv")))
        np.testing.assert_allclose(flipped.logits, pr.logits, atol=1e-4)  # a pixelwise model is flip-equivariant
        self.assertEqual(flipped.inputs, 4)
        many = infer.predict_many(src, 0, pixelwise, 64, infer.LETTERBOX, [(), ("h",)])
        np.testing.assert_allclose(many[0].logits, pr.logits)
        self.assertEqual([m.inputs for m in many], [1, 2])

    def test_small_image_is_padded_with_zeros(self):
        src = image(100, 120, 3)
        pr = infer.predict(src, 1, pixelwise, 256, infer.tiles(0, 256, 192))
        want = (src[..., 0].astype(np.float32) - src[..., 1]) / 16.0 + 1
        np.testing.assert_allclose(pr.logits, want, atol=1e-4)
        self.assertEqual(pr.inputs, 1)

    def test_torch_runner_and_patch_confidence(self):
        torch.manual_seed(0)
        model = build_model("tiny", 64, seed=0, calibrate=True)
        pr = infer.predict(image(90, 150, 4), 3, infer.TorchRunner(model), 64, infer.tiles(128, 64, 48))
        self.assertEqual(pr.logits.shape, (90, 150))
        self.assertTrue(0.0 <= pr.patch_max <= 1.0)
        self.assertTrue(0.0 <= pr.fg_fraction <= 1.0)
        # the runner feeds the same tiles the model would see one by one
        single = infer.predict(image(90, 150, 4), 3, infer.TorchRunner(model, batch=1), 64, infer.tiles(128, 64, 48))
        np.testing.assert_allclose(single.logits, pr.logits, atol=1e-4)

    def test_dice_iou(self):
        a = np.zeros((4, 4), bool)
        self.assertEqual(infer.dice_iou(a, a), (1.0, 1.0))
        b = a.copy()
        b[0, :2] = True
        c = a.copy()
        c[0, 1:3] = True
        self.assertEqual(infer.dice_iou(b, c), (0.5, 1 / 3))


class TestChannelInputs(unittest.TestCase):
    def test_json_round_trip(self):
        specs = {"fundus": infer.tiles(640, 256, 192, ("h",)), "xray": infer.LETTERBOX}
        text = infer.format_channel_inputs(specs)
        self.assertEqual(json.loads(text)["fundus"], {"mode": "tiles", "long_side": 640, "tile": 256, "stride": 192,
                                                      "window": "hann", "pad": "zero", "flips": ["h"]})
        self.assertEqual(json.loads(text)["xray"], {"mode": "letterbox"})
        self.assertEqual(infer.parse_channel_inputs(text, 256), specs)
        self.assertEqual(infer.spec_from_text("tiles:640:192+h", 256), specs["fundus"])

    def test_rejects(self):
        for bad in ({"mode": "tiles", "long_side": 640, "tile": 128, "stride": 64},  # tile != S
                    {"mode": "tiles", "long_side": 640, "tile": 256, "stride": 0},
                    {"mode": "tiles", "long_side": 640, "tile": 256, "stride": 300},
                    {"mode": "mosaic"}, {"mode": "letterbox", "flips": ["x"]},
                    {"mode": "letterbox", "colour": "red"}):
            with self.assertRaises(ValueError, msg=bad):
                infer.ChannelInput.from_json(bad, 256)


class TestPlausibility(unittest.TestCase):
    def test_bounds_and_rule(self):
        rng = np.random.default_rng(0)
        per = [{"channel": 3, "dataset": "drive", "image": str(i), "dice": 0.7, "iou": 0.5,
                "fg_pred": float(f), "fg_ref": float(f * 1.1), "patch_max": float(p), "inputs": 9}
               for i, (f, p) in enumerate(zip(rng.uniform(0.08, 0.14, 200), rng.uniform(0.95, 0.999, 200)))]
        pl = evaluate.plausibility(per, "test")
        b = pl["channels"]["fundus"]
        self.assertEqual(b["n"], 200)
        self.assertLess(b["fg_fraction"]["lo"], 0.08 * 0.51)
        self.assertGreater(b["fg_fraction"]["hi"], 0.14 * 1.1)
        self.assertLess(b["patch_max"]["lo"], b["patch_max"]["p0_5"])
        self.assertIsNone(evaluate.implausible(per[0], b))
        self.assertEqual(evaluate.implausible(dict(per[0], fg_pred=0.0), b), "fg_fraction")
        self.assertEqual(evaluate.implausible(dict(per[0], fg_pred=0.9), b), "fg_fraction")
        self.assertEqual(evaluate.implausible(dict(per[0], patch_max=0.01), b), "patch_max")
        s = evaluate.summarise(per, pl)
        row = next(r for r in s["rows"] if r["channel"] == "fundus" and r["dataset"] == "(all)")
        self.assertEqual(row["rejected"], 0)


if __name__ == "__main__":
    unittest.main()
