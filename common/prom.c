/*  prom - the Prometheus text exposition format  (see prom.h) */
#include "prom.h"

#include <event2/buffer.h>
#include <string.h>

void prom_hist_init(prom_hist_t *h, const double *bounds, size_t nb)
{
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->nb = nb > PROM_MAX_BUCKETS ? PROM_MAX_BUCKETS : nb;
}

void prom_hist_observe(prom_hist_t *h, double v)
{
    size_t i = 0;
    while (i < h->nb && v > h->bounds[i])
        i++;
    h->bucket[i]++;
    h->sum += v;
    h->count++;
}

void prom_head(struct evbuffer *b, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void prom_u64(struct evbuffer *b, const char *name, const char *type, const char *help, uint64_t v)
{
    prom_head(b, name, type, help);
    evbuffer_add_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

void prom_hist(struct evbuffer *b, const char *name, const char *help, const prom_hist_t *h)
{
    prom_head(b, name, "histogram", help);
    uint64_t cum = 0;
    for (size_t i = 0; i < h->nb; i++) {
        cum += h->bucket[i];
        evbuffer_add_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i],
                            (unsigned long long)cum);
    }
    cum += h->bucket[h->nb];
    evbuffer_add_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
                        (unsigned long long)cum, name, h->sum, name, (unsigned long long)h->count);
}
