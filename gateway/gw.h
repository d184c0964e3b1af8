/*  gw - the gateway's process-wide context
 *
 *  One gateway process is one libevent loop. gw_t holds what every module of
 *  the gateway shares: the loop, the settings, the JWT verifier, the room
 *  index, the fan-out subscription and the table of Engine.IO sessions. There
 *  is exactly one gw_t per process; modules receive it explicitly rather than
 *  through a global, so that tests can build their own.
 */
#ifndef BELFRY_GW_H
#define BELFRY_GW_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>

typedef struct gw gw_t;
typedef struct conn conn_t;
typedef struct session session_t;
typedef struct sock sock_t;
typedef struct rooms rooms_t;
typedef struct fanout fanout_t;
typedef struct upstream upstream_t;
typedef struct map map_t;
typedef struct jwt_verifier jwt_verifier_t;

typedef struct {
    char *listen;               /* host:port */
    char *broker_pub;           /* comma-separated ZeroMQ endpoints */
    char *fanout;               /* fan-out transport: "zmq", "redis" or "nats" (common/bus.h) */
    char *redis_url;            /* --fanout redis: redis://[:password@]host[:port] */
    char *nats_url;             /* --fanout nats: nats://host:port[,...] */
    char *broker_rpc;
    char *jwt_secret;
    char *jwt_public_key_file;  /* RS256 PEM file */
    char *jwt_audience, *jwt_issuer;
    int insecure_user_param;
    int conformance;
    long ping_interval_ms, ping_timeout_ms, max_payload, connect_timeout_ms;
    long max_connections;
    long max_output;            /* bytes queued to one client before it is dropped */
    long max_head;              /* HTTP request head limit */
    long handshake_timeout_ms;
    char *namespaces;           /* "*" or comma-separated list */
    char *cors_origin;          /* NULL: no CORS headers; "*" or a list */
    long drain_timeout_ms;
    int recovery;               /* connection-state recovery (offsets on events) */
    char *static_dir;           /* files served at / (the demo page), or NULL */
    long resync_interval_ms;    /* how often every room's position is checked */
    long rpc_timeout_ms;
    long sub_hwm;               /* ZeroMQ receive high-water mark of the fan-out */
    long max_conn_per_ip;       /* connections from one address (0: no limit) */
    long max_rooms;             /* rooms one socket may be in */
    long events_per_sec;        /* client events per second per socket (burst: 2x) */
    long max_inflight;          /* broker requests in flight per socket */
} gw_config_t;

/* Counters exported on /metrics. */
typedef struct {
    uint64_t connections_total, connections_open;
    uint64_t sessions_open;
    uint64_t ws_upgrades, polling_requests;
    uint64_t messages_in;           /* envelopes from the fan-out */
    uint64_t messages_out;          /* packets queued to clients */
    uint64_t bytes_out;
    uint64_t auth_failures;
    uint64_t protocol_errors;
    uint64_t slow_consumer_drops;
    uint64_t bad_envelopes;
    uint64_t limit_conn_ip;         /* connections refused: too many from one address */
    uint64_t limit_conn_total;      /* connections refused: max-connections reached */
    uint64_t limit_rate;            /* client events refused: rate limit */
    uint64_t limit_inflight;        /* client events refused: too many broker requests */
    uint64_t limit_rooms;           /* joins refused: too many rooms */
    uint64_t token_expired;         /* sockets disconnected when their token expired */
    uint64_t limit_handshake_timeout;   /* requests not complete in time (408) */
    uint64_t limit_head;            /* request heads over --max-head (431) */
    uint64_t limit_payload;         /* bodies and messages over --max-payload (413, 1009) */
} gw_stats_t;

struct gw {
    struct event_base *base;
    gw_config_t cfg;
    gw_stats_t stats;
    jwt_verifier_t *jwt;
    rooms_t *rooms;
    void *zctx;                 /* ZeroMQ context */
    fanout_t *fanout;
    upstream_t *upstream;       /* RPC to the brokers */
    map_t *sessions;            /* sid -> session_t* */
    map_t *per_ip;              /* peer address -> connections (uintptr_t) */
    struct evconnlistener *listener;
    int draining;
    conn_t *reap;               /* connections to free at the next loop turn */
    conn_t *conns;              /* every connection */
    conn_t *dirty;              /* connections with output to write this turn */
    struct event *flush_ev;     /* runs conn_flush after a turn's I/O callbacks */
    uint64_t turn_out;          /* client packets queued since the last conn_flush */
    session_t *reap_sessions;   /* closed sessions to free at the next loop turn */
    session_t *poll_dirty;      /* polling queues that grew this turn (session_flush_polls) */
    struct event *reap_ev;
};

#endif
