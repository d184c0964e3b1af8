/* Unit tests for broker/ring.c: the ring of recently published envelopes. */
#include "../../broker/ring.c"

#include "test.h"

#include <stdio.h>

static int s_push(ring_t *r, uint64_t seq, const char *room)
{
    char env[32];
    int n = snprintf(env, sizeof env, "env%llu", (unsigned long long)seq);
    return ring_push(r, seq, room, strlen(room) + 1, env, (size_t)n);
}

static int s_match_room(void *arg, const char *topic, size_t len)
{
    const char *room = arg;
    return len == strlen(room) + 1 && memcmp(topic, room, len) == 0;
}

static int s_match_all(void *arg, const char *topic, size_t len)
{
    (void)arg;
    (void)topic;
    (void)len;
    return 1;
}

typedef struct {
    uint64_t seqs[64];
    size_t n;
} got_t;

static void s_take(void *arg, const ring_entry_t *e)
{
    got_t *g = arg;
    if (g->n < 64)
        g->seqs[g->n++] = e->seq;
}

TEST(push_keeps_consecutive_seqs_and_evicts_oldest_at_count_cap)
{
    ring_t *r = ring_new(3, 1 << 20);
    CHECK(r);
    CHECK_EQ_INT(ring_count(r), 0);
    CHECK(!ring_covers(r, 0));
    for (uint64_t s = 10; s <= 14; s++)
        CHECK_EQ_INT(s_push(r, s, "a"), 0);
    CHECK_EQ_INT(ring_count(r), 3);
    CHECK_EQ_INT(ring_first(r), 12);
    CHECK_EQ_INT(ring_last(r), 14);
    ring_entry_t e;
    CHECK_EQ_INT(ring_get(r, 11, &e), -1);
    CHECK_EQ_INT(ring_get(r, 13, &e), 0);
    CHECK_EQ_MEM(e.env, e.env_len, "env13");
    CHECK_EQ_MEM(e.topic, e.topic_len - 1, "a");
    CHECK(ring_covers(r, 11));      /* seqs 12.. are all here */
    CHECK(ring_covers(r, 14));
    CHECK(!ring_covers(r, 10));     /* 11 is gone */
    ring_destroy(&r);
    CHECK(r == NULL);
    ring_destroy(&r);
}

TEST(a_hole_clears_the_ring)
{
    ring_t *r = ring_new(10, 1 << 20);
    s_push(r, 1, "a");
    s_push(r, 2, "a");
    CHECK_EQ_INT(s_push(r, 5, "a"), 0);
    CHECK_EQ_INT(ring_count(r), 1);
    CHECK_EQ_INT(ring_first(r), 5);
    ring_destroy(&r);
}

TEST(byte_cap_evicts_and_oversized_message_clears)
{
    /* each message: topic "a\0" (2) + "envN" (4) = 6 bytes */
    ring_t *r = ring_new(100, 13);
    for (uint64_t s = 1; s <= 5; s++)
        CHECK_EQ_INT(s_push(r, s, "a"), 0);
    CHECK_EQ_INT(ring_count(r), 2);
    CHECK(ring_bytes(r) <= 13);
    CHECK_EQ_INT(ring_first(r), 4);
    char big[64];
    memset(big, 'x', sizeof big);
    CHECK_EQ_INT(ring_push(r, 6, "a", 2, big, sizeof big), -1);
    CHECK_EQ_INT(ring_count(r), 0);
    ring_destroy(&r);
}

TEST(push_front_prepends_the_preload_before_live_messages)
{
    ring_t *r = ring_new(4, 1 << 20);
    s_push(r, 100, "a");            /* live, published before the preload came */
    char env[] = "old";
    CHECK_EQ_INT(ring_push_front(r, 98, "a", 2, env, 3), -1);   /* not first - 1 */
    CHECK_EQ_INT(ring_push_front(r, 99, "a", 2, env, 3), 0);
    CHECK_EQ_INT(ring_push_front(r, 98, "a", 2, env, 3), 0);
    CHECK_EQ_INT(ring_push_front(r, 97, "a", 2, env, 3), 0);
    CHECK_EQ_INT(ring_push_front(r, 96, "a", 2, env, 3), 1);    /* full */
    CHECK_EQ_INT(ring_first(r), 97);
    CHECK_EQ_INT(ring_last(r), 100);
    s_push(r, 101, "a");            /* live again: evicts 97 */
    CHECK_EQ_INT(ring_first(r), 98);
    ring_entry_t e;
    CHECK_EQ_INT(ring_get(r, 99, &e), 0);
    CHECK_EQ_MEM(e.env, e.env_len, "old");
    ring_clear(r);
    CHECK_EQ_INT(ring_push_front(r, 7, "a", 2, env, 3), 0);     /* empty: any seq */
    CHECK_EQ_INT(ring_first(r), 7);
    ring_destroy(&r);
}

TEST(scan_filters_by_topic_in_seq_order_with_limit_and_more)
{
    ring_t *r = ring_new(100, 1 << 20);
    const char *rooms[] = { "a", "b", "a", "c", "a", "a" };
    for (int i = 0; i < 6; i++)
        s_push(r, (uint64_t)(20 + i), rooms[i]);   /* a: 20 22 24 25 */
    got_t g = { { 0 }, 0 };
    int more = -1;
    CHECK_EQ_INT(ring_scan(r, 0, 10, s_match_room, "a", s_take, &g, &more), 4);
    CHECK_EQ_INT(more, 0);
    CHECK_EQ_INT(g.seqs[0], 20);
    CHECK_EQ_INT(g.seqs[3], 25);
    g.n = 0;
    CHECK_EQ_INT(ring_scan(r, 20, 2, s_match_room, "a", s_take, &g, &more), 2);
    CHECK_EQ_INT(more, 1);
    CHECK_EQ_INT(g.seqs[0], 22);
    CHECK_EQ_INT(g.seqs[1], 24);
    g.n = 0;
    CHECK_EQ_INT(ring_scan(r, 24, 1, s_match_room, "a", s_take, &g, &more), 1);
    CHECK_EQ_INT(more, 0);          /* exactly the last one: nothing more */
    g.n = 0;
    CHECK_EQ_INT(ring_scan(r, 25, 10, s_match_all, NULL, s_take, &g, &more), 0);
    CHECK_EQ_INT(ring_scan(r, 1000, 10, s_match_all, NULL, s_take, &g, &more), 0);
    CHECK_EQ_INT(ring_scan(r, 22, 10, s_match_room, "c", s_take, &g, &more), 1);
    CHECK_EQ_INT(g.seqs[0], 23);
    ring_destroy(&r);
}

TEST(wraparound_keeps_lookup_by_seq_exact)
{
    ring_t *r = ring_new(5, 1 << 20);
    for (uint64_t s = 1; s <= 23; s++)
        s_push(r, s, s % 2 ? "odd" : "even");
    CHECK_EQ_INT(ring_first(r), 19);
    for (uint64_t s = 19; s <= 23; s++) {
        ring_entry_t e;
        char want[16];
        snprintf(want, sizeof want, "env%llu", (unsigned long long)s);
        CHECK_EQ_INT(ring_get(r, s, &e), 0);
        CHECK_EQ_INT(e.seq, s);
        CHECK_EQ_MEM(e.env, e.env_len, want);
    }
    got_t g = { { 0 }, 0 };
    int more;
    CHECK_EQ_INT(ring_scan(r, 0, 10, s_match_room, "odd", s_take, &g, &more), 3);
    CHECK_EQ_INT(g.seqs[0], 19);
    CHECK_EQ_INT(g.seqs[2], 23);
    ring_destroy(&r);
}

TEST_MAIN(push_keeps_consecutive_seqs_and_evicts_oldest_at_count_cap, a_hole_clears_the_ring,
          byte_cap_evicts_and_oversized_message_clears,
          push_front_prepends_the_preload_before_live_messages,
          scan_filters_by_topic_in_seq_order_with_limit_and_more,
          wraparound_keeps_lookup_by_seq_exact)
