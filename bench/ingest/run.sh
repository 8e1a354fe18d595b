#!/usr/bin/env bash
# Ingest benchmark: espnode (fsync on, indexed), DCMTK storescp (no fsync) and Orthanc receive the
# same files from DCMTK storescu over loopback, in the same run, alternating receivers round by
# round, ROUNDS times each. Prints, per set and receiver, the median files/s and MB/s with the
# spread (min..max files/s), CPU ms per object, peak RSS and the ratios espnode/storescp and
# espnode/Orthanc. Sets (SETS, default all):
#   ct        CT_N (500) copies of the shared CT slice cornerstone_CT_evrle.dcm (531 KB), new
#             study, series and instance UIDs from dcmodify -gin -gse -gst, one association
#   small     SMALL_N (1000) synthetic objects of 64x64x16 bit (bench/ingest/gen), one association
#   parallel  the small set over PARALLEL (4) storescu at once (storescp --fork)
#   large     LARGE_N (20) synthetic objects of 5000x5000x16 bit (50 MB), one association
#   rss64     RSS_N (64) storescu at once, each streaming one distinct 50 MB object: peak RSS
#   latency   the ct set sent by bench/ingest/send over one association: C-STORE-RSP latency
#             p50 and p99 (storescu does not report them)
#   window    the same with send -window WINDOW (8): it proposes an asynchronous operations
#             window and keeps as many requests outstanding as the receiver grants (storescp and
#             Orthanc grant none: one at a time); the granted window is printed
# Every set is generated into a temporary folder and removed at the end; nothing is committed.
# RECEIVERS (default "storescp orthanc espnode"); BASE=path/to/espnode adds "base", another
# espnode binary, measured the same way (a commit to compare with), and OLD=path/to/espnode
# "old", a third; ESPNODE=path/to/espnode measures that binary as "espnode" instead of building
# the tree.
# PROFILE=1 runs one more espnode round per set, not counted, with the Go CPU, block, mutex and
# heap profiles written to $BENCH_OUT/profile/SET/ (ESPNODE_PROFILE_DIR); STRACE=1 one more under
# strace -c -f (summary in $BENCH_OUT/strace-SET.txt). Results also go to results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${BENCH_OUT:-$PWD/bench/out/ingest}
rounds=${ROUNDS:-3}
ct_n=${CT_N:-500}
small_n=${SMALL_N:-1000}
large_n=${LARGE_N:-20}
rss_n=${RSS_N:-64}
parallel=${PARALLEL:-4}
window=${WINDOW:-8}
sets=${SETS:-ct small parallel large rss64 latency window}
receivers=${RECEIVERS:-storescp orthanc espnode}
shared=${ESPNODE_SHARED:-$PWD/../shared}
ct_src=$shared/data/dicom/CT/cornerstone_CT_evrle.dcm
if [ -n "${BASE:-}" ]; then receivers="$receivers base"; fi
if [ -n "${OLD:-}" ]; then receivers="$receivers old"; fi
for tool in storescu storescp dcmodify bc; do
  command -v "$tool" >/dev/null || { echo "$tool not found: install Debian's dcmtk and bc (scripts/deps.sh test)" >&2; exit 1; }
done
case " $receivers " in *" orthanc "*)
  command -v Orthanc >/dev/null || { echo "Orthanc not found: install Debian's orthanc (scripts/deps.sh test)" >&2; exit 1; } ;;
esac
[ -f "$ct_src" ] || { echo "$ct_src not found: the shared test data (ESPNODE_SHARED)" >&2; exit 1; }
# Debian's DCMTK keeps Nagle's algorithm on unless told otherwise, which makes it ~140x slower.
export TCP_NODELAY=1
mkdir -p "$out"
rm -rf "$out/profile" "$out"/strace-*.txt "$out"/*.log
# The sets live in a temporary folder under the output folder (other programs may clean /tmp).
work=$(mktemp -d "$out/sets.XXXXXX")
trap 'rm -rf "$work"' EXIT
# ESPNODE=path measures a binary built elsewhere (another commit) as "espnode".
if [ -n "${ESPNODE:-}" ]; then cp "$ESPNODE" "$work/espnode"; else go build -o "$work/espnode" ./cmd/espnode; fi
go build -o "$work/send" ./bench/ingest/send

need() { case " $sets " in *" $1 "*) return 0 ;; esac; return 1; }
if need ct || need latency || need window; then
  mkdir -p "$work/ct"
  for i in $(seq -w "$ct_n"); do cp "$ct_src" "$work/ct/ct$i.dcm"; done
  dcmodify -nb -gin -gse -gst "$work"/ct/*.dcm >/dev/null
fi
if need small || need parallel; then go run ./bench/ingest/gen -n "$small_n" -side 64 -out "$work/small"; fi
if need large; then go run ./bench/ingest/gen -n "$large_n" -side 5000 -out "$work/large"; fi
if need rss64; then
  go run ./bench/ingest/gen -n "$rss_n" -side 5000 -out "$work/rss64-all"
  i=0
  for f in "$work"/rss64-all/*.dcm; do mkdir -p "$work/rss64/$i"; ln -s "$f" "$work/rss64/$i/"; i=$((i + 1)); done
fi
if need parallel; then
  # The parallel set is the small set in PARALLEL folders, one per sender.
  i=0
  for f in "$work"/small/*.dcm; do
    d="$work/parallel/$((i % parallel))"; mkdir -p "$d"; ln -s "$f" "$d/"; i=$((i + 1))
  done
fi
[ -d "$work/ct" ] && ln -sfn "$work/ct" "$work/latency" && ln -sfn "$work/ct" "$work/window"

# The objects are routed to no channel (CT, OT) and no model is loaded (a path that does not
# exist; the shipped one would be written to each fresh data directory while it receives): this
# measures ingest. No HTTP endpoint, so a node already running here does not collide. rss64's
# 64 senders all come from 127.0.0.1, past the default per-host limit of 16.
# A binary older than the per-host limit knows no such key and refuses it.
config() {
  printf 'http:\n  addr: ""\nlog:\n  level: warn\nmodel:\n  path: %s/no-model.onnx\n' "$work"
  # The window the sender proposes is what espnode grants (a binary older than the window knows
  # no such key).
  local dicom=""
  if grep -aq max_connections_per_host "$1"; then dicom+='  max_connections_per_host: 0\n'; fi
  if grep -aq max_operations "$1"; then dicom+="  max_operations: $window\n"; fi
  if [ -n "$dicom" ]; then printf "dicom:\n$dicom"; fi
}
config "$work/espnode" > "$work/espnode.yaml"
[ -n "${BASE:-}" ] && config "$BASE" > "$work/base.yaml"
[ -n "${OLD:-}" ] && config "$OLD" > "$work/old.yaml"
port=$((20000 + RANDOM % 20000))
wait_port() { for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
# cpu_ticks PID: user+system clock ticks of the process, its reaped children and its live ones.
cpu_ticks() {
  local t c
  t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat")
  for c in $(pgrep -P "$1" || true); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
hz=$(getconf CLK_TCK)

# receive NAME SET [MODE]: starts the receiver, sends SET, prints "seconds peak_rss_kib files
# cpu_seconds extra" (extra: the latency probe's JSON, or -). MODE profile or strace wraps espnode.
receive() {
  local name=$1 set=$2 mode=${3:-} dir="$work/recv-$1" pid bin
  rm -rf "$dir"; mkdir -p "$dir"
  case $name in
    espnode|base|old)
      bin=$work/espnode; [ "$name" = base ] && bin=$BASE; [ "$name" = old ] && bin=$OLD
      local cfg=$work/$name.yaml
      case $mode in
        profile) ESPNODE_PROFILE_DIR="$out/profile/$set" "$bin" serve --config "$cfg" --port "$port" --data-dir "$dir" 2>>"$out/$name.log" & pid=$! ;;
        strace) strace -c -f -o "$out/strace-$set.txt" "$bin" serve --config "$cfg" --port "$port" --data-dir "$dir" 2>>"$out/$name.log" & pid=$! ;;
        *) "$bin" serve --config "$cfg" --port "$port" --data-dir "$dir" 2>>"$out/$name.log" & pid=$! ;;
      esac ;;
    storescp)
      local fork=""; case $set in parallel|rss64) fork=--fork ;; esac
      storescp $fork -od "$dir" "$port" 2>>"$out/storescp.log" & pid=$! ;;
    orthanc)
      printf '{"Name":"bench","StorageDirectory":"%s/storage","IndexDirectory":"%s","DicomPort":%d,"DicomAet":"ORTHANC","HttpServerEnabled":false,"DicomCheckCalledAet":false,"RemoteAccessAllowed":false,"Plugins":[],"StorageCompression":false}\n' \
        "$dir" "$dir" "$port" > "$work/orthanc.json"
      Orthanc "$work/orthanc.json" >>"$out/orthanc.log" 2>&1 & pid=$! ;;
  esac
  wait_port "$port" || { echo "$name did not listen on $port" >&2; kill "$pid"; return 1; }
  local t0 t1 c0 extra=- senders=()
  c0=$(cpu_ticks "$pid")
  t0=$(date +%s.%N)
  case $set in
    parallel|rss64)
      for d in "$work/$set"/*/; do storescu -aec ANY +sd 127.0.0.1 "$port" "$d" >/dev/null 2>>"$out/storescu.log" & senders+=($!); done
      wait "${senders[@]}" || true ;;
    latency) extra=$("$work/send" -addr "127.0.0.1:$port" -dir "$work/latency") ;;
    window) extra=$("$work/send" -addr "127.0.0.1:$port" -dir "$work/window" -window "$window") ;;
    *) storescu -aec ANY +sd 127.0.0.1 "$port" "$work/$set" >/dev/null 2>>"$out/storescu.log" || true ;;
  esac
  t1=$(date +%s.%N)
  # Children of storescp --fork that are still finishing count too.
  sleep 0.2
  local c1 rss
  c1=$(cpu_ticks "$pid")
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  if [ "$mode" = strace ]; then
    # strace writes its summary when the node it traces has exited.
    pkill -TERM -P "$pid" 2>/dev/null || true
  else
    kill "$pid"
  fi
  wait "$pid" 2>/dev/null || true
  local files
  case $name in
    orthanc) files=$(find "$dir/storage" -type f | grep -c . || true) ;;
    *) files=$(find "$dir" -type f \( -name '*.dcm' -o -name '[A-Z][A-Z].*' \) | grep -c . || true) ;;
  esac
  # Put aside before the result line: the caller reads it from a process substitution and goes
  # on at once. The sets of many files are kept until the end: on a file system without a
  # journal (this machine's ext4) the inode allocator skips inodes freed in the last minute or
  # so, which made every file the next receiver created cost half a millisecond of CPU after a
  # round's thousands were deleted: the benchmark's doing, not the receiver's.
  case $set in
    large|rss64) rm -rf "$dir" ;;
    *) mkdir -p "$work/done"; mv "$dir" "$work/done/$name-$set-$(date +%s%N)" ;;
  esac
  echo "$(echo "$t1 - $t0" | bc -l) $rss $files $(echo "($c1 - $c0) / $hz" | bc -l) $extra"
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
minmax() { sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {print lo, hi}'; }
jget() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; }

echo "# $(date -u +%FT%TZ) $(uptime)"
printf '%-8s %-9s %6s %9s %15s %8s %9s %10s %s\n' set receiver files files/s "(min..max)" MB/s cpu_ms/obj peak_MiB extra
for set in $sets; do
  n=$(find -L "$work/$set" -name '*.dcm' | wc -l)
  mb=$(du -Lsm --apparent-size "$work/$set" | cut -f1)
  declare -A secs=() rss=() cpu=() p50=() p99=() granted=()
  for r in $(seq "$rounds"); do
    # Alternate the order from round to round so no receiver always follows the same one.
    order=$receivers; [ $((r % 2)) = 0 ] && order=$(echo "$receivers" | tr ' ' '\n' | tac | tr '\n' ' ')
    for recv in $order; do
      read -r s m f c x < <(receive "$recv" "$set")
      if [ "$f" -lt "$n" ]; then echo "$recv stored $f of $n files in round $r of $set" >&2; exit 1; fi
      secs[$recv]+="$s "; cpu[$recv]+="$c "
      [ -z "${rss[$recv]:-}" ] || [ "$m" -gt "${rss[$recv]}" ] && rss[$recv]=$m
      if [ "$x" != - ]; then
        p50[$recv]+="$(echo "$x" | jget p50_ms) "; p99[$recv]+="$(echo "$x" | jget p99_ms) "; granted[$recv]=$(echo "$x" | jget window)
      fi
    done
  done
  for recv in $receivers; do
    s=$(echo "${secs[$recv]}" | tr ' ' '\n' | grep . | median)
    read -r lo hi < <(echo "${secs[$recv]}" | tr ' ' '\n' | grep . | minmax)
    c=$(echo "${cpu[$recv]}" | tr ' ' '\n' | grep . | median)
    extra=""
    if [ -n "${p50[$recv]:-}" ]; then
      extra="p50_ms=$(echo "${p50[$recv]}" | tr ' ' '\n' | grep . | median) p99_ms=$(echo "${p99[$recv]}" | tr ' ' '\n' | grep . | median)"
      [ "$set" = window ] && extra="$extra window=${granted[$recv]:-1}"
    fi
    printf '%-8s %-9s %6d %9.1f %15s %8.1f %9.2f %10.1f %s\n' "$set" "$recv" "$n" "$(echo "$n / $s" | bc -l)" \
      "($(printf '%.0f..%.0f' "$(echo "$n / $hi" | bc -l)" "$(echo "$n / $lo" | bc -l)"))" \
      "$(echo "$mb / $s" | bc -l)" "$(echo "$c * 1000 / $n" | bc -l)" "$(echo "${rss[$recv]} / 1024" | bc -l)" "$extra"
    printf '{"set":"%s","receiver":"%s","files":%d,"seconds":[%s],"cpu_seconds":[%s],"peak_rss_kib":%d,"p50_ms":[%s],"p99_ms":[%s]}\n' \
      "$set" "$recv" "$n" "$(echo ${secs[$recv]} | tr ' ' ',')" "$(echo ${cpu[$recv]} | tr ' ' ',')" "${rss[$recv]}" \
      "$(echo ${p50[$recv]:-} | tr ' ' ',')" "$(echo ${p99[$recv]:-} | tr ' ' ',')" >> "$out/results.jsonl"
    eval "med_$recv=$s"
  done
  for recv in $receivers; do
    case $recv in espnode|base|old) ;; *) continue ;; esac
    v="med_$recv"
    ratios="$set $recv throughput ratios:"
    for ref in storescp orthanc base old; do
      [ "$ref" = "$recv" ] && continue
      r="med_$ref"
      [ -n "${!r:-}" ] && ratios="$ratios $recv/$ref $(printf '%.2f' "$(echo "${!r} / ${!v}" | bc -l)")x"
    done
    echo "$ratios"
  done
  if [ -n "${PROFILE:-}" ]; then receive espnode "$set" profile >/dev/null && echo "$set: profiles in $out/profile/$set"; fi
  if [ -n "${STRACE:-}" ]; then receive espnode "$set" strace >/dev/null && echo "$set: strace -c in $out/strace-$set.txt"; fi
  unset secs rss cpu p50 p99 granted
done
echo "# $(date -u +%FT%TZ) $(uptime)"
