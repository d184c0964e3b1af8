/*  test_envelope - broker -> gateway envelope (msgpack) and fan-out topic */
#include "test.h"
#include "envelope.h"

#include <stdint.h>

static env_msg_t s_sample(void)
{
    env_msg_t m;
    memset(&m, 0, sizeof m);
    m.seq = UINT64_C(18446744073709551615);     /* the full uint64 range */
    m.prev = 41;
    m.id = -7;
    m.ts_us = INT64_C(1700000000123456);
    m.nsp = "/";
    m.nsp_len = 1;
    m.room = "user_12";
    m.room_len = 7;
    m.event = "notification";
    m.event_len = 12;
    m.data = "{\"title\":\"caf\xc3\xa9\",\"n\":[1,2]}";
    m.data_len = strlen(m.data);
    return m;
}

static int s_in(const void *p, const msgpack_sbuffer *sb)
{
    return (const char *)p >= sb->data && (const char *)p <= sb->data + sb->size;
}

TEST(round_trip)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    env_msg_t m = s_sample(), d;
    CHECK_EQ_INT(env_encode(&sb, &m), 0);
    int rc = env_decode(sb.data, sb.size, &d);
    int ok = rc == 0 && d.seq == m.seq && d.prev == 41 && d.id == -7 &&
             d.ts_us == m.ts_us &&
             d.nsp_len == 1 && memcmp(d.nsp, "/", 1) == 0 &&
             d.room_len == 7 && memcmp(d.room, "user_12", 7) == 0 &&
             d.event_len == 12 && memcmp(d.event, "notification", 12) == 0 &&
             d.data_len == m.data_len && memcmp(d.data, m.data, m.data_len) == 0;
    /* zero copy: every string points into the encoded buffer */
    int zc = s_in(d.nsp, &sb) && s_in(d.room, &sb) && s_in(d.event, &sb) && s_in(d.data, &sb);
    CHECK(ok);      /* (on failure the buffer leaks; the test has failed anyway) */
    CHECK(zc);
    msgpack_sbuffer_destroy(&sb);
}

TEST(round_trip_edges)
{
    /* empty strings, zero and negative numbers, long strings (str16/str32
     * headers), and every integer width */
    static char big[70000];
    memset(big, 'x', sizeof big);
    const int64_t ints[] = { 0, 1, 127, 128, 255, 256, 65535, 65536, INT64_C(4294967296),
                             -1, -32, -33, -128, -129, -32768, -32769, INT64_MIN, INT64_MAX };
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        env_msg_t m = s_sample(), d;
        m.id = ints[k];
        m.ts_us = -ints[k] / 2;
        m.seq = (uint64_t)ints[k];
        m.prev = 0;
        m.nsp = NULL;
        m.nsp_len = 0;
        m.event = "";
        m.event_len = 0;
        m.data = big;
        m.data_len = k % 2 ? 300 : sizeof big;
        int rc = env_encode(&sb, &m);
        int rc2 = rc == 0 ? env_decode(sb.data, sb.size, &d) : -1;
        int ok = rc2 == 0 && d.id == m.id && d.ts_us == m.ts_us && d.seq == m.seq &&
                 d.prev == 0 && d.nsp_len == 0 && d.event_len == 0 &&
                 d.data_len == m.data_len && memcmp(d.data, big, d.data_len) == 0;
        msgpack_sbuffer_destroy(&sb);
        if (!ok)
            fprintf(stderr, "  failed for %lld\n", (long long)ints[k]);
        CHECK(ok);
    }
}

TEST(interop_with_msgpack_c)
{
    /* what we write is a plain msgpack map msgpack-c reads back */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    env_msg_t m = s_sample();
    CHECK_EQ_INT(env_encode(&sb, &m), 0);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int rc = msgpack_unpack_next(&u, sb.data, sb.size, &off);
    int ok = rc == MSGPACK_UNPACK_SUCCESS && off == sb.size &&
             u.data.type == MSGPACK_OBJECT_MAP && u.data.via.map.size == 9;
    int version_ok = 0;
    for (uint32_t k = 0; ok && k < u.data.via.map.size; k++) {
        msgpack_object_kv *kv = &u.data.via.map.ptr[k];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 1 &&
            kv->key.via.str.ptr[0] == 'v')
            version_ok = kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                         kv->val.via.u64 == ENV_VERSION;
    }
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    CHECK(ok);
    CHECK(version_ok);
}

TEST(every_truncation_fails)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    env_msg_t m = s_sample(), d;
    CHECK_EQ_INT(env_encode(&sb, &m), 0);
    int bad = -1;
    for (size_t cut = 0; cut < sb.size; cut++) {
        /* an exact-size copy, so that ASan catches any read past the end */
        char *copy = malloc(cut ? cut : 1);
        if (!copy)
            break;
        memcpy(copy, sb.data, cut);
        int rc = env_decode(copy, cut, &d);
        free(copy);
        if (rc != -1) {
            bad = (int)cut;
            break;
        }
    }
    /* one extra byte after the map is refused too */
    msgpack_sbuffer_write(&sb, "\xc0", 1);
    int trailing = env_decode(sb.data, sb.size, &d);
    msgpack_sbuffer_destroy(&sb);
    CHECK_EQ_INT(bad, -1);
    CHECK_EQ_INT(trailing, -1);
}

/* Packs a map from a script: each field is one of the envelope's keys with a
 * chosen value writer, so tests can drop, repeat, reorder or mistype keys. */
typedef void (*s_val_fn)(msgpack_packer *pk);

static void s_key(msgpack_packer *pk, const char *k)
{
    msgpack_pack_str(pk, strlen(k));
    msgpack_pack_str_body(pk, k, strlen(k));
}
static void s_sv(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

/* Writes the nine standard fields, except the one named skip, and with the
 * one named swap written by fn instead. */
static void s_fields(msgpack_packer *pk, const char *skip, const char *swap, s_val_fn fn)
{
    static const char *const keys[] = { "v", "seq", "prev", "id", "ts", "ns", "room", "ev", "data" };
    for (size_t k = 0; k < 9; k++) {
        const char *key = keys[k];
        if (skip && strcmp(skip, key) == 0)
            continue;
        s_key(pk, key);
        if (swap && strcmp(swap, key) == 0) {
            fn(pk);
            continue;
        }
        switch (k) {
        case 0: msgpack_pack_uint8(pk, 1); break;
        case 1: msgpack_pack_uint64(pk, 1000); break;
        case 2: msgpack_pack_uint64(pk, 999); break;
        case 3: msgpack_pack_int64(pk, 5); break;
        case 4: msgpack_pack_int64(pk, 6); break;
        case 5: s_sv(pk, "/"); break;
        case 6: s_sv(pk, "r"); break;
        case 7: s_sv(pk, "e"); break;
        case 8: s_sv(pk, "{}"); break;
        }
    }
}

static int s_decode_script(const char *skip, const char *swap, s_val_fn fn, env_msg_t *d)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, skip ? 8 : 9);
    s_fields(&pk, skip, swap, fn);
    /* decode from a copy that outlives this call: *d points into it */
    static char keep[1024];
    int rc = -2;
    if (sb.size <= sizeof keep) {
        memcpy(keep, sb.data, sb.size);
        rc = env_decode(keep, sb.size, d);
    }
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static void s_w_str(msgpack_packer *pk) { s_sv(pk, "12"); }
static void s_w_int(msgpack_packer *pk) { msgpack_pack_int(pk, 3); }
static void s_w_neg(msgpack_packer *pk) { msgpack_pack_int64(pk, -1); }
static void s_w_big(msgpack_packer *pk) { msgpack_pack_uint64(pk, UINT64_C(9223372036854775808)); }
static void s_w_nil(msgpack_packer *pk) { msgpack_pack_nil(pk); }
static void s_w_bin(msgpack_packer *pk) { msgpack_pack_bin(pk, 2); msgpack_pack_bin_body(pk, "{}", 2); }
static void s_w_dbl(msgpack_packer *pk) { msgpack_pack_double(pk, 1.0); }
static void s_w_v2(msgpack_packer *pk) { msgpack_pack_uint8(pk, 2); }
static void s_w_v0(msgpack_packer *pk) { msgpack_pack_uint8(pk, 0); }
static void s_w_arr(msgpack_packer *pk) { msgpack_pack_array(pk, 1); s_sv(pk, "/"); }
static void s_w_sint(msgpack_packer *pk) { msgpack_pack_int8(pk, 100); }  /* int8 but >= 0 */

TEST(script_baseline)
{
    env_msg_t d;
    CHECK_EQ_INT(s_decode_script(NULL, NULL, NULL, &d), 0);
    CHECK_EQ_INT(d.seq, 1000);
    CHECK_EQ_INT(d.prev, 999);
    CHECK_EQ_INT(d.id, 5);
    CHECK_EQ_INT(d.ts_us, 6);
    CHECK_EQ_MEM(d.room, d.room_len, "r");
    CHECK_EQ_MEM(d.data, d.data_len, "{}");
}

TEST(wrong_types)
{
    env_msg_t d;
    CHECK_EQ_INT(s_decode_script(NULL, "seq", s_w_str, &d), -1);
    CHECK_EQ_INT(s_decode_script(NULL, "seq", s_w_neg, &d), -1);
    CHECK_EQ_INT(s_decode_script(NULL, "seq", s_w_dbl, &d), -1);
    CHECK_EQ_INT(s_decode_script(NULL, "prev", s_w_nil, &d), -1);
    CHECK_EQ_INT(s_decode_script(NULL, "id", s_w_str, &d), -1);
    CHECK_EQ_INT(s_decode_script(NULL, "id", s_w_big, &d), -1);   /* > INT64_MAX */
    CHECK_EQ_INT(s_decode_script(NULL, "ts", s_w_nil, &d), -1);
    CHECK_EQ_INT(s_decode_script(NULL, "ns", s_w_int, &d), -1);
    CHECK_EQ_INT(s_decode_script(NULL, "ns", s_w_arr, &d), -1);
    CHECK_EQ_INT(s_decode_script(NULL, "room", s_w_nil, &d), -1);
    CHECK_EQ_INT(s_decode_script(NULL, "ev", s_w_int, &d), -1);
    CHECK_EQ_INT(s_decode_script(NULL, "data", s_w_bin, &d), -1);
    CHECK_EQ_INT(s_decode_script(NULL, "v", s_w_str, &d), -1);
    CHECK_EQ_INT(s_decode_script(NULL, "v", s_w_v2, &d), -1);    /* wrong version */
    CHECK_EQ_INT(s_decode_script(NULL, "v", s_w_v0, &d), -1);
    /* a signed encoding of a non-negative value is fine for uint fields */
    CHECK_EQ_INT(s_decode_script(NULL, "seq", s_w_sint, &d), 0);
    CHECK_EQ_INT(d.seq, 100);
    CHECK_EQ_INT(s_decode_script(NULL, "id", s_w_neg, &d), 0);
    CHECK_EQ_INT(d.id, -1);
}

TEST(missing_keys)
{
    static const char *const keys[] = { "v", "seq", "prev", "id", "ts", "ns", "room", "ev", "data" };
    for (size_t k = 0; k < 9; k++) {
        env_msg_t d;
        if (s_decode_script(keys[k], NULL, NULL, &d) != -1) {
            fprintf(stderr, "  accepted without %s\n", keys[k]);
            CHECK(0);
        }
    }
}

TEST(not_a_map_and_duplicates)
{
    env_msg_t d;
    CHECK_EQ_INT(env_decode("", 0, &d), -1);
    CHECK_EQ_INT(env_decode("\x90", 1, &d), -1);        /* empty array */
    CHECK_EQ_INT(env_decode("\x80", 1, &d), -1);        /* empty map: keys missing */
    CHECK_EQ_INT(env_decode("\xc1", 1, &d), -1);        /* never-used byte */
    CHECK_EQ_INT(env_decode("\xa1v", 2, &d), -1);       /* a string */
    CHECK_EQ_INT(env_decode(NULL, 0, &d), -1);

    /* the same known key twice */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 10);
    s_fields(&pk, NULL, NULL, NULL);
    s_key(&pk, "room");
    s_sv(&pk, "other");
    int rc = env_decode(sb.data, sb.size, &d);
    msgpack_sbuffer_destroy(&sb);
    CHECK_EQ_INT(rc, -1);

    /* a map that announces more entries than it has */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 10);
    s_fields(&pk, NULL, NULL, NULL);
    rc = env_decode(sb.data, sb.size, &d);
    msgpack_sbuffer_destroy(&sb);
    CHECK_EQ_INT(rc, -1);
}

TEST(unknown_keys_skipped)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 9 + 12);
    /* unknown keys before, between and after the known ones, with values of
     * every type, nested */
    s_key(&pk, "zz_map");
    msgpack_pack_map(&pk, 2);
    s_sv(&pk, "a");
    msgpack_pack_array(&pk, 3);
    msgpack_pack_nil(&pk);
    msgpack_pack_true(&pk);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_int(&pk, -5);
    msgpack_pack_double(&pk, 2.5);
    s_sv(&pk, "b");
    msgpack_pack_bin(&pk, 3);
    msgpack_pack_bin_body(&pk, "\x00\x01\x02", 3);
    s_key(&pk, "zz_float");
    msgpack_pack_float(&pk, 1.5f);
    s_key(&pk, "zz_ext");
    msgpack_pack_ext(&pk, 5, 7);
    msgpack_pack_ext_body(&pk, "abcde", 5);
    s_fields(&pk, NULL, NULL, NULL);
    s_key(&pk, "zz_fixext");
    msgpack_pack_ext(&pk, 4, 1);                /* fixext 4 */
    msgpack_pack_ext_body(&pk, "abcd", 4);
    s_key(&pk, "zz_ext16");
    msgpack_pack_ext(&pk, 300, 2);
    static char blob[70000];
    msgpack_pack_ext_body(&pk, blob, 300);
    s_key(&pk, "zz_str32");
    msgpack_pack_str(&pk, sizeof blob);
    msgpack_pack_str_body(&pk, blob, sizeof blob);
    s_key(&pk, "zz_u64");
    msgpack_pack_uint64(&pk, UINT64_MAX);
    s_key(&pk, "zz_i16");
    msgpack_pack_int16(&pk, -300);
    s_key(&pk, "zz_false");
    msgpack_pack_false(&pk);
    msgpack_pack_int(&pk, 42);                  /* a non-string key */
    s_sv(&pk, "value of an integer key");
    msgpack_pack_array(&pk, 1);                 /* an array as a key */
    msgpack_pack_nil(&pk);
    msgpack_pack_nil(&pk);
    s_key(&pk, "zz_arr16");
    msgpack_pack_array(&pk, 20);
    for (int k = 0; k < 20; k++)
        msgpack_pack_int(&pk, k);

    env_msg_t d;
    int rc = env_decode(sb.data, sb.size, &d);
    int ok = rc == 0 && d.seq == 1000 && d.prev == 999 && d.room_len == 1 && d.room[0] == 'r';
    msgpack_sbuffer_destroy(&sb);
    CHECK(ok);
}

TEST(keys_in_any_order)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 9);
    s_key(&pk, "data"); s_sv(&pk, "[1]");
    s_key(&pk, "ev"); s_sv(&pk, "x");
    s_key(&pk, "room"); s_sv(&pk, "user_1");
    s_key(&pk, "ns"); s_sv(&pk, "/admin");
    s_key(&pk, "ts"); msgpack_pack_int64(&pk, -2);
    s_key(&pk, "id"); msgpack_pack_int64(&pk, 3);
    s_key(&pk, "prev"); msgpack_pack_uint64(&pk, 0);
    s_key(&pk, "seq"); msgpack_pack_uint64(&pk, 1);
    s_key(&pk, "v"); msgpack_pack_uint64(&pk, 1);
    env_msg_t d;
    int rc = env_decode(sb.data, sb.size, &d);
    int ok = rc == 0 && d.ts_us == -2 && d.id == 3 && d.seq == 1 &&
             d.nsp_len == 6 && memcmp(d.nsp, "/admin", 6) == 0;
    msgpack_sbuffer_destroy(&sb);
    CHECK(ok);
}

TEST(hostile_counts_and_nesting)
{
    env_msg_t d;
    /* a map announcing 2^32-1 entries with nothing in it */
    CHECK_EQ_INT(env_decode("\xdf\xff\xff\xff\xff", 5, &d), -1);
    /* an unknown key whose value claims 2^28 array elements, or a 4 GiB str */
    const char a[] = "\x81\xa1z\xdd\x10\x00\x00\x00";
    CHECK_EQ_INT(env_decode(a, sizeof a - 1, &d), -1);
    const char s[] = "\x81\xa1z\xdb\xff\xff\xff\xff" "abc";
    CHECK_EQ_INT(env_decode(s, sizeof s - 1, &d), -1);
    const char e[] = "\x81\xa1z\xc9\xff\xff\xff\xff\x01";
    CHECK_EQ_INT(env_decode(e, sizeof e - 1, &d), -1);
    /* a known string field whose length runs past the end */
    const char r[] = "\x81\xa4room\xd9\x10" "abc";
    CHECK_EQ_INT(env_decode(r, sizeof r - 1, &d), -1);

    /* deep nesting in an unknown value fails cleanly; shallow passes */
    for (int depth = 10; depth <= 100000; depth *= 100) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 10);
        s_fields(&pk, NULL, NULL, NULL);
        s_key(&pk, "deep");
        for (int k = 0; k < depth; k++)
            msgpack_pack_array(&pk, 1);
        msgpack_pack_nil(&pk);
        int rc = env_decode(sb.data, sb.size, &d);
        msgpack_sbuffer_destroy(&sb);
        CHECK_EQ_INT(rc, depth == 10 ? 0 : -1);
    }
}

TEST(random_mutations)
{
    /* Flip bytes of a valid encoding; every result must decode or fail
     * without touching memory outside the buffer (run under ASan). */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    env_msg_t m = s_sample(), d;
    CHECK_EQ_INT(env_encode(&sb, &m), 0);
    size_t n = sb.size;
    char *copy = malloc(n);
    CHECK(copy);
    uint32_t x = 2463534242u;
    int decoded = 0;
    for (int round = 0; round < 20000; round++) {
        memcpy(copy, sb.data, n);
        int flips = 1 + round % 4;
        for (int f = 0; f < flips; f++) {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            copy[x % n] = (char)(x >> 8);
        }
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        size_t len = round % 3 == 0 ? x % (n + 1) : n;
        if (env_decode(copy, len, &d) == 0) {
            decoded++;
            /* whatever decoded must lie inside the input */
            if (!((d.room >= copy && d.room + d.room_len <= copy + len) &&
                  (d.data >= copy && d.data + d.data_len <= copy + len))) {
                free(copy);
                msgpack_sbuffer_destroy(&sb);
                CHECK(0);
            }
        }
    }
    free(copy);
    msgpack_sbuffer_destroy(&sb);
    CHECK(decoded > 0);   /* some flips only change string bytes */
}

TEST(encode_errors_leave_buffer_intact)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    env_msg_t m = s_sample();
    CHECK_EQ_INT(env_encode(&sb, &m), 0);
    size_t one = sb.size;
    m.data = NULL;            /* a length without bytes */
    m.data_len = 5;
    int rc = env_encode(&sb, &m);
    size_t after = sb.size;
    msgpack_sbuffer_destroy(&sb);
    CHECK_EQ_INT(rc, -1);
    CHECK_EQ_INT(after, one);
    CHECK_EQ_INT(env_encode(NULL, &m), -1);
}

TEST(topic)
{
    char t1[64], t2[64];
    int n1 = env_topic(t1, sizeof t1, "/", 1, "user_1", 6);
    CHECK_EQ_INT(n1, 9);
    CHECK(memcmp(t1, "/\0user_1\0", 9) == 0);
    int n2 = env_topic(t2, sizeof t2, "/", 1, "user_12", 7);
    CHECK_EQ_INT(n2, 10);
    CHECK(memcmp(t2, "/\0user_12\0", 10) == 0);
    /* a ZeroMQ prefix subscription to t1 must not match t2 (and vice versa) */
    CHECK(memcmp(t2, t1, (size_t)n1) != 0);
    CHECK(n2 > n1 || memcmp(t1, t2, (size_t)n2) != 0);
    /* the namespace is part of the topic: "/a" + "b" differs from "/" + "ab" */
    n1 = env_topic(t1, sizeof t1, "/a", 2, "b", 1);
    n2 = env_topic(t2, sizeof t2, "/", 1, "ab", 2);
    CHECK_EQ_INT(n1, n2);
    CHECK(memcmp(t1, t2, (size_t)n1) != 0);
    /* an empty room still ends in its terminator */
    CHECK_EQ_INT(env_topic(t1, sizeof t1, "/", 1, "", 0), 3);
    CHECK(memcmp(t1, "/\0\0", 3) == 0);
}

TEST(topic_limits)
{
    char t[16];
    CHECK_EQ_INT(env_topic(t, 9, "/", 1, "user_1", 6), 9);   /* exact fit */
    CHECK_EQ_INT(env_topic(t, 8, "/", 1, "user_1", 6), -1);
    CHECK_EQ_INT(env_topic(t, 0, "/", 1, "", 0), -1);
    /* NUL inside a part would forge a shorter topic */
    CHECK_EQ_INT(env_topic(t, sizeof t, "/", 1, "user_1\0x", 8), -1);
    CHECK_EQ_INT(env_topic(t, sizeof t, "/\0", 2, "r", 1), -1);
    CHECK_EQ_INT(env_topic(t, sizeof t, NULL, 3, "r", 1), -1);
}

TEST(msgpack_check_bounds_declared_counts)
{
    static const uint8_t ok_map[] = { 0x82, 0xa1, 'a', 0x01, 0xa1, 'b', 0x92, 0xc3, 0xc0 };
    static const uint8_t bomb[] = { 0x81, 0xa4, 'm', 's', 'g', 's', 0xdd, 0x10, 0x00, 0x00, 0x00 };
    static const uint8_t map_bomb[] = { 0xdf, 0xff, 0xff, 0xff, 0xff };
    static const uint8_t trailing[] = { 0x90, 0x90 };
    CHECK_EQ_INT(env_msgpack_check(ok_map, sizeof ok_map), 0);
    CHECK_EQ_INT(env_msgpack_check(bomb, sizeof bomb), -1);
    CHECK_EQ_INT(env_msgpack_check(map_bomb, sizeof map_bomb), -1);
    CHECK_EQ_INT(env_msgpack_check(trailing, sizeof trailing), -1);   /* exactly one value */
    CHECK_EQ_INT(env_msgpack_check(ok_map, sizeof ok_map - 1), -1);   /* truncated */
    uint8_t deep[200];
    memset(deep, 0x91, sizeof deep - 1);                              /* [[[[...nil]]]] */
    deep[sizeof deep - 1] = 0xc0;
    CHECK_EQ_INT(env_msgpack_check(deep, sizeof deep), -1);           /* too deep */
    CHECK_EQ_INT(env_msgpack_check(deep + sizeof deep - 10, 10), 0);  /* nine levels are fine */
}

TEST_MAIN(msgpack_check_bounds_declared_counts, round_trip, round_trip_edges, interop_with_msgpack_c, every_truncation_fails,
          script_baseline, wrong_types, missing_keys, not_a_map_and_duplicates,
          unknown_keys_skipped, keys_in_any_order, hostile_counts_and_nesting,
          random_mutations, encode_errors_leave_buffer_intact, topic, topic_limits)
