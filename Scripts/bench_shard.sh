#!/usr/bin/env bash
# dsconvert shard benchmarks, each beside its reference from the same run (ratios, not times):
#   1. `shard --tp 8 --ep 8` of a synthetic DeepSeek-V3 (--scale 1/32: 61 layers, 256 experts,
#      the MTP layer, ~2 GB BF16) vs `cp -r` of the same folder, alternating, best of BENCH_REPEAT;
#      peak RSS of each
#   2. peak RSS of that shard (and its RssFile / RssAnon parts) on the ~2 GB checkpoint and a
#      ~16 GB one with the same tensors, only wider (--scale 1/10 --align 8: the widths a TP 8
#      split divides; the real 671B model is the same 46k tensors, wider still), alternating,
#      BENCH_REPEAT runs each; the target is within 10 % (needs ~34 GB free at a time:
#      BENCH_SECTIONS="1 2 3"). BENCH_MANY_TENSORS=1 adds the second reading: a ~16 GB
#      checkpoint of the 1/32 shapes with 8x the tensors (--layers 480), where the plan's heap,
#      O(tensors), grows with it (the ~16 GB wide input is deleted before it is written).
#   3. `shard --plan` on the real 671B FP8 layout (synth --scale 1 --sparse --fp8: headers only)
#   4. where the time of section 1's shard goes: `perf record -g` and the share of the samples
#      under each phase (checkpoint open, planning, the rank files, the finishing files), the
#      writer thread's write(2) and XXH3 hashing (needs perf; BENCH_SECTIONS="1 3 4")
# Env: BENCH_DIR (default /tmp/dsconvert-bench-shard), BENCH_THREADS (default 2),
#      BENCH_SECTIONS (default "1 3"), BENCH_REPEAT (default 3), BENCH_RT=1 (timed runs under
#      `chrt -f 50`: a shared machine's other work then waits), BENCH_KEEP=1 (keep the generated
#      checkpoints; by default the ~16 GB ones of section 2 are deleted after use),
#      BENCH_MANY_TENSORS=1 (section 2's second reading).
# Section 1 runs twice when this user may drop the page cache (/proc/sys/vm/drop_caches): with it
# dropped before every timed run (both sides read from disk), then with the input warm in it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${DSCONVERT:-.build/release/dsconvert}
DIR=${BENCH_DIR:-/tmp/dsconvert-bench-shard}
T=${BENCH_THREADS:-2}
REPEAT=${BENCH_REPEAT:-3}
SECTIONS=" ${BENCH_SECTIONS:-1 3} "
run() { case "$SECTIONS" in *" $1 "*) return 0;; *) return 1;; esac; }
mkdir -p "$DIR"
RT=()
if [ "${BENCH_RT:-0}" = 1 ] && chrt -f 50 true 2>/dev/null; then RT=(chrt -f 50); fi
secs() { local s=$(date +%s.%N); "${RT[@]}" "$@" >/dev/null 2>&1; echo "$(date +%s.%N) - $s" | bc -l; }
rss_kb() { /usr/bin/time -f "%M" "$@" 2>&1 >/dev/null | tail -1; }
min() { printf "%s\n" "$@" | sort -g | head -1; }
# Before each timed run: sync, then the page cache in state $CACHE: "cold" drops it
# (/proc/sys/vm/drop_caches, when this user may), "warm" reads the input into it.
can_drop() { [ -w /proc/sys/vm/drop_caches ]; }
settle() {
  sync
  if [ "$CACHE" = cold ]; then echo 3 > /proc/sys/vm/drop_caches; else cat "$1"/* > /dev/null; fi
  sleep 1
}

CK=$DIR/v3-32
[ -f "$CK/config.json" ] || "$BIN" synth --arch deepseek-v3 --scale 1/32 --shard-size 500MB "$CK" -q
bytes=$(du -sb "$CK" | cut -f1)

if run 1; then
  modes=warm; can_drop && modes="cold warm"
  for CACHE in $modes; do
    echo "== 1. shard --tp 8 --ep 8 vs cp -r ($(numfmt --to=iec "$bytes")B, $(ls "$CK"/*.safetensors | wc -l) files; page cache $CACHE; load $(cut -d' ' -f1 /proc/loadavg); ${RT[*]:-no chrt})"
    tc=""; ts=""
    for _ in $(seq "$REPEAT"); do
      rm -rf "$DIR/cp" "$DIR/shard"; settle "$CK"
      tc="$tc $(secs cp -r "$CK" "$DIR/cp")"
      rm -rf "$DIR/cp"; settle "$CK"
      ts="$ts $(secs "$BIN" shard "$CK" "$DIR/shard" --tp 8 --ep 8 --threads "$T" -q)"
    done
    echo "cp -r:$tc s; shard:$ts s (load now $(cut -d' ' -f1 /proc/loadavg))"
    bc_=$(min $tc); bs=$(min $ts)
    rm -rf "$DIR/shard"; sync
    rcp=$(rss_kb cp -r "$CK" "$DIR/cp"); rm -rf "$DIR/cp"; sync
    rs=$(rss_kb "$BIN" shard "$CK" "$DIR/shard" --tp 8 --ep 8 --threads "$T" -q); rm -rf "$DIR/shard"; sync
    printf "best of %d, page cache %s: shard %.2f s (%.2f GB/s, peak RSS %d MB) | cp -r %.2f s (%.2f GB/s, %d MB) -> %.2fx cp speed\n" "$REPEAT" "$CACHE" \
      "$bs" "$(echo "$bytes / $bs / 1000000000" | bc -l)" $((rs / 1024)) "$bc_" "$(echo "$bytes / $bc_ / 1000000000" | bc -l)" $((rcp / 1024)) \
      "$(echo "$bc_ / $bs" | bc -l)"
  done
fi

# Peak RSS (KB, /usr/bin/time %M) of "$@", and the peaks of its two parts sampled every 0.2 s from
# /proc: RssFile (the input's mapped pages: the data) and RssAnon (heap: plan, headers, buffers).
rss_split() {
  local out=$DIR/time.out a=0 f=0 x y p
  /usr/bin/time -f "%M" -o "$out" "$@" >/dev/null 2>&1 &
  local tp=$!
  sleep 0.1; p=$(pgrep -P "$tp" | head -1)
  while [ -n "$p" ] && kill -0 "$p" 2>/dev/null; do
    read -r x y < <(awk '/^RssAnon/ {a = $2} /^RssFile/ {f = $2} END {print a + 0, f + 0}' "/proc/$p/status" 2>/dev/null || echo "0 0")
    [ "${x:-0}" -gt "$a" ] && a=$x
    [ "${y:-0}" -gt "$f" ] && f=$y
    sleep 0.2
  done
  wait "$tp" || true
  echo "$(tail -1 "$out") $a $f"
}

# One line per run of rss_split on checkpoint $1: peak RSS and its sampled parts, in MB.
rss_row() {
  local d=$1 r a f
  read -r r a f < <(rss_split "$BIN" shard "$d" "$DIR/mem-out" --tp 8 --ep 8 --threads "$T" -q); rm -rf "$DIR/mem-out"; sync
  printf "  %-10s %6sB, %6d tensors: peak RSS %5d MB (sampled peaks: RssFile mapped input %3d MB, RssAnon heap %4d MB)\n" \
    "$(basename "$d")" "$(numfmt --to=iec "$(du -sb "$d" | cut -f1)")" "$(grep -c '"model\.' "$d/model.safetensors.index.json")" \
    $((r / 1024)) $((f / 1024)) $((a / 1024)) >&2
  echo "$r"
}
# Peak RSS of checkpoints $1 and $2 alternately, BENCH_REPEAT times; prints the ratio of the
# largest peaks ($2 / $1) against the target.
rss_compare() {
  local small=0 big=0 x
  for _ in $(seq "$REPEAT"); do
    x=$(rss_row "$1"); [ "$x" -gt "$small" ] && small=$x
    x=$(rss_row "$2"); [ "$x" -gt "$big" ] && big=$x
  done
  printf "  largest peak RSS %s / %s: %d / %d MB = %.3fx (target: <= 1.10x, %s)\n" "$(basename "$2")" "$(basename "$1")" \
    $((big / 1024)) $((small / 1024)) "$(echo "$big / $small" | bc -l)" \
    "$( [ "$(echo "$big <= 1.10 * $small" | bc -l)" = 1 ] && echo met || echo "not met")"
}

if run 2; then
  WIDE=$DIR/v3-10a8
  echo "== 2. peak RSS of shard --tp 8 --ep 8, reading 1 (the issue's): ~2 GB vs ~16 GB checkpoint with the same tensors, 8x the bytes (--scale 1/32 vs --scale 1/10 --align 8; 500 MB files; load $(cut -d' ' -f1 /proc/loadavg))"
  [ -f "$WIDE/config.json" ] || "$BIN" synth --arch deepseek-v3 --scale 1/10 --align 8 --shard-size 500MB "$WIDE" -q
  rss_compare "$CK" "$WIDE"
  [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$WIDE"
  if [ "${BENCH_MANY_TENSORS:-0}" = 1 ]; then
    BIG=$DIR/v3-32-480
    echo "== 2. reading 2: ~2 GB vs ~16 GB checkpoint with the same shapes, 8x the tensors (--scale 1/32 vs --scale 1/32 --layers 480)"
    [ -f "$BIG/config.json" ] || "$BIN" synth --arch deepseek-v3 --scale 1/32 --layers 480 --shard-size 500MB "$BIG" -q
    rss_compare "$CK" "$BIG"
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$BIG"
  fi
fi

if run 3; then
  echo "== 3. shard --plan on the 671B FP8 layout (sparse: headers only)"
  SP=$DIR/v3-671b-fp8-sparse
  [ -f "$SP/config.json" ] || "$BIN" synth --arch deepseek-v3 --scale 1 --sparse --fp8 "$SP" -q
  for args in "--tp 8 --gpu H100" "--tp 8 --gpu H200" "--tp 8 --pp 2 --ep 8 --gpu H100"; do
    printf "%-32s %.2f s\n" "$args" "$(secs "$BIN" shard "$SP" --plan $args --emit vllm)"
  done
fi

if run 4; then
  echo "== 4. profile of shard --tp 8 --ep 8 (perf record -g; % of all samples, both threads)"
  command -v perf >/dev/null || { echo "perf not installed: skipped"; exit 0; }
  rm -rf "$DIR/prof-out"; cat "$CK"/* > /dev/null
  perf record -q -g -o "$DIR/shard.perf" "$BIN" shard "$CK" "$DIR/prof-out" --tp 8 --ep 8 --threads "$T" -q >/dev/null 2>&1
  rm -rf "$DIR/prof-out"
  perf report -i "$DIR/shard.perf" --children --sort symbol -g none 2>/dev/null > "$DIR/shard.report"
  share() { awk -v pat="$1" '$0 ~ pat { sub("%", "", $1); if ($1 > m) m = $1 } END { printf "%5.1f %%", m + 0 }' "$DIR/shard.report"; }
  printf "  %-44s %s\n" \
    "checkpoint open (headers, classification)" "$(share 'RunOptionsV10checkpoint')" \
    "planning (ShardPlanner.plan)" "$(share 'ShardPlannerO4plan')" \
    "rank files (ShardConverter.convert, main)" "$(share 'ShardConverterC7convert')" \
    "writer thread: write(2) of the rank files" "$(share 'AtomicFileC5write')" \
    "writer thread: XXH3 of the rank files" "$(share "XXH3_64bits_update")" \
    "plan.json" "$(share 'PlanFileV5write')" \
    "finishing: indexes, rank.json, side files" "$(share 'DirectoryFinisherO6finish')"
fi
