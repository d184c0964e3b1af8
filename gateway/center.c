/*  center - the notification center, through the broker  (see center.h)
 *
 *  Each request carries a small context (the socket and the ack id) and is
 *  owned by the socket, so a socket that goes away cancels its requests and
 *  no callback ever reaches a freed socket.
 */
#include "center.h"
#include "session.h"
#include "upstream.h"
#include "sio.h"
#include "log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CENTER_MAX_IDS 1000
#define CENTER_UNREAD_LIMIT 20
#define CENTER_RETRIES 10

typedef struct {
    sock_t *k;                  //  The socket (owner of the request)
    int64_t ack;                //  Ack id to answer, -1 for none
    int connect;                //  unread: the snapshot sent on connect (an event)
} ctx_t;

/* A context for one request, or NULL when the socket has too many in
 * flight (answered with an error ack) or memory ran out. */
static ctx_t *s_ctx(sock_t *k, int64_t ack)
{
    if (k->inflight >= k->sess->gw->cfg.max_inflight) {
        k->sess->gw->stats.limit_inflight++;
        sock_ack_error(k, ack, "too many requests in flight");
        return NULL;
    }
    ctx_t *c = calloc(1, sizeof *c);
    if (c) {
        c->k = k;
        c->ack = ack;
        k->inflight++;
    }
    return c;
}

static void s_ctx_free(ctx_t *c)
{
    c->k->inflight--;
    free(c);
}

static void s_pack_cstr(msgpack_packer *pk, const char *s)
{
    up_pack_str(pk, s, strlen(s));
}

/* Starts a request with "user" and "ns" plus nfields more. */
static msgpack_packer *s_begin(sock_t *k, const char *op, uint32_t nfields)
{
    msgpack_packer *pk = up_begin(k->sess->gw->upstream, op, nfields + 2);
    s_pack_cstr(pk, "user");
    s_pack_cstr(pk, k->user);
    s_pack_cstr(pk, "ns");
    up_pack_str(pk, k->nsp, k->nsp_len);
    return pk;
}

static void s_send(sock_t *k, up_reply_fn *cb, ctx_t *c)
{
    up_send(k->sess->gw->upstream, cb, c, k, k->sess->gw->cfg.rpc_timeout_ms);
}

/* A callback's common start: 1 if the reply is usable; otherwise answers the
 * ack with the error (unless cancelled) and frees the context. */
static int s_reply_ok(ctx_t *c, const msgpack_object *reply, const char *error)
{
    if (error == up_cancelled) {
        s_ctx_free(c);
        return 0;
    }
    if (error || !reply) {
        sock_ack_error(c->k, c->ack, error ? error : "no reply from the broker");
        s_ctx_free(c);
        return 0;
    }
    return 1;
}

/* ---- unread ---------------------------------------------------------------- */

static void s_unread(sock_t *k, int64_t ack, int on_connect);

/* A request on the socket's behalf failed for a passing reason (no broker
 * leads yet, a timeout): the unread snapshot on connect and the recovery
 * record (session_put) are tried again, half a second apart, up to
 * CENTER_RETRIES times; a lost session_put would make the socket
 * unrecoverable after a disconnect. */
static void s_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sock_t *k = arg;
    if (k->sess->closed)
        return;
    if (k->retry_unread) {
        k->retry_unread = 0;
        s_unread(k, -1, 1);
    }
    if (k->retry_put) {
        k->retry_put = 0;
        center_session_put(k);
    }
}

static void s_retry(sock_t *k, int *flag, const char *what, const char *error)
{
    if (++k->retry_tries > CENTER_RETRIES) {
        log_info("event=%s_failed user=%s reason=\"%s\"", what, k->user, error);
        return;
    }
    *flag = 1;
    if (!k->retry)
        k->retry = event_new(k->sess->gw->base, -1, 0, s_retry_cb, k);
    struct timeval tv = { 0, 500000 };
    if (k->retry && !event_pending(k->retry, EV_TIMEOUT, NULL))
        event_add(k->retry, &tv);
}

static void s_unread_reply(void *arg, const msgpack_object *reply, const char *error)
{
    ctx_t *c = arg;
    if (error && error != up_cancelled && c->connect) {
        s_retry(c->k, &c->k->retry_unread, "unread", error);
        s_ctx_free(c);
        return;
    }
    if (!s_reply_ok(c, reply, error))
        return;
    uint64_t count = 0;
    const char *items = "[]";
    size_t il = 2;
    up_get_u64(reply, "count", &count);
    up_get_str(reply, "items_json", &items, &il);
    size_t cap = il + 64;
    char *buf = malloc(cap);
    if (buf) {
        int n = snprintf(buf, cap, "{\"count\":%llu,\"items\":%.*s}", (unsigned long long)count,
                         (int)il, items);
        if (c->connect)
            sock_emit_event(c->k, "unread", buf, (size_t)n);
        else
            sock_ack_raw(c->k, c->ack, buf, (size_t)n);
        free(buf);
    }
    s_ctx_free(c);
}

static void s_unread(sock_t *k, int64_t ack, int on_connect)
{
    ctx_t *c = s_ctx(k, ack);
    if (!c)
        return;
    c->connect = on_connect;
    msgpack_packer *pk = s_begin(k, "unread", 1);
    s_pack_cstr(pk, "limit");
    msgpack_pack_uint32(pk, CENTER_UNREAD_LIMIT);
    s_send(k, s_unread_reply, c);
}

void center_on_connected(sock_t *k)
{
    s_unread(k, -1, 1);
}

/* ---- mark_read / mark_all_read --------------------------------------------- */

static void s_mark_reply(void *arg, const msgpack_object *reply, const char *error)
{
    ctx_t *c = arg;
    if (!s_reply_ok(c, reply, error))
        return;
    uint64_t unread = 0;
    up_get_u64(reply, "unread", &unread);
    char buf[64];
    int n = snprintf(buf, sizeof buf, "{\"unread\":%llu}", (unsigned long long)unread);
    sock_ack_raw(c->k, c->ack, buf, (size_t)n);
    s_ctx_free(c);
}

/* ids from: 12 | [12, 13] | {"ids": [...]} | {"id": 12}. Returns the count
 * (0..CENTER_MAX_IDS) or -1. */
static int s_ids(const json_t *a0, json_int_t *ids)
{
    if (json_is_object(a0)) {
        json_t *v = json_object_get(a0, "ids");
        a0 = v ? v : json_object_get(a0, "id");
    }
    if (json_is_integer(a0)) {
        ids[0] = json_integer_value(a0);
        return 1;
    }
    if (!json_is_array(a0) || json_array_size(a0) > CENTER_MAX_IDS)
        return -1;
    size_t i;
    json_t *v;
    json_array_foreach(a0, i, v) {
        if (!json_is_integer(v))
            return -1;
        ids[i] = json_integer_value(v);
    }
    return (int)json_array_size(a0);
}

static void s_mark_read(sock_t *k, const json_t *args, int64_t ack, int all)
{
    json_int_t *ids = NULL;
    int n = 0;
    if (!all) {
        ids = malloc(CENTER_MAX_IDS * sizeof *ids);
        n = ids ? s_ids(json_array_get(args, 0), ids) : -1;
        if (n <= 0) {
            sock_ack_error(k, ack, "mark_read takes a notification id, a list of at most 1000 ids, "
                                   "or {\"ids\": [...]}");
            free(ids);
            return;
        }
    }
    ctx_t *c = s_ctx(k, ack);
    if (!c) {
        free(ids);
        return;
    }
    msgpack_packer *pk = s_begin(k, "mark_read", 1);
    if (all) {
        s_pack_cstr(pk, "all");
        msgpack_pack_true(pk);
    } else {
        s_pack_cstr(pk, "ids");
        msgpack_pack_array(pk, (uint32_t)n);
        for (int i = 0; i < n; i++)
            msgpack_pack_int64(pk, ids[i]);
    }
    free(ids);
    s_send(k, s_mark_reply, c);
}

/* ---- publish --------------------------------------------------------------- */

static void s_publish_reply(void *arg, const msgpack_object *reply, const char *error)
{
    ctx_t *c = arg;
    if (!s_reply_ok(c, reply, error))
        return;
    uint64_t id = 0;
    up_get_u64(reply, "row_id", &id);   /* "id" is the request's */
    char buf[48];
    int n = snprintf(buf, sizeof buf, "{\"id\":%llu}", (unsigned long long)id);
    sock_ack_raw(c->k, c->ack, buf, (size_t)n);
    s_ctx_free(c);
}

static void s_publish(sock_t *k, const json_t *args, int64_t ack)
{
    const json_t *a0 = json_array_get(args, 0);
    json_t *room = json_object_get(a0, "room"), *event = json_object_get(a0, "event");
    json_t *payload = json_object_get(a0, "payload");
    if (!json_is_string(room) || json_string_length(room) == 0 || json_string_length(room) > 200 ||
        (event && (!json_is_string(event) || json_string_length(event) == 0 ||
                   json_string_length(event) > 200))) {
        sock_ack_error(k, ack, "publish takes {\"room\": str, \"event\": str, \"payload\": any}");
        return;
    }
    const char *r = json_string_value(room);
    size_t rl = json_string_length(room);
    if (memchr(r, 0, rl) || !sock_claim_allows(k->publish_rooms, r, rl)) {
        k->sess->gw->stats.auth_failures++;
        log_info("event=publish_refused user=%s room=\"%s\"", k->user, r);
        sock_ack_error(k, ack, "not allowed to publish to this room");
        return;
    }
    char *pj = payload ? json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("{}");
    if (!pj)
        return;
    ctx_t *c = s_ctx(k, ack);
    if (!c) {
        free(pj);
        return;
    }
    msgpack_packer *pk = s_begin(k, "publish", 3);
    s_pack_cstr(pk, "room");
    up_pack_str(pk, r, rl);
    s_pack_cstr(pk, "event");
    if (event)
        up_pack_str(pk, json_string_value(event), json_string_length(event));
    else
        s_pack_cstr(pk, "notification");
    s_pack_cstr(pk, "payload_json");
    s_pack_cstr(pk, pj);
    free(pj);
    s_send(k, s_publish_reply, c);
}

/* ---- application events ---------------------------------------------------- */

static void s_event_reply(void *arg, const msgpack_object *reply, const char *error)
{
    ctx_t *c = arg;
    if (!s_reply_ok(c, reply, error))
        return;
    const char *r = "null";
    size_t rl = 4;
    up_get_str(reply, "result_json", &r, &rl);
    sock_ack_raw(c->k, c->ack, r, rl);
    s_ctx_free(c);
}

static void s_app_event(sock_t *k, const char *name, const char *args_array, size_t len,
                        int64_t ack)
{
    ctx_t *c = s_ctx(k, ack);
    if (!c)
        return;
    msgpack_packer *pk = s_begin(k, "event", 2);
    s_pack_cstr(pk, "name");
    s_pack_cstr(pk, name);
    s_pack_cstr(pk, "args_json");
    up_pack_str(pk, args_array, len);
    s_send(k, s_event_reply, c);
}

/* ---- dispatch -------------------------------------------------------------- */

void center_event(sock_t *k, const char *name, const char *args, size_t args_len, int64_t ack_id)
{
    if (!k->user[0]) {
        sock_ack_error(k, ack_id, "not authenticated");
        return;
    }
    /* the arguments as a JSON array: "[" + args (which ends with "]") */
    char *arr = malloc(args_len + 1);
    if (!arr)
        return;
    arr[0] = '[';
    memcpy(arr + 1, args, args_len);
    if (strcmp(name, "unread") == 0) {
        s_unread(k, ack_id, 0);
    } else if (strcmp(name, "mark_read") == 0 || strcmp(name, "mark_all_read") == 0 ||
               strcmp(name, "publish") == 0) {
        json_t *j = json_loadb(arr, args_len + 1, 0, NULL);
        if (!j)
            sock_ack_error(k, ack_id, "arguments are not valid JSON");
        else if (name[0] == 'p')
            s_publish(k, j, ack_id);
        else
            s_mark_read(k, j, ack_id, strcmp(name, "mark_all_read") == 0);
        json_decref(j);
    } else {
        s_app_event(k, name, arr, args_len + 1, ack_id);
    }
    free(arr);
}

static void s_put_reply(void *arg, const msgpack_object *reply, const char *error)
{
    sock_t *k = arg;
    (void)reply;
    if (error && error != up_cancelled)
        s_retry(k, &k->retry_put, "session_put", error);
}

void center_session_put(sock_t *k)
{
    if (!k->pid[0] || !k->sess->gw->upstream)
        return;
    msgpack_packer *pk = s_begin(k, "session_put", 2);
    s_pack_cstr(pk, "pid");
    s_pack_cstr(pk, k->pid);
    s_pack_cstr(pk, "rooms");
    msgpack_pack_array(pk, (uint32_t)k->nrooms);
    for (size_t i = 0; i < k->nrooms; i++) {
        size_t kl;
        const char *key = room_key(k->rooms[i].room, &kl);
        up_pack_str(pk, key + k->nsp_len + 1, kl - k->nsp_len - 2);
    }
    up_send(k->sess->gw->upstream, s_put_reply, k, k, k->sess->gw->cfg.rpc_timeout_ms);
}
