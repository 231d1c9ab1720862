#!/usr/bin/env bash
# dsconvert shard benchmarks, each beside its reference from the same run (ratios, not times):
#   1. `shard --tp 8 --ep 8` of a synthetic DeepSeek-V3 (--scale 1/32: 61 layers, 256 experts,
#      the MTP layer, ~2 GB BF16) vs `cp -r` of the same folder, alternating, best of BENCH_REPEAT;
#      peak RSS of each
#   2. peak RSS of that shard on the ~2 GB checkpoint and a ~16 GB one of the same tensor shapes
#      (--layers 480), which must stay within 10 % (needs ~35 GB free; BENCH_SECTIONS="1 2 3")
#   3. `shard --plan` on the real 671B FP8 layout (synth --scale 1 --sparse --fp8: headers only)
#   4. where the time of section 1's shard goes: `perf record -g` and the share of the samples
#      under each phase (checkpoint open, planning, the rank files, the finishing files), the
#      writer thread's write(2) and XXH3 hashing (needs perf; BENCH_SECTIONS="1 3 4")
# Env: BENCH_DIR (default /tmp/dsconvert-bench-shard), BENCH_THREADS (default 2),
#      BENCH_SECTIONS (default "1 3"), BENCH_REPEAT (default 3), BENCH_RT=1 (timed runs under
#      `chrt -f 50`: a shared machine's other work then waits), BENCH_KEEP=1 (keep the generated
#      checkpoints; by default the ~16 GB one of section 2 is deleted after use).
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

if run 2; then
  echo "== 2. peak RSS of shard --tp 8 --ep 8: ~2 GB vs ~16 GB checkpoint (same shapes, 8x the tensors; 500 MB files)"
  BIG=$DIR/v3-32-480
  [ -f "$BIG/config.json" ] || "$BIN" synth --arch deepseek-v3 --scale 1/32 --layers 480 --shard-size 500MB "$BIG" -q
  for d in "$CK" "$BIG"; do
    read -r r a f < <(rss_split "$BIN" shard "$d" "$DIR/mem-out" --tp 8 --ep 8 --threads "$T" -q); rm -rf "$DIR/mem-out"; sync
    printf "%sB checkpoint (%d tensors): peak RSS %d MB (sampled peaks: mapped input %d MB, heap %d MB)\n" \
      "$(numfmt --to=iec "$(du -sb "$d" | cut -f1)")" "$(grep -c '"model\.' "$d/model.safetensors.index.json")" \
      $((r / 1024)) $((f / 1024)) $((a / 1024))
    rss="${rss:-} $r"
  done
  read -r small big <<< "$rss"
  printf "peak RSS 16 GB / 2 GB input: %.2fx (target: within 10 %%)\n" "$(echo "$big / $small" | bc -l)"
  [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$BIG"
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
