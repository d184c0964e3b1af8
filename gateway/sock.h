/*  sock - Socket.IO v5 sockets (one per namespace of a session)
 *
 *  Decodes the Socket.IO packets an Engine.IO session receives, connects
 *  namespaces (authenticating each CONNECT and joining the client's personal
 *  room user_<id> and the broadcast room `all`), handles events, acks and
 *  binary attachments, and delivers fan-out messages to the members of a room.
 */
#ifndef BELFRY_SOCK_H
#define BELFRY_SOCK_H

#include <stddef.h>
#include <stdint.h>
#include "gw.h"
#include "rooms.h"
#include "pkt.h"
#include <jansson.h>

#define SOCK_MAX_ACKS_OUT 8
#define SOCK_MAX_JOIN_ACKS 8

struct sock {
    session_t *sess;            //  Engine.IO session it rides on
    char *nsp;                  //  Namespace ("/", "/notifs")
    size_t nsp_len;
    char sid[21];               //  Socket.IO socket id
    char *user;                 //  Authenticated user id
    room_slot_t *rooms;         //  Rooms joined (slots registered in the index)
    size_t nrooms, rooms_cap;
    int64_t next_ack;           //  Next id for a server -> client ack request
    int64_t *ack_ids;           //  Server -> client ack requests awaiting an answer
                                //  (SOCK_MAX_ACKS_OUT, allocated at the first)
    size_t acks_out;
    json_t *allowed_rooms;      //  The token's "rooms" claim (array), or NULL
    json_t *publish_rooms;      //  The token's "publish" claim (array), or NULL
    char pid[24];               //  Recovery id (connection-state recovery), "" if off
    int recovering;             //  CONNECT pending (recovery, or rooms being positioned): deliveries are held
    int join_next;              //  What to do once every room of the socket is positioned
    char join_pid[24];          //  The recovery request waiting for it
    uint64_t join_after;
    struct sock_join_ack { room_t *room; int64_t ack; } *join_acks;
                                //  SOCK_MAX_JOIN_ACKS, allocated at the first
    size_t njoin_acks;          //  `join` acks waiting for their room's position
    struct held *held;          //  Deliveries held while recovering (oldest first)
    struct held *held_tail;
    uint64_t recovered_to;      //  Last seq sent by the recovery replay
    double tokens;              //  Rate limit bucket (events)
    int64_t tokens_at;          //  Monotonic ms of the last refill
    int inflight;               //  Broker requests in flight for this socket
    struct event *expiry;       //  Fires when the token expires (exp claim)
    struct event *retry;        //  Retries broker requests that failed in passing
    int retry_unread, retry_put;    //  What to retry
    int retry_tries;
};

/* Handles the Socket.IO packet carried by an Engine.IO message. Returns 0, or
 * -1 on a protocol violation (the caller closes the session). */
int sock_on_message(session_t *s, const char *data, size_t len);
/* Handles a binary Engine.IO message (an attachment). 0 or -1 as above. */
int sock_on_binary(session_t *s, const void *data, size_t len);
/* Leaves all rooms and frees every socket of the session. */
void sock_destroy_all(session_t *s);

/* A freshly subscribed room got its position (fanout): the sockets that
 * waited for it to complete their CONNECT go on. */
void sock_room_positioned(room_t *room);

/* Sends DISCONNECT for the socket's namespace and removes the socket (the
 * client sees "io server disconnect"). */
void sock_disconnect(sock_t *k, const char *reason);

/* Queues a fan-out packet (seq 0: ephemeral) to the socket, or holds it
 * while the socket is recovering. */
void sock_deliver(sock_t *k, pkt_t *p, uint64_t seq);

/* Emits "4" + Socket.IO header + json as one Engine.IO message. */
void sock_emit(sock_t *k, int type, unsigned attachments, int64_t ack_id,
               const char *json, size_t json_len);
/* Emits the event `name` with one JSON argument (raw text). */
void sock_emit_event(sock_t *k, const char *name, const char *json, size_t json_len);
/* Acknowledges ack_id (if >= 0) with one argument: obj (stolen) /
 * {"error": message} / raw JSON text. */
void sock_ack_json(sock_t *k, int64_t ack_id, json_t *obj);
void sock_ack_error(sock_t *k, int64_t ack_id, const char *message);
void sock_ack_raw(sock_t *k, int64_t ack_id, const char *json, size_t len);
/* 1 if the room name matches the claim list (names, or prefixes ending in '*'). */
int sock_claim_allows(const json_t *claim, const char *room, size_t len);

/* Joins / leaves a room of the socket's namespace. 0, 1 (already in / not
 * in it), or -1 (allocation failure, too many rooms). */
int sock_join(sock_t *k, const char *room, size_t room_len);
int sock_leave(sock_t *k, const char *room, size_t room_len);

#endif
