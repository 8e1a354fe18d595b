#!/usr/bin/env bash
# DICOMweb benchmark.
#  1. QIDO-RS: a study search over 100,000 indexed instances through the node's DICOMweb, beside
#     the same query on the index alone, in the same loop (go test -bench, BenchmarkQIDOStudies).
#  2. WADO-RS frames: espnode serve and Orthanc with its DICOMweb plugin (Debian orthanc,
#     orthanc-dicomweb) hold the same files, sent to both with storescu; the same frame URLs are
#     fetched from each by bench/dicomweb/load (CLIENTS at once, DURATION a round), alternating,
#     ROUNDS times. Prints frames/s and MiB/s per server (median of the rounds) and the ratio
#     espnode/Orthanc.
# QIDO=0 skips the first part.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${BENCH_OUT:-$PWD/bench/out/dicomweb}
rounds=${ROUNDS:-3}
duration=${DURATION:-10s}
clients=${CLIENTS:-4}
shared=${ESPNODE_SHARED:-$PWD/../shared}/data/dicom
plugin=/usr/share/orthanc/plugins/libOrthancDicomWeb.so
for tool in storescu Orthanc /usr/bin/python3; do
  command -v "$tool" >/dev/null || { echo "$tool not found: install Debian's dcmtk, orthanc and python3-pydicom (scripts/deps.sh test)" >&2; exit 1; }
done
[ -f "$plugin" ] || { echo "$plugin not found: install Debian's orthanc-dicomweb (scripts/deps.sh test)" >&2; exit 1; }
export TCP_NODELAY=1

if [ "${QIDO:-1}" = 1 ]; then
  echo "== QIDO-RS study search over 100,000 indexed instances"
  go test ./bench/dicomweb -run '^$' -bench BenchmarkQIDOStudies -benchtime "${BENCHTIME:-200x}" -count "${COUNT:-1}"
fi

echo "== WADO-RS frames, espnode and Orthanc on the same files"
rm -rf "$out"; mkdir -p "$out"
go build -o "$out/espnode" ./cmd/espnode
go build -o "$out/load" ./bench/dicomweb/load
# Uncompressed images of several sizes: a CT series (512x512x16), an enhanced MR (19 frames of
# 256x256x16) and a palette-colour US (2 frames of 800x600x8).
files=("$shared"/SEG/dcmqi_liver/ct_0{1,2,3}.dcm "$shared"/MR/fodicom_EnhancedMR_MOVEKNEE_19fr.dcm
  "$shared"/US_multiframe/pydicom_OBXXXX1A_2fr_evrle_palette.dcm)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 400); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing on port $1" >&2; return 1; }
e_dicom=$(free_port); e_http=$(free_port); o_dicom=$(free_port); o_http=$(free_port)

# Nothing is routed to the model: this measures retrieval.
printf 'dicom: {port: %d}\npipeline: {routing: []}\nhttp: {addr: "127.0.0.1:%d", viewer: {addr: ""}}\nlog: {level: warn}\n' \
  "$e_dicom" "$e_http" > "$out/espnode.yaml"
"$out/espnode" serve --config "$out/espnode.yaml" --data-dir "$out/espnode-data" 2>"$out/espnode.log" & e_pid=$!
cat > "$out/orthanc.json" <<JSON
{"Name": "bench", "StorageDirectory": "$out/orthanc-data", "IndexDirectory": "$out/orthanc-data",
 "HttpPort": $o_http, "DicomPort": $o_dicom, "DicomAet": "ORTHANC", "RemoteAccessAllowed": false,
 "AuthenticationEnabled": false, "Plugins": ["$plugin"], "StorageCompression": false,
 "DicomWeb": {"Enable": true, "Root": "/dicom-web/"}}
JSON
Orthanc "$out/orthanc.json" >"$out/orthanc.log" 2>&1 & o_pid=$!
trap 'kill $e_pid $o_pid 2>/dev/null || true; wait 2>/dev/null || true' EXIT
wait_port "$e_dicom"; wait_port "$e_http"; wait_port "$o_dicom"; wait_port "$o_http"
storescu -aec ESPNODE 127.0.0.1 "$e_dicom" "${files[@]}" 2>>"$out/storescu.log"
storescu -aec ORTHANC 127.0.0.1 "$o_dicom" "${files[@]}" 2>>"$out/storescu.log"

# One URL per frame of each file, under each server's /dicom-web (the top level's UIDs, read with
# pydicom: dcmdump's +P also finds those of nested references).
/usr/bin/python3 - "${files[@]}" > "$out/frames" <<'PY'
import sys
import pydicom
for path in sys.argv[1:]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    for i in range(int(ds.get("NumberOfFrames", 1) or 1)):
        print(f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/frames/{i + 1}")
PY
sed "s|^|http://127.0.0.1:$e_http/dicom-web|" "$out/frames" > "$out/urls-espnode"
sed "s|^|http://127.0.0.1:$o_http/dicom-web|" "$out/frames" > "$out/urls-orthanc"
# One pass each, unmeasured: both have every frame, and their caches are warm alike.
"$out/load" -urls "$out/urls-espnode" -c 1 -d 2s >/dev/null
"$out/load" -urls "$out/urls-orthanc" -c 1 -d 2s >/dev/null

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A rps=() mibs=()
for r in $(seq "$rounds"); do
  for s in orthanc espnode; do
    read -r _ _ q m < <("$out/load" -urls "$out/urls-$s" -c "$clients" -d "$duration")
    rps[$s]+="$q "; mibs[$s]+="$m "
  done
done
printf '%-8s %6s %9s %8s\n' server frames frames/s MiB/s
for s in orthanc espnode; do
  printf '%-8s %6d %9.1f %8.1f\n' "$s" "$(wc -l < "$out/frames")" "$(echo "${rps[$s]}" | tr ' ' '\n' | grep . | median)" \
    "$(echo "${mibs[$s]}" | tr ' ' '\n' | grep . | median)"
done
e=$(echo "${rps[espnode]}" | tr ' ' '\n' | grep . | median); o=$(echo "${rps[orthanc]}" | tr ' ' '\n' | grep . | median)
printf 'ratio espnode/Orthanc (frames/s): %.2f\n' "$(echo "$e / $o" | bc -l)"
