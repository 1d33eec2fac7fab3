#!/usr/bin/env bash
# Run every harness for FUZZ_SECONDS each, one at a time (the fuzzers are single-process; running
# them side by side only makes each slower). Usage: fuzz/run.sh [SECONDS] [HARNESS...]
# Working corpora and crash artifacts go to build/fuzz/ (never committed); the committed seeds in
# fuzz/corpus/<name>/ are read, not written. Exit 1 if any harness found a crash, hang or leak.
set -u
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-${FUZZ_SECONDS:-60}}
shift || true
HARNESSES=${*:-"pagehash evtxscan pe evtx kb memimage rowfmt registry etl archive"}
PY=${PY:-.venv/bin/python}
CC_FUZZ=${CC_FUZZ:-clang}
OUT=build/fuzz
mkdir -p "$OUT/artifacts"
# The harnesses' scratch files go to a folder of this run, removed at its end: libFuzzer ends a
# harness with _exit, so nothing the harness registered to clean up at exit runs.
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/hpf-fuzz-run-XXXXXX") || exit 2
trap 'rm -rf "$SCRATCH"' EXIT
export TMPDIR="$SCRATCH"
# max input length, per harness: EVTX needs a 4 KiB header plus a 64 KiB chunk
declare -A MAXLEN=([pagehash]=65536 [evtxscan]=65536 [pe]=65536 [evtx]=140000 [kb]=16384 [memimage]=8192
                  [rowfmt]=4096 [registry]=40000 [etl]=32768 [archive]=65536)
status=0
for h in $HARNESSES; do
    mkdir -p "$OUT/$h"
    flags=(-max_total_time="$SECONDS_EACH" -max_len="${MAXLEN[$h]}" -timeout=20 -rss_limit_mb=2048
           -artifact_prefix="$OUT/artifacts/$h-" -print_final_stats=1)
    if [ "$h" = pagehash ]; then
        command -v "$CC_FUZZ" >/dev/null || { echo "fuzz: $CC_FUZZ not found (apt-get install clang)"; exit 2; }
        "$CC_FUZZ" -std=c11 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
            -pthread -o "$OUT/fuzz_pagehash" fuzz/fuzz_pagehash.c \
            $(ls csrc/pagehash/*.c | grep -v module.c) || exit 2
        cmd=("$OUT/fuzz_pagehash")
    elif [ "$h" = evtxscan ]; then
        command -v "$CC_FUZZ" >/dev/null || { echo "fuzz: $CC_FUZZ not found (apt-get install clang)"; exit 2; }
        "$CC_FUZZ" -std=c11 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
            -o "$OUT/fuzz_evtxscan" fuzz/fuzz_evtxscan.c csrc/evtxscan/select.c csrc/evtxscan/decode.c || exit 2
        cmd=("$OUT/fuzz_evtxscan")
    else
        cmd=("$PY" "fuzz/fuzz_$h.py")
    fi
    echo "== $h: ${SECONDS_EACH}s"
    "${cmd[@]}" "${flags[@]}" "$OUT/$h" "fuzz/corpus/$h" >"$OUT/$h.log" 2>&1
    rc=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$OUT/$h.log" | grep -o '[0-9]*$' | tail -1)
    echo "   exit $rc, ${runs:-?} executions, corpus $(ls "$OUT/$h" | wc -l) inputs (log: $OUT/$h.log)"
    if [ $rc -ne 0 ]; then
        status=1
        grep -m1 -A12 'Uncaught Python exception\|ERROR: \(AddressSanitizer\|libFuzzer\)\|runtime error' "$OUT/$h.log"
    fi
done
exit $status
