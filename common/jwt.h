/*  jwt - JSON Web Token verification (RFC 7519, JWS compact form)
 *
 *  HS256 with a shared secret, and RS256 with an RSA public key (PEM). The
 *  verifier accepts exactly the algorithms it was configured with: "none" and
 *  any algorithm whose key is not configured are refused (no algorithm
 *  confusion: an HS256 token is never checked against the RSA public key).
 *  Checks exp and nbf (with leeway), and aud / iss when configured. Tokens
 *  longer than JWT_MAX_LEN are refused before any decoding.
 */
#ifndef BELFRY_JWT_H
#define BELFRY_JWT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define JWT_MAX_LEN 8192

typedef enum {
    JWT_OK            =  0,
    JWT_ERR_FORMAT    = -1,  /* not three base64url parts, bad JSON, too long */
    JWT_ERR_ALG       = -2,  /* alg missing, "none", or not configured */
    JWT_ERR_SIGNATURE = -3,
    JWT_ERR_EXPIRED   = -4,
    JWT_ERR_NOT_YET   = -5,  /* nbf in the future */
    JWT_ERR_CLAIMS    = -6,  /* sub missing or not a string/integer, exp/nbf not numbers */
    JWT_ERR_AUDIENCE  = -7,
    JWT_ERR_ISSUER    = -8,
    JWT_ERR_NOMEM     = -9,
} jwt_err_t;

typedef struct jwt_verifier jwt_verifier_t;

jwt_verifier_t *jwt_verifier_new(void);             /* NULL on allocation failure */
void jwt_verifier_destroy(jwt_verifier_t **self_p); /* NULL-safe; wipes the secret */
/* Enables HS256 with this secret (copied). 0, or -1 if len == 0. */
int jwt_verifier_set_hs256(jwt_verifier_t *self, const void *secret, size_t len);
/* Enables RS256 with a PEM public key. 0, or -1 if the PEM does not parse. */
int jwt_verifier_set_rs256_pem(jwt_verifier_t *self, const char *pem, size_t len);
/* Require this audience (string aud, or one element of an aud array) / issuer. */
void jwt_verifier_set_audience(jwt_verifier_t *self, const char *aud);
void jwt_verifier_set_issuer(jwt_verifier_t *self, const char *iss);
void jwt_verifier_set_leeway(jwt_verifier_t *self, int64_t seconds);  /* default 0 */

/* Verifies token[0..len) at time `now` (Unix seconds). On JWT_OK, *claims_out
 * (if not NULL) receives the claims object (caller owns it: json_decref) and
 * sub_out (capacity sub_cap) the subject as text (an integer sub is printed in
 * decimal). Returns JWT_OK or a jwt_err_t. */
int jwt_verify(const jwt_verifier_t *self, const char *token, size_t len, int64_t now,
               json_t **claims_out, char *sub_out, size_t sub_cap);

/* A short human-readable reason for an error code ("token expired"). */
const char *jwt_strerror(int err);

/* Signs claims with HS256 (for tests, tools and benchmarks). Returns a
 * malloc'd NUL-terminated token the caller frees, or NULL. */
char *jwt_sign_hs256(const void *secret, size_t len, const json_t *claims);

#endif
