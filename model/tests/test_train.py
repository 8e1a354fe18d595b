"""Training: data selection, losses, sampler, augmentation, a few optimisation steps, distillation.

Real seg2d files from ../shared/data (tiny widths, 64-pixel inputs, so that this stays quick)."""

import json
import os
import tempfile
import unittest

import numpy as np
import torch

from util import REPO_ROOT

from espmedsam import augment as aug
from espmedsam import data, ship, train
from espmedsam.export import sha256_file, validate_onnx
from espmedsam.model import build_model

SEG2D = os.environ.get("ESPMEDSAM_SEG2D", os.path.join(REPO_ROOT, "..", "shared", "data", "seg2d"))


def need_data():
    if not os.path.isfile(os.path.join(SEG2D, "MANIFEST.csv")):
        raise AssertionError(f"seg2d not found at {SEG2D}: put the shared folder beside the checkout "
                             "or set ESPMEDSAM_SEG2D")


class OneThread(unittest.TestCase):
    """Two OpenMP threads on two shared cores ran 4-10x slower than one here."""

    def setUp(self):
        self._threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def tearDown(self):
        torch.set_num_threads(self._threads)


class TestData(OneThread):
    def test_selection(self):
        need_data()
        rows = data.select(SEG2D, "train")
        self.assertTrue(rows)
        self.assertTrue(all(r["split"] == "train" for r in rows))
        self.assertFalse([r for r in rows if r["dataset"] == "drishti-gs1"], "optic disc kept in the fundus channel")
        chans = data.channel_indices()
        self.assertEqual({r["modality"] for r in rows}, set(chans))
        self.assertTrue(all(r["channel"] == chans[r["modality"]] for r in rows))
        # shared/data/README.md: 1,800 train pairs, 40 of them drishti-gs1
        self.assertEqual(len(rows), 1800 - 40)
        for ds in ("stare", "hrf", "orvs", "aria", "cvc-clinicdb"):
            self.assertTrue([r for r in rows if r["dataset"] == ds], ds)
        test = data.select(SEG2D, "test")
        self.assertFalse({r["image"] for r in rows} & {r["image"] for r in test})

    def test_validation_slice(self):
        need_data()
        rows = data.select(SEG2D, "train")
        tr, va = data.split_validation(rows, 10)
        self.assertEqual(len(tr) + len(va), len(rows))
        self.assertFalse({r["image"] for r in tr} & {r["image"] for r in va})
        counts = train.per_dataset_counts(va)
        self.assertEqual(counts["dermoscopy/ph2"], 16)  # 160 train pairs
        self.assertEqual(data.split_validation(list(reversed(rows)), 10)[1], va)  # order-free
        with self.assertRaises(ValueError):
            data.split_validation(data.select(SEG2D, "test"), 10)

    def test_manifest_hash(self):
        need_data()
        rows = data.select(SEG2D, "train")
        h = data.manifest_sha256(rows)
        self.assertRegex(h, "^[0-9a-f]{64}$")
        self.assertEqual(h, data.manifest_sha256(list(reversed(rows))))
        self.assertNotEqual(h, data.manifest_sha256(rows[1:]))

    def test_letterbox(self):
        need_data()
        row = next(r for r in data.select(SEG2D, "train") if r["dataset"] == "ph2")
        img, mask, (w, h) = data.load_pair(SEG2D, row, 64)
        self.assertEqual((w, h), data.fit(int(row["width"]), int(row["height"]), 64))
        self.assertEqual(w, 64)
        self.assertLess(h, 64)
        self.assertEqual(img.shape, (64, 64, 3))
        self.assertFalse(img[h:].any() or mask[h:].any(), "padding must be zero, at the bottom")
        self.assertTrue(mask.max() == 255 and 0 < (mask > 127).mean() < 1)
        # the node's Fit rounding: 256x191 -> 64x48
        self.assertEqual(data.fit(256, 191, 64), (64, 48))


class TestLosses(OneThread):
    def test_patch_target_is_max_pooled(self):
        m = torch.zeros(1, 1, 64, 64)
        m[0, 0, 40, 5] = 1.0  # one pixel in patch (row 1, col 0)
        t = train.patch_target(m)
        self.assertEqual(t.shape, (1, 1, 2, 2))
        self.assertEqual(t.flatten().tolist(), [0.0, 0.0, 1.0, 0.0])

    def test_dice_and_bce(self):
        m = torch.zeros(2, 1, 64, 64)
        m[:, :, 10:30, 10:30] = 1
        good = (m * 2 - 1) * 20
        self.assertLess(float(train.dice_loss(good, m)), 1e-3)
        self.assertGreater(float(train.dice_loss(-good, m)), 0.99)
        parts = train.seg_losses(good, torch.full((2, 1, 2, 2), -20.0), m)
        self.assertEqual(set(parts), {"loss", "bce", "dice", "patch"})
        self.assertAlmostEqual(float(parts["loss"]), float(parts["bce"] + parts["dice"] + parts["patch"]), places=5)
        self.assertGreater(float(parts["patch"]), 1.0)  # patches with the target predicted empty


class TestSafeGELU(OneThread):
    def test_backward_with_a_transposed_gradient(self):
        a = torch.randn(4, 32, 8, 8, requires_grad=True)
        g = torch.randn(4, 8, 8, 32).permute(0, 3, 1, 2)  # channels-last strides, as after a transpose
        a64 = a.detach().double().requires_grad_()
        ref = torch.autograd.grad(torch.nn.functional.gelu(a64), a64, g.double().contiguous())[0]
        got = torch.autograd.grad(train.SafeGELU()(a), a, g)[0]
        self.assertLess(float((got.double() - ref).abs().max()), 1e-5)
        self.assertTrue(torch.equal(train.SafeGELU()(a), torch.nn.functional.gelu(a)))

    def test_model_gelus_replaced(self):
        model = build_model("tiny", 64)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        self.assertGreater(train.use_safe_gelu(model), 10)
        self.assertFalse([m for m in model.modules() if type(m) is torch.nn.GELU])
        after = model.state_dict()
        self.assertEqual(list(before), list(after))


class TestSampler(unittest.TestCase):
    def test_mixed_batches(self):
        chans = [0] * 100 + [1] * 25 + [4] * 4
        s = train.MixedSampler(chans, batch=8, alpha=0.5, seed=1)
        picks = np.concatenate([next(s) for _ in range(200)])
        got = np.bincount(np.asarray(chans)[picks], minlength=5)
        # probabilities 10:5:2 (sqrt of the counts)
        self.assertAlmostEqual(got[0] / got.sum(), 10 / 17, delta=0.04)
        self.assertAlmostEqual(got[4] / got.sum(), 2 / 17, delta=0.03)
        mixed = sum(len(set(np.asarray(chans)[next(s)])) > 1 for _ in range(50))
        self.assertGreater(mixed, 45)
        # every sample of a channel is used before one repeats
        s2 = train.MixedSampler([3] * 10, batch=5, seed=0)
        self.assertEqual(sorted(np.concatenate([next(s2), next(s2)]).tolist()), list(range(10)))


class TestAugment(OneThread):
    def test_geometry_keeps_image_and_mask_aligned(self):
        g = torch.Generator().manual_seed(0)
        m = torch.zeros(6, 1, 64, 64)
        m[:, :, 8:30, 12:40] = 1.0
        img = m.repeat(1, 3, 1, 1) * 255
        sizes = torch.tensor([[64, 50]] * 6)
        geo = {c: aug.Policy(hflip=p.hflip, vflip=p.vflip, rotate=p.rotate, scale=p.scale, shift=p.shift)
               for c, p in aug.POLICIES.items()}
        a, b = aug.augment(img, m, sizes, torch.arange(6), g, geo)
        self.assertLess(float((a / 255 - b.repeat(1, 3, 1, 1)).abs().max()), 1e-4)
        self.assertGreater(float(b.sum()), 0.5 * float(m.sum()))

    def test_policies(self):
        self.assertEqual((aug.POLICIES[1].hflip, aug.POLICIES[1].vflip), (0.0, 0.0), "chest X-ray must not be flipped")
        self.assertEqual(aug.POLICIES[2].vflip, 0.0, "ultrasound: the probe stays at the top")
        self.assertTrue(aug.POLICIES[1].grey and aug.POLICIES[2].grey)
        g = torch.Generator().manual_seed(3)
        img = torch.zeros(2, 3, 32, 32)
        img[:, :, :20, :] = torch.linspace(0, 255, 32)  # grey ramp, content 32x20
        m = torch.zeros(2, 1, 32, 32)
        m[:, :, 5:10, 5:10] = 1
        a, b = aug.augment(img, m, torch.tensor([[32, 20], [32, 20]]), torch.tensor([1, 2]), g)
        self.assertLess(float((a[:, 0] - a[:, 1]).abs().max() + (a[:, 1] - a[:, 2]).abs().max()), 1e-3,
                        "grey images stay grey")
        self.assertTrue(float(a.min()) >= 0 and float(a.max()) <= 255)


class TestTraining(OneThread):
    def test_steps_lower_the_loss(self):
        need_data()
        rows = [r for r in data.select(SEG2D, "train") if r["dataset"] in ("ph2", "covid-cxr-seg", "busi", "polypgen")]
        pick = [next(r for r in rows if r["dataset"] == d) for d in ("ph2", "covid-cxr-seg", "busi", "polypgen")]
        packed = data.Packed.build(SEG2D, pick, 64)
        img, msk, sizes, chans = train.batch_tensors(packed, np.arange(4))
        torch.manual_seed(0)
        model = build_model("tiny", 64).train()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

        def loss():
            logits, patch = model.forward_with_patch(img, chans)
            return train.seg_losses(logits, patch, msk)["loss"]

        first = float(loss())
        for _ in range(12):
            opt.zero_grad()
            l = loss()
            l.backward()
            opt.step()
        last = float(loss())
        self.assertLess(last, 0.8 * first, f"loss {first:.3f} -> {last:.3f}")

    def test_cli_run_and_resume(self):
        need_data()
        with tempfile.TemporaryDirectory() as tmp:
            out, rec = os.path.join(tmp, "run"), os.path.join(tmp, "rec.json")
            argv = ["--data", SEG2D, "--out", out, "--widths", "tiny", "--size", "64", "--limit", "2",
                    "--val-every", "2", "--batch", "4", "--epochs", "1", "--record", rec, "--quiet",
                    "--cache", os.path.join(tmp, "cache")]
            self.assertEqual(train.main(argv), 0)
            for f in ("best.pth", "last.pth", "log.jsonl", "summary.json"):
                self.assertTrue(os.path.isfile(os.path.join(out, f)), f)
            with open(rec) as f:
                r = json.load(f)
            self.assertRegex(r["data"]["manifest_sha256"], "^[0-9a-f]{64}$")
            self.assertNotIn("fundus/drishti-gs1", r["data"]["train"])
            self.assertEqual(r["data"]["test_split"], "never read")
            self.assertEqual(set(r["best"]["val"]["channels"]), {str(i) for i in range(6)})
            self.assertEqual(r["steps"], 4)  # 16 datasets x 1 train row (limit 2, every 2nd validates) / 4
            self.assertTrue(os.path.isfile(os.path.join(tmp, "cache-train-s64.npz")))
            build_model("tiny", 64).load_state_dict(torch.load(os.path.join(out, "best.pth")), strict=True)
            # resume: a second epoch continues from step 4
            self.assertEqual(train.main(argv[:-5] + ["--epochs", "2", "--resume", "--quiet", "--cache",
                                                     os.path.join(tmp, "cache")]), 0)
            with open(os.path.join(out, "summary.json")) as f:
                self.assertEqual(json.load(f)["steps"], 4 + 4)
            # ship: the best checkpoint exported to the contract, noted in the record
            onnx_path = os.path.join(tmp, "m.onnx")
            ex = ship.ship(out, rec, onnx_path, "t1")
            self.assertEqual(ex["onnx_sha256"], sha256_file(onnx_path))
            self.assertEqual(ex["checkpoint_sha256"], sha256_file(os.path.join(out, "best.pth")))
            meta = validate_onnx(onnx_path)
            self.assertEqual((meta["espnode.model_name"], meta["espnode.model_version"], meta["espnode.input_size"]),
                             ("esp-medsam-tiny", "t1", "64"))
            self.assertEqual(meta["weights_source"], "espmedsam-tiny-s64-seg2d.pth")
            with open(rec) as f:
                self.assertEqual(json.load(f)["export"]["channels"][0], "dermoscopy")


class TestTiledTraining(OneThread):
    def test_random_crop_keeps_image_and_mask_aligned(self):
        g = torch.Generator().manual_seed(1)
        m = torch.zeros(1, 90, 150)
        m[:, 20:60, 30:100] = 1.0
        img = m.repeat(3, 1, 1) * 255
        for c in (0, 3, 4):
            a, b, v = aug.random_crop(img, m, 64, c, g)
            self.assertEqual((a.shape, b.shape, v.shape), ((3, 64, 64), (1, 64, 64), (1, 64, 64)))
            self.assertLess(float((a / 255 - b.repeat(3, 1, 1)).abs().max()), 1e-4)
        # an image smaller than the crop: zeros beyond its border
        a, b, v = aug.random_crop(img[:, :40, :50], m[:, :40, :50], 64, 1, g)
        self.assertLess(float(v.mean()), 0.6)

    def test_tiled_cache_round_trip(self):
        need_data()
        rows = data.select(SEG2D, "train")
        rows = [r for r in rows if r["dataset"] == "drive"][:3] + [r for r in rows if r["dataset"] == "ph2"][:2]
        with tempfile.TemporaryDirectory() as tmp:
            cache = os.path.join(tmp, "t.npz")
            built = data.Tiled.load_or_build(SEG2D, rows, {3: 96}, cache)
            loaded = data.Tiled.load_or_build(SEG2D, rows, {3: 96}, cache)
        self.assertEqual(len(built), 3)  # only the tiled channel's rows
        self.assertEqual(built.slot, loaded.slot)
        for a, b in zip(built.images + built.masks, loaded.images + loaded.masks):
            np.testing.assert_array_equal(a, b)
            self.assertIsNone(b.base, "a loaded sample must not keep the whole cache array alive")
        self.assertEqual(max(built.images[0].shape[:2]), 96)

    def test_cldice(self):
        t = torch.zeros(2, 1, 64, 64)
        t[:, :, 30:33, 5:60] = 1.0  # a vessel 3 pixels wide
        self.assertLess(float(train.cldice_loss((t * 2 - 1) * 20, t)), 0.02)
        self.assertGreater(float(train.cldice_loss(-torch.ones_like(t) * 20, t)), 0.95)
        sk = train.soft_skeleton(t)
        self.assertGreater(float(sk[0, 0, 31, 10:50].mean()), 0.9)
        self.assertLess(float(sk[0, 0, 30, 10:50].mean() + sk[0, 0, 32, 10:50].mean()), 0.2)

    def test_choose_inputs_keeps_what_validation_and_the_budget_support(self):
        def ch(modes, best):
            return {"modes": modes, "mode": best, "dice": modes[best]["dice"]}
        val = {"channels": {
            "0": ch({"letterbox": {"dice": 0.90, "dice+h": 0.92}}, "letterbox"),  # flip pays: kept
            "2": ch({"letterbox": {"dice": 0.70, "dice+h": 0.702}}, "letterbox"),  # too small a gain
            "3": ch({"tiles:640:192": {"dice": 0.50, "dice+h": 0.52}}, "tiles:640:192"),  # 18 inputs > 12
            "4": ch({"letterbox": {"dice": 0.80, "dice+h": 0.80}, "tiles:448:192": {"dice": 0.805, "dice+h": 0.81}},
                    "tiles:448:192"),  # tiles win by less than 0.01: letterbox
        }}
        tiled_micro = {"channels": {"4": ch({"letterbox": {"dice": 0.57, "dice+h": 0.59},
                                             "tiles:448:192": {"dice": 0.74, "dice+h": 0.75}}, "tiles:448:192")}}
        got = train.choose_inputs(tiled_micro, {4: (448, 192, 0.5)}, 256)["microscopy"]
        self.assertEqual(got["input"]["mode"], "tiles")  # a clear gain
        self.assertNotIn("flips", got["input"])  # 8 inputs: over the 100 ms budget of a non-fundus channel
        self.assertEqual(got["model_inputs_worst_case"], 4)
        got = train.choose_inputs(val, {3: (640, 192, 1.0), 4: (448, 192, 0.5)}, 256)
        self.assertEqual(got["dermoscopy"]["input"], {"mode": "letterbox", "flips": ["h"]})
        self.assertEqual(got["ultrasound"]["input"], {"mode": "letterbox"})
        self.assertEqual(got["fundus"]["input"]["mode"], "tiles")
        self.assertNotIn("flips", got["fundus"]["input"])
        self.assertIn("budget", got["fundus"]["flip_not_kept"])
        self.assertEqual(got["fundus"]["model_inputs_worst_case"], 9)
        self.assertEqual(got["microscopy"]["input"], {"mode": "letterbox"})

    def test_tuned_geometry_needs_the_budget_and_a_clear_gain(self):
        def geo(long_side, stride, dice, inputs):
            return {"long_side": long_side, "stride": stride, "dice": dice, "model_inputs_worst_case": inputs}
        entry = {"trained": "tiles:640:192", "geometries": {
            "tiles:640:192": geo(640, 192, 0.600, 9),
            "tiles:720:232": geo(720, 232, 0.615, 9),
            "tiles:768:192": geo(768, 192, 0.630, 16),  # the best, but 16 inputs exceed fundus's 12
        }}
        spec, why = train.tuned_geometry(entry, 3, 256)
        self.assertEqual((spec.mode, spec.long_side, spec.stride, spec.tile), ("tiles", 720, 232, 256))
        self.assertIn("0.6150 against 0.6000", why)
        entry["geometries"]["tiles:720:232"]["dice"] = 0.603  # under GEOMETRY_MIN_GAIN
        spec, why = train.tuned_geometry(entry, 3, 256)
        self.assertEqual((spec.long_side, spec.stride), (640, 192))
        self.assertIn("training geometry", why)
        # choose_inputs applies the tuning to the tiled channel and says why
        entry["geometries"]["tiles:720:232"]["dice"] = 0.615
        val = {"channels": {"3": {"modes": {"tiles:640:192": {"dice": 0.60, "dice+h": 0.61}}, "mode": "tiles:640:192",
                                  "dice": 0.60}}}
        got = train.choose_inputs(val, {3: (640, 192, 1.0)}, 256, {"fundus": entry})["fundus"]
        self.assertEqual((got["input"]["long_side"], got["input"]["stride"]), (720, 232))
        self.assertIn("tiles:720:232 over", got["geometry"])
        self.assertEqual(got["model_inputs_worst_case"], 9)
        got = train.choose_inputs(val, {3: (640, 192, 1.0)}, 256)["fundus"]
        self.assertEqual(got["input"]["long_side"], 640)
        # a sweep from another run's training geometry does not apply
        val["channels"]["3"]["modes"] = {"tiles:704:224": {"dice": 0.60}}
        val["channels"]["3"]["mode"] = "tiles:704:224"
        got = train.choose_inputs(val, {3: (704, 224, 1.0)}, 256, {"fundus": entry})["fundus"]
        self.assertEqual((got["input"]["long_side"], "geometry" in got), (704, False))

    def test_parse_tiles(self):
        self.assertEqual(train.parse_tiles(["fundus=640:192", "4=448:192@0.5"]), {3: (640, 192, 1.0), 4: (448, 192, 0.5)})
        with self.assertRaises(ValueError):
            train.parse_tiles(["fundus=640:192@0"])

    def test_cli_tiles_cldice_resume_ship(self):
        need_data()
        with tempfile.TemporaryDirectory() as tmp:
            out, rec = os.path.join(tmp, "run"), os.path.join(tmp, "rec.json")
            argv = ["--data", SEG2D, "--out", out, "--widths", "tiny", "--size", "64", "--limit", "2",
                    "--val-every", "2", "--batch", "4", "--epochs", "1", "--channels", "fundus,microscopy",
                    "--tiles", "fundus=128:48", "--tiles", "microscopy=96:48@0.5", "--thin-loss", "cldice",
                    "--checkpoint-every", "1", "--quiet", "--cache", os.path.join(tmp, "cache")]
            self.assertEqual(train.main(argv + ["--record", rec]), 0)
            with open(rec) as f:
                r = json.load(f)
            self.assertEqual(r["steps"], 2)  # 8 datasets x 1 train row / 4
            self.assertEqual(r["inputs"]["fundus"]["input"]["mode"], "tiles")
            self.assertEqual(set(r["best"]["val"]["channels"]["4"]["modes"]), {"letterbox", "tiles:96:48"})
            self.assertEqual(set(r["best"]["val"]["channels"]["3"]["modes"]), {"tiles:128:48"})
            self.assertIn("dice+h", r["best"]["val"]["channels"]["3"]["modes"]["tiles:128:48"])
            self.assertGreater(r["training"]["crops_drawn"], 0)
            self.assertEqual(len(r["history"]), 1)
            self.assertIn("clDice", r["training"]["losses"])
            # resume across a "session": the step count and history continue
            again = list(argv)
            again[again.index("--epochs") + 1] = "2"
            self.assertEqual(train.main(again + ["--resume", "--record", rec]), 0)
            with open(rec) as f:
                r = json.load(f)
            self.assertEqual((r["steps"], len(r["history"]), len(r["throughput"]["sessions"])), (4, 2, 2))
            # plausibility on the run's rows, then ship: metadata and the second output
            from espmedsam import evaluate
            model = evaluate.load_run_model(out, r)
            rows = [x for x in data.select(SEG2D, "train") if x["channel"] in (3, 4)][:6]
            per = evaluate.measure(model, SEG2D, rows, evaluate.record_inputs(r, 64))
            r["plausibility"] = evaluate.plausibility(per, "unit test")
            with open(rec, "w") as f:
                json.dump(r, f)
            onnx_path = os.path.join(tmp, "m.onnx")
            ex = ship.ship(out, rec, onnx_path, "t2")
            meta = validate_onnx(onnx_path)
            self.assertEqual(json.loads(meta["espnode.channel_inputs"])["fundus"]["mode"], "tiles")
            self.assertIn("fundus", json.loads(meta["espnode.plausibility"])["channels"])
            self.assertEqual(ex["channel_inputs"]["fundus"]["long_side"], 128)
            import onnx
            self.assertEqual([o.name for o in onnx.load(onnx_path).graph.output], ["logits", "patch_logits"])
            # another working size for the tiled channel, scored on validation, then shipped without
            # an export: the same graph and weights, the record's inputs and a new version
            from espmedsam import tune
            with open(rec) as f:
                r = json.load(f)
            entry = tune.tune(model, SEG2D, r, "fundus", [(160, 56)], val_every=2)
            self.assertEqual(set(entry["geometries"]), {"tiles:128:48", "tiles:160:56"})
            self.assertEqual(entry["trained"], "tiles:128:48")
            self.assertIn(entry["chosen"], entry["geometries"])
            r["tuning"] = {"fundus": entry}
            with open(rec, "w") as f:
                json.dump(r, f)
            again_path = os.path.join(tmp, "m2.onnx")
            ex2 = ship.ship(out, rec, again_path, "t3", weights_from=onnx_path)
            chosen = entry["geometries"][entry["chosen"]]
            self.assertEqual((ex2["channel_inputs"]["fundus"]["long_side"], ex2["channel_inputs"]["fundus"]["stride"]),
                             (chosen["long_side"], chosen["stride"]))
            self.assertEqual((ex2["model_version"], ex2["checkpoint_sha256"]), ("t3", ex["checkpoint_sha256"]))
            a, b = onnx.load(onnx_path).graph, onnx.load(again_path).graph
            self.assertEqual([t.SerializeToString() for t in a.initializer], [t.SerializeToString() for t in b.initializer])
            self.assertEqual(len(a.node), len(b.node))
            r["export"]["checkpoint_sha256"] = "0" * 64
            with open(rec, "w") as f:
                json.dump(r, f)
            with self.assertRaisesRegex(ValueError, "the record describes"):
                ship.ship(out, rec, os.path.join(tmp, "m3.onnx"), "t4", weights_from=onnx_path)


class TestDistill(OneThread):
    def test_med_only_and_mse_drops(self):
        torch.manual_seed(0)
        teacher = build_model("tiny", 64, seed=1).eval()
        student = build_model("tiny", 64, seed=2).train()
        params = train.med_only(student)
        names = {n for n, p in student.named_parameters() if p.requires_grad}
        self.assertTrue(names and all("med" in n for n in names))
        frozen = {n: p.detach().clone() for n, p in student.named_parameters() if "med" not in n}
        img = torch.rand(2, 3, 64, 64) * 255
        opt = torch.optim.Adam(params, lr=1e-2)
        first = float(train.distill_loss(student, teacher, img))
        for _ in range(10):
            opt.zero_grad()
            l = train.distill_loss(student, teacher, img)
            l.backward()
            opt.step()
        last = float(train.distill_loss(student, teacher, img))
        self.assertLess(last, first)
        for n, p in student.named_parameters():
            if n in frozen:
                self.assertTrue(torch.equal(p, frozen[n]), f"{n} changed")

    def test_cli_distill(self):
        need_data()
        with tempfile.TemporaryDirectory() as tmp:
            tpath = os.path.join(tmp, "teacher.pth")
            torch.save(build_model("tiny", 64, seed=1).state_dict(), tpath)
            spath = os.path.join(tmp, "student.pth")
            torch.save(build_model("tiny", 64, seed=2).state_dict(), spath)
            out = os.path.join(tmp, "run")
            self.assertEqual(train.main(["--data", SEG2D, "--out", out, "--mode", "distill", "--teacher", tpath,
                                         "--teacher-widths", "tiny", "--init", spath, "--widths", "tiny",
                                         "--size", "64", "--limit", "2", "--val-every", "2", "--batch", "4",
                                         "--epochs", "0.5", "--quiet"]), 0)
            with open(os.path.join(out, "summary.json")) as f:
                s = json.load(f)
            self.assertEqual(s["mode"], "distill")
            self.assertIn("mse", s["final"])
            before = build_model("tiny", 64, seed=2).state_dict()
            after = torch.load(os.path.join(out, "last.pth"))["model"]
            changed = {n for n in before if not torch.equal(before[n], after[n])}
            self.assertTrue(changed and all("med" in n for n in changed), sorted(changed)[:5])


if __name__ == "__main__":
    unittest.main()
