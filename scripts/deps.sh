#!/usr/bin/env bash
# Installs what espnode needs on a Debian machine. Usage: scripts/deps.sh run|test
#   run:  the ONNX Runtime C library (from the npm package onnxruntime-node, via npm pack), the
#         pixel codec libraries with their headers (the build links them through cgo) and the
#         OHIF viewer (the static site of the npm package @ohif/app, via npm pack, trimmed)
#   test: the above plus the real DICOM peers, DICOMweb clients, browser and validators the
#         tests talk to, the encoders and decoders the codec tests compare with, and the S3
#         server (versitygw) the object-store archive is tested against
# Idempotent: each step is skipped when its result is already present.
set -euo pipefail
mode=${1:-run}
root=$(cd "$(dirname "$0")/.." && pwd)
ort_version=1.30.0
ort_dir="$root/third_party/onnxruntime"
ort_lib="$ort_dir/libonnxruntime.so.1"
# The OHIF viewer espnode serves (http.viewer): @ohif/app's prebuilt site, checked against the
# registry's integrity digest of that version.
ohif_version=3.13.2
ohif_integrity=sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA==
ohif_dir="$root/third_party/ohif"
# The S3 server the archive tests run (store/s3archive/s3test): versitygw, Apache-2.0, built from
# the Go module proxy into third_party/versitygw (ignored by git).
vgw_version=v1.8.0
vgw_dir="$root/third_party/versitygw"

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

# The OHIF viewer into third_party/ohif (ignored by git), without what the node's viewer does not
# use: source maps and the ONNX Runtime web builds (OHIF's in-browser AI tools; the node makes the
# SEG itself), 136 MB of the package's 204 MB. Skipped when that version is there.
fetch_ohif() {
  if [ -f "$ohif_dir/index.html" ] && [ "$(cat "$ohif_dir/.espnode-version" 2>/dev/null)" = "$ohif_version" ]; then return 0; fi
  command -v npm >/dev/null || apt_install npm
  echo "deps: fetching the OHIF viewer $ohif_version (npm pack @ohif/app@$ohif_version)" >&2
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@ohif/app@$ohif_version" >/dev/null)
  local got; got="sha512-$(openssl dgst -sha512 -binary "$tmp"/ohif-app-"$ohif_version".tgz | base64 -w0)"
  if [ "$got" != "$ohif_integrity" ]; then
    echo "deps: @ohif/app@$ohif_version does not match its pinned integrity ($got)" >&2
    rm -rf "$tmp"; exit 1
  fi
  tar -xzf "$tmp"/ohif-app-"$ohif_version".tgz -C "$tmp" package/dist
  rm -rf "$tmp/package/dist/ort"
  find "$tmp/package/dist" -name '*.map' -delete
  rm -rf "$ohif_dir"
  mkdir -p "$(dirname "$ohif_dir")"
  mv "$tmp/package/dist" "$ohif_dir"
  echo "$ohif_version" > "$ohif_dir/.espnode-version"
  rm -rf "$tmp"
}

# versitygw from source at the pinned version; skipped when that version is there.
fetch_versitygw() {
  if [ -x "$vgw_dir/versitygw" ] && [ "$(cat "$vgw_dir/VERSION" 2>/dev/null)" = "$vgw_version" ]; then return 0; fi
  command -v go >/dev/null || { echo "deps: go is needed to build versitygw" >&2; exit 1; }
  echo "deps: building versitygw $vgw_version (go install from the module proxy)" >&2
  mkdir -p "$vgw_dir"
  (cd "$vgw_dir" && GOBIN="$vgw_dir" go install "github.com/versity/versitygw/cmd/versitygw@$vgw_version")
  echo "$vgw_version" > "$vgw_dir/VERSION"
}

# The npm packages of a test folder, at the versions its package-lock.json pins, into its
# node_modules (ignored by git): interop/ (dcmjs-dimse) and interop/web/ (dicomweb-client,
# playwright-core, which drives Debian's chromium and downloads no browser). Skipped when the
# installed tree matches the lock.
fetch_npm_peers() {
  local dir="$1"
  # npm ci leaves a copy of the lock it installed from: the same lock, nothing to do.
  if cmp -s "$dir/package-lock.json" "$dir/node_modules/.espnode-installed-lock" 2>/dev/null; then return 0; fi
  command -v npm >/dev/null || apt_install npm
  echo "deps: installing npm test peers (npm ci in ${dir#"$root"/})" >&2
  (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --silent --no-audit --no-fund >/dev/null)
  # Each package the tests name, at the version package.json pins (dcmjs-dimse 0.3.3;
  # dicomweb-client 0.11.3, playwright-core 1.65.1, xhr2 0.2.1), or the install failed.
  node -e '
    const dir = process.argv[1];
    for (const [name, want] of Object.entries(require(dir + "/package.json").dependencies)) {
      const got = require(dir + "/node_modules/" + name + "/package.json").version;
      if (got !== want) { console.error(`deps: ${name} ${got} installed, package.json pins ${want}`); process.exit(1); }
      console.error(`deps: ${name}@${got}`);
    }' "$dir"
  cp "$dir/package-lock.json" "$dir/node_modules/.espnode-installed-lock"
}

# The pixel codecs (seg/pixel/codec): OpenJPEG 2.5 (JPEG 2000, HTJ2K), CharLS 2.4 (JPEG-LS),
# libjxl 0.7 (JPEG XL) and libjpeg-turbo 2.1 (8-bit DCT JPEG), runtime and -dev (headers,
# pkg-config files), and the C toolchain cgo uses. A build with -tags nocodecs needs none of them.
codec_libs() {
  apt_install gcc libc6-dev pkg-config libopenjp2-7 libopenjp2-7-dev libcharls2 libcharls-dev libjxl0.7 libjxl-dev libjpeg62-turbo libjpeg62-turbo-dev
}

case "$mode" in
  run)  fetch_ort; codec_libs; fetch_ohif ;;
  test)
    fetch_ort
    codec_libs
    fetch_ohif
    # dcmtk: storescu/storescp/echoscu/findscu/movescu/getscu/dcmdump; dicom3tools: dciodvfy;
    # orthanc: a real PACS for the Query/Retrieve test; orthanc-dicomweb: Orthanc as DICOMweb
    # client of the node; python3-*: pydicom read-back, the PyTorch model and its ONNX export;
    # bc: the benchmark scripts; libgdcm-tools (gdcmscu) and nodejs (dcmjs-dimse,
    # dicomweb-client): peers of the interop suite; chromium: the browser that opens the viewer.
    # The codec tests compare with DCMTK (dcmdjpeg, dcmdjpls, dcmdrle) and GDCM (gdcmconv --raw),
    # and make fixtures with dcmcjpeg, dcmcjpls, gdcmconv, opj_compress (libopenjp2-tools) and
    # cjxl/djxl (libjxl-tools).
    apt_install dcmtk dicom3tools orthanc orthanc-dicomweb python3-pydicom python3-numpy python3-torch python3-onnx python3-pil xz-utils bc libgdcm-tools nodejs chromium openssl libopenjp2-tools libjxl-tools libopenblas0-pthread
    # postgresql: the shared index and queue's engine, started by store/postgres/pgtest
    # (initdb and postgres from /usr/lib/postgresql/VERSION/bin); haproxy: the TCP load balancer in
    # front of the cluster scenario's nodes (cluster/).
    apt_install postgresql haproxy
    fetch_npm_peers "$root/interop"
    fetch_npm_peers "$root/interop/web"
    fetch_versitygw
    ;;
  *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac
