/*  center - the notification center: unread lists, mark-as-read, client
 *  events run in SQL, and publishing, all through the broker (gateways hold
 *  no database connection). See proto/PROTOCOL.md for the RPC ops.
 *
 *  Client events (each answered by an ack when the client asked for one):
 *    unread                   -> {"count": N, "items": [...]}
 *    mark_read  id | [ids] | {"ids": [...]}  -> {"unread": N}
 *    mark_all_read            -> {"unread": N}
 *    publish {"room", "event", "payload"}    -> {"id": N}  (token claim "publish")
 *    anything else            -> the configured SQL function's result
 *  Failures are acks {"error": "..."}.
 */
#ifndef BELFRY_CENTER_H
#define BELFRY_CENTER_H

#include <stddef.h>
#include <stdint.h>
#include "sock.h"

/* A socket connected (fresh or recovered): sends it the event `unread`. */
void center_on_connected(sock_t *k);
/* Handles a client event that is not join/leave. args is the inside of the
 * arguments array after the name (",a,b]" with the comma removed: "a,b]"). */
void center_event(sock_t *k, const char *name, const char *args, size_t args_len, int64_t ack_id);
/* Records the socket's rooms with the broker (recovery), fire and forget. */
void center_session_put(sock_t *k);

#endif
