"""Makes the codec fixtures of seg/pixel's TestCodecFixtures in the directory given as argv[1].

Each fixture is a small DICOM file compressed by a real encoder (DCMTK's dcmcjpeg and dcmcjpls,
GDCM's gdcmconv, libjxl's cjxl) from a native image made here with pydicom, sometimes
re-encapsulated with pydicom to reach a case of PS3.5 A.4 (fragments, offset tables), beside a
native reference: the source itself where the codec is lossless, else the decode of a reference
tool. manifest.json lists them: {"name", "file", "ref", "max_diff"}.
"""
import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pydicom
import pydicom.uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended, generate_pixel_data_frame
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

OUT = sys.argv[1]
# pydicom 2.3 predates the JPEG XL syntaxes; it writes any syntax its table lists.
for uid, name in (("1.2.840.10008.1.2.4.110", "JPEG XL Lossless"), ("1.2.840.10008.1.2.4.111", "JPEG XL JPEG Recompression"),
                  ("1.2.840.10008.1.2.4.112", "JPEG XL")):
    pydicom.uid.UID_dictionary.setdefault(uid, (name, "Transfer Syntax", "", "", name.replace(" ", "")))
SC = "1.2.840.10008.5.1.4.1.1.7"
manifest = []


def path(name):
    return os.path.join(OUT, name)


def run(*args):
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit("%s failed (%d): %s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))


def image(rows, cols, frames, samples, bits, signed, seed):
    """A smooth pattern with noise, so that every codec has work, in the range of the bits."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols]
    out = []
    for f in range(frames):
        planes = []
        for s in range(samples):
            base = (np.sin(x / (7.0 + s + f)) + np.cos(y / (5.0 + 2 * s)) + 2) / 4
            v = base + rng.normal(0, 0.03, (rows, cols))
            v = np.clip(v, 0, 1) * ((1 << bits) - 1)
            if signed:
                v = v - (1 << (bits - 1))
            planes.append(v.round().astype(np.int64))
        out.append(np.stack(planes, axis=-1))
    return np.stack(out)  # frames, rows, cols, samples


def native(name, px, bits, signed, photometric="MONOCHROME2", planar=0, palette=False):
    frames, rows, cols, samples = px.shape
    alloc = 8 if bits <= 8 else 16
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SC
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[name])
    ds.SOPClassUID = SC
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["series"])
    ds.Modality = "OT"
    ds.PatientName = "Fixture^Codec"
    ds.PatientID = "CODEC"
    ds.ConversionType = "WSD"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, samples
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = alloc, bits, bits - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PhotometricInterpretation = photometric
    if samples == 3:
        ds.PlanarConfiguration = planar
    if frames > 1:
        ds.NumberOfFrames = frames
    if palette:
        lut = np.arange(256, dtype=np.uint16) * 257
        ds.RedPaletteColorLookupTableDescriptor = [256, 0, 16]
        ds.GreenPaletteColorLookupTableDescriptor = [256, 0, 16]
        ds.BluePaletteColorLookupTableDescriptor = [256, 0, 16]
        ds.RedPaletteColorLookupTableData = lut.tobytes()
        ds.GreenPaletteColorLookupTableData = lut[::-1].tobytes()
        ds.BluePaletteColorLookupTableData = ((lut // 2)).astype(np.uint16).tobytes()
    raw = px & ((1 << alloc) - 1)
    dtype = np.uint8 if alloc == 8 else "<u2"
    if samples == 3 and planar == 1:
        raw = raw.transpose(0, 3, 1, 2)
    b = raw.astype(dtype).tobytes()
    if len(b) % 2:
        b += b"\0"
    ds.PixelData = b
    ds.save_as(path(name), write_like_original=False)
    return name


def add(name, file, ref, max_diff=0):
    manifest.append({"name": name, "file": file, "ref": ref, "max_diff": max_diff})


def frames_of(name):
    ds = pydicom.dcmread(path(name))
    n = int(getattr(ds, "NumberOfFrames", 1))
    return ds, list(generate_pixel_data_frame(ds.PixelData, n))


def repack(src, name, mode, ts=None, frames=None):
    """Re-encapsulates the frames of src: 'frag3' splits each into three fragments without a
    Basic Offset Table, 'frag3bot' with one, 'eot' gives an Extended Offset Table."""
    if frames is None:
        ds, fr = frames_of(src)
    else:
        ds, fr = pydicom.dcmread(path(src)), frames
    if mode == "frag3":
        ds.PixelData = encapsulate(fr, fragments_per_frame=3, has_bot=False)
    elif mode == "frag3bot":
        ds.PixelData = encapsulate(fr, fragments_per_frame=3, has_bot=True)
    elif mode == "eot":
        pd, eot, lengths = encapsulate_extended(fr)
        ds.PixelData = pd
        ds.ExtendedOffsetTable = eot
        ds.ExtendedOffsetTableLengths = lengths
    else:
        ds.PixelData = encapsulate(fr, has_bot=True)
    if ts:
        ds.file_meta.TransferSyntaxUID = ts
    ds["PixelData"].is_undefined_length = True
    ds["PixelData"].VR = "OB"
    ds.save_as(path(name), write_like_original=False)
    return name


def shifted(src, name, pt):
    ds = pydicom.dcmread(path(src))
    a = np.frombuffer(ds.PixelData, dtype="<u2")
    ds.PixelData = ((a >> pt) << pt).astype("<u2").tobytes()
    ds.save_as(path(name), write_like_original=False)
    return name


os.makedirs(OUT, exist_ok=True)

# JPEG Lossless (process 14): every selection value, on 12 bits in 16, two frames, odd sizes.
u12 = native("u12.dcm", image(61, 97, 2, 1, 12, False, 1), 12, False)
for sv in range(1, 8):
    f = "jpegll_sv%d.dcm" % sv
    run("dcmcjpeg", "+el", "+sv", str(sv), path(u12), path(f))
    add(f[:-4], f, u12)
run("dcmcjpeg", "+e1", "+pt", "2", path(u12), path("jpegll_pt2.dcm"))
add("jpegll_pt2", "jpegll_pt2.dcm", shifted(u12, "u12_pt2.dcm", 2))
for bits in (2, 5, 8, 10, 15, 16):
    src = native("u%d.dcm" % bits, image(40, 33, 1, 1, bits, False, bits), bits, False)
    run("dcmcjpeg", "+el", "+sv", "4", path(src), path("jpegll_u%d.dcm" % bits))
    add("jpegll_u%d" % bits, "jpegll_u%d.dcm" % bits, src)
s16 = native("s16.dcm", image(50, 47, 1, 1, 16, True, 3), 16, True)
run("dcmcjpeg", "+e1", path(s16), path("jpegll_s16.dcm"))
add("jpegll_s16", "jpegll_s16.dcm", s16)
s12 = native("s12.dcm", image(50, 47, 2, 1, 12, True, 4), 12, True)
run("dcmcjpeg", "+e1", path(s12), path("jpegll_s12.dcm"))
add("jpegll_s12", "jpegll_s12.dcm", s12)
rgb = native("rgb.dcm", image(45, 70, 3, 3, 8, False, 5), 8, False, "RGB")
run("dcmcjpeg", "+e1", path(rgb), path("jpegll_rgb.dcm"))
add("jpegll_rgb", "jpegll_rgb.dcm", rgb)
ybr = native("ybr.dcm", image(45, 70, 1, 3, 8, False, 6), 8, False, "YBR_FULL")
run("dcmcjpeg", "+e1", path(ybr), path("jpegll_ybrfull.dcm"))
add("jpegll_ybrfull", "jpegll_ybrfull.dcm", ybr)

# JPEG Extended 12-bit (process 4): lossy, so against DCMTK's decode.
run("dcmcjpeg", "+ee", path(u12), path("jpegext_u12.dcm"))
run("dcmdjpeg", path("jpegext_u12.dcm"), path("jpegext_u12_ref.dcm"))
add("jpegext_u12", "jpegext_u12.dcm", "jpegext_u12_ref.dcm", 2)

# JPEG-LS: the three interleave modes on colour, signed 12 bits, palette colour, near-lossless.
for mode in ("none", "line", "sample"):
    f = "jls_rgb_%s.dcm" % mode
    run("dcmcjpls", "+i" + mode[0], path(rgb), path(f))
    add(f[:-4], f, rgb)
run("dcmcjpls", path(s12), path("jls_s12.dcm"))
add("jls_s12", "jls_s12.dcm", s12)
pal = native("palette.dcm", image(40, 52, 2, 1, 8, False, 7), 8, False, "PALETTE COLOR", palette=True)
run("dcmcjpls", path(pal), path("jls_palette.dcm"))
add("jls_palette", "jls_palette.dcm", pal)
run("dcmcjpls", "+en", path(u12), path("jls_near.dcm"))
run("dcmdjpls", path("jls_near.dcm"), path("jls_near_ref.dcm"))
add("jls_near", "jls_near.dcm", "jls_near_ref.dcm")

# JPEG 2000: multi-frame colour, planar source, signed 12 and 16 bits, irreversible (9-7 wavelet
# and ICT, lossy: against GDCM's decode).
run("gdcmconv", "-K", path(rgb), path("j2k_rgb.dcm"))
add("j2k_rgb", "j2k_rgb.dcm", rgb)
rgbp = native("rgb_planar.dcm", image(45, 70, 2, 3, 8, False, 8), 8, False, "RGB", planar=1)
run("gdcmconv", "-K", path(rgbp), path("j2k_rgb_planar.dcm"))
add("j2k_rgb_planar", "j2k_rgb_planar.dcm", rgbp)
run("gdcmconv", "-K", path(s16), path("j2k_s16.dcm"))
add("j2k_s16", "j2k_s16.dcm", s16)
# GDCM does not write signed 12-bit JPEG 2000; OpenJPEG's own encoder does.
ds12 = pydicom.dcmread(path(s12))
cs = []
for i, f in enumerate(ds12.pixel_array):
    f.astype("<i2").tofile(path("s12_%d.rawl" % i))
    run("opj_compress", "-i", path("s12_%d.rawl" % i), "-o", path("s12_%d.j2k" % i), "-F", "%d,%d,1,12,s" % (ds12.Columns, ds12.Rows))
    cs.append(open(path("s12_%d.j2k" % i), "rb").read())
repack(s12, "j2k_s12.dcm", "bot", "1.2.840.10008.1.2.4.90", cs)
add("j2k_s12", "j2k_s12.dcm", s12)
run("gdcmconv", "-K", "-Y", "--irreversible", "-q", "40", path(rgb), path("j2k_irreversible.dcm"))
run("gdcmconv", "--raw", path("j2k_irreversible.dcm"), path("j2k_irreversible_ref.dcm"))
add("j2k_irreversible", "j2k_irreversible.dcm", "j2k_irreversible_ref.dcm")

# Around the codestream (PS3.5 A.4): more fragments than frames, with and without a Basic
# Offset Table, and an Extended Offset Table.
for src, base in (("j2k_rgb.dcm", "j2k"), ("jls_rgb_line.dcm", "jls"), ("jpegll_rgb.dcm", "jpegll")):
    for mode in ("frag3", "frag3bot", "eot"):
        add("%s_%s" % (base, mode), repack(src, "%s_%s.dcm" % (base, mode), mode), rgb)

# JPEG XL: lossless colour and 12-bit grey, lossy colour (against djxl), and a JPEG recompressed
# losslessly, which must decode as the JPEG Baseline file it came from.
def pnm(px, bits, name):
    rows, cols, samples = px.shape
    maxv = (1 << bits) - 1
    magic = b"P6" if samples == 3 else b"P5"
    data = px.astype(">u2" if maxv > 255 else np.uint8).tobytes()
    with open(path(name), "wb") as f:
        f.write(b"%s\n%d %d\n%d\n" % (magic, cols, rows, maxv) + data)
    return path(name)


def png16(px, bits, name):
    """A 16-bit grey PNG whose sBIT chunk gives the depth, the samples scaled to 16 bits as
    PNG says: how cjxl 0.7 takes a depth other than 8 or 16 (its PGM reader does not)."""
    rows, cols, _ = px.shape
    a = np.round(px[..., 0].astype(np.float64) * 65535 / ((1 << bits) - 1)).astype(">u2")
    raw = b"".join(b"\0" + a[y].tobytes() for y in range(rows))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    with open(path(name), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", cols, rows, 16, 0, 0, 0, 0)) +
                chunk(b"sBIT", bytes([bits])) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path(name)


def jxl(src, name, ts, args, ref=None, max_diff=0):
    ds = pydicom.dcmread(path(src))
    px = ds.pixel_array
    if int(getattr(ds, "NumberOfFrames", 1)) == 1:
        px = px[None]
    if px.ndim == 3:
        px = px[..., None]
    frames = []
    for i, f in enumerate(px):
        if ds.BitsStored in (8, 16):
            p = pnm(f, ds.BitsStored, "%s_%d.%s" % (name, i, "ppm" if f.shape[2] == 3 else "pgm"))
        else:
            p = png16(f, ds.BitsStored, "%s_%d.png" % (name, i))
        run("cjxl", p, path("%s_%d.jxl" % (name, i)), *args)
        frames.append(open(path("%s_%d.jxl" % (name, i)), "rb").read())
    repack(src, name, "bot", ts, frames)
    if ref is None:
        return add(name[:-4], name, src)
    # The reference is libjxl's own decode, written native.
    out = []
    for i in range(len(frames)):
        ref_pnm = path("%s_%d_ref.%s" % (name, i, "ppm" if ds.SamplesPerPixel == 3 else "pgm"))
        run("djxl", path("%s_%d.jxl" % (name, i)), ref_pnm)
        b = open(ref_pnm, "rb").read()
        hdr = b.split(b"\n", 3)
        out.append(np.frombuffer(hdr[3], dtype=np.uint8 if int(hdr[2]) < 256 else ">u2").astype(
            np.uint8 if ds.BitsAllocated == 8 else "<u2"))
    ds.PixelData = np.concatenate(out).tobytes()
    ds.save_as(path(ref), write_like_original=False)
    add(name[:-4], name, ref, max_diff)


jxl(rgb, "jxl_rgb.dcm", "1.2.840.10008.1.2.4.110", ["-d", "0"])
u16 = native("u16_2fr.dcm", image(37, 29, 2, 1, 16, False, 9), 16, False)
jxl(u16, "jxl_u16.dcm", "1.2.840.10008.1.2.4.110", ["-d", "0"])
jxl(u12, "jxl_u12.dcm", "1.2.840.10008.1.2.4.110", ["-d", "0"])
jxl(rgb, "jxl_lossy.dcm", "1.2.840.10008.1.2.4.112", ["-d", "1"], "jxl_lossy_ref.dcm", 1)
run("dcmcjpeg", "+eb", path(rgb), path("jpeg_baseline.dcm"))
_, jpegs = frames_of("jpeg_baseline.dcm")
recompressed = []
for i, j in enumerate(jpegs):
    open(path("baseline_%d.jpg" % i), "wb").write(j)
    run("cjxl", path("baseline_%d.jpg" % i), path("baseline_%d.jxl" % i))
    recompressed.append(open(path("baseline_%d.jxl" % i), "rb").read())
repack("jpeg_baseline.dcm", "jxl_jpeg.dcm", "bot", "1.2.840.10008.1.2.4.111", recompressed)
add("jxl_jpeg", "jxl_jpeg.dcm", "jpeg_baseline.dcm")

with open(path("manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1)
