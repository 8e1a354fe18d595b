"""Prompt encoder (positional encoding only) and the QDMD mask decoder.

The decoder is SAM's two-way transformer run on ``num_queries`` learned query tokens with no
sparse prompts; each of the first ``num_masks`` queries yields one mask through one shared
hypernetwork MLP. Here only the chosen query of each sample is turned into a mask (gathered per
sample), which equals computing all masks and selecting one.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerNorm2d, MLP


class RandomFourierPE(nn.Module):
    """SAM's positional encoding with random spatial frequencies (``pe_layer``)."""

    def __init__(self, num_feats: int):
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, num_feats))

    def grid(self, h: int, w: int) -> torch.Tensor:
        """(C, h, w) encoding of the centres of an h x w grid."""
        m = self.positional_encoding_gaussian_matrix
        ys = (torch.arange(h, dtype=torch.float32, device=m.device) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32, device=m.device) + 0.5) / w
        coords = torch.stack([xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)], dim=-1)
        proj = (2.0 * coords - 1.0) @ m * (2.0 * math.pi)
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1).permute(2, 0, 1)


class PromptEncoder(nn.Module):
    """SAM's prompt encoder. ESP-MedSAM uses only its dense positional encoding; the point,
    box and mask parts are kept so that checkpoints load strictly."""

    def __init__(self, dim: int, embed_size: int, mask_in_chans: int):
        super().__init__()
        self.embed_size = embed_size
        self.pe_layer = RandomFourierPE(dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, dim)
        c = mask_in_chans
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, c // 4, 2, 2), LayerNorm2d(c // 4), nn.GELU(),
            nn.Conv2d(c // 4, c, 2, 2), LayerNorm2d(c), nn.GELU(),
            nn.Conv2d(c, dim, 1),
        )
        self.no_mask_embed = nn.Embedding(1, dim)

    def get_dense_pe(self) -> torch.Tensor:
        """(1, C, e, e) positional encoding of the image embedding grid."""
        return self.pe_layer.grid(self.embed_size, self.embed_size).unsqueeze(0)


class Attention(nn.Module):
    """Multi-head attention with projections to ``dim // downsample`` (SAM's decoder attention)."""

    def __init__(self, dim, num_heads, downsample=1):
        super().__init__()
        self.num_heads = num_heads
        self.internal = dim // downsample
        self.head_dim = self.internal // num_heads
        self.q_proj = nn.Linear(dim, self.internal)
        self.k_proj = nn.Linear(dim, self.internal)
        self.v_proj = nn.Linear(dim, self.internal)
        self.out_proj = nn.Linear(self.internal, dim)

    def _heads(self, x):  # (B, N, C) -> (B, h, N, C/h)
        return x.reshape(x.shape[0], x.shape[1], self.num_heads, -1).transpose(1, 2)

    def forward(self, q, k, v):
        q = self._heads(self.q_proj(q))
        k = self._heads(self.k_proj(k))
        v = self._heads(self.v_proj(v))
        attn = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        out = attn.softmax(dim=-1) @ v
        out = out.transpose(1, 2)
        return self.out_proj(out.reshape(out.shape[0], out.shape[1], self.internal))


class MLPBlock(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.lin2(F.relu(self.lin1(x)))


class TwoWayBlock(nn.Module):
    """Token self-attention, token-to-image attention, MLP, image-to-token attention."""

    def __init__(self, dim, num_heads, mlp_dim, downsample, skip_first_pe):
        super().__init__()
        self.self_attn = Attention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, num_heads, downsample)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, num_heads, downsample)
        self.skip_first_pe = skip_first_pe

    def forward(self, queries, keys, query_pe, key_pe):
        if self.skip_first_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(queries + query_pe, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, queries + query_pe, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    def __init__(self, depth, dim, num_heads, mlp_dim, downsample):
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayBlock(dim, num_heads, mlp_dim, downsample, skip_first_pe=(i == 0)) for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(dim, num_heads, downsample)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image, image_pe, tokens):
        """image (B, C, h, w), image_pe (1, C, h, w), tokens (B, T, C) -> (tokens, image tokens)."""
        keys = image.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, key_pe)
        attn = self.final_attn_token_to_image(queries + tokens, keys + key_pe, keys)
        queries = self.norm_final_attn(queries + attn)
        return queries, keys


class MaskDecoder(nn.Module):
    """QDMD: two-way transformer, x4 upscaling, one shared hypernetwork MLP."""

    def __init__(self, dim, depth, num_heads, mlp_dim, downsample):
        super().__init__()
        self.dim = dim
        self.transformer = TwoWayTransformer(depth, dim, num_heads, mlp_dim, downsample)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, 2, 2), LayerNorm2d(dim // 4), nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, 2, 2), nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList([MLP(dim, dim, dim // 8, 3)])

    def forward(self, image, image_pe, tokens, query_index):
        """image (B, C, h, w); tokens (B, T, C); query_index int64 (B,) -> masks (B, 1, 4h, 4w)."""
        h, w = image.shape[-2], image.shape[-1]
        hs, keys = self.transformer(image, image_pe, tokens)
        feats = keys.transpose(1, 2).reshape(-1, self.dim, h, w)
        up = self.output_upscaling(feats)  # (B, C/8, 4h, 4w)
        # each sample's own query (GatherElements in ONNX: no Python loop over the batch)
        idx = query_index.view(-1, 1, 1).repeat(1, 1, self.dim)
        chosen = torch.gather(hs, 1, idx)  # (B, 1, C)
        hyper = self.output_hypernetworks_mlps[0](chosen)  # (B, 1, C/8)
        masks = hyper @ up.flatten(2)  # (B, 1, 16hw)
        return masks.reshape(-1, 1, 4 * h, 4 * w)

    def all_masks(self, image, image_pe, tokens, num_masks):
        """Every modality's mask, (B, num_masks, 4h, 4w): the reference the gather must equal."""
        h, w = image.shape[-2], image.shape[-1]
        hs, keys = self.transformer(image, image_pe, tokens)
        up = self.output_upscaling(keys.transpose(1, 2).reshape(-1, self.dim, h, w))
        hyper = self.output_hypernetworks_mlps[0](hs[:, :num_masks])
        return (hyper @ up.flatten(2)).reshape(-1, num_masks, 4 * h, 4 * w)
