#!/usr/bin/env bash
# dsconvert benchmarks, each printed beside its reference measured in the same run (the
# machines are noisy; compare ratios, not absolute times).
#   1. kernel: BF16 -> FP8 block-128 over a 1 GiB tensor vs memcpy, numpy/ml_dtypes and torch
#   2. read: iterate every tensor of a multi-GiB checkpoint vs `cat FILES > /dev/null` (warm)
#   3. quantize: `dsconvert quantize --fp8` vs `cp -r` vs a PyTorch CPU script (same threads),
#      with the peak RSS of each
#   4. memory: peak RSS of quantize on a 2 GiB and a 16 GiB checkpoint of equal shard size
#   5. inspect: a 163-shard, ~92,000-tensor FP8 checkpoint (DeepSeek-V3 layout), headers only
#   6. memory at real DeepSeek-V3 widths: quantize one full-width layer + embeddings + MTP layer
#      (synth --scale 1 --layers 1, 31.8 GB, 1.85 GB embedding / head tensors): peak RSS beside the
#      largest tensor (opt-in: BENCH_SECTIONS="6"; needs ~50 GB free)
# Env: BENCH_DIR (default /tmp/dsconvert-bench), BENCH_THREADS (default 2), BENCH_SECTIONS (default
#      "1 2 3 4"), BENCH_SKIP_TORCH=1. Needs ~40 GB free in BENCH_DIR for the memory test.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${DSCONVERT:-.build/release/dsconvert}
# The kernel and read micro-benchmarks live in their own executable, apart from the product.
BENCH_BIN=${DSCONVERT_BENCH:-.build/release/dsconvert-bench}
DIR=${BENCH_DIR:-/tmp/dsconvert-bench}
T=${BENCH_THREADS:-2}
export BENCH_THREADS=$T
mkdir -p "$DIR"
SECTIONS=" ${BENCH_SECTIONS:-1 2 3 4 5} "
run() { case "$SECTIONS" in *" $1 "*) return 0;; *) return 1;; esac; }
py=python3
have_torch=$($py -c "import torch" 2>/dev/null && [ -z "${BENCH_SKIP_TORCH:-}" ] && echo 1 || echo 0)
# numpy is slowed by OPENBLAS_* settings on some machines (see the env notes); unset for timing only.
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE || true

secs() { local s=$(date +%s.%N); "$@" >/dev/null 2>&1; echo "$(date +%s.%N) - $s" | bc -l; }
REPEAT=${BENCH_REPEAT:-3}
# best OUTDIR CMD...: the shortest of $REPEAT runs, each after removing OUTDIR and letting
# write-back settle (sync), so a run does not pay for the previous one's dirty pages.
best() {
  local out=$1; shift; local times=""
  for _ in $(seq "$REPEAT"); do
    rm -rf "$out"; sync; sleep 1
    times="$times $(secs "$@")"
  done
  rm -rf "$out"; sync
  printf '%s\n' $times | sort -g | head -1
}
rss_kb() { /usr/bin/time -f "%M" "$@" 2>&1 >/dev/null | tail -1; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
gbps() { echo "scale=2; $1 / $2 / 1000000000" | bc -l; }

if run 1; then
echo "== 1. kernel: BF16 -> FP8 E4M3 block-128, 1 GiB tensor, $T threads"
k=$($BENCH_BIN kernel --mib 1024 --repeats 5 --threads "$T" --json)
ref=$($py Scripts/bench_reference.py 1024)
q=$(echo "$k" | $py -c "import json,sys; print(json.load(sys.stdin)['quantize_gb_s'])")
m=$(echo "$k" | $py -c "import json,sys; print(json.load(sys.stdin)['memcpy_gb_s'])")
np_=$(echo "$ref" | $py -c "import json,sys; print(json.load(sys.stdin)['numpy_gb_s'])")
th=$(echo "$ref" | $py -c "import json,sys; v=json.load(sys.stdin)['torch_gb_s']; print(v if v else 0)")
printf "dsconvert %.2f GB/s | memcpy %.2f GB/s -> %.2fx memcpy | numpy+ml_dtypes %.2f GB/s -> %.1fx | torch %.2f GB/s -> %s\n" \
  "$q" "$m" "$(ratio "$q" "$m")" "$np_" "$(ratio "$q" "$np_")" "$th" "$( [ "$th" != 0 ] && ratio "$q" "$th" || echo n/a)x"
fi

CK="$DIR/llama-half"
if [ ! -f "$CK/model.safetensors.index.json" ]; then
  echo "(synthesizing a 4.7 GB llama-shaped BF16 checkpoint in $CK)"
  $BIN synth --arch llama --scale 1/2 --shards 3 "$CK" -q
fi
bytes=$(du -cb "$CK"/*.safetensors | tail -1 | cut -f1)
cat "$CK"/*.safetensors > /dev/null; cat "$CK"/*.safetensors > /dev/null

if run 2; then
echo "== 2. read: every tensor of $(numfmt --to=si "$bytes")B (page cache warm)"
tc=$(secs sh -c "cat $CK/*.safetensors > /dev/null")
tr=$(secs "$BENCH_BIN" read "$CK" --threads "$T")
printf "dsconvert read %.2f GB/s | cat %.2f GB/s -> %.2fx cat\n" "$(gbps "$bytes" "$tr")" "$(gbps "$bytes" "$tc")" "$(ratio "$tc" "$tr")"
fi

if run 3; then
echo "== 3. quantize --fp8 (block 128) of the same checkpoint, $T threads (best of $REPEAT; page cache and write-back vary)"
tcp=$(best "$DIR/cp" cp -r "$CK" "$DIR/cp")
rcp=$(rss_kb cp -r "$CK" "$DIR/cp"); rm -rf "$DIR/cp"; sync
tq=$(best "$DIR/q" "$BIN" quantize --fp8 "$CK" "$DIR/q" --threads "$T" -q)
rq=$(rss_kb "$BIN" quantize --fp8 "$CK" "$DIR/q" --threads "$T" -q); sync
printf "dsconvert %.2f GB/s (peak RSS %d MB) | cp -r %.2f GB/s (%d MB) -> %.2fx cp\n" \
  "$(gbps "$bytes" "$tq")" $((rq / 1024)) "$(gbps "$bytes" "$tcp")" $((rcp / 1024)) "$(ratio "$tcp" "$tq")"
tdq=$(best "$DIR/dq" "$BIN" dequantize "$DIR/q" "$DIR/dq" --to bf16 --threads "$T" -q); rm -rf "$DIR/q"; sync
printf "dequantize FP8 -> BF16 (writes %s): %.2f s | cp -r of the same output size %.2f s -> %.2fx cp\n" \
  "$(numfmt --to=si "$bytes")B" "$tdq" "$tcp" "$(ratio "$tcp" "$tdq")"
if [ "$have_torch" = 1 ]; then
  tt=$(best "$DIR/torch" $py Scripts/torch_quantize.py "$CK" "$DIR/torch")
  rt=$(rss_kb $py Scripts/torch_quantize.py "$CK" "$DIR/torch"); rm -rf "$DIR/torch"
  printf "PyTorch script %.2f GB/s (peak RSS %d MB) -> dsconvert is %.1fx faster\n" "$(gbps "$bytes" "$tt")" $((rt / 1024)) "$(ratio "$tt" "$tq")"
else
  echo "PyTorch script: skipped (torch not installed; make test-interop installs it)"
fi
fi

if run 4; then
  echo "== 4. peak RSS vs checkpoint size (equal shard size, same tensor shapes)"
  for layers in 12 128; do  # ~2 GiB and ~16 GiB, same tensor shapes, 1 GB shards
    d="$DIR/mem-$layers"
    [ -f "$d/config.json" ] || $BIN synth --arch llama --scale 1/2 --layers "$layers" --shard-size 1GB "$d" -q
    sz=$(du -cb "$d"/*.safetensors | tail -1 | cut -f1)
    r=$(rss_kb "$BIN" quantize --fp8 "$d" "$DIR/mem-out" --threads "$T" -q); rm -rf "$DIR/mem-out"
    printf "%s checkpoint (%d shards): peak RSS %d MB\n" "$(numfmt --to=iec "$sz")B" "$(ls "$d"/*.safetensors | wc -l)" $((r / 1024))
  done
fi

if run 5; then
  echo "== 5. inspect of a 163-shard FP8 DeepSeek-V3-layout checkpoint (synth --scale 1/64, quantized)"
  d="$DIR/ds64"
  [ -f "$d/config.json" ] || $BIN synth --arch deepseek-v3 --scale 1/64 "$d" -q
  [ -f "$DIR/ds64-fp8/config.json" ] || $BIN quantize --fp8 "$d" "$DIR/ds64-fp8" -q
  n=$($BIN inspect "$DIR/ds64-fp8" --json --summary | $py -c "import json,sys; print(json.load(sys.stdin)['tensor_count'])")
  times=""; for _ in 1 2 3 4 5; do times="$times $(secs "$BIN" inspect "$DIR/ds64-fp8" --summary)"; done
  printf "inspect: %d tensors in 163 shards, best %.2f s, median %.2f s\n" "$n" \
    "$(printf '%s\n' $times | sort -g | head -1)" "$(printf '%s\n' $times | sort -g | sed -n 3p)"
fi

if run 6; then
  echo "== 6. peak RSS of quantize --fp8 at DeepSeek-V3's real widths (synth --scale 1 --layers 1)"
  d="$DIR/ds-full"
  [ -f "$d/config.json" ] || $BIN synth --arch deepseek-v3 --scale 1 --layers 1 "$d" -q
  sz=$(du -cb "$d"/*.safetensors | tail -1 | cut -f1)
  big=$($BIN inspect "$d" --json | $py -c "import json,sys; print(max(t['bytes'] for t in json.load(sys.stdin)['tensors']))")
  r=$(rss_kb "$BIN" quantize --fp8 "$d" "$DIR/ds-full-out" --threads "$T" -q); rm -rf "$DIR/ds-full-out"; sync
  printf "%s checkpoint, largest tensor %s: peak RSS %d MiB (target < 512 MiB) = %.2fx the largest tensor\n" \
    "$(numfmt --to=si "$sz")B" "$(numfmt --to=si "$big")B" $((r / 1024)) "$(ratio $((r * 1024)) "$big")"
fi
