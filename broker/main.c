/*  belfry-broker - reads the notifications log and fans it out to gateways
 *
 *  Design: one libevent loop carries the PostgreSQL cursor connection
 *  (db.c: leadership, the snapshot cursor and the doorbell), the ZeroMQ PUB
 *  socket the rows are published on (pub.c), the ZeroMQ ROUTER socket
 *  gateways send requests to (rpc.c), the answers to those requests (ops.c:
 *  the ring of recent envelopes, replay, positions, recovery, the
 *  notification center) and their own pool of database connections (rdb.c),
 *  so that requests never delay the stream. While leading it publishes a
 *  heartbeat every second. Both sockets are bound before the database is
 *  contacted, so a bad endpoint fails fast (exit 1). The HTTP endpoint
 *  (obs.c: /metrics, /healthz, /readyz on --http) runs on the same loop.
 *  `--init-schema` applies deploy/sql and exits instead (schema.c).
 *  SIGINT/SIGTERM: let the query in flight finish (a committed batch is
 *  still published), close everything, exit 0; a second signal, or 3 s,
 *  cuts the wait short. SIGHUP reopens --log-file (log rotation).
 *  Exit codes: 0 stopped by a signal (or --help, or --init-schema done),
 *  1 a runtime failure (cannot bind, --init-schema failed), 2 a bad setting.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <zmq.h>

#include "cfg.h"
#include "db.h"
#include "log.h"
#include "obs.h"
#include "ops.h"
#include "pub.h"
#include "rdb.h"
#include "rpc.h"
#include "schema.h"

#define STOP_DEADLINE_S 3
/* Time between binding the PUB socket and contacting the database. After a
 * broker restart, gateways' SUB sockets reconnect (ZeroMQ retries every
 * 100 ms by default) and resend their subscriptions; publishing the backlog
 * before that would drop it on the floor (the "slow joiner"), leaving the
 * gateways to replay it. */
#define PUB_GRACE_MS 500
#define HEARTBEAT_MS 1000
/* At a start of leadership, rows are held until the ring preload has seeded
 * the per-room map (so the first message of each room carries the right
 * prev and gateways see rows the previous leader recorded but never sent),
 * at most this long and this many. */
#define HOLD_MAX_MS   5000
#define HOLD_MAX_ROWS 100000

typedef struct held {
    struct held *next;
    env_msg_t m;                /* strings point into data */
    char data[];
} held_t;

typedef struct {
    struct event_base *base;
    pub_t *pub;
    db_t *db;
    rdb_t *rdb;             /* RPC database connections */
    ops_t *ops;             /* RPC data ops, the ring */
    struct event *heartbeat; /* every HEARTBEAT_MS while leading */
    uint64_t position;      /* the cursor position at the start of leadership */
    int holding;            /* rows wait for the preload */
    held_t *hhead, *htail;  /* the rows held, in seq order */
    size_t nheld;
    struct event *hold_deadline;
    int stopping;
    struct event *deadline;
    int leading;            /* leads and reads (for ping) */
    unsigned terms;         /* how many times it became leader */
    char epoch[48];         /* changes with each start of leadership */
    obs_t *obs;             /* metrics and the HTTP endpoint */
    rpc_t *rpc;             /* for the metrics snapshot */
    int rpc_conns;          /* --rpc-db-conns */
} broker_t;

static void s_publish(broker_t *b, env_msg_t *m)
{
    if (pub_send(b->pub, m) == 0 && b->obs) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t now_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
        obs_on_published(b->obs, now_us - m->ts_us);
    }
    ops_on_published(b->ops, m);
}

static void s_on_batch(void *ctx, uint64_t rows)
{
    broker_t *b = ctx;
    if (b->obs)
        obs_on_batch(b->obs, rows);
}

/* The metrics snapshot (obs_snapshot_fn). */
static void s_snapshot(void *ctx, obs_snapshot_t *st)
{
    broker_t *b = ctx;
    db_stats_t ds;
    ops_stats_t os;
    db_get_stats(b->db, &ds);
    ops_get_stats(b->ops, &os);
    st->leader = b->leading;
    st->standby = ds.standby;
    st->db_connected = ds.connected;
    st->fanout_ready = pub_ready(b->pub);
    st->rpc_db_connected = rdb_connected(b->rdb);
    st->rpc_db_conns = b->rpc_conns;
    st->published = pub_sent_count(b->pub);
    st->published_bytes = pub_sent_bytes(b->pub);
    st->publish_errors = pub_error_count(b->pub);
    st->reads = ds.reads;
    st->batches = ds.batches;
    st->rows = ds.rows;
    st->db_connects = ds.connects;
    st->db_reconnects = ds.downs;
    st->last_seq = pub_last_seq(b->pub);
    st->ring_msgs = os.ring_msgs;
    st->ring_bytes = os.ring_bytes;
    st->ring_first = os.ring_first;
    st->oldest = os.oldest;
    for (int op = 0; op < RPC_OP_COUNT && st->nops < OBS_OPS_MAX; op++) {
        obs_op_t *o = &st->ops[st->nops++];
        o->name = rpc_op_name((rpc_op_t)op);
        o->requests = b->rpc ? rpc_op_count(b->rpc, (rpc_op_t)op) : 0;
        o->errors = b->rpc ? rpc_op_error_count(b->rpc, (rpc_op_t)op) : 0;
    }
    st->rpc_malformed = b->rpc ? rpc_malformed_count(b->rpc) : 0;
    st->rpc_queue = rdb_queued(b->rdb);
    st->prunes = os.prunes;
    st->prune_failures = os.prune_failures;
    st->pruned_batches = os.pruned_batches;
    st->pruned_sessions = os.pruned_sessions;
    st->held_rows = b->nheld;
    st->leader_terms = b->terms;
}

/* SIGHUP: reopen the log file (after a rotation); never stops the broker. */
static void s_on_hup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    log_rotate();
}

/* Publishes every held row, in order, and stops holding. */
static void s_release(void *ctx)
{
    broker_t *b = ctx;
    if (b->holding)
        log_info("event=hold_released rows=%zu", b->nheld);
    b->holding = 0;
    event_del(b->hold_deadline);
    while (b->hhead) {
        held_t *h = b->hhead;
        b->hhead = h->next;
        s_publish(b, &h->m);
        free(h);
    }
    b->htail = NULL;
    b->nheld = 0;
}

static void s_on_hold_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    log_warn("event=hold_deadline detail=\"ring preload too slow; publishing\"");
    s_release(arg);
}

/* Copies m into the hold queue; 0 or -1. */
static int s_hold(broker_t *b, const env_msg_t *m)
{
    held_t *h = malloc(sizeof *h + m->nsp_len + m->room_len + m->event_len + m->data_len + 4);
    if (!h)
        return -1;
    h->next = NULL;
    h->m = *m;
    char *p = h->data;
    memcpy(p, m->nsp, m->nsp_len);
    h->m.nsp = p;
    p += m->nsp_len;
    memcpy(p, m->room, m->room_len);
    h->m.room = p;
    p += m->room_len;
    memcpy(p, m->event, m->event_len);
    h->m.event = p;
    p += m->event_len;
    memcpy(p, m->data, m->data_len);
    h->m.data = p;
    if (b->htail)
        b->htail->next = h;
    else
        b->hhead = h;
    b->htail = h;
    b->nheld++;
    return 0;
}

static void s_on_row(void *ctx, env_msg_t *m)
{
    broker_t *b = ctx;
    if (b->holding && (b->nheld >= HOLD_MAX_ROWS || s_hold(b, m) < 0))
        s_release(b);
    if (!b->holding)
        s_publish(b, m);
}

static void s_on_position(void *ctx, uint64_t last_seq)
{
    broker_t *b = ctx;
    pub_set_last_seq(b->pub, last_seq);
    b->position = last_seq;
}

static void s_on_leader(void *ctx, int leading)
{
    broker_t *b = ctx;
    b->leading = leading;
    if (leading) {
        /* Unique per leadership term: pid, start time, term number. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        b->terms++;
        snprintf(b->epoch, sizeof b->epoch, "%lx-%llx-%u", (unsigned long)getpid(),
                 (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000,
                 b->terms);
        log_info("event=epoch epoch=%s", b->epoch);
        if (ops_leader_start(b->ops, b->position)) {
            b->holding = 1;
            struct timeval hd = { HOLD_MAX_MS / 1000, (HOLD_MAX_MS % 1000) * 1000 };
            event_add(b->hold_deadline, &hd);
        }
        pub_heartbeat(b->pub, b->epoch);
        struct timeval tv = { HEARTBEAT_MS / 1000, (HEARTBEAT_MS % 1000) * 1000 };
        event_add(b->heartbeat, &tv);
    } else {
        s_release(b);           /* committed rows: publish them anyway */
        ops_leader_stop(b->ops);
        event_del(b->heartbeat);
    }
}

static void s_on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    broker_t *b = arg;
    (void)fd;
    (void)what;
    if (b->leading)
        pub_heartbeat(b->pub, b->epoch);
}

static void s_status(void *ctx, rpc_status_t *st)
{
    broker_t *b = ctx;
    st->seq = pub_last_seq(b->pub);
    st->leader = b->leading;
    st->epoch = b->epoch;
    st->oldest = ops_oldest(b->ops);
}

static void s_stopped(void *arg)
{
    broker_t *b = arg;
    event_base_loopbreak(b->base);
}

static void s_on_grace(evutil_socket_t fd, short what, void *arg)
{
    broker_t *b = arg;
    (void)fd;
    (void)what;
    if (!b->stopping) {
        rdb_start(b->rdb);
        db_start(b->db);
    }
    else
        event_base_loopbreak(b->base);
}

static void s_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    broker_t *b = arg;
    (void)fd;
    (void)what;
    log_warn("event=stop_deadline detail=\"query still in flight; aborting it\"");
    event_base_loopbreak(b->base);
}

static void s_on_signal(evutil_socket_t sig, short what, void *arg)
{
    broker_t *b = arg;
    (void)what;
    if (b->stopping) {
        event_base_loopbreak(b->base);
        return;
    }
    b->stopping = 1;
    log_info("event=stopping signal=%d", (int)sig);
    struct timeval tv = { STOP_DEADLINE_S, 0 };
    b->deadline = evtimer_new(b->base, s_on_deadline, b);
    if (b->deadline)
        evtimer_add(b->deadline, &tv);
    db_stop(b->db, s_stopped, b);
}

/* Directory of the running executable into out; 0 or -1. */
static int s_exe_dir(char *out, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    if (n <= 0)
        return -1;
    out[n] = '\0';
    char *slash = strrchr(out, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    return 0;
}

static int s_init_schema(const char *db_url, const char *schema_dir)
{
    char dir[PATH_MAX], exe[PATH_MAX], err[1024];
    if (schema_dir && *schema_dir) {
        if (strlen(schema_dir) >= sizeof dir) {
            fprintf(stderr, "belfry-broker: --schema-dir: path too long\n");
            return 2;
        }
        strcpy(dir, schema_dir);
    } else if (schema_find_dir(s_exe_dir(exe, sizeof exe) == 0 ? exe : NULL,
                               dir, sizeof dir) < 0) {
        fprintf(stderr, "belfry-broker: --init-schema: no schema directory found "
                        "(tried <exe>/../deploy/sql, <exe>/../share/belfry/sql, ./deploy/sql); "
                        "set --schema-dir\n");
        return 1;
    }
    log_info("event=init_schema dir=%s", dir);
    if (schema_apply(db_url, dir, err, sizeof err) < 0) {
        fprintf(stderr, "belfry-broker: --init-schema failed: %s\n", err);
        log_error("event=init_schema_failed reason=\"%s\"", err);
        return 1;
    }
    log_info("event=init_schema_done");
    return 0;
}

int main(int argc, char **argv)
{
    char *db_url = NULL, *pub_bind = NULL, *rpc_bind = NULL, *schema_dir = NULL;
    char *log_level = NULL, *channel = NULL, *event_fn = NULL;
    char *fanout = NULL, *redis_url = NULL, *nats_url = NULL;
    char *http_addr = NULL, *log_file = NULL;
    long poll_ms = 1000, rpc_conns = 2, ring_size = 100000, ring_mb = 256, retention_s = 86400;
    long pub_hwm = PUB_SNDHWM;
    int init_schema = 0, log_json = 0;
    const cfg_opt_t opts[] = {
        { "db", "BELFRY_DB_URL", CFG_STR, &db_url, "",
          "PostgreSQL conninfo or URL (empty: libpq's PG* environment defaults)", 0, 0 },
        { "pub", "BELFRY_PUB_BIND", CFG_STR, &pub_bind, "tcp://127.0.0.1:5555",
          "ZeroMQ PUB endpoint to bind (fan-out to gateways)", 0, 0 },
        { "fanout", "BELFRY_FANOUT", CFG_STR, &fanout, "zmq",
          "fan-out transport to the gateways: zmq (PUB socket on --pub), redis or nats", 0, 0 },
        { "redis-url", "BELFRY_REDIS_URL", CFG_STR, &redis_url, "redis://127.0.0.1:6379",
          "with --fanout redis: the Redis server, redis://[:password@]host[:port]", 0, 0 },
        { "nats-url", "BELFRY_NATS_URL", CFG_STR, &nats_url, "nats://127.0.0.1:4222",
          "with --fanout nats: the NATS server(s), nats://host:port, comma-separated", 0, 0 },
        { "rpc", "BELFRY_RPC_BIND", CFG_STR, &rpc_bind, "tcp://127.0.0.1:5556",
          "ZeroMQ ROUTER endpoint to bind (requests from gateways)", 0, 0 },
        { "channel", "BELFRY_CHANNEL", CFG_STR, &channel, "belfry",
          "NOTIFY channel the trigger rings and the broker LISTENs on", 0, 0 },
        { "poll-interval-ms", "BELFRY_POLL_INTERVAL_MS", CFG_INT, &poll_ms, "1000",
          "safety-net read interval (and standby retry interval), ms", 10, 3600000 },
        { "rpc-db-conns", "BELFRY_RPC_DB_CONNS", CFG_INT, &rpc_conns, "2",
          "PostgreSQL connections for RPC work (replays, unread lists, events)", 1, 64 },
        { "ring-size", "BELFRY_RING_SIZE", CFG_INT, &ring_size, "100000",
          "messages kept in memory for replays and positions", 1, 100000000 },
        { "ring-mb", "BELFRY_RING_MB", CFG_INT, &ring_mb, "256",
          "cap of the ring in MiB (topics + envelopes)", 1, 1048576 },
        { "retention-s", "BELFRY_RETENTION_S", CFG_INT, &retention_s, "86400",
          "seconds batches (replay, recovery) and recovery sessions are kept", 1, 315360000 },
        { "event-function", "BELFRY_EVENT_FUNCTION", CFG_STR, &event_fn, "belfry_handle_event",
          "SQL function fn(user text, ns text, name text, args jsonb) RETURNS jsonb for client events",
          0, 0 },
        { "pub-hwm", "BELFRY_PUB_HWM", CFG_INT, &pub_hwm, "1000000",
          "ZeroMQ send high-water mark of the PUB socket, messages per gateway", 1, 100000000 },
        { "http", "BELFRY_HTTP", CFG_STR, &http_addr, OBS_DEFAULT_ADDR,
          "host:port of the HTTP endpoint (GET /metrics, /healthz, /readyz); empty: none", 0, 0 },
        { "init-schema", NULL, CFG_BOOL, &init_schema, "0",
          "apply the SQL schema (versioned, idempotent) and exit", 0, 0 },
        { "schema-dir", "BELFRY_SCHEMA_DIR", CFG_STR, &schema_dir, "",
          "directory of NNN_*.sql files (default: <exe>/../deploy/sql, "
          "<exe>/../share/belfry/sql, ./deploy/sql)", 0, 0 },
        { "log-level", "BELFRY_LOG_LEVEL", CFG_STR, &log_level, "info",
          "debug, info, warn or error", 0, 0 },
        { "log-json", "BELFRY_LOG_JSON", CFG_BOOL, &log_json, "0",
          "log one JSON object per line", 0, 0 },
        { "log-file", "BELFRY_LOG_FILE", CFG_STR, &log_file, NULL,
          "append the log to this file (reopened on SIGHUP, for log rotation); unset: stderr", 0, 0 },
    };
    int rc = cfg_parse(opts, sizeof opts / sizeof opts[0], argc, argv, "belfry-broker",
                       "Streams committed rows of the notifications table to gateways.");
    if (rc == 1)
        return 0;
    if (rc < 0)
        return 2;

    log_init("broker");
    log_level_t lvl;
    if (log_parse_level(log_level, &lvl) < 0) {
        fprintf(stderr, "belfry-broker: --log-level (BELFRY_LOG_LEVEL): "
                        "must be debug, info, warn or error, got \"%s\"\n", log_level);
        return 2;
    }
    log_set_level(lvl);
    log_set_json(log_json);
    if (log_file && log_set_file(log_file) < 0) {
        fprintf(stderr, "belfry-broker: --log-file (BELFRY_LOG_FILE): cannot open %s: %s\n",
                log_file, strerror(errno));
        return 2;
    }
    char http_host[OBS_HOST_MAX];
    uint16_t http_port;
    if (*http_addr && obs_parse_addr(http_addr, http_host, sizeof http_host, &http_port) < 0) {
        fprintf(stderr, "belfry-broker: --http (BELFRY_HTTP): must be host:port or [ipv6]:port "
                        "(empty: no HTTP endpoint), got \"%s\"\n", http_addr);
        return 2;
    }
    size_t clen = strlen(channel);
    if (clen == 0 || clen > 63) {
        fprintf(stderr, "belfry-broker: --channel (BELFRY_CHANNEL): "
                        "must be 1 to 63 bytes long\n");
        return 2;
    }

    if (!ops_valid_function_name(event_fn)) {
        fprintf(stderr, "belfry-broker: --event-function (BELFRY_EVENT_FUNCTION): "
                        "must be an SQL identifier, optionally schema-qualified "
                        "(name or schema.name, letters, digits, _), got \"%s\"\n", event_fn);
        return 2;
    }

    bus_config_t fan = { .zmq_endpoints = pub_bind, .hwm = pub_hwm, .redis_url = redis_url,
                         .nats_url = nats_url, .name = "belfry-broker" };
    if (bus_kind_parse(fanout, &fan.kind) < 0) {
        fprintf(stderr, "belfry-broker: --fanout (BELFRY_FANOUT): must be zmq, redis or nats, "
                        "got \"%s\"\n", fanout);
        return 2;
    }

    if (init_schema)
        return s_init_schema(db_url, schema_dir);

    char redacted[1024], fan_redacted[1024];
    log_redact_url(db_url, redacted, sizeof redacted);
    log_redact_url(fan.kind == BUS_ZMQ ? pub_bind : fan.kind == BUS_REDIS ? redis_url : nats_url,
                   fan_redacted, sizeof fan_redacted);
    log_info("event=start db=\"%s\" fanout=%s pub=%s rpc=%s http=%s channel=%s poll_ms=%ld "
             "rpc_db_conns=%ld ring_size=%ld ring_mb=%ld retention_s=%ld event_function=%s pub_hwm=%ld",
             redacted, fanout, fan_redacted,
             rpc_bind, *http_addr ? http_addr : "off", channel, poll_ms, rpc_conns, ring_size, ring_mb,
             retention_s, event_fn, pub_hwm);

    signal(SIGPIPE, SIG_IGN);
    broker_t b;
    memset(&b, 0, sizeof b);
    void *zctx = NULL;
    rpc_t *rpc = NULL;
    struct event *sigint = NULL, *sigterm = NULL, *sighup = NULL;
    char err[512];
    int exit_code = 1;

    b.base = event_base_new();
    zctx = zmq_ctx_new();
    if (!b.base || !zctx) {
        log_error("event=fatal reason=\"cannot create the event loop or ZeroMQ context\"");
        goto done;
    }
    fan.zmq_ctx = zctx;
    b.pub = pub_new_bus(b.base, &fan, err, sizeof err);
    if (!b.pub) {
        fprintf(stderr, "belfry-broker: --%s: %s\n",
                fan.kind == BUS_ZMQ ? "pub" : fan.kind == BUS_REDIS ? "redis-url" : "nats-url", err);
        log_error("event=fatal reason=\"%s\"", err);
        goto done;
    }
    b.rdb = rdb_new(b.base, db_url, (int)rpc_conns);
    ops_config_t ocfg = { (size_t)ring_size, (size_t)ring_mb * 1024 * 1024, retention_s, event_fn,
                          s_release, &b };
    b.ops = b.rdb ? ops_new(b.base, b.pub, b.rdb, &ocfg) : NULL;
    b.heartbeat = event_new(b.base, -1, EV_PERSIST, s_on_heartbeat, &b);
    b.hold_deadline = evtimer_new(b.base, s_on_hold_deadline, &b);
    if (!b.rdb || !b.ops || !b.heartbeat || !b.hold_deadline) {
        log_error("event=fatal reason=\"out of memory\"");
        goto done;
    }
    rpc = rpc_new(b.base, zctx, rpc_bind, s_status, &b, ops_handle, b.ops, err, sizeof err);
    if (!rpc) {
        fprintf(stderr, "belfry-broker: --rpc: %s\n", err);
        log_error("event=fatal reason=\"%s\"", err);
        goto done;
    }
    db_config_t dcfg = { db_url, channel, poll_ms };
    db_callbacks_t dcb = { s_on_row, s_on_position, s_on_leader, &b, s_on_batch };
    b.db = db_new(b.base, &dcfg, &dcb);
    b.rpc = rpc;
    b.rpc_conns = (int)rpc_conns;
    b.obs = b.db ? obs_new(b.base, s_snapshot, &b) : NULL;
    sigint = evsignal_new(b.base, SIGINT, s_on_signal, &b);
    sigterm = evsignal_new(b.base, SIGTERM, s_on_signal, &b);
    sighup = evsignal_new(b.base, SIGHUP, s_on_hup, &b);
    if (!b.db || !b.obs || !sigint || !sigterm || !sighup || evsignal_add(sigint, NULL) != 0 ||
        evsignal_add(sigterm, NULL) != 0 || evsignal_add(sighup, NULL) != 0) {
        log_error("event=fatal reason=\"out of memory\"");
        goto done;
    }
    if (obs_listen(b.obs, http_addr, err, sizeof err) < 0) {
        fprintf(stderr, "belfry-broker: --http: %s\n", err);
        log_error("event=fatal reason=\"--http: %s\"", err);
        goto done;
    }
    if (*http_addr)
        log_info("event=http_listening addr=%s port=%u", http_addr, (unsigned)obs_port(b.obs));
    log_info("event=bound pub=%s rpc=%s", pub_bind, rpc_bind);
    struct timeval grace = { PUB_GRACE_MS / 1000, (PUB_GRACE_MS % 1000) * 1000 };
    if (event_base_once(b.base, -1, EV_TIMEOUT, s_on_grace, &b, &grace) != 0) {
        log_error("event=fatal reason=\"out of memory\"");
        goto done;
    }
    event_base_dispatch(b.base);
    log_info("event=stopped published=%llu publish_errors=%llu rpc_requests=%llu rpc_malformed=%llu",
             (unsigned long long)pub_sent_count(b.pub), (unsigned long long)pub_error_count(b.pub),
             (unsigned long long)rpc_request_count(rpc), (unsigned long long)rpc_malformed_count(rpc));
    for (int op = 0; op < RPC_OP_COUNT; op++)
        if (rpc_op_count(rpc, (rpc_op_t)op))
            log_info("event=rpc_stats op=%s requests=%llu errors=%llu", rpc_op_name((rpc_op_t)op),
                     (unsigned long long)rpc_op_count(rpc, (rpc_op_t)op),
                     (unsigned long long)rpc_op_error_count(rpc, (rpc_op_t)op));
    exit_code = 0;
done:
    obs_destroy(&b.obs);        /* first: its snapshot reads the others */
    db_destroy(&b.db);
    rdb_destroy(&b.rdb);        /* answers queries in flight (ops still exists) */
    ops_destroy(&b.ops);
    if (b.heartbeat)
        event_free(b.heartbeat);
    while (b.hhead) {
        held_t *h = b.hhead;
        b.hhead = h->next;
        free(h);
    }
    if (b.hold_deadline)
        event_free(b.hold_deadline);
    if (sigint)
        event_free(sigint);
    if (sigterm)
        event_free(sigterm);
    if (sighup)
        event_free(sighup);
    if (b.deadline)
        event_free(b.deadline);
    rpc_destroy(&rpc);
    pub_destroy(&b.pub);
    if (zctx)
        zmq_ctx_term(zctx);
    if (b.base)
        event_base_free(b.base);
    return exit_code;
}
