#!/usr/bin/env bash
# The GPU measurements of issue 14, in stages that each fit one device call (docs/performance.md):
#
#   bash tools/gpu_check.sh prepare    # real faces: UTKFace aligned + AU-measured at 128 px (skipped when present)
#   bash tools/gpu_check.sh bench      # bench plain vs fast at batch 25, 50, 100 (MFU, host syncs per cycle)
#   bash tools/gpu_check.sh graphs     # bench fast path with CUDA graphs (--compile_mode reduce-overhead), batch 25
#   bash tools/gpu_check.sh train      # the trainer, --fast_path on: device data path vs DataLoader, images/s
#   bash tools/gpu_check.sh curves     # fast vs plain trainer over the same steps: side-by-side loss table
#   bash tools/gpu_check.sh all        # every stage in order
#   bash tools/gpu_check.sh --cpu-smoke [stage]   # the same on CPU with a tiny model and 32 px (checks the script)
#
# Everything lands in $OUT (the device tool's output folder) or runs/gpu_check: bench JSON, stats.jsonl of each
# run, logs, and summary.txt with the numbers. Settings come from environment variables (defaults: GPU sizes):
#   DATA_ROOT    a prepared data root to use instead of building one (e.g. datasets/pretrain_128)
#   SHARED_DATA  where ../shared/data is (UTKFace source for "prepare")
#   BATCHES      bench batch sizes ("25 50 100");  BENCH_STEPS (100);  TRAIN_STEPS (1500);  CURVE_STEPS (1000)
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE=0
if [[ "${1:-}" == "--cpu-smoke" ]]; then SMOKE=1; shift; fi
STAGE="${1:-all}"
PY="${PYTHON:-python}"
OUT="${OUT:-runs/gpu_check}"
mkdir -p "$OUT"
WORK="${WORK:-runs/gpu_check_work}"
SHARED_DATA="${SHARED_DATA:-}"
for candidate in "$SHARED_DATA" ../shared/data shared/data; do
  if [[ -n "$candidate" && -d "$candidate/utkface" ]]; then SHARED_DATA="$candidate"; break; fi
done

if [[ $SMOKE == 1 ]]; then
  DEVICE=cpu; GPU_IDS=-1; SIZE=32
  MODEL=(--ngf 8 --ndf 8 --n_blocks 1)
  BATCHES="${BATCHES:-4 8}"; BENCH_STEPS="${BENCH_STEPS:-5}"; BENCH_EXTRA=(--warmup 1 --infer_batch 8 --infer_iters 2)
  TRAIN_STEPS="${TRAIN_STEPS:-12}"; CURVE_STEPS="${CURVE_STEPS:-20}"; BATCH=4; LOG_IMAGES=8
  PREPARED="${DATA_ROOT:-datasets/gpu_check_smoke}"; UTK_LIMIT=48  # crops at 128 px, decoded at 32
else
  DEVICE=cuda; GPU_IDS=0; SIZE=128
  MODEL=()
  BATCHES="${BATCHES:-25 50 100}"; BENCH_STEPS="${BENCH_STEPS:-100}"; BENCH_EXTRA=()
  TRAIN_STEPS="${TRAIN_STEPS:-1500}"; CURVE_STEPS="${CURVE_STEPS:-1000}"; BATCH=25; LOG_IMAGES=2500
  PREPARED="${DATA_ROOT:-datasets/utkface_$SIZE}"; UTK_LIMIT=0
fi
WORKERS="$(nproc)"
note() { echo "[gpu_check] $*" | tee -a "$OUT/summary.txt"; }

stage_prepare() {
  if [[ -f "$PREPARED/aus.csv" || -f "$PREPARED/aus_openface.pkl" ]]; then
    note "data: $PREPARED (already prepared)"; return
  fi
  [[ -n "$SHARED_DATA" ]] || { echo "no UTKFace source: set SHARED_DATA or DATA_ROOT" >&2; exit 2; }
  local source="$SHARED_DATA/utkface"
  if [[ $UTK_LIMIT -gt 0 ]]; then  # smoke: a few real faces only
    source="$WORK/utk_subset"; mkdir -p "$source"
    local faces=("$SHARED_DATA"/utkface/*.jpg)  # a glob, not ls | head: pipefail would stop on SIGPIPE
    for f in "${faces[@]:0:$UTK_LIMIT}"; do ln -sf "$(realpath "$f")" "$source/"; done
  fi
  local start=$SECONDS
  "$PY" -m openface.prepare "$source" "$PREPARED" --size 128 --workers "$WORKERS" 2>&1 | tr '\r' '\n' | tail -n 1
  note "data: prepared $PREPARED from $source in $((SECONDS - start)) s ($(wc -l < "$PREPARED/train_ids.txt") train)"
}

stage_bench() {
  local name="bench_b${BATCHES// /-}"  # one file per batch list: a second call with other sizes keeps the first
  # shellcheck disable=SC2086
  "$PY" -m tools.bench --device "$DEVICE" --final_size "$SIZE" "${MODEL[@]}" --batch_size $BATCHES \
    --paths plain,fast --steps "$BENCH_STEPS" "${BENCH_EXTRA[@]}" --json "$OUT/$name.json" 2>"$OUT/$name.log" >/dev/null
  grep -A20 "^path  size" "$OUT/$name.log" | tee -a "$OUT/summary.txt"
}

stage_graphs() {
  "$PY" -m tools.bench --device "$DEVICE" --final_size "$SIZE" "${MODEL[@]}" --batch_size "${BATCHES%% *}" \
    --paths fast --compile_mode reduce-overhead --steps "$BENCH_STEPS" "${BENCH_EXTRA[@]}" \
    --json "$OUT/bench_cudagraphs.json" 2>"$OUT/bench_cudagraphs.log" >/dev/null
  grep -A20 "^path  size" "$OUT/bench_cudagraphs.log" | tee -a "$OUT/summary.txt"
}

train_run() {  # NAME STEPS FLAGS...: a fresh trainer run on the prepared data
  local name=$1 steps=$2; shift 2
  rm -rf "${WORK:?}/$name"
  local start=$SECONDS
  "$PY" main.py --mode train --data_root "$PREPARED" --ckpt_dir "$WORK" --name "$name" --gpu_ids "$GPU_IDS" \
    --final_size "$SIZE" "${MODEL[@]}" --batch_size "$BATCH" --niter 30 --niter_decay 0 --max_steps "$steps" \
    --print_losses_freq "$LOG_IMAGES" --sample_img_freq 0 --save_epoch_freq 1000 --no_progress \
    --n_threads "$WORKERS" "$@" > "$OUT/$name.log" 2>&1
  cp "$WORK/$name/stats.jsonl" "$OUT/$name.stats.jsonl"
  note "$name ($*): $steps steps in $((SECONDS - start)) s wall, start-up and compilation included"
  "$PY" - "$OUT/$name.stats.jsonl" <<'EOF' | tee -a "$OUT/summary.txt"
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
rates = [r["images_per_s"] for r in rows if "images_per_s" in r][1:]  # the first interval holds compilation
if rates:
    steady = statistics.median(rates)
    print(f"  images_per_s per log interval: {[round(r) for r in rates]}; median {steady:.0f}; "
          f"30 epochs of 9,281 faces (278,430 images) would take {278430 / steady / 60:.1f} min at that rate")
else:
    print("  too few log lines for a steady rate: raise the step count")
EOF
}

stage_train() {
  train_run fast_device "$TRAIN_STEPS" --fast_path on --data_on_device on
  train_run fast_loader "$((TRAIN_STEPS / 2))" --fast_path on --data_on_device off
}

stage_curves() {
  # Same seed, data and batches (device data path in both): only the step's precision and compilation differ.
  # A log line every 5 steps at least (whole D/G cycles at --train_gen_iter 5, so every row has G's losses too),
  # about 16 rows in all.
  local cycles=$((CURVE_STEPS / 80 > 1 ? CURVE_STEPS / 80 : 1))
  LOG_IMAGES=$((BATCH * 5 * cycles)) train_run curve_fast "$CURVE_STEPS" --fast_path on --data_on_device on
  LOG_IMAGES=$((BATCH * 5 * cycles)) train_run curve_plain "$CURVE_STEPS" --fast_path off --data_on_device on
  "$PY" -m tools.loss_table "$OUT/curve_fast.stats.jsonl" "$OUT/curve_plain.stats.jsonl" --names fast,plain \
    | tee "$OUT/loss_table.txt" | tee -a "$OUT/summary.txt"
}

ENV_LINE="$("$PY" -c 'import torch; cuda = torch.cuda.is_available()
print("torch", torch.__version__, torch.cuda.get_device_name(0) if cuda else "no CUDA")')"
note "$(date -u +%FT%TZ) stage $STAGE, device $DEVICE, $ENV_LINE"
case "$STAGE" in
  prepare) stage_prepare ;;
  bench) stage_bench ;;
  graphs) stage_graphs ;;
  train) stage_prepare; stage_train ;;
  curves) stage_prepare; stage_curves ;;
  all) stage_prepare; stage_bench; stage_graphs; stage_train; stage_curves ;;
  *) echo "unknown stage $STAGE (prepare, bench, graphs, train, curves, all)" >&2; exit 2 ;;
esac
