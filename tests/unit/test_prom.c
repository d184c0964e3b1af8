/* Unit tests for common/prom.c: the exact text of each writer (what both
 * /metrics pages and the scrapers that parse them rely on). */
#include "prom.h"
#include "test.h"

#include <event2/buffer.h>

/* The buffer's text, NUL-terminated (static; the buffer is drained). */
static const char *s_text(struct evbuffer *b)
{
    static char out[4096];
    size_t n = evbuffer_get_length(b);
    if (n >= sizeof out)
        n = sizeof out - 1;
    evbuffer_remove(b, out, n);
    out[n] = '\0';
    return out;
}

TEST(unlabelled_samples)
{
    struct evbuffer *b = evbuffer_new();
    CHECK(b);
    prom_u64(b, "x_total", "counter", "Things done.", 18446744073709551615ULL);
    CHECK_EQ_STR(s_text(b), "# HELP x_total Things done.\n# TYPE x_total counter\n"
                            "x_total 18446744073709551615\n");
    prom_f64(b, "lag_seconds", "gauge", "Lag.", 0.0015);
    CHECK_EQ_STR(s_text(b), "# HELP lag_seconds Lag.\n# TYPE lag_seconds gauge\n"
                            "lag_seconds 0.001500\n");
    const prom_metric_t m[] = {
        { "a", "gauge", "First.", 1 },
        { "b_total", "counter", "Second.", 0 },
    };
    prom_u64s(b, m, 2);
    CHECK_EQ_STR(s_text(b), "# HELP a First.\n# TYPE a gauge\na 1\n"
                            "# HELP b_total Second.\n# TYPE b_total counter\nb_total 0\n");
    prom_u64s(b, m, 0);
    CHECK_EQ_INT(evbuffer_get_length(b), 0);
    evbuffer_free(b);
}

TEST(labelled_family_escapes_values)
{
    struct evbuffer *b = evbuffer_new();
    CHECK(b);
    const prom_sample_t s[] = {
        { "max_rooms", 3 },
        { "a\"b\\c\nd", 4 },
        { "", 5 },
        { NULL, 6 },
    };
    prom_u64_by(b, "refusals_total", "counter", "Refused, by limit.", "limit", s, 4);
    CHECK_EQ_STR(s_text(b), "# HELP refusals_total Refused, by limit.\n"
                            "# TYPE refusals_total counter\n"
                            "refusals_total{limit=\"max_rooms\"} 3\n"
                            "refusals_total{limit=\"a\\\"b\\\\c\\nd\"} 4\n"
                            "refusals_total{limit=\"\"} 5\n"
                            "refusals_total{limit=\"\"} 6\n");
    prom_u64_by(b, "none_total", "counter", "Nothing yet.", "op", s, 0);
    CHECK_EQ_STR(s_text(b), "# HELP none_total Nothing yet.\n# TYPE none_total counter\n");
    evbuffer_free(b);
}

TEST(histogram_is_cumulative)
{
    static const double bounds[] = { 1, 2.5, 10 };
    prom_hist_t h;
    prom_hist_init(&h, bounds, 3);
    prom_hist_observe(&h, 0.5);
    prom_hist_observe(&h, 1);          /* le="1" includes its bound */
    prom_hist_observe(&h, 3);
    prom_hist_observe(&h, 100);        /* +Inf only */
    struct evbuffer *b = evbuffer_new();
    CHECK(b);
    prom_hist(b, "d_seconds", "Durations.", &h);
    CHECK_EQ_STR(s_text(b), "# HELP d_seconds Durations.\n# TYPE d_seconds histogram\n"
                            "d_seconds_bucket{le=\"1\"} 2\n"
                            "d_seconds_bucket{le=\"2.5\"} 2\n"
                            "d_seconds_bucket{le=\"10\"} 3\n"
                            "d_seconds_bucket{le=\"+Inf\"} 4\n"
                            "d_seconds_sum 104.500000\nd_seconds_count 4\n");
    /* more bounds than PROM_MAX_BUCKETS: capped, never out of bounds */
    static double many[PROM_MAX_BUCKETS + 5];
    for (size_t i = 0; i < sizeof many / sizeof many[0]; i++)
        many[i] = (double)i;
    prom_hist_init(&h, many, sizeof many / sizeof many[0]);
    CHECK_EQ_INT(h.nb, PROM_MAX_BUCKETS);
    prom_hist_observe(&h, 1e9);
    CHECK_EQ_INT(h.bucket[PROM_MAX_BUCKETS], 1);
    evbuffer_free(b);
}

TEST_MAIN(unlabelled_samples, labelled_family_escapes_values, histogram_is_cumulative)
