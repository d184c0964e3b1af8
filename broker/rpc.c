/*  rpc - the broker's upstream RPC socket (gateway DEALER -> broker ROUTER)
 *
 *  Design: the ROUTER's ZMQ_FD is watched for EV_READ by libevent. That fd is
 *  edge-triggered: it signals "something changed", not "a message waits", so
 *  the callback drains by re-reading ZMQ_EVENTS after every recv and send
 *  until ZMQ_POLLIN is clear. Requests are decoded by the pure rpc_handle()
 *  and rpc_parse(); the socket code only moves frames. A message with too
 *  many frames or a body over RPC_MSG_MAX is drained, counted and dropped.
 *
 *  A data request becomes an rpc_req_t that owns a copy of the routing
 *  identity and of its string fields, so the callee may answer it after any
 *  number of loop turns. Outstanding requests are linked to the rpc_t; when
 *  it is destroyed they are detached, and answering them later only frees
 *  them.
 */
#include "rpc.h"
#include "envelope.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <zmq.h>

#include "log.h"
#include "utf8.h"

#define RPC_FRAMES_MAX 3   /* identity, optional empty delimiter, body */
#define RPC_IDENTITY_MAX 256
#define RPC_SNDHWM 100000  /* replies queued per gateway */

struct rpc_req_priv {
    rpc_t *rpc;                 /* NULL once the socket is gone */
    struct rpc_req_priv *prev, *next;   /* outstanding list */
    rpc_req_t *req;             /* back pointer */
    int id_neg;                 /* the id was a negative integer */
    uint64_t id_u;              /* the id (positive) */
    int64_t id_i;               /* the id (negative) */
    unsigned char identity[RPC_IDENTITY_MAX];
    size_t identity_len;
    int delim;                  /* echo an empty delimiter frame */
    char *arena;                /* the string fields, NUL-terminated */
    msgpack_sbuffer sb;         /* the reply */
    msgpack_packer pk;
};

struct rpc {
    void *sock;             /* ZMQ_ROUTER */
    struct event *ev;       /* EV_READ on its ZMQ_FD */
    rpc_status_fn status_fn; /* source of the ping reply's fields */
    void *status_ctx;       /* its argument */
    rpc_request_fn request_fn; /* data requests go here */
    void *request_ctx;
    struct rpc_req_priv *outstanding;   /* requests handed out, not answered */
    msgpack_sbuffer sb;     /* reply scratch buffer */
    uint64_t requests;      /* requests answered */
    uint64_t malformed;     /* messages refused */
    uint64_t op_count[RPC_OP_COUNT];    /* requests per op */
    uint64_t op_errors[RPC_OP_COUNT];   /* error replies per op */
};

static const char *const s_op_names[RPC_OP_COUNT] = {
    "ping", "positions", "replay", "session_put", "recover", "unread", "mark_read",
    "event", "publish",
};

const char *rpc_op_name(rpc_op_t op)
{
    return (unsigned)op < RPC_OP_COUNT ? s_op_names[op] : "?";
}

static void s_pack_key(msgpack_packer *pk, const char *k)
{
    size_t n = strlen(k);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, k, n);
}

static int s_key_is(const msgpack_object *o, const char *k)
{
    size_t n = strlen(k);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, k, n) == 0;
}

static int s_is_int(const msgpack_object *o)
{
    return o && (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
                 o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
}

/* The op named by o, or -1. */
static int s_op_of(const msgpack_object *o)
{
    if (!o || o->type != MSGPACK_OBJECT_STR)
        return -1;
    for (int i = 0; i < RPC_OP_COUNT; i++)
        if (s_key_is(o, s_op_names[i]))
            return i;
    return -1;
}

static void s_pack_id(msgpack_packer *pk, const msgpack_object *id)
{
    s_pack_key(pk, "id");
    if (id->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        msgpack_pack_uint64(pk, id->via.u64);
    else
        msgpack_pack_int64(pk, id->via.i64);
}

int rpc_handle(const void *req, size_t len, const rpc_status_t *st,
               msgpack_sbuffer *out, int *is_error)
{
    msgpack_unpacked u;
    size_t off = 0;
    int rc = -1;
    const msgpack_object *id = NULL, *op = NULL;

    msgpack_unpacked_init(&u);
    /* a peer's counts must be backed by bytes before msgpack-c allocates */
    if (env_msgpack_check(req, len) < 0 ||
        msgpack_unpack_next(&u, req, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len)
        goto done;
    if (u.data.type != MSGPACK_OBJECT_MAP)
        goto done;
    for (uint32_t i = 0; i < u.data.via.map.size; i++) {
        const msgpack_object_kv *kv = &u.data.via.map.ptr[i];
        if (s_key_is(&kv->key, "id"))
            id = &kv->val;
        else if (s_key_is(&kv->key, "op"))
            op = &kv->val;
    }
    if (!s_is_int(id))
        goto done;

    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    const char *error = NULL;
    int opn = s_op_of(op);
    if (!op || op->type != MSGPACK_OBJECT_STR)
        error = "bad request";
    else if (opn < 0)
        error = "unknown op";
    else if (opn != RPC_OP_PING && !st->leader)
        error = "not leader";
    else if (opn != RPC_OP_PING) {
        *is_error = 0;
        rc = 1;                         /* a data op: the caller parses it */
        goto done;
    }
    msgpack_pack_map(&pk, error ? 2 : 6);
    s_pack_id(&pk, id);
    if (error) {
        s_pack_key(&pk, "error");
        s_pack_key(&pk, error);
    } else {
        s_pack_key(&pk, "ok");
        msgpack_pack_true(&pk);
        s_pack_key(&pk, "seq");
        msgpack_pack_uint64(&pk, st->seq);
        s_pack_key(&pk, "leader");
        if (st->leader)
            msgpack_pack_true(&pk);
        else
            msgpack_pack_false(&pk);
        s_pack_key(&pk, "epoch");
        s_pack_key(&pk, st->epoch ? st->epoch : "");
        s_pack_key(&pk, "oldest");
        msgpack_pack_uint64(&pk, st->oldest);
    }
    *is_error = error != NULL;
    rc = 0;
done:
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* ---- parsing --------------------------------------------------------- */

/* Copies string o into the arena as a NUL-terminated rpc_str_t. 0, or -1 if
 * o is not a str, is longer than max, holds a NUL or is not valid UTF-8
 * (PostgreSQL would refuse it, failing a whole batched query). */
static int s_str(const msgpack_object *o, size_t max, char **arena, rpc_str_t *out)
{
    if (!o || o->type != MSGPACK_OBJECT_STR || o->via.str.size > max ||
        (o->via.str.size && memchr(o->via.str.ptr, 0, o->via.str.size)) ||
        !utf8_valid((const uint8_t *)o->via.str.ptr, o->via.str.size))
        return -1;
    char *p = *arena;
    memcpy(p, o->via.str.ptr, o->via.str.size);
    p[o->via.str.size] = '\0';
    out->ptr = p;
    out->len = o->via.str.size;
    *arena = p + o->via.str.size + 1;
    return 0;
}

static int s_u64(const msgpack_object *o, uint64_t *out)
{
    if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return -1;
    *out = o->via.u64;
    return 0;
}

/* Looks up a key in the request map. */
static const msgpack_object *s_field(const msgpack_object *map, const char *key)
{
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (s_key_is(&map->via.map.ptr[i].key, key))
            return &map->via.map.ptr[i].val;
    return NULL;
}

void rpc_req_free(rpc_req_t *req)
{
    if (!req)
        return;
    struct rpc_req_priv *p = req->priv;
    if (p) {
        if (p->rpc) {
            if (p->prev)
                p->prev->next = p->next;
            else
                p->rpc->outstanding = p->next;
            if (p->next)
                p->next->prev = p->prev;
        }
        free(p->arena);
        msgpack_sbuffer_destroy(&p->sb);
        free(p);
    }
    free(req->rooms);
    free(req->ids);
    free(req);
}

#define BAD(field) do { *err = "bad request: " field; goto fail; } while (0)

rpc_req_t *rpc_parse(const void *body, size_t len, const char **err)
{
    msgpack_unpacked u;
    size_t off = 0;
    rpc_req_t *req = NULL;
    msgpack_unpacked_init(&u);
    *err = "bad request";
    if (len > RPC_MSG_MAX || env_msgpack_check(body, len) < 0 ||
        msgpack_unpack_next(&u, body, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len ||
        u.data.type != MSGPACK_OBJECT_MAP)
        goto fail_early;
    const msgpack_object *m = &u.data, *id = s_field(m, "id");
    if (!s_is_int(id))
        goto fail_early;
    int op = s_op_of(s_field(m, "op"));
    if (op < 0) {
        *err = s_field(m, "op") && s_field(m, "op")->type == MSGPACK_OBJECT_STR
                   ? "unknown op" : "bad request";
        goto fail_early;
    }
    req = calloc(1, sizeof *req);
    struct rpc_req_priv *p = req ? calloc(1, sizeof *p) : NULL;
    char *arena = p ? malloc(len + 1) : NULL;
    if (!arena) {
        free(p);
        *err = "out of memory";
        goto fail;
    }
    req->priv = p;
    p->req = req;
    p->arena = arena;
    msgpack_sbuffer_init(&p->sb);
    req->op = (rpc_op_t)op;
    p->id_neg = id->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
    if (p->id_neg)
        p->id_i = id->via.i64;
    else
        p->id_u = id->via.u64;

    int need_ns = 0, need_user = 0, need_pid = 0, need_rooms = 0, need_after = 0;
    switch (req->op) {
    case RPC_OP_PING:        break;
    case RPC_OP_POSITIONS:   need_ns = need_rooms = 1; break;
    case RPC_OP_REPLAY:      need_ns = need_rooms = need_after = 1; break;
    case RPC_OP_SESSION_PUT: need_ns = need_user = need_pid = need_rooms = 1; break;
    case RPC_OP_RECOVER:     need_ns = need_user = need_pid = need_after = 1; break;
    case RPC_OP_UNREAD:
    case RPC_OP_MARK_READ:
    case RPC_OP_EVENT:
    case RPC_OP_PUBLISH:     need_ns = need_user = 1; break;
    case RPC_OP_COUNT:       break;
    }
    if (need_ns && (s_str(s_field(m, "ns"), RPC_NAME_MAX, &arena, &req->ns) < 0 || req->ns.len == 0))
        BAD("ns");
    if (need_user &&
        (s_str(s_field(m, "user"), RPC_NAME_MAX, &arena, &req->user) < 0 || req->user.len == 0))
        BAD("user");
    if (need_pid &&
        (s_str(s_field(m, "pid"), RPC_NAME_MAX, &arena, &req->pid) < 0 || req->pid.len == 0))
        BAD("pid");
    if (need_rooms) {
        const msgpack_object *r = s_field(m, "rooms");
        if (!r || r->type != MSGPACK_OBJECT_ARRAY || r->via.array.size > RPC_ROOMS_MAX)
            BAD("rooms");
        req->nrooms = r->via.array.size;
        req->rooms = calloc(req->nrooms ? req->nrooms : 1, sizeof *req->rooms);
        if (!req->rooms) {
            *err = "out of memory";
            goto fail;
        }
        for (size_t i = 0; i < req->nrooms; i++)
            if (s_str(&r->via.array.ptr[i], RPC_NAME_MAX, &arena, &req->rooms[i]) < 0)
                BAD("rooms");
    }
    if (need_after && s_u64(s_field(m, "after"), &req->after) < 0)
        BAD("after");

    const msgpack_object *lim = s_field(m, "limit");
    if (req->op == RPC_OP_REPLAY || req->op == RPC_OP_RECOVER || req->op == RPC_OP_UNREAD) {
        uint64_t dflt = req->op == RPC_OP_UNREAD ? 20 : RPC_REPLAY_LIMIT_DEFAULT;
        uint64_t max = req->op == RPC_OP_UNREAD ? RPC_UNREAD_LIMIT_MAX : RPC_LIMIT_MAX;
        if (lim && lim->type != MSGPACK_OBJECT_NIL) {
            if (s_u64(lim, &req->limit) < 0)
                BAD("limit");
        } else {
            req->limit = dflt;
        }
        if (req->limit > max)
            req->limit = max;
        if (req->limit == 0 && req->op != RPC_OP_UNREAD)
            req->limit = 1;
    }

    if (req->op == RPC_OP_MARK_READ) {
        const msgpack_object *all = s_field(m, "all"), *ids = s_field(m, "ids");
        if (all && all->type == MSGPACK_OBJECT_BOOLEAN && all->via.boolean) {
            req->all = 1;
        } else {
            if (!ids || ids->type != MSGPACK_OBJECT_ARRAY || ids->via.array.size == 0 ||
                ids->via.array.size > RPC_IDS_MAX)
                BAD("ids");
            req->nids = ids->via.array.size;
            req->ids = calloc(req->nids, sizeof *req->ids);
            if (!req->ids) {
                *err = "out of memory";
                goto fail;
            }
            for (size_t i = 0; i < req->nids; i++) {
                const msgpack_object *v = &ids->via.array.ptr[i];
                if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX)
                    req->ids[i] = (int64_t)v->via.u64;
                else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                    req->ids[i] = v->via.i64;
                else
                    BAD("ids");
            }
        }
    }
    if (req->op == RPC_OP_EVENT) {
        if (s_str(s_field(m, "name"), RPC_NAME_MAX, &arena, &req->name) < 0 || req->name.len == 0)
            BAD("name");
        if (s_str(s_field(m, "args_json"), RPC_MSG_MAX, &arena, &req->json) < 0)
            BAD("args_json");
    }
    if (req->op == RPC_OP_PUBLISH) {
        if (s_str(s_field(m, "room"), RPC_NAME_MAX, &arena, &req->room) < 0 || req->room.len == 0)
            BAD("room");
        const msgpack_object *ev = s_field(m, "event"), *pj = s_field(m, "payload_json");
        if (ev) {
            if (s_str(ev, RPC_NAME_MAX, &arena, &req->event) < 0 || req->event.len == 0)
                BAD("event");
        } else {
            req->event.ptr = "notification";
            req->event.len = strlen(req->event.ptr);
        }
        if (pj) {
            if (s_str(pj, RPC_MSG_MAX, &arena, &req->json) < 0)
                BAD("payload_json");
        } else {
            req->json.ptr = "{}";
            req->json.len = 2;
        }
    }
    msgpack_unpacked_destroy(&u);
    return req;
fail:
    rpc_req_free(req);
fail_early:
    msgpack_unpacked_destroy(&u);
    return NULL;
}

/* ---- replies --------------------------------------------------------- */

static void s_pack_req_id(msgpack_packer *pk, const struct rpc_req_priv *p)
{
    s_pack_key(pk, "id");
    if (p->id_neg)
        msgpack_pack_int64(pk, p->id_i);
    else
        msgpack_pack_uint64(pk, p->id_u);
}

msgpack_packer *rpc_reply_begin(rpc_req_t *req, uint32_t nfields)
{
    struct rpc_req_priv *p = req->priv;
    p->sb.size = 0;
    msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&p->pk, nfields + 2);
    s_pack_req_id(&p->pk, p);
    s_pack_key(&p->pk, "ok");
    msgpack_pack_true(&p->pk);
    return &p->pk;
}

/* Sends p->sb to the request's peer (if the socket still exists). */
static void s_send_reply(struct rpc_req_priv *p, int is_error, rpc_op_t op)
{
    rpc_t *rpc = p->rpc;
    if (!rpc || !rpc->sock)
        return;
    rpc->requests++;
    if (is_error && (unsigned)op < RPC_OP_COUNT)
        rpc->op_errors[op]++;
    /* ROUTER drops replies to unknown or full peers silently: fine for RPC,
     * the gateway retries on timeout. */
    if (zmq_send(rpc->sock, p->identity, p->identity_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0) {
        if (p->delim)
            zmq_send(rpc->sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(rpc->sock, p->sb.data, p->sb.size, ZMQ_DONTWAIT);
    }
    /* a send may consume the edge of ZMQ_FD: look again from the loop */
    if (rpc->ev)
        event_active(rpc->ev, EV_READ, 0);
}

void rpc_reply_send(rpc_req_t *req)
{
    s_send_reply(req->priv, 0, req->op);
    rpc_req_free(req);
}

void rpc_reply_error(rpc_req_t *req, const char *msg)
{
    struct rpc_req_priv *p = req->priv;
    p->sb.size = 0;
    msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&p->pk, 2);
    s_pack_req_id(&p->pk, p);
    s_pack_key(&p->pk, "error");
    s_pack_key(&p->pk, msg ? msg : "error");
    s_send_reply(p, 1, req->op);
    rpc_req_free(req);
}

/* ---- the socket ------------------------------------------------------ */

/* Sends the scratch buffer as a reply to identity part 0. */
static void s_send_now(rpc_t *self, zmq_msg_t *parts, int delim)
{
    if (zmq_send(self->sock, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0) {
        if (delim)
            zmq_send(self->sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(self->sock, self->sb.data, self->sb.size, ZMQ_DONTWAIT);
    }
}

/* Receives one whole multipart message and answers it (or hands it on).
 * Returns 0 if a message was consumed, -1 if none was waiting (EAGAIN). */
static int s_serve_one(rpc_t *self)
{
    zmq_msg_t parts[RPC_FRAMES_MAX];
    size_t n = 0;
    int more = 1, too_many = 0, rc = 0;

    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            if (n == 0 && !too_many)
                return -1;
            break;   /* cannot happen mid-message: parts arrive atomically */
        }
        more = zmq_msg_more(&m);
        if (n < RPC_FRAMES_MAX) {
            parts[n++] = m;
        } else {
            too_many = 1;
            zmq_msg_close(&m);
        }
    }

    size_t body_i = n - 1;
    int delim = n == 3;
    if (too_many || n < 2 || (delim && zmq_msg_size(&parts[1]) != 0) ||
        zmq_msg_size(&parts[body_i]) > RPC_MSG_MAX ||
        zmq_msg_size(&parts[0]) > RPC_IDENTITY_MAX) {
        self->malformed++;
        log_warn("event=rpc_malformed reason=framing frames=%zu%s", n, too_many ? "+" : "");
        goto done;
    }
    const void *body = zmq_msg_data(&parts[body_i]);
    size_t blen = zmq_msg_size(&parts[body_i]);
    int is_error = 0;
    rpc_status_t st;
    memset(&st, 0, sizeof st);
    st.epoch = "";
    self->status_fn(self->status_ctx, &st);
    self->sb.size = 0;
    int h = rpc_handle(body, blen, &st, &self->sb, &is_error);
    if (h < 0) {
        self->malformed++;
        log_warn("event=rpc_malformed reason=body bytes=%zu", blen);
        goto done;
    }
    if (h == 0) {
        self->requests++;
        if (is_error)
            log_info("event=rpc_error_reply bytes=%zu", blen);
        else
            self->op_count[RPC_OP_PING]++;
        s_send_now(self, parts, delim);
        goto done;
    }
    const char *err = NULL;
    rpc_req_t *req = rpc_parse(body, blen, &err);
    if (!req) {
        /* an error reply needs the id: rpc_handle accepted it, so build it */
        msgpack_unpacked u;
        size_t off = 0;
        msgpack_unpacked_init(&u);
        if (env_msgpack_check(body, blen) == 0 &&
            msgpack_unpack_next(&u, body, blen, &off) == MSGPACK_UNPACK_SUCCESS &&
            u.data.type == MSGPACK_OBJECT_MAP) {
            const msgpack_object *id = s_field(&u.data, "id");
            int op = s_op_of(s_field(&u.data, "op"));
            if (s_is_int(id)) {
                msgpack_packer pk;
                self->sb.size = 0;
                msgpack_packer_init(&pk, &self->sb, msgpack_sbuffer_write);
                msgpack_pack_map(&pk, 2);
                s_pack_id(&pk, id);
                s_pack_key(&pk, "error");
                s_pack_key(&pk, err);
                self->requests++;
                if (op >= 0) {
                    self->op_count[op]++;
                    self->op_errors[op]++;
                }
                log_info("event=rpc_error_reply op=%s reason=\"%s\"", op >= 0 ? s_op_names[op] : "?",
                         err);
                s_send_now(self, parts, delim);
            }
        }
        msgpack_unpacked_destroy(&u);
        goto done;
    }
    struct rpc_req_priv *p = req->priv;
    p->rpc = self;
    memcpy(p->identity, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]));
    p->identity_len = zmq_msg_size(&parts[0]);
    p->delim = delim;
    p->next = self->outstanding;
    if (p->next)
        p->next->prev = p;
    self->outstanding = p;
    self->op_count[req->op]++;
    self->request_fn(self->request_ctx, req);   /* may answer at once */
done:
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
    return rc;
}

static void s_on_event(evutil_socket_t fd, short what, void *arg)
{
    rpc_t *self = arg;
    (void)fd;
    (void)what;
    /* Bounded per callback so one flood cannot starve the database side; the
     * fd stays readable-pending because ZMQ_EVENTS still reports POLLIN, so
     * re-activate the event ourselves. */
    for (int i = 0; i < 1000; i++) {
        int events = 0;
        size_t sz = sizeof events;
        if (zmq_getsockopt(self->sock, ZMQ_EVENTS, &events, &sz) != 0)
            return;
        if (!(events & ZMQ_POLLIN))
            return;
        if (s_serve_one(self) < 0)
            return;
    }
    event_active(self->ev, EV_READ, 0);
}

rpc_t *rpc_new(struct event_base *base, void *zctx, const char *endpoint,
               rpc_status_fn status_fn, void *status_ctx,
               rpc_request_fn request_fn, void *request_ctx, char *err, size_t errcap)
{
    rpc_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    msgpack_sbuffer_init(&self->sb);
    self->status_fn = status_fn;
    self->status_ctx = status_ctx;
    self->request_fn = request_fn;
    self->request_ctx = request_ctx;
    self->sock = zmq_socket(zctx, ZMQ_ROUTER);
    if (!self->sock) {
        snprintf(err, errcap, "cannot create ROUTER socket: %s", zmq_strerror(errno));
        goto fail;
    }
    int linger = 0, maxmsg = RPC_MSG_MAX + 1024, hwm = RPC_SNDHWM;
    int64_t maxmsg64 = maxmsg;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
    /* a reconnect storm answers thousands of requests in one turn: beyond
     * the HWM a ROUTER drops replies silently */
    zmq_setsockopt(self->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->sock, ZMQ_MAXMSGSIZE, &maxmsg64, sizeof maxmsg64);
    if (zmq_bind(self->sock, endpoint) != 0) {
        snprintf(err, errcap, "cannot bind ROUTER socket to %s: %s", endpoint, zmq_strerror(errno));
        goto fail;
    }
    int fd;
    size_t sz = sizeof fd;
    if (zmq_getsockopt(self->sock, ZMQ_FD, &fd, &sz) != 0) {
        snprintf(err, errcap, "cannot get ROUTER fd: %s", zmq_strerror(errno));
        goto fail;
    }
    self->ev = event_new(base, fd, EV_READ | EV_PERSIST, s_on_event, self);
    if (!self->ev || event_add(self->ev, NULL) != 0) {
        snprintf(err, errcap, "cannot watch ROUTER fd");
        goto fail;
    }
    /* Messages may already be queued (edge-triggered fd): drain once. */
    event_active(self->ev, EV_READ, 0);
    return self;
fail:
    rpc_destroy(&self);
    return NULL;
}

void rpc_destroy(rpc_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rpc_t *self = *self_p;
    for (struct rpc_req_priv *p = self->outstanding; p; p = p->next)
        p->rpc = NULL;
    if (self->ev)
        event_free(self->ev);
    if (self->sock)
        zmq_close(self->sock);
    msgpack_sbuffer_destroy(&self->sb);
    free(self);
    *self_p = NULL;
}

uint64_t rpc_request_count(const rpc_t *self)
{
    return self->requests;
}

uint64_t rpc_malformed_count(const rpc_t *self)
{
    return self->malformed;
}

uint64_t rpc_op_count(const rpc_t *self, rpc_op_t op)
{
    return (unsigned)op < RPC_OP_COUNT ? self->op_count[op] : 0;
}

uint64_t rpc_op_error_count(const rpc_t *self, rpc_op_t op)
{
    return (unsigned)op < RPC_OP_COUNT ? self->op_errors[op] : 0;
}
