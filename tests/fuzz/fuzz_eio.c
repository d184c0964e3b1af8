/*  fuzz_eio - libFuzzer target for Engine.IO packets and polling payloads
 *
 *  Design: the input is taken three ways: as one WebSocket text frame
 *  (eio_decode), and as a polling POST body walked with eio_payload_next,
 *  each record decoded with eio_decode_record into a scratch buffer of exactly
 *  the promised capacity (len bytes, its own heap block, so ASan catches any
 *  write beyond it). Invariants that abort(): records lie inside the payload,
 *  the walk ends within len + 1 records, their lengths plus separators add up
 *  to the payload, a decoded text packet points inside its record with type
 *  0..6, and a binary record's bytes survive eio_encode_binary_record and a
 *  second decode unchanged.
 */
#include "eio.h"
#include "b64.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check_text(const char *s, size_t len, const eio_packet_t *p)
{
    if (p->type < EIO_OPEN || p->type > EIO_NOOP || p->binary != 0)
        abort();
    if (p->len > len || p->data < s || p->data + p->len > s + len)
        abort();
}

static void s_record(const char *rec, size_t len)
{
    char *scratch = malloc(len ? len : 1);
    if (!scratch)
        abort();
    eio_packet_t p;
    if (eio_decode_record(rec, len, scratch, &p) == 0) {
        if (len > 0 && rec[0] == 'b') {
            if (p.type != EIO_MESSAGE || p.binary != 1 || p.len > len || p.data != scratch)
                abort();
            size_t cap = 1 + b64_encoded_len(p.len) + 1;
            char *enc = malloc(cap);
            char *again = malloc(cap);
            if (!enc || !again)
                abort();
            size_t n = eio_encode_binary_record(p.data, p.len, enc);
            if (n + 1 > cap || enc[0] != 'b')
                abort();
            eio_packet_t q;
            if (eio_decode_record(enc, n, again, &q) != 0)
                abort();
            if (q.len != p.len || !q.binary || (p.len && memcmp(q.data, p.data, p.len) != 0))
                abort();
            free(enc);
            free(again);
        } else {
            s_check_text(rec, len, &p);
        }
    } else if (len == 0) {
        /* an empty record is refused: that is the contract */
    }
    free(scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size ? size : 1);
    if (!s)
        return 0;
    memcpy(s, data, size);

    eio_packet_t p;
    int rc = eio_decode(s, size, &p);
    if (rc == 0)
        s_check_text(s, size, &p);
    else if (rc != -1)
        abort();
    if (size == 0 && rc == 0)
        abort();

    size_t pos = 0, total = 0, count = 0;
    const char *rec;
    size_t rec_len;
    while (eio_payload_next(s, size, &pos, &rec, &rec_len) == 1) {
        if (++count > size + 1)
            abort();
        if (rec < s || rec + rec_len > s + size)
            abort();
        if (memchr(rec, EIO_SEPARATOR, rec_len))
            abort();
        total += rec_len;
        s_record(rec, rec_len);
    }
    /* records and the separators between them cover the payload */
    if (count == 0 || total + (count - 1) != size)
        abort();
    free(s);
    return 0;
}
