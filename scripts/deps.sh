#!/usr/bin/env bash
# Installs what espnode needs on a Debian machine. Usage: scripts/deps.sh run|test
#   run:  the ONNX Runtime C library (from the npm package onnxruntime-node, via npm pack), and
#         the pixel codec libraries with their headers (the build links them through cgo)
#   test: the above plus the real DICOM peers and validators the tests talk to, and the
#         encoders and decoders the codec tests compare with
# Idempotent: each step is skipped when its result is already present.
set -euo pipefail
mode=${1:-run}
root=$(cd "$(dirname "$0")/.." && pwd)
ort_version=1.30.0
ort_dir="$root/third_party/onnxruntime"
ort_lib="$ort_dir/libonnxruntime.so.1"

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "deps: installing Debian packages: ${missing[*]}" >&2
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

fetch_ort() {
  # A user's own build wins: ONNXRUNTIME_SHARED_LIBRARY_PATH or --onnxruntime point elsewhere.
  if [ -f "$ort_lib" ] && [ "$(cat "$ort_dir/VERSION" 2>/dev/null)" = "$ort_version" ]; then return 0; fi
  command -v npm >/dev/null || apt_install npm
  echo "deps: fetching ONNX Runtime $ort_version (npm pack onnxruntime-node@$ort_version)" >&2
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "onnxruntime-node@$ort_version" >/dev/null)
  mkdir -p "$ort_dir"
  tar -xzf "$tmp"/onnxruntime-node-*.tgz -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
  mv "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$ort_lib"
  echo "$ort_version" > "$ort_dir/VERSION"
  rm -rf "$tmp"
}

# The npm peers of the interop suite (dcmjs-dimse), at the versions interop/package-lock.json pins,
# into interop/node_modules (ignored by git). Skipped when the installed tree matches the lock.
fetch_npm_peers() {
  local dir="$root/interop"
  # npm ci leaves a copy of the lock it installed from: the same lock, nothing to do.
  if cmp -s "$dir/package-lock.json" "$dir/node_modules/.espnode-installed-lock" 2>/dev/null; then return 0; fi
  command -v npm >/dev/null || apt_install npm
  echo "deps: installing the interop suite's npm peers (npm ci in interop/)" >&2
  (cd "$dir" && npm ci --silent --no-audit --no-fund >/dev/null)
  cp "$dir/package-lock.json" "$dir/node_modules/.espnode-installed-lock"
}

# The pixel codecs (seg/pixel/codec): OpenJPEG 2.5 (JPEG 2000, HTJ2K), CharLS 2.4 (JPEG-LS) and
# libjxl 0.7 (JPEG XL), runtime and -dev (headers, pkg-config files), and the C toolchain cgo
# uses. A build with -tags nocodecs needs none of them.
codec_libs() {
  apt_install gcc libc6-dev pkg-config libopenjp2-7 libopenjp2-7-dev libcharls2 libcharls-dev libjxl0.7 libjxl-dev
}

case "$mode" in
  run)  fetch_ort; codec_libs ;;
  test)
    fetch_ort
    codec_libs
    # dcmtk: storescu/storescp/echoscu/findscu/movescu/getscu/dcmdump; dicom3tools: dciodvfy;
    # orthanc: a real PACS for the Query/Retrieve test; python3-*: pydicom read-back, the PyTorch
    # model and its ONNX export; bc: the benchmark scripts; libgdcm-tools (gdcmscu) and nodejs
    # (dcmjs-dimse): peers of the interop suite. The codec tests compare with DCMTK (dcmdjpeg,
    # dcmdjpls, dcmdrle) and GDCM (gdcmconv --raw), and make fixtures with dcmcjpeg, dcmcjpls,
    # gdcmconv, opj_compress (libopenjp2-tools) and cjxl/djxl (libjxl-tools).
    apt_install dcmtk dicom3tools orthanc python3-pydicom python3-numpy python3-torch python3-onnx python3-pil xz-utils bc libgdcm-tools nodejs libopenjp2-tools libjxl-tools
    fetch_npm_peers
    ;;
  *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac
