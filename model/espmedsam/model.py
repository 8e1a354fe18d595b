"""ESP-MedSAM: encoder + SPPG (patch head, dense prompter) + QDMD decoder.

``ESPMedSAM(cfg)(image, modality)`` takes RGB 0..255 images and per-sample modality indices
and returns logits at the input size: the ONNX contract of espnode. Normalisation is inside
the model (non-persistent buffers, so the state dict stays the checkpoints').
"""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerNorm2d
from .config import ModelConfig, preset
from .decoder import MaskDecoder, PromptEncoder
from .encoder import SemiTViT

# the published weights were trained with std set equal to the mean: (x - m) / m
NORMALIZATIONS = {
    "mean_over_mean": ((123.675, 116.28, 103.53), (123.675, 116.28, 103.53)),
    "imagenet": ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
}
DEFAULT_NORMALIZATION = "mean_over_mean"


class ESPMedSAM(nn.Module):
    def __init__(self, cfg: Optional[ModelConfig] = None, normalization: str = DEFAULT_NORMALIZATION):
        super().__init__()
        cfg = cfg or ModelConfig()
        self.cfg = cfg
        d = cfg.prompt_dim
        self.SemiTViT = SemiTViT(cfg)
        self.prompt_encoder = PromptEncoder(d, cfg.embed_size, cfg.mask_in_chans)
        self.mask_decoder = MaskDecoder(d, cfg.decoder_depth, cfg.decoder_heads, cfg.decoder_mlp_dim,
                                        cfg.attention_downsample_rate)
        # SPPG: patch head (stride 2 over the embedding: one logit per 32x32 pixels) ...
        self.patch_decoder = nn.Sequential(
            nn.Conv2d(d, d // 4, 2, 2), LayerNorm2d(d // 4), nn.GELU(), nn.Conv2d(d // 4, 1, 1))
        # ... and the dense prompt made from its thresholded map
        self.dense_prompter = nn.Sequential(nn.Conv2d(1, d, 1), LayerNorm2d(d), nn.GELU())
        self.mask_query = nn.Embedding(cfg.num_queries, d)
        self.normalization = None
        self.register_buffer("pixel_mean", torch.zeros(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.ones(1, 3, 1, 1), persistent=False)
        self.set_normalization(normalization)

    def set_normalization(self, name: str):
        try:
            mean, std = NORMALIZATIONS[name]
        except KeyError:
            raise ValueError(f"unknown normalization {name!r}; choose one of {sorted(NORMALIZATIONS)}") from None
        self.pixel_mean.copy_(torch.tensor(mean).view(1, 3, 1, 1))
        self.pixel_std.copy_(torch.tensor(std).view(1, 3, 1, 1))
        self.normalization = name

    def encode(self, image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """image 0..255 (B,3,S,S) -> (prompted embedding, raw embedding, patch logits)."""
        x = (image - self.pixel_mean) / self.pixel_std
        emb = self.SemiTViT(x)
        patch_logits = self.patch_decoder(emb)
        # sigmoid(p) >= 0.5 <=> p >= 0; the prompt is a hard 0/1 map (no gradient to the head)
        hard = (patch_logits.detach() >= 0).to(emb.dtype)
        hard = F.interpolate(hard, scale_factor=2.0, mode="nearest")
        return emb + self.dense_prompter(hard), emb, patch_logits

    def query_index(self, modality: torch.Tensor) -> torch.Tensor:
        """Modality -> decoder query, clamped to the valid range 0..num_masks-1."""
        return torch.clamp(modality.to(torch.int64), 0, self.cfg.num_masks - 1)

    def forward(self, image: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        """image float (N,3,S,S) RGB 0..255; modality int64 (N,) -> logits (N,1,S,S)."""
        return self.forward_with_patch(image, modality)[0]

    def forward_with_patch(self, image: torch.Tensor, modality: torch.Tensor):
        """(logits (N,1,S,S), SPPG patch logits (N,1,S/32,S/32))."""
        src, _, patch_logits = self.encode(image)
        tokens = self.mask_query.weight.unsqueeze(0).expand(src.shape[0], -1, -1)
        low = self.mask_decoder(src, self.prompt_encoder.get_dense_pe(), tokens, self.query_index(modality))
        s = self.cfg.img_size
        return F.interpolate(low, size=(s, s), mode="bilinear", align_corners=False), patch_logits

    def forward_all(self, image: torch.Tensor):
        """Training/inspection view: (all modality logits (N,M,S,S), patch logits, raw embedding)."""
        src, emb, patch_logits = self.encode(image)
        tokens = self.mask_query.weight.unsqueeze(0).expand(src.shape[0], -1, -1)
        low = self.mask_decoder.all_masks(src, self.prompt_encoder.get_dense_pe(), tokens, self.cfg.num_masks)
        s = self.cfg.img_size
        return F.interpolate(low, size=(s, s), mode="bilinear", align_corners=False), patch_logits, emb


def build_model(widths: str = "published", img_size: int = 1024, normalization: str = DEFAULT_NORMALIZATION,
                seed: Optional[int] = None, calibrate: bool = False) -> ESPMedSAM:
    """A model in eval mode; with ``seed``, every parameter and buffer drawn from that seed
    (see ``randomize``); with ``calibrate`` too, the patch head's bias set so that about half the
    patch cells of a probe image are foreground (see ``calibrate_patch_head``)."""
    cfg = preset(widths, img_size)
    if seed is not None:
        torch.manual_seed(seed)
    model = ESPMedSAM(cfg, normalization).eval()
    if seed is not None:
        randomize(model, seed)
        if calibrate:
            calibrate_patch_head(model)
    return model


@torch.no_grad()
def calibrate_patch_head(model: "ESPMedSAM", probe: Optional[torch.Tensor] = None) -> float:
    """Random weights put nearly all SPPG patch logits on one side of 0, so the dense prompt would be
    constant. Shift the patch head's bias to the midpoint between the two middle logits of a probe
    image: both prompt values then occur. Returns the shift. (For random-weight fixtures only; trained checkpoints are never changed.)"""
    from .parity import make_inputs  # image-like probe

    s = model.cfg.img_size
    if probe is None:
        probe = torch.from_numpy(make_inputs(1, s, seed=20240717))
    logits = model.encode(probe)[2].flatten().sort().values
    k = logits.numel() // 2
    # rounded to a 2^-10 grid, so that float noise (thread count, library) gives the same weights
    shift = round(float((logits[k - 1] + logits[k]) / 2) * 1024.0) / 1024.0
    model.patch_decoder[-1].bias.sub_(shift)
    return shift


@torch.no_grad()
def randomize(model: nn.Module, seed: int) -> None:
    """Deterministic, well-scaled random weights for tests and fixtures: unlike a fresh
    initialisation, no branch is left at zero (BatchNorm statistics, attention biases, the
    med branches and the zero-initialised MBConv projections all get non-trivial values), so
    parity checks exercise every path. Values depend only on the seed and the parameter order."""
    g = torch.Generator().manual_seed(seed)

    def rand(shape, lo, hi):
        return torch.rand(shape, generator=g) * (hi - lo) + lo

    for name, mod in model.named_modules():
        if isinstance(mod, nn.BatchNorm2d):
            n = mod.num_features
            mod.weight.copy_(rand(n, 0.6, 1.2))
            mod.bias.copy_(rand(n, -0.1, 0.1))
            mod.running_mean.copy_(rand(n, -0.1, 0.1))
            mod.running_var.copy_(rand(n, 0.7, 1.4))
            mod.num_batches_tracked.fill_(1000)
        elif isinstance(mod, (nn.LayerNorm, LayerNorm2d)):
            n = mod.weight.numel()
            mod.weight.copy_(rand(n, 0.8, 1.2))
            mod.bias.copy_(rand(n, -0.1, 0.1))
        elif isinstance(mod, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            w = mod.weight
            if isinstance(mod, nn.ConvTranspose2d):
                # (in, out, kh, kw): each output pixel sums in * kh*kw / (stride_h*stride_w) terms
                fan_in = max(1, w.shape[0] * w[0, 0].numel() // (mod.stride[0] * mod.stride[1]))
            else:
                fan_in = w[0].numel()
            bound = (3.0 / fan_in) ** 0.5  # unit-variance outputs for unit-variance inputs
            w.copy_(rand(w.shape, -bound, bound))
            if mod.bias is not None:
                mod.bias.copy_(rand(mod.bias.shape, -0.05, 0.05))
        elif isinstance(mod, nn.Embedding):
            mod.weight.copy_(torch.randn(mod.weight.shape, generator=g))
    for name, p in model.named_parameters():
        if name.endswith("attention_biases"):  # both the offset table and the med column bias
            p.copy_(rand(p.shape, -0.5, 0.5))
        elif name.endswith("deep_QKV_embeddings_med"):
            p.copy_(torch.randn(p.shape, generator=g))
    pe = model.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
    pe.copy_(torch.randn(pe.shape, generator=g))


def count_parameters(model: nn.Module, prefix: str = "") -> int:
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))
