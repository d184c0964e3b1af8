/*  test_ws - WebSocket framing (RFC 6455)
 *
 *  Scripted byte streams are fed whole, one byte at a time and split in two
 *  at every offset, and must give the same events (or the same error) every
 *  way. Covers every length encoding, fragmentation with control frames in
 *  between, each protocol error with its close code, UTF-8 checks across
 *  fragments, the message size limit, the encoders and the handshake key.
 */
#include "ws.h"
#include "test.h"

#include <stdint.h>

static const uint8_t MASK[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* ---- a byte-stream builder ---- */

typedef struct { uint8_t *b; size_t n, cap; } stream_t;

static void st_put(stream_t *s, const void *p, size_t n)
{
    if (s->n + n > s->cap) {
        s->cap = (s->n + n) * 2 + 64;
        s->b = realloc(s->b, s->cap);
        if (!s->b)
            abort();
    }
    if (n)
        memcpy(s->b + s->n, p, n);
    s->n += n;
}

/* A masked client frame. */
static void st_frame(stream_t *s, int fin, int op, const void *payload, size_t len)
{
    uint8_t *tmp = malloc(WS_MAX_HEADER + len);
    if (!tmp)
        abort();
    size_t n = ws_build_frame_masked(tmp, fin, op, MASK, payload, len);
    st_put(s, tmp, n);
    free(tmp);
}

static void st_text(stream_t *s, int fin, int op, const char *str)
{
    st_frame(s, fin, op, str, strlen(str));
}

/* ---- feeding and recording ---- */

#define MAX_EV 32

typedef struct {
    int opcode, close_code;
    size_t len;
    uint8_t *data;
} rec_t;

typedef struct {
    int nev;
    rec_t ev[MAX_EV];
    int err;            /* 0 or the WS_ERR_* code */
    int stalled;        /* the parser consumed nothing and reported nothing */
    size_t consumed;    /* bytes consumed before the error or the end */
} run_t;

static void run_free(run_t *r)
{
    for (int i = 0; i < r->nev; i++)
        free(r->ev[i].data);
    memset(r, 0, sizeof *r);
}

/* Feeds s[a..b) following the header's calling loop. Returns 0, or -1 once
 * an error (or a stall) has been recorded. */
static int feed_piece(ws_parser_t *p, const uint8_t *s, size_t a, size_t b, run_t *r)
{
    size_t off = a;
    for (;;) {
        ws_event_t ev;
        ssize_t rc = ws_parser_feed(p, s + off, b - off, &ev);
        if (rc < 0) {
            r->err = (int)rc;
            return -1;
        }
        if ((size_t)rc > b - off) {
            r->stalled = 1;
            return -1;
        }
        off += (size_t)rc;
        r->consumed += (size_t)rc;
        if (ev.opcode) {
            if (r->nev == MAX_EV)
                abort();
            rec_t *e = &r->ev[r->nev++];
            e->opcode = ev.opcode;
            e->close_code = ev.close_code;
            e->len = ev.len;
            e->data = malloc(ev.len + 1);
            if (!e->data || (ev.len && !ev.data))
                abort();
            if (ev.len)
                memcpy(e->data, ev.data, ev.len);
            continue;
        }
        if (off == b)
            return 0;
        if (rc == 0) {
            r->stalled = 1;
            return -1;
        }
    }
}

/* Feeds the whole stream in pieces of `chunk` bytes (0 = all at once), or
 * (split != 0) in two pieces cut at split-1. */
static void run_stream(const uint8_t *s, size_t n, size_t max, int require_mask,
                       size_t chunk, size_t split, run_t *r)
{
    ws_parser_t p;
    memset(r, 0, sizeof *r);
    ws_parser_init(&p, max, require_mask);
    if (split) {
        if (feed_piece(&p, s, 0, split - 1, r) == 0)
            feed_piece(&p, s, split - 1, n, r);
    } else {
        size_t step = chunk ? chunk : (n ? n : 1);
        for (size_t a = 0; a < n || a == 0; a += step) {
            size_t b = a + step < n ? a + step : n;
            if (feed_piece(&p, s, a, b, r) < 0)
                break;
            if (b == n)
                break;
        }
    }
    ws_parser_free(&p);
}

static int same_run(const run_t *x, const run_t *y)
{
    if (x->err != y->err || x->nev != y->nev || x->stalled || y->stalled)
        return 0;
    for (int i = 0; i < x->nev; i++) {
        if (x->ev[i].opcode != y->ev[i].opcode || x->ev[i].close_code != y->ev[i].close_code ||
            x->ev[i].len != y->ev[i].len || memcmp(x->ev[i].data, y->ev[i].data, x->ev[i].len))
            return 0;
    }
    return 1;
}

/* Runs the stream whole, then byte by byte, then cut at every offset (for
 * streams up to 2000 bytes), and checks all runs agree. The whole run is
 * left in *r. Returns 1 if they agree. */
static int run_all_ways(const uint8_t *s, size_t n, size_t max, int require_mask, run_t *r)
{
    run_t o;
    run_stream(s, n, max, require_mask, 0, 0, r);
    if (r->stalled)
        return 0;
    run_stream(s, n, max, require_mask, 1, 0, &o);
    int ok = same_run(r, &o);
    run_free(&o);
    if (!ok) {
        fprintf(stderr, "  byte-at-a-time run differs\n");
        return 0;
    }
    for (size_t k = 1; n <= 2000 && k <= n + 1; k++) {
        run_stream(s, n, max, require_mask, 0, k, &o);
        ok = same_run(r, &o);
        run_free(&o);
        if (!ok) {
            fprintf(stderr, "  split at %zu differs\n", k - 1);
            return 0;
        }
    }
    for (size_t c = 2; c <= 7; c++) {
        run_stream(s, n, max, require_mask, c, 0, &o);
        ok = same_run(r, &o);
        run_free(&o);
        if (!ok) {
            fprintf(stderr, "  chunks of %zu differ\n", c);
            return 0;
        }
    }
    return 1;
}

#define EV_IS(r, i, op, lit) do { CHECK((r).nev > (i)); CHECK_EQ_INT((r).ev[i].opcode, op); \
    CHECK_EQ_MEM((r).ev[i].data, (r).ev[i].len, lit); } while (0)

/* Expects the stream to fail with err (every way of feeding it). */
#define EXPECT_ERR(bytes, n, max, want) do { run_t r_; \
    int same_ = run_all_ways(bytes, n, max, 1, &r_); int e_ = r_.err; run_free(&r_); \
    CHECK(same_); CHECK_EQ_INT(e_, want); } while (0)

/* Expects the literal bytes given last to fail with err. */
#define EXPECT_RAW(max, want, ...) do { static const uint8_t raw_[] = { __VA_ARGS__ }; \
    EXPECT_ERR(raw_, sizeof raw_, max, want); } while (0)

/* ---- tests ---- */

TEST(rfc_examples)
{
    run_t r;
    /* §5.7: a single-frame masked text message "Hello" */
    const uint8_t hello[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    CHECK(run_all_ways(hello, sizeof hello, 1024, 1, &r));
    CHECK_EQ_INT(r.err, 0);
    CHECK_EQ_INT(r.nev, 1);
    EV_IS(r, 0, WS_OP_TEXT, "Hello");
    run_free(&r);

    /* the unmasked one: a protocol error for a server, fine for a client */
    const uint8_t plain[] = { 0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
    EXPECT_ERR(plain, sizeof plain, 1024, WS_ERR_PROTO);
    CHECK(run_all_ways(plain, sizeof plain, 1024, 0, &r));
    CHECK_EQ_INT(r.nev, 1);
    EV_IS(r, 0, WS_OP_TEXT, "Hello");
    run_free(&r);

    /* fragmented unmasked "Hel" + "lo", client side */
    const uint8_t frag[] = { 0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f };
    CHECK(run_all_ways(frag, sizeof frag, 1024, 0, &r));
    CHECK_EQ_INT(r.err, 0);
    CHECK_EQ_INT(r.nev, 1);
    EV_IS(r, 0, WS_OP_TEXT, "Hello");
    run_free(&r);

    /* masked pong "Hello" */
    const uint8_t pong[] = { 0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    CHECK(run_all_ways(pong, sizeof pong, 1024, 1, &r));
    CHECK_EQ_INT(r.nev, 1);
    EV_IS(r, 0, WS_OP_PONG, "Hello");
    run_free(&r);
}

TEST(script_every_split)
{
    stream_t s = { 0 };
    uint8_t bin[300];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (uint8_t)(i * 7);
    st_text(&s, 1, WS_OP_TEXT, "first");
    st_frame(&s, 1, WS_OP_BINARY, bin, sizeof bin);            /* 16-bit length */
    st_text(&s, 1, WS_OP_PING, "are you there");
    st_text(&s, 0, WS_OP_TEXT, "fr\xc3");                      /* é split across frames */
    st_text(&s, 1, WS_OP_PING, "");
    st_text(&s, 0, WS_OP_CONT, "\xa9g");
    st_text(&s, 1, WS_OP_PONG, "pong");
    st_text(&s, 1, WS_OP_CONT, "ment");
    st_text(&s, 1, WS_OP_TEXT, "");
    uint8_t close[125];
    size_t cn = ws_build_close_payload(close, 1000, "bye");
    st_frame(&s, 1, WS_OP_CLOSE, close, cn);

    run_t r;
    int same = run_all_ways(s.b, s.n, 1 << 20, 1, &r);
    free(s.b);
    CHECK(same);
    CHECK_EQ_INT(r.err, 0);
    CHECK_EQ_INT(r.nev, 8);
    EV_IS(r, 0, WS_OP_TEXT, "first");
    CHECK_EQ_INT(r.ev[1].opcode, WS_OP_BINARY);
    CHECK_EQ_INT(r.ev[1].len, sizeof bin);
    CHECK(memcmp(r.ev[1].data, bin, sizeof bin) == 0);
    EV_IS(r, 2, WS_OP_PING, "are you there");
    EV_IS(r, 3, WS_OP_PING, "");
    EV_IS(r, 4, WS_OP_PONG, "pong");
    EV_IS(r, 5, WS_OP_TEXT, "fr\xc3\xa9gment");
    EV_IS(r, 6, WS_OP_TEXT, "");
    EV_IS(r, 7, WS_OP_CLOSE, "bye");
    CHECK_EQ_INT(r.ev[7].close_code, 1000);
    run_free(&r);
}

TEST(close_event)
{
    stream_t s = { 0 };
    uint8_t close[125];
    size_t cn = ws_build_close_payload(close, 1001, "going \xe2\x82\xac");
    st_frame(&s, 1, WS_OP_CLOSE, close, cn);
    st_frame(&s, 1, WS_OP_CLOSE, NULL, 0);
    run_t r;
    int same = run_all_ways(s.b, s.n, 64, 1, &r);
    free(s.b);
    CHECK(same);
    CHECK_EQ_INT(r.nev, 2);
    CHECK_EQ_INT(r.ev[0].opcode, WS_OP_CLOSE);
    CHECK_EQ_INT(r.ev[0].close_code, 1001);
    CHECK_EQ_MEM(r.ev[0].data, r.ev[0].len, "going \xe2\x82\xac");
    CHECK_EQ_INT(r.ev[1].opcode, WS_OP_CLOSE);
    CHECK_EQ_INT(r.ev[1].close_code, WS_CLOSE_NO_STATUS);
    CHECK_EQ_INT(r.ev[1].len, 0);
    run_free(&r);
}

TEST(length_encodings)
{
    static const size_t lens[] = { 0, 1, 125, 126, 127, 65535, 65536, 70001 };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t n = lens[i];
        uint8_t *pl = malloc(n + 1);
        CHECK(pl);
        for (size_t k = 0; k < n; k++)
            pl[k] = (uint8_t)(k ^ (k >> 8));
        stream_t s = { 0 };
        st_frame(&s, 1, WS_OP_BINARY, pl, n);
        size_t want_hdr = n < 126 ? 6 : n <= 65535 ? 8 : 14;
        int hdr_ok = s.n == want_hdr + n;
        run_t r;
        int same = run_all_ways(s.b, s.n, 1 << 20, 1, &r);
        int ok = same && r.err == 0 && r.nev == 1 && r.ev[0].opcode == WS_OP_BINARY &&
                 r.ev[0].len == n && memcmp(r.ev[0].data, pl, n) == 0;
        run_free(&r);
        free(s.b);
        free(pl);
        if (!ok || !hdr_ok)
            fprintf(stderr, "  length %zu\n", n);
        CHECK(hdr_ok);
        CHECK(ok);
    }
}

TEST(non_minimal_lengths_accepted)
{
    /* "Hello" with a 16-bit and a 64-bit length field (RFC allows these) */
    const uint8_t h16[] = { 0x81, 0xFE, 0x00, 0x05, 0x37, 0xfa, 0x21, 0x3d,
                            0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    const uint8_t h64[] = { 0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0, 5, 0x37, 0xfa, 0x21, 0x3d,
                            0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    run_t r;
    CHECK(run_all_ways(h16, sizeof h16, 64, 1, &r));
    CHECK_EQ_INT(r.nev, 1);
    EV_IS(r, 0, WS_OP_TEXT, "Hello");
    run_free(&r);
    CHECK(run_all_ways(h64, sizeof h64, 64, 1, &r));
    CHECK_EQ_INT(r.nev, 1);
    EV_IS(r, 0, WS_OP_TEXT, "Hello");
    run_free(&r);
    /* a ping of 5 bytes in a 16-bit field is still a small control frame */
    const uint8_t p16[] = { 0x89, 0xFE, 0x00, 0x05, 0x37, 0xfa, 0x21, 0x3d,
                            0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    CHECK(run_all_ways(p16, sizeof p16, 64, 1, &r));
    CHECK_EQ_INT(r.nev, 1);
    EV_IS(r, 0, WS_OP_PING, "Hello");
    run_free(&r);
}

TEST(length_msb_set_is_proto)
{
    EXPECT_RAW(SIZE_MAX, WS_ERR_PROTO, 0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4);
    EXPECT_RAW(SIZE_MAX, WS_ERR_PROTO, 0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4);
}

TEST(fragmentation_with_interleaved_controls)
{
    stream_t s = { 0 };
    st_text(&s, 0, WS_OP_BINARY, "ab");
    st_text(&s, 1, WS_OP_PING, "p1");
    st_text(&s, 0, WS_OP_CONT, "");
    st_text(&s, 0, WS_OP_CONT, "cd");
    st_text(&s, 1, WS_OP_PONG, "p2");
    st_text(&s, 1, WS_OP_PING, "p3");
    st_text(&s, 1, WS_OP_CONT, "ef");
    st_text(&s, 1, WS_OP_BINARY, "next");
    run_t r;
    int same = run_all_ways(s.b, s.n, 1024, 1, &r);
    free(s.b);
    CHECK(same);
    CHECK_EQ_INT(r.err, 0);
    CHECK_EQ_INT(r.nev, 5);
    EV_IS(r, 0, WS_OP_PING, "p1");
    EV_IS(r, 1, WS_OP_PONG, "p2");
    EV_IS(r, 2, WS_OP_PING, "p3");
    EV_IS(r, 3, WS_OP_BINARY, "abcdef");
    EV_IS(r, 4, WS_OP_BINARY, "next");
    run_free(&r);
}

TEST(reserved_bits_and_opcodes)
{
    static const uint8_t b0s[] = { 0xC1, 0xA1, 0x91, 0xF1,                 /* RSV1/2/3/all */
                                   0x83, 0x84, 0x85, 0x86, 0x87,          /* data 3-7 */
                                   0x8B, 0x8C, 0x8D, 0x8E, 0x8F };        /* control B-F */
    for (size_t i = 0; i < sizeof b0s; i++) {
        uint8_t f[] = { b0s[i], 0x80, 1, 2, 3, 4 };
        EXPECT_ERR(f, sizeof f, 64, WS_ERR_PROTO);
        /* detected from the first two bytes, before mask or payload */
        ws_parser_t p;
        ws_event_t ev;
        ws_parser_init(&p, 64, 1);
        CHECK_EQ_INT(ws_parser_feed(&p, f, 2, &ev), WS_ERR_PROTO);
        ws_parser_free(&p);
    }
}

TEST(unmasked_client_frame_is_proto)
{
    EXPECT_RAW(64, WS_ERR_PROTO, 0x82, 0x00);
    EXPECT_RAW(64, WS_ERR_PROTO, 0x89, 0x00);
    EXPECT_RAW(64, WS_ERR_PROTO, 0x88, 0x02, 0x03, 0xe8);
}

TEST(control_frame_rules)
{
    /* fragmented ping */
    EXPECT_RAW(64, WS_ERR_PROTO, 0x09, 0x80, 1, 2, 3, 4);
    EXPECT_RAW(64, WS_ERR_PROTO, 0x08, 0x80, 1, 2, 3, 4);
    /* ping of 126 bytes (7-bit field says 126) */
    EXPECT_RAW(64, WS_ERR_PROTO, 0x89, 0xFE, 0x00, 0x7E, 1, 2, 3, 4);
    /* ping declaring 126 through a non-minimal 64-bit field */
    EXPECT_RAW(64, WS_ERR_PROTO, 0x89, 0xFF, 0, 0, 0, 0, 0, 0, 0, 126, 1, 2, 3, 4);
    /* a ping of exactly 125 bytes is fine */
    uint8_t big[125];
    memset(big, 'x', sizeof big);
    stream_t s = { 0 };
    st_frame(&s, 1, WS_OP_PING, big, sizeof big);
    run_t r;
    int same = run_all_ways(s.b, s.n, 16, 1, &r);   /* max_message does not apply */
    free(s.b);
    CHECK(same);
    CHECK_EQ_INT(r.err, 0);
    CHECK_EQ_INT(r.nev, 1);
    CHECK_EQ_INT(r.ev[0].len, 125);
    run_free(&r);
}

TEST(sequencing_errors)
{
    stream_t s = { 0 };
    st_text(&s, 1, WS_OP_CONT, "orphan");
    EXPECT_ERR(s.b, s.n, 64, WS_ERR_PROTO);
    free(s.b);

    s = (stream_t){ 0 };
    st_text(&s, 1, WS_OP_TEXT, "done");
    st_text(&s, 0, WS_OP_CONT, "orphan after a whole message");
    EXPECT_ERR(s.b, s.n, 64, WS_ERR_PROTO);
    free(s.b);

    s = (stream_t){ 0 };
    st_text(&s, 0, WS_OP_TEXT, "start");
    st_text(&s, 1, WS_OP_TEXT, "new message too soon");
    EXPECT_ERR(s.b, s.n, 64, WS_ERR_PROTO);
    free(s.b);

    s = (stream_t){ 0 };
    st_text(&s, 0, WS_OP_BINARY, "start");
    st_text(&s, 1, WS_OP_PING, "ok");
    st_text(&s, 0, WS_OP_BINARY, "new message too soon");
    run_t r;
    int same = run_all_ways(s.b, s.n, 64, 1, &r);
    free(s.b);
    CHECK(same);
    CHECK_EQ_INT(r.err, WS_ERR_PROTO);
    CHECK_EQ_INT(r.nev, 1);             /* the ping still came through first */
    EV_IS(r, 0, WS_OP_PING, "ok");
    run_free(&r);
}

TEST(utf8_errors)
{
    stream_t s = { 0 };
    st_text(&s, 1, WS_OP_TEXT, "bad \xff byte");
    EXPECT_ERR(s.b, s.n, 64, WS_ERR_UTF8);
    free(s.b);

    /* invalid only in combination across fragments: C3 then 28 */
    s = (stream_t){ 0 };
    st_text(&s, 0, WS_OP_TEXT, "ok \xc3");
    st_text(&s, 1, WS_OP_CONT, "(");
    EXPECT_ERR(s.b, s.n, 64, WS_ERR_UTF8);
    free(s.b);

    /* surrogate split across fragments with a ping in between */
    s = (stream_t){ 0 };
    st_text(&s, 0, WS_OP_TEXT, "\xed");
    st_text(&s, 1, WS_OP_PING, "");
    st_text(&s, 1, WS_OP_CONT, "\xa0\x80");
    EXPECT_ERR(s.b, s.n, 64, WS_ERR_UTF8);
    free(s.b);

    /* a character left unfinished by the final fragment */
    s = (stream_t){ 0 };
    st_text(&s, 0, WS_OP_TEXT, "abc");
    st_text(&s, 1, WS_OP_CONT, "\xe2\x82");
    EXPECT_ERR(s.b, s.n, 64, WS_ERR_UTF8);
    free(s.b);

    /* ...but a fragment may end mid-character when more follows */
    s = (stream_t){ 0 };
    st_text(&s, 0, WS_OP_TEXT, "\xe2");
    st_text(&s, 0, WS_OP_CONT, "\x82");
    st_text(&s, 1, WS_OP_CONT, "\xac");
    run_t r;
    int same = run_all_ways(s.b, s.n, 64, 1, &r);
    free(s.b);
    CHECK(same);
    CHECK_EQ_INT(r.err, 0);
    EV_IS(r, 0, WS_OP_TEXT, "\xe2\x82\xac");
    run_free(&r);

    /* binary messages are not checked */
    s = (stream_t){ 0 };
    st_text(&s, 1, WS_OP_BINARY, "\xff\xfe\xc3");
    same = run_all_ways(s.b, s.n, 64, 1, &r);
    free(s.b);
    CHECK(same);
    CHECK_EQ_INT(r.err, 0);
    EV_IS(r, 0, WS_OP_BINARY, "\xff\xfe\xc3");
    run_free(&r);
}

TEST(utf8_fails_fast)
{
    /* a long text frame with a bad byte early: the error comes before the
     * frame's payload is complete */
    char payload[1000];
    memset(payload, 'a', sizeof payload);
    payload[10] = (char)0xC0;
    stream_t s = { 0 };
    st_frame(&s, 1, WS_OP_TEXT, payload, sizeof payload);
    ws_parser_t p;
    ws_event_t ev;
    ws_parser_init(&p, 4096, 1);
    /* header is 8 bytes; hand it the header and 12 payload bytes only */
    CHECK_EQ_INT(ws_parser_feed(&p, s.b, 8 + 12, &ev), WS_ERR_UTF8);
    CHECK_EQ_INT(ev.opcode, 0);
    ws_parser_free(&p);
    free(s.b);
}

TEST(close_frame_rules)
{
    static const int bad[] = { 0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999,
                               5000, 65535 };
    static const int good[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                1012, 1013, 1014, 3000, 3999, 4000, 4999 };
    uint8_t pl[125];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        stream_t s = { 0 };
        size_t n = ws_build_close_payload(pl, bad[i], NULL);
        st_frame(&s, 1, WS_OP_CLOSE, pl, n);
        run_t r;
        run_stream(s.b, s.n, 64, 1, 0, 0, &r);
        free(s.b);
        if (r.err != WS_ERR_PROTO)
            fprintf(stderr, "  code %d accepted\n", bad[i]);
        CHECK_EQ_INT(r.err, WS_ERR_PROTO);
        run_free(&r);
    }
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        stream_t s = { 0 };
        size_t n = ws_build_close_payload(pl, good[i], "r");
        st_frame(&s, 1, WS_OP_CLOSE, pl, n);
        run_t r;
        run_stream(s.b, s.n, 64, 1, 0, 0, &r);
        free(s.b);
        CHECK_EQ_INT(r.err, 0);
        CHECK_EQ_INT(r.nev, 1);
        CHECK_EQ_INT(r.ev[0].close_code, good[i]);
        CHECK_EQ_MEM(r.ev[0].data, r.ev[0].len, "r");
        run_free(&r);
    }
    /* one-byte close payload */
    stream_t s = { 0 };
    st_frame(&s, 1, WS_OP_CLOSE, "\x03", 1);
    EXPECT_ERR(s.b, s.n, 64, WS_ERR_PROTO);
    free(s.b);
    /* reason with invalid UTF-8 */
    s = (stream_t){ 0 };
    st_frame(&s, 1, WS_OP_CLOSE, "\x03\xe8" "ab\xed\xa0\x80", 7);
    EXPECT_ERR(s.b, s.n, 64, WS_ERR_UTF8);
    free(s.b);
    /* reason truncated mid-character */
    s = (stream_t){ 0 };
    st_frame(&s, 1, WS_OP_CLOSE, "\x03\xe8" "ab\xe2\x82", 6);
    EXPECT_ERR(s.b, s.n, 64, WS_ERR_UTF8);
    free(s.b);
}

TEST(max_message)
{
    enum { MAX = 1000 };
    uint8_t pl[MAX + 1];
    memset(pl, 'z', sizeof pl);
    run_t r;

    /* exactly the limit: fine, in one frame or in several */
    stream_t s = { 0 };
    st_frame(&s, 1, WS_OP_TEXT, pl, MAX);
    st_frame(&s, 0, WS_OP_BINARY, pl, 400);
    st_frame(&s, 0, WS_OP_CONT, pl, 0);
    st_frame(&s, 1, WS_OP_CONT, pl, MAX - 400);
    CHECK(run_all_ways(s.b, s.n, MAX, 1, &r));
    free(s.b);
    CHECK_EQ_INT(r.err, 0);
    CHECK_EQ_INT(r.nev, 2);
    CHECK_EQ_INT(r.ev[0].len, MAX);
    CHECK_EQ_INT(r.ev[1].len, MAX);
    run_free(&r);

    /* one byte over, single frame: rejected from the header alone */
    s = (stream_t){ 0 };
    st_frame(&s, 1, WS_OP_BINARY, pl, MAX + 1);
    EXPECT_ERR(s.b, s.n, MAX, WS_ERR_TOO_BIG);
    ws_parser_t p;
    ws_event_t ev;
    ws_parser_init(&p, MAX, 1);
    CHECK_EQ_INT(ws_parser_feed(&p, s.b, 8, &ev), WS_ERR_TOO_BIG);   /* 4 + mask */
    CHECK(p.buf_cap == 0);              /* nothing was buffered */
    CHECK_EQ_INT(ws_err_close_code(WS_ERR_TOO_BIG), 1009);
    ws_parser_free(&p);
    free(s.b);

    /* over the limit across fragments: rejected at the second header */
    s = (stream_t){ 0 };
    st_frame(&s, 0, WS_OP_TEXT, pl, 600);
    size_t first = s.n;
    st_frame(&s, 1, WS_OP_CONT, pl, 401);
    EXPECT_ERR(s.b, s.n, MAX, WS_ERR_TOO_BIG);
    ws_parser_init(&p, MAX, 1);
    CHECK_EQ_INT(ws_parser_feed(&p, s.b, first, &ev), (ssize_t)first);
    CHECK_EQ_INT(ev.opcode, 0);
    CHECK_EQ_INT(ws_parser_feed(&p, s.b + first, 8, &ev), WS_ERR_TOO_BIG);
    ws_parser_free(&p);
    free(s.b);

    /* a huge declared 64-bit length with a tiny limit */
    EXPECT_RAW(MAX, WS_ERR_TOO_BIG, 0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4);
    /* a limit of zero admits only empty messages */
    EXPECT_RAW(0, WS_ERR_TOO_BIG, 0x82, 0x81, 1, 2, 3, 4, 5);
    s = (stream_t){ 0 };
    st_frame(&s, 1, WS_OP_TEXT, NULL, 0);
    CHECK(run_all_ways(s.b, s.n, 0, 1, &r));
    free(s.b);
    CHECK_EQ_INT(r.nev, 1);
    CHECK_EQ_INT(r.ev[0].len, 0);
    run_free(&r);
}

TEST(buffer_stays_within_limit)
{
    enum { MAX = 1000 };
    uint8_t pl[MAX];
    memset(pl, 'q', sizeof pl);
    stream_t s = { 0 };
    st_frame(&s, 1, WS_OP_BINARY, pl, MAX);
    ws_parser_t p;
    ws_event_t ev;
    ws_parser_init(&p, MAX, 1);
    size_t events = 0;
    for (size_t i = 0; i < s.n; i++) {
        CHECK_EQ_INT(ws_parser_feed(&p, s.b + i, 1, &ev), 1);
        CHECK(p.buf_cap <= MAX);
        if (ev.opcode) {
            events++;
            CHECK_EQ_INT(ev.len, MAX);
        }
    }
    CHECK_EQ_INT(events, 1);
    ws_parser_free(&p);
    free(s.b);
}

TEST(errors_are_sticky_and_mapped)
{
    ws_parser_t p;
    ws_event_t ev;
    const uint8_t bad[] = { 0xC2, 0x80, 1, 2, 3, 4 };
    const uint8_t good[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    ws_parser_init(&p, 64, 1);
    CHECK_EQ_INT(ws_parser_feed(&p, bad, sizeof bad, &ev), WS_ERR_PROTO);
    CHECK_EQ_INT(ws_parser_feed(&p, good, sizeof good, &ev), WS_ERR_PROTO);
    CHECK_EQ_INT(ev.opcode, 0);
    ws_parser_free(&p);

    CHECK_EQ_INT(ws_err_close_code(WS_ERR_PROTO), 1002);
    CHECK_EQ_INT(ws_err_close_code(WS_ERR_UTF8), 1007);
    CHECK_EQ_INT(ws_err_close_code(WS_ERR_TOO_BIG), 1009);
    CHECK_EQ_INT(ws_err_close_code(WS_ERR_NOMEM), 1011);
}

TEST(one_event_per_call)
{
    stream_t s = { 0 };
    st_text(&s, 1, WS_OP_TEXT, "a");
    size_t first = s.n;
    st_text(&s, 1, WS_OP_TEXT, "b");
    ws_parser_t p;
    ws_event_t ev;
    ws_parser_init(&p, 64, 1);
    CHECK_EQ_INT(ws_parser_feed(&p, s.b, s.n, &ev), (ssize_t)first);
    CHECK_EQ_INT(ev.opcode, WS_OP_TEXT);
    CHECK_EQ_MEM(ev.data, ev.len, "a");
    CHECK_EQ_INT(ws_parser_feed(&p, s.b + first, s.n - first, &ev), (ssize_t)(s.n - first));
    CHECK_EQ_INT(ev.opcode, WS_OP_TEXT);
    CHECK_EQ_MEM(ev.data, ev.len, "b");
    CHECK_EQ_INT(ws_parser_feed(&p, s.b + s.n, 0, &ev), 0);
    CHECK_EQ_INT(ev.opcode, 0);
    ws_parser_free(&p);
    free(s.b);
}

/* trim gives the buffer back between messages, keeps a fragmented
 * message's first part, and the parser goes on. */
TEST(trim_between_messages)
{
    stream_t s = { 0 };
    st_text(&s, 1, WS_OP_TEXT, "hello");
    size_t first = s.n;
    st_text(&s, 0, WS_OP_TEXT, "frag");
    size_t second = s.n;
    st_text(&s, 1, WS_OP_CONT, "ment");
    ws_parser_t p;
    ws_event_t ev;
    ws_parser_init(&p, 64, 1);
    CHECK_EQ_INT(ws_parser_feed(&p, s.b, first, &ev), (ssize_t)first);
    CHECK_EQ_MEM(ev.data, ev.len, "hello");
    ws_parser_trim(&p);
    CHECK(p.buf == NULL && p.buf_cap == 0);
    CHECK_EQ_INT(ws_parser_feed(&p, s.b + first, second - first, &ev), (ssize_t)(second - first));
    CHECK_EQ_INT(ev.opcode, 0);
    ws_parser_trim(&p);                 /* a message in progress: kept */
    CHECK(p.buf != NULL);
    CHECK_EQ_INT(ws_parser_feed(&p, s.b + second, s.n - second, &ev), (ssize_t)(s.n - second));
    CHECK_EQ_INT(ev.opcode, WS_OP_TEXT);
    CHECK_EQ_MEM(ev.data, ev.len, "fragment");
    ws_parser_trim(&p);
    CHECK(p.buf == NULL);
    ws_parser_free(&p);
    free(s.b);
}

static uint32_t rng_state = 12345;
static uint32_t rnd(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

/* Random messages, random fragmentation and masks, random chunking: what
 * comes out is what went in. */
TEST(masked_round_trip)
{
    for (int round = 0; round < 200; round++) {
        size_t n = rnd() % (round % 10 == 0 ? 70000 : 300);
        uint8_t *msg = malloc(n + 1);
        CHECK(msg);
        for (size_t i = 0; i < n; i++)
            msg[i] = (uint8_t)rnd();
        stream_t s = { 0 };
        size_t off = 0;
        int op = WS_OP_BINARY;
        do {
            size_t k = n - off ? rnd() % (n - off + 1) : 0;
            int fin = off + k == n;
            uint8_t mask[4] = { (uint8_t)rnd(), (uint8_t)rnd(), (uint8_t)rnd(), (uint8_t)rnd() };
            uint8_t *f = malloc(WS_MAX_HEADER + k);
            CHECK(f);
            st_put(&s, f, ws_build_frame_masked(f, fin, op, mask, msg + off, k));
            free(f);
            if (!fin && rnd() % 3 == 0)
                st_text(&s, 1, WS_OP_PING, "x");
            off += k;
            op = WS_OP_CONT;
        } while (off < n);
        run_t r;
        run_stream(s.b, s.n, 1 << 20, 1, 1 + rnd() % 50, 0, &r);
        int ok = r.err == 0 && r.nev >= 1 && r.ev[r.nev - 1].opcode == WS_OP_BINARY &&
                 r.ev[r.nev - 1].len == n && memcmp(r.ev[r.nev - 1].data, msg, n) == 0;
        if (!ok)
            fprintf(stderr, "  round %d: n=%zu err=%d nev=%d last=%d len=%zu\n", round, n, r.err,
                    r.nev, r.nev ? r.ev[r.nev - 1].opcode : 0, r.nev ? r.ev[r.nev - 1].len : 0);
        run_free(&r);
        free(s.b);
        free(msg);
        CHECK(ok);
    }
}

TEST(build_header)
{
    uint8_t h[WS_MAX_HEADER];
    CHECK_EQ_INT(ws_build_header(h, 1, WS_OP_TEXT, 0), 2);
    CHECK(h[0] == 0x81 && h[1] == 0x00);
    CHECK_EQ_INT(ws_build_header(h, 0, WS_OP_BINARY, 125), 2);
    CHECK(h[0] == 0x02 && h[1] == 125);
    CHECK_EQ_INT(ws_build_header(h, 1, WS_OP_BINARY, 126), 4);
    CHECK(h[1] == 126 && h[2] == 0 && h[3] == 126);
    CHECK_EQ_INT(ws_build_header(h, 1, WS_OP_BINARY, 65535), 4);
    CHECK(h[2] == 0xFF && h[3] == 0xFF);
    CHECK_EQ_INT(ws_build_header(h, 1, WS_OP_BINARY, 65536), 10);
    CHECK(h[1] == 127 && h[2] == 0 && h[7] == 1 && h[8] == 0 && h[9] == 0);
    CHECK_EQ_INT(ws_build_header(h, 1, WS_OP_CLOSE, 0x0102030405060708ull), 10);
    CHECK(h[0] == 0x88 && h[2] == 1 && h[9] == 8);

    /* a server frame parses on the client side */
    uint8_t f[WS_MAX_HEADER + 300];
    size_t hl = ws_build_header(f, 1, WS_OP_TEXT, 300);
    memset(f + hl, 'k', 300);
    run_t r;
    CHECK(run_all_ways(f, hl + 300, 1000, 0, &r));
    CHECK_EQ_INT(r.nev, 1);
    CHECK_EQ_INT(r.ev[0].len, 300);
    run_free(&r);
    /* and is refused by a server, which wants masks */
    CHECK(run_all_ways(f, hl + 300, 1000, 1, &r));
    CHECK_EQ_INT(r.err, WS_ERR_PROTO);
    run_free(&r);
}

TEST(close_payload_truncates_at_char_boundary)
{
    uint8_t out[125];
    char reason[200];
    /* 121 ASCII bytes then a 3-byte euro: 124 bytes would not fit in 123 */
    memset(reason, 'r', 121);
    memcpy(reason + 121, "\xe2\x82\xac", 4);
    size_t n = ws_build_close_payload(out, 1001, reason);
    CHECK_EQ_INT(n, 2 + 121);
    CHECK(out[0] == 0x03 && out[1] == 0xE9);
    /* plain ASCII is cut at exactly 123 */
    memset(reason, 'a', 150);
    reason[150] = '\0';
    CHECK_EQ_INT(ws_build_close_payload(out, 4000, reason), 125);
    CHECK_EQ_INT(ws_build_close_payload(out, 1000, NULL), 2);
    CHECK_EQ_INT(ws_build_close_payload(out, 1000, ""), 2);
    /* the result always parses back */
    memset(reason, 'r', 121);
    memcpy(reason + 121, "\xe2\x82\xac", 4);
    n = ws_build_close_payload(out, 1001, reason);
    stream_t s = { 0 };
    st_frame(&s, 1, WS_OP_CLOSE, out, n);
    run_t r;
    int same = run_all_ways(s.b, s.n, 64, 1, &r);
    free(s.b);
    CHECK(same);
    CHECK_EQ_INT(r.err, 0);
    CHECK_EQ_INT(r.ev[0].close_code, 1001);
    CHECK_EQ_INT(r.ev[0].len, 121);
    run_free(&r);
}

TEST(accept_key)
{
    char out[29];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    CHECK_EQ_INT(ws_accept_key(key, strlen(key), out), 0);
    CHECK_EQ_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");   /* RFC 6455 §1.3 */
    const char *key2 = "x3JJHMbDL1EzLkh9GBhXDw==";
    CHECK_EQ_INT(ws_accept_key(key2, strlen(key2), out), 0);
    CHECK_EQ_STR(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    /* not 24 characters, not base64, or not 16 bytes */
    CHECK_EQ_INT(ws_accept_key(key, 23, out), -1);
    CHECK_EQ_INT(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ===", 25, out), -1);
    CHECK_EQ_INT(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ!=", 24, out), -1);
    CHECK_EQ_INT(ws_accept_key("AAAAAAAAAAAAAAAAAAAAAAAA", 24, out), -1);   /* 18 bytes */
    CHECK_EQ_INT(ws_accept_key("", 0, out), -1);
}

TEST_MAIN(rfc_examples, script_every_split, close_event, length_encodings,
          non_minimal_lengths_accepted, length_msb_set_is_proto,
          fragmentation_with_interleaved_controls, reserved_bits_and_opcodes,
          unmasked_client_frame_is_proto, control_frame_rules, sequencing_errors,
          utf8_errors, utf8_fails_fast, close_frame_rules, max_message,
          buffer_stays_within_limit, errors_are_sticky_and_mapped, one_event_per_call,
          trim_between_messages, masked_round_trip, build_header, close_payload_truncates_at_char_boundary,
          accept_key)
