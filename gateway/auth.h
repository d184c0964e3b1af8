/*  auth - who is this client?
 *
 *  A client proves its identity with a JWT (common/jwt) carried in the
 *  Socket.IO CONNECT payload {"token": "..."} or in the `token` query
 *  parameter of the Engine.IO handshake. In development mode
 *  (--insecure-user-param) an unauthenticated `user` query parameter is
 *  accepted instead when no token is given.
 */
#ifndef BELFRY_AUTH_H
#define BELFRY_AUTH_H

#include <stddef.h>
#include <jansson.h>
#include "gw.h"

#define AUTH_USER_MAX 128

/* Identifies a client connecting to a namespace. auth_json (may be NULL) is
 * the CONNECT payload, query_token / query_user the handshake's parameters
 * (NULL if absent). On success returns 0, writes the user id into user
 * (capacity AUTH_USER_MAX) and, if claims_out is not NULL, the token's claims
 * (caller json_decref's; NULL in insecure mode). On failure returns -1 and
 * sets *reason to a static message for the CONNECT_ERROR. */
int auth_identify(gw_t *gw, const json_t *auth_json, const char *query_token,
                  const char *query_user, char *user, json_t **claims_out,
                  const char **reason);

#endif
