"""The image encoder: MobileSAM's TinyViT-5M with ESP-MedSAM's "med" branches (MMDKD).

Module and parameter names follow the published checkpoints (``SemiTViT.*``).
Written for export: no Python-side batch size (``-1`` in reshapes), static spatial sizes
from the configuration, the attention bias is concatenated rather than added in place.
"""

import itertools
import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerNorm2d


class ConvBN(nn.Sequential):
    """Conv2d without bias followed by BatchNorm2d (names ``c`` and ``bn``)."""

    def __init__(self, cin, cout, kernel=1, stride=1, pad=0, groups=1, bn_weight_init=1.0):
        super().__init__()
        self.add_module("c", nn.Conv2d(cin, cout, kernel, stride, pad, groups=groups, bias=False))
        bn = nn.BatchNorm2d(cout)
        nn.init.constant_(bn.weight, bn_weight_init)
        nn.init.zeros_(bn.bias)
        self.add_module("bn", bn)


class Stem(nn.Module):
    """Two stride-2 3x3 convolutions: 3 -> C/2 -> C, GELU between (``patch_embed``)."""

    def __init__(self, in_chans, dim):
        super().__init__()
        self.seq = nn.Sequential(ConvBN(in_chans, dim // 2, 3, 2, 1), nn.GELU(), ConvBN(dim // 2, dim, 3, 2, 1))

    def forward(self, x):
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, 3x3 depthwise, 1x1 project, residual, GELU."""

    def __init__(self, dim, expand_ratio):
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1 = ConvBN(dim, hidden)
        self.conv2 = ConvBN(hidden, hidden, 3, 1, 1, groups=hidden)
        self.conv3 = ConvBN(hidden, dim, bn_weight_init=0.0)
        self.act = nn.GELU()

    def forward(self, x):
        y = self.act(self.conv1(x))
        y = self.act(self.conv2(y))
        y = self.conv3(y)
        return self.act(x + y)


class PatchMerging(nn.Module):
    """1x1 conv, 3x3 depthwise conv (stride 2, or 1 for the last merging), 1x1 conv.

    Takes NCHW or tokens (B, H*W, C) at ``resolution``; returns tokens (B, H'*W', C')."""

    def __init__(self, resolution: Tuple[int, int], dim, out_dim, stride):
        super().__init__()
        self.resolution = resolution
        self.dim = dim
        self.conv1 = ConvBN(dim, out_dim)
        self.conv2 = ConvBN(out_dim, out_dim, 3, stride, 1, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim)
        self.act = nn.GELU()

    def forward(self, x):
        if x.dim() == 3:
            h, w = self.resolution
            x = x.reshape(-1, h, w, self.dim).permute(0, 3, 1, 2)
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        x = self.conv3(x)
        return x.flatten(2).transpose(1, 2)


class ConvStage(nn.Module):
    def __init__(self, dim, out_dim, depth, resolution, expand_ratio):
        super().__init__()
        self.blocks = nn.ModuleList([MBConv(dim, expand_ratio) for _ in range(depth)])
        self.downsample = PatchMerging(resolution, dim, out_dim, stride=2)

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x)


class TokenMlp(nn.Module):
    """LayerNorm, Linear, GELU, Linear (``mlp`` and the ``med_dah`` adapter)."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.act = nn.GELU()

    def forward(self, x):
        return self.fc2(self.act(self.fc1(self.norm(x))))


def relative_offset_index(window: int) -> Tuple[torch.Tensor, int]:
    """TinyViT's attention-bias index: for every pair of positions in a window, the index of
    their (|dy|, |dx|) offset, offsets numbered in order of first appearance."""
    points = list(itertools.product(range(window), range(window)))
    table = {}
    idx = []
    for a in points:
        for b in points:
            key = (abs(a[0] - b[0]), abs(a[1] - b[1]))
            idx.append(table.setdefault(key, len(table)))
    n = len(points)
    return torch.tensor(idx, dtype=torch.long).view(n, n), len(table)


class WindowAttention(nn.Module):
    """Multi-head attention inside one window, with TinyViT's offset bias and the MMDKD branch:
    one learned key/value token per head (``deep_QKV_embeddings_med``) appended to K and V,
    with a learned scalar bias (``med_attention_biases``) on its column."""

    def __init__(self, dim, num_heads, window, num_med_tokens=1):
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = dim // num_heads
        self.value_dim = self.key_dim  # attention ratio 1
        self.scale = self.key_dim ** -0.5
        self.tokens = window * window
        self.num_med_tokens = num_med_tokens
        idx, n_offsets = relative_offset_index(window)
        # own parameters first: their order is the checkpoint's
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, n_offsets))
        self.med_attention_biases = nn.Parameter(torch.zeros(num_med_tokens))
        self.deep_QKV_embeddings_med = nn.Parameter(torch.zeros(num_heads, num_med_tokens, self.key_dim))
        bound = math.sqrt(6.0 / float(3 * 16 * 16 + 16))
        nn.init.uniform_(self.deep_QKV_embeddings_med, -bound, bound)
        self.register_buffer("attention_bias_idxs", idx, persistent=False)
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, num_heads * (2 * self.key_dim + self.value_dim))
        self.proj = nn.Linear(num_heads * self.value_dim, dim)

    def bias(self) -> torch.Tensor:
        """(heads, T, T + med tokens): offset bias, then the med token's bias column.
        Depends on parameters only, so the exporter folds it into one constant."""
        ab = self.attention_biases[:, self.attention_bias_idxs]
        med = self.med_attention_biases.view(1, 1, -1).expand(self.num_heads, self.tokens, self.num_med_tokens)
        return torch.cat([ab, med], dim=-1)

    def forward(self, x):  # x: (B', T, C), T = window^2
        t = self.tokens
        x = self.norm(x)
        qkv = self.qkv(x).reshape(-1, t, self.num_heads, 2 * self.key_dim + self.value_dim)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.value_dim], dim=3)
        q = q.permute(0, 2, 1, 3)
        k = k.permute(0, 2, 1, 3)
        v = v.permute(0, 2, 1, 3)
        med = self.deep_QKV_embeddings_med  # (heads, M, d): the same token is key and value
        # scores against the window's keys and against the med token(s), by broadcasting (no
        # per-batch expand), then one softmax over both
        scores = torch.cat([q @ k.transpose(-2, -1), q @ med.transpose(-2, -1)], dim=-1)
        attn = (scores * self.scale + self.bias()).softmax(dim=-1)
        out = attn[..., :t] @ v + attn[..., t:] @ med
        out = out.transpose(1, 2).reshape(-1, t, self.num_heads * self.value_dim)
        return self.proj(out)


class TinyViTBlock(nn.Module):
    """Window attention (zero-padded to whole windows) + residual, 3x3 depthwise conv, then
    ``x + mlp(x) + med_dah(x)``."""

    def __init__(self, dim, resolution, num_heads, window, mlp_ratio, local_conv_size):
        super().__init__()
        self.dim = dim
        self.resolution = resolution
        self.window = window
        self.attn = WindowAttention(dim, num_heads, window)
        hidden = int(dim * mlp_ratio)
        self.mlp = TokenMlp(dim, hidden)
        self.local_conv = ConvBN(dim, dim, local_conv_size, 1, local_conv_size // 2, groups=dim)
        self.med_dah = TokenMlp(dim, hidden)

    def _windowed_attention(self, x):
        h, w = self.resolution
        ws, c = self.window, self.dim
        if h == ws and w == ws:
            return self.attn(x)
        x = x.reshape(-1, h, w, c)
        pad_b = (ws - h % ws) % ws
        pad_r = (ws - w % ws) % ws
        if pad_b or pad_r:
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        ph, pw = h + pad_b, w + pad_r
        nh, nw = ph // ws, pw // ws
        x = x.reshape(-1, nh, ws, nw, ws, c).transpose(2, 3).reshape(-1, ws * ws, c)
        x = self.attn(x)
        x = x.reshape(-1, nh, nw, ws, ws, c).transpose(2, 3).reshape(-1, ph, pw, c)
        if pad_b or pad_r:
            x = x[:, :h, :w]
        return x.reshape(-1, h * w, c)

    def forward(self, x):  # (B, H*W, C)
        h, w = self.resolution
        x = x + self._windowed_attention(x)
        x = x.transpose(1, 2).reshape(-1, self.dim, h, w)
        x = self.local_conv(x)
        x = x.flatten(2).transpose(1, 2)
        return x + self.mlp(x) + self.med_dah(x)


class AttentionStage(nn.Module):
    def __init__(self, dim, resolution, depth, num_heads, window, mlp_ratio, local_conv_size,
                 out_dim=None, merge_stride=2):
        super().__init__()
        self.blocks = nn.ModuleList([
            TinyViTBlock(dim, resolution, num_heads, window, mlp_ratio, local_conv_size) for _ in range(depth)
        ])
        self.downsample = PatchMerging(resolution, dim, out_dim, merge_stride) if out_dim is not None else None

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        if self.downsample is not None:
            x = self.downsample(x)
        return x


class SemiTViT(nn.Module):
    """Encoder: stem (stride 4), MBConv stage, three attention stages, neck -> (B, D, S/16, S/16).

    Stage resolutions for input S: S/4 (MBConv), S/8, S/16, S/16 (the last merging has
    stride 1, as in MobileSAM)."""

    def __init__(self, cfg):
        super().__init__()
        dims, depths = cfg.embed_dims, cfg.depths
        r = cfg.img_size // 4
        self.embed_size = cfg.img_size // 16
        self.out_dim = dims[-1]
        self.patch_embed = Stem(3, dims[0])
        res = [r, r // 2, r // 4, r // 4]
        layers = [ConvStage(dims[0], dims[1], depths[0], (res[0], res[0]), cfg.mbconv_expand_ratio)]
        for i in range(1, 4):
            out_dim = dims[i + 1] if i < 3 else None
            layers.append(AttentionStage(
                dims[i], (res[i], res[i]), depths[i], cfg.num_heads[i], cfg.window_sizes[i],
                cfg.mlp_ratio, cfg.local_conv_size, out_dim=out_dim, merge_stride=2 if i == 1 else 1,
            ))
        self.layers = nn.ModuleList(layers)
        # unused classifier head (present in the checkpoints)
        self.norm_head = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], cfg.num_classes)
        d = cfg.prompt_dim
        self.neck = nn.Sequential(
            nn.Conv2d(dims[-1], d, 1, bias=False), LayerNorm2d(d),
            nn.Conv2d(d, d, 3, padding=1, bias=False), LayerNorm2d(d),
        )

    def forward(self, x):
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        e = self.embed_size
        x = x.transpose(1, 2).reshape(-1, self.out_dim, e, e)
        return self.neck(x)
