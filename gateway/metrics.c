/*  metrics - GET /metrics on the gateway's listen port (Prometheus text format) */
#include "metrics.h"
#include "conn.h"
#include "rooms.h"
#include "fanout.h"
#include "upstream.h"
#include "prom.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

void metrics_serve(gw_t *gw, conn_t *c)
{
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        conn_http_reply(c, 500, "text/plain", NULL, "out of memory\n", 14);
        return;
    }
    const gw_stats_t *st = &gw->stats;
    const prom_metric_t conns[] = {
        { "belfry_gateway_connections_total", "counter", "TCP connections accepted.",
          st->connections_total },
        { "belfry_gateway_connections", "gauge", "TCP connections open.", st->connections_open },
        { "belfry_gateway_sessions", "gauge", "Engine.IO sessions open.", st->sessions_open },
        { "belfry_gateway_rooms", "gauge", "Rooms with members on this gateway.",
          rooms_count(gw->rooms) },
        { "belfry_gateway_websocket_upgrades_total", "counter",
          "WebSocket handshakes completed.", st->ws_upgrades },
        { "belfry_gateway_messages_in_total", "counter",
          "Messages received from the fan-out.", st->messages_in },
        { "belfry_gateway_messages_out_total", "counter",
          "Engine.IO packets queued to clients.", st->messages_out },
        { "belfry_gateway_bytes_out_total", "counter", "Bytes queued to clients.",
          st->bytes_out },
        { "belfry_gateway_auth_failures_total", "counter",
          "Refused authentications and room joins.", st->auth_failures },
        { "belfry_gateway_protocol_errors_total", "counter",
          "Malformed HTTP, WebSocket, Engine.IO or Socket.IO input.", st->protocol_errors },
        { "belfry_gateway_slow_consumer_disconnects_total", "counter",
          "Clients dropped at their output buffer limit.", st->slow_consumer_drops },
        { "belfry_gateway_bad_envelopes_total", "counter",
          "Undecodable messages from the fan-out.", st->bad_envelopes },
    };
    prom_u64s(b, conns, sizeof conns / sizeof conns[0]);
    const prom_sample_t lim[] = {
        { "max_connections", st->limit_conn_total }, { "max_conn_per_ip", st->limit_conn_ip },
        { "events_per_sec", st->limit_rate }, { "max_inflight", st->limit_inflight },
        { "max_rooms", st->limit_rooms }, { "handshake_timeout", st->limit_handshake_timeout },
        { "max_head", st->limit_head }, { "max_payload", st->limit_payload },
    };
    prom_u64_by(b, "belfry_gateway_limit_refusals_total", "counter",
                "Requests refused by a limit.", "limit", lim, sizeof lim / sizeof lim[0]);
    const fanout_stats_t *fs = fanout_stats(gw->fanout);
    bus_stats_t bs;
    fanout_bus_stats(gw->fanout, &bs);
    const prom_metric_t links[] = {
        { "belfry_gateway_token_expired_total", "counter",
          "Sockets disconnected because their token expired.", st->token_expired },
        { "belfry_gateway_gaps_total", "counter",
          "Broken prev links detected in the fan-out.", fs->gaps },
        { "belfry_gateway_replayed_total", "counter",
          "Messages delivered from broker replays.", fs->replayed },
        { "belfry_gateway_resyncs_total", "counter",
          "Rooms found behind by a positions check.", fs->resyncs },
        { "belfry_gateway_duplicates_total", "counter",
          "Messages dropped as already delivered.", fs->duplicates },
        { "belfry_gateway_replay_failures_total", "counter",
          "Replays that could not be completed.", fs->replay_failures },
        { "belfry_gateway_broker_ready", "gauge",
          "1 when a leading broker answers and the fan-out is connected.",
          (uint64_t)(fanout_ready(gw->fanout) && up_ready(gw->upstream)) },
        { "belfry_gateway_fanout_received_total", "counter",
          "Messages received from the fan-out transport.", bs.received },
        { "belfry_gateway_fanout_malformed_total", "counter",
          "Fan-out messages dropped as not ours (frames, channel, subject).", bs.malformed },
        { "belfry_gateway_fanout_dropped_total", "counter",
          "Fan-out messages dropped by a full transport queue.", bs.dropped },
        { "belfry_gateway_fanout_reconnects_total", "counter",
          "Fan-out transport connections (re)established.", bs.connects },
        { "belfry_gateway_fanout_errors_total", "counter",
          "Fan-out transport failures (connect, subscribe, server errors).", bs.errors },
    };
    prom_u64s(b, links, sizeof links / sizeof links[0]);
    prom_hist(b, "belfry_gateway_delivery_latency_seconds",
              "Row created_at to queued for clients, live messages.", &fs->latency);
    size_t n = evbuffer_get_length(b);
    conn_http_reply(c, 200, "text/plain; version=0.0.4", NULL, evbuffer_pullup(b, -1), n);
    evbuffer_free(b);
}
