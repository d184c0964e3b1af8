/*  prom - the Prometheus text exposition format (version 0.0.4)
 *
 *  Writers for the /metrics pages of both programs: a family's # HELP and
 *  # TYPE lines, unlabelled samples (one at a time or a table of them),
 *  families whose samples differ by one label (values escaped as the format
 *  says), and histograms kept as per-bucket counts and written cumulatively
 *  with the +Inf bucket, _sum and _count. Names, types and help texts are
 *  the caller's (static strings, written as given).
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
/* A family with one unlabelled floating-point sample (6 decimals). */
void prom_f64(struct evbuffer *b, const char *name, const char *type, const char *help, double v);

/* One family of one unlabelled sample: a row of a table for prom_u64s. */
typedef struct {
    const char *name, *type, *help;
    uint64_t v;
} prom_metric_t;
/* prom_u64 for each of the n families of m, in order. */
void prom_u64s(struct evbuffer *b, const prom_metric_t *m, size_t n);

/* One sample of a labelled family: its label value and its value. */
typedef struct {
    const char *value;          /* label value (escaped when written) */
    uint64_t v;
} prom_sample_t;
/* A family whose n samples differ by one label: the # HELP and # TYPE lines,
 * then name{label="value"} v per sample, in order. In the value, \, " and a
 * line feed are written as \\, \" and \n. n = 0 writes the head only. */
void prom_u64_by(struct evbuffer *b, const char *name, const char *type, const char *help,
                 const char *label, const prom_sample_t *s, size_t n);

/* A histogram family: cumulative buckets, +Inf, _sum, _count. */
void prom_hist(struct evbuffer *b, const char *name, const char *help, const prom_hist_t *h);

#endif
