/*  fanout - the gateway's side of the broker -> gateway fan-out
 *
 *  The transport is common/bus (--fanout zmq|redis|nats): it delivers
 *  (topic, envelope) pairs on the loop, at most a budget per loop turn so a
 *  flood from the broker cannot starve client I/O, re-subscribes after a
 *  reconnect, and says whether it is connected (fanout_ready). The room
 *  index drives the bus subscriptions; the heartbeat topic is always held.
 *
 *  Per room (fo_room_t, attached to the room index entry):
 *    last       the last seq delivered here. A fresh subscription follows
 *               the clone pattern: subscribe, ask the leading broker for its
 *               head (a ping: seqs are global, so every message published
 *               after the answer is above it, whichever its room), drop what
 *               is at or below it; live messages that arrive meanwhile wait
 *               in the room's queue. Messages up to the position are the
 *               past (a client gets its unread snapshot for that), after it
 *               the live stream. The periodic check (`positions`, the
 *               rooms' own last seqs) finds a lost tail.
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
#include "bus.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FANOUT_QUEUE_MAX 100000     /* messages waiting behind a replay, per room */
#define FANOUT_REPLAY_LIMIT 1000
#define FANOUT_POSITIONS_MAX 1000
#define FANOUT_LEADER_WAIT_MS 3000  /* a fresh room waits this long for a leader's position */
#define FANOUT_LEADER_POLL_MS 50
/* Client packets queued in one loop turn before the fan-out lets the turn's
 * writes go out (bus_set_yield). A broadcast to 5,000 sockets queues 5,000
 * per message: taking 200 such messages in one turn queued a million
 * packets (~100 MB) before the first byte was written, and a quarter of the
 * gateway's time went to the kernel zeroing fresh heap pages for them (perf,
 * `make bench` broadcast, 2026-12-02; freed in one go, such a heap goes back
 * to the kernel above M_TRIM_THRESHOLD and is faulted in again). With the
 * limit (~40 MB of packets) the turn's memory is reused. 100,000 wrote 20
 * messages per writev: more system calls and TCP segments for the same
 * bytes (server CPU 2.66-2.95 s, 605-645k deliveries/s in alternating
 * runs, against 2.42-2.48 s and 781-794k/s with 400,000). */
#define FANOUT_TURN_OUT 400000

static const char HB_TOPIC[] = "\x01hb";    /* + the NUL: 4 bytes */

static const double s_lat_bounds[] = {
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
    uint64_t last;              //  Last seq delivered (or the position), if known
    int known;                  //  last is known; if not, accept anything (and
                                //  adopt the broker's position at the next check)
    int replaying;              //  A replay request is in flight
    int positioning;            //  Fresh subscription: waiting for the room's position
    int64_t pos_since_ms;       //  Monotonic ms it started waiting
    int in_fresh;               //  Listed in f->fresh (at fresh_idx)
    size_t fresh_idx;
    qmsg_t *qhead, *qtail;      //  Live messages waiting for the replay
    size_t qlen;
    fo_req_t *replay_req;       //  The replay in flight
    fo_req_t *pos_req;          //  A positions request that includes this room
    size_t pos_idx;             //  Its index in that request
    int unknown_ok;             //  A replay just verified the room: the next
                                //  message with an unknown prev is accepted
    struct event *retry;        //  Replay retry timer (transient failures)
    int retries;                //  Consecutive transient failures
    fanout_t *f;                //  Owner (for the retry timer)
} fo_room_t;

struct fo_req {
    fanout_t *f;
    uint64_t head;              //  positions: our head when we asked
    size_t n;                   //  Rooms asked about
    fo_room_t *rooms[];         //  NULL when the room went away meanwhile
};

struct fanout {
    gw_t *gw;                   //  Gateway context
    bus_t *bus;                 //  The fan-out transport (subscriber)
    struct event *resync;       //  Periodic positions check
    struct event *soon;         //  One check shortly after new subscriptions
    uint64_t head;              //  Highest seq seen (messages and heartbeats)
    fo_room_t **fresh;          //  Rooms subscribed since the last positioning
    size_t nfresh, fresh_cap;   //  (entries of rooms freed meanwhile are NULL)
    fanout_stats_t stats;
};

/* Lists a room to be positioned at the end of the turn. 0 or -1 (no memory:
 * the periodic check, which walks every room, positions it then). */
static int s_fresh_add(fanout_t *f, fo_room_t *fr)
{
    if (f->nfresh == f->fresh_cap) {
        size_t cap = f->fresh_cap ? f->fresh_cap * 2 : 64;
        fo_room_t **nf = realloc(f->fresh, cap * sizeof *nf);
        if (!nf)
            return -1;
        f->fresh = nf;
        f->fresh_cap = cap;
    }
    fr->in_fresh = 1;
    fr->fresh_idx = f->nfresh;
    f->fresh[f->nfresh++] = fr;
    return 0;
}

static void s_check(fanout_t *f, int only_fresh);

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Records created_at -> now for a message delivered live. */
static void s_latency(fanout_t *f, int64_t ts_us)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double lat = (double)((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 - ts_us) / 1e6;
    if (lat < 0)
        lat = 0;
    prom_hist_observe(&f->stats.latency, lat);
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
    if (fr->known && m->seq <= fr->last) {
        f->stats.duplicates++;
        log_debug("event=duplicate seq=%llu room_seq=%llu", (unsigned long long)m->seq,
                  (unsigned long long)fr->last);
        return P_DONE;
    }
    if (fr->known && m->prev == 0) {
        /* A broker that started leading does not know the room's previous
         * message yet (prev 0): what it recorded but never sent before a
         * crash would slip by unseen. Verify with a replay from our last,
         * which returns this message too, unless a replay just did. */
        if (!fr->unknown_ok)
            return P_REPLAY;
        fr->unknown_ok = 0;
    }
    if (fr->known && m->prev > fr->last) {
        f->stats.gaps++;
        size_t kl;
        const char *key = room_key(fr->room, &kl);
        log_info("event=gap nsp=%s room=%s room_seq=%llu prev=%llu seq=%llu", key, key + strlen(key) + 1,
                 (unsigned long long)fr->last, (unsigned long long)m->prev, (unsigned long long)m->seq);
        return P_REPLAY;
    }
    s_deliver(f, fr->room, m);
    fr->last = m->seq;
    fr->known = 1;
    if (m->ts_us > 0)
        s_latency(f, m->ts_us);
    return P_DONE;
}

/* Processes queued messages until the queue is empty or a replay starts. */
static void s_flush_queue(fanout_t *f, fo_room_t *fr)
{
    while (!fr->replaying && !fr->positioning && fr->qhead) {
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
    fr->retries = 0;
    fr->last = 0;           /* unknown: take what comes */
    fr->known = 0;
    s_flush_queue(f, fr);
}

#define FANOUT_REPLAY_RETRIES 40     /* ~1 minute at the 2 s ceiling */

static void s_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    fo_room_t *fr = arg;
    (void)fd;
    (void)what;
    fr->replaying = 0;
    s_start_replay(fr->f, fr);
}

/* A replay failed for a passing reason: retry with backoff (100 ms doubling
 * to 2 s), the room's live messages still waiting behind it; give up (as
 * for "gone") only after FANOUT_REPLAY_RETRIES. */
static void s_replay_retry(fanout_t *f, fo_room_t *fr, const char *why)
{
    if (++fr->retries > FANOUT_REPLAY_RETRIES) {
        s_replay_failed(f, fr, why);
        return;
    }
    if (!fr->retry) {
        fr->f = f;
        fr->retry = event_new(f->gw->base, -1, 0, s_retry_cb, fr);
        if (!fr->retry) {
            s_replay_failed(f, fr, "out of memory");
            return;
        }
    }
    long ms = 100L << (fr->retries < 5 ? fr->retries - 1 : 4);
    if (ms > 2000)
        ms = 2000;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    event_add(fr->retry, &tv);
    log_debug("event=replay_retry after_ms=%ld reason=\"%s\"", ms, why);
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
    if (error && strcmp(error, "gone") != 0) {
        s_replay_retry(f, fr, error);       /* no leader yet, a timeout: try again */
        return;
    }
    if (error || !msgs || msgs->type != MSGPACK_OBJECT_ARRAY) {
        s_replay_failed(f, fr, error ? error : "bad reply");
        return;
    }
    fr->retries = 0;
    for (uint32_t i = 0; i < msgs->via.array.size; i++) {
        const msgpack_object *o = &msgs->via.array.ptr[i];
        env_msg_t m;
        if ((o->type != MSGPACK_OBJECT_BIN && o->type != MSGPACK_OBJECT_STR) ||
            env_decode(o->via.bin.ptr, o->via.bin.size, &m) < 0)
            continue;
        if (!fr->known || m.seq > fr->last) {
            log_debug("event=replayed seq=%llu prev=%llu room_seq=%llu", (unsigned long long)m.seq,
                      (unsigned long long)m.prev, (unsigned long long)fr->last);
            s_deliver(f, fr->room, &m);
            fr->last = m.seq;
            fr->known = 1;
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
    fr->unknown_ok = 1;
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
        const msgpack_object *o = ok ? &seqs->via.array.ptr[i] : NULL;
        if (o && o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            o = NULL;
        if (!o)
            continue;
        if (!fr->known) {
            fr->last = o->via.u64;      /* unknown (after a lost range): adopt it */
            fr->known = 1;
        } else if (o->via.u64 > fr->last && o->via.u64 <= req->head && !fr->replaying) {
            /* behind, and not in flight: the transport delivers in publish
             * order, so a message at or below a seq we had already received
             * when we asked is lost, not late (one above it is judged at the
             * next check) */
            f->stats.resyncs++;
            log_debug("event=resync broker_seq=%llu room_seq=%llu", (unsigned long long)o->via.u64,
                      (unsigned long long)fr->last);
            s_start_replay(f, fr);
        }
    }
    if (error)
        log_debug("event=positions_failed reason=\"%s\"", error);
    free(req);
}

/* The ping answer for fresh rooms (clone pattern). The leader's last
 * published seq when it answered is every fresh room's position: each later
 * message has a higher seq, whichever room it is for, so nothing published
 * after the answer is taken for the past, and the next message's prev
 * reveals a first message lost at the transport. No database query: a
 * connect costs the broker nothing but this answer. */
static void s_fresh_reply(void *arg, const msgpack_object *reply, const char *error)
{
    fo_req_t *req = arg;
    fanout_t *f = req->f;
    uint64_t seq = 0;
    const msgpack_object *leader = error ? NULL : up_get(reply, "leader");
    /* a leader's head is known even when it is 0 (nothing published yet:
     * every message to come is above it) */
    int known = !error && leader && leader->type == MSGPACK_OBJECT_BOOLEAN && leader->via.boolean &&
                up_get_u64(reply, "seq", &seq) == 0;
    if (!known) {
        /* no answer from a leader: our own view of the head, if we have one */
        seq = f->head;
        known = seq != 0;
        log_debug("event=positions_failed reason=\"%s\"", error ? error : "not the leader");
    } else if (seq > f->head) {
        f->head = seq;
    }
    for (size_t i = 0; i < req->n; i++) {
        fo_room_t *fr = req->rooms[i];
        if (!fr)
            continue;
        fr->pos_req = NULL;
        if (!fr->positioning)
            continue;
        fr->positioning = 0;
        fr->last = seq;
        fr->known = known;
        fr->unknown_ok = 1;
        s_flush_queue(f, fr);
        sock_room_positioned(fr->room);
    }
    free(req);
}

/* Positions the fresh rooms of list[0..n) with one ping to the leader. */
static void s_send_fresh(fanout_t *f, fo_room_t **list, size_t n)
{
    fo_req_t *req = malloc(sizeof *req + n * sizeof(fo_room_t *));
    if (!req)
        return;             /* the next check asks again */
    req->f = f;
    req->n = n;
    for (size_t i = 0; i < n; i++) {
        req->rooms[i] = list[i];
        list[i]->pos_req = req;
        list[i]->pos_idx = i;
    }
    up_begin(f->gw->upstream, "ping", 0);
    up_send(f->gw->upstream, s_fresh_reply, req, NULL, f->gw->cfg.rpc_timeout_ms);
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
    req->head = f->head;
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
static void s_check(fanout_t *f, int only_fresh)
{
    rooms_t *rooms = f->gw->rooms;
    size_t total = rooms_count(rooms), n = 0, pos = 0;
    room_t *room;
    /* the fresh rooms: those listed since the last look (a connect costs
     * its own rooms, not a walk over every room) and, for a full check,
     * any the list missed */
    fo_room_t **fresh = f->fresh;
    size_t nfresh_listed = f->nfresh;
    f->fresh = NULL;
    f->nfresh = f->fresh_cap = 0;
    for (size_t i = 0; i < nfresh_listed; i++)
        if (fresh[i])
            fresh[i]->in_fresh = 0;
    if (total == 0) {
        free(fresh);
        return;
    }
    if (!up_ready(f->gw->upstream)) {
        /* nobody to ask (yet: a gateway that just started, a failover):
         * fresh rooms wait a little for a leader's answer, because our own
         * view of the head may be nothing (then their first messages would
         * be taken on trust), then start at that view rather than hold
         * their messages (and their clients' CONNECT) any longer */
        int64_t now = s_mono_ms();
        int wait = 0;
        size_t k = 0;
        for (;;) {
            fo_room_t *fr;
            if (only_fresh) {
                if (k == nfresh_listed)
                    break;
                fr = fresh[k++];
            } else {
                if (!(room = rooms_next(rooms, &pos)))
                    break;
                fr = room_data(room);
            }
            if (!fr || !fr->positioning || fr->pos_req || fr->in_fresh)
                continue;
            if (now - fr->pos_since_ms < FANOUT_LEADER_WAIT_MS) {
                if (s_fresh_add(f, fr) == 0)
                    wait = 1;
                continue;
            }
            fr->positioning = 0;
            fr->last = f->head;
            fr->known = f->head != 0;
            s_flush_queue(f, fr);
            sock_room_positioned(fr->room);
        }
        free(fresh);
        if (wait && !event_pending(f->soon, EV_TIMEOUT, NULL)) {
            struct timeval tv = { 0, FANOUT_LEADER_POLL_MS * 1000 };
            event_add(f->soon, &tv);
        }
        return;
    }
    if (only_fresh) {
        size_t m = 0;
        for (size_t i = 0; i < nfresh_listed; i++)
            if (fresh[i] && fresh[i]->positioning && !fresh[i]->pos_req)
                fresh[m++] = fresh[i];
        if (m)
            s_send_fresh(f, fresh, m);
        free(fresh);
        return;
    }
    free(fresh);
    fo_room_t **list = malloc(total * sizeof *list);
    if (!list)
        return;
    size_t nfresh = 0;
    while ((room = rooms_next(rooms, &pos)) != NULL) {
        fo_room_t *fr = room_data(room);
        if (fr && fr->positioning && !fr->pos_req)
            list[nfresh++] = fr;
    }
    if (nfresh)
        s_send_fresh(f, list, nfresh);
    pos = 0;
    while ((room = rooms_next(rooms, &pos)) != NULL) {
        fo_room_t *fr = room_data(room);
        if (fr && !fr->replaying && !fr->pos_req && !fr->positioning)
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

/* Checks every room (the periodic resync, a new broker epoch). */
static void s_check_rooms(fanout_t *f)
{
    s_check(f, 0);
}

static void s_resync_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    s_check_rooms(arg);
}

/* Positions the rooms subscribed during the last turn (clone pattern). */
static void s_fresh_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    s_check(arg, 1);
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
            fr->positioning = 1;
            fr->pos_since_ms = s_mono_ms();
            room_set_data(room, fr);
            s_fresh_add(f, fr);
        }
        /* ask for the position of every room subscribed in this turn, in one
         * request per namespace, right after the turn */
        if (!event_pending(f->soon, EV_TIMEOUT, NULL)) {
            struct timeval tv = { 0, 0 };
            event_add(f->soon, &tv);
        }
    } else {
        fo_room_t *fr = room_data(room);
        if (fr) {
            if (fr->replay_req)
                fr->replay_req->rooms[0] = NULL;
            if (fr->pos_req)
                fr->pos_req->rooms[fr->pos_idx] = NULL;
            if (fr->in_fresh)
                f->fresh[fr->fresh_idx] = NULL;
            s_queue_clear(fr);
            if (fr->retry)
                event_free(fr->retry);
            free(fr);
            room_set_data(room, NULL);
        }
    }
    if ((subscribe ? bus_subscribe(f->bus, key, klen) : bus_unsubscribe(f->bus, key, klen)) < 0)
        log_error("event=fanout_error op=%s reason=\"bad topic or out of memory\"",
                  subscribe ? "subscribe" : "unsubscribe");
}

/* ---- receiving ----------------------------------------------------------- */

static void s_heartbeat(fanout_t *f, const void *body, size_t blen)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    uint64_t seq;
    if (blen < 4096 && env_msgpack_check(body, blen) == 0 &&
        msgpack_unpack_next(&u, body, blen, &off) == MSGPACK_UNPACK_SUCCESS &&
        up_get_u64(&u.data, "seq", &seq) == 0 && seq > f->head)
        f->head = seq;
    msgpack_unpacked_destroy(&u);
}

/* bus_message_fn: one (topic, envelope) from the transport. */
static void s_message(void *arg, const void *topic, size_t tlen, const void *body, size_t blen)
{
    fanout_t *f = arg;
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
    if (fr->replaying || fr->positioning) {
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

/* bus_set_yield: enough output for one turn (and a flush to write it). */
static int s_yield(void *arg)
{
    fanout_t *f = arg;
    return f->gw->turn_out >= FANOUT_TURN_OUT && f->gw->dirty;
}

/* ---- lifecycle ----------------------------------------------------------- */

fanout_t *fanout_new(gw_t *gw, const char *pub_endpoints)
{
    fanout_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->gw = gw;
    prom_hist_init(&f->stats.latency, s_lat_bounds, sizeof s_lat_bounds / sizeof s_lat_bounds[0]);
    bus_config_t bc = {
        .zmq_endpoints = pub_endpoints,
        .zmq_ctx = gw->zctx,
        .hwm = gw->cfg.sub_hwm,
        .redis_url = gw->cfg.redis_url,
        .nats_url = gw->cfg.nats_url,
        .name = "belfry-gateway",
        .on_message = s_message,
        .arg = f,
    };
    if (bus_kind_parse(gw->cfg.fanout ? gw->cfg.fanout : "zmq", &bc.kind) < 0) {
        log_error("event=config_error setting=--fanout value=\"%s\" reason=\"not zmq, redis or nats\"",
                  gw->cfg.fanout);
        goto fail;
    }
    char err[256];
    f->bus = bus_new(gw->base, &bc, BUS_SUB, err, sizeof err);
    if (!f->bus) {
        log_error("event=config_error setting=--fanout kind=%s reason=\"%s\"", bus_kind_name(bc.kind), err);
        goto fail;
    }
    bus_set_yield(f->bus, s_yield, f);
    if (bus_subscribe(f->bus, HB_TOPIC, sizeof HB_TOPIC) < 0)
        goto fail;
    f->resync = event_new(gw->base, -1, EV_PERSIST, s_resync_cb, f);
    f->soon = event_new(gw->base, -1, 0, s_fresh_cb, f);
    if (!f->resync || !f->soon)
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
    if (f->resync)
        event_free(f->resync);
    if (f->soon)
        event_free(f->soon);
    free(f->fresh);
    bus_destroy(&f->bus);
    free(f);
    *self_p = NULL;
}

int fanout_ready(const fanout_t *self)
{
    return self && bus_ready(self->bus);
}

const fanout_stats_t *fanout_stats(const fanout_t *self)
{
    return &self->stats;
}

void fanout_bus_stats(const fanout_t *self, bus_stats_t *out)
{
    bus_stats(self->bus, out);
}

int fanout_room_positioning(const room_t *room)
{
    const fo_room_t *fr = room_data(room);
    return fr && fr->positioning;
}
