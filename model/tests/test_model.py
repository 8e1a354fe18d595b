"""Forward behaviour: shapes at 1024, per-sample queries in mixed batches, clamping, the MMDKD
attention against a direct formula, normalisation inside the model."""

import itertools
import unittest

import torch

import util
from espmedsam import build_model
from espmedsam.config import preset
from espmedsam.encoder import WindowAttention, relative_offset_index
from espmedsam.model import NORMALIZATIONS


class PublishedForwardTest(unittest.TestCase):
    def test_forward_1024(self):
        model = build_model("published", 1024, seed=0)
        seen = {}
        model.SemiTViT.register_forward_hook(lambda m, i, o: seen.__setitem__("emb", o.shape))
        model.patch_decoder.register_forward_hook(lambda m, i, o: seen.__setitem__("patch", o.shape))
        with torch.no_grad():
            out = model(util.image_batch(1, 1024), torch.tensor([3]))
        self.assertEqual(tuple(out.shape), (1, 1, 1024, 1024))
        self.assertEqual(tuple(seen["emb"]), (1, 256, 64, 64))
        self.assertEqual(tuple(seen["patch"]), (1, 1, 32, 32))
        self.assertTrue(torch.isfinite(out).all())
        self.assertGreater(out.std().item(), 1e-3)  # not a constant map


class TinyModelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = build_model("tiny", 256, seed=0, calibrate=True)
        cls.x = util.image_batch(4, 256, seed=5)

    def run_model(self, x, mods):
        with torch.no_grad():
            return self.model(x, torch.tensor(mods, dtype=torch.int64))

    def test_mixed_batch_equals_single_runs(self):
        mods = [5, 0, 3, 2]
        batch = self.run_model(self.x, mods)
        self.assertEqual(tuple(batch.shape), (4, 1, 256, 256))
        for i, m in enumerate(mods):
            single = self.run_model(self.x[i:i + 1], [m])
            self.assertLess((batch[i] - single[0]).abs().max().item(), 1e-4, f"sample {i}")

    def test_each_sample_gets_its_own_query(self):
        mods = [5, 0, 3, 2]
        batch = self.run_model(self.x, mods)
        with torch.no_grad():
            every, _, _ = self.model.forward_all(self.x)
        self.assertEqual(tuple(every.shape), (4, 6, 256, 256))
        for i, m in enumerate(mods):
            diffs = [(batch[i, 0] - every[i, q]).abs().max().item() for q in range(6)]
            self.assertLess(diffs[m], 1e-5, f"sample {i}: not query {m}")
            self.assertEqual(min(range(6), key=diffs.__getitem__), m)
            self.assertGreater(sorted(diffs)[1], 1e-3)  # the other queries really differ

    def test_modality_is_clamped(self):
        out = self.run_model(self.x[:4], [-7, 0, 99, 5])
        ref = self.run_model(self.x[:4], [0, 0, 5, 5])
        self.assertTrue(torch.equal(out, ref))
        self.assertEqual(self.model.query_index(torch.tensor([-1, 2, 6, 1 << 40])).tolist(), [0, 2, 5, 5])

    def test_int32_modality_accepted(self):
        a = self.model(self.x[:1], torch.tensor([3], dtype=torch.int32))
        b = self.model(self.x[:1], torch.tensor([3]))
        self.assertTrue(torch.equal(a, b))

    def test_normalisation_inside_the_model(self):
        model = build_model("tiny", 256, seed=0)
        x = self.x[:1]
        mean = torch.tensor(NORMALIZATIONS["mean_over_mean"][0]).view(1, 3, 1, 1)
        with torch.no_grad():
            emb = model.encode(x)[1]
            direct = model.SemiTViT((x - mean) / mean)
            self.assertLess((emb - direct).abs().max().item(), 1e-6)
            a = model(x, torch.tensor([1]))
            model.set_normalization("imagenet")
            std = torch.tensor(NORMALIZATIONS["imagenet"][1]).view(1, 3, 1, 1)
            self.assertLess((model.encode(x)[1] - model.SemiTViT((x - mean) / std)).abs().max().item(), 1e-6)
            b = model(x, torch.tensor([1]))
        self.assertGreater((a - b).abs().max().item(), 1e-3)
        with self.assertRaises(ValueError):
            model.set_normalization("none-such")

    def test_patch_prompt_sees_both_classes(self):
        """The inputs used by tests and fixtures exercise both values of the SPPG prompt."""
        with torch.no_grad():
            _, _, patch = self.model.encode(self.x)
        self.assertEqual(tuple(patch.shape), (4, 1, 8, 8))
        frac = (patch >= 0).float().mean().item()
        self.assertTrue(0.02 < frac < 0.98, frac)

    def test_dense_prompt_is_the_thresholded_patch_map(self):
        with torch.no_grad():
            src, emb, patch = self.model.encode(self.x[:2])
            hard = (patch >= 0).float().repeat_interleave(2, 2).repeat_interleave(2, 3)
            self.assertLess((src - emb - self.model.dense_prompter(hard)).abs().max().item(), 1e-6)

    def test_random_weights_depend_only_on_seed(self):
        a = build_model("tiny", 256, seed=7).state_dict()
        b = build_model("tiny", 256, seed=7).state_dict()
        c = build_model("tiny", 256, seed=8).state_dict()
        self.assertTrue(all(torch.equal(a[k], b[k]) for k in a))
        self.assertFalse(torch.equal(a["mask_query.weight"], c["mask_query.weight"]))
        # no branch left at zero by the random initialisation
        zero = [k for k, v in a.items() if v.is_floating_point() and v.abs().max() == 0]
        self.assertEqual(zero, [])

    def test_sizes(self):
        for widths, size in (("tiny", 64), ("compact", 320)):
            m = build_model(widths, size, seed=1)
            with torch.no_grad():
                out = m(util.image_batch(2, size, 1), torch.tensor([1, 4]))
            self.assertEqual(tuple(out.shape), (2, 1, size, size))
            self.assertTrue(torch.isfinite(out).all())
        with self.assertRaises(ValueError):
            preset("published", 1000)


def reference_window_attention(attn: WindowAttention, x):
    """The MMDKD attention written out directly: K and V extended with the med token, TinyViT's
    bias added to the first T columns, the med bias to the last one."""
    b, t, _ = x.shape
    h, kd = attn.num_heads, attn.key_dim
    qkv = attn.qkv(attn.norm(x)).view(b, t, h, -1)
    q, k, v = qkv.split([kd, kd, kd], dim=3)
    q, k, v = (z.permute(0, 2, 1, 3) for z in (q, k, v))
    med = attn.deep_QKV_embeddings_med.expand(b, -1, -1, -1)
    k, v = torch.cat([k, med], 2), torch.cat([v, med], 2)
    scores = (q @ k.transpose(-2, -1)) * kd ** -0.5
    n = int(t ** 0.5)
    pts = list(itertools.product(range(n), range(n)))
    offsets = {}
    bias = torch.zeros(h, t, t)
    for i, p1 in enumerate(pts):
        for j, p2 in enumerate(pts):
            o = offsets.setdefault((abs(p1[0] - p2[0]), abs(p1[1] - p2[1])), len(offsets))
            bias[:, i, j] = attn.attention_biases[:, o]
    scores = scores.clone()
    scores[..., :t] += bias
    scores[..., t:] += attn.med_attention_biases
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, -1)
    return attn.proj(out)


class AttentionTest(unittest.TestCase):
    def test_matches_direct_formula(self):
        torch.manual_seed(0)
        for dim, heads, window in ((64, 2, 7), (96, 3, 14)):
            attn = WindowAttention(dim, heads, window).eval()
            with torch.no_grad():
                for p in attn.parameters():
                    p.copy_(torch.randn_like(p) * 0.3)
                x = torch.randn(3, window * window, dim)
                got, want = attn(x), reference_window_attention(attn, x)
            self.assertLess((got - want).abs().max().item(), 1e-5, (dim, heads, window))

    def test_offset_index(self):
        idx, n = relative_offset_index(7)
        self.assertEqual(tuple(idx.shape), (49, 49))
        self.assertEqual(n, 49)
        self.assertTrue(torch.equal(idx, idx.t()))
        self.assertTrue((idx.diagonal() == 0).all())
        self.assertEqual(int(idx[0, 48]), 48)  # offset (6, 6), the last one first seen
        self.assertEqual(relative_offset_index(14)[1], 196)

    def test_window_padding_is_per_window(self):
        """Tokens of one window do not see another window: changing the bottom-right corner of the
        token grid leaves the top-left window's attention output unchanged."""
        cfg = preset("tiny", 256)
        model = build_model("tiny", 256, seed=2)
        blk = model.SemiTViT.layers[1].blocks[0]  # 32x32 tokens, window 7 (padded to 35)
        x = torch.randn(1, 32 * 32, cfg.embed_dims[1])
        y = x.clone().view(1, 32, 32, -1)
        y[:, 20:, 20:] = torch.randn_like(y[:, 20:, 20:])
        with torch.no_grad():
            a = blk._windowed_attention(x).view(1, 32, 32, -1)
            b = blk._windowed_attention(y.view(1, 1024, -1)).view(1, 32, 32, -1)
        self.assertLess((a[:, :14, :14] - b[:, :14, :14]).abs().max().item(), 1e-6)
        self.assertGreater((a[:, 21:, 21:] - b[:, 21:, 21:]).abs().max().item(), 1e-3)


if __name__ == "__main__":
    unittest.main()
