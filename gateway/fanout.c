/*  fanout - the gateway's side of the broker -> gateway fan-out
 *
 *  ZMQ_FD is edge-triggered: the callback drains the socket while messages
 *  come, and after every subscription change (which may process pending
 *  commands) the drain is re-activated by hand. A drain handles at most
 *  FANOUT_BUDGET messages per turn and re-activates itself, so a flood from
 *  the broker cannot starve client I/O.
 *
 *  Per room (fo_room_t, attached to the room index entry):
 *    last       the last seq delivered here. A fresh subscription starts at
 *               the gateway's view of the global head (a lower bound of the
 *               head at the moment the first member joined), so a message
 *               committed after the join but published before the broker saw
 *               the subscription (the slow joiner) is replayed, not lost.
 *    replaying  a replay is in flight: live messages wait in the room's
 *               queue (bounded) and are processed after it, in order.
 *  A replay that cannot be completed (the broker no longer has the range)
 *  resets `last` to unknown and lets the queue through: what is gone is
 *  gone, and clients learn it when they try to recover.
 *
 *  Requests in flight point at their room through a context the room clears
 *  when it is freed, so a reply for a room that emptied meanwhile is dropped.
 */
#include "fanout.h"
#include "upstream.h"
#include "sock.h"
#include "session.h"
#include "sio.h"
#include "log.h"

#include <zmq.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FANOUT_BUDGET 2048
#define FANOUT_QUEUE_MAX 100000     /* messages waiting behind a replay, per room */
#define FANOUT_REPLAY_LIMIT 1000
#define FANOUT_POSITIONS_MAX 1000

static const char HB_TOPIC[] = "\x01hb";    /* + the NUL: 4 bytes */

const double fanout_lat_bounds[FANOUT_LAT_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

typedef struct qmsg {
    struct qmsg *next;
    size_t len;
    uint8_t data[];             //  The envelope as received
} qmsg_t;

typedef struct fo_req fo_req_t;

typedef struct {
    room_t *room;               //  The index entry this state belongs to
    uint64_t last;              //  Last seq delivered; 0 = unknown (accept anything)
    int replaying;              //  A replay request is in flight
    qmsg_t *qhead, *qtail;      //  Live messages waiting for the replay
    size_t qlen;
    fo_req_t *replay_req;       //  The replay in flight
    fo_req_t *pos_req;          //  A positions request that includes this room
    size_t pos_idx;             //  Its index in that request
} fo_room_t;

struct fo_req {
    fanout_t *f;
    size_t n;                   //  Rooms asked about
    fo_room_t *rooms[];         //  NULL when the room went away meanwhile
};

struct fanout {
    gw_t *gw;                   //  Gateway context
    void *sub;                  //  SUB socket
    struct event *ev;           //  Readable event on ZMQ_FD (and manual activation)
    void *monitor;              //  PAIR socket receiving the SUB socket's events
    struct event *monitor_ev;
    struct event *resync;       //  Periodic positions check
    struct event *soon;         //  One check shortly after new subscriptions
    int connected;              //  Brokers currently connected
    uint64_t head;              //  Highest seq seen (messages and heartbeats)
    fanout_stats_t stats;
};

static void s_check_rooms(fanout_t *f);

/* Records created_at -> now for a message delivered live. */
static void s_latency(fanout_t *f, int64_t ts_us)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double lat = (double)((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 - ts_us) / 1e6;
    if (lat < 0)
        lat = 0;
    f->stats.lat_count++;
    f->stats.lat_sum_s += lat;
    for (int i = 0; i < FANOUT_LAT_BUCKETS; i++)
        if (lat <= fanout_lat_bounds[i])
            f->stats.lat_bucket[i]++;
}

/* ---- encoding ------------------------------------------------------------ */

pkt_t *fanout_encode(const gw_t *gw, const env_msg_t *m)
{
    char head[512];
    head[0] = '4';
    int hl = sio_encode_header(head + 1, sizeof head - 1, SIO_EVENT, m->nsp, m->nsp_len, 0, -1);
    if (hl < 0)
        return NULL;
    hl += 1;
    size_t ecap = m->event_len * 6 + 3;   /* worst case \u00XX per byte, quotes, NUL */
    char ebuf[1024];
    char *ename = ecap <= sizeof ebuf ? ebuf : malloc(ecap);
    if (!ename)
        return NULL;
    int el = sio_json_string(ename, ecap, m->event, m->event_len);
    char off[32];
    int ol = 0;
    if (gw->cfg.recovery && m->seq)
        ol = snprintf(off, sizeof off, ",\"%llu\"", (unsigned long long)m->seq);
    pkt_t *p = NULL;
    if (el >= 0) {
        size_t len = (size_t)hl + 1 + (size_t)el + 1 + m->data_len + (size_t)ol + 1;
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
            memcpy(t, off, (size_t)ol);
            t += ol;
            *t = ']';
        }
    }
    if (ename != ebuf)
        free(ename);
    return p;
}

/* ---- delivery ------------------------------------------------------------ */

static void s_deliver(fanout_t *f, room_t *room, const env_msg_t *m)
{
    pkt_t *p = fanout_encode(f->gw, m);
    if (!p) {
        log_error("event=encode_failed seq=%llu", (unsigned long long)m->seq);
        return;
    }
    /* Sessions close lazily (see session.h), so the member array does not
     * change while we walk it. */
    size_t n = room_size(room);
    void *const *members = room_members(room);
    for (size_t i = 0; i < n; i++)
        sock_deliver(members[i], p, m->seq);
    pkt_release(p);
}

/* ---- per-room state ------------------------------------------------------ */

static void s_queue_push(fo_room_t *fr, const void *data, size_t len, int at_head)
{
    qmsg_t *q = malloc(sizeof *q + len);
    if (!q)
        return;
    q->len = len;
    memcpy(q->data, data, len);
    if (at_head) {
        q->next = fr->qhead;
        fr->qhead = q;
        if (!fr->qtail)
            fr->qtail = q;
    } else {
        q->next = NULL;
        if (fr->qtail)
            fr->qtail->next = q;
        else
            fr->qhead = q;
        fr->qtail = q;
    }
    fr->qlen++;
}

static qmsg_t *s_queue_pop(fo_room_t *fr)
{
    qmsg_t *q = fr->qhead;
    if (q) {
        fr->qhead = q->next;
        if (!fr->qhead)
            fr->qtail = NULL;
        fr->qlen--;
    }
    return q;
}

static void s_queue_clear(fo_room_t *fr)
{
    qmsg_t *q;
    while ((q = s_queue_pop(fr)) != NULL)
        free(q);
}

static void s_start_replay(fanout_t *f, fo_room_t *fr);

enum { P_DONE, P_REPLAY };

/* Delivers m if it is next for its room. Returns P_REPLAY when a gap shows
 * that a replay must come first (m not delivered). */
static int s_process(fanout_t *f, fo_room_t *fr, const env_msg_t *m)
{
    if (m->seq == 0) {
        s_deliver(f, fr->room, m);          /* ephemeral */
        return P_DONE;
    }
    if (m->seq > f->head)
        f->head = m->seq;
    if (fr->last && m->seq <= fr->last) {
        f->stats.duplicates++;
        return P_DONE;
    }
    if (fr->last && m->prev > fr->last) {
        f->stats.gaps++;
        log_info("event=gap room_seq=%llu prev=%llu seq=%llu", (unsigned long long)fr->last,
                 (unsigned long long)m->prev, (unsigned long long)m->seq);
        return P_REPLAY;
    }
    s_deliver(f, fr->room, m);
    fr->last = m->seq;
    if (m->ts_us > 0)
        s_latency(f, m->ts_us);
    return P_DONE;
}

/* Processes queued messages until the queue is empty or a replay starts. */
static void s_flush_queue(fanout_t *f, fo_room_t *fr)
{
    while (!fr->replaying && fr->qhead) {
        qmsg_t *q = s_queue_pop(fr);
        env_msg_t m;
        if (env_decode(q->data, q->len, &m) == 0 && s_process(f, fr, &m) == P_REPLAY) {
            s_queue_push(fr, q->data, q->len, 1);
            s_start_replay(f, fr);
        }
        free(q);
    }
}

static void s_replay_failed(fanout_t *f, fo_room_t *fr, const char *why)
{
    f->stats.replay_failures++;
    size_t kl;
    const char *key = room_key(fr->room, &kl);
    log_warn("event=replay_failed nsp=%s room=%s after=%llu reason=\"%s\"", key, key + strlen(key) + 1,
             (unsigned long long)fr->last, why);
    fr->replaying = 0;
    fr->last = 0;           /* unknown: take what comes */
    s_flush_queue(f, fr);
}

static void s_replay_reply(void *arg, const msgpack_object *reply, const char *error)
{
    fo_req_t *req = arg;
    fanout_t *f = req->f;
    fo_room_t *fr = req->rooms[0];
    free(req);
    if (!fr)
        return;                         /* the room emptied meanwhile */
    if (error == up_cancelled) {
        fr->replay_req = NULL;
        fr->replaying = 0;
        return;
    }
    fr->replay_req = NULL;
    const msgpack_object *msgs = up_get(reply, "msgs");
    if (error || !msgs || msgs->type != MSGPACK_OBJECT_ARRAY) {
        s_replay_failed(f, fr, error ? error : "bad reply");
        return;
    }
    for (uint32_t i = 0; i < msgs->via.array.size; i++) {
        const msgpack_object *o = &msgs->via.array.ptr[i];
        env_msg_t m;
        if ((o->type != MSGPACK_OBJECT_BIN && o->type != MSGPACK_OBJECT_STR) ||
            env_decode(o->via.bin.ptr, o->via.bin.size, &m) < 0)
            continue;
        if (m.seq > fr->last) {
            s_deliver(f, fr->room, &m);
            fr->last = m.seq;
            f->stats.replayed++;
        }
    }
    const msgpack_object *more = up_get(reply, "more");
    if (more && more->type == MSGPACK_OBJECT_BOOLEAN && more->via.boolean &&
        msgs->via.array.size > 0) {
        fr->replaying = 0;
        s_start_replay(f, fr);          /* the next page */
        return;
    }
    fr->replaying = 0;
    s_flush_queue(f, fr);
}

static void s_start_replay(fanout_t *f, fo_room_t *fr)
{
    if (fr->replaying)
        return;
    fo_req_t *req = malloc(sizeof *req + sizeof(fo_room_t *));
    if (!req) {
        s_replay_failed(f, fr, "out of memory");
        return;
    }
    req->f = f;
    req->n = 1;
    req->rooms[0] = fr;
    fr->replaying = 1;
    fr->replay_req = req;
    size_t kl;
    const char *key = room_key(fr->room, &kl);
    size_t nl = strlen(key);
    msgpack_packer *pk = up_begin(f->gw->upstream, "replay", 4);
    up_pack_str(pk, "ns", 2);
    up_pack_str(pk, key, nl);
    up_pack_str(pk, "rooms", 5);
    msgpack_pack_array(pk, 1);
    up_pack_str(pk, key + nl + 1, kl - nl - 2);
    up_pack_str(pk, "after", 5);
    msgpack_pack_uint64(pk, fr->last);
    up_pack_str(pk, "limit", 5);
    msgpack_pack_uint32(pk, FANOUT_REPLAY_LIMIT);
    up_send(f->gw->upstream, s_replay_reply, req, NULL, f->gw->cfg.rpc_timeout_ms);
}

/* ---- positions (clone pattern, lost tails, new leaders) ------------------ */

static void s_positions_reply(void *arg, const msgpack_object *reply, const char *error)
{
    fo_req_t *req = arg;
    fanout_t *f = req->f;
    const msgpack_object *seqs = up_get(reply, "seqs");
    int ok = !error && seqs && seqs->type == MSGPACK_OBJECT_ARRAY && seqs->via.array.size == req->n;
    for (size_t i = 0; i < req->n; i++) {
        fo_room_t *fr = req->rooms[i];
        if (!fr)
            continue;
        fr->pos_req = NULL;
        if (!ok)
            continue;
        const msgpack_object *o = &seqs->via.array.ptr[i];
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            continue;
        if (o->via.u64 > fr->last && !fr->replaying) {
            f->stats.resyncs++;
            s_start_replay(f, fr);
        }
    }
    if (error)
        log_debug("event=positions_failed reason=\"%s\"", error);
    free(req);
}

static int s_key_cmp(const void *a, const void *b)
{
    const fo_room_t *x = *(fo_room_t *const *)a, *y = *(fo_room_t *const *)b;
    size_t xl, yl;
    const char *xk = room_key(x->room, &xl), *yk = room_key(y->room, &yl);
    int c = memcmp(xk, yk, xl < yl ? xl : yl);
    return c ? c : (xl > yl) - (xl < yl);
}

/* Sends `positions` for rooms[0..n), all of one namespace. */
static void s_send_positions(fanout_t *f, fo_room_t **rooms, size_t n)
{
    fo_req_t *req = malloc(sizeof *req + n * sizeof(fo_room_t *));
    if (!req)
        return;
    req->f = f;
    req->n = n;
    size_t kl;
    const char *key = room_key(rooms[0]->room, &kl);
    size_t nl = strlen(key);
    msgpack_packer *pk = up_begin(f->gw->upstream, "positions", 2);
    up_pack_str(pk, "ns", 2);
    up_pack_str(pk, key, nl);
    up_pack_str(pk, "rooms", 5);
    msgpack_pack_array(pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        req->rooms[i] = rooms[i];
        rooms[i]->pos_req = req;
        rooms[i]->pos_idx = i;
        const char *k = room_key(rooms[i]->room, &kl);
        up_pack_str(pk, k + nl + 1, kl - nl - 2);
    }
    up_send(f->gw->upstream, s_positions_reply, req, NULL, f->gw->cfg.rpc_timeout_ms);
}

/* Checks every room not already being checked or replayed. */
static void s_check_rooms(fanout_t *f)
{
    rooms_t *rooms = f->gw->rooms;
    size_t total = rooms_count(rooms), n = 0, pos = 0;
    if (total == 0 || !up_ready(f->gw->upstream))
        return;
    fo_room_t **list = malloc(total * sizeof *list);
    if (!list)
        return;
    room_t *room;
    while ((room = rooms_next(rooms, &pos)) != NULL) {
        fo_room_t *fr = room_data(room);
        if (fr && !fr->replaying && !fr->pos_req)
            list[n++] = fr;
    }
    qsort(list, n, sizeof *list, s_key_cmp);
    size_t i = 0;
    while (i < n) {
        size_t kl;
        const char *key = room_key(list[i]->room, &kl);
        size_t nl = strlen(key), j = i + 1;
        while (j < n && j - i < FANOUT_POSITIONS_MAX) {
            size_t kl2;
            const char *k2 = room_key(list[j]->room, &kl2);
            if (strlen(k2) != nl || memcmp(k2, key, nl) != 0)
                break;
            j++;
        }
        s_send_positions(f, list + i, j - i);
        i = j;
    }
    free(list);
}

static void s_resync_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    s_check_rooms(arg);
}

void fanout_on_epoch(void *arg, const char *epoch, size_t len)
{
    fanout_t *f = arg;
    log_info("event=broker_epoch epoch=%.*s", (int)len, epoch);
    s_check_rooms(f);
}

void fanout_room_sub(void *arg, room_t *room, int subscribe)
{
    fanout_t *f = arg;
    if (!f)
        return;
    size_t klen;
    const char *key = room_key(room, &klen);
    if (subscribe) {
        fo_room_t *fr = calloc(1, sizeof *fr);
        if (fr) {
            fr->room = room;
            fr->last = f->head;         /* a lower bound of the head at the join */
            room_set_data(room, fr);
        }
        /* a message published before the broker saw this subscription is
         * found by a positions check shortly after, not at the next resync */
        if (!event_pending(f->soon, EV_TIMEOUT, NULL)) {
            struct timeval tv = { 0, 200000 };
            event_add(f->soon, &tv);
        }
    } else {
        fo_room_t *fr = room_data(room);
        if (fr) {
            if (fr->replay_req)
                fr->replay_req->rooms[0] = NULL;
            if (fr->pos_req)
                fr->pos_req->rooms[fr->pos_idx] = NULL;
            s_queue_clear(fr);
            free(fr);
            room_set_data(room, NULL);
        }
    }
    if (zmq_setsockopt(f->sub, subscribe ? ZMQ_SUBSCRIBE : ZMQ_UNSUBSCRIBE, key, klen) < 0)
        log_error("event=zmq_error op=%s reason=\"%s\"", subscribe ? "subscribe" : "unsubscribe",
                  zmq_strerror(zmq_errno()));
    /* the option call may have consumed the edge of ZMQ_FD */
    event_active(f->ev, EV_READ, 0);
}

/* ---- receiving ----------------------------------------------------------- */

static void s_heartbeat(fanout_t *f, const void *body, size_t blen)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    uint64_t seq;
    if (blen < 4096 && msgpack_unpack_next(&u, body, blen, &off) == MSGPACK_UNPACK_SUCCESS &&
        up_get_u64(&u.data, "seq", &seq) == 0 && seq > f->head)
        f->head = seq;
    msgpack_unpacked_destroy(&u);
}

static void s_message(fanout_t *f, const void *topic, size_t tlen, const void *body, size_t blen)
{
    gw_t *gw = f->gw;
    if (tlen == sizeof HB_TOPIC && memcmp(topic, HB_TOPIC, sizeof HB_TOPIC) == 0) {
        s_heartbeat(f, body, blen);
        return;
    }
    env_msg_t m;
    if (env_decode(body, blen, &m) < 0) {
        gw->stats.bad_envelopes++;
        log_warn("event=bad_envelope bytes=%zu", blen);
        return;
    }
    gw->stats.messages_in++;
    room_t *room = rooms_find(gw->rooms, topic, tlen);
    fo_room_t *fr = room ? room_data(room) : NULL;
    if (!fr) {
        if (m.seq > f->head)
            f->head = m.seq;
        return;                     /* unsubscribed a moment ago */
    }
    if (fr->replaying) {
        if (fr->qlen >= FANOUT_QUEUE_MAX) {
            s_queue_clear(fr);
            log_warn("event=replay_queue_overflow");
            f->stats.replay_failures++;
        }
        s_queue_push(fr, body, blen, 0);
        return;
    }
    if (s_process(f, fr, &m) == P_REPLAY) {
        s_queue_push(fr, body, blen, 0);
        s_start_replay(f, fr);
    }
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
        s_message(f, zmq_msg_data(&topic), zmq_msg_size(&topic), zmq_msg_data(&body),
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

/* ---- lifecycle ----------------------------------------------------------- */

static struct event *s_fd_event(fanout_t *f, void *sock, event_callback_fn cb)
{
    int fd;
    size_t sz = sizeof fd;
    if (zmq_getsockopt(sock, ZMQ_FD, &fd, &sz) < 0)
        return NULL;
    struct event *ev = event_new(f->gw->base, fd, EV_READ | EV_PERSIST, cb, f);
    if (ev) {
        event_add(ev, NULL);
        /* ZMQ_FD is edge-triggered: what arrived before we watched it
         * (a monitor's CONNECTED event) would otherwise never be read */
        event_active(ev, EV_READ, 0);
    }
    return ev;
}

fanout_t *fanout_new(gw_t *gw, const char *pub_endpoints)
{
    fanout_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->gw = gw;
    f->sub = zmq_socket(gw->zctx, ZMQ_SUB);
    if (!f->sub) {
        log_error("event=zmq_error reason=\"%s\"", zmq_strerror(zmq_errno()));
        goto fail;
    }
    int hwm = (int)gw->cfg.sub_hwm, zero = 0;
    zmq_setsockopt(f->sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(f->sub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(f->sub, ZMQ_SUBSCRIBE, HB_TOPIC, sizeof HB_TOPIC);
    if (zmq_socket_monitor(f->sub, "inproc://belfry-sub-monitor",
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) == 0) {
        f->monitor = zmq_socket(gw->zctx, ZMQ_PAIR);
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
    f->resync = event_new(gw->base, -1, EV_PERSIST, s_resync_cb, f);
    f->soon = event_new(gw->base, -1, 0, s_resync_cb, f);
    if (!f->ev || !f->resync || !f->soon)
        goto fail;
    struct timeval tv = { gw->cfg.resync_interval_ms / 1000, (gw->cfg.resync_interval_ms % 1000) * 1000 };
    event_add(f->resync, &tv);
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
    if (f->resync)
        event_free(f->resync);
    if (f->soon)
        event_free(f->soon);
    if (f->monitor_ev)
        event_free(f->monitor_ev);
    if (f->monitor) {
        int zero = 0;
        zmq_setsockopt(f->monitor, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(f->monitor);
    }
    if (f->sub)
        zmq_close(f->sub);
    free(f);
    *self_p = NULL;
}

int fanout_ready(const fanout_t *self)
{
    return self && self->connected > 0;
}

const fanout_stats_t *fanout_stats(const fanout_t *self)
{
    return &self->stats;
}
