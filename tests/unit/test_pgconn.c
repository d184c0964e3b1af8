/* Unit tests for broker/pgconn.c against a scripted PostgreSQL server on
 * loopback (the v3 protocol's startup, simple query, error, NOTIFY and
 * close, as libpq sees them), on one libevent loop: connect, results,
 * notifications, connection loss and reconnect, backoff, the connect
 * timeout, stopping, and the log lines operators grep. */
#include "../../broker/pgconn.c"

#include "test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

/* ---- the scripted server ------------------------------------------------ */

typedef enum { SRV_OK = 0, SRV_ERROR, SRV_SILENT } srv_mode_t;

static struct {
    struct evconnlistener *l;
    uint16_t port;
    srv_mode_t mode;            /* answer to a query */
    int accepts;                /* connections accepted */
    int queries;                /* 'Q' messages received */
    char last_query[256];
    struct bufferevent *bev;    /* the newest connection */
    int started;                /* its startup packet was answered */
} s_srv;

static void s_put_msg(struct evbuffer *o, char type, const void *body, uint32_t n)
{
    uint32_t len = htonl(n + 4);
    evbuffer_add(o, &type, 1);
    evbuffer_add(o, &len, 4);
    if (n)
        evbuffer_add(o, body, n);
}

static void s_ready(struct evbuffer *o)
{
    s_put_msg(o, 'Z', "I", 1);
}

static void s_srv_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev), *out = bufferevent_get_output(bev);
    for (;;) {
        size_t have = evbuffer_get_length(in);
        if (bev != s_srv.bev || !s_srv.started) {
            uint32_t len;
            if (have < 4 || evbuffer_copyout(in, &len, 4) != 4)
                return;
            len = ntohl(len);
            if (have < len)
                return;
            evbuffer_drain(in, len);
            s_srv.started = 1;
            uint32_t ok = 0;    /* AuthenticationOk */
            s_put_msg(out, 'R', &ok, 4);
            s_ready(out);
            continue;
        }
        unsigned char head[5];
        if (have < 5 || evbuffer_copyout(in, head, 5) != 5)
            return;
        uint32_t len;
        memcpy(&len, head + 1, 4);
        len = ntohl(len);
        if (have < 1 + (size_t)len)
            return;
        evbuffer_drain(in, 5);
        char body[256] = "";
        size_t blen = len - 4;
        size_t keep = blen < sizeof body - 1 ? blen : sizeof body - 1;
        evbuffer_remove(in, body, keep);
        evbuffer_drain(in, blen - keep);
        if (head[0] == 'P') {   /* extended protocol: Parse (name, query, ...) */
            s_srv.queries++;
            snprintf(s_srv.last_query, sizeof s_srv.last_query, "%s", body + strlen(body) + 1);
            continue;
        }
        if (head[0] == 'Q') {   /* simple query */
            s_srv.queries++;
            snprintf(s_srv.last_query, sizeof s_srv.last_query, "%s", body);
        } else if (head[0] != 'S') {
            continue;           /* Bind, Describe, Execute: answered at Sync */
        }
        if (s_srv.mode == SRV_OK) {
            if (head[0] == 'S') {
                s_put_msg(out, '1', NULL, 0);   /* ParseComplete */
                s_put_msg(out, '2', NULL, 0);   /* BindComplete */
                s_put_msg(out, 'n', NULL, 0);   /* NoData */
            }
            s_put_msg(out, 'C', "SET", 4);
            s_ready(out);
        } else if (s_srv.mode == SRV_ERROR) {
            static const char err[] = "SERROR\0C42000\0Mboom\0";
            s_put_msg(out, 'E', err, sizeof err);   /* ends with the closing NUL */
            s_ready(out);
        }
    }
}

static void s_srv_event(struct bufferevent *bev, short what, void *arg)
{
    (void)what;
    (void)arg;
    if (bev == s_srv.bev)
        s_srv.bev = NULL;
    bufferevent_free(bev);
}

static void s_srv_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                         int salen, void *arg)
{
    (void)sa;
    (void)salen;
    (void)arg;
    struct bufferevent *bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
                                                     BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        return;
    if (s_srv.bev)
        bufferevent_free(s_srv.bev);    /* one client at a time */
    s_srv.bev = bev;
    s_srv.started = 0;
    s_srv.accepts++;
    bufferevent_setcb(bev, s_srv_read, NULL, s_srv_event, NULL);
    bufferevent_enable(bev, EV_READ);
}

/* Sends a NotificationResponse on the open connection. */
static void s_srv_notify(void)
{
    char body[64];
    uint32_t pid = htonl(42);
    memcpy(body, &pid, 4);
    memcpy(body + 4, "chan\0\0", 6);
    s_put_msg(bufferevent_get_output(s_srv.bev), 'A', body, 10);
}

/* Drops the open connection (as a crashed or restarted server would). */
static void s_srv_drop(void)
{
    if (s_srv.bev) {
        bufferevent_free(s_srv.bev);
        s_srv.bev = NULL;
    }
}

static int s_srv_start(struct event_base *base)
{
    memset(&s_srv, 0, sizeof s_srv);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s_srv.l = evconnlistener_new_bind(base, s_srv_accept, NULL,
                                      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                      (struct sockaddr *)&sin, sizeof sin);
    if (!s_srv.l)
        return -1;
    struct sockaddr_in got;
    socklen_t gl = sizeof got;
    getsockname(evconnlistener_get_fd(s_srv.l), (struct sockaddr *)&got, &gl);
    s_srv.port = ntohs(got.sin_port);
    return 0;
}

static void s_srv_stop(void)
{
    s_srv_drop();
    if (s_srv.l)
        evconnlistener_free(s_srv.l);
    s_srv.l = NULL;
}

/* A loopback port where nothing listens (bound, then closed). */
static uint16_t s_dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sin;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &sl) < 0) {
        if (fd >= 0)
            close(fd);
        return 1;
    }
    close(fd);
    return ntohs(sin.sin_port);
}

/* ---- the owner --------------------------------------------------------- */

static struct {
    int ups, downs, dones, notifies;
    int nres, overflow;
    ExecStatusType status;      /* of res[0] */
    char err[128];              /* primary message of res[0] */
    const char *send_on_up;     /* sent from on_up, if set */
    pgconn_t *pc;
} s_own;

static void s_on_up(void *ctx)
{
    (void)ctx;
    s_own.ups++;
    if (s_own.send_on_up)
        pgconn_send(s_own.pc, s_own.send_on_up);
}

static void s_on_done(void *ctx, PGresult *const *res, int nres, int overflow)
{
    (void)ctx;
    s_own.dones++;
    s_own.nres = nres;
    s_own.overflow = overflow;
    s_own.status = nres > 0 ? PQresultStatus(res[0]) : PGRES_EMPTY_QUERY;
    const char *m = nres > 0 ? PQresultErrorField(res[0], PG_DIAG_MESSAGE_PRIMARY) : NULL;
    snprintf(s_own.err, sizeof s_own.err, "%s", m ? m : "");
}

static void s_on_notify(void *ctx)
{
    (void)ctx;
    s_own.notifies++;
}

static void s_on_down(void *ctx)
{
    (void)ctx;
    s_own.downs++;
}

static pgconn_t *s_new(struct event_base *base, uint16_t port, const char *name, int id,
                       int quiet, long timeout_ms, long bmin, long bmax)
{
    static char conninfo[160];
    memset(&s_own, 0, sizeof s_own);
    snprintf(conninfo, sizeof conninfo,
             "host=127.0.0.1 port=%u user=u dbname=d sslmode=disable gssencmode=disable",
             (unsigned)port);
    pgconn_config_t cfg = { conninfo, name, id, quiet, timeout_ms, bmin, bmax };
    pgconn_callbacks_t cb = { s_on_up, s_on_done, s_on_notify, s_on_down, NULL };
    s_own.pc = pgconn_new(base, &cfg, &cb);
    return s_own.pc;
}

/* ---- loop and log helpers ---------------------------------------------- */

static long long s_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Runs the loop until *cond becomes >= want or ms pass; 1 if it did. */
static int s_run_until(struct event_base *base, const int *cond, int want, long ms)
{
    struct event *t = event_new(base, -1, EV_PERSIST, s_tick, NULL);
    struct timeval tv = { 0, 5000 };
    event_add(t, &tv);
    long long end = s_ms() + ms;
    while (*cond < want && s_ms() < end)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
    return *cond >= want;
}

static void s_run_for(struct event_base *base, long ms)
{
    int never = 0;
    s_run_until(base, &never, 1, ms);
}

/* The log goes to a file while captured; s_log_end() returns its text. */
static int s_saved_fd = -1;
static char s_log_path[64];
static char s_log[16384];

static void s_log_begin(void)
{
    snprintf(s_log_path, sizeof s_log_path, "/tmp/test_pgconn.%d.log", (int)getpid());
    int fd = open(s_log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    fflush(stderr);
    s_saved_fd = dup(2);
    if (fd >= 0) {
        dup2(fd, 2);
        close(fd);
    }
}

static const char *s_log_end(void)
{
    fflush(stderr);
    dup2(s_saved_fd, 2);
    close(s_saved_fd);
    s_log[0] = '\0';
    int fd = open(s_log_path, O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, s_log, sizeof s_log - 1);
        s_log[n > 0 ? n : 0] = '\0';
        close(fd);
    }
    unlink(s_log_path);
    return s_log;
}

static int s_count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* ---- tests ------------------------------------------------------------- */

TEST(connect_query_error_notify)
{
    struct event_base *base = event_base_new();
    CHECK(base && s_srv_start(base) == 0);
    pgconn_t *pc = s_new(base, s_srv.port, "db", -1, 0, 0, 0, 0);
    CHECK(pc);
    CHECK_EQ_INT(pgconn_send(pc, "SELECT 1"), -1);     /* not up: refused, no callback */
    CHECK_EQ_INT(s_own.downs, 0);
    CHECK_EQ_INT(pgconn_start(pc), 0);
    CHECK_EQ_INT(pgconn_start(pc), -1);                /* already started */
    CHECK(s_run_until(base, &s_own.ups, 1, 3000));
    CHECK(pgconn_is_up(pc));
    CHECK(pgconn_pg(pc) != NULL);

    CHECK_EQ_INT(pgconn_send(pc, "SET x = 1"), 0);
    CHECK(pgconn_busy(pc));
    CHECK_EQ_INT(pgconn_send(pc, "SET y = 1"), -1);    /* one query at a time */
    CHECK(s_run_until(base, &s_own.dones, 1, 3000));
    CHECK_EQ_STR(s_srv.last_query, "SET x = 1");
    CHECK_EQ_INT(s_srv.queries, 1);
    CHECK_EQ_INT(s_own.nres, 1);
    CHECK_EQ_INT(s_own.status, PGRES_COMMAND_OK);
    CHECK(!pgconn_busy(pc));

    /* An SQL error is a result for the owner, not a connection failure. */
    s_srv.mode = SRV_ERROR;
    const char *p[1] = { "v" };
    CHECK_EQ_INT(pgconn_send_params(pc, "SELECT $1", 1, p), 0);
    CHECK(s_run_until(base, &s_own.dones, 2, 3000));
    CHECK_EQ_INT(s_own.status, PGRES_FATAL_ERROR);
    CHECK_EQ_STR(s_own.err, "boom");
    CHECK_EQ_STR(s_srv.last_query, "SELECT $1");
    CHECK(pgconn_is_up(pc));
    CHECK_EQ_INT(s_own.downs, 0);

    s_srv_notify();
    CHECK(s_run_until(base, &s_own.notifies, 1, 3000));
    CHECK_EQ_INT(s_own.downs, 0);

    pgconn_destroy(&pc);
    CHECK(pc == NULL);
    pgconn_destroy(&pc);                               /* NULL-safe */
    s_srv_stop();
    event_base_free(base);
}

TEST(loss_reconnects_and_logs)
{
    struct event_base *base = event_base_new();
    CHECK(base && s_srv_start(base) == 0);
    pgconn_t *pc = s_new(base, s_srv.port, "db", -1, 0, 0, 20, 0);
    CHECK(pc);
    s_own.send_on_up = "LISTEN chan";                  /* re-issued on every connection */
    pgconn_start(pc);
    CHECK(s_run_until(base, &s_own.dones, 1, 3000));
    s_log_begin();
    long long t0 = s_ms();
    s_srv_drop();
    s_run_until(base, &s_own.downs, 1, 3000);
    s_run_until(base, &s_own.dones, 2, 3000);
    long long took = s_ms() - t0;
    const char *log = s_log_end();
    CHECK_EQ_INT(s_own.downs, 1);
    CHECK_EQ_INT(s_own.ups, 2);
    CHECK_EQ_INT(s_own.dones, 2);
    CHECK_EQ_INT(s_srv.accepts, 2);
    CHECK_EQ_STR(s_srv.last_query, "LISTEN chan");
    CHECK(took >= 15);                  /* waited the 20 ms backoff (libevent's cached clock may
                                         * start it a few ms early) */
    CHECK(strstr(log, "event=db_down reason=\"connection lost") != NULL);
    CHECK(strstr(log, "retry_ms=20") != NULL);
    CHECK(strstr(log, "conn=") == NULL);               /* no id: no conn key */
    CHECK_EQ_INT(pgconn_backoff_ms(pc), 40);
    CHECK_EQ_INT(pgconn_recovered(pc), 1);             /* that outage was logged */
    CHECK_EQ_INT(pgconn_backoff_ms(pc), 20);
    CHECK_EQ_INT(pgconn_recovered(pc), 0);
    pgconn_destroy(&pc);
    s_srv_stop();
    event_base_free(base);
}

TEST(backoff_doubles_to_cap_quietly)
{
    struct event_base *base = event_base_new();
    CHECK(base);
    pgconn_t *pc = s_new(base, s_dead_port(), "rpc_db", 3, 1, 0, 10, 40);
    CHECK(pc);
    s_log_begin();
    long long t0 = s_ms();
    pgconn_start(pc);
    s_run_until(base, &s_own.downs, 5, 3000);
    long long took = s_ms() - t0;
    const char *log = s_log_end();
    CHECK_EQ_INT(s_own.downs, 5);
    CHECK_EQ_INT(s_own.ups, 0);
    CHECK(took >= 10 + 20 + 40 + 40 - 10);             /* 10, 20, 40, capped at 40 */
    CHECK_EQ_INT(pgconn_backoff_ms(pc), 40);
    /* quiet_retries: one warning for the outage, with the conn key */
    CHECK_EQ_INT(s_count(log, "event=rpc_db_down"), 1);
    CHECK(strstr(log, "event=rpc_db_down conn=3 reason=\"connect: ") != NULL);
    CHECK(strstr(log, "retry_ms=10") != NULL);
    pgconn_destroy(&pc);
    event_base_free(base);
}

TEST(connect_timeout)
{
    struct event_base *base = event_base_new();
    CHECK(base);
    /* A listener whose connections are accepted by the kernel but never
     * answered: libpq waits for the server's reply. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sin;
    CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&sin, sizeof sin) == 0 && listen(lfd, 8) == 0);
    getsockname(lfd, (struct sockaddr *)&sin, &sl);
    pgconn_t *pc = s_new(base, ntohs(sin.sin_port), "db", -1, 0, 150, 5000, 0);
    CHECK(pc);
    s_log_begin();
    long long t0 = s_ms();
    pgconn_start(pc);
    s_run_until(base, &s_own.downs, 1, 3000);
    long long took = s_ms() - t0;
    const char *log = s_log_end();
    close(lfd);
    CHECK_EQ_INT(s_own.downs, 1);
    CHECK(took >= 140 && took < 2000);
    CHECK(strstr(log, "event=db_down reason=\"connect: timed out\" retry_ms=5000") != NULL);
    pgconn_destroy(&pc);
    event_base_free(base);
}

TEST(stopping_closes_without_reconnect)
{
    struct event_base *base = event_base_new();
    CHECK(base && s_srv_start(base) == 0);
    pgconn_t *pc = s_new(base, s_srv.port, "db", -1, 0, 0, 10, 0);
    CHECK(pc);
    pgconn_start(pc);
    CHECK(s_run_until(base, &s_own.ups, 1, 3000));
    s_srv.mode = SRV_SILENT;
    CHECK_EQ_INT(pgconn_send(pc, "SELECT 1"), 0);
    pgconn_stopping(pc);
    s_log_begin();
    s_srv_drop();
    s_run_until(base, &s_own.downs, 1, 3000);
    s_run_for(base, 100);                              /* 10 backoffs: no reconnect */
    const char *log = s_log_end();
    CHECK_EQ_INT(s_own.downs, 1);
    CHECK_EQ_INT(s_own.dones, 0);                      /* the query was lost, not done */
    CHECK_EQ_INT(s_own.ups, 1);
    CHECK_EQ_INT(s_srv.accepts, 1);
    CHECK(strstr(log, "event=db_closed reason=\"connection lost") != NULL);
    CHECK(strstr(log, "event=db_down") == NULL);
    CHECK(!pgconn_is_up(pc));
    /* Closed: it can be started again. */
    s_srv.mode = SRV_OK;
    CHECK_EQ_INT(pgconn_start(pc), 0);
    CHECK(s_run_until(base, &s_own.ups, 2, 3000));
    pgconn_close(pc);                                  /* no callback, no log */
    CHECK_EQ_INT(s_own.downs, 1);
    CHECK(!pgconn_is_up(pc));
    pgconn_destroy(&pc);
    s_srv_stop();
    event_base_free(base);
}

TEST(owner_failure)
{
    struct event_base *base = event_base_new();
    CHECK(base && s_srv_start(base) == 0);
    pgconn_t *pc = s_new(base, s_srv.port, "db", 0, 0, 0, 10, 0);
    CHECK(pc);
    pgconn_start(pc);
    CHECK(s_run_until(base, &s_own.ups, 1, 3000));
    s_log_begin();
    pgconn_fail(pc, "batch read", "unexpected \"shape\"\nsecond line");
    const char *log = s_log_end();
    CHECK_EQ_INT(s_own.downs, 1);
    CHECK(!pgconn_is_up(pc));
    CHECK(strstr(log, "event=db_down conn=0 reason=\"batch read: unexpected 'shape' second line\" "
                      "retry_ms=10") != NULL);
    pgconn_fail(pc, "again", NULL);                    /* not connected: nothing */
    CHECK_EQ_INT(s_own.downs, 1);
    CHECK(s_run_until(base, &s_own.ups, 2, 3000));     /* reconnected after the backoff */
    pgconn_destroy(&pc);
    s_srv_stop();
    event_base_free(base);
}

TEST_MAIN(connect_query_error_notify, loss_reconnects_and_logs, backoff_doubles_to_cap_quietly,
          connect_timeout, stopping_closes_without_reconnect, owner_failure)
