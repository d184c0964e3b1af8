/*  fuzz_ws - libFuzzer target for the RFC 6455 frame parser
 *
 *  Design: input byte 0 picks max_message (small, so the 1009 path and the
 *  reassembly buffer's growth and cap are reached), bytes 1-2 a split point;
 *  the rest is the byte stream a client sends. For require_mask 1 and 0 the
 *  stream is fed three ways: whole, in two pieces cut at the split point, and
 *  one byte at a time, each piece in its own exact-size heap block so ASan
 *  catches a read past what was handed over. The events (opcode, close code,
 *  payload bytes) and the final result (ok or the WS_ERR_* code) are recorded
 *  as a byte string; the three must be identical, or the harness abort()s.
 *  Other invariants: the return value is never more than was offered, a
 *  message never exceeds max_message, the reassembly buffer never exceeds it,
 *  a text message and a close reason are valid UTF-8, and a parser makes
 *  progress (bounded calls per byte).
 */
#include "ws.h"
#include "utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct { uint8_t *b; size_t len, cap; } s_log_t;

static void s_put(s_log_t *l, const void *p, size_t n)
{
    if (l->len + n > l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        while (cap < l->len + n)
            cap *= 2;
        uint8_t *nb = realloc(l->b, cap);
        if (!nb)
            abort();
        l->b = nb;
        l->cap = cap;
    }
    if (n)
        memcpy(l->b + l->len, p, n);
    l->len += n;
}

/* Feeds one piece; records events into l. Returns 0, or the error code. */
static int s_feed(ws_parser_t *p, const uint8_t *piece, size_t n, s_log_t *l)
{
    uint8_t *own = malloc(n ? n : 1);
    if (!own)
        abort();
    if (n)
        memcpy(own, piece, n);
    size_t off = 0, calls = 0;
    int err = 0;
    for (;;) {
        ws_event_t ev;
        memset(&ev, 0x5A, sizeof ev);
        ssize_t rc = ws_parser_feed(p, own + off, n - off, &ev);
        if (rc < 0) {
            err = (int)rc;
            if (err != WS_ERR_PROTO && err != WS_ERR_UTF8 && err != WS_ERR_TOO_BIG
                && err != WS_ERR_NOMEM)
                abort();
            break;
        }
        if ((size_t)rc > n - off)
            abort();
        off += (size_t)rc;
        if (ev.opcode != 0) {
            uint8_t h[1 + 2 + 8];
            uint64_t len = ev.len;
            h[0] = (uint8_t)ev.opcode;
            h[1] = (uint8_t)(ev.close_code >> 8);
            h[2] = (uint8_t)ev.close_code;
            memcpy(h + 3, &len, 8);
            if (ev.opcode == WS_OP_TEXT || ev.opcode == WS_OP_BINARY) {
                if (ev.len > p->max_message)
                    abort();
            } else if (ev.opcode == WS_OP_PING || ev.opcode == WS_OP_PONG
                       || ev.opcode == WS_OP_CLOSE) {
                if (ev.len > 125)
                    abort();
            } else {
                abort();
            }
            if ((ev.opcode == WS_OP_TEXT || ev.opcode == WS_OP_CLOSE)
                && !utf8_valid(ev.data, ev.len))
                abort();
            if (ev.opcode != WS_OP_CLOSE)
                h[1] = h[2] = 0;    /* close_code is unspecified for others */
            s_put(l, h, sizeof h);
            s_put(l, ev.data, ev.len);
        }
        if (p->buf_cap > p->max_message)
            abort();
        if (rc == 0 && ev.opcode == 0)
            break;
        if (++calls > 2 * n + 16)
            abort();        /* no progress: the caller would spin */
    }
    free(own);
    return err;
}

static void s_end(s_log_t *l, int err)
{
    int32_t e = err;
    uint8_t tag = 0xEE;
    s_put(l, &tag, 1);
    s_put(l, &e, sizeof e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t maxes[] = { 0, 1, 7, 125, 126, 300, 4096, 65536 };
    if (size < 3)
        return 0;
    size_t max_message = maxes[data[0] & 7];
    size_t split = ((size_t)data[1] << 8 | data[2]);
    data += 3;
    size -= 3;
    if (size > 0)
        split %= size + 1;
    else
        split = 0;

    for (int mask = 0; mask <= 1; mask++) {
        s_log_t whole = { 0 }, two = { 0 }, one = { 0 };
        ws_parser_t p;
        int err;

        ws_parser_init(&p, max_message, mask);
        err = s_feed(&p, data, size, &whole);
        s_end(&whole, err);
        ws_parser_free(&p);

        ws_parser_init(&p, max_message, mask);
        err = s_feed(&p, data, split, &two);
        if (err == 0)
            err = s_feed(&p, data + split, size - split, &two);
        s_end(&two, err);
        ws_parser_free(&p);

        ws_parser_init(&p, max_message, mask);
        err = 0;
        for (size_t i = 0; i < size && err == 0; i++)
            err = s_feed(&p, data + i, 1, &one);
        s_end(&one, err);
        /* a dead parser keeps returning its error */
        if (err != 0) {
            ws_event_t ev;
            uint8_t b = 0x81;
            if (ws_parser_feed(&p, &b, 1, &ev) != err)
                abort();
        }
        ws_parser_free(&p);

        if (whole.len != two.len || memcmp(whole.b, two.b, whole.len) != 0)
            abort();
        if (whole.len != one.len || memcmp(whole.b, one.b, whole.len) != 0)
            abort();
        free(whole.b);
        free(two.b);
        free(one.b);
    }
    return 0;
}
