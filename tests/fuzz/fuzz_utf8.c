/*  fuzz_utf8 - libFuzzer target for the incremental UTF-8 validator
 *
 *  Design: byte 0 of the input seeds the cut points; the rest is fed to
 *  utf8_feed whole, in pieces cut at data-chosen points, and one byte at a
 *  time (each piece in its own exact-size heap block). The three final states
 *  must agree, UTF8_ACCEPT exactly when utf8_valid says 1, and both must match
 *  a plain reference decoder written from RFC 3629 (differential). Once
 *  rejected, the state stays rejected. Any disagreement abort()s.
 */
#include "utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* RFC 3629 by the table in its section 4. 1 valid, 0 not. */
static int s_ref_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c < 0x80) { i++; continue; }
        else if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c == 0xE0) { need = 2; lo = 0xA0; }
        else if (c >= 0xE1 && c <= 0xEC) need = 2;
        else if (c == 0xED) { need = 2; hi = 0x9F; }
        else if (c >= 0xEE && c <= 0xEF) need = 2;
        else if (c == 0xF0) { need = 3; lo = 0x90; }
        else if (c >= 0xF1 && c <= 0xF3) need = 3;
        else if (c == 0xF4) { need = 3; hi = 0x8F; }
        else return 0;
        if (need >= n - i)
            return 0;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= need; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return 0;
        i += need + 1;
    }
    return 1;
}

static uint32_t s_feed_piece(uint32_t st, const uint8_t *p, size_t n)
{
    uint8_t *own = malloc(n ? n : 1);
    if (!own)
        abort();
    if (n)
        memcpy(own, p, n);
    uint32_t out = utf8_feed(st, own, n);
    free(own);
    if (st == UTF8_REJECT && out != UTF8_REJECT)
        abort();
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned seed = data[0];
    data++;
    size--;

    uint32_t whole = s_feed_piece(UTF8_ACCEPT, data, size);

    uint32_t pieces = UTF8_ACCEPT;
    size_t off = 0;
    while (off < size) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % 7;
        if (n > size - off)
            n = size - off;
        pieces = s_feed_piece(pieces, data + off, n);
        off += n;
    }

    uint32_t bytes = UTF8_ACCEPT;
    for (size_t i = 0; i < size; i++)
        bytes = s_feed_piece(bytes, data + i, 1);

    if (whole != pieces || whole != bytes)
        abort();
    int valid = utf8_valid(data, size);
    if (valid != (whole == UTF8_ACCEPT))
        abort();
    if (valid != s_ref_valid(data, size))
        abort();
    return 0;
}
