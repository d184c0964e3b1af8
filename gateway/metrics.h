/*  metrics - GET /metrics on the gateway's listen port (Prometheus text format) */
#ifndef BELFRY_METRICS_H
#define BELFRY_METRICS_H

#include "gw.h"

/* Answers the current request on c with the gateway's counters. */
void metrics_serve(gw_t *gw, conn_t *c);

#endif
