/* Unit tests for broker/obs.c: --http parsing, the /metrics text, and the
 * routes over a real loopback connection (libevent's HTTP client on the
 * same loop). */
#include "../../broker/obs.c"

#include "test.h"

#include <event2/http.h>

static obs_snapshot_t s_snap;

static void s_fill(void *ctx, obs_snapshot_t *out)
{
    (void)ctx;
    *out = s_snap;
}

/* The text of /metrics for the current s_snap. Caller frees. */
static char *s_metrics_text(obs_t *o)
{
    struct evbuffer *b = evbuffer_new();
    if (!b || obs_render(o, b) < 0)
        return NULL;
    size_t n = evbuffer_get_length(b);
    char *t = malloc(n + 1);
    if (t) {
        evbuffer_remove(b, t, n);
        t[n] = '\0';
    }
    evbuffer_free(b);
    return t;
}

TEST(parse_addr)
{
    char h[OBS_HOST_MAX];
    uint16_t p = 1;
    CHECK(obs_parse_addr("127.0.0.1:9100", h, sizeof h, &p) == 0);
    CHECK_EQ_STR(h, "127.0.0.1");
    CHECK_EQ_INT(p, 9100);
    CHECK(obs_parse_addr("0.0.0.0:0", h, sizeof h, &p) == 0);
    CHECK_EQ_INT(p, 0);
    CHECK(obs_parse_addr("[::1]:65535", h, sizeof h, &p) == 0);
    CHECK_EQ_STR(h, "::1");
    CHECK_EQ_INT(p, 65535);
    CHECK(obs_parse_addr("localhost:80", h, sizeof h, &p) == 0);
    CHECK_EQ_STR(h, "localhost");
    const char *bad[] = { "", "9100", ":9100", "host:", "host:65536", "host:12x", "::1:9100",
                          "[::1]9100", "[::1]", "[]:80", "host:123456", "host:-1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(obs_parse_addr(bad[i], h, sizeof h, &p) == -1);
    char longh[OBS_HOST_MAX + 10];
    memset(longh, 'a', sizeof longh);
    memcpy(longh + sizeof longh - 4, ":80", 4);
    CHECK(obs_parse_addr(longh, h, sizeof h, &p) == -1);
    char small[4];
    CHECK(obs_parse_addr("abcd:80", small, sizeof small, &p) == -1);
}

TEST(render_values_and_histograms)
{
    memset(&s_snap, 0, sizeof s_snap);
    s_snap.leader = 1;
    s_snap.db_connected = 1;
    s_snap.published = 42;
    s_snap.last_seq = 1234567890123ULL;
    s_snap.nops = 2;
    s_snap.ops[0] = (obs_op_t){ "ping", 7, 0 };
    s_snap.ops[1] = (obs_op_t){ "re\"play\n", 3, 1 };   /* sanitized label */
    obs_t *o = obs_new(NULL, s_fill, NULL);
    CHECK(o != NULL);
    obs_on_batch(o, 1);
    obs_on_batch(o, 3);
    obs_on_batch(o, 50000);
    obs_on_published(o, 2000);          /* 2 ms */
    obs_on_published(o, -5);            /* clock skew: 0 */
    obs_on_published(o, 120000000);     /* 120 s: +Inf only */
    char *t = s_metrics_text(o);
    CHECK(t != NULL);
    CHECK(strstr(t, "# TYPE belfry_broker_leader gauge\nbelfry_broker_leader 1\n") != NULL);
    CHECK(strstr(t, "\nbelfry_broker_db_connected 1\n") != NULL);
    CHECK(strstr(t, "# TYPE belfry_broker_published_messages_total counter\n"
                    "belfry_broker_published_messages_total 42\n") != NULL);
    CHECK(strstr(t, "\nbelfry_broker_last_seq 1234567890123\n") != NULL);
    CHECK(strstr(t, "belfry_broker_rpc_requests_total{op=\"ping\"} 7\n") != NULL);
    CHECK(strstr(t, "belfry_broker_rpc_errors_total{op=\"re_play_\"} 1\n") != NULL);
    /* cumulative buckets */
    CHECK(strstr(t, "belfry_broker_batch_rows_bucket{le=\"1\"} 1\n") != NULL);
    CHECK(strstr(t, "belfry_broker_batch_rows_bucket{le=\"2\"} 1\n") != NULL);
    CHECK(strstr(t, "belfry_broker_batch_rows_bucket{le=\"5\"} 2\n") != NULL);
    CHECK(strstr(t, "belfry_broker_batch_rows_bucket{le=\"10000\"} 2\n") != NULL);
    CHECK(strstr(t, "belfry_broker_batch_rows_bucket{le=\"+Inf\"} 3\n") != NULL);
    CHECK(strstr(t, "belfry_broker_batch_rows_sum 50004.000000\nbelfry_broker_batch_rows_count 3\n") != NULL);
    CHECK(strstr(t, "belfry_broker_publish_lag_seconds_bucket{le=\"0.001\"} 1\n") != NULL);
    CHECK(strstr(t, "belfry_broker_publish_lag_seconds_bucket{le=\"0.0025\"} 2\n") != NULL);
    CHECK(strstr(t, "belfry_broker_publish_lag_seconds_bucket{le=\"60\"} 2\n") != NULL);
    CHECK(strstr(t, "belfry_broker_publish_lag_seconds_bucket{le=\"+Inf\"} 3\n") != NULL);
    CHECK(strstr(t, "\nbelfry_broker_lag_seconds 120.000000\n") != NULL);
    /* every sample line belongs to a family announced by # TYPE just before */
    int lines = 0;
    for (char *l = t; *l; l = strchr(l, '\n') + 1) {
        CHECK(strchr(l, '\n') != NULL);
        if (strncmp(l, "belfry_broker_", 14) != 0)
            CHECK(strncmp(l, "# HELP belfry_broker_", 21) == 0 || strncmp(l, "# TYPE belfry_broker_", 21) == 0);
        lines++;
    }
    CHECK(lines > 60);
    free(t);
    /* counters ending in _total are typed counter */
    t = s_metrics_text(o);
    for (char *l = strstr(t, "# TYPE "); l; l = strstr(l + 1, "# TYPE ")) {
        char name[128], type[32];
        CHECK(sscanf(l, "# TYPE %127s %31s", name, type) == 2);
        size_t n = strlen(name);
        if (n > 6 && strcmp(name + n - 6, "_total") == 0)
            CHECK_EQ_STR(type, "counter");
        else
            CHECK(strcmp(type, "counter") != 0);
    }
    free(t);
    obs_destroy(&o);
    CHECK(o == NULL);
    obs_destroy(&o);
}

TEST(ready_means_database)
{
    obs_snapshot_t st;
    memset(&st, 0, sizeof st);
    CHECK_EQ_INT(obs_is_ready(&st), 0);
    st.leader = 1;
    CHECK_EQ_INT(obs_is_ready(&st), 0);     /* leading without a connection: not yet */
    st.leader = 0;
    st.db_connected = 1;
    st.standby = 1;
    CHECK_EQ_INT(obs_is_ready(&st), 1);     /* a connected standby is ready */
}

/* ---- over HTTP ---- */

typedef struct {
    struct event_base *base;
    int code;
    char body[256];
    char allow[64];
    int pending;
} s_call_t;

static void s_done(struct evhttp_request *req, void *arg)
{
    s_call_t *c = arg;
    c->code = req ? evhttp_request_get_response_code(req) : -1;
    c->body[0] = c->allow[0] = '\0';
    if (req) {
        struct evbuffer *b = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(b);
        if (n >= sizeof c->body)
            n = sizeof c->body - 1;
        evbuffer_copyout(b, c->body, n);
        c->body[n] = '\0';
        const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Allow");
        if (a)
            snprintf(c->allow, sizeof c->allow, "%s", a);
    }
    c->pending = 0;
    event_base_loopbreak(c->base);
}

static int s_call(struct event_base *base, uint16_t port, enum evhttp_cmd_type m, const char *path,
                  s_call_t *c)
{
    memset(c, 0, sizeof *c);
    c->base = base;
    c->pending = 1;
    struct evhttp_connection *cn = evhttp_connection_base_new(base, NULL, "127.0.0.1", port);
    struct evhttp_request *req = evhttp_request_new(s_done, c);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", "127.0.0.1");
    evhttp_make_request(cn, req, m, path);
    struct timeval tv = { 5, 0 };
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    evhttp_connection_free(cn);
    return c->pending ? -1 : c->code;
}

TEST(routes_over_http)
{
    struct event_base *base = event_base_new();
    memset(&s_snap, 0, sizeof s_snap);
    obs_t *o = obs_new(base, s_fill, NULL);
    char err[256];
    CHECK(obs_listen(o, "", err, sizeof err) == 0);     /* disabled */
    CHECK_EQ_INT(obs_port(o), 0);
    CHECK(obs_listen(o, "nonsense", err, sizeof err) == -1);
    CHECK(strstr(err, "nonsense") != NULL);
    CHECK(obs_listen(o, "127.0.0.1:0", err, sizeof err) == 0);
    uint16_t port = obs_port(o);
    CHECK(port != 0);
    /* a second obs cannot take the same port */
    obs_t *o2 = obs_new(base, s_fill, NULL);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)port);
    CHECK(obs_listen(o2, addr, err, sizeof err) == -1);
    CHECK(strstr(err, "cannot listen") != NULL);
    obs_destroy(&o2);

    s_call_t c;
    CHECK_EQ_INT(s_call(base, port, EVHTTP_REQ_GET, "/healthz", &c), 200);
    CHECK_EQ_STR(c.body, "ok\n");
    CHECK_EQ_INT(s_call(base, port, EVHTTP_REQ_GET, "/readyz", &c), 503);
    s_snap.db_connected = 1;
    s_snap.standby = 1;
    CHECK_EQ_INT(s_call(base, port, EVHTTP_REQ_GET, "/readyz", &c), 200);
    CHECK_EQ_STR(c.body, "ready: standby\n");
    s_snap.standby = 0;
    s_snap.leader = 1;
    CHECK_EQ_INT(s_call(base, port, EVHTTP_REQ_GET, "/readyz?x=1", &c), 200);
    CHECK_EQ_STR(c.body, "ready: leader\n");
    CHECK_EQ_INT(s_call(base, port, EVHTTP_REQ_GET, "/metrics", &c), 200);
    CHECK(strncmp(c.body, "# HELP belfry_broker_leader ", 28) == 0);
    CHECK_EQ_INT(s_call(base, port, EVHTTP_REQ_HEAD, "/metrics", &c), 200);
    CHECK_EQ_STR(c.body, "");
    CHECK_EQ_INT(s_call(base, port, EVHTTP_REQ_POST, "/metrics", &c), 405);
    CHECK_EQ_STR(c.allow, "GET, HEAD");
    CHECK_EQ_INT(s_call(base, port, EVHTTP_REQ_DELETE, "/healthz", &c), 405);
    CHECK_EQ_INT(s_call(base, port, EVHTTP_REQ_GET, "/", &c), 404);
    CHECK_EQ_INT(s_call(base, port, EVHTTP_REQ_GET, "/metricsx", &c), 404);
    CHECK_EQ_INT(s_call(base, port, EVHTTP_REQ_POST, "/nope", &c), 404);
    obs_destroy(&o);
    event_base_free(base);
}

TEST_MAIN(parse_addr, render_values_and_histograms, ready_means_database, routes_over_http)
