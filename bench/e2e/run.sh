#!/usr/bin/env bash
# End-to-end latency: C-STORE-RSP of an instance to its SEG written by DCMTK storescp, per
# channel, p50 and p95. Paced (one instance every PAUSE, the node otherwise idle), then burst
# (everything back to back; it also prints the drain rate against the inference-only rate of the
# same model and threads). N instances per channel; PROVIDER is model.provider, THREADS
# model.threads (0: ONNX Runtime's choice), WORKERS pipeline.workers (0: fitted).
# ESPNODE=path/to/espnode measures that binary instead of building the tree; BASE=path and
# OLD=path add other binaries (other commits), run one after another in each mode, the order
# alternating between the modes.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${BENCH_OUT:-$PWD/bench/out/e2e}
for tool in storescp dcmodify; do
  command -v "$tool" >/dev/null || { echo "$tool not found: install Debian's dcmtk (scripts/deps.sh test)" >&2; exit 1; }
done
export ONNXRUNTIME_SHARED_LIBRARY_PATH=${ONNXRUNTIME_SHARED_LIBRARY_PATH:-$PWD/third_party/onnxruntime/libonnxruntime.so.1}
mkdir -p "$out"
if [ -n "${ESPNODE:-}" ]; then cp "$ESPNODE" "$out/espnode"; else go build -o "$out/espnode" ./cmd/espnode; fi
go build -o "$out/e2e" ./bench/e2e
shared=${ESPNODE_SHARED:-$PWD/../shared}
names=espnode
if [ -n "${BASE:-}" ]; then cp "$BASE" "$out/base"; names="$names base"; fi
if [ -n "${OLD:-}" ]; then cp "$OLD" "$out/old"; names="$names old"; fi
common=(-shared "$shared" -n "${N:-20}" -provider "${PROVIDER:-cpu}" -threads "${THREADS:-0}" -workers "${WORKERS:-0}")
echo "# $(date -u +%FT%TZ) $(uptime)"
for name in $names; do
  echo "## paced (${PAUSE:-300ms} between instances): $name"
  "$out/e2e" -espnode "$out/$name" -out "$out/paced-$name" -pause "${PAUSE:-300ms}" "${common[@]}" 2>>"$out/results.jsonl"
done
for name in $(echo "$names" | tr ' ' '\n' | tac); do
  echo "## burst: $name"
  "$out/e2e" -espnode "$out/$name" -out "$out/burst-$name" -burst "${common[@]}" 2>>"$out/results.jsonl"
done
echo "# $(date -u +%FT%TZ) $(uptime)"
