#!/usr/bin/env bash
# End-to-end latency: C-STORE-RSP of an instance to its SEG written by DCMTK storescp, per
# channel, p50 and p95. Paced (one instance every PAUSE, the node otherwise idle), then burst
# (everything back to back). N instances per channel; PROVIDER is model.provider.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${BENCH_OUT:-$PWD/bench/out/e2e}
for tool in storescp dcmodify; do
  command -v "$tool" >/dev/null || { echo "$tool not found: install Debian's dcmtk (scripts/deps.sh test)" >&2; exit 1; }
done
export ONNXRUNTIME_SHARED_LIBRARY_PATH=${ONNXRUNTIME_SHARED_LIBRARY_PATH:-$PWD/third_party/onnxruntime/libonnxruntime.so.1}
mkdir -p "$out"
go build -o "$out/espnode" ./cmd/espnode
go build -o "$out/e2e" ./bench/e2e
shared=${ESPNODE_SHARED:-$PWD/../shared}
echo "## paced (${PAUSE:-300ms} between instances)"
"$out/e2e" -espnode "$out/espnode" -shared "$shared" -out "$out/paced" -n "${N:-20}" -pause "${PAUSE:-300ms}" -provider "${PROVIDER:-cpu}" 2>>"$out/results.jsonl"
echo "## burst"
"$out/e2e" -espnode "$out/espnode" -shared "$shared" -out "$out/burst" -n "${N:-20}" -burst -provider "${PROVIDER:-cpu}" 2>>"$out/results.jsonl"
