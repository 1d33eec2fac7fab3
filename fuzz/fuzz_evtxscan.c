/* libFuzzer harness for the EVTX record selector (csrc/evtxscan), built with
 * -fsanitize=fuzzer,address,undefined by fuzz/run.sh.
 *
 * The input is one chunk: copied into a 64 KiB buffer (zero-padded, so short inputs are whole
 * chunks too) and selected. Beyond the sanitizers: the walk's counts and every kept offset
 * (ascending, a record start inside the walk) hold whatever the bytes say. */
#include <stdlib.h>
#include <string.h>

#include "../csrc/evtxscan/evtxscan.h"

static const uint32_t IDS[] = {12, 13, 6005, 6006, 6008, 1074};
static const evs_rule RULES[] = {
    {"Microsoft-Windows-WindowsUpdateClient", 37, NULL, 0},
    {"Microsoft-Windows-Kernel-General", 32, IDS, 2},
    {"EventLog", 8, IDS + 2, 3},
    {"User32", 6, IDS + 5, 1},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static uint8_t chunk[EVS_CHUNK_SIZE];
    static evs_result res;
    size_t n = size < EVS_CHUNK_SIZE ? size : EVS_CHUNK_SIZE;
    memset(chunk, 0, sizeof chunk);
    memcpy(chunk, data, n);
    if (evs_select(chunk, sizeof chunk, RULES, 4, &res) < 0) return 0;
    if (res.end > EVS_CHUNK_SIZE || res.end < EVS_CHUNK_HEADER || res.kept > res.records ||
        res.records > EVS_MAX_RECORDS)
        abort();
    for (uint32_t k = 0; k < res.kept; k++) {
        if (res.keep[k] < EVS_CHUNK_HEADER || res.keep[k] >= res.end) abort();
        if (memcmp(chunk + res.keep[k], "\x2a\x2a\0\0", 4)) abort();
        if (k && res.keep[k] <= res.keep[k - 1]) abort();
    }
    return 0;
}
