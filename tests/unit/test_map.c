/*  test_map - put/get/replace/remove, binary keys, 100k keys with random
 *  removes cross-checked against a plain array, iteration, FNV-1a vectors. */
#include "map.h"
#include "test.h"

#include <stdint.h>

TEST(fnv1a_vectors)
{
    /* published FNV-1a 64 test vectors */
    CHECK(map_hash("", 0) == 0xcbf29ce484222325ULL);
    CHECK(map_hash("a", 1) == 0xaf63dc4c8601ec8cULL);
    CHECK(map_hash("foobar", 6) == 0x85944171f73967e8ULL);
}

TEST(basic)
{
    map_t *m = map_new();
    CHECK(m != NULL);
    int a = 1, b = 2, c = 3;
    CHECK_EQ_INT(map_size(m), 0);
    CHECK(map_get(m, "alpha", 5) == NULL);
    CHECK_EQ_INT(map_put(m, "alpha", 5, &a), 0);
    CHECK_EQ_INT(map_put(m, "beta", 4, &b), 0);
    CHECK_EQ_INT(map_size(m), 2);
    CHECK(map_get(m, "alpha", 5) == &a);
    CHECK(map_get(m, "beta", 4) == &b);
    CHECK(map_get(m, "alph", 4) == NULL);       /* prefix is another key */
    CHECK(map_get(m, "alphab", 6) == NULL);
    /* replace keeps the size */
    CHECK_EQ_INT(map_put(m, "alpha", 5, &c), 0);
    CHECK_EQ_INT(map_size(m), 2);
    CHECK(map_get(m, "alpha", 5) == &c);
    /* the map copied the key */
    char key[8] = "gamma";
    CHECK_EQ_INT(map_put(m, key, 5, &a), 0);
    memcpy(key, "xxxxx", 5);
    CHECK(map_get(m, "gamma", 5) == &a);
    /* remove */
    CHECK(map_remove(m, "alpha", 5) == &c);
    CHECK(map_remove(m, "alpha", 5) == NULL);
    CHECK(map_get(m, "alpha", 5) == NULL);
    CHECK_EQ_INT(map_size(m), 2);
    CHECK(map_get(m, "beta", 4) == &b);
    /* the empty key is a key */
    CHECK_EQ_INT(map_put(m, "", 0, &b), 0);
    CHECK(map_get(m, "", 0) == &b);
    CHECK(map_remove(m, "", 0) == &b);
    CHECK(map_get(m, "", 0) == NULL);
    map_destroy(&m);
    CHECK(m == NULL);
    map_destroy(&m);                            /* NULL-safe */
    map_destroy(NULL);
}

TEST(nul_bytes)
{
    map_t *m = map_new();
    CHECK(m != NULL);
    int v1 = 1, v2 = 2, v3 = 3, v4 = 4;
    CHECK_EQ_INT(map_put(m, "a\0b", 3, &v1), 0);
    CHECK_EQ_INT(map_put(m, "a\0c", 3, &v2), 0);
    CHECK_EQ_INT(map_put(m, "a", 1, &v3), 0);
    CHECK_EQ_INT(map_put(m, "a\0", 2, &v4), 0);
    CHECK_EQ_INT(map_size(m), 4);
    CHECK(map_get(m, "a\0b", 3) == &v1);
    CHECK(map_get(m, "a\0c", 3) == &v2);
    CHECK(map_get(m, "a", 1) == &v3);
    CHECK(map_get(m, "a\0", 2) == &v4);
    CHECK(map_get(m, "a\0d", 3) == NULL);
    CHECK(map_remove(m, "a\0", 2) == &v4);
    CHECK(map_get(m, "a", 1) == &v3);
    size_t pos = 0, klen = 0;
    const void *k;
    void *v;
    int seen_nul = 0;
    while (map_next(m, &pos, &k, &klen, &v))
        if (klen == 3 && memcmp(k, "a\0c", 3) == 0 && v == &v2)
            seen_nul = 1;
    CHECK(seen_nul);
    map_destroy(&m);
}

static uint64_t s_rng = 0x9E3779B97F4A7C15ULL;
static uint64_t s_rand(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

#define NKEYS 100000

/* Key i: 8 raw bytes of i (NULs included) plus a variable-length tail. */
static size_t s_key(size_t i, unsigned char *out)
{
    uint64_t x = i;
    memcpy(out, &x, 8);
    size_t tail = i % 7;
    for (size_t t = 0; t < tail; t++)
        out[8 + t] = (unsigned char)('k' + t);
    return 8 + tail;
}

TEST(random_against_reference)
{
    map_t *m = map_new();
    CHECK(m != NULL);
    static char present[NKEYS];
    static int vals[NKEYS];
    memset(present, 0, sizeof present);
    unsigned char k[16];
    size_t expect = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        size_t kl = s_key(i, k);
        CHECK_EQ_INT(map_put(m, k, kl, &vals[i]), 0);
        present[i] = 1;
        expect++;
        /* interleave random removes and re-puts of earlier keys */
        if (s_rand() % 3 == 0) {
            size_t j = (size_t)(s_rand() % (i + 1));
            kl = s_key(j, k);
            void *got = map_remove(m, k, kl);
            CHECK(got == (present[j] ? (void *)&vals[j] : NULL));
            if (present[j])
                expect--;
            present[j] = 0;
        }
        if (s_rand() % 11 == 0) {
            size_t j = (size_t)(s_rand() % (i + 1));
            kl = s_key(j, k);
            CHECK_EQ_INT(map_put(m, k, kl, &vals[j]), 0);
            if (!present[j])
                expect++;
            present[j] = 1;
        }
        CHECK_EQ_INT(map_size(m), expect);
    }
    for (size_t i = 0; i < NKEYS; i++) {
        size_t kl = s_key(i, k);
        CHECK(map_get(m, k, kl) == (present[i] ? (void *)&vals[i] : NULL));
    }
    /* iteration visits each present entry exactly once */
    static char seen[NKEYS];
    memset(seen, 0, sizeof seen);
    size_t pos = 0, klen, count = 0;
    const void *key;
    void *v;
    while (map_next(m, &pos, &key, &klen, &v)) {
        size_t idx = (size_t)((int *)v - vals);
        CHECK(idx < NKEYS);
        CHECK(present[idx]);
        CHECK(!seen[idx]);
        seen[idx] = 1;
        size_t kl = s_key(idx, k);
        CHECK_EQ_INT(klen, kl);
        CHECK(memcmp(key, k, kl) == 0);
        count++;
    }
    CHECK_EQ_INT(count, expect);
    CHECK(map_next(m, &pos, &key, &klen, &v) == 0);   /* stays finished */
    /* remove everything; the map is then empty and still usable */
    for (size_t i = 0; i < NKEYS; i++) {
        size_t kl = s_key(i, k);
        CHECK(map_remove(m, k, kl) == (present[i] ? (void *)&vals[i] : NULL));
    }
    CHECK_EQ_INT(map_size(m), 0);
    pos = 0;
    CHECK(map_next(m, &pos, &key, &klen, &v) == 0);
    CHECK_EQ_INT(map_put(m, "x", 1, &vals[0]), 0);
    CHECK(map_get(m, "x", 1) == &vals[0]);
    map_destroy(&m);
}

TEST(churn_does_not_hang)
{
    /* Many put/remove cycles over a small live set: with tombstones this
     * would fill the table; with backward shift lookups of absent keys must
     * still end quickly. */
    map_t *m = map_new();
    CHECK(m != NULL);
    int v = 0;
    char k[32];
    for (int i = 0; i < 200000; i++) {
        int n = snprintf(k, sizeof k, "key-%d", i);
        CHECK_EQ_INT(map_put(m, k, (size_t)n, &v), 0);
        if (i >= 8) {
            n = snprintf(k, sizeof k, "key-%d", i - 8);
            CHECK(map_remove(m, k, (size_t)n) == &v);
        }
        CHECK(map_get(m, "absent", 6) == NULL);
    }
    CHECK_EQ_INT(map_size(m), 8);
    map_destroy(&m);
}

TEST(iteration_small)
{
    map_t *m = map_new();
    CHECK(m != NULL);
    size_t pos = 0;
    const void *k;
    size_t kl;
    void *v;
    CHECK(map_next(m, &pos, &k, &kl, &v) == 0);
    int vals[3];
    const char *keys[] = { "one", "two", "three" };
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(map_put(m, keys[i], strlen(keys[i]), &vals[i]), 0);
    int seen[3] = { 0, 0, 0 };
    pos = 0;
    while (map_next(m, &pos, &k, &kl, &v)) {
        int idx = (int)((int *)v - vals);
        CHECK(idx >= 0 && idx < 3);
        CHECK_EQ_MEM(k, kl, keys[idx]);
        seen[idx]++;
    }
    CHECK(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
    map_destroy(&m);
}

TEST_MAIN(fnv1a_vectors, basic, nul_bytes, random_against_reference, churn_does_not_hang,
          iteration_small)
