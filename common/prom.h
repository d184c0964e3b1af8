/*  prom - the Prometheus text exposition format (version 0.0.4)
 *
 *  Writers for the /metrics pages of both programs: a family's # HELP and
 *  # TYPE lines, unlabelled samples, and histograms kept as per-bucket counts
 *  and written cumulatively with the +Inf bucket, _sum and _count.
 */
#ifndef BELFRY_PROM_H
#define BELFRY_PROM_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

#define PROM_MAX_BUCKETS 24

typedef struct {
    const double *bounds;       /* upper bounds, ascending, nb of them (static) */
    size_t nb;                  /* at most PROM_MAX_BUCKETS */
    uint64_t bucket[PROM_MAX_BUCKETS + 1];  /* per bucket, not cumulative; +Inf last */
    double sum;
    uint64_t count;
} prom_hist_t;

/* Clears h and sets its bounds (nb is capped at PROM_MAX_BUCKETS). */
void prom_hist_init(prom_hist_t *h, const double *bounds, size_t nb);
/* Counts one observation. */
void prom_hist_observe(prom_hist_t *h, double v);

/* # HELP and # TYPE lines of a family (type: counter, gauge, histogram). */
void prom_head(struct evbuffer *b, const char *name, const char *type, const char *help);
/* A family with one unlabelled sample. */
void prom_u64(struct evbuffer *b, const char *name, const char *type, const char *help, uint64_t v);
/* A histogram family: cumulative buckets, +Inf, _sum, _count. */
void prom_hist(struct evbuffer *b, const char *name, const char *help, const prom_hist_t *h);

#endif
