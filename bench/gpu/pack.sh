#!/usr/bin/env bash
# Packs what bench/gpu/run.sh needs on a GPU machine without Go or network into .gpu/ (ignored
# by git), compressed to travel within a 64 MiB working tree:
#   espnode.xz                         the node's binary (x86-64, cgo), built here
#   libonnxruntime.so.1.xz             ONNX Runtime 1.30.0 from the npm package (CPU + WebGPU)
#   espmedsam-published-s1024.onnx.xz  the 1024 published-widths export, seed 0, its large
#                                      tensors on 4 levels (levels.py) so that xz packs it
#   vulkan/*.deb                       the Vulkan loader and GL vendor-neutral libraries that the
#                                      NVIDIA Vulkan driver needs (Debian packages, unpacked there)
#   dicom/*.dcm                        ../shared/data/dicom/wrapped (espnode segment end to end)
#   MANIFEST                           sizes, checksums and sources
# The shipped 256 compact model travels in the tree (seg/segment/shipped).
# Needs: Go, scripts/deps.sh run, Debian's python3-torch and python3-onnx (the export, about
# 7 minutes on two shared cores; kept while model/espmedsam is unchanged), apt-get, xz.
#   bench/gpu/pack.sh              # then: bench/gpu/run.sh OUTDIR on the GPU machine
#   EXPORT=/tmp/pub1024.onnx bench/gpu/pack.sh   # reuse an export of the same command
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
pack="$root/.gpu"
shared=${SHARED:-$root/../shared}
py=/usr/bin/python3
model=espmedsam-published-s1024.onnx
limit=$((64 << 20))
[ "$(uname -m)" = x86_64 ] || { echo "pack: builds an x86-64 cgo binary, so it runs on x86-64 only (this is $(uname -m))" >&2; exit 1; }
mkdir -p "$pack/vulkan" "$pack/dicom"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "pack: building the node" >&2
(cd "$root" && CGO_ENABLED=1 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags '-s -w' -o "$tmp/espnode" ./cmd/espnode)
xz -9 -T1 -c "$tmp/espnode" > "$pack/espnode.xz"

"$root/scripts/deps.sh" run
ort="$root/third_party/onnxruntime/libonnxruntime.so.1"
if [ ! -f "$pack/libonnxruntime.so.1.xz" ] || [ "$ort" -nt "$pack/libonnxruntime.so.1.xz" ]; then
  echo "pack: compressing ONNX Runtime" >&2
  xz -9 -T1 -c "$ort" > "$pack/libonnxruntime.so.1.xz"
fi

if [ ! -f "$pack/$model.xz" ] || [ -n "$(find "$root/model/espmedsam" "$root/bench/gpu/levels.py" -name '*.py' -newer "$pack/$model.xz")" ]; then
  if [ -n "${EXPORT:-}" ]; then
    cp "$EXPORT" "$tmp/export.onnx"   # an export made before, by the same command
  else
    echo "pack: exporting the 1024 published-widths model (seed 0)" >&2
    (cd "$root/model" && $py -m espmedsam.export --seed 0 --size 1024 --out "$tmp/export.onnx" >&2)
  fi
  $py "$root/bench/gpu/levels.py" "$tmp/export.onnx" "$tmp/$model" >&2
  xz -9 -T1 -c "$tmp/$model" > "$pack/$model.xz"
fi

# The device README's packages, from Debian's amd64 lists kept apart from the system's.
if ! ls "$pack"/vulkan/libvulkan1_*.deb >/dev/null 2>&1; then
  echo "pack: fetching the Vulkan loader packages" >&2
  o="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=$tmp/lists"
  mkdir -p "$tmp/lists/partial"
  apt-get $o update -qq
  (cd "$pack/vulkan" && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi

[ -d "$shared/data/dicom/wrapped" ] || { echo "pack: $shared/data/dicom/wrapped is missing (set SHARED)" >&2; exit 1; }
cp "$shared"/data/dicom/wrapped/*.dcm "$pack/dicom/"

{
  echo "# bench/gpu/pack.sh, $(date -u +%FT%TZ), commit $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet || echo '+changes')"
  echo "# onnxruntime $(cat "$root/third_party/onnxruntime/VERSION"); $model: espmedsam.export --seed 0 --size 1024, levels.py"
  (cd "$pack" && find . -type f ! -name MANIFEST | sort | while read -r f; do
    echo "$(stat -c %s "$f") $(sha256sum "$f" | cut -d' ' -f1) ${f#./}"
  done)
} > "$pack/MANIFEST"

tree=$(git -C "$root" ls-files -z --cached --others --exclude-standard | (cd "$root" && xargs -0 stat -c %s 2>/dev/null) | awk '{s+=$1} END {print s+0}')
carried=$(du -sb "$pack" | cut -f1)
printf 'pack: %s\n' "$pack"
(cd "$pack" && find . -type f | sort | xargs du -b | awk '{printf "  %10d  %s\n", $1, $2}')
printf 'pack: .gpu/ %.1f MiB + working tree %.1f MiB = %.1f MiB of the 64 MiB a device call carries\n' \
  "$(echo "$carried / 1048576" | bc -l)" "$(echo "$tree / 1048576" | bc -l)" "$(echo "($carried + $tree) / 1048576" | bc -l)"
if [ $((carried + tree)) -gt $limit ]; then echo "pack: too large for one device call" >&2; exit 1; fi
