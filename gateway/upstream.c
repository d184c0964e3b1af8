/*  upstream - the gateway's RPC client to the brokers (ZeroMQ DEALER)
 *
 *  Pending requests live in a map by id and a doubly linked list (for
 *  cancellation by arg); each has its own timeout event. A reply with an
 *  unknown id (late, after its timeout) is dropped. Sockets use
 *  ZMQ_IMMEDIATE, so a request to a broker that is not connected fails at
 *  once instead of waiting in a queue for a peer that may never come back.
 *  Callbacks never run inside up_send: failures are reported from a
 *  zero-delay timer, so callers need not be re-entrant.
 */
#include "upstream.h"
#include "map.h"
#include "log.h"
#include "envelope.h"

#include <zmq.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define UP_PING_MS 1000
#define UP_LEADER_FRESH_MS 3000
#define UP_REPLY_MAX (64 * 1024 * 1024)
#define UP_HWM 100000           /* requests (and replies) queued per broker, each way */

typedef struct pending pending_t;

typedef struct {
    upstream_t *up;             //  Owner
    void *sock;                 //  DEALER socket
    struct event *ev;           //  ZMQ_FD readable
    int64_t leader_at;          //  Monotonic ms of the last "leader": true, 0 if never
    char endpoint[256];         //  For logs
} up_peer_t;

struct pending {
    upstream_t *up;             //  Owner
    uint64_t id;                //  Request id
    up_reply_fn *cb;            //  Callback
    void *arg;                  //  Its argument
    void *owner;                //  For up_cancel_owner
    struct event *timer;        //  Timeout (or immediate failure)
    const char *fail;           //  Reason reported when the timer fires
    pending_t *prev, *next;     //  All pending requests
};

struct upstream {
    gw_t *gw;                   //  Gateway context
    up_peer_t *peers;           //  One per broker endpoint
    size_t npeers;
    int leader;                 //  Index of the leading peer, -1 if none
    map_t *pending;             //  id (8 bytes) -> pending_t
    pending_t *head;            //  List of pending requests
    uint64_t next_id;           //  Last id used
    msgpack_sbuffer sb;         //  Request being built
    msgpack_packer pk;
    struct event *ping;         //  Ping timer
    struct event *fast_ping;    //  Sooner pings while no broker is known to lead
    up_epoch_fn *on_epoch;      //  Leader epoch change callback
    void *arg;
    char epoch[128];            //  Last epoch seen from a leader
    size_t epoch_len;
};

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- msgpack helpers ----------------------------------------------------- */

void up_pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

const msgpack_object *up_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
            memcmp(k->via.str.ptr, key, kl) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

int up_get_str(const msgpack_object *map, const char *key, const char **s, size_t *len)
{
    const msgpack_object *v = up_get(map, key);
    if (!v || v->type != MSGPACK_OBJECT_STR)
        return -1;
    *s = v->via.str.ptr;
    *len = v->via.str.size;
    return 0;
}

int up_get_u64(const msgpack_object *map, const char *key, uint64_t *out)
{
    const msgpack_object *v = up_get(map, key);
    if (!v || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return -1;
    *out = v->via.u64;
    return 0;
}

/* ---- pending requests ---------------------------------------------------- */

static void s_unlink(upstream_t *up, pending_t *p)
{
    map_remove(up->pending, &p->id, sizeof p->id);
    if (p->prev)
        p->prev->next = p->next;
    else
        up->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    event_free(p->timer);
    free(p);
}

static void s_fire(upstream_t *up, pending_t *p, const msgpack_object *reply, const char *error)
{
    up_reply_fn *cb = p->cb;
    void *arg = p->arg;
    s_unlink(up, p);
    if (cb)
        cb(arg, reply, error);
}

static void s_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    pending_t *p = arg;
    (void)fd;
    (void)what;
    s_fire(p->up, p, NULL, p->fail ? p->fail : "broker did not answer in time");
}

const char up_cancelled[] = "cancelled";

static pending_t *s_pending_new(upstream_t *up, uint64_t id, up_reply_fn *cb, void *arg,
                                void *owner, long timeout_ms, const char *fail)
{
    pending_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->up = up;
    p->id = id;
    p->cb = cb;
    p->arg = arg;
    p->owner = owner;
    p->fail = fail;
    p->timer = event_new(up->gw->base, -1, 0, s_timer_cb, p);
    if (!p->timer || map_put(up->pending, &p->id, sizeof p->id, p) < 0) {
        if (p->timer)
            event_free(p->timer);
        free(p);
        return NULL;
    }
    p->next = up->head;
    if (up->head)
        up->head->prev = p;
    up->head = p;
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    event_add(p->timer, &tv);
    return p;
}

void up_cancel_owner(upstream_t *up, void *owner)
{
    pending_t *p = up->head;
    while (p) {
        pending_t *next = p->next;
        if (p->owner == owner) {
            s_fire(up, p, NULL, up_cancelled);
            next = up->head;        /* the callback may have changed the list */
        }
        p = next;
    }
}

/* ---- sending ------------------------------------------------------------- */

msgpack_packer *up_begin(upstream_t *up, const char *op, uint32_t nfields)
{
    msgpack_sbuffer_clear(&up->sb);
    msgpack_pack_map(&up->pk, nfields + 2);
    size_t ol = strlen(op);
    msgpack_pack_str(&up->pk, 2);
    msgpack_pack_str_body(&up->pk, "op", 2);
    msgpack_pack_str(&up->pk, ol);
    msgpack_pack_str_body(&up->pk, op, ol);
    msgpack_pack_str(&up->pk, 2);
    msgpack_pack_str_body(&up->pk, "id", 2);
    msgpack_pack_uint64(&up->pk, ++up->next_id);
    return &up->pk;
}

/* Sends the built request to one peer; 0 or -1. */
static int s_send_to(upstream_t *up, up_peer_t *peer)
{
    int rc = zmq_send(peer->sock, up->sb.data, up->sb.size, ZMQ_DONTWAIT);
    /* a send may consume the ZMQ_FD edge: look again from the loop */
    event_active(peer->ev, EV_READ, 0);
    return rc < 0 ? -1 : 0;
}

static int s_leader(const upstream_t *up)
{
    if (up->leader < 0)
        return -1;
    if (s_now_ms() - up->peers[up->leader].leader_at > UP_LEADER_FRESH_MS)
        return -1;
    return up->leader;
}

uint64_t up_send(upstream_t *up, up_reply_fn *cb, void *arg, void *owner, long timeout_ms)
{
    uint64_t id = up->next_id;
    int l = s_leader(up);
    const char *fail = NULL;
    if (l < 0)
        fail = "no broker leads";
    else if (s_send_to(up, &up->peers[l]) < 0)
        fail = "broker unreachable";
    if (!s_pending_new(up, id, cb, arg, owner, fail ? 0 : timeout_ms, fail))
        log_error("event=rpc_oom id=%llu", (unsigned long long)id);
    return id;
}

/* ---- ping and leader tracking -------------------------------------------- */

static void s_ping_reply(void *arg, const msgpack_object *reply, const char *error)
{
    up_peer_t *peer = arg;
    upstream_t *up = peer->up;
    if (!reply || error)
        return;
    const msgpack_object *lead = up_get(reply, "leader");
    if (!lead || lead->type != MSGPACK_OBJECT_BOOLEAN || !lead->via.boolean)
        return;
    peer->leader_at = s_now_ms();
    int idx = (int)(peer - up->peers);
    if (up->leader != idx) {
        up->leader = idx;
        log_info("event=broker_leader endpoint=%s", peer->endpoint);
    }
    const char *ep;
    size_t el;
    if (up_get_str(reply, "epoch", &ep, &el) == 0 && el < sizeof up->epoch &&
        (el != up->epoch_len || memcmp(ep, up->epoch, el) != 0)) {
        memcpy(up->epoch, ep, el);
        up->epoch_len = el;
        up->epoch[el] = 0;
        if (up->on_epoch)
            up->on_epoch(up->arg, up->epoch, el);
    }
}

static void s_ping_cb(evutil_socket_t fd, short what, void *arg)
{
    upstream_t *up = arg;
    (void)fd;
    (void)what;
    /* while no broker is known to lead (start, failover), ask ten times as
     * often: requests fail with "no broker leads" until one is found */
    if (s_leader(up) < 0 && up->fast_ping && !event_pending(up->fast_ping, EV_TIMEOUT, NULL)) {
        struct timeval fast = { 0, 100000 };
        event_add(up->fast_ping, &fast);
    }
    for (size_t i = 0; i < up->npeers; i++) {
        up_begin(up, "ping", 0);
        uint64_t id = up->next_id;
        if (s_send_to(up, &up->peers[i]) == 0)
            s_pending_new(up, id, s_ping_reply, &up->peers[i], NULL, UP_PING_MS, NULL);
    }
}

/* ---- receiving ----------------------------------------------------------- */

static void s_recv_cb(evutil_socket_t fd, short what, void *arg)
{
    up_peer_t *peer = arg;
    upstream_t *up = peer->up;
    (void)fd;
    (void)what;
    for (int budget = 0; budget < 1024; budget++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, peer->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        if (zmq_msg_size(&m) == 0 && zmq_msg_more(&m)) {   /* delimiter */
            zmq_msg_close(&m);
            continue;
        }
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        uint64_t id;
        if (zmq_msg_size(&m) <= UP_REPLY_MAX &&
            env_msgpack_check(zmq_msg_data(&m), zmq_msg_size(&m)) == 0 &&
            msgpack_unpack_next(&u, zmq_msg_data(&m), zmq_msg_size(&m), &off) ==
                MSGPACK_UNPACK_SUCCESS &&
            up_get_u64(&u.data, "id", &id) == 0) {
            pending_t *p = map_get(up->pending, &id, sizeof id);
            if (p) {
                const char *err = NULL;
                size_t errl = 0;
                char errbuf[256];
                if (up_get_str(&u.data, "error", &err, &errl) == 0) {
                    snprintf(errbuf, sizeof errbuf, "%.*s", (int)errl, err);
                    err = errbuf;
                } else {
                    err = NULL;
                }
                s_fire(up, p, &u.data, err);
            }
        } else {
            log_warn("event=rpc_bad_reply endpoint=%s bytes=%zu", peer->endpoint, zmq_msg_size(&m));
        }
        msgpack_unpacked_destroy(&u);
        zmq_msg_close(&m);
    }
    event_active(peer->ev, EV_READ, 0);
}

/* ---- lifecycle ----------------------------------------------------------- */

upstream_t *up_new(gw_t *gw, void *zctx, const char *endpoints, up_epoch_fn *on_epoch, void *arg)
{
    upstream_t *up = calloc(1, sizeof *up);
    if (!up)
        return NULL;
    up->gw = gw;
    up->leader = -1;
    up->on_epoch = on_epoch;
    up->arg = arg;
    up->pending = map_new();
    msgpack_sbuffer_init(&up->sb);
    msgpack_packer_init(&up->pk, &up->sb, msgpack_sbuffer_write);
    char *list = strdup(endpoints ? endpoints : "");
    if (!up->pending || !list)
        goto fail;
    size_t n = 1;
    for (const char *c = list; *c; c++)
        n += *c == ',';
    up->peers = calloc(n, sizeof *up->peers);
    if (!up->peers)
        goto fail;
    for (char *save = NULL, *ep = strtok_r(list, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
        while (*ep == ' ')
            ep++;
        up_peer_t *peer = &up->peers[up->npeers];
        peer->up = up;
        snprintf(peer->endpoint, sizeof peer->endpoint, "%s", ep);
        peer->sock = zmq_socket(zctx, ZMQ_DEALER);
        int one = 1, zero = 0;
        if (!peer->sock)
            goto fail;
        up->npeers++;
        zmq_setsockopt(peer->sock, ZMQ_IMMEDIATE, &one, sizeof one);
        zmq_setsockopt(peer->sock, ZMQ_LINGER, &zero, sizeof zero);
        /* ZeroMQ's default of 1,000 messages each way refused the 1,001st
         * request of a burst at once ("broker unreachable"): a storm of
         * 5,000 reconnecting sessions on one gateway sends a recover, an
         * unread and a session_put each (make bench storm, 2026-12-02:
         * 2,679 of 10,000 recoveries failed so). The broker's ROUTER holds
         * as many (RPC_SNDHWM). */
        int hwm = UP_HWM;
        zmq_setsockopt(peer->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(peer->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
        if (zmq_connect(peer->sock, ep) < 0) {
            log_error("event=config_error setting=--broker-rpc endpoint=\"%s\" reason=\"%s\"", ep,
                      zmq_strerror(zmq_errno()));
            goto fail;
        }
        int zfd;
        size_t sz = sizeof zfd;
        zmq_getsockopt(peer->sock, ZMQ_FD, &zfd, &sz);
        peer->ev = event_new(gw->base, zfd, EV_READ | EV_PERSIST, s_recv_cb, peer);
        if (!peer->ev)
            goto fail;
        event_add(peer->ev, NULL);
        event_active(peer->ev, EV_READ, 0);     /* ZMQ_FD is edge-triggered */
    }
    if (up->npeers == 0) {
        log_error("event=config_error setting=--broker-rpc reason=\"no endpoint\"");
        goto fail;
    }
    free(list);
    up->ping = event_new(gw->base, -1, EV_PERSIST, s_ping_cb, up);
    up->fast_ping = event_new(gw->base, -1, 0, s_ping_cb, up);
    if (!up->ping || !up->fast_ping)
        goto fail_nolist;
    struct timeval tv = { UP_PING_MS / 1000, (UP_PING_MS % 1000) * 1000 };
    event_add(up->ping, &tv);
    s_ping_cb(-1, 0, up);       /* find the leader now, not in a second */
    return up;
fail:
    free(list);
fail_nolist:
    up_destroy(&up);
    return NULL;
}

void up_destroy(upstream_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    upstream_t *up = *self_p;
    while (up->head)
        s_fire(up, up->head, NULL, up_cancelled);
    if (up->ping)
        event_free(up->ping);
    if (up->fast_ping)
        event_free(up->fast_ping);
    for (size_t i = 0; i < up->npeers; i++) {
        if (up->peers[i].ev)
            event_free(up->peers[i].ev);
        zmq_close(up->peers[i].sock);
    }
    free(up->peers);
    map_destroy(&up->pending);
    msgpack_sbuffer_destroy(&up->sb);
    free(up);
    *self_p = NULL;
}

int up_ready(const upstream_t *up)
{
    return up && s_leader(up) >= 0;
}
