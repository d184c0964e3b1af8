/*  ops - the broker's answers to gateway requests (upstream RPC data ops)
 *
 *  Design: every request becomes a small job struct that owns the request
 *  and answers it exactly once. Jobs that need the database queue a query on
 *  the RPC pool (rdb.h) and continue in its callback; nothing blocks.
 *
 *  Replay (also the second half of recover) walks forward from `after`:
 *  while the ring does not hold the next seq it runs the batch window query
 *  for at most OPS_DB_WINDOW seqs (rows of the batches in the window, ranked
 *  by id within each batch, seq = first_seq + rank, filtered by namespace
 *  and rooms after the ranking), and as soon as the ring holds the rest it
 *  finishes from the ring. It stops at `limit` messages (then `more`), at
 *  OPS_REPLY_BYTES_MAX bytes (also `more`), or at the head.
 *
 *  The ring is filled by ops_on_published() with the envelope bytes exactly
 *  as pub_send() encoded them. At each start of leadership the most recent
 *  retained seqs (up to the ring's size) are loaded from the database and
 *  put in front of whatever was published meanwhile; the same load seeds
 *  the publisher's per-room map, so `prev` links and `positions` are right
 *  from the first message of a new leader. A load that arrives for an older
 *  term is dropped.
 *
 *  unread, session_put and recover are batched: requests are collected for
 *  OPS_BATCH_MS (or until OPS_BATCH_MAX) and sent as one query over
 *  unnest() of parameter arrays, so a reconnect storm costs a handful of
 *  queries.
 */
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "log.h"
#include "map.h"
#include "ring.h"

/* ---- SQL ---------------------------------------------------------------- */

/* The rows of the batches overlapping seqs ($1, $2], with their seq. */
#define SQL_WINDOW \
    "WITH b AS (SELECT b.batch_id, b.snap, b.first_seq, p.snap AS psnap" \
    "   FROM belfry_batches b" \
    "   CROSS JOIN LATERAL (SELECT snap FROM belfry_batches p WHERE p.batch_id < b.batch_id" \
    "                        ORDER BY p.batch_id DESC LIMIT 1) p" \
    "  WHERE b.row_count > 0 AND b.first_seq + b.row_count > $1::bigint" \
    "    AND b.first_seq <= $2::bigint)," \
    " r AS (SELECT b.first_seq + row_number() OVER (PARTITION BY b.batch_id ORDER BY n.id) - 1 AS seq," \
    "        n.id, n.namespace, n.room, n.event, n.payload, n.created_at" \
    "   FROM b JOIN notifications n" \
    "     ON n.txid >= pg_snapshot_xmin(b.psnap) AND n.txid < pg_snapshot_xmax(b.snap)" \
    "    AND NOT pg_visible_in_snapshot(n.txid, b.psnap)" \
    "    AND pg_visible_in_snapshot(n.txid, b.snap))"
#define SQL_WINDOW_COLS \
    "seq, id, namespace, room, event, payload::text," \
    " (extract(epoch FROM created_at) * 1000000)::bigint"

/* Columns 0..7: seq id ns room event payload ts_us prev. */
static const char SQL_REPLAY[] =
    SQL_WINDOW " SELECT " SQL_WINDOW_COLS ","
    " coalesce(lag(seq) OVER (PARTITION BY room ORDER BY seq), 0)"
    " FROM r WHERE seq > $1::bigint AND seq <= $2::bigint"
    "   AND namespace = $3 AND room = ANY($4::text[])"
    " ORDER BY seq LIMIT $5::bigint";

static const char SQL_PRELOAD[] =
    SQL_WINDOW " SELECT " SQL_WINDOW_COLS ","
    " coalesce(lag(seq) OVER (PARTITION BY namespace, room ORDER BY seq), 0)"
    " FROM r WHERE seq > $1::bigint AND seq <= $2::bigint ORDER BY seq DESC";

static const char SQL_OLDEST[] =
    "SELECT (first_seq + row_count - 1)::text FROM belfry_batches ORDER BY batch_id LIMIT 1";

/* The seq of the newest delivered row of each room (0 if none retained):
 * the newest rows by id, the first batch whose snapshot sees each, its rank
 * in that batch. */
static const char SQL_POSITIONS[] =
    "SELECT coalesce((SELECT b.first_seq + (SELECT count(*) FROM notifications m"
    "      WHERE m.txid >= pg_snapshot_xmin(p.snap) AND m.txid < pg_snapshot_xmax(b.snap)"
    "        AND NOT pg_visible_in_snapshot(m.txid, p.snap)"
    "        AND pg_visible_in_snapshot(m.txid, b.snap) AND m.id < n.id)"
    "   FROM (SELECT id, txid FROM notifications WHERE room = q.room AND namespace = $1"
    "          ORDER BY id DESC LIMIT 100) n"
    "   CROSS JOIN LATERAL (SELECT batch_id, snap, first_seq FROM belfry_batches b"
    "      WHERE pg_snapshot_xmax(b.snap) > n.txid AND pg_visible_in_snapshot(n.txid, b.snap)"
    "      ORDER BY pg_snapshot_xmax(b.snap), batch_id LIMIT 1) b"
    "   CROSS JOIN LATERAL (SELECT snap FROM belfry_batches p WHERE p.batch_id < b.batch_id"
    "      ORDER BY p.batch_id DESC LIMIT 1) p"
    "  WHERE NOT pg_visible_in_snapshot(n.txid, p.snap)"
    "  ORDER BY n.id DESC LIMIT 1), 0)::text"
    " FROM unnest($2::text[]) WITH ORDINALITY AS q(room, i) ORDER BY q.i";

static const char SQL_SESSION_PUT[] =
    "INSERT INTO belfry_sessions (pid, user_id, ns, rooms, updated_at)"
    " SELECT DISTINCT ON (pid) pid, usr, ns,"
    "        ARRAY(SELECT jsonb_array_elements_text(rj::jsonb)), now()"
    "   FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])"
    "        WITH ORDINALITY AS s(pid, usr, ns, rj, i)"
    "  ORDER BY pid, i DESC"
    " ON CONFLICT (pid) DO UPDATE SET ns = EXCLUDED.ns, rooms = EXCLUDED.rooms,"
    "    updated_at = now() WHERE belfry_sessions.user_id = EXCLUDED.user_id";

/* Batched over (pid, user, ns, retention) arrays: per request i, one row
 * per room (NULL room when the session has none); no row for i: unknown. */
static const char SQL_RECOVER[] =
    "SELECT q.i, r"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[]) WITH ORDINALITY"
    "      AS q(pid, usr, ns, ret, i)"
    " JOIN belfry_sessions s ON s.pid = q.pid AND s.user_id = q.usr AND s.ns = q.ns"
    "  AND s.updated_at >= now() - make_interval(secs => q.ret)"
    " LEFT JOIN LATERAL unnest(s.rooms) r ON true"
    " ORDER BY q.i";

static const char SQL_UNREAD[] =
    "SELECT u.i, c.n, coalesce(it.items, '[]')"
    " FROM unnest($1::text[], $2::text[], $3::int[]) WITH ORDINALITY AS u(usr, ns, lim, i)"
    " CROSS JOIN LATERAL (SELECT count(*) AS n FROM notifications"
    "    WHERE room = 'user_' || u.usr AND namespace = u.ns AND read_at IS NULL) c"
    " CROSS JOIN LATERAL (SELECT json_agg(json_build_object('id', x.id, 'event', x.event,"
    "        'payload', x.payload, 'created_at', x.created_at) ORDER BY x.id DESC)::text AS items"
    "    FROM (SELECT id, event, payload, created_at FROM notifications"
    "           WHERE room = 'user_' || u.usr AND namespace = u.ns AND read_at IS NULL"
    "           ORDER BY id DESC LIMIT u.lim) x) it";

/* The outer SELECT sees the rows as before the UPDATE: new count = old - marked. */
static const char SQL_MARK_READ[] =
    "WITH m AS (UPDATE notifications SET read_at = now()"
    "   WHERE room = 'user_' || $1 AND namespace = $2 AND read_at IS NULL"
    "     AND ($3::bool OR id = ANY($4::bigint[])) RETURNING id)"
    " SELECT (SELECT count(*) FROM m),"
    "        (SELECT coalesce(json_agg(id ORDER BY id), '[]')::text FROM m),"
    "        (SELECT count(*) FROM notifications"
    "          WHERE room = 'user_' || $1 AND namespace = $2 AND read_at IS NULL)";

static const char SQL_PUBLISH[] =
    "INSERT INTO notifications (namespace, room, event, payload)"
    " VALUES ($1, $2, $3, $4::jsonb) RETURNING id::text";

static const char SQL_PRUNE[] =
    "WITH d AS (DELETE FROM belfry_batches"
    "   WHERE created_at < now() - make_interval(secs => $1::double precision)"
    "     AND batch_id < (SELECT max(batch_id) FROM belfry_batches) RETURNING 1),"
    " s AS (DELETE FROM belfry_sessions"
    "   WHERE updated_at < now() - make_interval(secs => $1::double precision) RETURNING 1)"
    " SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM s)";

/* ---- state -------------------------------------------------------------- */

/* Requests of one op waiting to be sent as one query: flush(ops) sends them,
 * when OPS_BATCH_MAX are queued or OPS_BATCH_MS after the first. */
typedef struct batchq {
    rpc_req_t *reqs[OPS_BATCH_MAX];
    size_t n;
    struct event *timer;
    ops_t *ops;
    void (*flush)(ops_t *ops);
} batchq_t;

struct ops {
    struct event_base *base;
    pub_t *pub;
    rdb_t *rdb;
    ring_t *ring;
    ops_config_t cfg;
    char *event_sql;            /* SELECT fn($1,$2,$3,$4::jsonb)::text */
    int leading;
    unsigned term;              /* leadership term (stale results are dropped) */
    uint64_t oldest;            /* lowest after accepted */
    batchq_t unread, sessions, recovers;  /* batching */
    struct event *retention;    /* prune timer */
    int pruning;                /* a prune is in flight */
    uint64_t prunes, prune_failures, pruned_batches, pruned_sessions;   /* counters */
    msgpack_sbuffer scratch;    /* envelope encoding */
    char retention_str[32];     /* retention_s as text */
};

/* A query's context: the ops and the leadership term it was sent in. */
typedef struct {
    ops_t *ops;
    unsigned term;
    uint64_t lo, hi;
} termq_t;

static void s_pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void s_pack_cstr(msgpack_packer *pk, const char *s)
{
    s_pack_str(pk, s, strlen(s));
}

static uint64_t s_u64(const PGresult *r, int row, int col)
{
    return strtoull(PQgetvalue(r, row, col), NULL, 10);
}

static void s_u64_str(char *out, size_t cap, uint64_t v)
{
    snprintf(out, cap, "%llu", (unsigned long long)v);
}

/* ---- literals ------------------------------------------------------------- */

int ops_pg_array(msgpack_sbuffer *out, const rpc_str_t *items, size_t n)
{
    out->size = 0;
    if (msgpack_sbuffer_write(out, "{", 1) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (i && msgpack_sbuffer_write(out, ",", 1) != 0)
            return -1;
        if (msgpack_sbuffer_write(out, "\"", 1) != 0)
            return -1;
        const char *s = items[i].ptr;
        size_t start = 0;
        for (size_t k = 0; k < items[i].len; k++) {
            if (s[k] == '"' || s[k] == '\\') {
                if (msgpack_sbuffer_write(out, s + start, k - start) != 0 ||
                    msgpack_sbuffer_write(out, "\\", 1) != 0)
                    return -1;
                start = k;
            }
        }
        if (msgpack_sbuffer_write(out, s + start, items[i].len - start) != 0 ||
            msgpack_sbuffer_write(out, "\"", 1) != 0)
            return -1;
    }
    return msgpack_sbuffer_write(out, "}", 2) != 0 ? -1 : 0;   /* with the NUL */
}

int ops_json_array(msgpack_sbuffer *out, const rpc_str_t *items, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    out->size = 0;
    if (msgpack_sbuffer_write(out, "[", 1) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if ((i && msgpack_sbuffer_write(out, ",", 1) != 0) ||
            msgpack_sbuffer_write(out, "\"", 1) != 0)
            return -1;
        const unsigned char *s = (const unsigned char *)items[i].ptr;
        for (size_t k = 0; k < items[i].len; k++) {
            char esc[6];
            size_t el = 0;
            if (s[k] == '"' || s[k] == '\\') {
                esc[0] = '\\';
                esc[1] = (char)s[k];
                el = 2;
            } else if (s[k] < 0x20) {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[s[k] >> 4];
                esc[5] = hex[s[k] & 15];
                el = 6;
            }
            if (el ? msgpack_sbuffer_write(out, esc, el) != 0
                   : msgpack_sbuffer_write(out, (const char *)s + k, 1) != 0)
                return -1;
        }
        if (msgpack_sbuffer_write(out, "\"", 1) != 0)
            return -1;
    }
    return msgpack_sbuffer_write(out, "]", 2) != 0 ? -1 : 0;
}

int ops_valid_function_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > OPS_FN_NAME_MAX)
        return 0;
    int dots = 0, at_start = 1;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c == '.') {
            if (at_start || ++dots > 1)
                return 0;
            at_start = 1;
            continue;
        }
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        int digit = c >= '0' && c <= '9';
        if (!alpha && !(digit && !at_start))
            return 0;
        at_start = 0;
    }
    return !at_start;
}

/* ---- the ring, preload, oldest, retention -------------------------------- */

void ops_on_published(ops_t *self, const env_msg_t *m)
{
    const char *topic, *env;
    size_t tl, el;
    if (!self->leading || m->seq == 0)
        return;
    if (pub_last_envelope(self->pub, &topic, &tl, &env, &el) < 0) {
        ring_clear(self->ring);     /* a hole: the ring restarts after it */
        return;
    }
    ring_push(self->ring, m->seq, topic, tl, env, el);
}

/* Fills m from row i of a window result (columns as SQL_REPLAY). */
static void s_row_msg(const PGresult *r, int i, env_msg_t *m)
{
    memset(m, 0, sizeof *m);
    m->seq = s_u64(r, i, 0);
    m->id = strtoll(PQgetvalue(r, i, 1), NULL, 10);
    m->nsp = PQgetvalue(r, i, 2);
    m->nsp_len = (size_t)PQgetlength(r, i, 2);
    m->room = PQgetvalue(r, i, 3);
    m->room_len = (size_t)PQgetlength(r, i, 3);
    m->event = PQgetvalue(r, i, 4);
    m->event_len = (size_t)PQgetlength(r, i, 4);
    m->data = PQgetvalue(r, i, 5);
    m->data_len = (size_t)PQgetlength(r, i, 5);
    m->ts_us = strtoll(PQgetvalue(r, i, 6), NULL, 10);
    m->prev = s_u64(r, i, 7);
}

static void s_preload_done(void *arg, const PGresult *res, const char *err)
{
    termq_t *tq = arg;
    ops_t *self = tq->ops;
    unsigned term = tq->term;
    free(tq);
    if (!self || term != self->term || !self->leading)
        return;
    if (err) {
        log_warn("event=ring_preload_failed reason=\"%s\"", err);
        if (self->cfg.on_ready)
            self->cfg.on_ready(self->cfg.ctx);
        return;
    }
    int n = PQntuples(res), added = 0, stop = 0;
    char topic[2 * RPC_NAME_MAX + 4];
    /* newest first: each room's first row is its last seq */
    for (int i = 0; i < n; i++) {
        env_msg_t m;
        s_row_msg(res, i, &m);
        int tl = env_topic(topic, sizeof topic, m.nsp, m.nsp_len, m.room, m.room_len);
        if (tl < 0)
            continue;
        pub_seed_room(self->pub, topic, (size_t)tl, m.seq);
        self->scratch.size = 0;
        if (!stop && env_encode(&self->scratch, &m) == 0) {
            /* stops when full, or when the rows do not continue the ring */
            if (ring_push_front(self->ring, m.seq, topic, (size_t)tl, self->scratch.data,
                                self->scratch.size) == 0)
                added++;
            else
                stop = 1;
        }
    }
    log_info("event=ring_preloaded rows=%d added=%d ring_first=%llu ring_last=%llu", n, added,
             (unsigned long long)ring_first(self->ring), (unsigned long long)ring_last(self->ring));
    if (self->cfg.on_ready)
        self->cfg.on_ready(self->cfg.ctx);
}

static void s_oldest_done(void *arg, const PGresult *res, const char *err)
{
    termq_t *tq = arg;
    ops_t *self = tq->ops;
    unsigned term = tq->term;
    free(tq);
    if (!self || term != self->term)
        return;
    if (err) {
        log_warn("event=oldest_failed reason=\"%s\"", err);
        return;
    }
    if (PQntuples(res) == 1) {
        uint64_t o = s_u64(res, 0, 0);
        if (o != self->oldest)
            log_info("event=oldest seq=%llu", (unsigned long long)o);
        self->oldest = o;
    }
}

static void s_read_oldest(ops_t *self)
{
    termq_t *tq = calloc(1, sizeof *tq);
    if (!tq)
        return;
    tq->ops = self;
    tq->term = self->term;
    if (rdb_query(self->rdb, SQL_OLDEST, 0, NULL, s_oldest_done, tq) < 0)
        free(tq);
}

static void s_prune_done(void *arg, const PGresult *res, const char *err)
{
    ops_t *self = arg;
    self->pruning = 0;
    if (err) {
        self->prune_failures++;
        log_warn("event=prune_failed reason=\"%s\"", err);
        return;
    }
    uint64_t b = s_u64(res, 0, 0), s = s_u64(res, 0, 1);
    self->prunes++;
    self->pruned_batches += b;
    self->pruned_sessions += s;
    if (b || s)
        log_info("event=pruned batches=%llu sessions=%llu", (unsigned long long)b,
                 (unsigned long long)s);
    s_read_oldest(self);
}

static void s_on_retention(evutil_socket_t fd, short what, void *arg)
{
    ops_t *self = arg;
    (void)fd;
    (void)what;
    if (!self->leading || self->pruning)
        return;
    const char *p[1] = { self->retention_str };
    if (rdb_query(self->rdb, SQL_PRUNE, 1, p, s_prune_done, self) == 0)
        self->pruning = 1;
}

int ops_leader_start(ops_t *self, uint64_t last_seq)
{
    int pending = 0;
    self->term++;
    self->leading = 1;
    self->oldest = 0;
    ring_clear(self->ring);
    pub_reset_rooms(self->pub);
    termq_t *tq = calloc(1, sizeof *tq);
    if (tq) {
        tq->ops = self;
        tq->term = self->term;
        uint64_t lo = last_seq > self->cfg.ring_msgs ? last_seq - self->cfg.ring_msgs : 0;
        char a[24], b[24];
        s_u64_str(a, sizeof a, lo);
        s_u64_str(b, sizeof b, last_seq);
        const char *p[2] = { a, b };
        if (last_seq == 0 || rdb_query(self->rdb, SQL_PRELOAD, 2, p, s_preload_done, tq) < 0)
            free(tq);
        else
            pending = 1;
    }
    s_read_oldest(self);
    long every = self->cfg.retention_s / 4;
    if (every < 1)
        every = 1;
    if (every > 60)
        every = 60;
    struct timeval tv = { every, 0 };
    event_del(self->retention);
    event_add(self->retention, &tv);
    s_on_retention(-1, 0, self);
    return pending;
}

void ops_leader_stop(ops_t *self)
{
    self->leading = 0;
    self->term++;
    ring_clear(self->ring);
    event_del(self->retention);
}

uint64_t ops_oldest(const ops_t *self)
{
    return self->oldest;
}

void ops_get_stats(const ops_t *self, ops_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->ring_msgs = ring_count(self->ring);
    out->ring_bytes = ring_bytes(self->ring);
    out->ring_first = ring_first(self->ring);
    out->oldest = self->oldest;
    out->prunes = self->prunes;
    out->prune_failures = self->prune_failures;
    out->pruned_batches = self->pruned_batches;
    out->pruned_sessions = self->pruned_sessions;
}

/* ---- replay and recover ---------------------------------------------------- */

typedef struct {
    ops_t *ops;
    rpc_req_t *req;
    int recover;                /* reply carries "rooms" */
    rpc_str_t *rooms;           /* the rooms replayed */
    size_t nrooms;
    char *room_store;           /* recover: the rooms' bytes */
    char **topics;              /* env_topic of each room */
    size_t *topic_lens;
    map_t *topic_set;           /* when more than one room */
    msgpack_sbuffer rooms_lit;  /* the rooms as a text[] literal */
    uint64_t after;             /* next seqs to find are > after */
    uint64_t win_hi;            /* end of the database window in flight */
    size_t taken;               /* messages packed */
    int more;                   /* truncated */
    msgpack_sbuffer msgs;       /* packed bin elements */
} rp_t;

static void s_rp_free(rp_t *rp)
{
    if (!rp)
        return;
    for (size_t i = 0; rp->topics && i < rp->nrooms; i++)
        free(rp->topics[i]);
    free(rp->topics);
    free(rp->topic_lens);
    map_destroy(&rp->topic_set);
    if (rp->recover) {
        free(rp->rooms);
        free(rp->room_store);
    }
    msgpack_sbuffer_destroy(&rp->rooms_lit);
    msgpack_sbuffer_destroy(&rp->msgs);
    free(rp);
}

static void s_rp_fail(rp_t *rp, const char *err)
{
    rpc_reply_error(rp->req, err);
    s_rp_free(rp);
}

static void s_rp_finish(rp_t *rp)
{
    msgpack_packer *pk = rpc_reply_begin(rp->req, rp->recover ? 3 : 2);
    if (rp->recover) {
        s_pack_cstr(pk, "rooms");
        msgpack_pack_array(pk, (uint32_t)rp->nrooms);
        for (size_t i = 0; i < rp->nrooms; i++)
            s_pack_str(pk, rp->rooms[i].ptr, rp->rooms[i].len);
    }
    s_pack_cstr(pk, "msgs");
    msgpack_pack_array(pk, (uint32_t)rp->taken);
    if (rp->msgs.size)
        pk->callback(pk->data, rp->msgs.data, rp->msgs.size);
    s_pack_cstr(pk, "more");
    if (rp->more)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    rpc_reply_send(rp->req);
    rp->req = NULL;
    s_rp_free(rp);
}

/* Appends one envelope to the reply; 0, or -1 once the byte cap is hit. */
static int s_rp_add(rp_t *rp, const char *env, size_t len)
{
    if (rp->msgs.size + len + 8 > OPS_REPLY_BYTES_MAX) {
        rp->more = 1;
        return -1;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, &rp->msgs, msgpack_sbuffer_write);
    msgpack_pack_bin(&pk, len);
    msgpack_pack_bin_body(&pk, env, len);
    rp->taken++;
    return 0;
}

static int s_rp_match(void *arg, const char *topic, size_t len)
{
    rp_t *rp = arg;
    if (rp->nrooms == 1)
        return len == rp->topic_lens[0] && memcmp(topic, rp->topics[0], len) == 0;
    return rp->topic_set && map_get(rp->topic_set, topic, len) != NULL;
}

typedef struct {
    rp_t *rp;
    int capped;
} take_t;

static void s_rp_take(void *arg, const ring_entry_t *e)
{
    take_t *t = arg;
    if (t->capped)
        return;
    if (s_rp_add(t->rp, e->env, e->env_len) < 0)
        t->capped = 1;
    else
        t->rp->after = e->seq;
}

static void s_rp_step(rp_t *rp);

static void s_rp_db_done(void *arg, const PGresult *res, const char *err)
{
    rp_t *rp = arg;
    if (err) {
        s_rp_fail(rp, err);
        return;
    }
    ops_t *self = rp->ops;
    int n = PQntuples(res);
    for (int i = 0; i < n && !rp->more; i++) {
        if (rp->taken >= rp->req->limit) {
            rp->more = 1;       /* the query asked for one more than wanted */
            break;
        }
        env_msg_t m;
        s_row_msg(res, i, &m);
        self->scratch.size = 0;
        if (env_encode(&self->scratch, &m) < 0)
            continue;
        if (s_rp_add(rp, self->scratch.data, self->scratch.size) < 0)
            break;
        rp->after = m.seq;
    }
    if (rp->more) {
        s_rp_finish(rp);
        return;
    }
    /* every match up to the window's end was in this result */
    if (rp->win_hi > rp->after)
        rp->after = rp->win_hi;
    s_rp_step(rp);
}

/* Continues from rp->after: from the ring when it holds the rest, else one
 * database window (whose callback comes back here). */
static void s_rp_step(rp_t *rp)
{
    ops_t *self = rp->ops;
    uint64_t head = pub_last_seq(self->pub);
    if (rp->taken >= rp->req->limit || rp->more || rp->after >= head) {
        s_rp_finish(rp);
        return;
    }
    if (ring_covers(self->ring, rp->after)) {
        take_t t = { rp, 0 };
        int more = 0;
        ring_scan(self->ring, rp->after, (size_t)(rp->req->limit - rp->taken), s_rp_match, rp,
                  s_rp_take, &t, &more);
        rp->more = more || t.capped;
        s_rp_finish(rp);
        return;
    }
    uint64_t hi = rp->after + OPS_DB_WINDOW;
    uint64_t rf = ring_first(self->ring);
    if (ring_count(self->ring) && rf > rp->after + 1 && rf - 1 < hi)
        hi = rf - 1;
    if (hi > head)
        hi = head;
    rp->win_hi = hi;
    char a[24], b[24], lim[24];
    s_u64_str(a, sizeof a, rp->after);
    s_u64_str(b, sizeof b, hi);
    s_u64_str(lim, sizeof lim, (uint64_t)(rp->req->limit - rp->taken + 1));
    const char *p[5] = { a, b, rp->req->ns.ptr, rp->rooms_lit.data, lim };
    if (rdb_query(self->rdb, SQL_REPLAY, 5, p, s_rp_db_done, rp) < 0)
        s_rp_fail(rp, "busy");
}

/* Prepares topics and the rooms literal, checks `oldest`, and starts. */
static void s_rp_start(rp_t *rp)
{
    ops_t *self = rp->ops;
    rp->after = rp->req->after;
    if (rp->after < self->oldest) {
        s_rp_fail(rp, "gone");
        return;
    }
    if (rp->nrooms == 0) {
        s_rp_finish(rp);
        return;
    }
    rp->topics = calloc(rp->nrooms, sizeof *rp->topics);
    rp->topic_lens = calloc(rp->nrooms, sizeof *rp->topic_lens);
    if (!rp->topics || !rp->topic_lens || ops_pg_array(&rp->rooms_lit, rp->rooms, rp->nrooms) < 0)
        goto oom;
    if (rp->nrooms > 1 && !(rp->topic_set = map_new()))
        goto oom;
    for (size_t i = 0; i < rp->nrooms; i++) {
        size_t cap = rp->req->ns.len + rp->rooms[i].len + 2;
        rp->topics[i] = malloc(cap);
        if (!rp->topics[i])
            goto oom;
        int tl = env_topic(rp->topics[i], cap, rp->req->ns.ptr, rp->req->ns.len, rp->rooms[i].ptr,
                           rp->rooms[i].len);
        if (tl < 0) {
            s_rp_fail(rp, "bad request: rooms");
            return;
        }
        rp->topic_lens[i] = (size_t)tl;
        if (rp->topic_set && map_put(rp->topic_set, rp->topics[i], (size_t)tl, rp) < 0)
            goto oom;
    }
    s_rp_step(rp);
    return;
oom:
    s_rp_fail(rp, "out of memory");
}

static rp_t *s_rp_new(ops_t *self, rpc_req_t *req)
{
    rp_t *rp = calloc(1, sizeof *rp);
    if (!rp) {
        rpc_reply_error(req, "out of memory");
        return NULL;
    }
    rp->ops = self;
    rp->req = req;
    msgpack_sbuffer_init(&rp->msgs);
    msgpack_sbuffer_init(&rp->rooms_lit);
    return rp;
}

static void s_replay(ops_t *self, rpc_req_t *req)
{
    rp_t *rp = s_rp_new(self, req);
    if (!rp)
        return;
    rp->rooms = req->rooms;
    rp->nrooms = req->nrooms;
    s_rp_start(rp);
}

/* Sets rp's rooms from column 1 of rows [from, to) of res (a NULL room:
 * the session has none). 0, or -1 when memory ran out. */
static int s_rp_rooms_from(rp_t *rp, const PGresult *res, int from, int to)
{
    size_t bytes = 0, nrooms = 0;
    for (int i = from; i < to; i++)
        if (!PQgetisnull(res, i, 1)) {
            bytes += (size_t)PQgetlength(res, i, 1) + 1;
            nrooms++;
        }
    if (nrooms > RPC_ROOMS_MAX)
        nrooms = RPC_ROOMS_MAX;
    rp->rooms = calloc(nrooms ? nrooms : 1, sizeof *rp->rooms);
    rp->room_store = malloc(bytes ? bytes : 1);
    if (!rp->rooms || !rp->room_store)
        return -1;
    char *p = rp->room_store;
    for (int i = from; i < to && rp->nrooms < nrooms; i++) {
        if (PQgetisnull(res, i, 1))
            continue;
        size_t l = (size_t)PQgetlength(res, i, 1);
        memcpy(p, PQgetvalue(res, i, 1), l + 1);
        rp->rooms[rp->nrooms].ptr = p;
        rp->rooms[rp->nrooms].len = l;
        rp->nrooms++;
        p += l + 1;
    }
    return 0;
}

/* ---- positions ------------------------------------------------------------- */

typedef struct {
    rpc_req_t *req;
    uint64_t *seqs;
    size_t *unknown;            /* indexes of rooms asked from the database */
    size_t nunknown;
    uint64_t head;
} pos_t;

static void s_pos_free(pos_t *ps)
{
    free(ps->seqs);
    free(ps->unknown);
    free(ps);
}

static void s_pos_reply(pos_t *ps)
{
    msgpack_packer *pk = rpc_reply_begin(ps->req, 2);
    s_pack_cstr(pk, "seqs");
    msgpack_pack_array(pk, (uint32_t)ps->req->nrooms);
    for (size_t i = 0; i < ps->req->nrooms; i++)
        msgpack_pack_uint64(pk, ps->seqs[i]);
    s_pack_cstr(pk, "seq");
    msgpack_pack_uint64(pk, ps->head);
    rpc_reply_send(ps->req);
    s_pos_free(ps);
}

static void s_pos_done(void *arg, const PGresult *res, const char *err)
{
    pos_t *ps = arg;
    if (err) {
        rpc_reply_error(ps->req, err);
        s_pos_free(ps);
        return;
    }
    for (size_t k = 0; k < ps->nunknown && k < (size_t)PQntuples(res); k++)
        ps->seqs[ps->unknown[k]] = s_u64(res, (int)k, 0);
    s_pos_reply(ps);
}

static void s_positions(ops_t *self, rpc_req_t *req)
{
    pos_t *ps = calloc(1, sizeof *ps);
    size_t n = req->nrooms ? req->nrooms : 1;
    if (ps) {
        ps->seqs = calloc(n, sizeof *ps->seqs);
        ps->unknown = calloc(n, sizeof *ps->unknown);
    }
    if (!ps || !ps->seqs || !ps->unknown) {
        if (ps)
            s_pos_free(ps);
        rpc_reply_error(req, "out of memory");
        return;
    }
    ps->req = req;
    ps->head = pub_last_seq(self->pub);
    char topic[2 * RPC_NAME_MAX + 4];
    for (size_t i = 0; i < req->nrooms; i++) {
        int tl = env_topic(topic, sizeof topic, req->ns.ptr, req->ns.len, req->rooms[i].ptr,
                           req->rooms[i].len);
        uint64_t s = tl < 0 ? 0 : pub_room_last(self->pub, topic, (size_t)tl);
        ps->seqs[i] = s;
        if (s == 0 && tl >= 0)
            ps->unknown[ps->nunknown++] = i;
    }
    if (ps->nunknown == 0) {
        s_pos_reply(ps);
        return;
    }
    rpc_str_t *names = calloc(ps->nunknown, sizeof *names);
    msgpack_sbuffer lit;
    msgpack_sbuffer_init(&lit);
    for (size_t k = 0; names && k < ps->nunknown; k++)
        names[k] = req->rooms[ps->unknown[k]];
    if (!names || ops_pg_array(&lit, names, ps->nunknown) < 0) {
        free(names);
        msgpack_sbuffer_destroy(&lit);
        rpc_reply_error(req, "out of memory");
        s_pos_free(ps);
        return;
    }
    const char *p[2] = { req->ns.ptr, lit.data };
    if (rdb_query(self->rdb, SQL_POSITIONS, 2, p, s_pos_done, ps) < 0) {
        rpc_reply_error(req, "busy");
        s_pos_free(ps);
    }
    free(names);
    msgpack_sbuffer_destroy(&lit);
}

/* ---- batched queries: unread, session_put ----------------------------------- */

typedef struct {
    rpc_req_t *reqs[OPS_BATCH_MAX];
    size_t n;
    ops_t *ops;
} batch_t;

static void s_batch_fail(batch_t *b, const char *err)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->reqs[i])
            rpc_reply_error(b->reqs[i], err);
    free(b);
}

/* Moves the queued requests into a new batch_t. NULL when none are queued,
 * or on allocation failure (the requests are then answered with an error). */
static batch_t *s_batch_take(batchq_t *q)
{
    if (q->n == 0)
        return NULL;
    batch_t *b = malloc(sizeof *b);
    if (!b) {
        for (size_t i = 0; i < q->n; i++)
            rpc_reply_error(q->reqs[i], "out of memory");
        q->n = 0;
        return NULL;
    }
    memcpy(b->reqs, q->reqs, q->n * sizeof *q->reqs);
    b->n = q->n;
    b->ops = q->ops;
    q->n = 0;
    event_del(q->timer);
    return b;
}

#define OPS_BATCH_COLS 4        /* array parameters of a batched query, at most */

/* Runs one query for the whole batch: parameter c (< k <= OPS_BATCH_COLS)
 * is the PostgreSQL text array of cols[c * b->n .. c * b->n + b->n - 1]
 * (cols NULL: memory ran out while building them). done answers the
 * requests; on any failure here they are answered with an error and b is
 * freed. Either way the caller no longer owns b. */
static void s_batch_query(ops_t *self, batch_t *b, const rpc_str_t *cols, int k, const char *sql,
                          rdb_done_fn done)
{
    msgpack_sbuffer arr[OPS_BATCH_COLS];
    const char *p[OPS_BATCH_COLS];
    for (int c = 0; c < k; c++)
        msgpack_sbuffer_init(&arr[c]);
    int ok = cols != NULL;
    for (int c = 0; ok && c < k; c++) {
        ok = ops_pg_array(&arr[c], cols + (size_t)c * b->n, b->n) == 0;
        p[c] = arr[c].data;
    }
    if (!ok)
        s_batch_fail(b, "out of memory");
    else if (rdb_query(self->rdb, sql, k, p, done, b) < 0)
        s_batch_fail(b, "busy");
    for (int c = 0; c < k; c++)
        msgpack_sbuffer_destroy(&arr[c]);
}

static void s_unread_done(void *arg, const PGresult *res, const char *err)
{
    batch_t *b = arg;
    if (err) {
        s_batch_fail(b, err);
        return;
    }
    int n = PQntuples(res);
    for (int r = 0; r < n; r++) {
        uint64_t i = s_u64(res, r, 0);
        if (i < 1 || i > b->n || !b->reqs[i - 1])
            continue;
        rpc_req_t *req = b->reqs[i - 1];
        b->reqs[i - 1] = NULL;
        msgpack_packer *pk = rpc_reply_begin(req, 2);
        s_pack_cstr(pk, "count");
        msgpack_pack_uint64(pk, s_u64(res, r, 1));
        s_pack_cstr(pk, "items_json");
        s_pack_str(pk, PQgetvalue(res, r, 2), (size_t)PQgetlength(res, r, 2));
        rpc_reply_send(req);
    }
    s_batch_fail(b, "no result");     /* answers only rows that were missing */
}

static void s_unread_flush(ops_t *self)
{
    batch_t *b = s_batch_take(&self->unread);
    if (!b)
        return;
    size_t n = b->n;
    rpc_str_t *cols = calloc(3 * n, sizeof *cols);
    char *lims = malloc(n * 24);
    for (size_t i = 0; cols && lims && i < n; i++) {
        cols[i] = b->reqs[i]->user;
        cols[n + i] = b->reqs[i]->ns;
        char *l = lims + i * 24;
        s_u64_str(l, 24, b->reqs[i]->limit);
        cols[2 * n + i].ptr = l;
        cols[2 * n + i].len = strlen(l);
    }
    s_batch_query(self, b, cols && lims ? cols : NULL, 3, SQL_UNREAD, s_unread_done);
    free(cols);
    free(lims);
}

static void s_session_done(void *arg, const PGresult *res, const char *err)
{
    batch_t *b = arg;
    (void)res;
    if (err) {
        log_warn("event=session_put_failed sessions=%zu reason=\"%s\"", b->n, err);
        s_batch_fail(b, err);
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        rpc_reply_begin(b->reqs[i], 0);
        rpc_reply_send(b->reqs[i]);
    }
    free(b);
}

static void s_session_flush(ops_t *self)
{
    batch_t *b = s_batch_take(&self->sessions);
    if (!b)
        return;
    size_t n = b->n;            /* b may be freed by s_batch_query */
    rpc_str_t *cols = calloc(4 * n, sizeof *cols);
    msgpack_sbuffer *js = calloc(n, sizeof *js);
    int ok = cols && js;
    for (size_t i = 0; ok && i < n; i++) {
        rpc_req_t *r = b->reqs[i];
        cols[i] = r->pid;
        cols[n + i] = r->user;
        cols[2 * n + i] = r->ns;
        msgpack_sbuffer_init(&js[i]);
        if (ops_json_array(&js[i], r->rooms, r->nrooms) < 0)
            ok = 0;
        cols[3 * n + i].ptr = js[i].data;
        cols[3 * n + i].len = js[i].size ? js[i].size - 1 : 0;
    }
    s_batch_query(self, b, ok ? cols : NULL, 4, SQL_SESSION_PUT, s_session_done);
    for (size_t i = 0; js && i < n; i++)
        msgpack_sbuffer_destroy(&js[i]);    /* calloc'd: an uninitialised one is empty */
    free(js);
    free(cols);
}

static void s_on_batch_timer(evutil_socket_t fd, short what, void *arg)
{
    batchq_t *q = arg;
    (void)fd;
    (void)what;
    q->flush(q->ops);
}

static int s_batchq_init(ops_t *self, batchq_t *q, void (*flush)(ops_t *))
{
    q->ops = self;
    q->flush = flush;
    q->timer = evtimer_new(self->base, s_on_batch_timer, q);
    return q->timer ? 0 : -1;
}

/* Answers what is still queued and frees the timer. */
static void s_batchq_close(batchq_t *q)
{
    for (size_t i = 0; i < q->n; i++)
        rpc_reply_error(q->reqs[i], "shutting down");
    q->n = 0;
    if (q->timer)
        event_free(q->timer);
    q->timer = NULL;
}

static void s_batch_add(batchq_t *q, rpc_req_t *req)
{
    q->reqs[q->n++] = req;
    if (q->n == OPS_BATCH_MAX) {
        q->flush(q->ops);
        return;
    }
    if (q->n == 1) {
        struct timeval tv = { 0, OPS_BATCH_MS * 1000 };
        event_add(q->timer, &tv);
    }
}

/* ---- recover: the session's rooms (batched), then a replay -------------- */

/* Rows come ordered by request index: each request's rows start a replay
 * of its rooms; a request without rows has no live session ("gone"). */
static void s_recover_done(void *arg, const PGresult *res, const char *err)
{
    batch_t *b = arg;
    if (err) {
        s_batch_fail(b, err);
        return;
    }
    int n = PQntuples(res);
    for (int r = 0; r < n;) {
        uint64_t i = s_u64(res, r, 0);
        int e = r + 1;
        while (e < n && s_u64(res, e, 0) == i)
            e++;
        if (i >= 1 && i <= b->n && b->reqs[i - 1]) {
            rpc_req_t *req = b->reqs[i - 1];
            b->reqs[i - 1] = NULL;
            rp_t *rp = s_rp_new(b->ops, req);   /* answers req itself on failure */
            if (rp) {
                rp->recover = 1;
                if (s_rp_rooms_from(rp, res, r, e) < 0)
                    s_rp_fail(rp, "out of memory");
                else
                    s_rp_start(rp);
            }
        }
        r = e;
    }
    s_batch_fail(b, "gone");            /* answers only the requests without rows */
}

static void s_recover_flush(ops_t *self)
{
    batch_t *b = s_batch_take(&self->recovers);
    if (!b)
        return;
    size_t n = b->n;
    size_t rl = strlen(self->retention_str);
    rpc_str_t *cols = calloc(4 * n, sizeof *cols);
    for (size_t i = 0; cols && i < n; i++) {
        cols[i] = b->reqs[i]->pid;
        cols[n + i] = b->reqs[i]->user;
        cols[2 * n + i] = b->reqs[i]->ns;
        cols[3 * n + i].ptr = self->retention_str;
        cols[3 * n + i].len = rl;
    }
    s_batch_query(self, b, cols, 4, SQL_RECOVER, s_recover_done);
    free(cols);
}

/* A reconnect storm sends thousands of these at once: one query per batch
 * (it was one per request, and 10,000 of them through the RPC connections
 * outlasted the gateways' RPC timeout for ~5 % of the sessions). */
static void s_recover(ops_t *self, rpc_req_t *req)
{
    if (req->after < self->oldest) {
        rpc_reply_error(req, "gone");
        return;
    }
    s_batch_add(&self->recovers, req);
}

/* ---- mark_read, event, publish --------------------------------------------- */

typedef struct {
    ops_t *ops;
    rpc_req_t *req;
} one_t;

static one_t *s_one(ops_t *self, rpc_req_t *req)
{
    one_t *o = malloc(sizeof *o);
    if (!o) {
        rpc_reply_error(req, "out of memory");
        return NULL;
    }
    o->ops = self;
    o->req = req;
    return o;
}

static void s_mark_done(void *arg, const PGresult *res, const char *err)
{
    one_t *o = arg;
    rpc_req_t *req = o->req;
    ops_t *self = o->ops;
    free(o);
    if (err) {
        rpc_reply_error(req, err);
        return;
    }
    uint64_t marked = s_u64(res, 0, 0), before = s_u64(res, 0, 2);
    uint64_t unread = before > marked ? before - marked : 0;
    const char *ids = PQgetvalue(res, 0, 1);
    size_t idl = (size_t)PQgetlength(res, 0, 1);
    if (req->all) {
        ids = "\"all\"";
        idl = 5;
    }
    /* tell every tab of the user (ephemeral: seq 0) */
    if (marked > 0 && self->leading) {
        size_t cap = idl + 64, rl = req->user.len + 5;
        char *data = malloc(cap), *room = malloc(rl + 1);
        if (data && room) {
            int dl = snprintf(data, cap, "{\"ids\":%.*s,\"unread\":%llu}", (int)idl, ids,
                              (unsigned long long)unread);
            snprintf(room, rl + 1, "user_%s", req->user.ptr);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            env_msg_t m;
            memset(&m, 0, sizeof m);
            m.ts_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
            m.nsp = req->ns.ptr;
            m.nsp_len = req->ns.len;
            m.room = room;
            m.room_len = rl;
            m.event = "read";
            m.event_len = 4;
            m.data = data;
            m.data_len = (size_t)dl;
            pub_send(self->pub, &m);
        }
        free(data);
        free(room);
    }
    msgpack_packer *pk = rpc_reply_begin(req, 2);
    s_pack_cstr(pk, "unread");
    msgpack_pack_uint64(pk, unread);
    s_pack_cstr(pk, "ids_json");
    s_pack_str(pk, ids, idl);
    rpc_reply_send(req);
}

static void s_mark_read(ops_t *self, rpc_req_t *req)
{
    msgpack_sbuffer lit;
    msgpack_sbuffer_init(&lit);
    int ok = msgpack_sbuffer_write(&lit, "{", 1) == 0;
    for (size_t i = 0; ok && i < req->nids; i++) {
        char num[32];
        int n = snprintf(num, sizeof num, "%s%lld", i ? "," : "", (long long)req->ids[i]);
        ok = msgpack_sbuffer_write(&lit, num, (size_t)n) == 0;
    }
    ok = ok && msgpack_sbuffer_write(&lit, "}", 2) == 0;
    one_t *o = ok ? s_one(self, req) : NULL;
    if (!ok)
        rpc_reply_error(req, "out of memory");
    if (o) {
        const char *p[4] = { req->user.ptr, req->ns.ptr, req->all ? "true" : "false", lit.data };
        if (rdb_query(self->rdb, SQL_MARK_READ, 4, p, s_mark_done, o) < 0) {
            free(o);
            rpc_reply_error(req, "busy");
        }
    }
    msgpack_sbuffer_destroy(&lit);
}

static void s_event_done(void *arg, const PGresult *res, const char *err)
{
    one_t *o = arg;
    rpc_req_t *req = o->req;
    free(o);
    if (err) {
        rpc_reply_error(req, err);
        return;
    }
    const char *r = "null";
    size_t rl = 4;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        r = PQgetvalue(res, 0, 0);
        rl = (size_t)PQgetlength(res, 0, 0);
    }
    msgpack_packer *pk = rpc_reply_begin(req, 1);
    s_pack_cstr(pk, "result_json");
    s_pack_str(pk, r, rl);
    rpc_reply_send(req);
}

static void s_publish_done(void *arg, const PGresult *res, const char *err)
{
    one_t *o = arg;
    rpc_req_t *req = o->req;
    free(o);
    if (err) {
        rpc_reply_error(req, err);
        return;
    }
    /* "row_id", not "id": every reply's "id" is the request id */
    msgpack_packer *pk = rpc_reply_begin(req, 1);
    s_pack_cstr(pk, "row_id");
    msgpack_pack_uint64(pk, PQntuples(res) == 1 ? s_u64(res, 0, 0) : 0);
    rpc_reply_send(req);
}

static void s_simple(ops_t *self, rpc_req_t *req, const char *sql, const char *const *p,
                     rdb_done_fn done)
{
    one_t *o = s_one(self, req);
    if (o && rdb_query(self->rdb, sql, 4, p, done, o) < 0) {
        free(o);
        rpc_reply_error(req, "busy");
    }
}

/* ---- dispatch ---------------------------------------------------------------- */

void ops_handle(void *ctx, rpc_req_t *req)
{
    ops_t *self = ctx;
    if (!self->leading) {
        rpc_reply_error(req, "not leader");
        return;
    }
    switch (req->op) {
    case RPC_OP_POSITIONS:
        s_positions(self, req);
        break;
    case RPC_OP_REPLAY:
        s_replay(self, req);
        break;
    case RPC_OP_RECOVER:
        s_recover(self, req);
        break;
    case RPC_OP_SESSION_PUT:
        s_batch_add(&self->sessions, req);
        break;
    case RPC_OP_UNREAD:
        s_batch_add(&self->unread, req);
        break;
    case RPC_OP_MARK_READ:
        s_mark_read(self, req);
        break;
    case RPC_OP_EVENT: {
        const char *p[4] = { req->user.ptr, req->ns.ptr, req->name.ptr, req->json.ptr };
        s_simple(self, req, self->event_sql, p, s_event_done);
        break;
    }
    case RPC_OP_PUBLISH: {
        const char *p[4] = { req->ns.ptr, req->room.ptr, req->event.ptr, req->json.ptr };
        s_simple(self, req, SQL_PUBLISH, p, s_publish_done);
        break;
    }
    default:
        rpc_reply_error(req, "unknown op");
        break;
    }
}

ops_t *ops_new(struct event_base *base, pub_t *pub, rdb_t *rdb, const ops_config_t *cfg)
{
    if (!ops_valid_function_name(cfg->event_fn))
        return NULL;
    ops_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->base = base;
    self->pub = pub;
    self->rdb = rdb;
    self->cfg = *cfg;
    msgpack_sbuffer_init(&self->scratch);
    snprintf(self->retention_str, sizeof self->retention_str, "%ld", cfg->retention_s);
    size_t n = strlen(cfg->event_fn) + 64;
    self->event_sql = malloc(n);
    self->ring = ring_new(cfg->ring_msgs, cfg->ring_bytes);
    int qfail = s_batchq_init(self, &self->unread, s_unread_flush) |
                s_batchq_init(self, &self->sessions, s_session_flush) |
                s_batchq_init(self, &self->recovers, s_recover_flush);
    self->retention = event_new(base, -1, EV_PERSIST, s_on_retention, self);
    if (!self->event_sql || !self->ring || qfail || !self->retention) {
        ops_destroy(&self);
        return NULL;
    }
    snprintf(self->event_sql, n, "SELECT %s($1, $2, $3, $4::jsonb)::text", cfg->event_fn);
    return self;
}

void ops_destroy(ops_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ops_t *self = *self_p;
    s_batchq_close(&self->unread);
    s_batchq_close(&self->sessions);
    s_batchq_close(&self->recovers);
    if (self->retention)
        event_free(self->retention);
    ring_destroy(&self->ring);
    msgpack_sbuffer_destroy(&self->scratch);
    free(self->event_sql);
    free(self);
    *self_p = NULL;
}
