/*  ws - WebSocket framing (RFC 6455), no I/O
 *
 *  A resumable frame parser and a few encoders. The parser never reads past
 *  the bytes it is given and never needs them again: header bytes are
 *  collected in p->hdr until the header is whole, payload bytes are unmasked
 *  straight into the reassembly buffer (data frames) or p->ctl (control
 *  frames), so the caller may hand it one byte at a time or many frames at
 *  once.
 *
 *  Design: two states, HDR (collecting a header) and PAYLOAD (copying a
 *  frame's payload); a negative state is the error that killed the parser and
 *  is returned again by every later call. Every check that the header alone
 *  decides (RSV bits, opcode, FIN and size of control frames, masking, message
 *  sequencing, the message size limit) is made as soon as the header bytes
 *  that decide it have arrived, before any payload is buffered. Text is
 *  validated with utf8_feed as each chunk is copied, the state carried across
 *  fragments, so invalid UTF-8 fails on the byte that makes it invalid; an
 *  unfinished character at the end of the final fragment fails there.
 *  Control frames may arrive between the fragments of a message; they live in
 *  their own 125-byte buffer and leave the message being reassembled alone.
 *
 *  Events point into the parser (p->buf or p->ctl) and stay valid until the
 *  next call. The reassembly buffer grows geometrically, never beyond
 *  max_message, and one larger than WS_KEEP_CAP is released once idle, so an
 *  idle connection holds little memory.
 */
#include "ws.h"
#include "b64.h"
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

enum { S_HDR = 0, S_PAYLOAD = 1 };

#define WS_MIN_CAP  256         /* first allocation of the reassembly buffer */
#define WS_KEEP_CAP 4096        /* an idle buffer above this is freed */

static const char s_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* Sets up a parser: no message in progress, nothing allocated. max_message
 * caps a reassembled data message (the sum of its fragments' payloads);
 * require_mask 1 (a server) rejects unmasked frames, 0 (a client) accepts
 * masked and unmasked frames alike. */
void ws_parser_init(ws_parser_t *p, size_t max_message, int require_mask)
{
    memset(p, 0, sizeof *p);
    p->max_message = max_message;
    p->require_mask = require_mask;
    p->state = S_HDR;
    p->hdr_need = 2;
    p->utf8_state = UTF8_ACCEPT;
}

/* Frees the reassembly buffer. Safe to call twice; after it the parser must
 * be initialised again before use. */
void ws_parser_free(ws_parser_t *p)
{
    free(p->buf);
    p->buf = NULL;
    p->buf_len = p->buf_cap = 0;
}

void ws_parser_trim(ws_parser_t *p)
{
    if (p->msg_opcode == 0 && p->buf) {
        free(p->buf);
        p->buf = NULL;
        p->buf_len = p->buf_cap = 0;
    }
}

static int s_is_control(int opcode)
{
    return (opcode & 0x8) != 0;
}

/* 1 if a received close frame may carry this code (RFC 6455 §7.4; 1012-1014
 * were registered later and are accepted, as Autobahn does). */
static int s_close_code_ok(int code)
{
    if (code >= 1000 && code <= 1003)
        return 1;
    if (code >= 1007 && code <= 1014)
        return 1;
    return code >= 3000 && code <= 4999;
}

/* Checks the first two header bytes and works out the header's full size. */
static int s_header_start(ws_parser_t *p)
{
    uint8_t b0 = p->hdr[0], b1 = p->hdr[1];
    int len7 = b1 & 0x7F;

    p->fin = (b0 & 0x80) != 0;
    p->opcode = b0 & 0x0F;
    p->masked = (b1 & 0x80) != 0;
    if (b0 & 0x70)
        return WS_ERR_PROTO;                /* no extension was negotiated */
    if (s_is_control(p->opcode)) {
        if (p->opcode != WS_OP_CLOSE && p->opcode != WS_OP_PING && p->opcode != WS_OP_PONG)
            return WS_ERR_PROTO;
        if (!p->fin)
            return WS_ERR_PROTO;            /* the length is checked once decoded:
                                               a non-minimal encoding is legal */
    } else {
        if (p->opcode != WS_OP_CONT && p->opcode != WS_OP_TEXT && p->opcode != WS_OP_BINARY)
            return WS_ERR_PROTO;
        if (p->opcode == WS_OP_CONT && p->msg_opcode == 0)
            return WS_ERR_PROTO;            /* nothing to continue */
        if (p->opcode != WS_OP_CONT && p->msg_opcode != 0)
            return WS_ERR_PROTO;            /* previous message unfinished */
    }
    if (p->require_mask && !p->masked)
        return WS_ERR_PROTO;
    p->hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (p->masked ? 4 : 0);
    return 0;
}

/* The header is whole: decode the length and mask, apply the size limit,
 * start a message if this frame begins one. */
static int s_header_done(ws_parser_t *p)
{
    size_t i = 2;
    uint64_t len = p->hdr[1] & 0x7F;

    if (len == 126) {
        len = ((uint64_t)p->hdr[2] << 8) | p->hdr[3];
        i = 4;
    } else if (len == 127) {
        len = 0;
        for (i = 2; i < 10; i++)
            len = (len << 8) | p->hdr[i];
        if (len >> 63)
            return WS_ERR_PROTO;
    }
    if (p->masked)
        memcpy(p->mask, p->hdr + i, 4);
    p->frame_len = len;
    p->frame_done = 0;
    p->hdr_have = 0;
    p->hdr_need = 2;

    if (s_is_control(p->opcode)) {
        if (len > 125)
            return WS_ERR_PROTO;            /* 125 sent in a longer encoding */
        p->ctl_len = 0;
        return 0;
    }
    if (p->opcode != WS_OP_CONT) {
        p->msg_opcode = p->opcode;
        p->utf8_state = UTF8_ACCEPT;
        p->buf_len = 0;
    }
    if (len > p->max_message - p->buf_len)  /* buf_len <= max_message always */
        return WS_ERR_TOO_BIG;
    return 0;
}

/* Makes room for need bytes in the reassembly buffer (need <= max_message). */
static int s_reserve(ws_parser_t *p, size_t need)
{
    size_t cap = p->buf_cap ? p->buf_cap : WS_MIN_CAP;
    uint8_t *nb;

    if (need <= p->buf_cap)
        return 0;
    while (cap < need) {
        if (cap > p->max_message / 2) {
            cap = p->max_message;
            break;
        }
        cap *= 2;
    }
    if (cap > p->max_message)
        cap = p->max_message;
    if (cap < need)
        cap = need;
    nb = realloc(p->buf, cap);
    if (!nb)
        return WS_ERR_NOMEM;
    p->buf = nb;
    p->buf_cap = cap;
    return 0;
}

/* Copies up to n payload bytes from src, unmasking; returns the count used
 * or a WS_ERR_* code. */
static ssize_t s_payload(ws_parser_t *p, const uint8_t *src, size_t n)
{
    uint64_t left = p->frame_len - p->frame_done;
    uint8_t *dst;
    int rc;

    if ((uint64_t)n > left)
        n = (size_t)left;
    if (s_is_control(p->opcode)) {
        dst = p->ctl + p->ctl_len;
        p->ctl_len += n;
    } else {
        rc = s_reserve(p, p->buf_len + n);
        if (rc < 0)
            return rc;
        dst = p->buf + p->buf_len;
        p->buf_len += n;
    }
    if (p->masked) {
        size_t off = (size_t)(p->frame_done & 3);
        for (size_t k = 0; k < n; k++)
            dst[k] = src[k] ^ p->mask[(off + k) & 3];
    } else {
        memcpy(dst, src, n);
    }
    p->frame_done += n;
    if (!s_is_control(p->opcode) && p->msg_opcode == WS_OP_TEXT) {
        p->utf8_state = utf8_feed(p->utf8_state, dst, n);
        if (p->utf8_state == UTF8_REJECT)
            return WS_ERR_UTF8;
    }
    return (ssize_t)n;
}

/* The frame's payload is complete: fill *ev if it ends something to report. */
static int s_frame_done(ws_parser_t *p, ws_event_t *ev)
{
    p->state = S_HDR;
    if (s_is_control(p->opcode)) {
        ev->data = p->ctl;
        ev->len = p->ctl_len;
        if (p->opcode == WS_OP_CLOSE) {
            if (p->ctl_len == 1)
                return WS_ERR_PROTO;
            ev->close_code = WS_CLOSE_NO_STATUS;
            if (p->ctl_len >= 2) {
                ev->close_code = (p->ctl[0] << 8) | p->ctl[1];
                if (!s_close_code_ok(ev->close_code))
                    return WS_ERR_PROTO;
                if (!utf8_valid(p->ctl + 2, p->ctl_len - 2))
                    return WS_ERR_UTF8;
                ev->data = p->ctl + 2;
                ev->len = p->ctl_len - 2;
            }
        }
        ev->opcode = p->opcode;
        return 0;
    }
    if (!p->fin)
        return 0;
    if (p->msg_opcode == WS_OP_TEXT && p->utf8_state != UTF8_ACCEPT)
        return WS_ERR_UTF8;                 /* ends inside a character */
    ev->opcode = p->msg_opcode;
    ev->data = p->buf ? p->buf : (const uint8_t *)"";
    ev->len = p->buf_len;
    /* The bytes stay in p->buf until the next call, as the contract says. */
    p->buf_len = 0;
    p->msg_opcode = 0;
    p->utf8_state = UTF8_ACCEPT;
    return 0;
}

/* Consumes bytes from data[0..len) and stops after the first event; see
 * ws.h for the calling loop. Returns the count consumed, with ev->opcode 0
 * (need more bytes) or the event's opcode, or a WS_ERR_* code (negative),
 * after which every call returns that code again. The previous event's data
 * is no longer valid once this is called. */
ssize_t ws_parser_feed(ws_parser_t *p, const uint8_t *data, size_t len, ws_event_t *ev)
{
    size_t pos = 0;
    ssize_t rc = 0;

    memset(ev, 0, sizeof *ev);
    if (p->state < 0)
        return p->state;
    /* The last event's data is dead now: give back a large idle buffer. */
    if (p->msg_opcode == 0 && p->buf_cap > WS_KEEP_CAP)
        ws_parser_free(p);

    while (pos < len) {
        if (p->state == S_HDR) {
            size_t want = (p->hdr_have < 2 ? 2 : p->hdr_need) - p->hdr_have;
            size_t take = len - pos < want ? len - pos : want;
            memcpy(p->hdr + p->hdr_have, data + pos, take);
            p->hdr_have += take;
            pos += take;
            if (p->hdr_have == 2 && p->hdr_need == 2 && take > 0) {
                rc = s_header_start(p);
                if (rc < 0)
                    goto fail;
            }
            if (p->hdr_have < p->hdr_need)
                continue;
            rc = s_header_done(p);
            if (rc < 0)
                goto fail;
            p->state = S_PAYLOAD;
        } else {
            rc = s_payload(p, data + pos, len - pos);
            if (rc < 0)
                goto fail;
            pos += (size_t)rc;
        }
        if (p->state == S_PAYLOAD && p->frame_done == p->frame_len) {
            rc = s_frame_done(p, ev);
            if (rc < 0)
                goto fail;
            if (ev->opcode)
                return (ssize_t)pos;
        }
    }
    return (ssize_t)pos;
fail:
    memset(ev, 0, sizeof *ev);
    p->state = (int)rc;
    return rc;
}

/* The close code to send for a ws_parser_feed error; 1011 for anything else. */
int ws_err_close_code(int err)
{
    switch (err) {
    case WS_ERR_PROTO:   return WS_CLOSE_PROTOCOL;
    case WS_ERR_UTF8:    return WS_CLOSE_INVALID_DATA;
    case WS_ERR_TOO_BIG: return WS_CLOSE_TOO_BIG;
    default:             return WS_CLOSE_INTERNAL;
    }
}

/* Writes an unmasked header (2, 4 or 10 bytes, the shortest encoding). */
size_t ws_build_header(uint8_t *out, int fin, int opcode, uint64_t len)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

/* Writes header, mask and masked payload (payload may be NULL if len is 0). */
size_t ws_build_frame_masked(uint8_t *out, int fin, int opcode, const uint8_t mask[4],
                             const void *payload, size_t len)
{
    const uint8_t *src = payload;
    size_t h = ws_build_header(out, fin, opcode, len);

    out[1] |= 0x80;
    memcpy(out + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        out[h + i] = src[i] ^ mask[i & 3];
    return h + len;
}

/* Writes the 2-byte code and the reason (NULL for none) into out (capacity
 * 125). A reason longer than 123 bytes is cut at the last UTF-8 character
 * boundary that fits, so a valid reason stays valid. */
size_t ws_build_close_payload(uint8_t *out, int code, const char *reason)
{
    size_t r = reason ? strlen(reason) : 0;

    out[0] = (uint8_t)((code >> 8) & 0xFF);
    out[1] = (uint8_t)(code & 0xFF);
    if (r > 123) {
        r = 123;
        while (r > 0 && ((uint8_t)reason[r] & 0xC0) == 0x80)
            r--;
    }
    if (r)
        memcpy(out + 2, reason, r);
    return 2 + r;
}

/* Sec-WebSocket-Accept = base64(SHA-1(key + GUID)); see ws.h. */
int ws_accept_key(const char *key, size_t key_len, char out[29])
{
    uint8_t raw[24];
    char cat[24 + sizeof s_guid];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (!key || key_len != 24 || b64_decode(key, key_len, raw) != 16)
        return -1;
    memcpy(cat, key, 24);
    memcpy(cat + 24, s_guid, sizeof s_guid - 1);
    if (!EVP_Digest(cat, 24 + sizeof s_guid - 1, md, &md_len, EVP_sha1(), NULL) || md_len != 20)
        return -1;
    b64_encode(md, md_len, out);
    return 0;
}
