"""The node's modality channels (seg/channel/channels.json) and which ones a checkpoint serves."""

import json
import os
import re
from typing import Dict, List, Optional, Sequence

from .config import NUM_MASKS

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHANNELS_FILE = os.path.join("seg", "channel", "channels.json")  # relative to the repository

# Published per-dataset checkpoints are named ESP_<dataset>_best.pth; the dataset names the
# channel (the decoder query of the modality it was trained on).
_CHECKPOINT_WORDS = [
    (0, ("isic", "derm", "ph2", "ham")),
    (1, ("lung", "xray", "x-ray", "chest", "shenzhen", "montgomery", "cxr", "nih")),
    (2, ("ultrasound", "udiat", "busi", "breast")),
    (3, ("retinal", "drive", "fundus", "stare", "vessel", "chase")),
    (4, ("dsb", "nuclei", "nucleus", "microscopy", "tnbc", "cell")),
    (5, ("cvc", "clinicdb", "colon", "polyp", "kvasir", "endo")),
]


def channels_path(path: Optional[str] = None) -> str:
    path = path or CHANNELS_FILE
    return path if os.path.isabs(path) else os.path.join(REPO_ROOT, path)


def _check_code(where, code):
    if not isinstance(code, dict):
        raise ValueError(f"{where}: expected an object with scheme/value/meaning")
    for key in ("scheme", "value", "meaning"):
        if not isinstance(code.get(key), str) or not code[key]:
            raise ValueError(f"{where}.{key}: missing or empty")


def validate_channel(ch: Dict, need_query: bool = False) -> None:
    where = f"channel {ch.get('name', ch.get('index'))!r}"
    if not isinstance(ch.get("index"), int) or isinstance(ch.get("index"), bool):
        raise ValueError(f"{where}: index must be an integer")
    for key in ("name", "label"):
        if not isinstance(ch.get(key), str) or not ch[key]:
            raise ValueError(f"{where}: {key} missing or empty")
    _check_code(f"{where}.category", ch.get("category"))
    _check_code(f"{where}.type", ch.get("type"))
    if need_query:
        q = ch.get("query")
        if not isinstance(q, int) or isinstance(q, bool) or not 0 <= q < NUM_MASKS:
            raise ValueError(f"{where}: query must be an integer in 0..{NUM_MASKS - 1}")


def load_channels(path: Optional[str] = None) -> List[Dict]:
    with open(channels_path(path), encoding="utf-8") as f:
        chans = json.load(f)
    if not isinstance(chans, list) or not chans:
        raise ValueError("channels file: expected a non-empty JSON list")
    for ch in chans:
        validate_channel(ch)
    if len({c["index"] for c in chans}) != len(chans) or len({c["name"] for c in chans}) != len(chans):
        raise ValueError("channels file: duplicate channel index or name")
    return sorted(chans, key=lambda c: c["index"])


def select(chans: Sequence[Dict], wanted: Sequence) -> List[Dict]:
    """Channels by index or name, each with ``query`` (= its index: the decoder query of that
    modality) added."""
    by_index = {c["index"]: c for c in chans}
    by_name = {c["name"]: c for c in chans}
    out = []
    for w in wanted:
        key = w.strip() if isinstance(w, str) else w
        if isinstance(key, str) and key.isdigit():
            key = int(key)
        ch = by_index.get(key) if isinstance(key, int) else by_name.get(key)
        if ch is None:
            raise ValueError(f"unknown channel {w!r}; known: {sorted(by_name)}")
        if not 0 <= ch["index"] < NUM_MASKS:
            raise ValueError(f"channel {ch['name']!r} has no decoder query (index {ch['index']})")
        if any(o["index"] == ch["index"] for o in out):
            continue
        out.append(dict(ch, query=ch["index"]))
    return out


def channel_for_checkpoint(path: str) -> Optional[int]:
    """The channel a per-dataset checkpoint (ESP_<dataset>_best.pth) was trained for, or None
    (a joint checkpoint, or a name not recognised)."""
    stem = os.path.splitext(os.path.basename(path))[0].lower()
    words = [w for w in re.split(r"[^a-z0-9-]+", stem) if w]
    m = re.match(r"^esp_(.+?)_(best|last|final)$", stem)
    if m:
        words = [m.group(1)]
    hits = {idx for idx, keys in _CHECKPOINT_WORDS for w in words for k in keys if w.startswith(k)}
    return hits.pop() if len(hits) == 1 else None
