/*  sock - Socket.IO v5 sockets (one per namespace of a session)
 *
 *  Incoming packets are validated by proto/sio and dispatched by type. JSON the
 *  client sent is passed through byte-exact wherever it is echoed (the event
 *  arguments after the name, the CONNECT payload), so nothing is re-serialized.
 *
 *  Rooms: on CONNECT the socket joins user_<id> and `all` of its namespace.
 *  `join` / `leave` events add rooms the token allows: the claim "rooms" is a
 *  list of room names, where a name ending in '*' allows every room with that
 *  prefix. Each is acknowledged: {"ok":true} or {"error":"..."}.
 *
 *  In --conformance mode the namespaces are "/" and "/custom", nobody is
 *  authenticated, CONNECT is followed by the event `auth` carrying the CONNECT
 *  payload, `message` is answered with `message-back` and `message-with-ack`
 *  is acknowledged with its own arguments, as the reference test server does.
 *  One extension exercises acks from the server's side: `request-ack` makes
 *  the server emit `ack-request` (same arguments) with an ack id, and the
 *  client's ack comes back as the event `ack-response` with its arguments.
 */
#include "sock.h"
#include "session.h"
#include "auth.h"
#include "center.h"
#include "fanout.h"
#include "upstream.h"
#include "envelope.h"
#include "sio.h"
#include "eio.h"
#include "b64.h"
#include "log.h"

#include <jansson.h>
#include "rid.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


/* ---- output -------------------------------------------------------------- */

typedef struct held {
    struct held *next;
    pkt_t *p;
    uint64_t seq;
} held_t;

void sock_emit(sock_t *k, int type, unsigned attachments, int64_t ack_id,
                       const char *json, size_t json_len)
{
    char head[512];
    head[0] = '4';
    int hl = sio_encode_header(head + 1, sizeof head - 1, type, k->nsp, k->nsp_len,
                               attachments, ack_id);
    if (hl < 0)
        return;
    size_t total = 1 + (size_t)hl + json_len;
    char *buf = total <= sizeof head ? head : malloc(total);
    if (!buf)
        return;
    if (buf != head)
        memcpy(buf, head, 1 + (size_t)hl);
    memcpy(buf + 1 + hl, json, json_len);
    session_send(k->sess, buf, total);
    if (buf != head)
        free(buf);
}

/* Sends a packet for namespace nsp of session s with no socket (errors). */
static void s_emit_nsp(session_t *s, int type, const char *nsp, size_t nsp_len,
                       const char *json, size_t json_len)
{
    sock_t tmp = { .sess = s, .nsp = (char *)nsp, .nsp_len = nsp_len };
    sock_emit(&tmp, type, 0, -1, json, json_len);
}

void sock_ack_json(sock_t *k, int64_t ack_id, json_t *obj)
{
    json_t *arr = json_array();
    json_array_append_new(arr, obj);
    char *txt = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (txt) {
        sock_emit(k, SIO_ACK, 0, ack_id, txt, strlen(txt));
        free(txt);
    }
}

void sock_ack_error(sock_t *k, int64_t ack_id, const char *message)
{
    if (ack_id >= 0)
        sock_ack_json(k, ack_id, json_pack("{s:s}", "error", message));
}

void sock_ack_raw(sock_t *k, int64_t ack_id, const char *json, size_t len)
{
    if (ack_id < 0)
        return;
    char *buf = malloc(len + 2);
    if (!buf)
        return;
    buf[0] = '[';
    memcpy(buf + 1, json, len);
    buf[len + 1] = ']';
    sock_emit(k, SIO_ACK, 0, ack_id, buf, len + 2);
    free(buf);
}

void sock_emit_event(sock_t *k, const char *name, const char *json, size_t json_len)
{
    size_t nl = strlen(name);
    size_t cap = nl * 6 + json_len + 8;
    char *buf = malloc(cap);
    if (!buf)
        return;
    buf[0] = '[';
    int el = sio_json_string(buf + 1, cap - 1, name, nl);
    if (el >= 0) {
        size_t n = 1 + (size_t)el;
        buf[n++] = ',';
        memcpy(buf + n, json, json_len);
        n += json_len;
        buf[n++] = ']';
        sock_emit(k, SIO_EVENT, 0, -1, buf, n);
    }
    free(buf);
}

void sock_deliver(sock_t *k, pkt_t *p, uint64_t seq)
{
    if (k->sess->closed)
        return;
    /* A recovered socket got every message of its rooms up to recovered_to
     * by replay; this gateway's room stream may still be behind it (a gap
     * being repaired) and bring some of them again. */
    if (seq && seq <= k->recovered_to)
        return;
    if (k->recovering) {
        held_t *h = malloc(sizeof *h);
        if (!h)
            return;
        pkt_ref(p);
        h->p = p;
        h->seq = seq;
        h->next = NULL;
        if (k->held_tail)
            k->held_tail->next = h;
        else
            k->held = h;
        k->held_tail = h;
        return;
    }
    session_send_pkt(k->sess, p);
}

/* Sends (send = 1) or drops the held deliveries; those at or below
 * recovered_to were part of the recovery replay already. */
static void s_release_held(sock_t *k, int send)
{
    held_t *h = k->held;
    k->held = k->held_tail = NULL;
    while (h) {
        held_t *next = h->next;
        if (send && (h->seq == 0 || h->seq > k->recovered_to))
            session_send_pkt(k->sess, h->p);
        pkt_release(h->p);
        free(h);
        h = next;
    }
}

/* ---- sockets ------------------------------------------------------------- */

static sock_t *s_find(session_t *s, const char *nsp, size_t nsp_len)
{
    for (size_t i = 0; i < s->nsocks; i++)
        if (s->socks[i]->nsp_len == nsp_len && memcmp(s->socks[i]->nsp, nsp, nsp_len) == 0)
            return s->socks[i];
    return NULL;
}

static void s_sock_free(sock_t *k)
{
    if (k->expiry)
        event_free(k->expiry);
    if (k->retry)
        event_free(k->retry);
    if (k->sess->gw->upstream)
        up_cancel_owner(k->sess->gw->upstream, k);
    s_release_held(k, 0);
    rooms_t *rooms = k->sess->gw->rooms;
    for (size_t i = 0; i < k->nrooms; i++)
        rooms_leave(rooms, &k->rooms[i]);
    free(k->rooms);
    free(k->nsp);
    free(k->user);
    json_decref(k->allowed_rooms);
    json_decref(k->publish_rooms);
    free(k->join_acks);
    free(k->ack_ids);
    free(k);
}

static void s_sock_remove(session_t *s, sock_t *k)
{
    for (size_t i = 0; i < s->nsocks; i++) {
        if (s->socks[i] == k) {
            s->socks[i] = s->socks[--s->nsocks];
            break;
        }
    }
    s_sock_free(k);
}

/* Forgets the binary packet being assembled. */
static void s_bin_reset(session_t *s)
{
    for (unsigned i = 0; i < s->bin_have; i++)
        free(s->bin_data[i]);
    free(s->bin_data);
    free(s->bin_len);
    free(s->bin_packet);
    s->bin_data = NULL;
    s->bin_len = NULL;
    s->bin_packet = NULL;
    s->bin_expected = s->bin_have = 0;
}

void sock_destroy_all(session_t *s)
{
    s_bin_reset(s);
    for (size_t i = 0; i < s->nsocks; i++)
        s_sock_free(s->socks[i]);
    free(s->socks);
    s->socks = NULL;
    s->nsocks = s->socks_cap = 0;
}

/* The topic key of room in the socket's namespace: nsp \0 room \0. */
static int s_room_key(const sock_t *k, const char *room, size_t room_len, char *out, size_t cap)
{
    if (k->nsp_len + room_len + 2 > cap)
        return -1;
    memcpy(out, k->nsp, k->nsp_len);
    out[k->nsp_len] = 0;
    memcpy(out + k->nsp_len + 1, room, room_len);
    out[k->nsp_len + 1 + room_len] = 0;
    return (int)(k->nsp_len + room_len + 2);
}

static ssize_t s_room_index(const sock_t *k, const char *key, size_t klen)
{
    for (size_t i = 0; i < k->nrooms; i++) {
        size_t rl;
        const char *rk = room_key(k->rooms[i].room, &rl);
        if (rl == klen && memcmp(rk, key, klen) == 0)
            return (ssize_t)i;
    }
    return -1;
}

static void s_drop_join_acks(sock_t *k, const room_t *room);

int sock_join(sock_t *k, const char *room, size_t room_len)
{
    char key[1024];
    int kl = s_room_key(k, room, room_len, key, sizeof key);
    if (kl < 0)
        return -1;
    if (k->nrooms >= (size_t)k->sess->gw->cfg.max_rooms) {
        k->sess->gw->stats.limit_rooms++;
        return -1;
    }
    if (s_room_index(k, key, (size_t)kl) >= 0)
        return 1;
    if (k->nrooms == k->rooms_cap) {
        size_t ncap = k->rooms_cap ? k->rooms_cap * 2 : 4;
        room_slot_t *r = realloc(k->rooms, ncap * sizeof *r);
        if (!r)
            return -1;
        k->rooms = r;
        k->rooms_cap = ncap;
        for (size_t i = 0; i < k->nrooms; i++)
            rooms_slot_moved(&k->rooms[i]);
    }
    k->rooms[k->nrooms].room = NULL;
    if (rooms_join(k->sess->gw->rooms, key, (size_t)kl, k, &k->rooms[k->nrooms]) < 0)
        return -1;
    k->nrooms++;
    return 0;
}

int sock_leave(sock_t *k, const char *room, size_t room_len)
{
    char key[1024];
    int kl = s_room_key(k, room, room_len, key, sizeof key);
    if (kl < 0)
        return 1;
    ssize_t i = s_room_index(k, key, (size_t)kl);
    if (i < 0)
        return 1;
    s_drop_join_acks(k, k->rooms[i].room);
    rooms_leave(k->sess->gw->rooms, &k->rooms[i]);
    k->nrooms--;
    if ((size_t)i != k->nrooms) {
        k->rooms[i] = k->rooms[k->nrooms];
        rooms_slot_moved(&k->rooms[i]);
    }
    return 0;
}

/* ---- CONNECT ------------------------------------------------------------- */

static int s_nsp_allowed(gw_t *gw, const char *nsp, size_t len)
{
    const char *list = gw->cfg.conformance ? "/,/custom" : gw->cfg.namespaces;
    if (!list || strcmp(list, "*") == 0)
        return 1;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == len && memcmp(p, nsp, len) == 0)
            return 1;
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

static void s_connect_error(session_t *s, const sio_packet_t *p, const char *message)
{
    json_t *o = json_pack("{s:s}", "message", message);
    char *txt = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (txt) {
        s_emit_nsp(s, SIO_CONNECT_ERROR, p->nsp, p->nsp_len, txt, strlen(txt));
        free(txt);
    }
}

void sock_disconnect(sock_t *k, const char *reason)
{
    session_t *s = k->sess;
    log_info("event=server_disconnect sid=%s nsp=%s user=%s reason=\"%s\"", s->sid, k->nsp, k->user,
             reason);
    sock_emit(k, SIO_DISCONNECT, 0, -1, "", 0);
    s_sock_remove(s, k);
}

static void s_expiry_cb(evutil_socket_t fd, short what, void *arg)
{
    sock_t *k = arg;
    (void)fd;
    (void)what;
    if (k->sess->closed)
        return;
    k->sess->gw->stats.token_expired++;
    sock_disconnect(k, "token expired");
}

/* Ends the socket when its token expires: a client must come back with a
 * fresh token rather than keep a connection its credentials no longer allow. */
static void s_arm_expiry(sock_t *k, const json_t *claims)
{
    json_t *exp = json_object_get(claims, "exp");
    if (!json_is_number(exp))
        return;
    double left = json_number_value(exp) - (double)time(NULL);
    if (left > 365.0 * 86400)
        return;
    if (left < 0)
        left = 0;
    k->expiry = event_new(k->sess->gw->base, -1, 0, s_expiry_cb, k);
    if (!k->expiry)
        return;
    struct timeval tv = { (time_t)left, (suseconds_t)((left - (double)(time_t)left) * 1e6) };
    event_add(k->expiry, &tv);
}

enum { JOIN_NONE = 0, JOIN_CONNECT, JOIN_RECOVER, JOIN_MORE };
static int s_rooms_positioning(const sock_t *k);
static void s_after_join(sock_t *k, int next);

static void s_new_pid(sock_t *k)
{
    rid_b64url(k->pid, 12);
}

/* Sends the CONNECT reply (after what recovery replayed and what was held),
 * records the rooms for a later recovery and sends the unread snapshot. */
static void s_connected(sock_t *k)
{
    session_connected(k->sess);
    k->recovering = 0;
    s_release_held(k, 1);
    char reply[96];
    int n = k->pid[0]
        ? snprintf(reply, sizeof reply, "{\"sid\":\"%s\",\"pid\":\"%s\"}", k->sid, k->pid)
        : snprintf(reply, sizeof reply, "{\"sid\":\"%s\"}", k->sid);
    sock_emit(k, SIO_CONNECT, 0, -1, reply, (size_t)n);
    log_debug("event=connect sid=%s nsp=%s user=%s", k->sess->sid, k->nsp, k->user);
    if (!k->sess->gw->cfg.conformance) {
        if (k->pid[0])
            center_session_put(k);
        center_on_connected(k);
    }
}

static void s_recover_failed(sock_t *k, const char *why)
{
    log_info("event=recovery_failed sid=%s nsp=%s user=%s reason=\"%s\"", k->sess->sid, k->nsp,
             k->user, why);
    s_new_pid(k);           /* a new pid: the client reports recovered = false */
    k->recovered_to = 0;
    s_connected(k);
}

static void s_recover_more(sock_t *k);

/* Sends the replayed messages of a recover/replay reply with seq above what
 * was sent. Returns 1 if the reply says more remain. */
static int s_recover_msgs(sock_t *k, const msgpack_object *reply)
{
    const msgpack_object *msgs = up_get(reply, "msgs");
    if (!msgs || msgs->type != MSGPACK_OBJECT_ARRAY)
        return 0;
    for (uint32_t i = 0; i < msgs->via.array.size; i++) {
        const msgpack_object *o = &msgs->via.array.ptr[i];
        env_msg_t m;
        if ((o->type != MSGPACK_OBJECT_BIN && o->type != MSGPACK_OBJECT_STR) ||
            env_decode(o->via.bin.ptr, o->via.bin.size, &m) < 0 || m.seq <= k->recovered_to)
            continue;
        pkt_t *pk = fanout_encode(k->sess->gw, &m);
        if (pk) {
            session_send_pkt(k->sess, pk);
            pkt_release(pk);
        }
        k->recovered_to = m.seq;
    }
    const msgpack_object *more = up_get(reply, "more");
    return more && more->type == MSGPACK_OBJECT_BOOLEAN && more->via.boolean &&
           msgs->via.array.size > 0;
}

static void s_replay_more_reply(void *arg, const msgpack_object *reply, const char *error)
{
    sock_t *k = arg;
    if (error == up_cancelled)
        return;
    if (error || !reply) {
        s_recover_failed(k, error ? error : "no reply");
        return;
    }
    if (s_recover_msgs(k, reply))
        s_recover_more(k);
    else
        s_connected(k);
}

/* The next page of a recovery: replay the socket's rooms after what was sent. */
static void s_recover_more(sock_t *k)
{
    gw_t *gw = k->sess->gw;
    msgpack_packer *pk = up_begin(gw->upstream, "replay", 4);
    up_pack_str(pk, "ns", 2);
    up_pack_str(pk, k->nsp, k->nsp_len);
    up_pack_str(pk, "rooms", 5);
    msgpack_pack_array(pk, (uint32_t)k->nrooms);
    for (size_t i = 0; i < k->nrooms; i++) {
        size_t kl;
        const char *key = room_key(k->rooms[i].room, &kl);
        up_pack_str(pk, key + k->nsp_len + 1, kl - k->nsp_len - 2);
    }
    up_pack_str(pk, "after", 5);
    msgpack_pack_uint64(pk, k->recovered_to);
    up_pack_str(pk, "limit", 5);
    msgpack_pack_uint32(pk, 1000);
    up_send(gw->upstream, s_replay_more_reply, k, k, gw->cfg.rpc_timeout_ms);
}

static int s_room_allowed(const sock_t *k, const char *room, size_t len);

static void s_recover_reply(void *arg, const msgpack_object *reply, const char *error)
{
    sock_t *k = arg;
    if (error == up_cancelled)
        return;
    if (error || !reply) {
        s_recover_failed(k, error ? error : "no reply");
        return;
    }
    /* the rooms the socket was in, as far as its token still allows them */
    const msgpack_object *rooms = up_get(reply, "rooms");
    if (rooms && rooms->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < rooms->via.array.size; i++) {
            const msgpack_object *o = &rooms->via.array.ptr[i];
            if (o->type == MSGPACK_OBJECT_STR && o->via.str.size > 0 &&
                !memchr(o->via.str.ptr, 0, o->via.str.size) &&
                s_room_allowed(k, o->via.str.ptr, o->via.str.size))
                sock_join(k, o->via.str.ptr, o->via.str.size);
        }
    }
    if (s_recover_msgs(k, reply))
        s_recover_more(k);
    else if (s_rooms_positioning(k))
        s_after_join(k, JOIN_MORE);     /* rooms joined just now: their positions first */
    else
        s_connected(k);
}

/* Asks the broker to recover pid from offset; the CONNECT reply waits. */
static void s_recover(sock_t *k, const char *pid, size_t pid_len, uint64_t after)
{
    gw_t *gw = k->sess->gw;
    memcpy(k->pid, pid, pid_len);
    k->pid[pid_len] = 0;
    k->recovering = 1;
    k->recovered_to = after;
    msgpack_packer *pk = up_begin(gw->upstream, "recover", 4);
    up_pack_str(pk, "pid", 3);
    up_pack_str(pk, pid, pid_len);
    up_pack_str(pk, "user", 4);
    up_pack_str(pk, k->user, strlen(k->user));
    up_pack_str(pk, "ns", 2);
    up_pack_str(pk, k->nsp, k->nsp_len);
    up_pack_str(pk, "after", 5);
    msgpack_pack_uint64(pk, after);
    up_send(gw->upstream, s_recover_reply, k, k, gw->cfg.rpc_timeout_ms);
}

/* 1 while a room of the socket waits for its position. */
static int s_rooms_positioning(const sock_t *k)
{
    for (size_t i = 0; i < k->nrooms; i++)
        if (fanout_room_positioning(k->rooms[i].room))
            return 1;
    return 0;
}

static void s_join_continue(sock_t *k, int next)
{
    switch (next) {
    case JOIN_RECOVER:
        s_recover(k, k->join_pid, strlen(k->join_pid), k->join_after);
        break;
    case JOIN_MORE:
        s_recover_more(k);      /* covers what the rooms' positions dropped */
        break;
    default:
        s_connected(k);
    }
}

/* Goes on with `next` once every room of the socket is positioned (clone
 * pattern: only then does "after the CONNECT" have a well-defined start);
 * deliveries are held meanwhile. */
static void s_after_join(sock_t *k, int next)
{
    if (!s_rooms_positioning(k)) {
        s_join_continue(k, next);
        return;
    }
    k->join_next = next;
    k->recovering = 1;
}

void sock_room_positioned(room_t *room)
{
    size_t n = room_size(room);
    void *const *members = room_members(room);
    for (size_t i = 0; i < n; i++) {
        sock_t *k = members[i];
        for (size_t j = 0; j < k->njoin_acks;) {
            if (k->join_acks[j].room != room) {
                j++;
                continue;
            }
            int64_t ack = k->join_acks[j].ack;
            k->join_acks[j] = k->join_acks[--k->njoin_acks];
            if (!k->sess->closed)
                sock_ack_json(k, ack, json_pack("{s:b}", "ok", 1));
        }
        if (!k->join_next || k->sess->closed || s_rooms_positioning(k))
            continue;
        int next = k->join_next;
        k->join_next = JOIN_NONE;
        s_join_continue(k, next);
    }
}

/* The recovery request in a CONNECT payload: {"pid": str, "offset": str of
 * digits}. Returns 1 and fills the outputs when both are well-formed. */
static int s_recovery_request(const json_t *auth, const char **pid, size_t *pid_len,
                              uint64_t *after)
{
    json_t *jp = json_object_get(auth, "pid"), *jo = json_object_get(auth, "offset");
    if (!json_is_string(jp) || !json_is_string(jo))
        return 0;
    size_t pl = json_string_length(jp), ol = json_string_length(jo);
    const char *o = json_string_value(jo);
    if (pl == 0 || pl >= sizeof(((sock_t *)0)->pid) || ol == 0 || ol > 19)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < ol; i++) {
        if (o[i] < '0' || o[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(o[i] - '0');
    }
    *pid = json_string_value(jp);
    *pid_len = pl;
    *after = v;
    return 1;
}

/* auth: the CONNECT payload as sio_decode_json parsed it (NULL without one;
 * borrowed: the caller frees it). */
static int s_connect(session_t *s, const sio_packet_t *p, const json_t *auth)
{
    gw_t *gw = s->gw;
    if (!s_nsp_allowed(gw, p->nsp, p->nsp_len)) {
        s_connect_error(s, p, "Invalid namespace");
        return 0;
    }
    if (s_find(s, p->nsp, p->nsp_len))
        return 0;                           /* already connected: nothing to do */
    if (p->data && !auth)
        return -1;
    char user[AUTH_USER_MAX] = "";
    json_t *claims = NULL;
    if (!gw->cfg.conformance) {
        const char *reason = NULL;
        if (auth_identify(gw, auth, s->query_token, s->query_user, user, &claims, &reason) < 0) {
            gw->stats.auth_failures++;
            log_info("event=auth_failed sid=%s nsp=%.*s reason=\"%s\"", s->sid,
                     (int)p->nsp_len, p->nsp, reason);
            s_connect_error(s, p, reason);
            return 0;
        }
    }
    sock_t *k = calloc(1, sizeof *k);
    if (!k || !(k->nsp = malloc(p->nsp_len + 1)) || !(k->user = strdup(user))) {
        if (k) {
            free(k->nsp);
            free(k);
        }
        json_decref(claims);
        return -1;
    }
    memcpy(k->nsp, p->nsp, p->nsp_len);
    k->nsp[p->nsp_len] = 0;
    k->nsp_len = p->nsp_len;
    k->sess = s;
    rid_b64url(k->sid, 15);
    k->tokens = (double)gw->cfg.events_per_sec * 2;
    if (claims) {
        s_arm_expiry(k, claims);
        json_t *rooms = json_object_get(claims, "rooms");
        if (json_is_array(rooms))
            k->allowed_rooms = json_incref(rooms);
        json_t *pub = json_object_get(claims, "publish");
        if (json_is_array(pub))
            k->publish_rooms = json_incref(pub);
        json_decref(claims);
    }
    if (s->nsocks == s->socks_cap) {
        size_t ncap = s->socks_cap ? s->socks_cap * 2 : 2;
        sock_t **a = realloc(s->socks, ncap * sizeof *a);
        if (!a) {
            s_sock_free(k);
            return -1;
        }
        s->socks = a;
        s->socks_cap = ncap;
    }
    s->socks[s->nsocks++] = k;
    if (gw->cfg.conformance) {
        s_connected(k);
        /* 42["auth",<payload or {}>] */
        const char *a = p->data ? p->data : "{}";
        size_t al = p->data ? p->data_len : 2;
        char *ev = malloc(al + 16);
        if (ev) {
            int el = snprintf(ev, al + 16, "[\"auth\",%.*s]", (int)al, a);
            sock_emit(k, SIO_EVENT, 0, -1, ev, (size_t)el);
            free(ev);
        }
        return 0;
    }
    char room[AUTH_USER_MAX + 8];
    int rl = snprintf(room, sizeof room, "user_%s", k->user);
    if (sock_join(k, room, (size_t)rl) < 0 || sock_join(k, "all", 3) < 0)
        return -1;
    const char *pid;
    size_t pid_len;
    uint64_t after;
    if (gw->cfg.recovery && auth && s_recovery_request(auth, &pid, &pid_len, &after)) {
        memcpy(k->join_pid, pid, pid_len);
        k->join_pid[pid_len] = 0;
        k->join_after = after;
        s_after_join(k, JOIN_RECOVER);
        return 0;
    }
    if (gw->cfg.recovery)
        s_new_pid(k);
    s_after_join(k, JOIN_CONNECT);
    return 0;
}

/* ---- events -------------------------------------------------------------- */

/* Skips whitespace and the comma after the event name: the arguments of
 * rest ("," args "]" or "]") as the inside of an array. */
static void s_args(const char *rest, size_t rest_len, const char **args, size_t *args_len)
{
    size_t i = 0;
    while (i < rest_len && (rest[i] == ' ' || rest[i] == '\t' || rest[i] == '\n' || rest[i] == '\r'))
        i++;
    if (i < rest_len && rest[i] == ',')
        i++;
    *args = rest + i;
    *args_len = rest_len - i;       /* ends with ']' */
}

/* Sends the attachments of the binary packet being handled, in order. */
static void s_send_attachments(session_t *s)
{
    for (unsigned i = 0; i < s->bin_have; i++)
        session_send_binary(s, s->bin_data[i], s->bin_len[i]);
}

int sock_claim_allows(const json_t *claim, const char *room, size_t len)
{
    size_t i;
    json_t *v;
    if (!json_is_array(claim))
        return 0;
    json_array_foreach(claim, i, v) {
        if (!json_is_string(v))
            continue;
        const char *pat = json_string_value(v);
        size_t pl = json_string_length(v);
        if (pl > 0 && pat[pl - 1] == '*') {
            if (len >= pl - 1 && memcmp(room, pat, pl - 1) == 0)
                return 1;
        } else if (pl == len && memcmp(pat, room, len) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The rooms a socket may be in: its own, `all`, and what its token allows. */
static int s_room_allowed(const sock_t *k, const char *room, size_t len)
{
    if (len == 3 && memcmp(room, "all", 3) == 0)
        return 1;
    if (len == 5 + strlen(k->user) && memcmp(room, "user_", 5) == 0 &&
        memcmp(room + 5, k->user, len - 5) == 0)
        return 1;
    return sock_claim_allows(k->allowed_rooms, room, len);
}

/* join / leave: the argument is a room name or {"room": name}. */
static void s_join_leave(sock_t *k, int join, const char *args, size_t args_len, int64_t ack_id)
{
    char *arr_txt = malloc(args_len + 2);
    if (!arr_txt)
        return;
    arr_txt[0] = '[';
    memcpy(arr_txt + 1, args, args_len);
    json_t *arr = json_loadb(arr_txt, args_len + 1, SIO_JSON_FLAGS, NULL);
    free(arr_txt);
    json_t *a0 = json_array_get(arr, 0);
    if (json_is_object(a0))
        a0 = json_object_get(a0, "room");
    if (!json_is_string(a0) || json_string_length(a0) == 0 || json_string_length(a0) > 200) {
        sock_ack_error(k, ack_id, "room must be a non-empty string of at most 200 bytes");
        json_decref(arr);
        return;
    }
    const char *room = json_string_value(a0);
    size_t rl = json_string_length(a0);
    if (memchr(room, 0, rl)) {
        sock_ack_error(k, ack_id, "invalid room name");
        json_decref(arr);
        return;
    }
    if (join && !s_room_allowed(k, room, rl)) {
        k->sess->gw->stats.auth_failures++;
        log_info("event=join_refused sid=%s user=%s room=\"%s\"", k->sess->sid, k->user, room);
        sock_ack_error(k, ack_id, "not allowed to join this room");
        json_decref(arr);
        return;
    }
    int rc = join ? sock_join(k, room, rl) : sock_leave(k, room, rl);
    json_decref(arr);
    if (rc < 0) {
        sock_ack_error(k, ack_id, "too many rooms");
        return;
    }
    if (rc == 0)
        center_session_put(k);
    if (ack_id < 0)
        return;
    /* a room subscribed just now: its messages start at its position, so
     * the ack (the client's "joined") waits for it, as a CONNECT does */
    room_t *r = join && rc == 0 ? k->rooms[k->nrooms - 1].room : NULL;
    if (r && fanout_room_positioning(r) && k->njoin_acks < SOCK_MAX_JOIN_ACKS &&
        (k->join_acks || (k->join_acks = malloc(SOCK_MAX_JOIN_ACKS * sizeof *k->join_acks)))) {
        k->join_acks[k->njoin_acks].room = r;
        k->join_acks[k->njoin_acks].ack = ack_id;
        k->njoin_acks++;
        return;
    }
    sock_ack_json(k, ack_id, json_pack("{s:b}", "ok", 1));
}

/* Forgets the join acks waiting for room (the socket left it). */
static void s_drop_join_acks(sock_t *k, const room_t *room)
{
    for (size_t i = 0; i < k->njoin_acks;) {
        if (k->join_acks[i].room == room)
            k->join_acks[i] = k->join_acks[--k->njoin_acks];
        else
            i++;
    }
}

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Token bucket: --events-per-sec, bursts of twice that. */
static int s_rate_ok(sock_t *k)
{
    double rate = (double)k->sess->gw->cfg.events_per_sec;
    int64_t now = s_now_ms();
    k->tokens += (double)(now - k->tokens_at) * rate / 1000.0;
    k->tokens_at = now;
    if (k->tokens > rate * 2)
        k->tokens = rate * 2;
    if (k->tokens < 1)
        return 0;
    k->tokens -= 1;
    return 1;
}

/* Emits [<name><rest> (rest: the arguments after an event name, "," ... "]"),
 * as a binary event with the attachments being handled when binary, with a
 * server -> client ack request when ack_id >= 0. */
static void s_emit_rest(sock_t *k, const char *name, const char *rest, size_t rest_len, int binary,
                        int64_t ack_id)
{
    session_t *s = k->sess;
    size_t n = rest_len + strlen(name) + 8;
    char *ev = malloc(n);
    if (!ev)
        return;
    int el = snprintf(ev, n, "[\"%s\"%.*s", name, (int)rest_len, rest);
    sock_emit(k, binary ? SIO_BINARY_EVENT : SIO_EVENT, binary ? s->bin_have : 0, ack_id, ev,
              (size_t)el);
    free(ev);
    if (binary)
        s_send_attachments(s);
}

/* A client's answer to a server -> client ack request (conformance mode):
 * its arguments come back as the event `ack-response`. */
static int s_client_ack(sock_t *k, const sio_packet_t *p, int binary)
{
    size_t i;
    for (i = 0; i < k->acks_out && k->ack_ids[i] != p->ack_id; i++)
        ;
    if (i == k->acks_out)
        return 0;                   /* not ours, or answered already: ignored */
    k->ack_ids[i] = k->ack_ids[--k->acks_out];
    /* data is "[args]": the arguments after '[' are the event's rest */
    const char *d = p->data + 1;
    size_t dl = p->data_len - 1;
    while (dl && (*d == ' ' || *d == '\t' || *d == '\n' || *d == '\r')) {
        d++;
        dl--;
    }
    char *rest = malloc(dl + 2);
    if (!rest)
        return -1;
    size_t rl = 0;
    if (dl && *d != ']')
        rest[rl++] = ',';
    memcpy(rest + rl, d, dl);
    s_emit_rest(k, "ack-response", rest, rl + dl, binary, -1);
    free(rest);
    return 0;
}

/* Handles an EVENT or BINARY_EVENT (attachments in s->bin_*). */
static int s_event(sock_t *k, const sio_packet_t *p, int binary)
{
    char *name = NULL;
    const char *rest;
    size_t rest_len;
    if (sio_event_split(p->data, p->data_len, &name, &rest, &rest_len) < 0) {
        /* sio_decode accepted the packet, so the name is a valid JSON string
         * that has no C form (a NUL in it): refuse the event, keep the client */
        log_info("event=event_name_refused sid=%s reason=\"NUL in the event name\"", k->sess->sid);
        sock_ack_error(k, p->ack_id, "event names may not contain NUL");
        return 0;
    }
    session_t *s = k->sess;
    const char *args;
    size_t args_len;
    s_args(rest, rest_len, &args, &args_len);
    if (s->gw->cfg.conformance) {
        if (strcmp(name, "message") == 0) {
            s_emit_rest(k, "message-back", rest, rest_len, binary, -1);
        } else if (strcmp(name, "request-ack") == 0) {
            /* extension: the server asks the client for an ack */
            if (k->acks_out < SOCK_MAX_ACKS_OUT &&
                (k->ack_ids || (k->ack_ids = malloc(SOCK_MAX_ACKS_OUT * sizeof *k->ack_ids)))) {
                int64_t id = k->next_ack++;
                k->ack_ids[k->acks_out++] = id;
                s_emit_rest(k, "ack-request", rest, rest_len, binary, id);
            }
        } else if (strcmp(name, "message-with-ack") == 0 && p->ack_id >= 0) {
            size_t n = args_len + 2;
            char *ev = malloc(n);
            if (ev) {
                ev[0] = '[';
                memcpy(ev + 1, args, args_len);
                sock_emit(k, binary ? SIO_BINARY_ACK : SIO_ACK, binary ? s->bin_have : 0,
                           p->ack_id, ev, args_len + 1);
                free(ev);
                if (binary)
                    s_send_attachments(s);
            }
        }
        free(name);
        return 0;
    }
    if (!s_rate_ok(k)) {
        s->gw->stats.limit_rate++;
        sock_ack_error(k, p->ack_id, "rate limit exceeded");
        free(name);
        return 0;
    }
    if (strcmp(name, "join") == 0 || strcmp(name, "leave") == 0) {
        s_join_leave(k, name[0] == 'j', args, args_len, p->ack_id);
    } else if (!k->recovering) {
        center_event(k, name, args, args_len, p->ack_id);
    } else {
        sock_ack_error(k, p->ack_id, "connection is recovering, retry");
    }
    free(name);
    return 0;
}

/* ---- dispatch ------------------------------------------------------------ */

/* json: the packet's data as sio_decode_json parsed it (used by CONNECT), or
 * NULL. */
static int s_dispatch(session_t *s, const sio_packet_t *p, int binary, const json_t *json)
{
    sock_t *k;
    switch (p->type) {
    case SIO_CONNECT:
        return s_connect(s, p, json);
    case SIO_DISCONNECT:
        k = s_find(s, p->nsp, p->nsp_len);
        if (k)
            s_sock_remove(s, k);
        return 0;
    case SIO_EVENT:
    case SIO_BINARY_EVENT:
        k = s_find(s, p->nsp, p->nsp_len);
        if (!k)
            return 0;               /* not connected to it: ignored, as Node does */
        return s_event(k, p, binary);
    case SIO_ACK:
    case SIO_BINARY_ACK:
        k = s_find(s, p->nsp, p->nsp_len);
        if (!k || !s->gw->cfg.conformance)
            return 0;               /* no server -> client ack requests outside it */
        return s_client_ack(k, p, binary);
    default:
        return -1;                  /* CONNECT_ERROR is never sent by a client */
    }
}

int sock_on_message(session_t *s, const char *data, size_t len)
{
    if (s->bin_expected)
        return -1;                  /* attachments were announced, text came */
    sio_packet_t p;
    json_t *json = NULL;
    if (sio_decode_json(data, len, &p, &json) < 0)
        return -1;
    if (p.type == SIO_CONNECT) {
        /* the auth payload is parsed once, by the codec */
        int rc = s_dispatch(s, &p, 0, json);
        json_decref(json);
        return rc;
    }
    json_decref(json);
    if (p.type == SIO_BINARY_EVENT || p.type == SIO_BINARY_ACK) {
        if (p.attachments == 0)
            return s_dispatch(s, &p, 1, NULL);
        s->bin_packet = malloc(len);
        s->bin_data = calloc(p.attachments, sizeof *s->bin_data);
        s->bin_len = calloc(p.attachments, sizeof *s->bin_len);
        if (!s->bin_packet || !s->bin_data || !s->bin_len) {
            s_bin_reset(s);
            return -1;
        }
        memcpy(s->bin_packet, data, len);
        s->bin_packet_len = len;
        s->bin_expected = p.attachments;
        s->bin_have = 0;
        return 0;
    }
    return s_dispatch(s, &p, 0, NULL);
}

int sock_on_binary(session_t *s, const void *data, size_t len)
{
    if (!s->bin_expected || s->bin_have >= s->bin_expected)
        return -1;                  /* a binary frame nobody announced */
    void *copy = malloc(len ? len : 1);
    if (!copy)
        return -1;
    memcpy(copy, data, len);
    s->bin_data[s->bin_have] = copy;
    s->bin_len[s->bin_have] = len;
    s->bin_have++;
    if (s->bin_have < s->bin_expected)
        return 0;
    sio_packet_t p;
    int rc = sio_decode(s->bin_packet, s->bin_packet_len, &p);
    if (rc == 0)
        rc = s_dispatch(s, &p, 1, NULL);
    s_bin_reset(s);
    return rc;
}
