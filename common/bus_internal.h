/*  bus_internal - what the bus backends (bus_zmq.c, bus_redis.c, bus_nats.c)
 *  share with bus.c; not for other modules.
 *
 *  bus.c owns the generic part: the subscription set (so a backend can
 *  re-subscribe everything after a reconnect), the counters and the
 *  argument checks. A backend fills `ops` and `impl` in its open function
 *  and implements the transport.
 */
#ifndef BELFRY_BUS_INTERNAL_H
#define BELFRY_BUS_INTERNAL_H

#include "bus.h"
#include "map.h"

typedef struct {
    /* Hands one message to the transport; 0 or -1 (bus.c counts). */
    int (*publish)(bus_t *self, const void *topic, size_t tlen, const void *body, size_t blen);
    /* Transport side of a subscription change (the set is already updated). */
    void (*subscribe)(bus_t *self, const void *topic, size_t tlen, int on);
    int (*ready)(const bus_t *self);
    /* Folds counters kept elsewhere (other threads) into out. May be NULL. */
    void (*stats)(const bus_t *self, bus_stats_t *out);
    /* Frees impl (called once, from bus_destroy). */
    void (*close)(bus_t *self);
} bus_ops_t;

struct bus {
    const bus_ops_t *ops;       /* The backend */
    void *impl;                 /* Its state */
    bus_kind_t kind;
    bus_role_t role;
    struct event_base *base;    /* The caller's loop */
    bus_message_fn on_message;  /* Subscriber callback */
    void *arg;
    long hwm;                   /* High-water mark, messages */
    map_t *subs;                /* topic -> (void *)1: the subscription set */
    bus_stats_t stats;          /* Loop-thread counters */
    int (*yield)(void *arg);    /* bus_set_yield: stop draining this turn */
    void *yield_arg;
};

/* Backend constructors: 0, or -1 with a reason in err. */
int bus_zmq_open(bus_t *self, const bus_config_t *cfg, char *err, size_t errcap);
int bus_redis_open(bus_t *self, const bus_config_t *cfg, char *err, size_t errcap);
int bus_nats_open(bus_t *self, const bus_config_t *cfg, char *err, size_t errcap);
/* The Redis Cluster variant of BUS_REDIS (bus_rcluster.c): bus_redis_open
 * hands over to it when cfg->redis_url is a redis-cluster:// URL. */
int bus_rcluster_open(bus_t *self, const bus_config_t *cfg, char *err, size_t errcap);

/* Delivers a received message to the caller (counts it). */
void bus_deliver(bus_t *self, const void *topic, size_t tlen, const void *body, size_t blen);

#endif
