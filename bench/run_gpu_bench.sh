#!/bin/bash
# The whole GPU benchmark turn in one command (issue 22): preflight, a CUDA smoke run at tiny scale,
# then every variant at SDXL scale, each step under `timeout`; at most 530 s in all on a GPU.
#
#   here, once:   .venv/bin/python bench/faceme_gpu.py prepare .bench/gpu
#                 echo /.whl/ >> .git/info/exclude   # then the `pip download` line of faceme_gpu.py
#   on the GPU:   the device tool's run, command `bash bench/run_gpu_bench.sh`,
#                 carry [".whl", ".bench/gpu"], timeout_s 600
#   here, tiny:   bash bench/run_gpu_bench.sh --device cpu --tiny
#
# Results land in $OUT (default .bench/out): preflight.txt/.json, smoke.jsonl, results.jsonl (one
# JSON line per variant, written as each ends), summary.txt (targets beside the figures), run.log.
set -u
device=cuda
tiny=0
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device=$2; shift 2 ;;
        --tiny) tiny=1; shift ;;
        *) echo "usage: $0 [--device cuda|cpu] [--tiny]" >&2; exit 2 ;;
    esac
done
cd "$(dirname "$0")/.." || exit 2
OUT=${OUT:-.bench/out}
ASSETS=${ASSETS:-.bench/gpu}
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
mkdir -p "$OUT"
log="$OUT/run.log"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
step() {  # step SECONDS NAME COMMAND...: time-boxed, logged, never stops the script
    local seconds=$1 name=$2; shift 2
    echo "=== $name (at most ${seconds} s) $(date -u +%H:%M:%S)" | tee -a "$log"
    timeout -k 5 "$seconds" "$@" 2>&1 | tee -a "$log"
    local rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc" | tee -a "$log"
}

if [ "$device" = cuda ] && ls .whl/*.whl >/dev/null 2>&1; then
    step 45 wheels "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
if [ ! -f "$ASSETS/lq.png" ]; then
    if [ -d ../shared ]; then
        step 120 prepare "$PYTHON" bench/faceme_gpu.py prepare "$ASSETS"
    else
        echo "no $ASSETS: prepare it where ../shared is and carry it" | tee -a "$log"; exit 2
    fi
fi
step 45 preflight "$PYTHON" bench/gpu_preflight.py --json "$OUT/preflight.json"
cp "$log" "$OUT/preflight.txt"

# smoke: the same code at tiny scale on the device (CUDA streams in balanced / low included), ~20 s on a GPU
smoke_args=(--steps 2 --faces 5 --photos 1 --deadline 65)
smoke_s=75
run_args=(--steps 50 --faces 5 --photos 3 --deadline 320)
run_s=335
if [ "$device" = cpu ]; then  # the plumbing on a CPU: inductor would need a compiler and minutes
    smoke_args=(--steps 1 --faces 1 --photos 1 --threads 1 --deadline 150)
    smoke_s=170
    run_args=(--steps 1 --faces 2 --photos 1 --threads 1 --compile-backend eager --deadline 420)
    run_s=440
fi
scale=sdxl
[ "$tiny" = 1 ] && scale=tiny
step "$smoke_s" smoke "$PYTHON" bench/faceme_gpu.py run --assets "$ASSETS" --scale tiny --device "$device" \
    --variants plain,batch4,balanced,low,preview,photo "${smoke_args[@]}" --results "$OUT/smoke.jsonl"
step "$run_s" run "$PYTHON" bench/faceme_gpu.py run --assets "$ASSETS" --scale "$scale" --device "$device" "${run_args[@]}" \
    --results "$OUT/results.jsonl"
for name in smoke results; do
    [ -f "$OUT/$name.jsonl" ] && step 15 "summary $name" "$PYTHON" bench/faceme_gpu.py summary "$OUT/$name.jsonl" \
        >>"$OUT/summary.txt"
done
exit 0
