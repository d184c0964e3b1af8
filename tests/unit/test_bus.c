/*  test_bus - the fan-out bus: topic <-> subject/channel mappings, settings,
 *  ZeroMQ delivery and isolation in-process, and Redis/NATS with no server
 *  (no crash, not ready, publishes counted as dropped). The Redis and NATS
 *  backends against real servers: tests/integration/backends.test.js.
 */
#include "test.h"
#include "bus.h"
#include "log.h"

#include <unistd.h>
#include <zmq.h>

static const char HB[] = "\x01hb";      /* + NUL: 4 bytes */

TEST(kind_names)
{
    bus_kind_t k;
    CHECK(bus_kind_parse("zmq", &k) == 0 && k == BUS_ZMQ);
    CHECK(bus_kind_parse("redis", &k) == 0 && k == BUS_REDIS);
    CHECK(bus_kind_parse("nats", &k) == 0 && k == BUS_NATS);
    CHECK(bus_kind_parse("kafka", &k) < 0);
    CHECK(bus_kind_parse("", &k) < 0);
    CHECK(bus_kind_parse(NULL, &k) < 0);
    CHECK_EQ_STR(bus_kind_name(BUS_REDIS), "redis");
}

TEST(nats_subject_roundtrip)
{
    char subj[64];
    unsigned char back[64];
    long n = bus_nats_subject(HB, sizeof HB, subj, sizeof subj);
    CHECK_EQ_STR(subj, "belfry.AWhiAA");
    CHECK_EQ_INT(n, 13);
    CHECK_EQ_INT(bus_nats_topic(subj, (size_t)n, back, sizeof back), 4);
    CHECK(memcmp(back, HB, 4) == 0);

    /* namespace \0 room \0: the NULs survive, and user_1 != user_12 */
    static const char t1[] = "/\0user_1";       /* sizeof includes the final NUL */
    static const char t12[] = "/\0user_12";
    char s1[64], s12[64];
    long l1 = bus_nats_subject(t1, sizeof t1, s1, sizeof s1);
    long l12 = bus_nats_subject(t12, sizeof t12, s12, sizeof s12);
    CHECK(l1 > 7 && l12 > 7);
    CHECK(!(l1 == l12 && memcmp(s1, s12, (size_t)l1) == 0));
    CHECK_EQ_INT(bus_nats_topic(s12, (size_t)l12, back, sizeof back), (long)sizeof t12);
    CHECK(memcmp(back, t12, sizeof t12) == 0);
}

TEST(nats_subject_every_byte_one_token)
{
    unsigned char topic[256], back[400];
    char subj[400];
    for (int i = 0; i < 256; i++)
        topic[i] = (unsigned char)i;
    for (size_t len = 1; len <= 256; len += 17) {
        long n = bus_nats_subject(topic + (256 - len), len, subj, sizeof subj);
        CHECK(n > 7);
        CHECK_EQ_INT((long)strlen(subj), n);
        /* one token: nothing a NATS subject gives meaning to after the prefix */
        CHECK(strcspn(subj + 7, ".*> \t\r\n=") == (size_t)n - 7);
        CHECK_EQ_INT(bus_nats_topic(subj, (size_t)n, back, sizeof back), (long)len);
        CHECK(memcmp(back, topic + (256 - len), len) == 0);
    }
}

TEST(nats_subject_rejects)
{
    unsigned char out[64];
    char small[10];
    CHECK(bus_nats_subject("x", 0, small, sizeof small) < 0);           /* empty topic */
    CHECK(bus_nats_subject("abcdefgh", 8, small, sizeof small) < 0);    /* no room */
    static char big[BUS_TOPIC_MAX + 1];
    static char bigsubj[4 * BUS_TOPIC_MAX];
    CHECK(bus_nats_subject(big, sizeof big, bigsubj, sizeof bigsubj) < 0);
    CHECK(bus_nats_subject(big, BUS_TOPIC_MAX, bigsubj, sizeof bigsubj) > 0);
    const char *bad[] = {
        "belfry.", "belfry", "other.AWhiAA", "belfry:AWhiAA", "belfry.AWhiAA==",
        "belfry.AWh*AA", "belfry.AWh.AA", "belfry.A", "belfry.AWhiAB" /* unused bits set */,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(bus_nats_topic(bad[i], strlen(bad[i]), out, sizeof out) < 0);
    CHECK(bus_nats_topic("belfry.AWhiAA", 13, out, 2) < 0);             /* out too small */
}

TEST(redis_channel)
{
    static const char t[] = "/admin\0news";
    char ch[64];
    long n = bus_redis_channel(t, sizeof t, ch, sizeof ch);
    CHECK_EQ_INT(n, 7 + (long)sizeof t);
    CHECK(memcmp(ch, "belfry:/admin\0news\0", (size_t)n) == 0);
    CHECK_EQ_INT(bus_redis_topic(ch, (size_t)n), (long)sizeof t);
    CHECK(bus_redis_topic("belfry:", 7) < 0);
    CHECK(bus_redis_topic("other:/\0a\0", 10) < 0);
    CHECK(bus_redis_channel(t, sizeof t, ch, 10) < 0);
    CHECK(bus_redis_channel(t, 0, ch, sizeof ch) < 0);
}

TEST(redis_url)
{
    char host[64], pw[64];
    int port;
    CHECK(bus_redis_parse_url("redis://127.0.0.1:7001", host, sizeof host, &port, pw, sizeof pw) == 0);
    CHECK_EQ_STR(host, "127.0.0.1");
    CHECK_EQ_INT(port, 7001);
    CHECK_EQ_STR(pw, "");
    CHECK(bus_redis_parse_url("redis://:s3cret@cache/0", host, sizeof host, &port, pw, sizeof pw) == 0);
    CHECK_EQ_STR(host, "cache");
    CHECK_EQ_INT(port, 6379);
    CHECK_EQ_STR(pw, "s3cret");
    CHECK(bus_redis_parse_url("redis://user:pw@h:1/", host, sizeof host, &port, pw, sizeof pw) == 0);
    CHECK_EQ_STR(pw, "pw");
    CHECK(bus_redis_parse_url("localhost", host, sizeof host, &port, pw, sizeof pw) == 0);
    CHECK_EQ_STR(host, "localhost");
    const char *bad[] = {
        "", "redis://", "redis://:7000", "redis://h:0", "redis://h:70000", "redis://h:12x",
        "rediss://h:6379", "unix:///tmp/r.sock", "redis://h:6379/db", NULL,
    };
    for (int i = 0; bad[i]; i++)
        CHECK(bus_redis_parse_url(bad[i], host, sizeof host, &port, pw, sizeof pw) < 0);
    CHECK(bus_redis_parse_url(NULL, host, sizeof host, &port, pw, sizeof pw) < 0);
}

TEST(rcluster_url)
{
    bus_rcluster_seed_t sd[4];
    char pw[64];
    CHECK(bus_rcluster_is_url("redis-cluster://h:1"));
    CHECK(!bus_rcluster_is_url("redis://h:1"));
    CHECK(!bus_rcluster_is_url(NULL));
    CHECK_EQ_INT(bus_rcluster_parse_url("redis-cluster://127.0.0.1:7001", sd, 4, pw, sizeof pw), 1);
    CHECK_EQ_STR(sd[0].host, "127.0.0.1");
    CHECK_EQ_INT(sd[0].port, 7001);
    CHECK_EQ_STR(pw, "");
    CHECK_EQ_INT(bus_rcluster_parse_url("redis-cluster://:s3c@r:et@a:7001,b,[::1]:7003/", sd, 4, pw,
                                        sizeof pw), 3);
    CHECK_EQ_STR(pw, "s3c@r:et");       /* the last '@' ends the password */
    CHECK_EQ_STR(sd[0].host, "a");
    CHECK_EQ_INT(sd[0].port, 7001);
    CHECK_EQ_STR(sd[1].host, "b");
    CHECK_EQ_INT(sd[1].port, 6379);     /* default port */
    CHECK_EQ_STR(sd[2].host, "::1");
    CHECK_EQ_INT(sd[2].port, 7003);
    CHECK_EQ_INT(bus_rcluster_parse_url("redis-cluster://default:pw@cache:6380", sd, 4, pw, sizeof pw), 1);
    CHECK_EQ_STR(pw, "pw");
    CHECK_EQ_STR(sd[0].host, "cache");
    const char *bad[] = {
        "", "redis-cluster://", "redis-cluster://:pw@", "redis-cluster://h:0", "redis-cluster://h:70000",
        "redis-cluster://h:12x", "redis-cluster://h:", "redis-cluster://a:1,,b:2", "redis-cluster://a:1,",
        "redis-cluster://,a:1", "redis-cluster://h:6379/0", "redis-cluster://[::1:7000",
        "redis-cluster://[]:7000", "redis://h:7000", "rediss-cluster://h:7000", "h:7000",
        "redis-cluster://a:1,b:2,c:3,d:4,e:5" /* over cap */, NULL,
    };
    for (int i = 0; bad[i]; i++) {
        if (bus_rcluster_parse_url(bad[i], sd, 4, pw, sizeof pw) >= 0)
            fprintf(stderr, "  accepted: %s\n", bad[i]);
        CHECK(bus_rcluster_parse_url(bad[i], sd, 4, pw, sizeof pw) < 0);
    }
    CHECK(bus_rcluster_parse_url(NULL, sd, 4, pw, sizeof pw) < 0);
    CHECK(bus_rcluster_parse_url("redis-cluster://:toolongpassword@h:1", sd, 4, pw, 8) < 0);
}

TEST(rcluster_keyslot)
{
    /* the cluster specification's test vector */
    CHECK_EQ_INT(bus_rcluster_crc16("123456789", 9), 0x31C3);
    CHECK_EQ_INT(bus_rcluster_crc16("", 0), 0);
    CHECK_EQ_INT(bus_rcluster_keyslot("123456789", 9), 0x31C3 & 16383);
    /* expected values from CLUSTER KEYSLOT of redis-server 7.0.15 */
    CHECK_EQ_INT(bus_rcluster_keyslot("belfry:/\0user_7\0", 16), 6215);
    CHECK_EQ_INT(bus_rcluster_keyslot("belfry:/\0all\0", 13), 13483);
    CHECK_EQ_INT(bus_rcluster_keyslot("belfry:\x01hb\0", 11), 3511);
    CHECK_EQ_INT(bus_rcluster_keyslot("{user1000}.following", 21), 3443);
    CHECK_EQ_INT(bus_rcluster_keyslot("foo{}{bar}", 10), 8363);      /* empty tag: whole key */
    CHECK_EQ_INT(bus_rcluster_keyslot("foo{{bar}}zap", 13), 4015);   /* tag is "{bar" */
    /* hash tags: same tag, same slot; an unclosed brace is no tag */
    CHECK_EQ_INT(bus_rcluster_keyslot("a{room}b", 8), bus_rcluster_keyslot("room", 4));
    CHECK_EQ_INT(bus_rcluster_keyslot("{room}", 6), bus_rcluster_keyslot("x{room}{y}", 10));
    CHECK_EQ_INT(bus_rcluster_keyslot("a{room", 6), bus_rcluster_crc16("a{room", 6) & 16383);
    for (int i = 0; i < 1000; i++) {
        char k[16];
        int n = snprintf(k, sizeof k, "user_%d", i);
        CHECK(bus_rcluster_keyslot(k, (size_t)n) < 16384);
    }
}

/* ---- with a loop ---------------------------------------------------------- */

typedef struct {
    int n;
    char topics[8][32];
    size_t tlens[8];
    char bodies[8][32];
} got_t;

static void s_on_msg(void *arg, const void *topic, size_t tlen, const void *body, size_t blen)
{
    got_t *g = arg;
    if (g->n < 8 && tlen <= 32 && blen < 32) {
        memcpy(g->topics[g->n], topic, tlen);
        g->tlens[g->n] = tlen;
        memcpy(g->bodies[g->n], body, blen);
        g->bodies[g->n][blen] = 0;
    }
    g->n++;
}

static void s_run(struct event_base *base, int ms)
{
    struct timeval tv = { 0, ms * 1000 };
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

TEST(bad_settings)
{
    struct event_base *base = event_base_new();
    void *zctx = zmq_ctx_new();
    char err[256];
    got_t g = { 0 };
    bus_config_t c = { .kind = BUS_ZMQ, .zmq_ctx = zctx, .zmq_endpoints = "", .on_message = s_on_msg, .arg = &g };
    CHECK(bus_new(base, &c, BUS_SUB, err, sizeof err) == NULL);
    CHECK(strstr(err, "no endpoint") != NULL);
    c.zmq_endpoints = "nonsense://x";
    CHECK(bus_new(base, &c, BUS_PUB, err, sizeof err) == NULL);
    CHECK(strstr(err, "nonsense://x") != NULL);
    c.on_message = NULL;
    c.zmq_endpoints = "inproc://x";
    CHECK(bus_new(base, &c, BUS_SUB, err, sizeof err) == NULL);     /* a subscriber needs a callback */
    c.on_message = s_on_msg;
    c.kind = BUS_REDIS;
    c.redis_url = "rediss://secure:6380";
    CHECK(bus_new(base, &c, BUS_SUB, err, sizeof err) == NULL);
    CHECK(strstr(err, "--redis-url") != NULL);
    c.kind = BUS_NATS;
    c.nats_url = "";
    CHECK(bus_new(base, &c, BUS_SUB, err, sizeof err) == NULL);
    CHECK(strstr(err, "--nats-url") != NULL);
    zmq_ctx_term(zctx);
    event_base_free(base);
}

TEST(zmq_delivery_and_isolation)
{
    struct event_base *base = event_base_new();
    void *zctx = zmq_ctx_new();
    char err[256];
    got_t g = { 0 };
    char ep[64];        /* ipc, not inproc: the monitor reports connections of real transports */
    snprintf(ep, sizeof ep, "ipc:///tmp/belfry-test-bus-%d.sock", (int)getpid());
    bus_config_t pc = { .kind = BUS_ZMQ, .zmq_ctx = zctx, .zmq_endpoints = ep };
    bus_t *pub = bus_new(base, &pc, BUS_PUB, err, sizeof err);
    CHECK(pub != NULL);
    bus_config_t sc = pc;
    sc.on_message = s_on_msg;
    sc.arg = &g;
    bus_t *sub = bus_new(base, &sc, BUS_SUB, err, sizeof err);
    CHECK(sub != NULL);
    static const char t1[] = "/\0user_1", t12[] = "/\0user_12";
    CHECK(bus_subscribe(sub, t1, sizeof t1) == 0);
    CHECK(bus_subscribe(sub, t1, sizeof t1) == 0);      /* a set: once is enough */
    CHECK(bus_subscribe(sub, HB, sizeof HB) == 0);
    CHECK(bus_publish(sub, t1, sizeof t1, "x", 1) < 0);  /* a subscriber cannot publish */
    s_run(base, 100);                                   /* subscriptions reach the PUB */
    CHECK(bus_ready(sub));
    CHECK(bus_ready(pub));
    CHECK(bus_publish(pub, t12, sizeof t12, "other", 5) == 0);
    CHECK(bus_publish(pub, t1, sizeof t1, "mine", 4) == 0);
    CHECK(bus_publish(pub, HB, sizeof HB, "hb", 2) == 0);
    s_run(base, 100);
    CHECK_EQ_INT(g.n, 2);
    CHECK_EQ_INT(g.tlens[0], sizeof t1);
    CHECK(memcmp(g.topics[0], t1, sizeof t1) == 0);
    CHECK_EQ_STR(g.bodies[0], "mine");
    CHECK_EQ_STR(g.bodies[1], "hb");
    /* one unsubscribe ends it, even after two subscribes */
    CHECK(bus_unsubscribe(sub, t1, sizeof t1) == 0);
    s_run(base, 100);
    CHECK(bus_publish(pub, t1, sizeof t1, "late", 4) == 0);
    s_run(base, 100);
    CHECK_EQ_INT(g.n, 2);
    bus_stats_t st;
    bus_stats(pub, &st);
    CHECK_EQ_INT(st.published, 4);
    bus_stats(sub, &st);
    CHECK_EQ_INT(st.received, 2);
    CHECK_EQ_INT(st.publish_errors, 1);
    bus_destroy(&sub);
    bus_destroy(&pub);
    CHECK(sub == NULL && pub == NULL);
    bus_destroy(&pub);                                  /* NULL-safe */
    unlink(ep + 6);
    zmq_ctx_term(zctx);
    event_base_free(base);
}

/* A server that is down: created, not ready, publishes dropped and counted,
 * retries without crashing, destroyed promptly. Port 1 on loopback refuses. */
static int s_down(bus_kind_t kind, int *failed_)
{
    struct event_base *base = event_base_new();
    char err[256];
    got_t g = { 0 };
    bus_config_t c = { .kind = kind, .redis_url = "redis://127.0.0.1:1", .nats_url = "nats://127.0.0.1:1",
                       .on_message = s_on_msg, .arg = &g };
    bus_t *sub = bus_new(base, &c, BUS_SUB, err, sizeof err);
    bus_t *pub = bus_new(base, &c, BUS_PUB, err, sizeof err);
    if (!sub || !pub) {
        fprintf(stderr, "  bus_new: %s\n", err);
        *failed_ = 1;
        return -1;
    }
    static const char t[] = "/\0r";
    bus_subscribe(sub, t, sizeof t);
    s_run(base, 400);
    int ok = !bus_ready(sub) && !bus_ready(pub);
    if (kind == BUS_REDIS) {
        ok = ok && bus_publish(pub, t, sizeof t, "x", 1) < 0;
        bus_stats_t st;
        bus_stats(pub, &st);
        ok = ok && st.publish_errors == 1 && st.errors >= 2;   /* first try and a retry */
    }
    bus_destroy(&sub);
    bus_destroy(&pub);
    event_base_free(base);
    return ok ? 0 : -1;
}

TEST(redis_server_down)
{
    CHECK(s_down(BUS_REDIS, failed_) == 0);
}

/* The cluster variant with no node reachable: a well-formed URL is not an
 * error, the seeds are retried, nothing is ready, publishes are dropped. */
TEST(rcluster_down)
{
    struct event_base *base = event_base_new();
    char err[256];
    got_t g = { 0 };
    bus_config_t c = { .kind = BUS_REDIS, .redis_url = "redis-cluster://127.0.0.1:1,127.0.0.1:2",
                       .on_message = s_on_msg, .arg = &g };
    bus_t *sub = bus_new(base, &c, BUS_SUB, err, sizeof err);
    bus_t *pub = bus_new(base, &c, BUS_PUB, err, sizeof err);
    CHECK(sub != NULL && pub != NULL);
    static const char t[] = "/\0r";
    CHECK(bus_subscribe(sub, t, sizeof t) == 0);
    s_run(base, 400);
    CHECK(!bus_ready(sub) && !bus_ready(pub));
    CHECK(bus_publish(pub, t, sizeof t, "x", 1) < 0);
    CHECK(bus_unsubscribe(sub, t, sizeof t) == 0);
    bus_stats_t st;
    bus_stats(pub, &st);
    CHECK_EQ_INT(st.publish_errors, 1);
    CHECK(st.errors >= 2);              /* both seeds tried */
    CHECK_EQ_INT(st.connects, 0);
    bus_destroy(&sub);
    bus_destroy(&pub);
    /* a malformed cluster URL is a settings error that names the option */
    c.redis_url = "redis-cluster://h:0";
    CHECK(bus_new(base, &c, BUS_SUB, err, sizeof err) == NULL);
    CHECK(strstr(err, "--redis-url") != NULL);
    event_base_free(base);
}

TEST(nats_server_down)
{
    CHECK(s_down(BUS_NATS, failed_) == 0);
}

TEST_MAIN(kind_names, nats_subject_roundtrip, nats_subject_every_byte_one_token, nats_subject_rejects,
          redis_channel, redis_url, rcluster_url, rcluster_keyslot, bad_settings,
          zmq_delivery_and_isolation, redis_server_down, rcluster_down, nats_server_down)
