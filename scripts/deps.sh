#!/usr/bin/env bash
# Installs what espnode needs on a Debian machine. Usage: scripts/deps.sh run|test
#   run:  the ONNX Runtime C library (from the npm package onnxruntime-node, via npm pack)
#   test: the above plus the real DICOM peers and validators the tests talk to
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

case "$mode" in
  run)  fetch_ort ;;
  test)
    fetch_ort
    # dcmtk: storescu/storescp/echoscu/findscu/movescu/getscu/dcmdump; dicom3tools: dciodvfy;
    # orthanc: a real PACS for the Query/Retrieve test; python3-*: pydicom read-back, the PyTorch
    # model and its ONNX export; bc: the benchmark scripts; libgdcm-tools (gdcmscu) and nodejs
    # (dcmjs-dimse): peers of the interop suite.
    apt_install dcmtk dicom3tools orthanc python3-pydicom python3-numpy python3-torch python3-onnx python3-pil xz-utils bc libgdcm-tools nodejs
    fetch_npm_peers
    ;;
  *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac
