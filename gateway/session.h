/*  session - Engine.IO v4 sessions over long-polling and WebSocket
 *
 *  A session is one Engine.IO connection, identified by its sid, living
 *  across the HTTP requests of long-polling and the WebSocket that may replace
 *  them. It owns the heartbeat (the server pings every pingInterval and closes
 *  the session when no pong comes within pingTimeout), the queue of packets
 *  waiting for the next poll, the upgrade (2probe/3probe, noop to the parked
 *  poll, 5, then the queue moves to the WebSocket in order), and the Socket.IO
 *  sockets (one per namespace) that ride on it (gateway/sock).
 *
 *  In raw mode (the /engine.io/ endpoint of --conformance) message packets are
 *  echoed instead of being parsed as Socket.IO.
 */
#ifndef BELFRY_SESSION_H
#define BELFRY_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>
#include "gw.h"
#include "http.h"
#include "pkt.h"

#define SESSION_SID_LEN 20
#define AUTH_QUERY_MAX 8192     /* longest token or user query parameter kept */

struct session {
    gw_t *gw;                   //  Gateway context
    char sid[SESSION_SID_LEN + 1];  //  Engine.IO session id
    int raw;                    //  Raw Engine.IO echo (conformance /engine.io/)
    int closed;                 //  Closed: waiting for its last references
    int upgraded;               //  Transport is the WebSocket (after 5, or direct)
    conn_t *ws;                 //  WebSocket transport, once upgraded
    conn_t *probe;              //  WebSocket being probed, before 5
    conn_t *poll;               //  Parked long-poll GET
    struct evbuffer *queue;     //  Polling: records waiting for the next GET (NULL until one is)
    struct event *hb;           //  Heartbeat timer
    int64_t pong_deadline;      //  Monotonic ms by which a pong is due, 0 if none due
    int pong_refreshed;         //  The deadline was extended once for this ping
    struct event *connect_timer;    //  Socket.IO connect timeout
    char *query_token;          //  `token` query parameter of the handshake
    char *query_user;           //  `user` query parameter (insecure mode)
    sock_t **socks;             //  Socket.IO sockets, one per namespace
    size_t nsocks, socks_cap;
    /* binary packet being assembled (Socket.IO BINARY_EVENT / BINARY_ACK) */
    char *bin_packet;           //  The header packet text
    size_t bin_packet_len;
    unsigned bin_expected;      //  Attachments announced
    unsigned bin_have;          //  Attachments received
    void **bin_data;            //  Attachments (malloc'd)
    size_t *bin_len;
    session_t *reap_next;       //  Reap list link, once closed
    session_t *pq_prev, *pq_next;   //  Polling queue to hand over at the end of the turn
    int pq_on;                  //  On that list (gw->poll_dirty)
};

/* Handles an HTTP request for the Engine.IO endpoint (handshake, poll, post,
 * WebSocket upgrade). raw selects the raw echo endpoint. Always answers or
 * parks the request. */
void session_http(gw_t *gw, conn_t *c, const http_request_t *req, const char *body,
                  size_t blen, int raw);
/* A POST over maxPayload: answers 413 and closes the session it names. */
void session_http_too_large(gw_t *gw, conn_t *c, const http_request_t *req);
/* 1 if the Origin value is allowed by --cors-origin. */
int session_origin_allowed(gw_t *gw, const char *origin, size_t len);

/* A message arrived on a WebSocket carried by this session (or probing it). */
void session_on_ws_message(session_t *s, conn_t *c, int binary, const uint8_t *data, size_t len);
/* The connection closed; the session forgets it (and may close itself). */
void session_on_conn_closed(session_t *s, conn_t *c);

/* Sends an Engine.IO text packet (type character included: "40{...}"). */
void session_send(session_t *s, const char *text, size_t len);
/* Sends an Engine.IO binary message. */
void session_send_binary(session_t *s, const void *data, size_t len);
/* Sends a shared Engine.IO text packet (see pkt.h). */
void session_send_pkt(session_t *s, pkt_t *p);

/* Hands every polling queue that grew during this turn to its parked GET (all
 * of the turn's packets in one response), then closes a session whose queue,
 * with no GET to take it, is over --max-output. Runs at the end of a loop
 * turn, before conn_flush writes. */
void session_flush_polls(gw_t *gw);

/* A Socket.IO socket connected on the session: its connect timeout is over
 * (the timer is freed, an idle connection keeps no memory for it). */
void session_connected(session_t *s);

/* Closes the session: its sockets leave their rooms, its transports close.
 * reason is logged. Safe to call more than once and from any callback: the
 * memory is freed later by session_reap. */
void session_close(session_t *s, const char *reason);

/* Closes every session (shutdown). */
void session_close_all(gw_t *gw, const char *reason);
/* Frees the sessions closed since the last call (the loop calls it). A closed
 * session stays allocated, and its sockets stay in their rooms marked closed,
 * until then: closing never frees anything under a caller's feet. */
void session_reap(gw_t *gw);

#endif
