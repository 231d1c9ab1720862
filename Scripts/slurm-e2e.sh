#!/usr/bin/env bash
# End-to-end test of the Slurm example in docs/slurm/ on a real one-node Slurm cluster.
# Opt-in (not part of `make test`): needs root, installs Debian's slurm and munge packages
# on first use, and starts daemons.
#
#   Scripts/slurm-e2e.sh
#
# 1. starts the local cluster with shared/tools/slurm-local up (partition "main", one node
#    with this machine's CPUs, jobs run as root, the node's /tmp is this /tmp)
# 2. synthesizes a DeepSeek-V3-layout checkpoint (163 shards, 46,183 tensors) in /tmp, plus
#    a few non-weight files for merge-index to copy
# 3. submits the quantize array and the dependent merge-index job with docs/slurm/submit.sh
#    and waits for both (at most TIMEOUT seconds)
# 4. converts the same input in one process and compares the two output directories file by
#    file, byte for byte (every file, hidden ones included)
# 5. prints PASS or FAIL (exit 1), and stops the cluster on exit if this script started it.
#
# Environment: DSCONVERT (default: build with swift build -c release --scratch-path
# .build-slurm), TASKS (8), MAX_CONCURRENT (unset: as many tasks at once as there are CPUs),
# TIMEOUT (600), SCALE (synth --scale; default 1/128, 250 MB: big enough that a task starts
# while another is still writing, as on a real cluster -- at 1/256 each task takes about
# 0.5 s and a 2-CPU node runs them in pairs that start together), KEEP=1 keeps the work
# directory (it is always kept on failure), SLURM_LOCAL (path of the slurm-local tool).
# Takes about 20 s plus the build on 2 cores.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TASKS=${TASKS:-8}
TIMEOUT=${TIMEOUT:-600}
SCALE=${SCALE:-1/128}
SLURM_LOCAL=${SLURM_LOCAL:-}
if [ -z "$SLURM_LOCAL" ]; then
  for c in "$repo/../shared/tools/slurm-local" /work/shared/tools/slurm-local; do
    [ -f "$c" ] && { SLURM_LOCAL=$c; break; }
  done
fi

say() { echo "slurm-e2e: $*" >&2; }
fail() { say "$*"; echo "FAIL"; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (slurm-local installs packages and runs the daemons as root)"
if [ -z "$SLURM_LOCAL" ] || [ ! -f "$SLURM_LOCAL" ]; then fail "slurm-local not found (set SLURM_LOCAL)"; fi

if [ -z "${DSCONVERT:-}" ]; then
  swift=$(command -v swift || echo /opt/swift/usr/bin/swift)
  say "building dsconvert (release, scratch path .build-slurm)"
  (cd "$repo" && "$swift" build -c release --scratch-path .build-slurm --product dsconvert >&2) || fail "build failed"
  DSCONVERT=$repo/.build-slurm/release/dsconvert
fi
DSCONVERT=$(realpath "$DSCONVERT")
[ -x "$DSCONVERT" ] || fail "DSCONVERT=$DSCONVERT is not executable"

work=$(mktemp -d /tmp/dsconvert-slurm-e2e.XXXXXX)
started_cluster=0
array_id="" merge_id=""
# `scontrol shutdown` returns before the daemons have exited.
wait_daemons_gone() {
  for _ in $(seq 1 30); do
    pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || return 0
    sleep 1
  done
  return 1
}
cleanup() {
  local rc=$?
  if [ -n "$array_id$merge_id" ] && command -v scancel >/dev/null; then
    # shellcheck disable=SC2086  # either may be empty
    scancel $array_id $merge_id 2>/dev/null || true
  fi
  if [ "$started_cluster" = 1 ]; then
    say "stopping the local Slurm cluster"
    bash "$SLURM_LOCAL" down || true
    wait_daemons_gone || say "slurmctld/slurmd still running 30 s after shutdown"
  fi
  if [ "${KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then say "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. The cluster. Leave one that was already running (someone else's) up at the end.
if pgrep -x slurmctld >/dev/null && pgrep -x slurmd >/dev/null && scontrol ping 2>/dev/null | grep -q UP; then
  say "a Slurm cluster is already running; using it and leaving it up"
  sinfo >&2 || fail "sinfo failed"
else
  # Daemons that do not answer are most likely still shutting down.
  wait_daemons_gone || fail "slurmctld/slurmd are running but do not answer (see /var/log/slurm/)"
  started_cluster=1
  say "starting the local Slurm cluster ($SLURM_LOCAL up)"
  bash "$SLURM_LOCAL" up >&2 || fail "slurm-local up failed"
fi
say "$(sinfo --version), $("$DSCONVERT" --version 2>&1 | sed 's/^/dsconvert /')"

# 2. The input.
model=$work/model out=$work/out-slurm single=$work/out-single
"$DSCONVERT" synth --arch deepseek-v3 --scale "$SCALE" --threads 1 "$model" >&2 || fail "synth failed"
printf '{"bos_token_id": 0, "eos_token_id": 1}\n' > "$model/generation_config.json"
printf '{"model_max_length": 16384}\n' > "$model/tokenizer_config.json"
printf '# synthetic checkpoint for slurm-e2e\n' > "$model/README.md"
say "input: $(ls "$model" | wc -l) files, $(du -sh "$model" | cut -f1)"

# 3. The distributed conversion, through the documented driver.
ids=$(MODEL=$model OUT=$out DSCONVERT=$DSCONVERT TASKS=$TASKS CPUS_PER_TASK=1 LOG_DIR=$work/logs \
      MAX_CONCURRENT=${MAX_CONCURRENT:-} bash "$repo/docs/slurm/submit.sh" --partition=main) || fail "submit.sh failed"
array_id=$(sed -n 's/^ARRAY_JOB_ID=//p' <<<"$ids")
merge_id=$(sed -n 's/^MERGE_JOB_ID=//p' <<<"$ids")
if [ -z "$array_id" ] || [ -z "$merge_id" ]; then fail "submit.sh printed no job ids: $ids"; fi
say "array job $array_id ($TASKS tasks), merge job $merge_id; waiting up to ${TIMEOUT}s"

deadline=$((SECONDS + TIMEOUT))
while [ -n "$(squeue -h -j "$array_id,$merge_id" -o %i 2>/dev/null)" ]; do
  if [ $SECONDS -ge $deadline ]; then
    squeue -j "$array_id,$merge_id" >&2
    fail "timed out after ${TIMEOUT}s"
  fi
  sleep 2
done

# Final states (no accounting database here: scontrol remembers finished jobs for MinJobAge).
states=$(scontrol -o show job "$array_id" 2>/dev/null | sed -n 's/.*ArrayTaskId=\([^ ]*\) .*JobState=\([A-Z_]*\).* ExitCode=\([0-9:]*\).*/task \1: \2 (exit \3)/p' | sort -t' ' -k2 -n)
merge_state=$(scontrol -o show job "$merge_id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).* ExitCode=\([0-9:]*\).*/\1 (exit \2)/p')
echo "$states" | sed 's/^/slurm-e2e:   /' >&2
say "  merge-index: ${merge_state:-unknown}"
array_ok=1
[ "$(grep -c 'COMPLETED (exit 0:0)' <<<"$states")" = "$TASKS" ] || array_ok=0
if [ "$array_ok" = 0 ] || [[ "$merge_state" != "COMPLETED (exit 0:0)"* ]]; then
  for f in "$work"/logs/*.out; do
    if grep -qiE 'error|failed|cancel' "$f"; then say "--- $f"; tail -n 5 "$f" >&2; fi
  done
  fail "the Slurm jobs did not all complete"
fi
for i in $(seq 0 $((TASKS - 1))); do
  n=$(grep -c ': written (' "$work/logs/quantize-${array_id}_$i.out" || true)
  say "  task $i wrote $n shard(s)"
done
cat "$work"/logs/merge-*.out >&2

# 4. The same conversion in one process.
"$DSCONVERT" quantize --fp8 "$model" "$single" --quiet || fail "single-process quantize failed"

compare() {  # every file and symlink, hidden ones included, by relative path
  (cd "$1" && find . \( -type f -o -type l \) -print | LC_ALL=C sort)
}
diffs=$(diff <(compare "$single") <(compare "$out")) || { echo "$diffs" | head -20 >&2; fail "the two outputs have different file lists"; }
files=0 bytes=0 bad=0
while IFS= read -r f; do
  if ! cmp -s "$single/$f" "$out/$f"; then say "differs: $f"; bad=$((bad + 1)); fi
  files=$((files + 1)); bytes=$((bytes + $(stat -c %s "$out/$f")))
done < <(compare "$out")
left=$(cd "$out/.dsconvert" && ls -A | grep -vx -e manifest.json -e lock | head -5)
[ -n "$left" ] && fail "$out/.dsconvert holds more than the manifest and the lock: $left"
[ "$bad" = 0 ] || fail "$bad of $files file(s) differ"
say "$files files ($bytes bytes) identical: $TASKS-task Slurm array + merge-index == one process"
echo "PASS"
