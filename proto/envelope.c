/*  envelope - the broker -> gateway message (msgpack), and the fan-out topic
 *
 *  Design: encoding uses msgpack-c's packer into a msgpack_sbuffer. Decoding
 *  is a small hand-written reader of the msgpack format instead of
 *  msgpack_unpack_next(): msgpack-c does point strings into the input, but it
 *  allocates an array or map's element table up front from the count in the
 *  header, so five hostile bytes (array32 of 2^28 elements) make it reserve
 *  4 GiB (measured with msgpack-c 4.0: 1 GiB resident under ASan). The reader
 *  allocates nothing, checks the remaining length before every read, limits
 *  nesting when it skips unknown values, and lets string fields point into
 *  the caller's buffer (zero copy). A message is one map; its keys may come in
 *  any order, unknown keys (of any type, with values of any type) are skipped
 *  for forward compatibility, a repeated known key is an error, and nothing
 *  may follow the map.
 */
#include "envelope.h"

#include <limits.h>
#include <string.h>

#define ENV_MAX_SKIP_DEPTH 32   /* nesting allowed inside an unknown value */

/* ---- encoding -------------------------------------------------------- */

static int s_pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    if (n > UINT32_MAX || (!s && n > 0))
        return -1;
    if (msgpack_pack_str(pk, n) != 0)
        return -1;
    return n ? msgpack_pack_str_body(pk, s, n) : 0;
}

static int s_pack_key(msgpack_packer *pk, const char *key)
{
    return s_pack_str(pk, key, strlen(key));
}

/* On failure the sbuffer is cut back to its size on entry, so a caller that
 * batches several messages in one buffer is never left with half of one. */
int env_encode(msgpack_sbuffer *sb, const env_msg_t *m)
{
    if (!sb || !m)
        return -1;
    size_t mark = sb->size;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (msgpack_pack_map(&pk, 9) != 0 ||
        s_pack_key(&pk, "v") != 0    || msgpack_pack_uint32(&pk, ENV_VERSION) != 0 ||
        s_pack_key(&pk, "seq") != 0  || msgpack_pack_uint64(&pk, m->seq) != 0 ||
        s_pack_key(&pk, "prev") != 0 || msgpack_pack_uint64(&pk, m->prev) != 0 ||
        s_pack_key(&pk, "id") != 0   || msgpack_pack_int64(&pk, m->id) != 0 ||
        s_pack_key(&pk, "ts") != 0   || msgpack_pack_int64(&pk, m->ts_us) != 0 ||
        s_pack_key(&pk, "ns") != 0   || s_pack_str(&pk, m->nsp, m->nsp_len) != 0 ||
        s_pack_key(&pk, "room") != 0 || s_pack_str(&pk, m->room, m->room_len) != 0 ||
        s_pack_key(&pk, "ev") != 0   || s_pack_str(&pk, m->event, m->event_len) != 0 ||
        s_pack_key(&pk, "data") != 0 || s_pack_str(&pk, m->data, m->data_len) != 0) {
        sb->size = mark;
        return -1;
    }
    return 0;
}

/* ---- decoding -------------------------------------------------------- */

typedef struct {
    const uint8_t *p;       /* next byte to read */
    const uint8_t *end;     /* one past the last byte */
} s_rd_t;

static int s_have(const s_rd_t *r, uint64_t n)
{
    return (uint64_t)(r->end - r->p) >= n;
}

/* Reads an n-byte big-endian unsigned value (n = 1, 2, 4 or 8). */
static int s_be(s_rd_t *r, int n, uint64_t *out)
{
    if (!s_have(r, (uint64_t)n))
        return -1;
    uint64_t v = 0;
    for (int k = 0; k < n; k++)
        v = v << 8 | r->p[k];
    r->p += n;
    *out = v;
    return 0;
}

static int s_tag(s_rd_t *r, uint8_t *t)
{
    if (!s_have(r, 1))
        return -1;
    *t = *r->p++;
    return 0;
}

/* Reads any msgpack integer. neg says whether it is negative; then sval holds
 * it, else uval does. */
static int s_integer(s_rd_t *r, int *neg, uint64_t *uval, int64_t *sval)
{
    uint8_t t;
    uint64_t v;
    if (s_tag(r, &t) < 0)
        return -1;
    *neg = 0;
    if (t <= 0x7f) {
        *uval = t;
        return 0;
    }
    if (t >= 0xe0) {
        *neg = 1;
        *sval = (int64_t)t - 256;
        return 0;
    }
    switch (t) {
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
        if (s_be(r, 1 << (t - 0xcc), &v) < 0)
            return -1;
        *uval = v;
        return 0;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        int n = 1 << (t - 0xd0);
        if (s_be(r, n, &v) < 0)
            return -1;
        /* sign-extend an n-byte two's complement value */
        int64_t s;
        if (n < 8 && (v >> (8 * n - 1)) & 1)
            s = (int64_t)(v | ~(uint64_t)0 << (8 * n));
        else
            s = (int64_t)v;
        if (s < 0) {
            *neg = 1;
            *sval = s;
        } else {
            *uval = (uint64_t)s;
        }
        return 0;
    }
    default:
        return -1;
    }
}

static int s_uint(s_rd_t *r, uint64_t *out)
{
    int neg;
    uint64_t u = 0;
    int64_t s = 0;
    if (s_integer(r, &neg, &u, &s) < 0 || neg)
        return -1;
    *out = u;
    return 0;
}

static int s_int(s_rd_t *r, int64_t *out)
{
    int neg;
    uint64_t u = 0;
    int64_t s = 0;
    if (s_integer(r, &neg, &u, &s) < 0)
        return -1;
    if (neg) {
        *out = s;
        return 0;
    }
    if (u > INT64_MAX)
        return -1;
    *out = (int64_t)u;
    return 0;
}

/* A str; fails (without consuming a known amount) on any other type. */
static int s_str(s_rd_t *r, const char **s, size_t *n)
{
    uint8_t t;
    uint64_t len;
    if (s_tag(r, &t) < 0)
        return -1;
    if (t >= 0xa0 && t <= 0xbf)
        len = t & 0x1f;
    else if (t == 0xd9 || t == 0xda || t == 0xdb) {
        if (s_be(r, 1 << (t - 0xd9), &len) < 0)
            return -1;
    } else
        return -1;
    if (!s_have(r, len))
        return -1;
    *s = (const char *)r->p;
    *n = (size_t)len;
    r->p += len;
    return 0;
}

static int s_map_header(s_rd_t *r, uint64_t *count)
{
    uint8_t t;
    if (s_tag(r, &t) < 0)
        return -1;
    if (t >= 0x80 && t <= 0x8f) {
        *count = t & 0x0f;
        return 0;
    }
    if (t == 0xde)
        return s_be(r, 2, count);
    if (t == 0xdf)
        return s_be(r, 4, count);
    return -1;
}

static int s_skip_bytes(s_rd_t *r, uint64_t n)
{
    if (!s_have(r, n))
        return -1;
    r->p += n;
    return 0;
}

/* Skips one value of any type. Containers are walked element by element;
 * every element takes at least one byte, so a huge declared count fails as
 * soon as the input runs out: the work is bounded by the input length. */
static int s_skip(s_rd_t *r, int depth)
{
    uint8_t t;
    uint64_t n;
    if (depth > ENV_MAX_SKIP_DEPTH || s_tag(r, &t) < 0)
        return -1;
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
        return 0;                                   /* fixint, nil, bool */
    if (t >= 0xa0 && t <= 0xbf)
        return s_skip_bytes(r, t & 0x1f);           /* fixstr */
    if (t >= 0x90 && t <= 0x9f) {                   /* fixarray */
        n = t & 0x0f;
        goto elements;
    }
    if (t >= 0x80 && t <= 0x8f) {                   /* fixmap */
        n = 2 * (uint64_t)(t & 0x0f);
        goto elements;
    }
    switch (t) {
    case 0xcc: case 0xd0: return s_skip_bytes(r, 1);
    case 0xcd: case 0xd1: return s_skip_bytes(r, 2);
    case 0xce: case 0xd2: case 0xca: return s_skip_bytes(r, 4);
    case 0xcf: case 0xd3: case 0xcb: return s_skip_bytes(r, 8);
    case 0xd4: return s_skip_bytes(r, 2);           /* fixext 1: type + data */
    case 0xd5: return s_skip_bytes(r, 3);
    case 0xd6: return s_skip_bytes(r, 5);
    case 0xd7: return s_skip_bytes(r, 9);
    case 0xd8: return s_skip_bytes(r, 17);
    case 0xd9: case 0xc4:                           /* str8, bin8 */
        return s_be(r, 1, &n) < 0 ? -1 : s_skip_bytes(r, n);
    case 0xda: case 0xc5:
        return s_be(r, 2, &n) < 0 ? -1 : s_skip_bytes(r, n);
    case 0xdb: case 0xc6:
        return s_be(r, 4, &n) < 0 ? -1 : s_skip_bytes(r, n);
    case 0xc7:                                      /* ext8: len, type, data */
        return s_be(r, 1, &n) < 0 ? -1 : s_skip_bytes(r, n + 1);
    case 0xc8:
        return s_be(r, 2, &n) < 0 ? -1 : s_skip_bytes(r, n + 1);
    case 0xc9:
        return s_be(r, 4, &n) < 0 ? -1 : s_skip_bytes(r, n + 1);
    case 0xdc:
        if (s_be(r, 2, &n) < 0)
            return -1;
        goto elements;
    case 0xdd:
        if (s_be(r, 4, &n) < 0)
            return -1;
        goto elements;
    case 0xde:
        if (s_be(r, 2, &n) < 0)
            return -1;
        n *= 2;
        goto elements;
    case 0xdf:
        if (s_be(r, 4, &n) < 0)
            return -1;
        n *= 2;
        goto elements;
    default:
        return -1;                                  /* 0xc1: never used */
    }
elements:
    for (uint64_t k = 0; k < n; k++)
        if (s_skip(r, depth + 1) < 0)
            return -1;
    return 0;
}

int env_msgpack_check(const void *buf, size_t len)
{
    s_rd_t r = { buf, (const uint8_t *)buf + len };
    if (s_skip(&r, 0) < 0 || r.p != r.end)
        return -1;
    return 0;
}

enum {
    K_V = 1 << 0, K_SEQ = 1 << 1, K_PREV = 1 << 2, K_ID = 1 << 3, K_TS = 1 << 4,
    K_NS = 1 << 5, K_ROOM = 1 << 6, K_EV = 1 << 7, K_DATA = 1 << 8,
    K_ALL = (1 << 9) - 1,
};

static int s_key_is(const char *k, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(k, lit, n) == 0;
}

int env_decode(const void *buf, size_t len, env_msg_t *m)
{
    if (!buf || !m)
        return -1;
    s_rd_t r = { (const uint8_t *)buf, (const uint8_t *)buf + len };
    env_msg_t out;
    memset(&out, 0, sizeof out);
    uint64_t count, version = 0;
    unsigned seen = 0;

    if (s_map_header(&r, &count) < 0)
        return -1;
    for (uint64_t k = 0; k < count; k++) {
        const char *key;
        size_t klen;
        const uint8_t *at = r.p;
        if (s_str(&r, &key, &klen) < 0) {
            /* a key of another type: skip it and its value */
            r.p = at;
            if (s_skip(&r, 0) < 0 || s_skip(&r, 0) < 0)
                return -1;
            continue;
        }
        unsigned bit;
        int rc;
        if (s_key_is(key, klen, "v"))
            bit = K_V, rc = s_uint(&r, &version);
        else if (s_key_is(key, klen, "seq"))
            bit = K_SEQ, rc = s_uint(&r, &out.seq);
        else if (s_key_is(key, klen, "prev"))
            bit = K_PREV, rc = s_uint(&r, &out.prev);
        else if (s_key_is(key, klen, "id"))
            bit = K_ID, rc = s_int(&r, &out.id);
        else if (s_key_is(key, klen, "ts"))
            bit = K_TS, rc = s_int(&r, &out.ts_us);
        else if (s_key_is(key, klen, "ns"))
            bit = K_NS, rc = s_str(&r, &out.nsp, &out.nsp_len);
        else if (s_key_is(key, klen, "room"))
            bit = K_ROOM, rc = s_str(&r, &out.room, &out.room_len);
        else if (s_key_is(key, klen, "ev"))
            bit = K_EV, rc = s_str(&r, &out.event, &out.event_len);
        else if (s_key_is(key, klen, "data"))
            bit = K_DATA, rc = s_str(&r, &out.data, &out.data_len);
        else
            bit = 0, rc = s_skip(&r, 0);
        if (rc < 0 || (seen & bit))
            return -1;
        seen |= bit;
    }
    if (r.p != r.end || seen != K_ALL || version != ENV_VERSION)
        return -1;
    *m = out;
    return 0;
}

/* ---- topic ----------------------------------------------------------- */

int env_topic(char *out, size_t cap, const char *nsp, size_t nsp_len,
              const char *room, size_t room_len)
{
    if (!out || (!nsp && nsp_len) || (!room && room_len))
        return -1;
    /* a NUL inside either part would let one topic prefix another */
    if ((nsp_len && memchr(nsp, '\0', nsp_len)) || (room_len && memchr(room, '\0', room_len)))
        return -1;
    if (nsp_len > INT_MAX / 2 || room_len > INT_MAX / 2 || nsp_len + room_len + 2 > cap)
        return -1;
    size_t o = 0;
    if (nsp_len)
        memcpy(out, nsp, nsp_len);
    o += nsp_len;
    out[o++] = '\0';
    if (room_len)
        memcpy(out + o, room, room_len);
    o += room_len;
    out[o++] = '\0';
    return (int)o;
}
