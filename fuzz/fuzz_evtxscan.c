/* libFuzzer harness for the EVTX record selector and decoder (csrc/evtxscan), built with
 * -fsanitize=fuzzer,address,undefined by fuzz/run.sh.
 *
 * The input is one chunk: copied into a 64 KiB buffer (zero-padded, so short inputs are whole
 * chunks too), selected, and every kept record decoded. Beyond the sanitizers: the walk's
 * counts and every kept offset (ascending, a record start inside the walk) hold whatever the
 * bytes say, and so do the decoder's fields (inside the chunk; every checked value renders). */
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

static void decode_kept(const uint8_t *chunk, const evs_result *res) {
    static evs_record rec;
    static char text[EVS_VALUE_TEXT_MAX];
    static evs_decoder *dec;
    if (!dec && !(dec = malloc(evs_decoder_size()))) abort();
    evs_decoder_reset(dec);
    for (uint32_t k = 0; k < res->kept; k++) {
        if (evs_decode(dec, chunk, EVS_CHUNK_SIZE, res->keep[k], &rec) < 0) continue;
        if (rec.n_data > EVS_MAX_FIELDS) abort();
        evs_ref *refs[6 + 2 * EVS_MAX_FIELDS];
        uint32_t n = 0;
        refs[n++] = &rec.provider, refs[n++] = &rec.source, refs[n++] = &rec.event_id;
        refs[n++] = &rec.record_id, refs[n++] = &rec.channel, refs[n++] = &rec.computer;
        for (uint32_t f = 0; f < rec.n_data; f++) refs[n++] = &rec.name[f], refs[n++] = &rec.data[f];
        for (uint32_t f = 0; f < n; f++) {
            const evs_ref *r = refs[f];
            if (r->kind == EVS_NONE) continue;
            if ((uint64_t)r->off + r->size > EVS_CHUNK_SIZE) abort();
            if (r->kind == EVS_VALUE && r->type != 0x01 && r->type != 0x0e && r->type != 0x81 &&
                evs_value_text(chunk + r->off, r->size, r->type, text, sizeof text) < 0)
                abort();
        }
    }
}

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
    decode_kept(chunk, &res);
    return 0;
}
