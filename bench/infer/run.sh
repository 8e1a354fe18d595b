#!/usr/bin/env bash
# Inference benchmark: the node's Go runtime (ONNX Runtime through seg/onnx) and PyTorch on the
# same random weights and the same input, at 1024 (published widths) and at the compact size.
#   bench/infer/run.sh                      # both sizes, 2 threads
#   THREADS=1 ITERS=3 SIZES="256:compact" bench/infer/run.sh
#   BLAS=system bench/infer/run.sh         # PyTorch on Debian's default (reference) BLAS
#   SPIN=1 bench/infer/run.sh              # ONNX Runtime threads spin-wait (off by default)
# PyTorch runs on OpenBLAS by default when Debian's libopenblas0-pthread is installed: Debian's
# python3-torch otherwise does its Linear layers with the reference BLAS, which is many times
# slower and would flatter the Go side.
# Needs: Go, scripts/deps.sh run (ONNX Runtime), Debian's python3-torch and python3-onnx.
# Prints each side's JSON line, then a table with the ratio (PyTorch time / Go time).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
threads=${THREADS:-2}
iters=${ITERS:-3}
batch=${BATCH:-1}
sizes=${SIZES:-"1024:published 256:compact"}
py=/usr/bin/python3
blas=${BLAS:-$([ -d /usr/lib/x86_64-linux-gnu/openblas-pthread ] && echo openblas || echo system)}
out="$root/bench/out/infer"
mkdir -p "$out"
export ONNXRUNTIME_SHARED_LIBRARY_PATH=${ONNXRUNTIME_SHARED_LIBRARY_PATH:-$root/third_party/onnxruntime/libonnxruntime.so.1}
[ -f "$ONNXRUNTIME_SHARED_LIBRARY_PATH" ] || { echo "ONNX Runtime missing: run scripts/deps.sh run" >&2; exit 1; }
(cd "$root" && go build -o "$out/infer" ./bench/infer)

mods=$(seq -s, 0 $((batch - 1)) | awk -F, '{for(i=1;i<=NF;i++) printf "%s%d", (i>1?",":""), $i%6}')
results="$out/results.jsonl"
: > "$results"
for spec in $sizes; do
  size=${spec%%:*}; widths=${spec##*:}
  fx="$out/fixture-$widths-$size-b$batch"
  # Seed 0 and the first $batch modalities: the weights and images espmedsam.bench builds.
  # Regenerated when the network's code is newer, so that both sides keep the same weights.
  if [ ! -f "$fx/meta.json" ] || [ -n "$(find "$root/model/espmedsam" -name '*.py' -newer "$fx/meta.json")" ]; then
    rm -rf "$fx"
    (cd "$root/model" && $py -m espmedsam.parity --size "$size" --widths "$widths" --modalities "$mods" \
      --seed 0 --out "$fx" --threads "$threads" >/dev/null)
  fi
  echo "== S=$size widths=$widths threads=$threads batch=$batch iters=$iters" >&2
  go_line=$("$out/infer" --model "$fx/model.onnx" --input "$fx/image.f32" --threads "$threads" --iters "$iters" --batch "$batch" ${SPIN:+--spin})
  echo "$go_line"
  py_line=$(cd "$root/model" && $py -m espmedsam.bench --size "$size" --widths "$widths" --threads "$threads" \
    --iters "$iters" --batch "$batch" --blas "$blas")
  echo "$py_line"
  printf '{"widths":"%s","go":%s,"pytorch":%s}\n' "$widths" "$go_line" "$py_line" >> "$results"
done

$py - "$results" <<'PY'
import json, sys
print(f"{'size':>5} {'widths':>9} {'batch':>5} {'Go+ORT ms/img':>14} {'img/s':>7} {'PyTorch ms/img':>15} {'img/s':>7} {'blas':>9} {'PyTorch/Go':>10}")
for line in open(sys.argv[1]):
    r = json.loads(line)
    g, p = r["go"], r["pytorch"]
    print(f"{g['size']:>5} {r['widths']:>9} {g['batch']:>5} {g['ms_per_image']:>14.1f} {g['images_per_s']:>7.3f} "
          f"{p['ms_per_image']:>15.1f} {p['images_per_s']:>7.3f} {p.get('blas', '?'):>9} {p['ms_per_image'] / g['ms_per_image']:>9.2f}x")
PY
