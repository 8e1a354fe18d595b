"""Compare DICOM files element by element, ignoring what a transfer syntax change may alter.

usage: dscompare.py < pairs.json
  stdin: a JSON list of {"got": PATH, "want": [PATH, ...]}; "got" must equal at least one "want".
  stdout: one JSON object per pair, {"got": PATH, "equal": bool, "diffs": [...]}

Ignored: the file meta group (0002), group lengths (gggg,0000) and trailing padding (FFFC,FFFC),
which writers re-derive or drop. Values are compared as decoded by pydicom, so byte order does not matter; binary values
(OB/OW/OF/OD/OL/OV/UN) are compared as bytes after bringing them to little endian, and an
element read as UN on one side (implicit VR private data) is compared by its bytes with the
other side's encoded value.
"""
import json
import sys

import pydicom
from pydicom.tag import Tag

BINARY = {"OB": 1, "OW": 2, "OF": 4, "OD": 8, "OL": 4, "OV": 8, "UN": 1}


def little(raw, vr, big_endian):
    if raw is None:
        return b""
    if isinstance(raw, (list, tuple)):
        raw = b"".join(raw)
    width = BINARY.get(vr, 1)
    if not big_endian or width == 1:
        return bytes(raw)
    out = bytearray(raw)
    for i in range(0, len(out) - len(out) % width, width):
        out[i:i + width] = out[i:i + width][::-1]
    return bytes(out)


def text_bytes(elem):
    v = elem.value
    if v is None:
        return b""
    if isinstance(v, bytes):
        return v.rstrip(b"\x00 ")
    if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
        v = "\\".join(str(x) for x in v)
    return str(v).encode("latin-1", "replace").rstrip(b"\x00 ")


def norm(elem, big_endian):
    if elem.VR == "SQ":
        return None
    if elem.VR in BINARY:
        return ("bin", little(elem.value, elem.VR, big_endian).rstrip(b"\x00"))
    if elem.VR in ("US", "SS", "UL", "SL", "FL", "FD", "AT", "US or SS", "UV", "SV"):
        v = elem.value
        if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
            return ("num", tuple(v))
        return ("num", (v,))
    return ("text", text_bytes(elem))


def keep(tag):
    # File meta, group lengths and Data Set Trailing Padding (FFFC,FFFC) are re-derived or
    # dropped by writers; PS3.5 7.2 makes group lengths optional and padding meaningless.
    return tag.group != 0x0002 and tag.element != 0x0000 and tag != 0xFFFCFFFC


def compare(a, b, ba, bb, path, diffs):
    ta = {e.tag: e for e in a if keep(e.tag)}
    tb = {e.tag: e for e in b if keep(e.tag)}
    for tag in sorted(set(ta) | set(tb)):
        where = f"{path}{Tag(tag)}"
        if ba != bb and Tag(tag).is_private:
            # Converting between byte orders, the sender (DCMTK) cannot swap private values whose
            # VR it does not know; they are compared only when both files share a byte order.
            continue
        if tag not in ta or tag not in tb:
            diffs.append(f"{where}: only in {'A' if tag in ta else 'B'}")
            continue
        ea, eb = ta[tag], tb[tag]
        if ea.VR == "SQ" or eb.VR == "SQ":
            sa = ea.value if ea.VR == "SQ" else None
            sb = eb.value if eb.VR == "SQ" else None
            if sa is None or sb is None:
                continue  # one side could not know it is a sequence (UN private data)
            if len(sa) != len(sb):
                diffs.append(f"{where}: {len(sa)} items vs {len(sb)}")
                continue
            for i, (ia, ib) in enumerate(zip(sa, sb)):
                compare(ia, ib, ba, bb, f"{where}[{i}].", diffs)
            continue
        na, nb = norm(ea, ba), norm(eb, bb)
        if na[0] != nb[0]:
            # UN on one side: compare bytes with the other side's text form.
            xa = na[1] if na[0] != "num" else None
            xb = nb[1] if nb[0] != "num" else None
            if xa is not None and xb is not None and xa.rstrip(b" \x00") == xb.rstrip(b" \x00"):
                continue
            if "num" in (na[0], nb[0]):
                continue  # a numeric VR seen as UN in implicit private data; not comparable
        if na != nb:
            diffs.append(f"{where} {ea.VR}/{eb.VR}: {str(na[1])[:80]} != {str(nb[1])[:80]}")


def diff(path_a, path_b):
    a = pydicom.dcmread(path_a, force=True)
    b = pydicom.dcmread(path_b, force=True)
    diffs = []
    compare(a, b, not a.is_little_endian, not b.is_little_endian, "", diffs)
    return diffs


def main():
    for pair in json.load(sys.stdin):
        best = None
        for want in pair["want"]:
            try:
                d = diff(pair["got"], want)
            except Exception as e:  # an unreadable file is a difference, not a crash
                d = [f"{want}: {e}"]
            if best is None or len(d) < len(best):
                best = d
            if not d:
                break
        print(json.dumps({"got": pair["got"], "equal": not best, "diffs": (best or [])[:10]}))


main()
