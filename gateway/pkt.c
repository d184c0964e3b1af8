/*  pkt - one outgoing packet, encoded once, shared by every recipient */
#include "pkt.h"
#include "ws.h"

#include <stdlib.h>
#include <string.h>

pkt_t *pkt_alloc(size_t len)
{
    uint8_t hdr[WS_MAX_HEADER];
    size_t hl = ws_build_header(hdr, 1, WS_OP_TEXT, len);
    pkt_t *p = malloc(sizeof *p + hl + len);
    if (!p)
        return NULL;
    p->refs = 1;
    p->hdr_len = (uint32_t)hl;
    p->len = hl + len;
    memcpy(p->data, hdr, hl);
    return p;
}

pkt_t *pkt_new(const char *text, size_t len)
{
    pkt_t *p = pkt_alloc(len);
    if (p)
        memcpy(pkt_text(p), text, len);
    return p;
}

void pkt_ref(pkt_t *p)
{
    p->refs++;
}

void pkt_release(pkt_t *p)
{
    if (p && --p->refs == 0)
        free(p);
}

void pkt_release_cb(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    pkt_release(arg);
}
