"""Training data: the seg2d tree of ../shared/data (MANIFEST.csv), packed at the model's input size.

Rules (shared/data/README.md and issue 7):
- only ``train`` rows are ever read for training or model selection; the validation slice is
  carved from train (per dataset, names sorted, every ``val_every``-th item);
- each sample's channel is its folder (``modality`` column) mapped to the node's channel index
  (seg/channel/channels.json); a dataset whose target is not its channel's is kept out:
  fundus/drishti-gs1 is the optic disc, the fundus channel segments retinal vessels.

Images are letterboxed as the node does (seg/pixel.Preprocess): the longer side resized to S with
an antialiasing filter, the image at the top left, zeros at the bottom/right. Masks are resized
with the same filter and kept soft (the fraction of foreground each model pixel covers, 0..255),
so that thin structures (vessels) keep a target.
"""

import csv
import hashlib
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .channels import load_channels

MANIFEST = "MANIFEST.csv"
# (modality folder, dataset) -> why it is kept out of training
EXCLUDED = {("fundus", "drishti-gs1"): "optic disc, while the fundus channel segments retinal vessels"}


def channel_indices(channels_file: Optional[str] = None) -> Dict[str, int]:
    """Channel name (= seg2d folder name) -> index (= decoder query)."""
    return {c["name"]: c["index"] for c in load_channels(channels_file)}


def read_manifest(root: str) -> Tuple[List[Dict[str, str]], List[str]]:
    """(rows as dicts, the raw text line of each row). The raw lines make the manifest hash
    independent of how the CSV is parsed."""
    path = os.path.join(root, MANIFEST)
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    lines = text.splitlines()
    rows = list(csv.DictReader(lines))
    # one CSV record per physical line (no embedded newlines in this manifest)
    if len(rows) != len(lines) - 1:
        raise ValueError(f"{path}: {len(rows)} records on {len(lines) - 1} lines: a field holds a newline")
    return rows, lines[1:]


def is_excluded(row: Dict[str, str]) -> bool:
    return (row["modality"], row["dataset"]) in EXCLUDED


def select(root: str, split: str = "train", channels_file: Optional[str] = None) -> List[Dict]:
    """Rows of one split with their channel index (``channel``) and raw manifest line (``line``),
    excluded datasets removed. Sorted by (modality, dataset, image name)."""
    if split not in ("train", "test"):
        raise ValueError(f"split {split!r}")
    idx = channel_indices(channels_file)
    rows, lines = read_manifest(root)
    out = []
    for row, line in zip(rows, lines):
        if row["split"] != split or is_excluded(row):
            continue
        if row["modality"] not in idx:
            raise ValueError(f"manifest modality {row['modality']!r} is no channel of the node")
        out.append(dict(row, channel=idx[row["modality"]], line=line))
    out.sort(key=lambda r: (r["modality"], r["dataset"], r["image"]))
    return out


def validation_rule(val_every: int) -> str:
    """split_validation's rule, in words, for records."""
    return f"per dataset, names sorted, item i with i % {val_every} == {val_every // 2}"


def split_validation(rows: Sequence[Dict], val_every: int = 10) -> Tuple[List[Dict], List[Dict]]:
    """(train, validation): per dataset, names sorted, item i goes to validation when
    ``i % val_every == val_every // 2`` (a slice of train, never test)."""
    if any(r["split"] != "train" for r in rows):
        raise ValueError("the validation slice is carved from train rows only")
    by_ds: Dict[Tuple[str, str], List[Dict]] = {}
    for r in rows:
        by_ds.setdefault((r["modality"], r["dataset"]), []).append(r)
    train, val = [], []
    for key in sorted(by_ds):
        items = sorted(by_ds[key], key=lambda r: r["image"])
        for i, r in enumerate(items):
            (val if val_every > 0 and i % val_every == val_every // 2 else train).append(r)
    return train, val


def manifest_sha256(rows: Sequence[Dict]) -> str:
    """sha256 of the manifest lines of the rows used, sorted, one per line with a newline."""
    h = hashlib.sha256()
    for line in sorted(r["line"] for r in rows):
        h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()


def fit(width: int, height: int, size: int) -> Tuple[int, int]:
    """The node's geometry (seg/pixel.Fit): longer side to ``size``, aspect kept, rounded."""
    long = max(width, height)
    w = max(1, int(np.floor(width * size / long + 0.5)))
    h = max(1, int(np.floor(height * size / long + 0.5)))
    return min(w, size), min(h, size)


def load_pair(root: str, row: Dict, size: int) -> Tuple[np.ndarray, np.ndarray, Tuple[int, int]]:
    """(image uint8 [S,S,3], soft mask uint8 [S,S], (w, h) of the content at the top left)."""
    from PIL import Image

    with Image.open(os.path.join(root, row["image"])) as im:
        im = im.convert("RGB")
        w, h = fit(im.width, im.height, size)
        img = np.asarray(im.resize((w, h), Image.BILINEAR, reducing_gap=None) if (w, h) != im.size else im)
    with Image.open(os.path.join(root, row["mask"])) as mk:
        mk = mk.convert("L")
        if mk.size != (int(row["width"]), int(row["height"])):
            raise ValueError(f"{row['mask']}: size {mk.size}, manifest says {row['width']}x{row['height']}")
        m = np.asarray(mk).astype(np.float32)
        if (w, h) != mk.size:
            m = np.asarray(Image.fromarray(m, mode="F").resize((w, h), Image.BILINEAR))
    out_img = np.zeros((size, size, 3), np.uint8)
    out_img[:h, :w] = img
    out_mask = np.zeros((size, size), np.uint8)
    out_mask[:h, :w] = np.clip(np.rint(m), 0, 255).astype(np.uint8)
    return out_img, out_mask, (w, h)


class Packed:
    """Samples packed in memory: images uint8 [N,S,S,3], masks uint8 [N,S,S] (soft, 0..255),
    content sizes int32 [N,2] (w, h), channels int64 [N], and the rows they came from."""

    def __init__(self, images, masks, sizes, channels, rows):
        self.images, self.masks, self.sizes, self.channels, self.rows = images, masks, sizes, channels, rows

    def __len__(self):
        return len(self.rows)

    @property
    def size(self) -> int:
        return self.images.shape[1]

    @classmethod
    def build(cls, root: str, rows: Sequence[Dict], size: int) -> "Packed":
        n = len(rows)
        images = np.zeros((n, size, size, 3), np.uint8)
        masks = np.zeros((n, size, size), np.uint8)
        sizes = np.zeros((n, 2), np.int32)
        for i, r in enumerate(rows):
            images[i], masks[i], sizes[i] = load_pair(root, r, size)
        chans = np.array([r["channel"] for r in rows], np.int64)
        return cls(images, masks, sizes, chans, list(rows))

    def save(self, path: str) -> None:
        """Cache file (never committed: it is derived from research-use data)."""
        keys = np.array([r["image"] for r in self.rows])
        tmp = path + ".tmp.npz"
        np.savez(tmp, images=self.images, masks=self.masks, sizes=self.sizes, channels=self.channels, keys=keys)
        os.replace(tmp, path)

    @classmethod
    def load_or_build(cls, root: str, rows: Sequence[Dict], size: int, cache: Optional[str] = None) -> "Packed":
        """From ``cache`` when it holds exactly these rows at this size, else built (and cached)."""
        if cache and os.path.isfile(cache):
            z = np.load(cache)
            if z["images"].shape[1] == size and list(z["keys"]) == [r["image"] for r in rows]:
                return cls(z["images"], z["masks"], z["sizes"], z["channels"], list(rows))
        p = cls.build(root, rows, size)
        if cache:
            os.makedirs(os.path.dirname(os.path.abspath(cache)), exist_ok=True)
            p.save(cache)
        return p


def load_source(root: str, row: Dict) -> Tuple[np.ndarray, np.ndarray]:
    """(image uint8 [H,W,3] RGB, mask bool [H,W]) at the source size, as espnode eval reads them."""
    from PIL import Image

    with Image.open(os.path.join(root, row["image"])) as im:
        img = np.asarray(im.convert("RGB"))
    with Image.open(os.path.join(root, row["mask"])) as mk:
        m = np.asarray(mk.convert("L")) > 127
    if m.shape != img.shape[:2]:
        raise ValueError(f"{row['mask']}: size {m.shape[::-1]}, image {img.shape[1::-1]}")
    return img, m


class Sources:
    """Source-size images and masks of some rows (validation and evaluation through the
    reference inference, infer.predict)."""

    def __init__(self, root: str, rows: Sequence[Dict]):
        self.rows = list(rows)
        self.items = [load_source(root, r) for r in self.rows]

    def __len__(self):
        return len(self.rows)


class Tiled:
    """Samples of tiled channels at their working size (infer.working_size of the channel's
    long side, resized with the node's filter): images uint8 [h,w,3] and soft masks uint8 [h,w]
    (0..255), one per row; ``slot[i]`` is the row's position in the training rows."""

    def __init__(self, images, masks, rows, slot):
        self.images, self.masks, self.rows, self.slot = images, masks, rows, slot

    def __len__(self):
        return len(self.rows)

    @classmethod
    def build(cls, root: str, rows: Sequence[Dict], long_sides: Dict[int, int]) -> "Tiled":
        from .infer import resample, working_size

        images, masks, keep, slot = [], [], [], {}
        for i, r in enumerate(rows):
            if r["channel"] not in long_sides:
                continue
            img, m = load_source(root, r)
            h, w = m.shape
            ww, wh = working_size(w, h, long_sides[r["channel"]])
            im = np.clip(np.rint(resample(img.astype(np.float32), ww, wh)), 0, 255).astype(np.uint8)
            mk = np.clip(np.rint(resample(m.astype(np.float32) * 255.0, ww, wh)), 0, 255).astype(np.uint8)
            slot[i] = len(keep)
            images.append(im)
            masks.append(mk)
            keep.append(r)
        return cls(images, masks, keep, slot)

    def key(self, long_sides: Dict[int, int]) -> List[str]:
        return [f"{r['image']}@{long_sides[r['channel']]}" for r in self.rows]

    def save(self, path: str, long_sides: Dict[int, int]) -> None:
        shapes = np.array([m.shape for m in self.masks], np.int64).reshape(-1, 2)
        flat_i = np.concatenate([a.reshape(-1) for a in self.images]) if self.images else np.zeros(0, np.uint8)
        flat_m = np.concatenate([a.reshape(-1) for a in self.masks]) if self.masks else np.zeros(0, np.uint8)
        tmp = path + ".tmp.npz"
        np.savez(tmp, images=flat_i, masks=flat_m, shapes=shapes, keys=np.array(self.key(long_sides)),
                 slots=np.array(sorted(self.slot.items()), np.int64).reshape(-1, 2))
        os.replace(tmp, path)

    @classmethod
    def load_or_build(cls, root: str, rows: Sequence[Dict], long_sides: Dict[int, int],
                      cache: Optional[str] = None) -> "Tiled":
        if cache and os.path.isfile(cache):
            z = np.load(cache)
            keep = [r for r in rows if r["channel"] in long_sides]
            if list(z["keys"]) == [f"{r['image']}@{long_sides[r['channel']]}" for r in keep]:
                # an NpzFile reads (and keeps) a whole array at each z[key]: read each once, and
                # copy the slices so that no sample keeps the flat array alive
                flat_i, flat_m = z["images"], z["masks"]
                images, masks, oi, om = [], [], 0, 0
                for h, w in z["shapes"]:
                    images.append(flat_i[oi:oi + h * w * 3].reshape(h, w, 3).copy())
                    masks.append(flat_m[om:om + h * w].reshape(h, w).copy())
                    oi, om = oi + h * w * 3, om + h * w
                del flat_i, flat_m
                return cls(images, masks, keep, {int(a): int(b) for a, b in z["slots"]})
        t = cls.build(root, rows, long_sides)
        if cache:
            os.makedirs(os.path.dirname(os.path.abspath(cache)), exist_ok=True)
            t.save(cache, long_sides)
        return t
