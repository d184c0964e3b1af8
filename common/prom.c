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

void prom_f64(struct evbuffer *b, const char *name, const char *type, const char *help, double v)
{
    prom_head(b, name, type, help);
    evbuffer_add_printf(b, "%s %.6f\n", name, v);
}

void prom_u64s(struct evbuffer *b, const prom_metric_t *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        prom_u64(b, m[i].name, m[i].type, m[i].help, m[i].v);
}

/* A label value between its quotes: backslash, double quote and line feed
 * escaped, everything else as is. */
static void s_label_value(struct evbuffer *b, const char *v)
{
    const char *run = v;
    for (; *v; v++) {
        const char *esc = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : *v == '\n' ? "\\n" : NULL;
        if (!esc)
            continue;
        evbuffer_add(b, run, (size_t)(v - run));
        evbuffer_add(b, esc, 2);
        run = v + 1;
    }
    evbuffer_add(b, run, (size_t)(v - run));
}

void prom_u64_by(struct evbuffer *b, const char *name, const char *type, const char *help,
                 const char *label, const prom_sample_t *s, size_t n)
{
    prom_head(b, name, type, help);
    for (size_t i = 0; i < n; i++) {
        evbuffer_add_printf(b, "%s{%s=\"", name, label);
        s_label_value(b, s[i].value ? s[i].value : "");
        evbuffer_add_printf(b, "\"} %llu\n", (unsigned long long)s[i].v);
    }
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
