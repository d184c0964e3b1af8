/*  conn - one client TCP connection: HTTP/1.1 requests, then maybe WebSocket
 *
 *  A connection starts in HTTP mode: it reads request heads (proto/http) and
 *  bodies split across any number of reads, answers /healthz itself and hands
 *  Engine.IO requests to the session module. A long-poll GET may be parked on
 *  it (it stays readable, so a peer that gives up is noticed at once). After a
 *  WebSocket handshake it reads frames (proto/ws) and hands messages to its
 *  session. Output is capped: a peer that does not read is dropped at
 *  max_output bytes queued, and nobody else waits for it.
 *
 *  Connections are never freed inside their own callbacks: conn_close and
 *  conn_abort put them on the gateway's reap list, freed at the next loop turn.
 */
#ifndef BELFRY_CONN_H
#define BELFRY_CONN_H

#include <stddef.h>
#include <event2/util.h>
#include "gw.h"
#include "http.h"
#include "pkt.h"

enum { CONN_HTTP = 0, CONN_POLL, CONN_WS, CONN_CLOSING };

/* Accepts fd (ownership passes to the connection). NULL on failure (fd closed). */
conn_t *conn_new(gw_t *gw, evutil_socket_t fd, const struct sockaddr *sa, int salen);
int conn_state(const conn_t *c);
const char *conn_peer(const conn_t *c);
session_t *conn_session(const conn_t *c);
void conn_set_session(conn_t *c, session_t *s);

/* Flushes what is queued, then closes. Idempotent. The connection is detached
 * from its session without calling back into it. */
void conn_close(conn_t *c);
/* Closes now, dropping queued output. Idempotent. */
void conn_abort(conn_t *c);
/* Frees the connections closed since the last call (the loop calls it). */
void conn_reap(gw_t *gw);
/* Closes every connection that waits between HTTP requests (keep-alive
 * with nothing received): a draining gateway does not wait for them. The
 * others answer their request with Connection: close while draining. */
void conn_close_idle(gw_t *gw);
/* Closes and frees every connection (shutdown, after the sessions). */
void conn_free_all(gw_t *gw);
/* Writes the output queued during this loop turn, one writev per
 * connection (the loop calls it last in each turn, see conn.c). */
void conn_flush(gw_t *gw);

/* HTTP replies. Each finishes the current request: the connection goes back
 * to reading the next request, or closes when the request asked to. `extra`
 * holds additional header lines, each ending in CRLF, or NULL. */
void conn_http_reply(conn_t *c, int status, const char *ctype, const char *extra,
                     const void *body, size_t len);
/* 400-style Engine.IO error: JSON body {"code":N,"message":"..."}. */
void conn_http_eio_error(conn_t *c, int status, int code, const char *message);
/* Parks the current request (a long-poll GET) without answering it. */
void conn_park(conn_t *c);

/* Completes a WebSocket handshake for req (101 Switching Protocols) and
 * switches the connection to WebSocket mode. Returns 0, or -1 after having
 * answered 400 (bad or missing key/version). */
int conn_ws_accept(conn_t *c, const http_request_t *req);
/* Sends one WebSocket message. 0, or -1 if the connection is closing or was
 * just dropped for exceeding max_output. */
int conn_ws_send(conn_t *c, int opcode, const void *data, size_t len);
/* Sends a shared packet (adds a reference). 0 or -1 as conn_ws_send. */
int conn_ws_send_pkt(conn_t *c, pkt_t *p);
/* Sends a close frame with code and reason, then closes. */
void conn_ws_close(conn_t *c, int code, const char *reason);

#endif
