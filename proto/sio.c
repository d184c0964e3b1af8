/*  sio - Socket.IO v5 packets, no I/O
 *
 *  Design: the header (type, attachment count, namespace, ack id) is parsed
 *  by hand, byte by byte, against the packet's length; the JSON payload is
 *  never re-serialized. jansson parses it once only to validate its shape, and
 *  the packet keeps pointing at the client's own bytes, so an echo or a relay
 *  is byte-exact with what the client sent (key order, number spelling,
 *  escapes), which is what JSON.stringify on the other side expects. The
 *  parse must span the whole remainder of the packet: jansson's EOF check
 *  stays on, so `2["a"]x` is rejected (trailing whitespace is allowed, as in
 *  JSON.parse). Nothing here keeps state between calls; only
 *  sio_event_split allocates (the decoded event name, owned by the caller).
 */
#include "sio.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIO_MAX_ACK_ID ((uint64_t)1 << 53)   /* Number.MAX_SAFE_INTEGER + 1 */

/* jansson flags for validation: any top-level value (the type checks are
 * ours), "\u0000" inside strings (valid JSON, JSON.parse takes it), and
 * integers as reals so that a number beyond 64 bits is not an error (JSON.parse
 * takes it as a double). */

static int s_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int s_is_binary(int type)
{
    return type == SIO_BINARY_EVENT || type == SIO_BINARY_ACK;
}

/* Checks the parsed payload's shape for the packet type. */
static int s_payload_ok(int type, const json_t *j)
{
    switch (type) {
    case SIO_CONNECT:
    case SIO_CONNECT_ERROR:
        return json_is_object(j);
    case SIO_EVENT:
    case SIO_BINARY_EVENT:
        return json_is_array(j) && json_array_size(j) > 0 &&
               json_is_string(json_array_get(j, 0));
    case SIO_ACK:
    case SIO_BINARY_ACK:
        return json_is_array(j);
    default:
        return 0;   /* DISCONNECT carries no payload */
    }
}

/* Header grammar (Socket.IO v5, default parser):
 *   <type>[<attachments>-][<nsp>[,]][<ack id>][<JSON>]
 * Beyond the header contract: the namespace may hold no control character
 * (it becomes part of a fan-out topic, where NUL is the terminator), an ack
 * id is accepted only on EVENT/ACK types and is required on ACK types (an
 * unsolicited ack has nothing to answer). */
int sio_decode(const char *s, size_t len, sio_packet_t *out)
{
    return sio_decode_json(s, len, out, NULL);
}

int sio_decode_json(const char *s, size_t len, sio_packet_t *out, json_t **json_out)
{
    if (json_out)
        *json_out = NULL;
    if (!s || len == 0 || s[0] < '0' || s[0] > '6')
        return -1;
    int type = s[0] - '0';
    size_t i = 1;

    unsigned att = 0;
    if (s_is_binary(type)) {
        size_t start = i;
        /* at most 3 digits: SIO_MAX_ATTACHMENTS is 64, and no overflow */
        while (i < len && s_is_digit(s[i]) && i - start < 3)
            att = att * 10 + (unsigned)(s[i++] - '0');
        if (i == start || i >= len || s[i] != '-' || att > SIO_MAX_ATTACHMENTS)
            return -1;
        i++;
    }

    const char *nsp = "/";
    size_t nsp_len = 1;
    if (i < len && s[i] == '/') {
        size_t start = i;
        while (i < len && s[i] != ',') {
            if ((unsigned char)s[i] < 0x20)
                return -1;
            i++;
        }
        nsp = s + start;
        nsp_len = i - start;
        if (i < len)
            i++;    /* the comma; "0/custom" without it is valid */
    }

    int64_t ack_id = -1;
    if (i < len && s_is_digit(s[i])) {
        uint64_t v = 0;
        while (i < len && s_is_digit(s[i])) {
            v = v * 10 + (uint64_t)(s[i++] - '0');   /* v <= 2^53 here: no wrap */
            if (v > SIO_MAX_ACK_ID)
                return -1;
        }
        ack_id = (int64_t)v;
    }

    const char *data = i < len ? s + i : NULL;
    size_t data_len = i < len ? len - i : 0;

    int is_event = type == SIO_EVENT || type == SIO_BINARY_EVENT;
    int is_ack = type == SIO_ACK || type == SIO_BINARY_ACK;
    if (ack_id >= 0 && !is_event && !is_ack)
        return -1;
    if (is_ack && ack_id < 0)
        return -1;
    if ((is_event || is_ack) && !data)
        return -1;
    if (type == SIO_DISCONNECT && data)
        return -1;

    if (data) {
        json_t *j = json_loadb(data, data_len, SIO_JSON_FLAGS, NULL);
        int ok = j && s_payload_ok(type, j);
        if (!ok || !json_out)
            json_decref(j);
        if (!ok)
            return -1;
        if (json_out)
            *json_out = j;
    }

    out->type = type;
    out->attachments = att;
    out->nsp = nsp;
    out->nsp_len = nsp_len;
    out->ack_id = ack_id;
    out->data = data;
    out->data_len = data_len;
    return 0;
}

static int s_is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int s_hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        unsigned d;
        if (c >= '0' && c <= '9')      d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = (unsigned)(c - 'A' + 10);
        else return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static size_t s_put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes the JSON string body s[0..n) (between the quotes, escapes intact)
 * into out, which has room for n bytes: no escape grows when decoded.
 * Returns the decoded length, or -1 on a bad escape, a lone surrogate, a NUL
 * or a raw control character. */
static long s_unescape(const char *s, size_t n, char *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20)
            return -1;
        if (c != '\\') {
            out[o++] = (char)c;
            i++;
            continue;
        }
        if (i + 1 >= n)
            return -1;
        char e = s[i + 1];
        i += 2;
        switch (e) {
        case '"':  out[o++] = '"';  break;
        case '\\': out[o++] = '\\'; break;
        case '/':  out[o++] = '/';  break;
        case 'b':  out[o++] = '\b'; break;
        case 'f':  out[o++] = '\f'; break;
        case 'n':  out[o++] = '\n'; break;
        case 'r':  out[o++] = '\r'; break;
        case 't':  out[o++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (n - i < 4 || s_hex4(s + i, &cp) < 0)
                return -1;
            i += 4;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return -1;              /* low surrogate first */
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (n - i < 6 || s[i] != '\\' || s[i + 1] != 'u' ||
                    s_hex4(s + i + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
                    return -1;
                i += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (cp == 0)
                return -1;              /* the name is returned as a C string */
            o += s_put_utf8(out + o, cp);
            break;
        }
        default:
            return -1;
        }
    }
    return (long)o;
}

int sio_event_split(const char *data, size_t len, char **name_out,
                    const char **rest, size_t *rest_len)
{
    size_t i = 0;
    while (i < len && s_is_ws(data[i]))
        i++;
    if (i >= len || data[i++] != '[')
        return -1;
    while (i < len && s_is_ws(data[i]))
        i++;
    if (i >= len || data[i++] != '"')
        return -1;

    /* find the closing quote: a backslash always escapes the next byte */
    size_t start = i;
    while (i < len && data[i] != '"')
        i += data[i] == '\\' ? 2 : 1;
    if (i >= len)
        return -1;
    size_t raw_len = i - start;
    i++;

    while (i < len && s_is_ws(data[i]))
        i++;
    if (i >= len || (data[i] != ',' && data[i] != ']'))
        return -1;

    char *name = malloc(raw_len + 1);
    if (!name)
        return -1;
    long n = s_unescape(data + start, raw_len, name);
    if (n < 0) {
        free(name);
        return -1;
    }
    name[n] = '\0';
    *name_out = name;
    *rest = data + i;
    *rest_len = len - i;
    return 0;
}

/* Appends src[0..n) at out[*o], keeping room for a NUL. */
static int s_put(char *out, size_t cap, size_t *o, const char *src, size_t n)
{
    if (cap - *o <= n)
        return -1;
    memcpy(out + *o, src, n);
    *o += n;
    return 0;
}

/* Like the other encoders here, the result is NUL-terminated: cap must hold
 * the header and a NUL. A namespace must start with '/' and hold no ','
 * (the default parser has no escape for it). */
int sio_encode_header(char *out, size_t cap, int type, const char *nsp, size_t nsp_len,
                      unsigned attachments, int64_t ack_id)
{
    if (!out || cap == 0 || type < SIO_CONNECT || type > SIO_BINARY_ACK)
        return -1;
    size_t o = 0;
    char num[32];
    char t = (char)('0' + type);
    if (s_put(out, cap, &o, &t, 1) < 0)
        return -1;
    if (s_is_binary(type)) {
        int n = snprintf(num, sizeof num, "%u-", attachments);
        if (n < 0 || s_put(out, cap, &o, num, (size_t)n) < 0)
            return -1;
    }
    if (nsp && nsp_len > 0 && !(nsp_len == 1 && nsp[0] == '/')) {
        if (nsp[0] != '/' || memchr(nsp, ',', nsp_len))
            return -1;
        if (s_put(out, cap, &o, nsp, nsp_len) < 0 || s_put(out, cap, &o, ",", 1) < 0)
            return -1;
    }
    if (ack_id >= 0) {
        int n = snprintf(num, sizeof num, "%lld", (long long)ack_id);
        if (n < 0 || s_put(out, cap, &o, num, (size_t)n) < 0)
            return -1;
    }
    out[o] = '\0';
    return (int)o;
}

/* JSON.stringify's escapes: the short forms for \b \f \n \r \t, \u00xx
 * (lowercase hex) for the other control characters, everything else,
 * including DEL and UTF-8, as is. NUL-terminated; cap must hold the NUL. */
int sio_json_string(char *out, size_t cap, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (!out || cap == 0 || (!s && n > 0))
        return -1;
    size_t o = 0;
    if (s_put(out, cap, &o, "\"", 1) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        size_t elen = 2;
        esc[0] = '\\';
        switch (c) {
        case '"':  esc[1] = '"';  break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b';  break;
        case '\f': esc[1] = 'f';  break;
        case '\n': esc[1] = 'n';  break;
        case '\r': esc[1] = 'r';  break;
        case '\t': esc[1] = 't';  break;
        default:
            if (c < 0x20) {
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 0xf];
                elen = 6;
            } else {
                esc[0] = (char)c;
                elen = 1;
            }
        }
        if (s_put(out, cap, &o, esc, elen) < 0)
            return -1;
    }
    if (s_put(out, cap, &o, "\"", 1) < 0)
        return -1;
    out[o] = '\0';
    if (o > (size_t)0x7fffffff)
        return -1;
    return (int)o;
}

typedef struct {
    uint64_t seen;  /* bit k set: num k was found */
    int count;
} s_ph_t;

/* An object whose "_placeholder" is exactly true is a placeholder, as in the
 * reference parser (socket.io-parser replaces it with the attachment whatever
 * other keys it has); its "num" must be an integer in 0..63 not seen before.
 * Other values are searched at any depth (jansson caps nesting at 2048). */
static int s_walk(const json_t *j, s_ph_t *ph)
{
    if (json_is_object(j)) {
        if (json_is_true(json_object_get(j, "_placeholder"))) {
            const json_t *num = json_object_get(j, "num");
            if (!json_is_number(num))
                return -1;
            double d = json_number_value(num);
            if (!(d >= 0 && d < SIO_MAX_ATTACHMENTS) || d != (double)(int)d)
                return -1;
            uint64_t bit = (uint64_t)1 << (int)d;
            if (ph->seen & bit)
                return -1;
            ph->seen |= bit;
            ph->count++;
            return 0;
        }
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)j, key, v)
            if (s_walk(v, ph) < 0)
                return -1;
        return 0;
    }
    if (json_is_array(j)) {
        size_t k;
        json_t *v;
        json_array_foreach(j, k, v)
            if (s_walk(v, ph) < 0)
                return -1;
    }
    return 0;
}

int sio_count_placeholders(const char *data, size_t len)
{
    if (!data)
        return -1;
    json_t *j = json_loadb(data, len, SIO_JSON_FLAGS, NULL);
    if (!j)
        return -1;
    s_ph_t ph = { 0, 0 };
    int rc = s_walk(j, &ph);
    json_decref(j);
    if (rc < 0)
        return -1;
    /* nums 0..count-1 each once: count distinct bits, all below count */
    if (ph.count < 64 && (ph.seen >> ph.count) != 0)
        return -1;
    return ph.count;
}
