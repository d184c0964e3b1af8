/*  auth - who is this client?  (see auth.h) */
#include "auth.h"
#include "jwt.h"
#include "log.h"

#include <string.h>
#include <time.h>

/* A user id becomes part of a room name (user_<id>): keep it to characters
 * that cannot confuse anyone reading a room name or a log line. */
static int s_user_ok(const char *u)
{
    size_t n = strlen(u);
    if (n == 0 || n >= AUTH_USER_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)u[i];
        if (ch <= 0x20 || ch == 0x7f || ch == '"' || ch == '\\')
            return 0;
    }
    return 1;
}

int auth_identify(gw_t *gw, const json_t *auth_json, const char *query_token,
                  const char *query_user, char *user, json_t **claims_out,
                  const char **reason)
{
    const char *token = NULL;
    size_t token_len = 0;
    if (claims_out)
        *claims_out = NULL;
    if (auth_json && json_is_object(auth_json)) {
        json_t *t = json_object_get(auth_json, "token");
        if (t && !json_is_string(t)) {
            *reason = "token must be a string";
            return -1;
        }
        if (t) {
            token = json_string_value(t);
            token_len = json_string_length(t);
        }
    }
    if (!token && query_token) {
        token = query_token;
        token_len = strlen(query_token);
    }
    if (!token) {
        if (gw->cfg.insecure_user_param && query_user) {
            if (!s_user_ok(query_user)) {
                *reason = "invalid user parameter";
                return -1;
            }
            strcpy(user, query_user);
            return 0;
        }
        *reason = "authentication token missing";
        return -1;
    }
    if (!gw->jwt) {
        *reason = "token authentication is not configured";
        return -1;
    }
    int rc = jwt_verify(gw->jwt, token, token_len, (int64_t)time(NULL), claims_out,
                        user, AUTH_USER_MAX);
    if (rc != JWT_OK) {
        *reason = jwt_strerror(rc);
        return -1;
    }
    if (!s_user_ok(user)) {
        if (claims_out && *claims_out) {
            json_decref(*claims_out);
            *claims_out = NULL;
        }
        *reason = "invalid subject in token";
        return -1;
    }
    return 0;
}
