/* Included by xxh3.c once per SIMD body, after the body's ACC_DECL, ACC_LOAD, ACC512,
 * SCRAMBLE, ACC_STORE and ACC_LANES macros and with XXH3_SFX (name suffix) and XXH3_ATTR (its
 * target attribute, or nothing) defined: makes long_<sfx> (any length above 240 bytes) and
 * page4k_<sfx> (exactly 4096 bytes, finished to the canonical digest), then undefines it all
 * for the next body. No include guard: it is meant to be included several times. */
#define XXH3_CAT2(a, b) a##b
#define XXH3_CAT(a, b) XXH3_CAT2(a, b)

XXH3_ATTR static void XXH3_CAT(long_, XXH3_SFX)(const uint8_t *p, size_t len, uint64_t out[8]) {
    ACC_DECL;
    XXH3_LONG_LOOP
}

XXH3_ATTR static void XXH3_CAT(page4k_, XXH3_SFX)(const uint8_t *p, uint8_t digest[16]) {
    uint64_t lanes[8];
    ACC_DECL;
    XXH3_4K_LOOP
    ACC_LANES(lanes);
    put_canonical(finish_long(lanes, PAGE4K), digest);
}

#undef XXH3_CAT
#undef XXH3_CAT2
#undef XXH3_SFX
#undef XXH3_ATTR
#undef ACC_DECL
#undef ACC_LOAD
#undef ACC512
#undef SCRAMBLE
#undef ACC_STORE
#undef ACC_LANES
#undef ACC1
#undef SCR1
