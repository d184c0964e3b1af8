/*  bus - the broker -> gateway fan-out transport, pluggable
 *
 *  One small interface between the fan-out logic (broker/pub.c publishes,
 *  gateway/fanout.c subscribes) and the engine that carries the messages:
 *
 *    BUS_ZMQ    ZeroMQ PUB/SUB (default). The publisher binds, subscribers
 *               connect; one message = two frames [topic][body]; the SUB
 *               socket forwards each subscription to the publisher, which
 *               filters by topic prefix.
 *    BUS_REDIS  Redis pub/sub through hiredis and its libevent adapter:
 *               PUBLISH / SUBSCRIBE on channel "belfry:" + topic bytes
 *               (binary-safe, the topic's trailing NUL included).
 *    BUS_NATS   NATS through the NATS C client: subject "belfry." +
 *               base64url(topic bytes), unpadded (one token, reversible).
 *
 *  A message is (topic, body): the topic is proto/PROTOCOL.md's
 *  `nsp \0 room \0` or the heartbeat topic `\x01hb\0`; the body is opaque.
 *  Topics match exactly (ZeroMQ matches prefixes, and the trailing NUL makes
 *  a prefix match an exact one).
 *
 *  Every backend logs and counts its failures and never stops the process
 *  on a dead server: it reconnects with backoff, re-subscribes every topic
 *  the caller holds, and bus_ready() says whether it is connected. Delivery
 *  is at-most-once on every backend (PUB/SUB high-water marks, reconnects,
 *  server-side output limits all drop); the envelope's seq/prev links let
 *  the gateway see and repair every gap.
 *
 *  Threads: every call and every callback happens on the caller's libevent
 *  loop thread (the NATS backend hands messages over from the client
 *  library's threads through a bounded queue and a wake-up pipe).
 */
#ifndef BELFRY_BUS_H
#define BELFRY_BUS_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>

typedef struct bus bus_t;

typedef enum { BUS_ZMQ = 0, BUS_REDIS = 1, BUS_NATS = 2 } bus_kind_t;
typedef enum { BUS_PUB = 0, BUS_SUB = 1 } bus_role_t;

/* Longest topic accepted (bytes); longer ones are refused with -1. */
#define BUS_TOPIC_MAX 2048
/* Bytes a backend may hold for the peer (unsent publishes, received
 * messages not yet handed to the loop) before it drops and counts. */
#define BUS_BUFFER_MAX (64u * 1024 * 1024)

/* Called on the loop thread for each message received on a subscribed
 * topic. topic/body are valid only during the call. The callback may call
 * bus_publish/bus_subscribe/bus_unsubscribe, never bus_destroy. */
typedef void (*bus_message_fn)(void *arg, const void *topic, size_t tlen,
                               const void *body, size_t blen);

typedef struct {
    bus_kind_t kind;
    /* BUS_ZMQ: comma-separated endpoints, bound by a publisher, connected
     * by a subscriber; zmq_ctx is the caller's context (not owned). */
    const char *zmq_endpoints;
    void *zmq_ctx;
    /* High-water mark in messages: ZeroMQ SNDHWM/RCVHWM; NATS pending
     * messages per subscription. 0: 1000000. */
    long hwm;
    const char *redis_url;      /* BUS_REDIS: redis://[:password@]host[:port][/db], or
                                 * redis-cluster://[:password@]host:port[,host:port...]
                                 * (seed nodes of a Redis Cluster: sharded pub/sub) */
    const char *nats_url;       /* BUS_NATS: nats://host:port, comma-separated for a cluster */
    const char *name;           /* client name shown by the server (NATS), or NULL */
    bus_message_fn on_message;  /* BUS_SUB: required */
    void *arg;                  /* passed to on_message */
} bus_config_t;

/* Counters (monotonic). */
typedef struct {
    uint64_t published;         /* messages handed to the transport */
    uint64_t publish_errors;    /* messages dropped on publish (not connected, buffer cap, error) */
    uint64_t received;          /* messages given to on_message */
    uint64_t malformed;         /* received messages dropped (frames, channel or subject not ours) */
    uint64_t dropped;           /* received messages dropped by a full queue (slow consumer) */
    uint64_t connects;          /* connections (re)established */
    uint64_t disconnects;       /* connections lost */
    uint64_t errors;            /* other failures: connect, subscribe, server errors */
} bus_stats_t;

/* Creates a publisher (BUS_PUB) or subscriber (BUS_SUB) on loop base
 * (which may be NULL for a ZeroMQ publisher only: it never waits).
 * ZeroMQ binds/connects at once (an error here is a settings error); Redis
 * and NATS connect in the background, so a server that is down is not an
 * error (bus_ready() stays 0 until it is reached). Returns NULL with a
 * reason in err (capacity errcap) on a bad setting or allocation failure.
 * A subscriber has no subscription at first. */
bus_t *bus_new(struct event_base *base, const bus_config_t *cfg, bus_role_t role,
               char *err, size_t errcap);
/* Closes the connection (unsent messages are dropped) and frees
 * everything; NULL-safe; sets *self_p to NULL. */
void bus_destroy(bus_t **self_p);

/* Publishes body on topic without blocking. Returns 0 when handed to the
 * transport, -1 when dropped (not connected, buffer cap, transport error,
 * topic empty or over BUS_TOPIC_MAX), counted in publish_errors. */
int bus_publish(bus_t *self, const void *topic, size_t tlen, const void *body, size_t blen);

/* Subscriptions are a set: subscribing a held topic or unsubscribing one
 * not held does nothing. The set survives reconnects (the backend
 * subscribes it again). Return 0, or -1 on a bad topic or allocation
 * failure (nothing changed). A transport failure is logged and counted,
 * not returned: the subscription is kept and re-sent on reconnect. */
int bus_subscribe(bus_t *self, const void *topic, size_t tlen);
int bus_unsubscribe(bus_t *self, const void *topic, size_t tlen);

/* A subscriber asks yield(arg) after each message it delivers and, when it
 * returns non-zero, stops for this loop turn and goes on in the next, so
 * the caller can write out what the messages so far produced (ZeroMQ; the
 * Redis and NATS clients hand over what they have read). NULL: no limit
 * but the backend's own budget. */
void bus_set_yield(bus_t *self, int (*yield)(void *arg), void *arg);

/* 1 when connected: ZeroMQ SUB: at least one publisher connected; ZeroMQ
 * PUB: bound; Redis, NATS: connected to the server. */
int bus_ready(const bus_t *self);
bus_kind_t bus_kind(const bus_t *self);
void bus_stats(const bus_t *self, bus_stats_t *out);

/* "zmq", "redis", "nats" -> kind. Returns 0, or -1 for anything else. */
int bus_kind_parse(const char *name, bus_kind_t *out);
const char *bus_kind_name(bus_kind_t kind);

/* ---- name mapping (exported for the tests) ------------------------------ */

/* NATS subject of a topic: "belfry." + base64url(topic), NUL-terminated.
 * Returns its length, or -1 if tlen is 0 or over BUS_TOPIC_MAX, or out
 * (capacity cap) is too small. */
long bus_nats_subject(const void *topic, size_t tlen, char *out, size_t cap);
/* The inverse. Returns the topic length, or -1 when subj is not
 * "belfry." + valid unpadded base64url of 1..BUS_TOPIC_MAX bytes, or out
 * (capacity cap) is too small. */
long bus_nats_topic(const char *subj, size_t slen, void *out, size_t cap);
/* Redis channel of a topic: "belfry:" + topic bytes (not NUL-terminated).
 * Returns its length or -1 as bus_nats_subject. */
long bus_redis_channel(const void *topic, size_t tlen, char *out, size_t cap);
/* The inverse, without copying: the topic is chan + 7. Returns its length,
 * or -1 when chan does not start with "belfry:" or has no topic. */
long bus_redis_topic(const char *chan, size_t clen);
/* Parses redis://[:password@]host[:port][/db] (also a bare host[:port]).
 * host (capacity hostcap) and password (capacity passcap, "" if none) are
 * NUL-terminated; *port defaults to 6379; a /db part is accepted and
 * ignored (pub/sub channels are not per database). Returns 0 or -1. */
int bus_redis_parse_url(const char *url, char *host, size_t hostcap, int *port,
                        char *password, size_t passcap);

/* ---- Redis Cluster (common/bus_rcluster.c), exported for the tests -------- */

/* Most seed nodes in a redis-cluster:// URL, and the longest host name. */
#define BUS_RCLUSTER_SEEDS_MAX 16
#define BUS_RCLUSTER_HOST_MAX 256

typedef struct {
    char host[BUS_RCLUSTER_HOST_MAX];   /* name or address, NUL-terminated, no brackets */
    int port;
} bus_rcluster_seed_t;

/* 1 when url names a Redis Cluster (starts with "redis-cluster://"), else 0
 * (NULL-safe). BUS_REDIS uses the cluster backend for such a URL. */
int bus_rcluster_is_url(const char *url);
/* Parses redis-cluster://[[user]:password@]host[:port][,host[:port]...][/]
 * (port 6379 when omitted; an IPv6 address in brackets, [::1]:7000) into
 * seeds (capacity cap) and password (capacity passcap, "" if none).
 * Returns the number of seeds (>= 1), or -1 on a malformed URL, an empty
 * or bad host or port, more seeds than cap, or a value over its capacity. */
int bus_rcluster_parse_url(const char *url, bus_rcluster_seed_t *seeds, size_t cap,
                           char *password, size_t passcap);
/* CRC16-XMODEM (polynomial 0x1021, initial value 0) of len bytes, the
 * checksum of the Redis Cluster specification: "123456789" -> 0x31C3. */
uint16_t bus_rcluster_crc16(const void *data, size_t len);
/* The Redis Cluster hash slot (0..16383) of a key or shard channel: CRC16
 * of the bytes between the first '{' and the first '}' after it when that
 * part is not empty (the hash tag), else of the whole key, mod 16384. */
unsigned bus_rcluster_keyslot(const void *key, size_t len);

#endif
