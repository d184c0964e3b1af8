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

struct sock {
    session_t *sess;            //  Engine.IO session it rides on
    char *nsp;                  //  Namespace ("/", "/notifs")
    size_t nsp_len;
    char sid[21];               //  Socket.IO socket id
    char *user;                 //  Authenticated user id
    room_slot_t *rooms;         //  Rooms joined (slots registered in the index)
    size_t nrooms, rooms_cap;
    int64_t next_ack;           //  Next id for a server -> client ack request
    json_t *allowed_rooms;      //  The token's "rooms" claim (array), or NULL
};

/* Handles the Socket.IO packet carried by an Engine.IO message. Returns 0, or
 * -1 on a protocol violation (the caller closes the session). */
int sock_on_message(session_t *s, const char *data, size_t len);
/* Handles a binary Engine.IO message (an attachment). 0 or -1 as above. */
int sock_on_binary(session_t *s, const void *data, size_t len);
/* Leaves all rooms and frees every socket of the session. */
void sock_destroy_all(session_t *s);

/* Joins / leaves a room of the socket's namespace. 0, 1 (already in / not
 * in it), or -1 (allocation failure, too many rooms). */
int sock_join(sock_t *k, const char *room, size_t room_len);
int sock_leave(sock_t *k, const char *room, size_t room_len);

#endif
