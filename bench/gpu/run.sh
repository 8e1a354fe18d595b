#!/usr/bin/env bash
# The node on a GPU: which provider `auto` selects and why, parity of the provider's logits
# against the CPU's on the same images, latency (batch 1) and throughput (batches 8 and 32) at
# 256 (the shipped compact model) and 1024 (the published widths), beside the CPU in the same
# run, and `espnode segment` end to end over the wrapped DICOM images, on both.
#   bench/gpu/pack.sh                  # here: fills .gpu/ (binary, ONNX Runtime, model, Vulkan)
#   bench/gpu/run.sh OUTDIR            # there: needs bash, coreutils, xz or python3, dpkg
# Writes OUTDIR/summary.json and OUTDIR/run.log (nothing else: a device call returns 8 files).
# Without Go or network: everything comes from .gpu/ and the tree. Environment:
#   PROVIDER=webgpu   the provider measured (cpu runs the whole script on the CPU, as the test does)
#   REFERENCE=cpu     the provider it is compared with and timed beside
#   BATCHES=1,8,32 ITERS=3 WARMUP=1 PARITY_IMAGES=4 THREADS=0 (0: all cores) STEP_TIMEOUT=150 (s, per process)
#   PACK=.gpu  ESPNODE, ONNXRUNTIME_SHARED_LIBRARY_PATH, MODELS (space-separated), DICOM (a folder)
#   override what comes from the pack; KEEP=1 keeps the scratch folder.
# Vulkan: when the system has no libvulkan.so.1, the carried packages are unpacked into the
# scratch folder and put on LD_LIBRARY_PATH; VK_DRIVER_FILES is set to the NVIDIA driver's ICD
# file where the device README says it is. If `auto` still does not select WebGPU and this runs
# as root, the packages are unpacked into / as the device README does, and it is asked again.
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$1" && out=$(cd "$1" && pwd)
: > "$out/run.log"
exec > >(tee -a "$out/run.log") 2>&1

provider=${PROVIDER:-webgpu}
reference=${REFERENCE:-cpu}
batches=${BATCHES:-1,8,32}
iters=${ITERS:-3}
warmup=${WARMUP:-1}
parity_images=${PARITY_IMAGES:-4}
threads=${THREADS:-0}
step_timeout=${STEP_TIMEOUT:-150}
pack=${PACK:-$root/.gpu}
shipped="$root/seg/segment/shipped/espmedsam-compact-s256.onnx"
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
scratch=$(mktemp -d "${TMPDIR:-/tmp}/espnode-gpu.XXXXXX")
[ -n "${KEEP:-}" ] || trap 'rm -rf "$scratch"' EXIT

say() { printf '== %s\n' "$*"; }
json_str() {
  local s
  s=$(printf '%s' "$1" | tr -d '\000-\010\013\014\016-\037')
  s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\t'/\\t}; s=${s//$'\r'/}; s=${s//$'\n'/\\n}
  printf '"%s"' "$s"
}
unxz_to() { # FILE.xz DEST
  if command -v xz >/dev/null; then xz -dc "$1" > "$2"
  else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi
}
from_pack() { # NAME: the file from the pack, decompressed into the scratch folder if need be
  if [ -f "$pack/$1" ]; then echo "$pack/$1"
  elif [ -f "$pack/$1.xz" ]; then unxz_to "$pack/$1.xz" "$scratch/$1" && echo "$scratch/$1"
  else echo "run: $pack has neither $1 nor $1.xz: run bench/gpu/pack.sh first" >&2; return 1; fi
}
field() { grep -o "\"$1\":\"[^\"]*\"" | head -1 | cut -d'"' -f4; }

espnode=${ESPNODE:-$(from_pack espnode)} || exit 1
chmod +x "$espnode" 2>/dev/null
export ONNXRUNTIME_SHARED_LIBRARY_PATH=${ONNXRUNTIME_SHARED_LIBRARY_PATH:-$(from_pack libonnxruntime.so.1)} || exit 1
if [ -z "${MODELS:-}" ]; then
  big=$(from_pack espmedsam-published-s1024.onnx) || exit 1
  MODELS="$shipped $big"
fi
dicom=${DICOM:-$pack/dicom}

# --- the machine, and Vulkan ---
vulkan_from=system
setup_vulkan() {
  if ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1 '; then return; fi
  local debs=("$pack"/vulkan/*.deb)
  if [ ! -f "${debs[0]}" ]; then vulkan_from=none; return; fi
  mkdir -p "$scratch/vulkan"
  for f in "${debs[@]}"; do dpkg -x "$f" "$scratch/vulkan"; done
  export LD_LIBRARY_PATH="$scratch/vulkan/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  vulkan_from=carried
}
if [ "$provider" != cpu ]; then
  setup_vulkan
  if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$nvidia_icd" ]; then export VK_DRIVER_FILES=$nvidia_icd; fi
  # The ICD file names the driver library (libGLX_nvidia.so.0) without a folder.
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    [ -d "$d" ] && case ":${LD_LIBRARY_PATH:-}:" in *":$d:"*) ;; *) export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d" ;; esac
  done
fi
gpu=$(timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
cpu_model=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //')
say "host: $(uname -srm), $(nproc) CPUs ($cpu_model), GPU: ${gpu:-none}"
say "glibc: $(ldd --version 2>/dev/null | head -1)"
say "Vulkan loader: $vulkan_from; VK_DRIVER_FILES=${VK_DRIVER_FILES:-}; LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
[ -n "${VK_DRIVER_FILES:-}" ] && [ -f "$VK_DRIVER_FILES" ] && say "ICD: $(tr -d '\n ' < "$VK_DRIVER_FILES")"
[ "$provider" != cpu ] && say "driver libraries: $(ldconfig -p 2>/dev/null | grep -oE '(libGLX_nvidia|libGLdispatch|libvulkan)\.so[.0-9]* ' | sort -u | tr -d '\n')"
host_json() {
  printf '{"date":%s,"kernel":%s,"cpus":%d,"cpu":%s,"gpu":%s,"glibc":%s,"vulkan_loader":%s,"vk_driver_files":%s}' \
    "$(json_str "$(date -u +%FT%TZ)")" "$(json_str "$(uname -srm)")" "$(nproc)" "$(json_str "$cpu_model")" \
    "$(json_str "${gpu:-}")" "$(json_str "$(ldd --version 2>/dev/null | head -1)")" "$(json_str "$vulkan_from")" \
    "$(json_str "${VK_DRIVER_FILES:-}")"
}

# --- the summary, rewritten after every step so that a run cut short still leaves one ---
auto_json=null
benches_json=()
segment_json=null
write_summary() {
  local benches
  benches=$(IFS=,; echo "${benches_json[*]}")
  printf '{"script":"bench/gpu/run.sh","provider_requested":%s,"reference":%s,"batches":%s,"iters":%d,"warmup":%d,"host":%s,"auto":%s,"benches":[%s],"segment":%s}\n' \
    "$(json_str "$provider")" "$(json_str "$reference")" "$(json_str "$batches")" "$iters" "$warmup" \
    "$(host_json)" "$auto_json" "$benches" "$segment_json" > "$out/summary.json.tmp" &&
    mv "$out/summary.json.tmp" "$out/summary.json"
}

# bench ARGS...: espnode model bench, its JSON on stdout, or {"error":...} with its log's end.
bench() {
  local res rc
  res=$(timeout "$step_timeout" "$espnode" model bench --threads "$threads" "$@" 2> "$scratch/bench.err")
  rc=$?
  cat "$scratch/bench.err" >&2
  if [ $rc -eq 0 ] && [ -n "$res" ]; then printf '%s' "$res"; return 0; fi
  printf '{"model":%s,"error":%s}' "$(json_str "${*: -1}")" "$(json_str "exit $rc: $(tail -c 3000 "$scratch/bench.err")")"
  return 1
}

# --- 1. what auto selects, and why ---
probe() { bench --provider auto --reference none --batches 1 --iters 1 --warmup 0 "$shipped"; }
say "auto: which provider the node selects"
auto_json=$(probe)
selected=$(printf '%s' "$auto_json" | field provider)
if [ "$provider" != cpu ] && [ "$selected" != "$provider" ] && [ "$vulkan_from" = carried ] && [ "$(id -u)" = 0 ]; then
  say "auto selected ${selected:-nothing}; unpacking the Vulkan packages into / as the device README does, and asking again"
  for f in "$pack"/vulkan/*.deb; do dpkg -x "$f" /; done
  ldconfig
  vulkan_from=root
  auto_json=$(probe)
  selected=$(printf '%s' "$auto_json" | field provider)
fi
say "auto selects: ${selected:-nothing} (requested for the measurements: $provider)"
printf '%s\n' "$auto_json" | grep -o '"unavailable":{[^}]*}' | sed 's/^/   /'
write_summary

# --- 2. parity and speed, per model and batch size: one process each, so that a batch too large
# or too slow costs its own figures only ---
for m in $MODELS; do
  for b in ${batches//,/ }; do
    say "bench $(basename "$m") batch $b: $provider against $reference"
    benches_json+=("$(bench --provider "$provider" --reference "$reference" --batches "$b" --iters "$iters" \
      --warmup "$warmup" --parity-images "$parity_images" "$m")")
    printf '%s\n' "${benches_json[-1]}"
    write_summary
  done
done

# --- 3. espnode segment, end to end ---
files=("$dicom"/*.dcm)
segment() { # PROVIDER DIR: prints the JSON of one run
  local start end rc ok frames fg
  mkdir -p "$2"
  start=$(date +%s.%N)
  timeout "$step_timeout" "$espnode" segment --provider "$1" --threads "$threads" -q -o "$2" "${files[@]}" \
    > "$2.out" 2> "$2.err"
  rc=$?
  end=$(date +%s.%N)
  cat "$2.err" >&2
  ok=$(grep -c ' frame(s), ' "$2.out")
  frames=$(awk -F', ' '/ frame\(s\), /{split($2, a, " "); s += a[1]} END {print s + 0}' "$2.out")
  fg=$(awk -F', ' '/ frame\(s\), /{split($3, a, " "); s += a[1]} END {print s + 0}' "$2.out")
  printf '{"provider":%s,"exit":%d,"files_ok":%d,"frames":%d,"foreground_pixels":%d,"wall_s":%s,"frames_per_s":%s}' \
    "$(json_str "$1")" "$rc" "$ok" "$frames" "$fg" "$(echo "$end - $start" | bc -l | xargs printf '%.3f')" \
    "$(echo "if ($end - $start > 0) $frames / ($end - $start) else 0" | bc -l | xargs printf '%.3f')"
}
if [ -f "${files[0]}" ]; then
  say "espnode segment: ${#files[@]} files from $dicom, $provider then $reference"
  seg_p=$(segment "$provider" "$scratch/seg-$provider")
  seg_r=$(segment "$reference" "$scratch/seg-ref-$reference")
  same=0 masks=0
  for f in "$scratch/seg-$provider"/*_mask.png; do
    [ -f "$f" ] || continue
    masks=$((masks + 1))
    cmp -s "$f" "$scratch/seg-ref-$reference/$(basename "$f")" && same=$((same + 1))
  done
  segment_json=$(printf '{"files":%d,"provider":%s,"reference":%s,"masks":%d,"identical_masks":%d}' \
    "${#files[@]}" "$seg_p" "$seg_r" "$masks" "$same")
  printf '%s\n' "$segment_json"
else
  segment_json=$(printf '{"error":%s}' "$(json_str "no DICOM files in $dicom")")
fi
write_summary

# --- the figures, as a table ---
if command -v python3 >/dev/null; then
  python3 - "$out/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
a = s["auto"] or {}
print(f"auto selected: {a.get('provider', a.get('error'))}; Vulkan devices: "
      f"{', '.join(d['name'] + ' (' + d['type'] + ')' for d in a.get('vulkan_devices') or []) or a.get('vulkan_error', 'none')}")
print(f"{'model':>34} {'S':>5} {'batch':>5} {'ms/img':>10} {'img/s':>8} {'first ms':>9} {'ref ms/img':>10} {'img/s':>8} "
      f"{'speedup':>8} {'max|diff|':>10} {'Dice':>6} {'min':>6} {'fg':>5}")
for m in s["benches"]:
    name = m["model"].rsplit("/", 1)[-1]
    if "error" in m:
        print(f"{name:>34} error: {m['error'][:600]}")
        continue
    p = m.get("parity") or {}
    for r in m["runs"]:
        ref = r.get("reference") or {}
        print(f"{name:>34} {m['input_size']:>5} {r['batch']:>5} {r.get('ms_per_image', 0):>10.2f} {r.get('images_per_s', 0):>8.2f} "
              f"{r.get('first_ms', 0):>9.0f} {ref.get('ms_per_image', 0):>10.2f} {ref.get('images_per_s', 0):>8.2f} "
              f"{r.get('speedup', 0):>7.2f}x {p.get('max_abs_diff', -1):>10.3g} {p.get('dice', 0):>6.4f} {p.get('min_dice', 0):>6.4f} "
              f"{p.get('foreground', 0):>5.2f}")
        for e in (r.get("error"), p.get("error")):
            if e:
                print(f"{'':>34} error: {e[:600]}")
print(f"providers: {s['benches'][0].get('provider') if s['benches'] else '?'} against {s['reference']}; "
      "speedup = reference time per image / provider time per image; first ms = the warm-up run")
g = s["segment"] or {}
if "provider" in g:
    for k in ("provider", "reference"):
        r = g[k]
        print(f"segment {r['provider']}: {r['files_ok']}/{g['files']} files, {r['frames']} frames, {r['wall_s']} s "
              f"({r['frames_per_s']} frames/s, model load included), exit {r['exit']}")
    print(f"masks identical to the reference's: {g['identical_masks']}/{g['masks']}")
PY
fi
say "summary: $out/summary.json"
