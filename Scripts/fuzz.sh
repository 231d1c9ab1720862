#!/usr/bin/env bash
# Long run of the safetensors header fuzzer (Tests/SafeTensorsTests/HeaderFuzzTests.swift):
# seeded mutations of valid files through SafeTensorsHeader.parse(file:); every input must
# parse and satisfy the format's invariants, or throw SafeTensorsError.
#
#   Scripts/fuzz.sh [ITERATIONS] [SEED]
#
#   ITERATIONS  inputs to try (default 5,000,000; also DSCONVERT_FUZZ_ITERATIONS)
#   SEED        the mutator's seed (default: the test's fixed seed; also DSCONVERT_FUZZ_SEED).
#               Use a new seed per run to explore new inputs; a failure names the seed to replay.
#   DSCONVERT_FUZZ_REFERENCE_FILES  files in the differential run against Python's safetensors
#               (default 20,000)
#   SCRATCH     SwiftPM scratch path (default .build)
#   CONFIG      release (default) or debug. Release is ~10x faster, but the library is built with
#               -Ounchecked there, so an out-of-bounds access would not trap; run debug too from
#               time to time.
set -euo pipefail
cd "$(dirname "$0")/.."

export DSCONVERT_FUZZ_ITERATIONS="${1:-${DSCONVERT_FUZZ_ITERATIONS:-5000000}}"
if [[ $# -ge 2 ]]; then export DSCONVERT_FUZZ_SEED="$2"; fi
export DSCONVERT_FUZZ_REFERENCE_FILES="${DSCONVERT_FUZZ_REFERENCE_FILES:-20000}"
config="${CONFIG:-release}"
scratch="${SCRATCH:-.build}"

echo "fuzzing ${DSCONVERT_FUZZ_ITERATIONS} inputs (${config}, seed ${DSCONVERT_FUZZ_SEED:-default})"
swift test -c "$config" -Xswiftc -enable-testing --scratch-path "$scratch" --filter 'SafeTensorsTests.HeaderFuzzTests' 2>&1 \
    | grep -E 'error:|fatal|crash|fuzz|Executed|failed|Build complete' 
