/*  rpc - the broker's upstream RPC socket (gateway DEALER -> broker ROUTER)
 *
 *  Design: the ROUTER's ZMQ_FD is watched for EV_READ by libevent. That fd is
 *  edge-triggered: it signals "something changed", not "a message waits", so
 *  the callback drains by re-reading ZMQ_EVENTS after every recv and send
 *  until ZMQ_POLLIN is clear. Requests are decoded by the pure rpc_handle();
 *  the socket code only moves frames. A message with too many frames or a
 *  body over RPC_MSG_MAX is drained, counted and dropped.
 */
#include "rpc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <zmq.h>

#include "log.h"

#define RPC_FRAMES_MAX 3   /* identity, optional empty delimiter, body */

struct rpc {
    void *sock;             /* ZMQ_ROUTER */
    struct event *ev;       /* EV_READ on its ZMQ_FD */
    rpc_status_fn status_fn; /* source of the ping reply's fields */
    void *status_ctx;       /* its argument */
    msgpack_sbuffer sb;     /* reply scratch buffer */
    uint64_t requests;      /* requests answered */
    uint64_t malformed;     /* messages refused */
};

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

int rpc_handle(const void *req, size_t len, const rpc_status_t *st,
               msgpack_sbuffer *out, int *is_error)
{
    msgpack_unpacked u;
    size_t off = 0;
    int rc = -1;
    const msgpack_object *id = NULL, *op = NULL;

    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, req, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len)
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
    if (!id || (id->type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
                id->type != MSGPACK_OBJECT_NEGATIVE_INTEGER))
        goto done;

    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    const char *error = NULL;
    if (!op || op->type != MSGPACK_OBJECT_STR)
        error = "bad request";
    else if (!s_key_is(op, "ping"))
        error = "unknown op";
    msgpack_pack_map(&pk, error ? 2 : 5);
    s_pack_key(&pk, "id");
    if (id->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        msgpack_pack_uint64(&pk, id->via.u64);
    else
        msgpack_pack_int64(&pk, id->via.i64);
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
    }
    *is_error = error != NULL;
    rc = 0;
done:
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* Receives one whole multipart message and answers it. Returns 0 if a
 * message was consumed, -1 if none was waiting (EAGAIN) or on error. */
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
        zmq_msg_size(&parts[body_i]) > RPC_MSG_MAX) {
        self->malformed++;
        log_warn("event=rpc_malformed reason=framing frames=%zu%s", n, too_many ? "+" : "");
        goto done;
    }
    int is_error = 0;
    rpc_status_t st = { 0, 0, "" };
    self->status_fn(self->status_ctx, &st);
    self->sb.size = 0;
    if (rpc_handle(zmq_msg_data(&parts[body_i]), zmq_msg_size(&parts[body_i]),
                   &st, &self->sb, &is_error) < 0) {
        self->malformed++;
        log_warn("event=rpc_malformed reason=body bytes=%zu", zmq_msg_size(&parts[body_i]));
        goto done;
    }
    if (is_error)
        log_info("event=rpc_error_reply bytes=%zu", zmq_msg_size(&parts[body_i]));
    self->requests++;
    /* ROUTER drops replies to unknown or full peers silently: fine for RPC,
     * the gateway retries on timeout. */
    if (zmq_send(self->sock, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0) {
        if (delim)
            zmq_send(self->sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(self->sock, self->sb.data, self->sb.size, ZMQ_DONTWAIT);
    }
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
               rpc_status_fn status_fn, void *status_ctx, char *err, size_t errcap)
{
    rpc_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    msgpack_sbuffer_init(&self->sb);
    self->status_fn = status_fn;
    self->status_ctx = status_ctx;
    self->sock = zmq_socket(zctx, ZMQ_ROUTER);
    if (!self->sock) {
        snprintf(err, errcap, "cannot create ROUTER socket: %s", zmq_strerror(errno));
        goto fail;
    }
    int linger = 0, maxmsg = RPC_MSG_MAX + 1024;
    int64_t maxmsg64 = maxmsg;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
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
