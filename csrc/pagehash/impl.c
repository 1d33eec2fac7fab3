/* Implementations by name: the names the binding reports and accepts, and the
 * HPF_PAGEHASH_IMPL override that forces a code path for a whole process (tests run every
 * path the CPU has through it, benchmarks measure each instruction set side by side). */
#include <stdio.h>

#include "pagehash.h"

typedef struct {
    const char *kind;
    const char *const *names;
    int count;
    int (*set)(int);
    int (*get)(void);
} impl_kind;

static const char *const XXH_NAMES[] = {"scalar", "sse2", "avx2", "avx512", "neon"};
static const char *const SHA_NAMES[] = {"portable", "shani"};
static const char *const CMP_NAMES[] = {"scalar", "sse2", "avx2", "avx512"};

static const impl_kind KINDS[] = {
    {"xxh128", XXH_NAMES, 5, ph_xxh3_set_impl, ph_xxh3_get_impl},
    {"sha256", SHA_NAMES, 2, ph_sha256_set_impl, ph_sha256_get_impl},
    {"compare", CMP_NAMES, 4, ph_compare_set_impl, ph_compare_get_impl},
};
#define NKINDS (sizeof KINDS / sizeof KINDS[0])

static const impl_kind *find_kind(const char *kind, size_t len) {
    for (size_t k = 0; k < NKINDS; k++)
        if (strlen(KINDS[k].kind) == len && !strncmp(KINDS[k].kind, kind, len)) return &KINDS[k];
    return NULL;
}

/* the id of name in kind's table, -1 for "auto", -2 if kind has no such name */
static int find_name(const impl_kind *k, const char *name, size_t len) {
    if (len == 4 && !strncmp(name, "auto", 4)) return PH_XXH_AUTO;
    for (int i = 0; i < k->count; i++)
        if (strlen(k->names[i]) == len && !strncmp(k->names[i], name, len)) return i;
    return -2;
}

const char *const *ph_impl_names(const char *kind, int *count) {
    const impl_kind *k = find_kind(kind, strlen(kind));
    *count = k ? k->count : 0;
    return k ? k->names : NULL;
}

const char *ph_impl_name(const char *kind) {
    const impl_kind *k = find_kind(kind, strlen(kind));
    return k ? k->names[k->get()] : NULL;
}

int ph_set_impl_by_name(const char *kind, const char *name) {
    const impl_kind *k = find_kind(kind, strlen(kind));
    if (!k) return PH_IMPL_UNKNOWN_KIND;
    int id = find_name(k, name, strlen(name));
    if (id == -2) return PH_IMPL_UNKNOWN_NAME;
    return k->set(id) ? PH_IMPL_UNAVAILABLE : PH_OK;
}

/* one item of the spec: "kind=name", or a bare name for every kind that has it */
static int apply_item(const char *item, size_t len, char *err, size_t errlen) {
    const char *eq = memchr(item, '=', len);
    if (eq) {
        const impl_kind *k = find_kind(item, (size_t)(eq - item));
        const char *name = eq + 1;
        size_t nlen = len - (size_t)(name - item);
        int id = k ? find_name(k, name, nlen) : -2;
        if (!k) {
            snprintf(err, errlen, "unknown kind '%.*s' (xxh128, sha256, compare)", (int)(eq - item), item);
            return PH_IMPL_UNKNOWN_KIND;
        }
        if (id == -2) {
            snprintf(err, errlen, "%s has no implementation '%.*s'", k->kind, (int)nlen, name);
            return PH_IMPL_UNKNOWN_NAME;
        }
        if (k->set(id)) {
            snprintf(err, errlen, "%s implementation '%.*s' is not available on this CPU", k->kind,
                     (int)nlen, name);
            return PH_IMPL_UNAVAILABLE;
        }
        return PH_OK;
    }
    int known = 0;
    for (size_t k = 0; k < NKINDS; k++) {
        int id = find_name(&KINDS[k], item, len);
        if (id == -2) continue;
        known = 1;
        if (KINDS[k].set(id)) {
            snprintf(err, errlen, "%s implementation '%.*s' is not available on this CPU", KINDS[k].kind,
                     (int)len, item);
            return PH_IMPL_UNAVAILABLE;
        }
    }
    if (!known) {
        snprintf(err, errlen, "no kind has an implementation '%.*s'", (int)len, item);
        return PH_IMPL_UNKNOWN_NAME;
    }
    return PH_OK;
}

int ph_apply_impl_spec(const char *spec, char *err, size_t errlen) {
    if (!spec) return PH_OK;
    while (*spec) {
        const char *end = strchr(spec, ',');
        size_t len = end ? (size_t)(end - spec) : strlen(spec);
        if (len) {
            int rc = apply_item(spec, len, err, errlen);
            if (rc != PH_OK) return rc;
        }
        spec += len + (end != NULL);
    }
    return PH_OK;
}
