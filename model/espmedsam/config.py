"""Hyper-parameters of the network.

``published`` is the released ESP-MedSAM (TinyViT-5M encoder, 256-wide prompt/decoder path);
its state dict matches the published checkpoints. ``compact`` and ``tiny`` keep the same
structure (same stages, depths, query count, module names) with smaller widths; they only
exist for speed (compact) and for small committed test fixtures (tiny). Weights of one
preset never load into another.
"""

from dataclasses import dataclass, field, replace, asdict
from typing import Tuple

NUM_QUERIES = 7  # learned decoder queries; queries 0..5 yield masks, query 6 only attends
NUM_MASKS = 6  # one decoding channel per modality


@dataclass(frozen=True)
class ModelConfig:
    img_size: int = 1024
    # encoder (TinyViT): stage 0 is MBConv, stages 1..3 are attention stages
    embed_dims: Tuple[int, int, int, int] = (64, 128, 160, 320)
    depths: Tuple[int, int, int, int] = (2, 2, 6, 2)
    num_heads: Tuple[int, int, int, int] = (2, 4, 5, 10)
    window_sizes: Tuple[int, int, int, int] = (7, 7, 14, 7)
    mlp_ratio: float = 4.0
    mbconv_expand_ratio: float = 4.0
    local_conv_size: int = 3
    num_classes: int = 1000  # unused classifier head, kept for checkpoint compatibility
    # prompt/decoder width (the image embedding's channels)
    prompt_dim: int = 256
    decoder_depth: int = 2
    decoder_heads: int = 8
    decoder_mlp_dim: int = 2048
    attention_downsample_rate: int = 2
    mask_in_chans: int = 16  # SAM prompt encoder's mask path (unused, kept for compatibility)
    num_queries: int = NUM_QUERIES
    num_masks: int = NUM_MASKS
    widths: str = field(default="published", compare=False)

    def __post_init__(self):
        if self.img_size % 32 != 0 or self.img_size < 64:
            raise ValueError(f"img_size must be a multiple of 32 and >= 64, got {self.img_size}")
        for i in range(1, 4):
            if self.embed_dims[i] % self.num_heads[i] != 0:
                raise ValueError(f"stage {i}: dim {self.embed_dims[i]} not divisible by {self.num_heads[i]} heads")
        internal = self.prompt_dim // self.attention_downsample_rate
        if self.prompt_dim % self.decoder_heads or internal % self.decoder_heads:
            raise ValueError("decoder_heads must divide prompt_dim and prompt_dim/attention_downsample_rate")
        if self.prompt_dim % 8:
            raise ValueError("prompt_dim must be a multiple of 8")
        if not 0 < self.num_masks < self.num_queries + 1:
            raise ValueError("num_masks must be in 1..num_queries")

    @property
    def embed_size(self) -> int:
        """Side of the image embedding (stride 16)."""
        return self.img_size // 16

    @property
    def patch_size(self) -> int:
        """Side of the SPPG patch map (one cell per 32x32 pixels)."""
        return self.img_size // 32

    def with_size(self, img_size: int) -> "ModelConfig":
        return replace(self, img_size=img_size)

    def to_dict(self):
        return asdict(self)


PRESETS = {
    "published": ModelConfig(),
    # same structure, about a quarter of the compute: head dim 32 as published
    "compact": ModelConfig(
        embed_dims=(32, 64, 96, 160), num_heads=(1, 2, 3, 5),
        prompt_dim=128, decoder_heads=8, decoder_mlp_dim=1024, widths="compact",
    ),
    # for committed test fixtures (< 5 MB as ONNX)
    "tiny": ModelConfig(
        embed_dims=(16, 32, 48, 64), num_heads=(1, 1, 2, 2),
        prompt_dim=64, decoder_heads=4, decoder_mlp_dim=256, num_classes=1000, widths="tiny",
    ),
}


def preset(widths: str = "published", img_size: int = 1024) -> ModelConfig:
    try:
        base = PRESETS[widths]
    except KeyError:
        raise ValueError(f"unknown widths {widths!r}; choose one of {sorted(PRESETS)}") from None
    return base.with_size(img_size)
