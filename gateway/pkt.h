/*  pkt - one outgoing packet, encoded once, shared by every recipient
 *
 *  A fan-out message becomes one pkt_t: a WebSocket text-frame header followed
 *  by the Engine.IO packet text ("42[...]"). Every WebSocket recipient gets a
 *  reference to the same bytes (evbuffer_add_reference), never a copy; a
 *  polling recipient copies the Engine.IO text (the part after the header).
 *  The block is freed when the last reference is released.
 */
#ifndef BELFRY_PKT_H
#define BELFRY_PKT_H

#include <stddef.h>
#include <stdint.h>

typedef struct pkt {
    uint32_t refs;              //  References: the creator's plus one per queue
    uint32_t hdr_len;           //  WebSocket header length at data[0]
    size_t len;                 //  Total length: header + Engine.IO text
    uint8_t data[];             //  Header, then the text
} pkt_t;

/* Creates a packet holding a WS text frame for text[0..len) with one
 * reference (the caller's). NULL on allocation failure. */
pkt_t *pkt_new(const char *text, size_t len);
/* Creates a packet of `len` bytes of text to be written by the caller at
 * pkt_text(p) (then it is complete). */
pkt_t *pkt_alloc(size_t len);
static inline char *pkt_text(pkt_t *p) { return (char *)p->data + p->hdr_len; }
static inline size_t pkt_text_len(const pkt_t *p) { return p->len - p->hdr_len; }
void pkt_ref(pkt_t *p);
void pkt_release(pkt_t *p);     /* drops one reference; frees at zero; NULL-safe */
/* evbuffer cleanup callback signature adapter (releases one reference). */
void pkt_release_cb(const void *data, size_t len, void *arg);

#endif
