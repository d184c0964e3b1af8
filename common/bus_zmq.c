/*  bus_zmq - the ZeroMQ backend of the fan-out bus (PUB/SUB)
 *
 *  Design: a publisher is one PUB socket bound to every endpoint of the
 *  list; a subscriber is one SUB socket connected to every endpoint (one per
 *  broker). A message is two frames [topic][body]; a subscriber drops and
 *  counts a single-frame message and skips frames beyond the second.
 *  Subscriptions are ZMQ_SUBSCRIBE prefixes; ZeroMQ itself sends them again
 *  to a publisher that reconnects, so this backend never re-subscribes.
 *
 *  ZMQ_FD is edge-triggered: the drain callback reads while messages come,
 *  at most BUS_ZMQ_BUDGET per loop turn, or fewer when the caller's yield
 *  says so (then it re-activates itself, so a flood cannot starve the rest
 *  of the loop), and every subscription change
 *  (which may process pending socket commands and so eat the edge)
 *  re-activates the drain by hand. Readiness comes from a socket monitor
 *  (a PAIR socket on a per-bus inproc address) counting CONNECTED and
 *  DISCONNECTED events.
 *
 *  A PUB socket applies the subscriptions its subscribers send only when
 *  its owner's thread processes the socket's commands, which ZeroMQ does
 *  inside zmq_send (at most once a millisecond) or on a ZMQ_EVENTS query;
 *  and its inbound pipe holds 1,000 messages by default, so (as we read
 *  libzmq) a wave of subscriptions is taken in over several such calls. A
 *  broker that sent nothing but a heartbeat a second dropped the first
 *  messages to rooms subscribed well before them (`make bench`, latency
 *  scenario, 10,000 rooms: a room subscribed 770 ms before its first
 *  message; gaps in 5 of 9 runs, each repaired by a replay seconds later).
 *  So the publisher watches ZMQ_FD too and processes commands as soon as
 *  they arrive (s_pub_commands), and its inbound pipe is unbounded (the
 *  only inbound messages of a PUB are subscriptions). After: no gap in 6
 *  runs.
 */
#include "bus_internal.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define BUS_ZMQ_BUDGET 2048

typedef struct {
    void *sock;                 /* PUB or SUB */
    struct event *ev;           /* Readable on ZMQ_FD, and manual activation (SUB) */
    void *monitor;              /* PAIR receiving the SUB socket's events */
    struct event *monitor_ev;
    int connected;              /* SUB: publishers connected now */
    int bound;                  /* PUB: endpoints bound */
} zb_t;

/* ---- subscriber ----------------------------------------------------------- */

static void s_drain(evutil_socket_t fd, short what, void *arg)
{
    bus_t *bus = arg;
    zb_t *z = bus->impl;
    (void)fd;
    (void)what;
    for (int budget = 0; budget < BUS_ZMQ_BUDGET; budget++) {
        zmq_msg_t topic, body;
        zmq_msg_init(&topic);
        if (zmq_msg_recv(&topic, z->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&topic);
            return;                 /* EAGAIN: drained; ZMQ_FD will fire again */
        }
        if (!zmq_msg_more(&topic)) {
            bus->stats.malformed++;
            zmq_msg_close(&topic);
            continue;
        }
        zmq_msg_init(&body);
        zmq_msg_recv(&body, z->sock, ZMQ_DONTWAIT);
        int extra = zmq_msg_more(&body);
        bus_deliver(bus, zmq_msg_data(&topic), zmq_msg_size(&topic), zmq_msg_data(&body),
                    zmq_msg_size(&body));
        zmq_msg_close(&topic);
        zmq_msg_close(&body);
        while (extra) {             /* skip unexpected trailing frames */
            zmq_msg_t junk;
            zmq_msg_init(&junk);
            zmq_msg_recv(&junk, z->sock, ZMQ_DONTWAIT);
            extra = zmq_msg_more(&junk);
            zmq_msg_close(&junk);
        }
        if (bus->yield && bus->yield(bus->yield_arg))
            break;                  /* the caller writes out first (bus_set_yield) */
    }
    event_active(z->ev, EV_READ, 0);    /* more may wait: continue next turn */
}

static void s_monitor(evutil_socket_t fd, short what, void *arg)
{
    bus_t *bus = arg;
    zb_t *z = bus->impl;
    (void)fd;
    (void)what;
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, z->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            break;
        }
        uint16_t id = 0;
        if (zmq_msg_size(&ev) >= 2)
            memcpy(&id, zmq_msg_data(&ev), 2);
        zmq_msg_init(&addr);
        zmq_msg_recv(&addr, z->monitor, ZMQ_DONTWAIT);
        if (id == ZMQ_EVENT_CONNECTED) {
            z->connected++;
            bus->stats.connects++;
            log_info("event=broker_connected fanout=zmq endpoint=%.*s", (int)zmq_msg_size(&addr),
                     (const char *)zmq_msg_data(&addr));
        } else if (id == ZMQ_EVENT_DISCONNECTED) {
            if (z->connected > 0)
                z->connected--;
            bus->stats.disconnects++;
            log_warn("event=broker_disconnected fanout=zmq endpoint=%.*s", (int)zmq_msg_size(&addr),
                     (const char *)zmq_msg_data(&addr));
        }
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
    }
}

static void s_subscribe(bus_t *bus, const void *topic, size_t tlen, int on)
{
    zb_t *z = bus->impl;
    if (zmq_setsockopt(z->sock, on ? ZMQ_SUBSCRIBE : ZMQ_UNSUBSCRIBE, topic, tlen) < 0) {
        bus->stats.errors++;
        log_error("event=zmq_error op=%s reason=\"%s\"", on ? "subscribe" : "unsubscribe",
                  zmq_strerror(zmq_errno()));
    }
    /* the option call may have consumed the edge of ZMQ_FD */
    if (z->ev)
        event_active(z->ev, EV_READ, 0);
}

/* ---- publisher ------------------------------------------------------------ */

/* ZMQ_FD of the PUB socket fired: commands are pending (subscriptions,
 * pipes attached or gone). ZMQ_EVENTS processes all of them. */
static void s_pub_commands(evutil_socket_t fd, short what, void *arg)
{
    bus_t *bus = arg;
    zb_t *z = bus->impl;
    int events;
    size_t sz = sizeof events;
    (void)fd;
    (void)what;
    if (zmq_getsockopt(z->sock, ZMQ_EVENTS, &events, &sz) < 0)
        bus->stats.errors++;
}

static int s_publish(bus_t *bus, const void *topic, size_t tlen, const void *body, size_t blen)
{
    zb_t *z = bus->impl;
    /* a PUB socket never blocks: at the high-water mark it drops silently,
     * so an error here is a real failure (e.g. ETERM) */
    if (zmq_send(z->sock, topic, tlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(z->sock, body, blen, ZMQ_DONTWAIT) < 0)
        return -1;
    return 0;
}

/* ---- common --------------------------------------------------------------- */

static int s_ready(const bus_t *bus)
{
    const zb_t *z = bus->impl;
    return bus->role == BUS_PUB ? z->bound > 0 : z->connected > 0;
}

static void s_close(bus_t *bus)
{
    zb_t *z = bus->impl;
    if (!z)
        return;
    if (z->ev)
        event_free(z->ev);
    if (z->monitor_ev)
        event_free(z->monitor_ev);
    int zero = 0;
    if (z->monitor) {
        zmq_setsockopt(z->monitor, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(z->monitor);
    }
    if (z->sock) {
        zmq_setsockopt(z->sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(z->sock);
    }
    free(z);
    bus->impl = NULL;
}

static const bus_ops_t s_ops = { s_publish, s_subscribe, s_ready, NULL, s_close };

static struct event *s_fd_event(bus_t *bus, void *sock, event_callback_fn cb)
{
    int fd;
    size_t sz = sizeof fd;
    if (zmq_getsockopt(sock, ZMQ_FD, &fd, &sz) < 0)
        return NULL;
    struct event *ev = event_new(bus->base, fd, EV_READ | EV_PERSIST, cb, bus);
    if (ev) {
        event_add(ev, NULL);
        /* ZMQ_FD signals only after a read found nothing: a socket nobody
         * has read yet never signals its first message, so read once now */
        event_active(ev, EV_READ, 0);
    }
    return ev;
}

int bus_zmq_open(bus_t *bus, const bus_config_t *cfg, char *err, size_t errcap)
{
    bus->ops = &s_ops;
    zb_t *z = calloc(1, sizeof *z);
    if (!z) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    bus->impl = z;
    int pub = bus->role == BUS_PUB;
    if (!cfg->zmq_ctx) {
        snprintf(err, errcap, "zmq fan-out: no ZeroMQ context");
        return -1;
    }
    z->sock = zmq_socket(cfg->zmq_ctx, pub ? ZMQ_PUB : ZMQ_SUB);
    if (!z->sock) {
        snprintf(err, errcap, "cannot create %s socket: %s", pub ? "PUB" : "SUB",
                 zmq_strerror(zmq_errno()));
        return -1;
    }
    int hwm = bus->hwm > 0x7fffffff ? 0x7fffffff : (int)bus->hwm, zero = 0;
    zmq_setsockopt(z->sock, pub ? ZMQ_SNDHWM : ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (pub)                    /* subscriptions in one round (see the top) */
        zmq_setsockopt(z->sock, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(z->sock, ZMQ_LINGER, &zero, sizeof zero);
    if (!pub) {
        char addr[64];
        snprintf(addr, sizeof addr, "inproc://belfry-bus-monitor-%p", (void *)bus);
        if (zmq_socket_monitor(z->sock, addr, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) == 0) {
            z->monitor = zmq_socket(cfg->zmq_ctx, ZMQ_PAIR);
            if (z->monitor && zmq_connect(z->monitor, addr) == 0)
                z->monitor_ev = s_fd_event(bus, z->monitor, s_monitor);
        }
    }
    char *list = strdup(cfg->zmq_endpoints ? cfg->zmq_endpoints : "");
    if (!list) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    int count = 0, rc = 0;
    for (char *save = NULL, *ep = strtok_r(list, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
        while (*ep == ' ')
            ep++;
        if (!*ep)
            continue;
        if ((pub ? zmq_bind(z->sock, ep) : zmq_connect(z->sock, ep)) < 0) {
            snprintf(err, errcap, "cannot %s %s: %s", pub ? "bind" : "connect to", ep,
                     zmq_strerror(zmq_errno()));
            rc = -1;
            break;
        }
        count++;
    }
    free(list);
    if (rc < 0)
        return -1;
    if (count == 0) {
        snprintf(err, errcap, "zmq fan-out: no endpoint");
        return -1;
    }
    if (pub) {
        z->bound = count;
        z->ev = s_fd_event(bus, z->sock, s_pub_commands);
        if (!z->ev) {
            snprintf(err, errcap, "cannot watch the PUB socket");
            return -1;
        }
    } else {
        z->ev = s_fd_event(bus, z->sock, s_drain);
        if (!z->ev) {
            snprintf(err, errcap, "cannot watch the SUB socket");
            return -1;
        }
    }
    return 0;
}
