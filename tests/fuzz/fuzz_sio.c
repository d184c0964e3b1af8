/*  fuzz_sio - libFuzzer target for Socket.IO v5 packets
 *
 *  Design: the input is one Engine.IO message's data. sio_decode runs on it;
 *  on success the header is re-encoded with sio_encode_header, the JSON
 *  appended, and the result must decode to the same fields (round trip). For
 *  EVENT types the JSON goes through sio_event_split and is compared with
 *  jansson's reading of the same array (differential: same name, and "[0"
 *  + rest parses to an array of the same size; a name with U+0000 is refused
 *  by the split, as sio.h says, while sio_decode accepts it). sio_event_split and
 *  sio_count_placeholders also run on the raw input, which a caller could hand
 *  them unvalidated. sio_json_string escapes the input and, when it was valid
 *  UTF-8, jansson must read the literal back to the same bytes. Every call
 *  gets its own exact-size heap copy so ASan sees any read past the end.
 */
#include "sio.h"
#include "utf8.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_JSON_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL)

/* 1 if jansson reads the array's first element as a string with a NUL. */
static int s_name_has_nul(const char *d, size_t len)
{
    json_t *a = json_loadb(d, len, S_JSON_FLAGS, NULL);
    json_t *first = json_array_get(a, 0);
    int r = json_is_string(first)
            && memchr(json_string_value(first), '\0', json_string_length(first)) != NULL;
    json_decref(a);
    return r;
}

static void s_split_check(const char *d, size_t len, int validated)
{
    char *name = NULL;
    const char *rest;
    size_t rest_len;
    if (sio_event_split(d, len, &name, &rest, &rest_len) != 0) {
        /* a valid EVENT array always splits, unless its name holds a NUL
         * (sio.h: the name "may contain no NUL"; it would end a topic) */
        if (validated && !s_name_has_nul(d, len))
            abort();
        return;
    }
    if (rest < d || rest + rest_len > d + len || rest_len == 0)
        abort();
    if (rest[0] != ',' && rest[0] != ']')
        abort();
    if (validated) {
        json_error_t err;
        json_t *a = json_loadb(d, len, S_JSON_FLAGS, &err);
        if (!a || !json_is_array(a) || json_array_size(a) == 0)
            abort();
        json_t *first = json_array_get(a, 0);
        if (!json_is_string(first))
            abort();
        const char *js = json_string_value(first);
        size_t jl = json_string_length(first);
        if (!memchr(js, '\0', jl) && (strlen(name) != jl || memcmp(name, js, jl) != 0))
            abort();
        /* the rest is the array after its first element */
        char *tail = malloc(rest_len + 2);
        if (!tail)
            abort();
        tail[0] = '[';
        tail[1] = '0';
        memcpy(tail + 2, rest, rest_len);
        json_t *b = json_loadb(tail, rest_len + 2, S_JSON_FLAGS, &err);
        if (!b || !json_is_array(b) || json_array_size(b) != json_array_size(a))
            abort();
        json_decref(b);
        json_decref(a);
        free(tail);
    }
    free(name);
}

static void s_roundtrip(const sio_packet_t *p)
{
    char hdr[256];
    int h = sio_encode_header(hdr, sizeof hdr, p->type, p->nsp, p->nsp_len,
                              p->attachments, p->ack_id);
    if (h < 0) {
        /* refused only for a namespace that does not fit our buffer */
        if (p->nsp_len + 64 < sizeof hdr)
            abort();
        return;
    }
    if ((size_t)h >= sizeof hdr || hdr[h] != '\0')
        abort();
    size_t n = (size_t)h + p->data_len;
    char *pkt = malloc(n ? n : 1);
    if (!pkt)
        abort();
    memcpy(pkt, hdr, (size_t)h);
    if (p->data_len)
        memcpy(pkt + h, p->data, p->data_len);
    sio_packet_t q;
    if (sio_decode(pkt, n, &q) != 0)
        abort();
    if (q.type != p->type || q.attachments != p->attachments || q.ack_id != p->ack_id
        || q.nsp_len != p->nsp_len || memcmp(q.nsp, p->nsp, p->nsp_len) != 0
        || q.data_len != p->data_len
        || (p->data_len && memcmp(q.data, p->data, p->data_len) != 0))
        abort();
    free(pkt);
}

static void s_json_string(const char *s, size_t n)
{
    size_t cap = 6 * n + 3;
    char *out = malloc(cap);
    if (!out)
        abort();
    int w = sio_json_string(out, cap, s, n);
    if (w < 0 || (size_t)w >= cap || out[w] != '\0')
        abort();
    /* too small a buffer is refused, never overrun */
    if (w > 0) {
        char *tight = malloc((size_t)w);
        if (!tight)
            abort();
        if (sio_json_string(tight, (size_t)w, s, n) != -1)
            abort();
        free(tight);
    }
    if (utf8_valid((const uint8_t *)s, n)) {
        json_error_t err;
        json_t *j = json_loadb(out, (size_t)w, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        if (!j || !json_is_string(j) || json_string_length(j) != n
            || memcmp(json_string_value(j), s, n) != 0)
            abort();
        json_decref(j);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    char *s = malloc(size ? size : 1);
    if (!s)
        return 0;
    memcpy(s, data, size);

    sio_packet_t p;
    memset(&p, 0xA5, sizeof p);
    if (sio_decode(s, size, &p) == 0) {
        if (p.type < SIO_CONNECT || p.type > SIO_BINARY_ACK)
            abort();
        if (p.attachments > SIO_MAX_ATTACHMENTS)
            abort();
        if (p.ack_id < -1 || p.ack_id > ((int64_t)1 << 53))
            abort();
        if (p.data_len && (p.data < s || p.data + p.data_len > s + size))
            abort();
        if (p.nsp_len == 0 || p.nsp[0] != '/')
            abort();
        s_roundtrip(&p);
        if (p.data_len) {
            if (p.type == SIO_EVENT || p.type == SIO_BINARY_EVENT)
                s_split_check(p.data, p.data_len, 1);
            int c = sio_count_placeholders(p.data, p.data_len);
            if (c < -1 || c > SIO_MAX_ATTACHMENTS)
                abort();
        }
    }
    s_split_check(s, size, 0);
    int c = sio_count_placeholders(s, size);
    if (c < -1 || c > SIO_MAX_ATTACHMENTS)
        abort();
    s_json_string(s, size);
    free(s);
    return 0;
}
