"""The published model's state dict is the checkpoints': every name and shape, strict loading."""

import os
import tempfile
import unittest

import torch

import util
from espmedsam import build_model
from espmedsam.export import extract_state_dict, load_checkpoint
from espmedsam.model import count_parameters


class StateDictTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = build_model("published", 1024)
        cls.ref = util.parse_state_dict_listing(util.reference_path())

    def test_reference_listing_parsed(self):
        self.assertEqual(len(self.ref), 504)
        self.assertEqual(self.ref[0], ("SemiTViT.patch_embed.seq.0.c.weight", (32, 3, 3, 3)))
        self.assertEqual(self.ref[-1], ("mask_query.weight", (7, 256)))
        self.assertIn(("SemiTViT.patch_embed.seq.0.bn.num_batches_tracked", ()), self.ref)

    def test_names_and_shapes_match_reference(self):
        mine = [(k, tuple(v.shape)) for k, v in self.model.state_dict().items()]
        ref_d, mine_d = dict(self.ref), dict(mine)
        self.assertEqual(sorted(set(ref_d) - set(mine_d)), [], "missing from the model")
        self.assertEqual(sorted(set(mine_d) - set(ref_d)), [], "not in the checkpoints")
        wrong = [(k, mine_d[k], ref_d[k]) for k in ref_d if mine_d[k] != ref_d[k]]
        self.assertEqual(wrong, [], "shape mismatches (name, model, reference)")
        self.assertEqual([k for k, _ in mine], [k for k, _ in self.ref], "order differs")

    def test_parameter_counts_match_the_doc(self):
        m = self.model
        total = count_parameters(m)
        self.assertAlmostEqual(total / 1e6, 12.79, delta=0.005)
        self.assertAlmostEqual(count_parameters(m, "SemiTViT") / 1e6, 9.21, delta=0.005)
        med = sum(p.numel() for n, p in m.named_parameters() if "med" in n)
        self.assertAlmostEqual(med / 1e6, 3.14, delta=0.005)
        self.assertAlmostEqual(count_parameters(m, "SemiTViT.head") / 1e6, 0.32, delta=0.005)
        self.assertAlmostEqual(count_parameters(m, "mask_decoder") / 1e6, 3.51, delta=0.01)
        self.assertAlmostEqual(count_parameters(m, "patch_decoder") / 1e6, 0.07, delta=0.005)

    def test_strict_load_of_saved_state_dict(self):
        src = build_model("published", 1024, seed=3)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "ESP_isic_best.pth")
            torch.save(src.state_dict(), path)
            dst = build_model("published", 1024, seed=4)
            self.assertFalse(torch.equal(dst.mask_query.weight, src.mask_query.weight))
            load_checkpoint(dst, path)
        a, b = src.state_dict(), dst.state_dict()
        for k in a:
            self.assertTrue(torch.equal(a[k], b[k]), k)

    def test_strict_load_rejects_mismatches(self):
        sd = build_model("published", 1024).state_dict()
        missing = dict(sd)
        missing.pop("SemiTViT.layers.1.blocks.0.attn.deep_QKV_embeddings_med")
        with self.assertRaises(RuntimeError):
            build_model("published", 1024).load_state_dict(missing, strict=True)
        extra = dict(sd, **{"mask_decoder.iou_token.weight": torch.zeros(1, 256)})
        with self.assertRaises(RuntimeError):
            build_model("published", 1024).load_state_dict(extra, strict=True)
        # compact widths are a different model: published weights must not load into it
        with self.assertRaises(RuntimeError):
            build_model("compact", 1024).load_state_dict(sd, strict=True)

    def test_checkpoint_wrappers(self):
        sd = {"a.weight": torch.zeros(2)}
        self.assertEqual(list(extract_state_dict({"state_dict": sd})), ["a.weight"])
        self.assertEqual(list(extract_state_dict({"model": sd, "epoch": 3})), ["a.weight"])
        self.assertEqual(list(extract_state_dict({"module.a.weight": torch.zeros(2)})), ["a.weight"])
        with self.assertRaises(ValueError):
            extract_state_dict({"epoch": 3})

    def test_state_dict_independent_of_input_size(self):
        """Window sizes, not the input size, fix every shape: the published weights load at any S."""
        sd = build_model("published", 1024, seed=1).state_dict()
        build_model("published", 512).load_state_dict(sd, strict=True)

    def test_other_presets_keep_the_names(self):
        names = [k for k, _ in self.ref]
        for widths in ("compact", "tiny"):
            self.assertEqual(list(build_model(widths, 256).state_dict()), names, widths)


if __name__ == "__main__":
    unittest.main()
