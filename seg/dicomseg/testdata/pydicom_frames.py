"""Decode a SEG with pydicom, as an independent reader for the Go tests.

Usage: pydicom_frames.py SEG OUT
Writes every frame's pixels to OUT as uint8, frame after frame, using pydicom's own unpacking
of 1-bit data, and prints a JSON summary (size, frame count, each frame's segment number).
"""
import json
import sys

import numpy as np
import pydicom


def main(path, out):
    ds = pydicom.dcmread(path)
    frames = int(getattr(ds, "NumberOfFrames", 1))
    arr = np.asarray(ds.pixel_array).reshape(frames, ds.Rows, ds.Columns).astype(np.uint8)
    with open(out, "wb") as f:
        f.write(arr.tobytes())
    segments = []
    for item in getattr(ds, "PerFrameFunctionalGroupsSequence", []):
        sis = getattr(item, "SegmentIdentificationSequence", None)
        segments.append(int(sis[0].ReferencedSegmentNumber) if sis else 0)
    json.dump({
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "frames": frames,
        "segments": segments,
        "pydicom": pydicom.__version__,
    }, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
