/*  fanout - the gateway's side of the broker -> gateway fan-out (ZeroMQ SUB)
 *
 *  ZMQ_FD is edge-triggered: the callback drains the socket while ZMQ_EVENTS
 *  says POLLIN, and after every subscription change (which may process
 *  pending commands) the drain is re-activated by hand. A drain handles at
 *  most FANOUT_BUDGET messages per turn and re-activates itself, so a flood
 *  from the broker cannot starve client I/O.
 *
 *  A message becomes one Engine.IO packet, "42[<event>,<payload>]" (with the
 *  namespace when it is not "/"), written once into a pkt_t shared by every
 *  recipient.
 */
#include "fanout.h"
#include "rooms.h"
#include "sock.h"
#include "session.h"
#include "envelope.h"
#include "sio.h"
#include "log.h"

#include <zmq.h>
#include <stdlib.h>
#include <string.h>

#define FANOUT_BUDGET 2048

struct fanout {
    gw_t *gw;                   //  Gateway context
    void *ctx;                  //  ZeroMQ context
    void *sub;                  //  SUB socket
    struct event *ev;           //  Readable event on ZMQ_FD (and manual activation)
    void *monitor;              //  PAIR socket receiving the SUB socket's events
    struct event *monitor_ev;
    int connected;              //  Brokers currently connected
};

/* Builds the packet for one message: 4 + 2[nsp,] + ["event",data]. */
static pkt_t *s_encode(const env_msg_t *m)
{
    char head[512];
    head[0] = '4';
    int hl = sio_encode_header(head + 1, sizeof head - 1, SIO_EVENT, m->nsp, m->nsp_len, 0, -1);
    if (hl < 0)
        return NULL;
    hl += 1;
    /* event name: JSON-escaped, at most 6 bytes per input byte, plus quotes */
    size_t ecap = m->event_len * 6 + 3;
    char ebuf[1024];
    char *ename = ecap <= sizeof ebuf ? ebuf : malloc(ecap);
    if (!ename)
        return NULL;
    int el = sio_json_string(ename, ecap, m->event, m->event_len);
    pkt_t *p = NULL;
    if (el >= 0) {
        size_t len = (size_t)hl + 1 + (size_t)el + 1 + m->data_len + 1;
        p = pkt_alloc(len);
        if (p) {
            char *t = pkt_text(p);
            memcpy(t, head, (size_t)hl);
            t += hl;
            *t++ = '[';
            memcpy(t, ename, (size_t)el);
            t += el;
            *t++ = ',';
            memcpy(t, m->data, m->data_len);
            t += m->data_len;
            *t++ = ']';
        }
    }
    if (ename != ebuf)
        free(ename);
    return p;
}

static void s_deliver(fanout_t *f, const void *topic, size_t tlen, const void *body, size_t blen)
{
    gw_t *gw = f->gw;
    env_msg_t m;
    if (env_decode(body, blen, &m) < 0) {
        gw->stats.bad_envelopes++;
        log_warn("event=bad_envelope bytes=%zu", blen);
        return;
    }
    gw->stats.messages_in++;
    room_t *room = rooms_find(gw->rooms, topic, tlen);
    if (!room)
        return;                     /* unsubscribed a moment ago */
    pkt_t *p = s_encode(&m);
    if (!p) {
        log_error("event=encode_failed seq=%llu", (unsigned long long)m.seq);
        return;
    }
    /* Sessions close lazily (see session.h), so the member array does not
     * change while we walk it. */
    size_t n = room_size(room);
    void *const *members = room_members(room);
    for (size_t i = 0; i < n; i++) {
        sock_t *k = members[i];
        if (!k->sess->closed)
            session_send_pkt(k->sess, p);
    }
    pkt_release(p);
}

static void s_drain(evutil_socket_t fd, short what, void *arg)
{
    fanout_t *f = arg;
    (void)fd;
    (void)what;
    for (int budget = 0; budget < FANOUT_BUDGET; budget++) {
        zmq_msg_t topic, body;
        zmq_msg_init(&topic);
        if (zmq_msg_recv(&topic, f->sub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&topic);
            return;                 /* EAGAIN: drained; ZMQ_FD will fire again */
        }
        if (!zmq_msg_more(&topic)) {
            f->gw->stats.bad_envelopes++;
            zmq_msg_close(&topic);
            continue;
        }
        zmq_msg_init(&body);
        zmq_msg_recv(&body, f->sub, ZMQ_DONTWAIT);
        int extra = zmq_msg_more(&body);
        s_deliver(f, zmq_msg_data(&topic), zmq_msg_size(&topic), zmq_msg_data(&body),
                  zmq_msg_size(&body));
        zmq_msg_close(&topic);
        zmq_msg_close(&body);
        while (extra) {             /* skip unexpected trailing frames */
            zmq_msg_t junk;
            zmq_msg_init(&junk);
            zmq_msg_recv(&junk, f->sub, ZMQ_DONTWAIT);
            extra = zmq_msg_more(&junk);
            zmq_msg_close(&junk);
        }
    }
    event_active(f->ev, EV_READ, 0);    /* more may wait: continue next turn */
}

static void s_monitor(evutil_socket_t fd, short what, void *arg)
{
    fanout_t *f = arg;
    (void)fd;
    (void)what;
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, f->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            break;
        }
        uint16_t id = 0;
        if (zmq_msg_size(&ev) >= 2)
            memcpy(&id, zmq_msg_data(&ev), 2);
        zmq_msg_init(&addr);
        zmq_msg_recv(&addr, f->monitor, ZMQ_DONTWAIT);
        if (id == ZMQ_EVENT_CONNECTED) {
            f->connected++;
            log_info("event=broker_connected endpoint=%.*s", (int)zmq_msg_size(&addr),
                     (const char *)zmq_msg_data(&addr));
        } else if (id == ZMQ_EVENT_DISCONNECTED) {
            if (f->connected > 0)
                f->connected--;
            log_warn("event=broker_disconnected endpoint=%.*s", (int)zmq_msg_size(&addr),
                     (const char *)zmq_msg_data(&addr));
        }
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
    }
}

static struct event *s_fd_event(fanout_t *f, void *sock, event_callback_fn cb)
{
    int fd;
    size_t sz = sizeof fd;
    if (zmq_getsockopt(sock, ZMQ_FD, &fd, &sz) < 0)
        return NULL;
    struct event *ev = event_new(f->gw->base, fd, EV_READ | EV_PERSIST, cb, f);
    if (ev)
        event_add(ev, NULL);
    return ev;
}

fanout_t *fanout_new(gw_t *gw, const char *pub_endpoints)
{
    fanout_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->gw = gw;
    f->ctx = zmq_ctx_new();
    f->sub = f->ctx ? zmq_socket(f->ctx, ZMQ_SUB) : NULL;
    if (!f->sub) {
        log_error("event=zmq_error reason=\"%s\"", zmq_strerror(zmq_errno()));
        goto fail;
    }
    int hwm = 1000000, zero = 0;
    zmq_setsockopt(f->sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(f->sub, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_socket_monitor(f->sub, "inproc://belfry-sub-monitor",
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) == 0) {
        f->monitor = zmq_socket(f->ctx, ZMQ_PAIR);
        if (f->monitor && zmq_connect(f->monitor, "inproc://belfry-sub-monitor") == 0)
            f->monitor_ev = s_fd_event(f, f->monitor, s_monitor);
    }
    char *list = strdup(pub_endpoints ? pub_endpoints : "");
    if (!list)
        goto fail;
    int count = 0;
    for (char *save = NULL, *ep = strtok_r(list, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
        while (*ep == ' ')
            ep++;
        if (zmq_connect(f->sub, ep) < 0) {
            log_error("event=config_error setting=--broker-pub endpoint=\"%s\" reason=\"%s\"", ep,
                      zmq_strerror(zmq_errno()));
            free(list);
            goto fail;
        }
        count++;
    }
    free(list);
    if (count == 0) {
        log_error("event=config_error setting=--broker-pub reason=\"no endpoint\"");
        goto fail;
    }
    f->ev = s_fd_event(f, f->sub, s_drain);
    if (!f->ev)
        goto fail;
    return f;
fail:
    fanout_destroy(&f);
    return NULL;
}

void fanout_destroy(fanout_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fanout_t *f = *self_p;
    if (f->ev)
        event_free(f->ev);
    if (f->monitor_ev)
        event_free(f->monitor_ev);
    if (f->monitor) {
        int zero = 0;
        zmq_setsockopt(f->monitor, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(f->monitor);
    }
    if (f->sub)
        zmq_close(f->sub);
    if (f->ctx)
        zmq_ctx_term(f->ctx);
    free(f);
    *self_p = NULL;
}

void fanout_room_sub(void *arg, const char *key, size_t klen, int subscribe)
{
    fanout_t *f = arg;
    if (!f)
        return;
    if (zmq_setsockopt(f->sub, subscribe ? ZMQ_SUBSCRIBE : ZMQ_UNSUBSCRIBE, key, klen) < 0)
        log_error("event=zmq_error op=%s reason=\"%s\"", subscribe ? "subscribe" : "unsubscribe",
                  zmq_strerror(zmq_errno()));
    /* the option call may have consumed the edge of ZMQ_FD */
    event_active(f->ev, EV_READ, 0);
}

int fanout_ready(const fanout_t *self)
{
    return self && self->connected > 0;
}
