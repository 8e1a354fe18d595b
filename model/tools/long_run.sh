#!/bin/sh
# The long training run of issue 15 (model/README.md, "The long run"): start, resume, status, stop.
#
#   model/tools/long_run.sh start     # a new run in $RUN (refuses if $RUN/last.pth exists)
#   TRAIN_ARGS="--init runs/recovered.pth --lr 3e-4" model/tools/long_run.sh start
#                                     # extra train options (kept in $RUN/train_args for resume)
#   model/tools/long_run.sh resume    # continue $RUN from its last.pth (same settings, same budget)
#   model/tools/long_run.sh status    # alive or not, last log line, validation history, best
#   model/tools/long_run.sh stop      # graceful: the trainer validates, checkpoints, writes its record, exits
#
# Detached (setsid nohup), niced (15), one thread, Debian's torch with OpenBLAS first on the
# library path (7-14x the reference BLAS; the system default is not changed). The time budget
# (MINUTES, over all sessions) ends the run by itself; best.pth is the best-on-validation state.
set -eu
cd "$(dirname "$0")/.."
RUN=${RUN:-runs/long}
MINUTES=${MINUTES:-600}
THIN=${THIN:-cldice}
DATA=${DATA:-../../shared/data/seg2d}
TRAIN_ARGS=${TRAIN_ARGS:-}
OPENBLAS=/usr/lib/x86_64-linux-gnu/openblas-pthread

launch() {
	mkdir -p "$RUN"
	rm -f "$RUN/STOP"
	if [ ! -e "$OPENBLAS/libblas.so.3" ]; then
		echo "warning: $OPENBLAS missing (apt-get install libopenblas0-pthread): the reference BLAS is about 8x slower" >&2
	fi
	env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE \
		LD_LIBRARY_PATH="$OPENBLAS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
		setsid nohup nice -n 15 /usr/bin/python3 -m espmedsam.train --data "$DATA" --out "$RUN" \
		--widths compact --size 256 --batch 8 --lr 6e-4 --warmup 100 --epochs 100000 \
		--max-minutes "$MINUTES" --val-minutes 30 --checkpoint-every 250 --threads 1 \
		--tiles fundus=640:192 --tiles microscopy=448:192@0.5 --thin-loss "$THIN" \
		--cache "$RUN/cache" --record "$RUN/record.json" --log-every 50 $TRAIN_ARGS "$@" \
		>>"$RUN/train.log" 2>&1 </dev/null &
	echo $! >"$RUN/pid"
	echo "started pid $(cat "$RUN/pid"); log $RUN/train.log"
}

alive() { [ -f "$RUN/pid" ] && kill -0 "$(cat "$RUN/pid")" 2>/dev/null; }

case "${1:-}" in
start)
	if [ -e "$RUN/last.pth" ]; then
		echo "$RUN/last.pth exists: use resume (or another RUN=...)" >&2
		exit 1
	fi
	mkdir -p "$RUN"
	printf '%s\n' "${TRAIN_ARGS:-}" >"$RUN/train_args"
	launch
	;;
resume)
	if alive; then
		echo "already running: pid $(cat "$RUN/pid")" >&2
		exit 1
	fi
	TRAIN_ARGS=$(cat "$RUN/train_args" 2>/dev/null || true)
	launch --resume
	;;
status)
	if alive; then echo "running: pid $(cat "$RUN/pid")"; else echo "not running"; fi
	tail -n 1 "$RUN/train.log" 2>/dev/null || true
	if [ -f "$RUN/log.jsonl" ]; then
		/usr/bin/python3 - "$RUN/log.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    ch = r["val"].get("channels", {})
    print(f'step {r["step"]:6d}  {r["minutes"]:7.1f} min  score {r["val"]["score"]:.4f}{"  best" if r["best"] else ""}  '
          + " ".join(f'{c}:{v["dice"]:.3f}' for c, v in ch.items()))
PY
	fi
	[ -f "$RUN/record.json" ] && echo "record: $RUN/record.json (rewritten at each validation; status running, then finished)"
	;;
stop)
	touch "$RUN/STOP"
	echo "asked $RUN to stop after its current step (it validates and checkpoints first)"
	;;
*)
	sed -n 2,10p "$0"
	exit 2
	;;
esac
