/*  b64 - base64 (RFC 4648 §4, padded) and base64url (§5, unpadded)
 *
 *  Design: table-driven, no allocation; the caller supplies the output buffer
 *  sized with *_encoded_len() (encode) or n*3/4+3 (decode). Decoding is strict
 *  because its inputs come from peers (JWTs, WebSocket keys): any character
 *  outside the alphabet, misplaced or excess padding, an impossible length
 *  (n % 4 == 1 unpadded) or non-zero unused bits in the last symbol makes the
 *  whole input invalid. Nothing is ever skipped (no whitespace tolerance).
 */
#include "b64.h"

#include <stdint.h>

static const char s_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char s_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t b64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

size_t b64url_encoded_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

/* Encode with alphabet abc; pad with '=' when pad is set. */
static size_t s_encode(const unsigned char *s, size_t n, char *out,
                       const char *abc, int pad)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = abc[v >> 6 & 63];
        out[o++] = abc[v & 63];
    }
    size_t rest = n - i;
    if (rest) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (rest == 2)
            v |= (uint32_t)s[i + 1] << 8;
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        if (rest == 2)
            out[o++] = abc[v >> 6 & 63];
        else if (pad)
            out[o++] = '=';
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

size_t b64_encode(const void *src, size_t n, char *out)
{
    return s_encode(src, n, out, s_std, 1);
}

size_t b64url_encode(const void *src, size_t n, char *out)
{
    return s_encode(src, n, out, s_url, 0);
}

/* Value of c in the alphabet (url selects -_ over +/), or -1. */
static int s_val(unsigned char c, int url)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (url) {
        if (c == '-') return 62;
        if (c == '_') return 63;
    } else {
        if (c == '+') return 62;
        if (c == '/') return 63;
    }
    return -1;
}

/* Decode n symbols (no padding in src[0..n)) into out; -1 when invalid. */
static long s_decode(const char *src, size_t n, unsigned char *out, int url)
{
    if (n % 4 == 1)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = s_val((unsigned char)src[i], url);
        if (v < 0)
            return -1;
        acc = (acc << 6 | (uint32_t)v) & 0xFFFFFF;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    /* Leftover bits (2 or 4) must be zero: one canonical encoding per input. */
    if (bits && (acc & ((1u << bits) - 1)))
        return -1;
    return (long)o;
}

/* Strip a correct trailing padding from src[0..*n); -1 when padding is bad. */
static int s_unpad(const char *src, size_t *n)
{
    if (*n % 4 != 0)
        return -1;
    size_t len = *n;
    if (len && src[len - 1] == '=') {
        len--;
        if (src[len - 1] == '=')
            len--;
    }
    /* After stripping, the remainder must be 2 or 3 symbols (or whole quads). */
    if (len % 4 == 1)
        return -1;
    *n = len;
    return 0;
}

long b64_decode(const char *src, size_t n, void *out)
{
    if (s_unpad(src, &n) < 0)
        return -1;
    return s_decode(src, n, out, 0);
}

long b64url_decode(const char *src, size_t n, void *out)
{
    /* Padding is optional; if present it must be correct. */
    if (n && src[n - 1] == '=') {
        if (s_unpad(src, &n) < 0)
            return -1;
    }
    return s_decode(src, n, out, 1);
}
