#!/usr/bin/env bash
# Submits a distributed FP8 conversion to Slurm: an array of TASKS quantize tasks
# (quantize-array.sbatch) and a merge-index job that depends on all of them (afterok).
#
#   MODEL=/shared/DeepSeek-V3 OUT=/shared/DeepSeek-V3-FP8 DSCONVERT=/shared/bin/dsconvert \
#   TASKS=16 docs/slurm/submit.sh [extra sbatch options, e.g. --account=X --time=2:00:00]
#
# Environment:
#   MODEL, OUT       input and output directories (on a filesystem all nodes share)
#   DSCONVERT        the dsconvert binary (default: the one on PATH), same path on every node
#   TASKS            number of array tasks N = --jobs N (default 8); more tasks than output
#                    shards only adds tasks with nothing to do (DeepSeek-V3 has 163 shards)
#   CPUS_PER_TASK    CPUs (and dsconvert --threads) per task (default 8)
#   MAX_CONCURRENT   run at most this many tasks at once (Slurm's --array=0-(N-1)%M)
#   PARTITION        partition for both jobs (default: the cluster's default)
#   LOG_DIR          where the jobs' logs go (default: $OUT.logs; created here)
#   DSCONVERT_ARGS   extra quantize options, identical for every task (e.g. "--fsync")
# Extra arguments are passed to both sbatch calls.
#
# Prints ARRAY_JOB_ID=... and MERGE_JOB_ID=... on standard output. Wait for the merge job
# (e.g. `squeue -j $MERGE_JOB_ID`, `sacct -j $ARRAY_JOB_ID`); see quantize-array.sbatch for
# resuming after a failed task.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

: "${MODEL:?set MODEL to the input checkpoint directory}"
: "${OUT:?set OUT to the output directory}"
TASKS=${TASKS:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-8}
DSCONVERT=${DSCONVERT:-$(command -v dsconvert || true)}

if [ -z "$DSCONVERT" ] || [ ! -x "$DSCONVERT" ]; then
  echo "DSCONVERT: no dsconvert binary (set DSCONVERT=/path/to/dsconvert)" >&2; exit 2
fi
[ -d "$MODEL" ] || { echo "MODEL: $MODEL is not a directory" >&2; exit 2; }
case "$TASKS" in ''|*[!0-9]*|0) echo "TASKS must be a positive integer" >&2; exit 2;; esac

# Absolute paths: the jobs may start in another directory and on other nodes.
MODEL=$(realpath "$MODEL")
OUT=$(realpath -m "$OUT")
DSCONVERT=$(realpath "$DSCONVERT")
LOG_DIR=$(realpath -m "${LOG_DIR:-$OUT.logs}")
mkdir -p "$LOG_DIR"
export MODEL OUT DSCONVERT DSCONVERT_ARGS="${DSCONVERT_ARGS:-}"
# JOBS is what every task passes as --jobs; set explicitly so that a later partial re-run
# (--array=3,5) of this array uses the same N.
export JOBS=$TASKS

array="0-$((TASKS - 1))${MAX_CONCURRENT:+%$MAX_CONCURRENT}"
common=(--export=ALL ${PARTITION:+--partition="$PARTITION"})

array_id=$(sbatch --parsable "${common[@]}" \
  --array="$array" --cpus-per-task="$CPUS_PER_TASK" \
  --output="$LOG_DIR/quantize-%A_%a.out" \
  "$@" "$here/quantize-array.sbatch")
array_id=${array_id%%;*}   # "jobid;cluster" on federated setups

merge_id=$(sbatch --parsable "${common[@]}" \
  --dependency="afterok:$array_id" --kill-on-invalid-dep=yes \
  --output="$LOG_DIR/merge-%j.out" \
  "$@" "$here/merge-index.sbatch")
merge_id=${merge_id%%;*}

echo "submitted $TASKS quantize task(s) as array job $array_id and merge-index as job $merge_id (logs in $LOG_DIR)" >&2
echo "ARRAY_JOB_ID=$array_id"
echo "MERGE_JOB_ID=$merge_id"
