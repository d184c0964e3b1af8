/*  fuzz_envelope - libFuzzer target for the broker -> gateway msgpack envelope
 *
 *  Design: the input is one ZeroMQ envelope frame. env_decode runs on an
 *  exact-size heap copy (ASan sees any read past the end). On success: the
 *  string fields point inside the input; msgpack-c agrees that the input is
 *  one whole msgpack object (a map) with nothing after it (differential);
 *  env_encode of the decoded message decodes back to equal fields, and
 *  encoding that again gives the same bytes (round trip); every strict prefix
 *  of the input is refused (a truncated envelope is never taken). On refusal
 *  the output struct is untouched. The topic builder runs over the decoded
 *  namespace and room. Any violation abort()s.
 */
#include "envelope.h"

#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_in(const uint8_t *buf, size_t len, const char *p, size_t n)
{
    if (n && ((const uint8_t *)p < buf || (const uint8_t *)p + n > buf + len))
        abort();
}

static int s_same_str(const char *a, size_t al, const char *b, size_t bl)
{
    return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

static int s_equal(const env_msg_t *a, const env_msg_t *b)
{
    return a->seq == b->seq && a->prev == b->prev && a->id == b->id && a->ts_us == b->ts_us
           && s_same_str(a->nsp, a->nsp_len, b->nsp, b->nsp_len)
           && s_same_str(a->room, a->room_len, b->room, b->room_len)
           && s_same_str(a->event, a->event_len, b->event, b->event_len)
           && s_same_str(a->data, a->data_len, b->data, b->data_len);
}

static int s_decode_copy(const uint8_t *src, size_t n, env_msg_t *m, uint8_t **keep)
{
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        abort();
    if (n)
        memcpy(b, src, n);
    env_msg_t before;
    memset(&before, 0xA5, sizeof before);
    *m = before;
    int rc = env_decode(b, n, m);
    if (rc == 0) {
        s_in(b, n, m->nsp, m->nsp_len);
        s_in(b, n, m->room, m->room_len);
        s_in(b, n, m->event, m->event_len);
        s_in(b, n, m->data, m->data_len);
    } else if (rc != -1 || memcmp(&before, m, sizeof before) != 0) {
        abort();
    }
    if (keep && rc == 0)
        *keep = b;
    else
        free(b);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    env_msg_t m;
    uint8_t *buf = NULL;
    if (s_decode_copy(data, size, &m, &buf) != 0)
        return 0;

    /* msgpack-c reads the same bytes as exactly one map */
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, (const char *)buf, size, &off) != MSGPACK_UNPACK_SUCCESS
        || off != size || u.data.type != MSGPACK_OBJECT_MAP)
        abort();
    msgpack_unpacked_destroy(&u);

    /* round trip */
    msgpack_sbuffer sb, sb2;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_init(&sb2);
    if (env_encode(&sb, &m) != 0)
        abort();
    env_msg_t m2;
    uint8_t *buf2 = NULL;
    if (s_decode_copy((const uint8_t *)sb.data, sb.size, &m2, &buf2) != 0 || !s_equal(&m, &m2))
        abort();
    if (env_encode(&sb2, &m2) != 0 || sb2.size != sb.size || memcmp(sb.data, sb2.data, sb.size))
        abort();

    /* a truncated envelope is refused */
    if (size <= 1024) {
        for (size_t n = 0; n < size; n++) {
            env_msg_t t;
            if (s_decode_copy(data, n, &t, NULL) != -1)
                abort();
        }
    }

    char topic[256];
    int t = env_topic(topic, sizeof topic, m.nsp, m.nsp_len, m.room, m.room_len);
    if (t >= 0) {
        if ((size_t)t != m.nsp_len + m.room_len + 2 || (size_t)t > sizeof topic)
            abort();
        if (memchr(m.nsp, 0, m.nsp_len) || memchr(m.room, 0, m.room_len))
            abort();
    } else if (m.nsp_len + m.room_len + 2 <= sizeof topic && !memchr(m.nsp, 0, m.nsp_len)
               && !memchr(m.room, 0, m.room_len)) {
        abort();
    }

    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&sb2);
    free(buf2);
    free(buf);
    return 0;
}
