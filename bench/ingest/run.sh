#!/usr/bin/env bash
# Ingest benchmark: espnode (fsync on, indexed) and DCMTK storescp (no fsync) receive the same
# files from DCMTK storescu over loopback, in the same run, alternating, ROUNDS times each.
# Prints files/s and MB/s per receiver and the ratio espnode/storescp (median of the rounds).
#   SMALL_N (1000) objects of 64x64x16 bit; LARGE_N (20) objects of 5000x5000x16 bit (50 MB);
#   "parallel": the small set split over PARALLEL (4) storescu processes sending at once
#   (storescp runs with --fork there, as DCMTK serves concurrent associations).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${BENCH_OUT:-$PWD/bench/out/ingest}
rounds=${ROUNDS:-3}
small_n=${SMALL_N:-1000}
large_n=${LARGE_N:-20}
parallel=${PARALLEL:-4}
for tool in storescu storescp; do
  command -v "$tool" >/dev/null || { echo "$tool not found: install Debian's dcmtk (scripts/deps.sh test)" >&2; exit 1; }
done
# Debian's DCMTK keeps Nagle's algorithm on unless told otherwise, which makes it ~140x slower.
export TCP_NODELAY=1
rm -rf "$out"; mkdir -p "$out"
go build -o "$out/espnode" ./cmd/espnode
[ -d "$out/small" ] || go run ./bench/ingest/gen -n "$small_n" -side 64 -out "$out/small"
[ -d "$out/large" ] || go run ./bench/ingest/gen -n "$large_n" -side 5000 -out "$out/large"
# The parallel set is the small set in PARALLEL folders, one per sender.
mkdir -p "$out/parallel"
i=0
for f in "$out"/small/*.dcm; do
  d="$out/parallel/$((i % parallel))"; mkdir -p "$d"; ln -sf "$f" "$d/"; i=$((i + 1))
done

# The synthetic objects are Modality OT, which no routing rule segments: this measures ingest.
# No HTTP endpoint, so a node already running here does not collide.
printf 'http:\n  addr: ""\nlog:\n  level: warn\n' > "$out/espnode.yaml"
port=$((20000 + RANDOM % 20000))
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

# receive NAME SET: starts the receiver, sends SET with storescu, prints "seconds peak_rss_kib".
receive() {
  local name=$1 set=$2 dir="$out/recv-$1" pid
  rm -rf "$dir"; mkdir -p "$dir"
  case $name in
    espnode) "$out/espnode" serve --config "$out/espnode.yaml" --port "$port" --data-dir "$dir" 2>"$out/espnode.log" & pid=$! ;;
    storescp)
      local fork=""; [ "$set" = parallel ] && fork=--fork
      storescp $fork -od "$dir" "$port" 2>"$out/storescp.log" & pid=$! ;;
  esac
  wait_port "$port"
  local t0 t1
  t0=$(date +%s.%N)
  if [ "$set" = parallel ]; then
    for d in "$out"/parallel/*/; do storescu -aec ANY +sd "127.0.0.1" "$port" "$d" >/dev/null 2>>"$out/storescu.log" & done
    wait $(jobs -p | grep -v "^$pid\$") 2>/dev/null || true
  else
    storescu -aec ANY +sd "127.0.0.1" "$port" "$out/$set" >/dev/null 2>"$out/storescu.log"
  fi
  t1=$(date +%s.%N)
  local rss; rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local files; files=$(find "$dir" -type f \( -name '*.dcm' -o -name '[A-Z]*.*' \) | grep -c . || true)
  echo "$(echo "$t1 - $t0" | bc -l) $rss $files"
  rm -rf "$dir"
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-6s %-9s %7s %9s %9s %10s\n' set receiver files files/s MB/s peak_RSS_MiB
for set in small parallel large; do
  n=$(find -L "$out/$set" -name '*.dcm' | wc -l)
  mb=$(du -Lsm --apparent-size "$out/$set" | cut -f1)
  declare -A secs=() rss=()
  for r in $(seq "$rounds"); do
    for recv in storescp espnode; do
      read -r s m f < <(receive "$recv" "$set")
      if [ "$f" -lt "$n" ]; then echo "$recv stored $f of $n files in round $r" >&2; exit 1; fi
      secs[$recv]+="$s "; rss[$recv]=$m
    done
  done
  for recv in storescp espnode; do
    s=$(echo "${secs[$recv]}" | tr ' ' '\n' | grep . | median)
    printf '%-6s %-9s %7d %9.1f %9.1f %10.1f\n' "$set" "$recv" "$n" "$(echo "$n / $s" | bc -l)" "$(echo "$mb / $s" | bc -l)" "$(echo "${rss[$recv]} / 1024" | bc -l)"
    eval "med_$recv=$s"
  done
  printf '%-6s ratio espnode/storescp (throughput): %.2fx\n' "$set" "$(echo "$med_storescp / $med_espnode" | bc -l)"
done
