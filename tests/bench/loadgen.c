/*  loadgen - Socket.IO-over-WebSocket load generator for the benchmarks
 *
 *  Opens N connections straight to the WebSocket transport
 *  (GET /socket.io/?EIO=4&transport=websocket, no polling), each one
 *  authenticating with its own HS256 JWT (sub = a user id from a range) in
 *  the CONNECT auth payload, answers Engine.IO pings, and for every EVENT
 *  whose payload carries "ts" (µs since the epoch, the commit time) records
 *  now - ts into a log-linear histogram. A payload may also carry "c" (the
 *  injector stream) and "n" (the row's number within that stream and room):
 *  per connection and stream the numbers must follow 1, 2, 3..., so a jump is
 *  counted as lost messages and a repeat or step back as a duplicate.
 *
 *  Design: one parent process forks --procs workers and only supervises
 *  them; each worker runs one loop over its share of connections,
 *  spread over the source addresses of --src-addrs (bind() with
 *  IP_BIND_ADDRESS_NO_PORT before connect(), so each address has its own
 *  ephemeral ports) and the --target gateways. A worker writes a small
 *  progress record to its pipe every 100 ms and its whole result (counters,
 *  histogram, getrusage) when told to stop (SIGUSR1); the parent adds them up
 *  and prints one JSON object on stdout. The parent ends the run when
 *  --duration is over, when --expect messages have arrived, when no message
 *  arrived for --idle-ms after the first one, on SIGTERM/SIGINT, or when the
 *  mode's work is done (connect: all handshakes done; storm: all
 *  reconnected). Workers die with the parent (PR_SET_PDEATHSIG) and have a
 *  deadline of their own, so a run always ends.
 *
 *  The load generator shares the machine with the system it measures, so its
 *  own cost is kept low (every CPU second it saves goes to the gateways):
 *  every token is signed before the first connection starts (one HMAC key
 *  schedule, then one SHA-256 pair per token); the worker's loop is a plain
 *  edge-triggered epoll loop in which a connection costs one epoll_ctl (the
 *  ADD; close() removes it) and no getsockopt (a failed connect shows as
 *  EPOLLERR or as the first write failing); frames are parsed in place in
 *  one 64 KiB read buffer, and only a frame cut by the end of a read is
 *  copied (into a per-connection buffer kept until the connection closes);
 *  an event's "ts", "n" and "c" are found in one pass over its quotes; the
 *  clock is read once per read(), which is the receive time of every message
 *  in it. Signals arrive on a signalfd in the same loop.
 *
 *  Modes: hold (connect, then receive until the end), connect (measure
 *  handshakes per second: WS upgrade + EIO open + SIO CONNECT ack), storm
 *  (connect, then drop every connection at once and reconnect with
 *  {"pid","offset"} in the auth payload when the server gave them; an
 *  offset comes with an event, so --storm-after waits for the messages
 *  that give every client one).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "b64.h"
#include "cfg.h"
#include "jwt.h"
#include "utf8.h"
#include "ws.h"

#define LG_MAX_PROCS    64
#define LG_MAX_ADDRS    256
#define LG_MAX_TARGETS  64
#define LG_STREAMS      16          /* injector streams tracked per connection ("c") */
#define LG_HEAD_MAX     4096        /* cap of the HTTP response head */
#define LG_MAX_MESSAGE  (1 << 20)   /* cap of one WebSocket message */
#define LG_RDBUF        65536
#define LG_READ_ROUNDS  4           /* full reads per connection and loop turn */
#define LG_TICK_US      100000
#define LG_ID_MAX       64          /* pid / offset strings kept for recovery */
#define LG_TOKEN_MAX    256         /* one signed token, NUL included */
#define LG_REQ_MAX      512         /* the HTTP upgrade request of one target */
#define LG_EVENTS       256         /* epoll events per wait */
#define LG_SIG_KEY      UINT64_MAX  /* epoll key of the signalfd */

/* Log-linear histogram: values < 64 exactly, then 64 sub-buckets per power
 * of two (about 1.5 % resolution) up to 2^40 µs. */
#define H_SUB      64
#define H_MAXLOG   40
#define H_BUCKETS  (H_SUB + (H_MAXLOG - 6 + 1) * H_SUB)

enum { MODE_HOLD, MODE_CONNECT, MODE_STORM };
enum { ST_IDLE, ST_CONNECTING, ST_HEAD, ST_OPEN_WAIT, ST_SIO_WAIT, ST_READY, ST_CLOSED };
enum { MSG_PROGRESS = 1, MSG_FINAL = 2 };

/* One record from a worker to the parent; the histogram only in MSG_FINAL. */
typedef struct {
    int type;
    int phase_done;             /* initial connect phase over (all attempted, none pending) */
    int storm_done;             /* storm reconnect phase over */
    uint64_t connected;         /* connections open and connected now */
    uint64_t handshakes;        /* completed handshakes (initial phase) */
    uint64_t failed;            /* connection attempts that failed */
    uint64_t dropped;           /* connected sessions closed by the server or an error */
    uint64_t messages;
    uint64_t lost, dups;        /* by the "n" sequence per stream */
    uint64_t no_ts;             /* events without a "ts" */
    int64_t t_first_start, t_last_hs;      /* initial handshakes: first start, last done (µs) */
    int64_t t_first_msg, t_last_msg;
    int64_t t_storm_start, t_storm_end;
    uint64_t storm_reconnected, storm_recovered, storm_failed;
    uint64_t lat_max, lat_sum;
    double cpu_s;
    uint64_t hist[H_BUCKETS];
} lg_report_t;

#define LG_HDR_SIZE offsetof(lg_report_t, hist)

typedef struct worker worker_t;

typedef struct {
    int fd;
    int state;
    uint32_t gen;               /* attempt number: tells a stale epoll event from a live one */
    uint8_t in_storm;           /* this attempt is a storm reconnect */
    uint8_t stormed;            /* dropped by the storm: reconnect it */
    uint8_t queued;             /* on the worker's "read again" list */
    uint8_t msg_op;             /* opcode of a fragmented message being reassembled, 0 if none */
    uint8_t *pend;              /* the start of a head or frame cut by the end of a read */
    uint32_t pend_len, pend_cap;
    uint8_t *msg;               /* fragmented message being reassembled */
    uint32_t msg_len, msg_cap;
    uint8_t *out;               /* unsent bytes */
    uint32_t out_len;
    uint16_t token_len;
    const char *token;          /* signed before the run; NULL without --jwt-secret */
    int64_t t_start;
    char pid[LG_ID_MAX], offset[LG_ID_MAX];
    uint32_t lastn[LG_STREAMS];
} conn_t;

struct worker {
    int ep, sig_fd;             /* epoll instance, signalfd (SIGUSR1 stop, SIGUSR2 storm) */
    conn_t *conns;
    int n, first;               /* connections of this worker, global index of the first */
    int next;                   /* next connection to open in the current phase */
    int inflight;
    int phase;                  /* 0 initial, 1 holding, 2 storm reconnect, 3 storm done */
    int stop;                   /* leave the loop */
    int pipe_fd;
    int *again;                 /* connections with unread bytes left (LG_READ_ROUNDS hit) */
    int n_again;
    char *tokens;               /* n tokens of LG_TOKEN_MAX bytes */
    uint64_t rng;               /* xorshift state for the frame masks */
    int64_t now;                /* receive time of the bytes being parsed (µs) */
    int64_t deadline;
    lg_report_t r;
};

/* Settings (cfg). */
static char *o_target, *o_src, *o_secret, *o_nsp, *o_mode, *o_ready_file, *o_path;
static long o_conns, o_procs, o_user_base, o_users, o_duration, o_inflight, o_expect,
            o_idle_ms, o_max_conns, o_storm_wait_ms, o_storm_after;
static struct sockaddr_in g_src[LG_MAX_ADDRS], g_dst[LG_MAX_TARGETS];
static int g_nsrc, g_ndst, g_mode;
static char g_nsp[128];
static char g_req[LG_MAX_TARGETS][LG_REQ_MAX];  /* upgrade request per target */
static size_t g_req_len[LG_MAX_TARGETS];
static uint8_t g_rdbuf[LG_RDBUF];
static worker_t g_w;            /* the one worker of a worker process */
static volatile sig_atomic_t g_parent_stop;

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static unsigned s_hbucket(uint64_t v)
{
    if (v < H_SUB)
        return (unsigned)v;
    int k = 63 - __builtin_clzll(v);
    if (k > H_MAXLOG)
        return H_BUCKETS - 1;
    unsigned shift = (unsigned)k - 6;
    return H_SUB + (unsigned)(k - 6) * H_SUB + (unsigned)((v >> shift) - H_SUB);
}

/* The highest value a bucket holds (what a percentile reports). */
static uint64_t s_hvalue(unsigned b)
{
    if (b < H_SUB)
        return b;
    unsigned k = (b - H_SUB) / H_SUB + 6, sub = (b - H_SUB) % H_SUB + H_SUB;
    return (((uint64_t)sub + 1) << (k - 6)) - 1;
}

static uint64_t s_percentile(const uint64_t *h, uint64_t total, double q, uint64_t max)
{
    if (total == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)total + 0.999999), seen = 0;
    if (want < 1)
        want = 1;
    for (unsigned b = 0; b < H_BUCKETS; b++) {
        seen += h[b];
        if (seen >= want) {
            uint64_t v = s_hvalue(b);
            return v < max ? v : max;
        }
    }
    return max;
}

/* ---- parsing the settings ------------------------------------------------ */

static int s_parse_addr(const char *s, size_t n, int port_required, struct sockaddr_in *out)
{
    char tmp[64];
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    char *colon = strrchr(tmp, ':');
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (*end || p <= 0 || p > 65535)
            return -1;
        out->sin_port = htons((uint16_t)p);
        *colon = '\0';
    } else if (port_required) {
        return -1;
    }
    return inet_pton(AF_INET, tmp, &out->sin_addr) == 1 ? 0 : -1;
}

/* "127.0.0.1:8080,127.0.0.1:8081" */
static int s_parse_targets(const char *s)
{
    while (*s) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (g_ndst == LG_MAX_TARGETS || s_parse_addr(s, n, 1, &g_dst[g_ndst]) < 0)
            return -1;
        g_ndst++;
        s += n + (e ? 1 : 0);
    }
    return g_ndst > 0 ? 0 : -1;
}

/* "127.0.0.2-127.0.0.20" or "127.0.0.1" or a comma list of either. */
static int s_parse_srcs(const char *s)
{
    while (*s) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        const char *dash = memchr(s, '-', n);
        struct sockaddr_in a, b;
        if (dash) {
            if (s_parse_addr(s, (size_t)(dash - s), 0, &a) < 0 ||
                s_parse_addr(dash + 1, n - (size_t)(dash - s) - 1, 0, &b) < 0)
                return -1;
        } else {
            if (s_parse_addr(s, n, 0, &a) < 0)
                return -1;
            b = a;
        }
        uint32_t lo = ntohl(a.sin_addr.s_addr), hi = ntohl(b.sin_addr.s_addr);
        if (hi < lo)
            return -1;
        for (uint32_t x = lo; x <= hi; x++) {
            if (g_nsrc == LG_MAX_ADDRS)
                return -1;
            memset(&g_src[g_nsrc], 0, sizeof g_src[g_nsrc]);
            g_src[g_nsrc].sin_family = AF_INET;
            g_src[g_nsrc].sin_addr.s_addr = htonl(x);
            g_nsrc++;
        }
        s += n + (e ? 1 : 0);
    }
    return g_nsrc > 0 ? 0 : -1;
}


/* ---- one connection ------------------------------------------------------- */

static void s_open_more(worker_t *w);

/* The connection's global index: its user id, source address and target. */
static int s_conn_index(const conn_t *c)
{
    return g_w.first + (int)(c - g_w.conns);
}

/* Ends a connection. failed: it never got connected (counts as a failure);
 * otherwise a connected session ended (counts as dropped unless planned).
 * close() also takes the socket out of the epoll set. */
static void s_conn_close(conn_t *c, int failed, int planned)
{
    worker_t *w = &g_w;
    int was_ready = c->state == ST_READY;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->pend);
    c->pend = NULL;
    c->pend_len = c->pend_cap = 0;
    free(c->msg);
    c->msg = NULL;
    c->msg_len = c->msg_cap = 0;
    c->msg_op = 0;
    free(c->out);
    c->out = NULL;
    c->out_len = 0;
    if (was_ready) {
        w->r.connected--;
        if (!planned)
            w->r.dropped++;
    } else if (c->state != ST_CLOSED && c->state != ST_IDLE) {
        w->inflight--;
        if (failed) {
            if (c->in_storm)
                w->r.storm_failed++;
            else
                w->r.failed++;
        }
    }
    c->state = ST_CLOSED;
}

/* Writes bytes, or queues what the socket does not take now (flushed on the
 * next EPOLLOUT edge). 0, or -1 (closed). */
static int s_conn_send(conn_t *c, const void *data, size_t len)
{
    if (c->out_len == 0) {
        ssize_t k = write(c->fd, data, len);
        if (k == (ssize_t)len)
            return 0;
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            goto fail;
        if (k < 0)
            k = 0;
        data = (const uint8_t *)data + k;
        len -= (size_t)k;
    }
    if ((size_t)c->out_len + len > LG_MAX_MESSAGE)
        goto fail;
    uint8_t *nb = realloc(c->out, c->out_len + len);
    if (!nb)
        goto fail;
    memcpy(nb + c->out_len, data, len);
    c->out = nb;
    c->out_len += (uint32_t)len;
    return 0;
fail:
    s_conn_close(c, c->state != ST_READY, 0);
    return -1;
}

/* Writes queued bytes (the socket became writable). 0, or -1 (closed). */
static int s_conn_flush(conn_t *c)
{
    while (c->out_len) {
        ssize_t k = write(c->fd, c->out, c->out_len);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            s_conn_close(c, c->state != ST_READY, 0);
            return -1;
        }
        memmove(c->out, c->out + k, c->out_len - (size_t)k);
        c->out_len -= (uint32_t)k;
    }
    return 0;
}

/* A client frame mask: xorshift64, seeded per worker (only needs to vary). */
static uint32_t s_rand32(void)
{
    uint64_t x = g_w.rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    g_w.rng = x;
    return (uint32_t)(x >> 16);
}

/* Sends one masked text frame. 0, or -1 (closed). */
static int s_conn_send_text(conn_t *c, const char *s, size_t len)
{
    uint8_t stackbuf[WS_MAX_HEADER + 1024];
    uint8_t *buf = len <= 1024 ? stackbuf : malloc(WS_MAX_HEADER + len);
    if (!buf) {
        s_conn_close(c, c->state != ST_READY, 0);
        return -1;
    }
    uint32_t m = s_rand32();
    uint8_t mask[4];
    memcpy(mask, &m, 4);
    size_t n = ws_build_frame_masked(buf, 1, WS_OP_TEXT, mask, s, len);
    int rc = s_conn_send(c, buf, n);
    if (buf != stackbuf)
        free(buf);
    return rc;
}

/* Starts connection c (non-blocking connect; the socket joins the epoll set
 * once, edge-triggered for reading and writing). */
static void s_conn_start(conn_t *c, int storm)
{
    worker_t *w = &g_w;
    int idx = s_conn_index(c);
    c->gen++;
    c->in_storm = (uint8_t)storm;
    c->t_start = s_now_us();
    if (!storm && w->r.t_first_start == 0)
        w->r.t_first_start = c->t_start;
    c->state = ST_CONNECTING;
    w->inflight++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (c->fd < 0)
        goto fail;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(c->fd, IPPROTO_IP, 24 /* IP_BIND_ADDRESS_NO_PORT */, &one, sizeof one);
    const struct sockaddr_in *src = &g_src[idx % g_nsrc];
    if (bind(c->fd, (const struct sockaddr *)src, sizeof *src) < 0)
        goto fail;
    const struct sockaddr_in *dst = &g_dst[idx % g_ndst];
    if (connect(c->fd, (const struct sockaddr *)dst, sizeof *dst) < 0 && errno != EINPROGRESS)
        goto fail;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    ev.data.u64 = (uint64_t)c->gen << 32 | (uint32_t)(c - w->conns);
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        goto fail;
    return;
fail:
    s_conn_close(c, 1, 0);
}

/* Copies the JSON string value that follows pat (e.g. "\"pid\":\"") in data
 * into out; out is "" when it is absent, escaped or too long. */
static void s_json_str(const char *data, size_t len, const char *pat, char *out, size_t cap)
{
    size_t pl = strlen(pat);
    const char *p = memmem(data, len, pat, pl);
    out[0] = '\0';
    if (!p)
        return;
    p += pl;
    const char *end = data + len;
    size_t i = 0;
    while (p < end && *p != '"' && *p != '\\' && i + 1 < cap)
        out[i++] = *p++;
    if (p < end && *p == '"')
        out[i] = '\0';
    else
        out[0] = '\0';
}

/* Parses the integer after a key's colon at p (jsonb output puts a space
 * after the colon). Returns 0 and sets *v, or -1. */
static int s_json_int_at(const char *p, const char *end, int64_t *v)
{
    while (p < end && *p == ' ')
        p++;
    int neg = 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end || *p < '0' || *p > '9')
        return -1;
    int64_t x = 0;
    while (p < end && *p >= '0' && *p <= '9' && x < INT64_MAX / 10)
        x = x * 10 + (*p++ - '0');
    *v = neg ? -x : x;
    return 0;
}

/* 1 if the event (the JSON array after the packet header) is one of the
 * notification center's own (`unread` on connect, `read`), not a row. */
static int s_center_event(const char *d, size_t len)
{
    while (len && (*d == ' ' || *d == '[')) {
        d++;
        len--;
    }
    return (len >= 8 && memcmp(d, "\"unread\"", 8) == 0) || (len >= 6 && memcmp(d, "\"read\"", 6) == 0);
}

/* Finds the first "ts":, "n": and "c": of an event in one pass over its
 * quotes (the same first occurrences a substring search for each would
 * find). found[k] is 1 if the key's first occurrence carries an integer. */
static void s_event_keys(const char *d, size_t len, int64_t v[3], int found[3])
{
    const char *p = d, *end = d + len;
    int seen[3] = { 0, 0, 0 }, left = 3;
    found[0] = found[1] = found[2] = 0;
    while (left && p < end && (p = memchr(p, '"', (size_t)(end - p))) != NULL) {
        size_t rest = (size_t)(end - p);
        int k = -1;
        size_t kl = 0;
        if (rest >= 5 && p[1] == 't' && p[2] == 's' && p[3] == '"' && p[4] == ':')
            k = 0, kl = 5;
        else if (rest >= 4 && p[1] == 'n' && p[2] == '"' && p[3] == ':')
            k = 1, kl = 4;
        else if (rest >= 4 && p[1] == 'c' && p[2] == '"' && p[3] == ':')
            k = 2, kl = 4;
        if (k >= 0 && !seen[k]) {
            seen[k] = 1;
            left--;
            found[k] = s_json_int_at(p + kl, end, &v[k]) == 0;
        }
        p++;
    }
}

/* One EVENT (the JSON array after the packet header): counts it, times it
 * by "ts" against the receive time of its read, checks "n" per stream "c",
 * and keeps the recovery offset. */
static void s_on_event(conn_t *c, const char *d, size_t len)
{
    worker_t *w = &g_w;
    int64_t now = w->now, v[3];
    int found[3];
    if (s_center_event(d, len))
        return;                 /* not a row: neither counted nor timed */
    w->r.messages++;
    if (w->r.t_first_msg == 0)
        w->r.t_first_msg = now;
    w->r.t_last_msg = now;
    s_event_keys(d, len, v, found);
    if (!found[0]) {
        w->r.no_ts++;
    } else {
        uint64_t lat = now > v[0] ? (uint64_t)(now - v[0]) : 0;
        w->r.hist[s_hbucket(lat)]++;
        w->r.lat_sum += lat;
        if (lat > w->r.lat_max)
            w->r.lat_max = lat;
    }
    if (found[1] && v[1] > 0 && v[1] <= UINT32_MAX) {
        int64_t n = v[1], st = found[2] ? v[2] : 0;
        if (st >= 0 && st < LG_STREAMS) {
            uint32_t last = c->lastn[st];
            if ((uint32_t)n == last + 1)
                c->lastn[st] = (uint32_t)n;
            else if ((uint32_t)n > last + 1) {
                w->r.lost += (uint32_t)n - last - 1;
                c->lastn[st] = (uint32_t)n;
            } else {
                w->r.dups++;
            }
        }
    }
    /* A recovery offset is the event's last argument: ...,"<offset>"] */
    if (len > 3 && d[len - 1] == ']' && d[len - 2] == '"') {
        const char *q = d + len - 3;
        while (q > d && *q != '"')
            q--;
        size_t ol = (size_t)(d + len - 2 - (q + 1));
        if (*q == '"' && q > d && q[-1] == ',' && ol < sizeof c->offset) {
            memcpy(c->offset, q + 1, ol);
            c->offset[ol] = '\0';
        }
    }
}

/* Sends the Socket.IO CONNECT with the token (and recovery fields). */
static int s_send_connect(conn_t *c)
{
    char buf[2048];
    int n;
    const char *nsp = strcmp(g_nsp, "/") ? g_nsp : "";
    const char *comma = *nsp ? "," : "";
    if (c->in_storm && c->pid[0]) {
        n = snprintf(buf, sizeof buf, "40%s%s{\"token\":\"%s\",\"pid\":\"%s\",\"offset\":\"%s\"}",
                     nsp, comma, c->token ? c->token : "", c->pid, c->offset);
    } else if (c->token) {
        /* the common case, without formatting: 40[nsp,]{"token":"<token>"} */
        static const char pre[] = "{\"token\":\"", post[] = "\"}";
        size_t nl = strlen(nsp), cl = strlen(comma);
        if (2 + nl + cl + sizeof pre - 1 + c->token_len + sizeof post - 1 > sizeof buf) {
            s_conn_close(c, 1, 0);
            return -1;
        }
        char *o = buf;
        memcpy(o, "40", 2);
        o += 2;
        memcpy(o, nsp, nl);
        o += nl;
        memcpy(o, comma, cl);
        o += cl;
        memcpy(o, pre, sizeof pre - 1);
        o += sizeof pre - 1;
        memcpy(o, c->token, c->token_len);
        o += c->token_len;
        memcpy(o, post, sizeof post - 1);
        o += sizeof post - 1;
        return s_conn_send_text(c, buf, (size_t)(o - buf));
    } else {
        n = snprintf(buf, sizeof buf, "40%s%s", nsp, comma);
    }
    if (n < 0 || (size_t)n >= sizeof buf) {
        s_conn_close(c, 1, 0);
        return -1;
    }
    return s_conn_send_text(c, buf, (size_t)n);
}

static void s_on_ready(conn_t *c, const char *d, size_t len)
{
    worker_t *w = &g_w;
    int64_t now = s_now_us();
    char pid[LG_ID_MAX] = "";
    s_json_str(d, len, "\"pid\":\"", pid, sizeof pid);
    if (c->in_storm) {
        w->r.storm_reconnected++;
        if (pid[0] && c->pid[0] && strcmp(pid, c->pid) == 0)
            w->r.storm_recovered++;
        w->r.t_storm_end = now;
    } else {
        w->r.handshakes++;
        w->r.t_last_hs = now;
    }
    if (pid[0])
        memcpy(c->pid, pid, sizeof pid);
    c->state = ST_READY;
    w->inflight--;
    w->r.connected++;
}

/* Handles one text message. Returns -1 when the connection was closed. */
static int s_on_text(conn_t *c, const char *d, size_t len)
{
    if (len == 0)
        goto bad;
    switch (d[0]) {
    case '0':
        if (c->state != ST_OPEN_WAIT)
            goto bad;
        c->state = ST_SIO_WAIT;
        return s_send_connect(c);
    case '2': {
        char pong[64];
        if (len > sizeof pong)
            goto bad;
        memcpy(pong, d, len);
        pong[0] = '3';
        return s_conn_send_text(c, pong, len);
    }
    case '1':
        s_conn_close(c, c->state != ST_READY, 0);
        return -1;
    case '6':
        return 0;
    case '4':
        break;
    default:
        goto bad;
    }
    if (len < 2)
        goto bad;
    const char *p = d + 2, *end = d + len;
    /* skip the namespace: the one we asked for */
    if (p < end && *p == '/') {
        const char *cm = memchr(p, ',', (size_t)(end - p));
        p = cm ? cm + 1 : end;
    }
    switch (d[1]) {
    case '0':
        if (c->state != ST_SIO_WAIT)
            goto bad;
        s_on_ready(c, p, (size_t)(end - p));
        return c->state == ST_CLOSED ? -1 : 0;
    case '4':   /* CONNECT_ERROR */
        s_conn_close(c, 1, 0);
        return -1;
    case '1':
        s_conn_close(c, c->state != ST_READY, 0);
        return -1;
    case '2':
        if (c->state == ST_READY)
            s_on_event(c, p, (size_t)(end - p));
        return 0;
    default:
        return 0;
    }
bad:
    s_conn_close(c, c->state != ST_READY, 0);
    return -1;
}

/* ---- WebSocket frames, parsed in place ------------------------------------ */

/* 1 if s[0..n) is valid UTF-8: a word-at-a-time ASCII test first, since
 * notifications are almost always ASCII. */
static int s_utf8_ok(const uint8_t *s, size_t n)
{
    uint64_t acc = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        acc |= x;
    }
    for (; i < n; i++)
        acc |= s[i];
    if (!(acc & 0x8080808080808080ULL))
        return 1;
    return utf8_valid(s, n);
}

/* The header length of the frame at b (at least 2 bytes known). */
static size_t s_frame_hlen(const uint8_t *b)
{
    size_t hl = 2 + ((b[1] & 0x80) ? 4 : 0);
    uint8_t l7 = b[1] & 0x7F;
    return hl + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0);
}

/* How many bytes of the frame starting at b[0..have) are needed to go on:
 * the header's length while the header is incomplete, then header plus
 * payload. SIZE_MAX when the payload is over LG_MAX_MESSAGE. */
static size_t s_frame_need(const uint8_t *b, size_t have)
{
    if (have < 2)
        return 2;
    size_t hl = s_frame_hlen(b);
    if (have < hl)
        return hl;
    uint64_t len = b[1] & 0x7F;
    if (len == 126) {
        len = (uint64_t)b[2] << 8 | b[3];
    } else if (len == 127) {
        len = 0;
        for (int i = 2; i < 10; i++)
            len = len << 8 | b[i];
    }
    if (len > LG_MAX_MESSAGE)
        return SIZE_MAX;
    return hl + (size_t)len;
}

/* Grows a per-connection buffer to at least need bytes. 0, or -1. */
static int s_reserve(uint8_t **buf, uint32_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 4096;
    while (nc < need)
        nc *= 2;
    uint8_t *nb = realloc(*buf, nc);
    if (!nb)
        return -1;
    *buf = nb;
    *cap = (uint32_t)nc;
    return 0;
}

/* Handles the whole frame f[0..total) (f is writable: a masked frame is
 * unmasked in place). A fragmented message is reassembled in c->msg. The
 * rules are those of proto/ws.c for a client: no RSV bits, control frames
 * whole and at most 125 bytes, continuations only inside a message, a text
 * message valid UTF-8, a message at most LG_MAX_MESSAGE. Ping and pong are
 * ignored, close ends the connection. Returns -1 when it was closed. */
static int s_frame(conn_t *c, uint8_t *f, size_t total)
{
    size_t hl = s_frame_hlen(f), plen = total - hl;
    int fin = f[0] & 0x80, op = f[0] & 0x0F;
    uint8_t *p = f + hl;
    if (f[0] & 0x70)
        goto bad;
    if (f[1] & 0x80) {
        const uint8_t *m = f + hl - 4;
        for (size_t i = 0; i < plen; i++)
            p[i] ^= m[i & 3];
    }
    if (op & 0x08) {
        if (!fin || plen > 125 || op == WS_OP_CLOSE || (op != WS_OP_PING && op != WS_OP_PONG))
            goto bad;
        return 0;
    }
    if (op == WS_OP_CONT) {
        if (!c->msg_op || (size_t)c->msg_len + plen > LG_MAX_MESSAGE ||
            s_reserve(&c->msg, &c->msg_cap, c->msg_len + plen) < 0)
            goto bad;
        memcpy(c->msg + c->msg_len, p, plen);
        c->msg_len += (uint32_t)plen;
        if (!fin)
            return 0;
        op = c->msg_op;
        p = c->msg;
        plen = c->msg_len;
        c->msg_op = 0;
        c->msg_len = 0;
    } else if (op == WS_OP_TEXT || op == WS_OP_BINARY) {
        if (c->msg_op)
            goto bad;
        if (!fin) {
            if (s_reserve(&c->msg, &c->msg_cap, plen) < 0)
                goto bad;
            memcpy(c->msg, p, plen);
            c->msg_len = (uint32_t)plen;
            c->msg_op = (uint8_t)op;
            return 0;
        }
    } else {
        goto bad;
    }
    if (op != WS_OP_TEXT)
        return 0;
    if (!s_utf8_ok(p, plen))
        goto bad;
    return s_on_text(c, (const char *)p, plen);
bad:
    s_conn_close(c, c->state != ST_READY, 0);
    return -1;
}

/* The response head h[0..hl) is whole: it must be a 101. 0, or -1 (closed). */
static int s_head_done(conn_t *c, const uint8_t *h, size_t hl)
{
    if (hl < 12 || memcmp(h + 9, "101", 3) != 0) {
        s_conn_close(c, 1, 0);
        return -1;
    }
    c->state = ST_OPEN_WAIT;
    return 0;
}

/* Keeps the start of a head or frame cut by the end of a read. */
static int s_stash(conn_t *c, const uint8_t *p, size_t n)
{
    if (s_reserve(&c->pend, &c->pend_cap, n) < 0) {
        s_conn_close(c, c->state != ST_READY, 0);
        return -1;
    }
    memcpy(c->pend, p, n);
    c->pend_len = (uint32_t)n;
    return 0;
}

/* Completes the head or frame kept in c->pend with bytes from *p. 0 (done
 * or still incomplete: *n is then 0), or -1 (closed). */
static int s_feed_pending(conn_t *c, uint8_t **p, size_t *n)
{
    if (c->state == ST_HEAD) {
        size_t old = c->pend_len, take = *n < LG_HEAD_MAX - old ? *n : LG_HEAD_MAX - old;
        if (s_reserve(&c->pend, &c->pend_cap, LG_HEAD_MAX) < 0)
            goto bad_failed;
        memcpy(c->pend + old, *p, take);
        c->pend_len += (uint32_t)take;
        size_t from = old > 3 ? old - 3 : 0;
        const uint8_t *e = memmem(c->pend + from, c->pend_len - from, "\r\n\r\n", 4);
        if (!e) {
            if (c->pend_len == LG_HEAD_MAX)
                goto bad_failed;
            *n = 0;
            return 0;
        }
        size_t hl = (size_t)(e - c->pend) + 4;
        c->pend_len = 0;
        if (s_head_done(c, c->pend, hl) < 0)
            return -1;
        *p += hl - old;
        *n -= hl - old;
        return 0;
    }
    size_t need;
    while ((need = s_frame_need(c->pend, c->pend_len)) > c->pend_len) {
        if (need == SIZE_MAX) {
            s_conn_close(c, c->state != ST_READY, 0);
            return -1;
        }
        if (*n == 0)
            return 0;
        size_t take = need - c->pend_len < *n ? need - c->pend_len : *n;
        if (s_reserve(&c->pend, &c->pend_cap, need) < 0) {
            s_conn_close(c, c->state != ST_READY, 0);
            return -1;
        }
        memcpy(c->pend + c->pend_len, *p, take);
        c->pend_len += (uint32_t)take;
        *p += take;
        *n -= take;
    }
    c->pend_len = 0;
    return s_frame(c, c->pend, need);
bad_failed:
    s_conn_close(c, 1, 0);
    return -1;
}

/* Consumes the bytes of one read, in place. -1 when the connection was closed. */
static int s_feed(conn_t *c, uint8_t *p, size_t n)
{
    if (c->pend_len && s_feed_pending(c, &p, &n) < 0)
        return -1;
    while (n) {
        if (c->state == ST_HEAD) {
            const uint8_t *e = memmem(p, n < LG_HEAD_MAX ? n : LG_HEAD_MAX, "\r\n\r\n", 4);
            if (!e) {
                if (n >= LG_HEAD_MAX) {
                    s_conn_close(c, 1, 0);
                    return -1;
                }
                return s_stash(c, p, n);
            }
            size_t hl = (size_t)(e - p) + 4;
            if (s_head_done(c, p, hl) < 0)
                return -1;
            p += hl;
            n -= hl;
            continue;
        }
        size_t need = s_frame_need(p, n);
        if (need == SIZE_MAX) {
            s_conn_close(c, c->state != ST_READY, 0);
            return -1;
        }
        if (need > n)
            return s_stash(c, p, n);
        if (s_frame(c, p, need) < 0)
            return -1;
        p += need;
        n -= need;
    }
    return 0;
}

/* Reads until the socket is drained (a short read: edge-triggered, the next
 * arrival raises a new event) or LG_READ_ROUNDS full buffers were taken; in
 * that case the connection goes on the "read again" list so that one busy
 * connection cannot starve the others. */
static void s_conn_read(conn_t *c)
{
    worker_t *w = &g_w;
    for (int rounds = 0;; rounds++) {
        if (rounds == LG_READ_ROUNDS) {
            if (!c->queued) {
                c->queued = 1;
                w->again[w->n_again++] = (int)(c - w->conns);
            }
            return;
        }
        ssize_t n = read(c->fd, g_rdbuf, sizeof g_rdbuf);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            s_conn_close(c, c->state != ST_READY, 0);
            return;
        }
        w->now = s_now_us();
        if (s_feed(c, g_rdbuf, (size_t)n) < 0)
            return;
        if ((size_t)n < sizeof g_rdbuf)
            return;
    }
}

/* One epoll event of a live connection. */
static void s_conn_event(conn_t *c, uint32_t ev)
{
    if (c->state == ST_CONNECTING) {
        if (ev & (EPOLLERR | EPOLLHUP)) {
            s_conn_close(c, 1, 0);
            return;
        }
        if (!(ev & EPOLLOUT))
            return;
        /* Connected (a failed connect shows as EPOLLERR, or fails this write). */
        int t = s_conn_index(c) % g_ndst;
        c->state = ST_HEAD;
        if (s_conn_send(c, g_req[t], g_req_len[t]) < 0)
            return;
    } else if ((ev & EPOLLOUT) && c->out_len && s_conn_flush(c) < 0) {
        return;
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))
        s_conn_read(c);
}

/* ---- the worker ------------------------------------------------------------ */

static void s_send_report(worker_t *w, int type)
{
    w->r.type = type;
    size_t len = type == MSG_FINAL ? sizeof w->r : LG_HDR_SIZE;
    const char *p = (const char *)&w->r;
    while (len) {
        ssize_t k = write(w->pipe_fd, p, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            _exit(3);   /* the parent is gone */
        p += k;
        len -= (size_t)k;
    }
}

/* Opens connections of the current phase while fewer than --inflight are
 * pending, and notices when a phase is over. Called once per loop turn, so
 * a finished handshake makes room for the next one in the same turn. */
static void s_open_more(worker_t *w)
{
    int storm = w->phase == 2;
    if (w->phase != 0 && w->phase != 2)
        return;
    while (w->next < w->n && w->inflight < o_inflight) {
        conn_t *c = &w->conns[w->next++];
        if (!storm || c->stormed)
            s_conn_start(c, storm);
    }
    if (w->next == w->n && w->inflight == 0) {
        if (w->phase == 0) {
            w->phase = 1;
            w->r.phase_done = 1;
        } else {
            w->phase = 3;
            w->r.storm_done = 1;
        }
    }
}

/* Drops every connected session at once and reconnects them all. */
static void s_on_storm(worker_t *w)
{
    if (w->phase != 1)
        return;
    w->r.t_storm_start = s_now_us();
    for (int i = 0; i < w->n; i++) {
        conn_t *c = &w->conns[i];
        if (c->state == ST_READY) {
            s_conn_close(c, 0, 1);
            c->stormed = 1;
        }
    }
    w->phase = 2;
    w->next = 0;
    s_open_more(w);
}

/* Drains the signalfd: SIGUSR1 stops the loop, SIGUSR2 starts the storm. */
static void s_on_signals(worker_t *w)
{
    struct signalfd_siginfo si;
    while (read(w->sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGUSR1)
            w->stop = 1;
        else if (si.ssi_signo == SIGUSR2)
            s_on_storm(w);
    }
}

/* Reads the connections that had more bytes than LG_READ_ROUNDS buffers. */
static void s_read_again(worker_t *w, int *run)
{
    int k = w->n_again;
    memcpy(run, w->again, (size_t)k * sizeof *run);
    w->n_again = 0;
    for (int i = 0; i < k; i++) {
        conn_t *c = &w->conns[run[i]];
        c->queued = 0;
        if (c->fd >= 0 && c->state != ST_CONNECTING && c->state != ST_CLOSED)
            s_conn_read(c);
    }
}

/* HMAC-SHA256 with the key schedule done once: ipad/opad hold the hashes
 * of the padded key blocks, tmp is scratch. 0, or -1. */
static int s_hmac(EVP_MD_CTX *ipad, EVP_MD_CTX *opad, EVP_MD_CTX *tmp,
                  const void *data, size_t n, unsigned char md[32])
{
    unsigned char inner[32];
    unsigned int l1 = 0, l2 = 0;
    if (!EVP_MD_CTX_copy_ex(tmp, ipad) || !EVP_DigestUpdate(tmp, data, n) ||
        !EVP_DigestFinal_ex(tmp, inner, &l1) || !EVP_MD_CTX_copy_ex(tmp, opad) ||
        !EVP_DigestUpdate(tmp, inner, sizeof inner) || !EVP_DigestFinal_ex(tmp, md, &l2) ||
        l1 != 32 || l2 != 32)
        return -1;
    return 0;
}

/* The HMAC key schedule (RFC 2104): ipad and opad absorb the padded key
 * blocks once. 0, or -1. */
static int s_hmac_key(EVP_MD_CTX *ipad, EVP_MD_CTX *opad, const char *key, size_t klen)
{
    unsigned char k[64], pad[64];
    unsigned int kl = 0;
    memset(k, 0, sizeof k);
    if (klen > sizeof k) {
        if (!EVP_Digest(key, klen, k, &kl, EVP_sha256(), NULL))
            return -1;
    } else {
        memcpy(k, key, klen);
    }
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = k[i] ^ 0x36;
    if (!EVP_DigestInit_ex(ipad, EVP_sha256(), NULL) || !EVP_DigestUpdate(ipad, pad, sizeof pad))
        return -1;
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = k[i] ^ 0x5c;
    if (!EVP_DigestInit_ex(opad, EVP_sha256(), NULL) || !EVP_DigestUpdate(opad, pad, sizeof pad))
        return -1;
    return 0;
}

/* Signs every connection's token (HS256, the claims sub, iat, exp) before
 * the first connection starts, so that no signing happens while handshakes
 * are timed. The first token is checked against jwt_sign_hs256, which the
 * gateway's verifier is tested with. 0, or -1 with a message on stderr. */
static int s_sign_tokens(worker_t *w)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    size_t klen = strlen(o_secret);
    EVP_MD_CTX *ipad = EVP_MD_CTX_new(), *opad = EVP_MD_CTX_new(), *tmp = EVP_MD_CTX_new();
    int rc = -1;
    char hdr64[64];
    size_t h64 = b64url_encode(header, sizeof header - 1, hdr64);
    const int64_t now_s = s_now_us() / 1000000;
    if (!ipad || !opad || !tmp || s_hmac_key(ipad, opad, o_secret, klen) < 0)
        goto done;
    for (int i = 0; i < w->n; i++) {
        conn_t *c = &w->conns[i];
        char claims[128];
        long sub = o_user_base + (s_conn_index(c) % o_users);
        int cl = snprintf(claims, sizeof claims, "{\"sub\":\"%ld\",\"iat\":%lld,\"exp\":%lld}",
                          sub, (long long)now_s, (long long)(now_s + 86400));
        if (cl < 0 || (size_t)cl >= sizeof claims ||
            h64 + 1 + b64url_encoded_len((size_t)cl) + 1 + b64url_encoded_len(32) + 1 > LG_TOKEN_MAX)
            goto done;
        char *t = w->tokens + (size_t)i * LG_TOKEN_MAX;
        unsigned char md[32];
        size_t o = h64;
        memcpy(t, hdr64, h64);
        t[o++] = '.';
        o += b64url_encode(claims, (size_t)cl, t + o);
        if (s_hmac(ipad, opad, tmp, t, o, md) < 0)
            goto done;
        t[o++] = '.';
        o += b64url_encode(md, sizeof md, t + o);
        t[o] = '\0';
        c->token = t;
        c->token_len = (uint16_t)o;
        if (i == 0) {
            char subs[32];
            snprintf(subs, sizeof subs, "%ld", sub);
            json_t *j = json_pack("{s:s, s:I, s:I}", "sub", subs, "iat", (json_int_t)now_s,
                                  "exp", (json_int_t)(now_s + 86400));
            char *ref = j ? jwt_sign_hs256(o_secret, klen, j) : NULL;
            int same = ref && strcmp(ref, t) == 0;
            free(ref);
            json_decref(j);
            if (!same) {
                fprintf(stderr, "loadgen: token signing self-check failed\n");
                goto done;
            }
        }
    }
    rc = 0;
done:
    EVP_MD_CTX_free(ipad);
    EVP_MD_CTX_free(opad);
    EVP_MD_CTX_free(tmp);
    return rc;
}

/* The HTTP upgrade request of every target, built once. */
static int s_build_requests(void)
{
    for (int t = 0; t < g_ndst; t++) {
        char host[32];
        inet_ntop(AF_INET, &g_dst[t].sin_addr, host, sizeof host);
        int n = snprintf(g_req[t], sizeof g_req[t],
                         "GET %s?EIO=4&transport=websocket HTTP/1.1\r\n"
                         "Host: %s:%u\r\n"
                         "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n",
                         o_path, host, (unsigned)ntohs(g_dst[t].sin_port));
        if (n < 0 || (size_t)n >= sizeof g_req[t])
            return -1;
        g_req_len[t] = (size_t)n;
    }
    return 0;
}

/* A worker process: connections first .. first+n-1, one epoll loop until
 * SIGUSR1, its deadline or an epoll failure; then the final report on
 * pipe_fd and _exit (never returns). */
static int s_worker(int widx, int first, int n, int pipe_fd)
{
    worker_t *w = &g_w;
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGUSR1);
    sigaddset(&ss, SIGUSR2);
    sigprocmask(SIG_BLOCK, &ss, NULL);
    memset(w, 0, sizeof *w);
    w->pipe_fd = pipe_fd;
    w->first = first;
    w->n = n;
    w->deadline = s_now_us() + (o_duration + 15) * 1000000LL;
    w->rng = (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL ^ (uint64_t)widx ^ (uint64_t)s_now_us();
    if (!w->rng)
        w->rng = 1;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        _exit(3);
    signal(SIGPIPE, SIG_IGN);
    size_t nn = (size_t)(n > 0 ? n : 1);
    w->conns = calloc(nn, sizeof *w->conns);
    w->again = calloc(2 * nn, sizeof *w->again);
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->sig_fd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
    if (!w->conns || !w->again || w->ep < 0 || w->sig_fd < 0 || s_build_requests() < 0)
        _exit(4);
    struct epoll_event sev;
    memset(&sev, 0, sizeof sev);
    sev.events = EPOLLIN;
    sev.data.u64 = LG_SIG_KEY;
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->sig_fd, &sev) < 0)
        _exit(4);
    for (int i = 0; i < n; i++) {
        w->conns[i].fd = -1;
        w->conns[i].state = ST_IDLE;
    }
    if (o_secret && *o_secret) {
        w->tokens = malloc(nn * LG_TOKEN_MAX);
        if (!w->tokens || s_sign_tokens(w) < 0)
            _exit(4);
    }

    struct epoll_event evs[LG_EVENTS];
    int64_t next_tick = s_now_us() + LG_TICK_US;
    s_open_more(w);
    while (!w->stop) {
        int timeout = 0;
        if (!w->n_again) {
            int64_t left = next_tick - s_now_us();
            timeout = left > 0 ? (int)((left + 999) / 1000) : 0;
        }
        int k = epoll_wait(w->ep, evs, LG_EVENTS, timeout);
        if (k < 0 && errno != EINTR)
            break;
        for (int i = 0; i < k; i++) {
            uint64_t key = evs[i].data.u64;
            if (key == LG_SIG_KEY) {
                s_on_signals(w);
                continue;
            }
            uint32_t li = (uint32_t)key;
            conn_t *c = li < (uint32_t)n ? &w->conns[li] : NULL;
            if (c && c->gen == (uint32_t)(key >> 32) && c->fd >= 0)
                s_conn_event(c, evs[i].events);
        }
        if (w->n_again)
            s_read_again(w, w->again + nn);
        s_open_more(w);
        int64_t now = s_now_us();
        if (now >= next_tick) {
            s_send_report(w, MSG_PROGRESS);
            if (now > w->deadline)
                break;
            next_tick = now + LG_TICK_US;
        }
    }

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    w->r.cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    s_send_report(w, MSG_FINAL);
    /* Exit without closing: the kernel closes every socket at once. */
    _exit(0);
}

/* ---- the parent ------------------------------------------------------------ */

static void s_parent_sig(int sig)
{
    (void)sig;
    g_parent_stop = 1;
}

static int s_read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len) {
        ssize_t k = read(fd, p, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

static void s_write_ready(uint64_t connected, uint64_t failed)
{
    if (!o_ready_file || !*o_ready_file)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", o_ready_file);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "connected=%llu failed=%llu\n", (unsigned long long)connected,
            (unsigned long long)failed);
    fclose(f);
    rename(tmp, o_ready_file);
}

static double s_sec(int64_t a, int64_t b)
{
    return b > a ? (double)(b - a) / 1e6 : 0.0;
}

int main(int argc, char **argv)
{
    const cfg_opt_t opts[] = {
        { "target", NULL, CFG_STR, &o_target, "127.0.0.1:8080",
          "gateway address(es) ip:port, comma-separated (connections alternate)", 0, 0 },
        { "path", NULL, CFG_STR, &o_path, "/socket.io/", "Engine.IO path", 0, 0 },
        { "connections", NULL, CFG_INT, &o_conns, "100", "connections to open", 1, 10000000 },
        { "max-connections", NULL, CFG_INT, &o_max_conns, "200000",
          "refuse to open more than this many", 1, 10000000 },
        { "procs", NULL, CFG_INT, &o_procs, "1", "worker processes", 1, LG_MAX_PROCS },
        { "src-addrs", NULL, CFG_STR, &o_src, "127.0.0.1",
          "source addresses, e.g. 127.0.0.2-127.0.0.20 (bound before connect)", 0, 0 },
        { "jwt-secret", NULL, CFG_STR, &o_secret, NULL,
          "HS256 secret; without it CONNECT carries no auth", 0, 0 },
        { "user-base", NULL, CFG_INT, &o_user_base, "1", "first user id (sub)", 0, 1000000000 },
        { "users", NULL, CFG_INT, &o_users, "0",
          "user ids user-base .. user-base+users-1, round robin (0: one per connection)", 0, 10000000 },
        { "nsp", NULL, CFG_STR, &o_nsp, "/", "Socket.IO namespace", 0, 0 },
        { "mode", NULL, CFG_STR, &o_mode, "hold", "hold | connect | storm", 0, 0 },
        { "duration", NULL, CFG_INT, &o_duration, "60", "hard limit of the run, seconds", 1, 3600 },
        { "inflight", NULL, CFG_INT, &o_inflight, "256",
          "handshakes in flight at once per process", 1, 100000 },
        { "expect", NULL, CFG_INT, &o_expect, "0",
          "stop when this many messages have arrived (0: no)", 0, 1000000000000L },
        { "idle-ms", NULL, CFG_INT, &o_idle_ms, "0",
          "stop when no message arrived for this long after the first (0: no)", 0, 3600000 },
        { "storm-wait-ms", NULL, CFG_INT, &o_storm_wait_ms, "1000",
          "storm: hold the connections this long before dropping them", 0, 600000 },
        { "storm-after", NULL, CFG_INT, &o_storm_after, "0",
          "storm: and until this many messages have arrived in all (each gives its client a recovery offset)",
          0, 1000000000 },
        { "ready-file", NULL, CFG_STR, &o_ready_file, NULL,
          "write connected=N failed=M here when the connect phase is over", 0, 0 },
    };
    int rc = cfg_parse(opts, sizeof opts / sizeof opts[0], argc, argv, "loadgen",
                       "Socket.IO-over-WebSocket load generator (one JSON result on stdout)");
    if (rc)
        return rc > 0 ? 0 : 2;
    if (strcmp(o_mode, "hold") == 0)
        g_mode = MODE_HOLD;
    else if (strcmp(o_mode, "connect") == 0)
        g_mode = MODE_CONNECT;
    else if (strcmp(o_mode, "storm") == 0)
        g_mode = MODE_STORM;
    else {
        fprintf(stderr, "loadgen: --mode must be hold, connect or storm\n");
        return 2;
    }
    if (s_parse_targets(o_target) < 0 || s_parse_srcs(o_src) < 0) {
        fprintf(stderr, "loadgen: bad --target or --src-addrs\n");
        return 2;
    }
    if (o_conns > o_max_conns) {
        fprintf(stderr, "loadgen: --connections %ld exceeds --max-connections %ld\n",
                o_conns, o_max_conns);
        return 2;
    }
    if (o_nsp[0] != '/' || strlen(o_nsp) >= sizeof g_nsp || strchr(o_nsp, ',') ||
        strchr(o_nsp, '"')) {
        fprintf(stderr, "loadgen: bad --nsp\n");
        return 2;
    }
    strcpy(g_nsp, o_nsp);
    if (o_users == 0)
        o_users = o_conns;
    if (o_procs > o_conns)
        o_procs = o_conns;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        long per = (o_conns + o_procs - 1) / o_procs;
        if ((rlim_t)per + 64 > rl.rlim_cur) {
            fprintf(stderr, "loadgen: %ld connections per process exceed the open-file limit %llu; "
                    "use more --procs\n", per, (unsigned long long)rl.rlim_cur);
            return 2;
        }
    }

    int np = (int)o_procs;
    pid_t pids[LG_MAX_PROCS];
    int fds[LG_MAX_PROCS];
    lg_report_t *rep = calloc((size_t)np, sizeof *rep);
    int got_final[LG_MAX_PROCS] = { 0 };
    if (!rep)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    /* Workers take SIGUSR1/SIGUSR2 from a signalfd: blocked from their first
     * instruction on, so an early one is queued instead of killing them. */
    sigset_t usr;
    sigemptyset(&usr);
    sigaddset(&usr, SIGUSR1);
    sigaddset(&usr, SIGUSR2);
    sigprocmask(SIG_BLOCK, &usr, NULL);
    signal(SIGTERM, s_parent_sig);
    signal(SIGINT, s_parent_sig);
    fflush(NULL);
    int64_t t0 = s_now_us();
    for (int i = 0; i < np; i++) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) {
            perror("loadgen: pipe");
            return 1;
        }
        int first = (int)(o_conns * i / np), last = (int)(o_conns * (i + 1) / np);
        pid_t pid = fork();
        if (pid < 0) {
            perror("loadgen: fork");
            return 1;
        }
        if (pid == 0) {
            close(p[0]);
            for (int j = 0; j < i; j++)
                close(fds[j]);
            signal(SIGTERM, SIG_DFL);
            signal(SIGINT, SIG_DFL);
            s_worker(i, first, last - first, p[1]);
        }
        close(p[1]);
        pids[i] = pid;
        fds[i] = p[0];
    }

    int ready_written = 0, storm_sent = 0, stopping = 0;
    int64_t phase_done_at = 0, stop_at = 0, last_msg_change = 0;
    uint64_t last_msgs = 0;
    const char *end_reason = "duration";
    for (;;) {
        struct pollfd pf[LG_MAX_PROCS];
        int nfinal = 0;
        for (int i = 0; i < np; i++) {
            pf[i].fd = got_final[i] ? -1 : fds[i];
            pf[i].events = POLLIN;
            nfinal += got_final[i];
        }
        if (nfinal == np)
            break;
        int k = poll(pf, (nfds_t)(np > 0 && np <= LG_MAX_PROCS ? np : 0), 50);
        for (int i = 0; k > 0 && i < np; i++) {
            if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            lg_report_t tmp;
            if (s_read_full(fds[i], &tmp, LG_HDR_SIZE) < 0) {
                got_final[i] = 1;   /* died: keep what we have */
                continue;
            }
            if (tmp.type == MSG_FINAL) {
                if (s_read_full(fds[i], tmp.hist, sizeof tmp.hist) < 0) {
                    got_final[i] = 1;
                    continue;
                }
                got_final[i] = 1;
            }
            rep[i] = tmp;
        }
        int64_t now = s_now_us();
        uint64_t msgs = 0, connected = 0, failed = 0;
        int all_phase = 1, all_storm = 1;
        for (int i = 0; i < np; i++) {
            msgs += rep[i].messages;
            connected += rep[i].connected;
            failed += rep[i].failed;
            all_phase &= rep[i].phase_done;
            all_storm &= rep[i].storm_done;
        }
        if (msgs != last_msgs) {
            last_msgs = msgs;
            last_msg_change = now;
        }
        if (all_phase && !phase_done_at) {
            phase_done_at = now;
            fprintf(stderr, "loadgen: connect phase over: connected=%llu failed=%llu in %.2f s\n",
                    (unsigned long long)connected, (unsigned long long)failed, s_sec(t0, now));
        }
        if (all_phase && !ready_written) {
            s_write_ready(connected, failed);
            ready_written = 1;
        }
        if (!stopping) {
            if (g_parent_stop)
                end_reason = "signal", stopping = 1;
            else if (now - t0 > o_duration * 1000000LL)
                end_reason = "duration", stopping = 1;
            else if (o_expect && msgs >= (uint64_t)o_expect)
                end_reason = "expect", stopping = 1;
            else if (o_idle_ms && msgs && now - last_msg_change > o_idle_ms * 1000LL)
                end_reason = "idle", stopping = 1;
            else if (g_mode == MODE_CONNECT && all_phase)
                end_reason = "connected", stopping = 1;
            else if (g_mode == MODE_STORM && storm_sent && all_storm)
                end_reason = "storm_done", stopping = 1;
            if (g_mode == MODE_STORM && !storm_sent && phase_done_at &&
                now - phase_done_at >= o_storm_wait_ms * 1000LL && msgs >= (uint64_t)o_storm_after) {
                for (int i = 0; i < np; i++)
                    kill(pids[i], SIGUSR2);
                storm_sent = 1;
            }
            if (stopping) {
                stop_at = now;
                for (int i = 0; i < np; i++)
                    if (!got_final[i])
                        kill(pids[i], SIGUSR1);
            }
        } else if (now - stop_at > 10000000LL) {
            for (int i = 0; i < np; i++)
                if (!got_final[i]) {
                    kill(pids[i], SIGKILL);
                    got_final[i] = 1;
                }
        }
    }
    for (int i = 0; i < np; i++)
        waitpid(pids[i], NULL, 0);

    /* Aggregate. */
    lg_report_t a;
    memset(&a, 0, sizeof a);
    int64_t first_start = 0, first_msg = 0, storm_start = 0;
    for (int i = 0; i < np; i++) {
        lg_report_t *r = &rep[i];
        a.connected += r->connected;
        a.handshakes += r->handshakes;
        a.failed += r->failed;
        a.dropped += r->dropped;
        a.messages += r->messages;
        a.lost += r->lost;
        a.dups += r->dups;
        a.no_ts += r->no_ts;
        a.storm_reconnected += r->storm_reconnected;
        a.storm_recovered += r->storm_recovered;
        a.storm_failed += r->storm_failed;
        a.lat_sum += r->lat_sum;
        a.cpu_s += r->cpu_s;
        if (r->lat_max > a.lat_max)
            a.lat_max = r->lat_max;
        if (r->t_first_start && (!first_start || r->t_first_start < first_start))
            first_start = r->t_first_start;
        if (r->t_last_hs > a.t_last_hs)
            a.t_last_hs = r->t_last_hs;
        if (r->t_first_msg && (!first_msg || r->t_first_msg < first_msg))
            first_msg = r->t_first_msg;
        if (r->t_last_msg > a.t_last_msg)
            a.t_last_msg = r->t_last_msg;
        if (r->t_storm_start && (!storm_start || r->t_storm_start < storm_start))
            storm_start = r->t_storm_start;
        if (r->t_storm_end > a.t_storm_end)
            a.t_storm_end = r->t_storm_end;
        for (unsigned b = 0; b < H_BUCKETS; b++)
            a.hist[b] += r->hist[b];
    }
    uint64_t lat_n = a.messages - a.no_ts;
    double hs_s = s_sec(first_start, a.t_last_hs), msg_s = s_sec(first_msg, a.t_last_msg);
    double storm_s = s_sec(storm_start, a.t_storm_end);
    int all_final = 1;
    for (int i = 0; i < np; i++)
        all_final &= rep[i].type == MSG_FINAL;
    printf("{\"mode\":\"%s\",\"end\":\"%s\",\"procs\":%d,\"all_reported\":%s,"
           "\"connections\":%ld,\"handshakes\":%llu,\"connected\":%llu,\"failed\":%llu,"
           "\"dropped\":%llu,\"connect_seconds\":%.3f,\"handshakes_per_s\":%.1f,"
           "\"messages\":%llu,\"lost\":%llu,\"dups\":%llu,\"no_ts\":%llu,"
           "\"message_seconds\":%.3f,\"deliveries_per_s\":%.1f,"
           "\"latency_us\":{\"count\":%llu,\"mean\":%.1f,\"p50\":%llu,\"p90\":%llu,"
           "\"p99\":%llu,\"p999\":%llu,\"max\":%llu},"
           "\"storm\":{\"reconnected\":%llu,\"recovered\":%llu,\"failed\":%llu,"
           "\"seconds\":%.3f,\"per_s\":%.1f},"
           "\"t_first_msg_us\":%lld,\"t_last_msg_us\":%lld,"
           "\"cpu_s\":%.3f,\"wall_s\":%.3f}\n",
           o_mode, end_reason, np, all_final ? "true" : "false",
           o_conns, (unsigned long long)a.handshakes, (unsigned long long)a.connected,
           (unsigned long long)a.failed, (unsigned long long)a.dropped, hs_s,
           hs_s > 0 ? (double)a.handshakes / hs_s : 0.0,
           (unsigned long long)a.messages, (unsigned long long)a.lost,
           (unsigned long long)a.dups, (unsigned long long)a.no_ts, msg_s,
           msg_s > 0 ? (double)a.messages / msg_s : 0.0,
           (unsigned long long)lat_n, lat_n ? (double)a.lat_sum / (double)lat_n : 0.0,
           (unsigned long long)s_percentile(a.hist, lat_n, 0.50, a.lat_max),
           (unsigned long long)s_percentile(a.hist, lat_n, 0.90, a.lat_max),
           (unsigned long long)s_percentile(a.hist, lat_n, 0.99, a.lat_max),
           (unsigned long long)s_percentile(a.hist, lat_n, 0.999, a.lat_max),
           (unsigned long long)a.lat_max,
           (unsigned long long)a.storm_reconnected, (unsigned long long)a.storm_recovered,
           (unsigned long long)a.storm_failed, storm_s,
           storm_s > 0 ? (double)a.storm_reconnected / storm_s : 0.0,
           (long long)first_msg, (long long)a.t_last_msg,
           a.cpu_s, s_sec(t0, s_now_us()));
    free(rep);
    return all_final ? 0 : 1;
}
