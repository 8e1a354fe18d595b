"""fromonnx: the state dict recovered from an exported file is the same function as the file,
and its BatchNorms start fine-tuning where the file is."""

import os
import tempfile
import unittest

import torch

import util  # noqa: F401  (thread count)
from espmedsam import build_model, export as ex, fromonnx
from espmedsam.parity import make_inputs

UNUSED_PREFIXES = ("SemiTViT.head.", "SemiTViT.norm_head.", "prompt_encoder.")


class FromOnnxTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.size = 64
        cls.source = build_model("tiny", cls.size, seed=3)
        cls.paths = {}
        for patch in (False, True):
            path = os.path.join(cls.tmp.name, f"tiny-patch{int(patch)}.onnx")
            ex.export(path, model=cls.source, widths="tiny", size=cls.size, patch_output=patch,
                      model_version="1.0.0-test")
            cls.paths[patch] = path
        cls.images = torch.from_numpy(make_inputs(6, cls.size, seed=11))
        cls.modality = torch.arange(6) % 6
        # (patch output, calibrated) -> (state dict, report); recovering exports a reference, so share them
        cls.cases = {(patch, cal): fromonnx.recover(cls.paths[patch], "tiny", cls.images if cal else None)
                     for patch, cal in ((False, False), (False, True), (True, False))}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def recovered(self, sd):
        m = build_model("tiny", self.size)
        m.load_state_dict(sd, strict=True)
        return m.eval()

    @torch.no_grad()
    def test_same_function_as_the_file(self):
        want = self.source.eval()(self.images, self.modality)
        for (patch, cal), (sd, report) in self.cases.items():
            with self.subTest(patch_output=patch, calibrated=cal):
                m = self.recovered(sd)
                self.assertLess(float((m(self.images, self.modality) - want).abs().max()), 1e-4)
                if cal or patch:  # the initialisers themselves, compared by name after a re-export
                    self.assertLess(fromonnx.reexport_diff(m, self.paths[patch]), 1e-5)
                self.assertGreater(report["fused_convbn"], 0)
                self.assertGreater(report["transposed"], 0)
                for name in report["unused"]:
                    self.assertTrue(name.startswith(UNUSED_PREFIXES), name)

    @torch.no_grad()
    def test_weights_that_survive_export_come_back_exactly(self):
        sd, report = self.cases[(True, False)]
        src = self.source.state_dict()
        fused = {n for n, mod in self.source.named_modules() if isinstance(mod, fromonnx.ConvBN)}
        checked = 0
        for name, t in sd.items():
            if name in report["unused"] or any(name.startswith(f + ".") for f in fused) or not t.is_floating_point():
                continue
            self.assertTrue(torch.equal(t, src[name]), name)
            checked += 1
        self.assertGreater(checked, 100)

    @torch.no_grad()
    def test_calibrated_batchnorm_agrees_in_train_mode(self):
        # on the calibration batch itself, batch statistics are the running ones: train mode is eval mode
        m = self.recovered(self.cases[(False, True)][0])
        ev = m.eval()(self.images, self.modality)
        tr = m.train()(self.images, self.modality)
        self.assertLess(float((ev - tr).abs().max()), 1e-3)
        # uncalibrated, the identity BN is exact only in eval mode
        m0 = self.recovered(self.cases[(False, False)][0])
        tr0 = m0.train()(self.images, self.modality)
        self.assertGreater(float((ev - tr0).abs().max()), 1e-2)

    def test_another_preset_is_refused(self):
        with self.assertRaisesRegex(ValueError, "reference export"):
            fromonnx.recover(self.paths[False], "compact")


if __name__ == "__main__":
    unittest.main()
