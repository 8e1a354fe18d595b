"""Augmentation per modality, on batches of letterboxed samples (content at the top left).

Each channel has its own policy: flips only where the anatomy allows them (no flip at all for
chest X-ray, whose left and right differ and whose top is the apex; no vertical flip for breast
ultrasound, where the probe is at the top), small rotations and scales about the content's
centre, and intensity changes that keep grey images grey (X-ray, ultrasound) while photos
(dermoscopy, fundus, microscopy, colonoscopy) also get saturation and hue changes (stain, lighting).
The padding stays zero, as the node's pre-processing leaves it.
"""

import math
from dataclasses import dataclass
from typing import Dict, Tuple

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Policy:
    hflip: float = 0.5  # probability
    vflip: float = 0.0
    rotate: float = 0.0  # degrees, uniform in [-r, r]
    scale: Tuple[float, float] = (1.0, 1.0)
    shift: float = 0.0  # fraction of the content size
    brightness: float = 0.0  # multiplicative, uniform in [1-b, 1+b]
    contrast: float = 0.0
    gamma: float = 0.0  # exponent in [1-g, 1+g]
    saturation: float = 0.0  # photos only
    hue: float = 0.0  # radians / (2 pi), photos only
    grey: bool = False  # keep grey images grey (no colour operations)


# keyed by channel index (seg/channel/channels.json)
POLICIES: Dict[int, Policy] = {
    0: Policy(hflip=0.5, vflip=0.5, rotate=30, scale=(0.8, 1.2), shift=0.06, brightness=0.2, contrast=0.2,
              gamma=0.15, saturation=0.2, hue=0.03),  # dermoscopy: no canonical orientation
    1: Policy(hflip=0.0, vflip=0.0, rotate=8, scale=(0.9, 1.1), shift=0.04, brightness=0.15, contrast=0.25,
              gamma=0.25, grey=True),  # chest X-ray: heart on the left, apex on top
    2: Policy(hflip=0.5, vflip=0.0, rotate=10, scale=(0.85, 1.15), shift=0.05, brightness=0.2, contrast=0.25,
              gamma=0.25, grey=True),  # breast ultrasound: the probe is at the top
    3: Policy(hflip=0.5, vflip=0.5, rotate=20, scale=(0.9, 1.15), shift=0.04, brightness=0.2, contrast=0.2,
              gamma=0.2, saturation=0.15, hue=0.02),  # fundus: left and right eyes, thin vessels
    4: Policy(hflip=0.5, vflip=0.5, rotate=180, scale=(0.8, 1.25), shift=0.06, brightness=0.2, contrast=0.25,
              gamma=0.2, saturation=0.3, hue=0.08),  # microscopy: any orientation, stain variation
    5: Policy(hflip=0.5, vflip=0.5, rotate=25, scale=(0.8, 1.2), shift=0.06, brightness=0.2, contrast=0.2,
              gamma=0.15, saturation=0.2, hue=0.02),  # colonoscopy
}


def _u(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def augment(images: torch.Tensor, masks: torch.Tensor, sizes: torch.Tensor, channels: torch.Tensor,
            g: torch.Generator, policies: Dict[int, Policy] = POLICIES):
    """images float (B,3,S,S) 0..255, masks float (B,1,S,S) 0..1, sizes int (B,2) content (w, h),
    channels int (B,) -> augmented (images, masks), new tensors."""
    b, _, s, _ = images.shape
    images, masks = images.clone(), masks.clone()
    valid = torch.zeros(b, 1, s, s)
    # pixel-centre coordinates of the output grid
    ys, xs = torch.meshgrid(torch.arange(s, dtype=torch.float32) + 0.5, torch.arange(s, dtype=torch.float32) + 0.5,
                            indexing="ij")
    grids = []
    for i in range(b):
        p = policies.get(int(channels[i]), Policy())
        w, h = int(sizes[i, 0]), int(sizes[i, 1])
        valid[i, :, :h, :w] = 1.0
        if p.hflip and _u(g, 0, 1) < p.hflip:
            images[i, :, :h, :w] = images[i, :, :h, :w].flip(-1)
            masks[i, :, :h, :w] = masks[i, :, :h, :w].flip(-1)
        if p.vflip and _u(g, 0, 1) < p.vflip:
            images[i, :, :h, :w] = images[i, :, :h, :w].flip(-2)
            masks[i, :, :h, :w] = masks[i, :, :h, :w].flip(-2)
        # output point q maps to input c + R(-a) (q - c - t) / k
        a = math.radians(_u(g, -p.rotate, p.rotate))
        k = _u(g, *p.scale)
        tx, ty = _u(g, -p.shift, p.shift) * w, _u(g, -p.shift, p.shift) * h
        cx, cy = w / 2.0, h / 2.0
        dx, dy = xs - cx - tx, ys - cy - ty
        ca, sa = math.cos(a), math.sin(a)
        ix = cx + (ca * dx + sa * dy) / k
        iy = cy + (-sa * dx + ca * dy) / k
        grids.append(torch.stack([ix / s * 2 - 1, iy / s * 2 - 1], dim=-1))
    grid = torch.stack(grids)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    masks = F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    valid = F.grid_sample(valid, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    keep = (valid > 0.5).to(images.dtype)
    return photometric(images, keep, channels, g, policies), (masks * keep).clamp(0, 1)


def photometric(images: torch.Tensor, keep: torch.Tensor, channels: torch.Tensor, g: torch.Generator,
                policies: Dict[int, Policy] = POLICIES) -> torch.Tensor:
    """Brightness, contrast, saturation, hue and gamma per sample's policy, inside ``keep``
    (B,1,S,S) 0/1; outside it the image is zero (padding stays padding)."""
    images = images.clone()
    for i in range(images.shape[0]):
        p = policies.get(int(channels[i]), Policy())
        x = images[i]
        m = keep[i]
        n = m.sum().clamp(min=1)
        if p.brightness:
            x = x * _u(g, 1 - p.brightness, 1 + p.brightness)
        if p.contrast:
            mean = (x * m).sum() / (3 * n)
            x = (x - mean) * _u(g, 1 - p.contrast, 1 + p.contrast) + mean
        if not p.grey and p.saturation:
            grey = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).unsqueeze(0)
            x = grey + (x - grey) * _u(g, 1 - p.saturation, 1 + p.saturation)
        if not p.grey and p.hue:
            x = rotate_hue(x, _u(g, -p.hue, p.hue) * 2 * math.pi)
        x = x.clamp(0, 255)
        if p.gamma:
            x = 255.0 * (x / 255.0).pow(_u(g, 1 - p.gamma, 1 + p.gamma))
        images[i] = x * m
    return images.clamp(0, 255)


def random_crop(image: torch.Tensor, mask: torch.Tensor, size: int, channel: int, g: torch.Generator,
                policies: Dict[int, Policy] = POLICIES):
    """One random size x size crop of a working-size image (3,H,W) 0..255 and soft mask (1,H,W)
    0..1, with the channel's flips, rotation and scale about the crop's centre, sampled from the
    whole image (no black corners inside it; zeros beyond its border, as the tiling pads).
    The centre is uniform over the positions that keep an axis's crop inside the image (the
    middle when the axis is shorter than the crop). Returns (image (3,S,S), mask (1,S,S),
    valid (1,S,S) 0/1); photometric changes are left to ``photometric``."""
    p = policies.get(int(channel), Policy())
    _, h, w = image.shape
    half = size / 2.0
    cx = _u(g, half, w - half) if w > size else w / 2.0
    cy = _u(g, half, h - half) if h > size else h / 2.0
    a = math.radians(_u(g, -p.rotate, p.rotate))
    k = _u(g, *p.scale)
    fx = -1.0 if p.hflip and _u(g, 0, 1) < p.hflip else 1.0
    fy = -1.0 if p.vflip and _u(g, 0, 1) < p.vflip else 1.0
    q = torch.arange(size, dtype=torch.float32) + 0.5 - half
    qy, qx = torch.meshgrid(q * fy, q * fx, indexing="ij")
    ca, sa = math.cos(a), math.sin(a)
    ix = cx + (ca * qx + sa * qy) / k
    iy = cy + (-sa * qx + ca * qy) / k
    grid = torch.stack([ix / w * 2 - 1, iy / h * 2 - 1], dim=-1).unsqueeze(0)
    src = torch.cat([image, mask, torch.ones_like(mask)], 0).unsqueeze(0)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    keep = (out[4:5] > 0.5).to(out.dtype)
    return out[:3] * keep, (out[3:4] * keep).clamp(0, 1), keep


_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def rotate_hue(x: torch.Tensor, angle: float) -> torch.Tensor:
    """Rotate the chroma of an RGB image (3,H,W) by ``angle`` radians in YIQ space."""
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    mat = torch.linalg.inv(_YIQ) @ rot @ _YIQ
    return torch.einsum("ij,jhw->ihw", mat, x)
