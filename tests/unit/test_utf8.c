/*  test_utf8 - incremental UTF-8 validation
 *
 *  Valid text of every length class, each class of invalid input (overlongs,
 *  surrogates, > U+10FFFF, stray continuation bytes, truncated sequences),
 *  every split point across two calls, the Autobahn 6.x style cases, and an
 *  exhaustive comparison with a plain reference decoder over every 1-, 2- and
 *  3-byte string.
 */
#include "utf8.h"
#include "test.h"

#include <stdint.h>

/* Reference: 1 if s[0..n) is valid UTF-8, decoding each character the slow,
 * obvious way (value, minimal length, no surrogates, <= U+10FFFF). */
static int ref_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

static size_t encode(uint32_t cp, uint8_t *o)
{
    if (cp < 0x80) { o[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) { o[0] = (uint8_t)(0xC0 | (cp >> 6)); o[1] = (uint8_t)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12)); o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (uint8_t)(0xF0 | (cp >> 18)); o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Validity when fed in one call, and when split in two at every offset. */
static int valid_every_split(const uint8_t *s, size_t n)
{
    int whole = utf8_valid(s, n);
    for (size_t k = 0; k <= n; k++) {
        uint32_t st = utf8_feed(UTF8_ACCEPT, s, k);
        st = utf8_feed(st, s + k, n - k);
        if ((st == UTF8_ACCEPT) != whole)
            return -1;
    }
    /* one byte per call */
    uint32_t st = UTF8_ACCEPT;
    for (size_t k = 0; k < n; k++)
        st = utf8_feed(st, s + k, 1);
    if ((st == UTF8_ACCEPT) != whole)
        return -1;
    return whole;
}

#define V(lit) valid_every_split((const uint8_t *)(lit), sizeof(lit) - 1)

TEST(empty_and_ascii)
{
    CHECK_EQ_INT(utf8_valid(NULL, 0), 1);
    CHECK_EQ_INT(utf8_feed(UTF8_ACCEPT, NULL, 0), UTF8_ACCEPT);
    CHECK_EQ_INT(V("hello, world"), 1);
    CHECK_EQ_INT(V("\x00\x7f"), 1);     /* NUL and DEL are valid characters */
}

TEST(valid_multibyte)
{
    CHECK_EQ_INT(V("\xc2\x80"), 1);                 /* U+0080, first 2-byte */
    CHECK_EQ_INT(V("\xdf\xbf"), 1);                 /* U+07FF, last 2-byte */
    CHECK_EQ_INT(V("\xe0\xa0\x80"), 1);             /* U+0800 */
    CHECK_EQ_INT(V("\xed\x9f\xbf"), 1);             /* U+D7FF, just below surrogates */
    CHECK_EQ_INT(V("\xee\x80\x80"), 1);             /* U+E000, just above */
    CHECK_EQ_INT(V("\xef\xbf\xbf"), 1);             /* U+FFFF (noncharacter, still valid) */
    CHECK_EQ_INT(V("\xef\xbf\xbe"), 1);             /* U+FFFE */
    CHECK_EQ_INT(V("\xf0\x90\x80\x80"), 1);         /* U+10000 */
    CHECK_EQ_INT(V("\xf4\x8f\xbf\xbf"), 1);         /* U+10FFFF, the last */
    CHECK_EQ_INT(V("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), 1);  /* κόσμε */
    CHECK_EQ_INT(V("Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!"), 1);
    CHECK_EQ_INT(V("\xf0\x9f\x98\x80 emoji"), 1);
}

TEST(overlongs_rejected)
{
    CHECK_EQ_INT(V("\xc0\xaf"), 0);                 /* '/' in 2 bytes */
    CHECK_EQ_INT(V("\xc1\xbf"), 0);
    CHECK_EQ_INT(V("\xc0\x80"), 0);                 /* modified-UTF-8 NUL */
    CHECK_EQ_INT(V("\xe0\x80\xaf"), 0);
    CHECK_EQ_INT(V("\xe0\x9f\xbf"), 0);             /* U+07FF in 3 bytes */
    CHECK_EQ_INT(V("\xf0\x80\x80\xaf"), 0);
    CHECK_EQ_INT(V("\xf0\x8f\xbf\xbf"), 0);         /* U+FFFF in 4 bytes */
    CHECK_EQ_INT(V("\xf8\x80\x80\x80\xaf"), 0);     /* 5-byte forms */
    CHECK_EQ_INT(V("\xfc\x80\x80\x80\x80\xaf"), 0); /* 6-byte forms */
}

TEST(surrogates_rejected)
{
    CHECK_EQ_INT(V("\xed\xa0\x80"), 0);             /* U+D800 */
    CHECK_EQ_INT(V("\xed\xad\xbf"), 0);             /* U+DB7F */
    CHECK_EQ_INT(V("\xed\xb0\x80"), 0);             /* U+DC00 */
    CHECK_EQ_INT(V("\xed\xbf\xbf"), 0);             /* U+DFFF */
    CHECK_EQ_INT(V("\xed\xa0\x80\xed\xb0\x80"), 0); /* a CESU-8 pair */
}

TEST(above_max_rejected)
{
    CHECK_EQ_INT(V("\xf4\x90\x80\x80"), 0);         /* U+110000 */
    CHECK_EQ_INT(V("\xf5\x80\x80\x80"), 0);
    CHECK_EQ_INT(V("\xf7\xbf\xbf\xbf"), 0);
    CHECK_EQ_INT(V("\xfe"), 0);
    CHECK_EQ_INT(V("\xff"), 0);
    CHECK_EQ_INT(V("\xfe\xfe\xff\xff"), 0);
}

TEST(stray_continuation_and_truncation)
{
    CHECK_EQ_INT(V("\x80"), 0);
    CHECK_EQ_INT(V("\xbf"), 0);
    CHECK_EQ_INT(V("a\x80" "b"), 0);
    CHECK_EQ_INT(V("\xc2\x80\x80"), 0);             /* one continuation too many */
    CHECK_EQ_INT(V("\xc2"), 0);                     /* truncated at the end */
    CHECK_EQ_INT(V("\xe2\x82"), 0);
    CHECK_EQ_INT(V("\xf0\x9f\x98"), 0);
    CHECK_EQ_INT(V("\xc2 "), 0);                    /* lonely start then space */
    CHECK_EQ_INT(V("\xe0\x80"), 0);
    CHECK_EQ_INT(V("\xe2\x82\xac\xc2"), 0);         /* valid then truncated */
}

TEST(incomplete_state_is_neither_accept_nor_reject)
{
    const uint8_t euro[] = { 0xe2, 0x82, 0xac };
    uint32_t st = utf8_feed(UTF8_ACCEPT, euro, 1);
    CHECK(st != UTF8_ACCEPT && st != UTF8_REJECT);
    st = utf8_feed(st, euro + 1, 1);
    CHECK(st != UTF8_ACCEPT && st != UTF8_REJECT);
    st = utf8_feed(st, euro + 2, 1);
    CHECK_EQ_INT(st, UTF8_ACCEPT);
}

TEST(reject_is_sticky)
{
    const uint8_t bad[] = { 0xff };
    const uint8_t good[] = { 'a', 0xc3, 0xa9 };
    uint32_t st = utf8_feed(UTF8_ACCEPT, bad, 1);
    CHECK_EQ_INT(st, UTF8_REJECT);
    CHECK_EQ_INT(utf8_feed(st, good, sizeof good), UTF8_REJECT);
    CHECK_EQ_INT(utf8_feed(st, NULL, 0), UTF8_REJECT);
}

TEST(fails_fast)
{
    /* Autobahn 6.4.x: the invalid byte is detected before the message ends,
     * so a validator fed only the bytes up to it already rejects. */
    const uint8_t s[] = { 0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5,
                          0xf4, 0x90, 0x80, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64 };
    CHECK(utf8_feed(UTF8_ACCEPT, s, 12) != UTF8_REJECT);   /* up to F4 */
    CHECK_EQ_INT(utf8_feed(UTF8_ACCEPT, s, 13), UTF8_REJECT); /* F4 90 */
    /* a surrogate is rejected at its second byte */
    const uint8_t sur[] = { 'a', 0xed, 0xa0 };
    CHECK_EQ_INT(utf8_feed(UTF8_ACCEPT, sur, 3), UTF8_REJECT);
}

/* Autobahn 6.x style table: (bytes, valid). */
TEST(autobahn_6_cases)
{
    static const struct { const char *s; size_t n; int ok; } t[] = {
#define C(lit, ok) { lit, sizeof(lit) - 1, ok }
        C("", 1),                                               /* 6.1 */
        C("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64", 0), /* 6.3 */
        C("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 1),   /* 6.5.1 */
        C("\x00", 1), C("\xc2\x80", 1), C("\xe0\xa0\x80", 1), C("\xf0\x90\x80\x80", 1), /* 6.7 first */
        C("\xf8\x88\x80\x80\x80", 0), C("\xfc\x84\x80\x80\x80\x80", 0),                 /* 6.8 */
        C("\x7f", 1), C("\xdf\xbf", 1), C("\xef\xbf\xbf", 1), C("\xf4\x8f\xbf\xbf", 1), /* 6.9 last */
        C("\xf7\xbf\xbf\xbf", 0), C("\xfb\xbf\xbf\xbf\xbf", 0), C("\xfd\xbf\xbf\xbf\xbf\xbf", 0), /* 6.10 */
        C("\xed\x9f\xbf", 1), C("\xee\x80\x80", 1), C("\xef\xbf\xbd", 1),               /* 6.11 */
        C("\xf4\x90\x80\x80", 0),
        C("\x80", 0), C("\xbf", 0), C("\x80\xbf", 0), C("\x80\xbf\x80\xbf", 0),         /* 6.12 */
        C("\xc0\x20\xc1\x20\xc2\x20", 0), C("\xe0\x20\xef\x20", 0), C("\xf0\x20\xf7\x20", 0), /* 6.13 */
        C("\xc0", 0), C("\xe0\x80", 0), C("\xf0\x80\x80", 0), C("\xdf", 0), C("\xef\xbf", 0),   /* 6.14 */
        C("\xf7\xbf\xbf", 0),
        C("\xc0\xe0\x80\xf0\x80\x80\xf8\x80\x80\x80\xfc\x80\x80\x80\x80\xdf\xef\xbf\xf7\xbf\xbf\xfb\xbf\xbf\xbf\xfd\xbf\xbf\xbf\xbf", 0), /* 6.15 */
        C("\xfe", 0), C("\xff", 0), C("\xfe\xfe\xff\xff", 0),                           /* 6.16 */
        C("\xc0\xaf", 0), C("\xe0\x80\xaf", 0), C("\xf0\x80\x80\xaf", 0),              /* 6.17 */
        C("\xc1\xbf", 0), C("\xe0\x9f\xbf", 0), C("\xf0\x8f\xbf\xbf", 0),              /* 6.18 */
        C("\xc0\x80", 0), C("\xe0\x80\x80", 0), C("\xf0\x80\x80\x80", 0),              /* 6.19 */
        C("\xed\xa0\x80", 0), C("\xed\xad\xbf", 0), C("\xed\xae\x80", 0), C("\xed\xaf\xbf", 0), /* 6.20 */
        C("\xed\xb0\x80", 0), C("\xed\xbe\x80", 0), C("\xed\xbf\xbf", 0),
        C("\xed\xa0\x80\xed\xb0\x80", 0), C("\xed\xaf\xbf\xed\xbf\xbf", 0),            /* 6.21 */
        C("\xef\xbf\xbe", 1), C("\xef\xbf\xbf", 1),                                     /* 6.22 */
        C("\xf4\x8f\xbf\xbe", 1), C("\xf0\x9f\xbf\xbf", 1),
        C("\xef\xbf\xbd", 1),                                                          /* 6.23 */
#undef C
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int got = valid_every_split((const uint8_t *)t[i].s, t[i].n);
        if (got != t[i].ok)
            fprintf(stderr, "  case %zu: got %d, want %d\n", i, got, t[i].ok);
        CHECK_EQ_INT(got, t[i].ok);
        CHECK_EQ_INT(ref_valid((const uint8_t *)t[i].s, t[i].n), t[i].ok);
    }
}

TEST(every_code_point)
{
    uint8_t b[4];
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        size_t n = encode(cp, b);
        int want = !(cp >= 0xD800 && cp <= 0xDFFF);
        if (utf8_valid(b, n) != want) {
            fprintf(stderr, "  U+%04X\n", (unsigned)cp);
            CHECK(0);
        }
    }
}

/* Every string of 1, 2 and 3 bytes agrees with the reference decoder, both
 * whole and with the last byte in a second call; 4-byte strings are covered
 * for every lead and second byte with boundary values for the rest. */
TEST(exhaustive_against_reference)
{
    uint8_t b[4];
    for (uint32_t v = 0; v < 0x1000000u; v++) {
        b[0] = (uint8_t)(v >> 16); b[1] = (uint8_t)(v >> 8); b[2] = (uint8_t)v;
        if (utf8_valid(b, 3) != ref_valid(b, 3)) {
            fprintf(stderr, "  %02x %02x %02x\n", b[0], b[1], b[2]);
            CHECK(0);
        }
        uint32_t st = utf8_feed(UTF8_ACCEPT, b, 2);
        if ((utf8_feed(st, b + 2, 1) == UTF8_ACCEPT) != ref_valid(b, 3))
            CHECK(0);
        if (v < 0x10000 && utf8_valid(b + 1, 2) != ref_valid(b + 1, 2))
            CHECK(0);
        if (v < 0x100 && utf8_valid(b + 2, 1) != ref_valid(b + 2, 1))
            CHECK(0);
    }
    static const uint8_t edge[] = { 0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff };
    for (unsigned lead = 0xf0; lead <= 0xff; lead++)
        for (unsigned c1 = 0; c1 < 256; c1++)
            for (size_t i = 0; i < sizeof edge; i++)
                for (size_t j = 0; j < sizeof edge; j++) {
                    b[0] = (uint8_t)lead; b[1] = (uint8_t)c1; b[2] = edge[i]; b[3] = edge[j];
                    if (utf8_valid(b, 4) != ref_valid(b, 4)) {
                        fprintf(stderr, "  %02x %02x %02x %02x\n", b[0], b[1], b[2], b[3]);
                        CHECK(0);
                    }
                }
}

TEST_MAIN(empty_and_ascii, valid_multibyte, overlongs_rejected, surrogates_rejected,
          above_max_rejected, stray_continuation_and_truncation,
          incomplete_state_is_neither_accept_nor_reject, reject_is_sticky, fails_fast,
          autobahn_6_cases, every_code_point, exhaustive_against_reference)
