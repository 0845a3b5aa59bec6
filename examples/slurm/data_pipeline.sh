#!/bin/bash
# The whole data pipeline (clean -> exact dedup -> fuzzy dedup -> decontaminate -> tokenize) on SLURM:
# every step of every stage is a job array of TASKS tasks, chained with afterok dependencies, and the
# dedup merges are themselves split into TASKS hash partitions. Run it from the repository root on a
# login node; it checks everything, submits and returns with the job ids (or follows them, WAIT=1).
# The scripts it submits and their logs are in OUTPUT/slurm/.
#
#   CONFIG=examples/data/pipeline.yaml OUTPUT=/shared/runs/data TASKS=64 PARTITION=cpu \
#     bash examples/slurm/data_pipeline.sh
#
# Rerun the same command after a failure: it resubmits only the tasks that did not finish (alone),
# then the steps after them; while jobs of the earlier submission are still queued it submits nothing.
#
# Environment variables:
#   CONFIG       pipeline YAML (required)
#   OUTPUT       output directory on a filesystem every node sees (default: the YAML's output)
#   TASKS        tasks per step (default 16); a rerun into the same OUTPUT must keep it
#   PARTITION    sbatch --partition (default: the cluster's default)
#   TIME         time limit per task (default 04:00:00)
#   CPUS         CPUs per task, also the worker processes in each task (default 4)
#   MEM          memory per task (default 16G)
#   SBATCH_ARGS  more sbatch options for every step, space-separated, e.g. "--account=data --qos=low"
#   WAIT=1       follow the jobs: progress lines, a failed task resubmitted alone, the summary at the end
#   QWEN_DATA    the qwen-data command (default: .venv/bin/qwen-data, else qwen-data on PATH)
set -euo pipefail

: "${CONFIG:?set CONFIG to the pipeline YAML}"
QWEN_DATA=${QWEN_DATA:-$([ -x .venv/bin/qwen-data ] && echo .venv/bin/qwen-data || echo qwen-data)}
args=(pipeline --config "$CONFIG" --no-progress --executor slurm --tasks "${TASKS:-16}"
      --time "${TIME:-04:00:00}" --cpus-per-task "${CPUS:-4}" --mem "${MEM:-16G}")
[[ -n "${OUTPUT:-}" ]] && args+=(--output "$OUTPUT")
[[ -n "${PARTITION:-}" ]] && args+=(--partition "$PARTITION")
read -r -a extra <<< "${SBATCH_ARGS:-}"
for option in "${extra[@]}"; do args+=("--sbatch=$option"); done
[[ "${WAIT:-0}" == 1 ]] && args+=(--wait)
exec "$QWEN_DATA" "${args[@]}"
