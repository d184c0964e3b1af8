/*  bus_nats - the NATS backend of the fan-out bus
 *
 *  Design: one connection of the NATS C client (libnats). A topic travels
 *  as subject "belfry." + base64url(topic bytes): one token (the alphabet
 *  has no '.', '*', '>' or space), reversible, and exact, so each room is
 *  its own subject and the server sends a gateway only the rooms it holds.
 *
 *  The client library owns the socket and its threads: it connects (and
 *  keeps retrying a server that is down at start, RetryOnFailedConnect),
 *  reconnects forever with a 250 ms wait, re-sends every subscription after
 *  a reconnect by itself, and buffers publishes made while reconnecting (up
 *  to its reconnect buffer; beyond that Publish fails and is counted).
 *  Messages are delivered on the library's global delivery thread (not one
 *  thread per subscription: a gateway holds thousands of rooms), which
 *  copies each into a queue bounded by hwm messages and BUS_BUFFER_MAX
 *  bytes and wakes the libevent loop through a pipe; the loop hands them to
 *  the caller in arrival order, at most NB_BUDGET per loop turn. Connection
 *  events also arrive on library threads and only touch atomics.
 *
 *  The library's libevent adapter (nats/adapters/libevent.h) is not used:
 *  it would move only the socket I/O onto our loop, while its reconnect
 *  thread would then call event_add() on that loop (requiring
 *  evthread_use_pthreads() and libevent_pthreads in every binary) and
 *  message callbacks would still run on library threads, so the hand-over
 *  queue would be needed anyway.
 */
#include "bus_internal.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#define NB_BUDGET 2048
#define NB_SUBJECT_MAX (7 + ((BUS_TOPIC_MAX + 2) / 3) * 4 + 1)

typedef struct nb_msg {
    struct nb_msg *next;
    size_t slen, blen;
    char data[];                /* subject bytes, then body bytes */
} nb_msg_t;

typedef struct {
    bus_t *bus;
    natsOptions *opts;
    natsConnection *nc;
    map_t *subs;                /* topic -> natsSubscription * (loop thread only) */
    char subject[NB_SUBJECT_MAX];   /* Scratch subject */
    /* shared with library threads */
    pthread_mutex_t mu;         /* Guards the queue and closed */
    pthread_cond_t cv;          /* Signalled when closed */
    nb_msg_t *qhead, *qtail;    /* Received, not yet handed to the loop */
    size_t qlen, qbytes;
    int closed;                 /* The closed callback ran */
    int wake[2];                /* Pipe: library threads -> loop */
    struct event *wake_ev;
    atomic_int connected;       /* Connected to a server now */
    atomic_int closing;         /* bus_destroy in progress */
    atomic_ullong connects, disconnects, dropped, errors;
} nb_t;

/* ---- library threads ------------------------------------------------------ */

static void s_wake(nb_t *n)
{
    char c = 1;
    ssize_t w = write(n->wake[1], &c, 1);   /* EAGAIN: a wake-up is pending anyway */
    (void)w;
}

static void s_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    nb_t *n = closure;
    (void)nc;
    (void)sub;
    const char *subj = natsMsg_GetSubject(msg);
    size_t slen = strlen(subj), blen = (size_t)natsMsg_GetDataLength(msg);
    if (atomic_load(&n->closing)) {
        natsMsg_Destroy(msg);
        return;
    }
    nb_msg_t *m = NULL;
    pthread_mutex_lock(&n->mu);
    if (n->qlen >= (size_t)n->bus->hwm || n->qbytes + slen + blen > BUS_BUFFER_MAX) {
        atomic_fetch_add(&n->dropped, 1);       /* the loop does not keep up */
    } else if ((m = malloc(sizeof *m + slen + blen)) == NULL) {
        atomic_fetch_add(&n->dropped, 1);
    } else {
        m->next = NULL;
        m->slen = slen;
        m->blen = blen;
        memcpy(m->data, subj, slen);
        memcpy(m->data + slen, natsMsg_GetData(msg), blen);
        if (n->qtail)
            n->qtail->next = m;
        else
            n->qhead = m;
        n->qtail = m;
        n->qlen++;
        n->qbytes += slen + blen;
    }
    int first = m && n->qlen == 1;
    pthread_mutex_unlock(&n->mu);
    natsMsg_Destroy(msg);
    if (first)
        s_wake(n);
}

static void s_on_connected(natsConnection *nc, void *closure)
{
    nb_t *n = closure;
    char url[256] = "";
    char shown[256];
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    atomic_store(&n->connected, 1);
    atomic_fetch_add(&n->connects, 1);
    log_info("event=fanout_connected fanout=nats server=%s", log_redact_url(url, shown, sizeof shown));
}

static void s_on_disconnected(natsConnection *nc, void *closure)
{
    nb_t *n = closure;
    (void)nc;
    if (atomic_exchange(&n->connected, 0) && !atomic_load(&n->closing)) {
        atomic_fetch_add(&n->disconnects, 1);
        log_warn("event=fanout_disconnected fanout=nats");
    }
}

static void s_on_closed(natsConnection *nc, void *closure)
{
    nb_t *n = closure;
    (void)nc;
    atomic_store(&n->connected, 0);
    if (!atomic_load(&n->closing))
        log_error("event=fanout_closed fanout=nats note=\"the client gave up reconnecting\"");
    pthread_mutex_lock(&n->mu);
    n->closed = 1;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

static void s_on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    nb_t *n = closure;
    (void)nc;
    (void)sub;
    if (err == NATS_SLOW_CONSUMER) {
        atomic_fetch_add(&n->dropped, 1);
        log_warn("event=fanout_slow_consumer fanout=nats");
    } else {
        atomic_fetch_add(&n->errors, 1);
        log_warn("event=fanout_error fanout=nats reason=\"%s\"", natsStatus_GetText(err));
    }
}

/* ---- loop thread ---------------------------------------------------------- */

static void s_drain(evutil_socket_t fd, short what, void *arg)
{
    bus_t *bus = arg;
    nb_t *n = bus->impl;
    char buf[256];
    (void)what;
    while (read(fd, buf, sizeof buf) > 0)
        ;
    unsigned char topic[BUS_TOPIC_MAX + 3];
    for (int budget = 0; budget < NB_BUDGET; budget++) {
        pthread_mutex_lock(&n->mu);
        nb_msg_t *m = n->qhead;
        if (m) {
            n->qhead = m->next;
            if (!n->qhead)
                n->qtail = NULL;
            n->qlen--;
            n->qbytes -= m->slen + m->blen;
        }
        pthread_mutex_unlock(&n->mu);
        if (!m)
            return;
        long tl = bus_nats_topic(m->data, m->slen, topic, sizeof topic);
        if (tl < 0)
            bus->stats.malformed++;
        else
            bus_deliver(bus, topic, (size_t)tl, m->data + m->slen, m->blen);
        free(m);
    }
    event_active(n->wake_ev, EV_READ, 0);       /* more may wait: next turn */
}

static int s_publish(bus_t *bus, const void *topic, size_t tlen, const void *body, size_t blen)
{
    nb_t *n = bus->impl;
    if (!n->nc || blen > 0x7fffffff ||
        bus_nats_subject(topic, tlen, n->subject, sizeof n->subject) < 0)
        return -1;
    natsStatus s = natsConnection_Publish(n->nc, n->subject, body, (int)blen);
    if (s != NATS_OK) {
        log_debug("event=publish_failed fanout=nats reason=\"%s\"", natsStatus_GetText(s));
        return -1;
    }
    return 0;
}

static void s_subscribe(bus_t *bus, const void *topic, size_t tlen, int on)
{
    nb_t *n = bus->impl;
    if (!n->nc)
        return;
    if (!on) {
        natsSubscription *sub = map_remove(n->subs, topic, tlen);
        if (sub) {
            natsStatus s = natsSubscription_Unsubscribe(sub);
            if (s != NATS_OK && s != NATS_CONNECTION_CLOSED)
                log_debug("event=unsubscribe_failed fanout=nats reason=\"%s\"", natsStatus_GetText(s));
            natsSubscription_Destroy(sub);
        }
        return;
    }
    if (bus_nats_subject(topic, tlen, n->subject, sizeof n->subject) < 0)
        return;
    natsSubscription *sub = NULL;
    natsStatus s = natsConnection_Subscribe(&sub, n->nc, n->subject, s_on_msg, n);
    if (s != NATS_OK) {
        bus->stats.errors++;
        log_warn("event=fanout_error fanout=nats op=subscribe reason=\"%s\"", natsStatus_GetText(s));
        return;
    }
    /* the library's own per-subscription queue: as deep as ours */
    natsSubscription_SetPendingLimits(sub, bus->hwm > 0x7fffffff ? 0x7fffffff : (int)bus->hwm,
                                      (int)BUS_BUFFER_MAX);
    if (map_put(n->subs, topic, tlen, sub) < 0) {
        natsSubscription_Unsubscribe(sub);
        natsSubscription_Destroy(sub);
        bus->stats.errors++;
    }
}

static int s_ready(const bus_t *bus)
{
    nb_t *n = bus->impl;
    return atomic_load(&n->connected);
}

static void s_stats(const bus_t *bus, bus_stats_t *out)
{
    nb_t *n = bus->impl;
    out->connects += atomic_load(&n->connects);
    out->disconnects += atomic_load(&n->disconnects);
    out->dropped += atomic_load(&n->dropped);
    out->errors += atomic_load(&n->errors);
}

static void s_close(bus_t *bus)
{
    nb_t *n = bus->impl;
    if (!n)
        return;
    atomic_store(&n->closing, 1);
    if (n->nc) {
        /* subscriptions first, then the connection; wait (bounded) for the
         * closed callback, the library's last word, before freeing what its
         * threads point at */
        size_t pos = 0, klen;
        const void *key;
        void *val;
        while (map_next(n->subs, &pos, &key, &klen, &val))
            natsSubscription_Destroy(val);
        natsConnection_Close(n->nc);
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 2;
        pthread_mutex_lock(&n->mu);
        while (!n->closed)
            if (pthread_cond_timedwait(&n->cv, &n->mu, &deadline) == ETIMEDOUT)
                break;
        pthread_mutex_unlock(&n->mu);
        natsConnection_Destroy(n->nc);
    }
    if (n->opts)
        natsOptions_Destroy(n->opts);
    map_destroy(&n->subs);
    if (n->wake_ev)
        event_free(n->wake_ev);
    for (int i = 0; i < 2; i++)
        if (n->wake[i] >= 0)
            close(n->wake[i]);
    nb_msg_t *m;
    while ((m = n->qhead) != NULL) {
        n->qhead = m->next;
        free(m);
    }
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    free(n);
    bus->impl = NULL;
}

static const bus_ops_t s_ops = { s_publish, s_subscribe, s_ready, s_stats, s_close };

int bus_nats_open(bus_t *bus, const bus_config_t *cfg, char *err, size_t errcap)
{
    bus->ops = &s_ops;
    char shown[1024];           /* the URL as logged: no password */
    nb_t *n = calloc(1, sizeof *n);
    if (!n) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    n->bus = bus;
    n->wake[0] = n->wake[1] = -1;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    bus->impl = n;
    if (!cfg->nats_url || !*cfg->nats_url) {
        snprintf(err, errcap, "--nats-url is empty");
        return -1;
    }
    n->subs = map_new();
    if (!n->subs || pipe2(n->wake, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(err, errcap, "cannot create the NATS hand-over: %s", strerror(errno));
        return -1;
    }
    n->wake_ev = event_new(bus->base, n->wake[0], EV_READ | EV_PERSIST, s_drain, bus);
    if (!n->wake_ev || event_add(n->wake_ev, NULL) < 0) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    n->opts = o;
    if (s == NATS_OK)
        s = natsOptions_SetURL(o, cfg->nats_url);
    if (s != NATS_OK) {
        snprintf(err, errcap, "--nats-url: \"%s\": %s", log_redact_url(cfg->nats_url, shown, sizeof shown),
                 natsStatus_GetText(s));
        return -1;
    }
    if (cfg->name)
        natsOptions_SetName(o, cfg->name);
    natsOptions_SetAllowReconnect(o, true);
    natsOptions_SetMaxReconnect(o, -1);             /* forever */
    natsOptions_SetReconnectWait(o, 250);
    natsOptions_SetTimeout(o, 2000);
    natsOptions_SetPingInterval(o, 5000);           /* a silent half-open server: 10 s */
    natsOptions_SetMaxPingsOut(o, 2);
    natsOptions_UseGlobalMessageDelivery(o, true);
    natsOptions_SetRetryOnFailedConnect(o, true, s_on_connected, n);
    natsOptions_SetReconnectedCB(o, s_on_connected, n);
    natsOptions_SetDisconnectedCB(o, s_on_disconnected, n);
    natsOptions_SetClosedCB(o, s_on_closed, n);
    natsOptions_SetErrorHandler(o, s_on_error, n);
    s = natsConnection_Connect(&n->nc, o);
    if (s == NATS_OK) {
        atomic_store(&n->connected, 1);
        atomic_fetch_add(&n->connects, 1);
        log_info("event=fanout_connected fanout=nats server=%s", log_redact_url(cfg->nats_url, shown, sizeof shown));
    } else if (s == NATS_NOT_YET_CONNECTED) {
        log_warn("event=fanout_connect_failed fanout=nats server=%s note=\"retrying in the background\"",
                 log_redact_url(cfg->nats_url, shown, sizeof shown));
    } else {
        n->nc = NULL;
        snprintf(err, errcap, "--nats-url: \"%s\": %s", log_redact_url(cfg->nats_url, shown, sizeof shown),
                 natsStatus_GetText(s));
        return -1;
    }
    return 0;
}
