#!/usr/bin/env bash
# The prepared GPU check: one call on one H100/H200 that ends inside 8 minutes, with no package
# registry. It installs the wheels of .whl/ (scripts/prepare_gpu_wheels.sh fills it) and runs:
#   1. the CUDA build of the fused kernels and their tests on the GPU (float64 references,
#      rotary at long positions);
#   2. bf16 training smokes with saves, a same-layout resume and a cross-layout resume;
#   3. qwen-bench train, qwen-1.8b shape, seq 2048, bf16: tokens/s and MFU both ways;
#   4. qwen-bench kernels --device cuda: bandwidth against the measured copy bandwidth.
# Every figure goes to $OUT/gpu_check.json, every output to $OUT/gpu_check.log (and qwen-bench
# train's own JSON to $OUT/bench_train.json): three files, since the device tool brings back at
# most eight. Step outputs, checkpoints and the kernel cache stay in $WORK. A step that fails or
# runs out of its time is recorded as such and the next one runs.
#
#   scripts/gpu_check.sh              # on the GPU machine; OUT defaults to runs/gpu_check
#   scripts/gpu_check.sh --dry-run    # anywhere: the plumbing, with each step's command echoed
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
OUT=${OUT:-runs/gpu_check}
WORK=${WORK:-/tmp/gpu_check_work}
mkdir -p "$OUT" "$WORK"
LOG="$OUT/gpu_check.log"
STEPS="$WORK/steps.jsonl"
: >"$LOG"
: >"$STEPS"
DRY_RUN=0
[[ "${1:-}" == "--dry-run" ]] && DRY_RUN=1
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export QWEN_KERNELS_CACHE="$WORK/kernels"

# The whole check ends inside 8 minutes: each step gets its own limit or what is left of 7.5.
DEADLINE=$((SECONDS + 450))

log() { echo "[gpu_check $(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }

# step NAME SECONDS COMMAND...: runs COMMAND under a time limit, its output to the log and to
# $WORK/NAME.out, and records name, exit status and seconds.
step() {
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS status=0
  local left=$((DEADLINE - SECONDS))
  ((limit > left)) && limit=$left
  if ((limit < 10)); then
    log "step $name: skipped, the check's 7.5 minutes are spent"
    printf '{"step": "%s", "status": 124, "seconds": 0}\n' "$name" >>"$STEPS"
    return
  fi
  log "step $name (limit ${limit}s): $*"
  if ((DRY_RUN)); then
    echo "dry run: $*" >"$WORK/$name.out"
  else
    timeout --kill-after=10 "$limit" "$@" >"$WORK/$name.out" 2>&1 || status=$?
  fi
  cat "$WORK/$name.out" >>"$LOG"
  printf '{"step": "%s", "status": %d, "seconds": %d}\n' "$name" "$status" "$((SECONDS - start))" >>"$STEPS"
  log "step $name: exit $status after $((SECONDS - start))s"
}

if ((!DRY_RUN)); then
  if compgen -G ".whl/*.whl" >/dev/null; then
    log "installing $(find .whl -name '*.whl' | wc -l) wheels from .whl/"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >>"$LOG" 2>&1 \
      || log "wheel install failed (see above)"
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
  else
    log "no .whl/ directory: using the packages already installed"
  fi
  export PATH="/tmp/site/bin:$PATH"
fi

step environment 30 python3 -c "
import json, torch
print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda, 'gpu': torch.cuda.get_device_name(),
                  'capability': torch.cuda.get_device_capability(), 'memory_gib': torch.cuda.get_device_properties(0).total_memory / 2**30}))"
step kernels_build 120 python3 -m qwen_kernels.build
step kernels_tests 75 python3 -m pytest -q -p no:cacheprovider --timeout=70 tests/qwen_kernels/test_correctness.py \
  tests/qwen_kernels/test_rotary_long_positions.py tests/qwen_kernels/test_megatron_modules.py
SMOKE="$WORK/smoke"
rm -rf "$SMOKE"
TRAIN=(python3 -m pretrain.cli.train model.preset=qwen-small training.precision=bf16 data.embedded_corpus=true
       training.micro_batch_size=2 training.global_batch_size=4 training.log_interval=2 training.eval_interval=6
       training.eval_iters=1 checkpoint.dir="$SMOKE/ckpt" checkpoint.save_interval=3 logging.dir="$SMOKE"
       logging.tensorboard=false)
step train_bf16_save 40 "${TRAIN[@]}" training.train_steps=6 parallel.zero_stage=1
step train_bf16_resume_same_layout 40 "${TRAIN[@]}" training.train_steps=9 parallel.zero_stage=1
step train_bf16_resume_cross_layout 40 "${TRAIN[@]}" training.train_steps=12 parallel.zero_stage=0
BENCH=(python3 -c "from pretrain.cli.bench import main; main()")
step bench_train 90 "${BENCH[@]}" train --preset qwen-1.8b --seq-length 2048 --micro-batch 2 \
  --precision bf16 --steps 5 --warmup 2 --kernels fused --json "$OUT/bench_train.json"
step bench_kernels 50 "${BENCH[@]}" kernels --device cuda --dtype bf16 --no-compile --repeats 7

python3 scripts/gpu_check_report.py "$WORK" "$OUT" 2>&1 | tee -a "$LOG"
