#!/usr/bin/env bash
# Scale benchmark: ingest throughput with one, two and three espnode nodes behind HAProxy (TCP
# mode, round-robin), on the same 1200 small instances (bench/ingest/gen, 64x64x16 bit) sent by six
# storescu at once, in the same run: ROUNDS (3) rounds of the three node counts, alternating
# order, each on a fresh index and archive. Prints the median instances/s of each count with the
# spread, the ratios to one node and the nodes' CPU per instance (BenchmarkIngestScale in
# cluster/, which shares its node, HAProxy and storescu harness with the cluster scenario).
# The engines are the scenario's: PostgreSQL (started by the benchmark in a temporary folder) and
# versitygw when the tree has them, else SQLite and the file archive in each node's data_dir;
# the first line says which. On a machine of two cores the nodes, HAProxy, the senders and the
# engines share those two: the ratios say what another process costs there, not what another
# machine would give. go test runs a benchmark once with one round before the ROUNDS it reports:
# the last block of figures is the one to read.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${BENCH_OUT:-$PWD/bench/out/scale}
rounds=${ROUNDS:-3}
for tool in storescu haproxy; do
  command -v "$tool" >/dev/null || { echo "$tool not found: install Debian's dcmtk and haproxy (scripts/deps.sh test)" >&2; exit 1; }
done
export ONNXRUNTIME_SHARED_LIBRARY_PATH=${ONNXRUNTIME_SHARED_LIBRARY_PATH:-$PWD/third_party/onnxruntime/libonnxruntime.so.1}
mkdir -p "$out"
echo "# $(date -u +%FT%TZ) $(nproc) cores; $(uptime)" | tee -a "$out/results.txt"
go test -count=1 -run '^$' -bench '^BenchmarkIngestScale$' -benchtime "${rounds}x" -timeout 60m ./cluster/ 2>&1 | tee -a "$out/results.txt"
