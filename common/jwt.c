/*  jwt - JSON Web Token verification (RFC 7519, JWS compact form)
 *
 *  Design: the verifier holds at most one key per algorithm (an HS256 secret,
 *  an RS256 public key) and the token's "alg" only *selects* among the keys
 *  that are configured: an algorithm without a key, "none", or a missing or
 *  non-string alg is JWT_ERR_ALG, so a token can never make us use the RSA
 *  public key text as an HMAC secret. The order of checks is fixed: length
 *  cap, three strict base64url parts, header JSON, alg, signature (HMAC
 *  compared with CRYPTO_memcmp, or EVP_DigestVerify), then the payload JSON
 *  and its claims. Only the header is parsed before the signature is known
 *  to be good. JSON with duplicate keys is refused, so no two parsers can
 *  read one token differently. Decoding uses fixed stack buffers sized from
 *  JWT_MAX_LEN; nothing a peer sends can make us allocate more. A header
 *  that is byte for byte one of the few that signers write (S_KNOWN_HEADERS)
 *  is not parsed: its alg is known and it has no "crit"; any other header
 *  goes through jansson as before.
 */
#include "jwt.h"

#include "b64.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#define S_DEC_MAX (JWT_MAX_LEN / 4 * 3 + 4)   /* any decoded part fits */

struct jwt_verifier {
    unsigned char *hs_secret;   /* HS256 secret, or NULL: HS256 off */
    size_t hs_len;              /* its length */
    EVP_PKEY *rs_key;           /* RS256 public key, or NULL: RS256 off */
    char *aud;                  /* required audience, or NULL */
    char *iss;                  /* required issuer, or NULL */
    int64_t leeway;             /* seconds of clock skew allowed, >= 0 */
    int nomem;                  /* a setter failed to copy: refuse everything */
};

jwt_verifier_t *jwt_verifier_new(void)
{
    jwt_verifier_t *self = calloc(1, sizeof *self);
    return self;
}

static void s_wipe_secret(jwt_verifier_t *self)
{
    if (self->hs_secret) {
        OPENSSL_cleanse(self->hs_secret, self->hs_len);
        free(self->hs_secret);
    }
    self->hs_secret = NULL;
    self->hs_len = 0;
}

void jwt_verifier_destroy(jwt_verifier_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    jwt_verifier_t *self = *self_p;
    s_wipe_secret(self);
    EVP_PKEY_free(self->rs_key);
    free(self->aud);
    free(self->iss);
    free(self);
    *self_p = NULL;
}

int jwt_verifier_set_hs256(jwt_verifier_t *self, const void *secret, size_t len)
{
    if (!secret || len == 0 || len > INT_MAX)
        return -1;
    unsigned char *copy = malloc(len);
    if (!copy)
        return -1;
    memcpy(copy, secret, len);
    s_wipe_secret(self);
    self->hs_secret = copy;
    self->hs_len = len;
    return 0;
}

int jwt_verifier_set_rs256_pem(jwt_verifier_t *self, const char *pem, size_t len)
{
    if (!pem || len == 0 || len > INT_MAX)
        return -1;
    int rc = -1;
    EVP_PKEY *key = NULL;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        goto done;
    key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (!key || !EVP_PKEY_is_a(key, "RSA"))
        goto done;
    EVP_PKEY_free(self->rs_key);
    self->rs_key = key;
    key = NULL;
    rc = 0;
done:
    EVP_PKEY_free(key);
    BIO_free(bio);
    ERR_clear_error();
    return rc;
}

/* Replaces *slot with a copy of s (NULL clears); a failed copy poisons self. */
static void s_set_str(jwt_verifier_t *self, char **slot, const char *s)
{
    free(*slot);
    *slot = NULL;
    if (s) {
        *slot = strdup(s);
        if (!*slot)
            self->nomem = 1;    /* fail closed: never skip a wanted check */
    }
}

void jwt_verifier_set_audience(jwt_verifier_t *self, const char *aud)
{
    s_set_str(self, &self->aud, aud);
}

void jwt_verifier_set_issuer(jwt_verifier_t *self, const char *iss)
{
    s_set_str(self, &self->iss, iss);
}

void jwt_verifier_set_leeway(jwt_verifier_t *self, int64_t seconds)
{
    self->leeway = seconds < 0 ? 0 : seconds;
}

/* HMAC-SHA256 of data with key into md (32 bytes). 0/-1. */
static int s_hmac(const void *key, size_t klen, const void *data, size_t n,
                  unsigned char md[32])
{
    unsigned int mdlen = 0;
    if (!HMAC(EVP_sha256(), key, (int)klen, data, n, md, &mdlen) || mdlen != 32)
        return -1;
    return 0;
}

/* RS256 check of sig over data. 1 good, 0 bad, -1 no memory. */
static int s_rs256_ok(EVP_PKEY *key, const void *data, size_t n,
                      const unsigned char *sig, size_t slen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return -1;
    int ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestVerify(ctx, sig, slen, data, n) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* The headers that common signers write (jsonwebtoken, PyJWT, the bench's
 * load generator: the first one), exactly as they write them. */
static const struct {
    const char *json;
    const char *alg;
} S_KNOWN_HEADERS[] = {
    { "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "HS256" },
    { "{\"typ\":\"JWT\",\"alg\":\"HS256\"}", "HS256" },
    { "{\"alg\":\"HS256\"}", "HS256" },
    { "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", "RS256" },
    { "{\"typ\":\"JWT\",\"alg\":\"RS256\"}", "RS256" },
    { "{\"alg\":\"RS256\"}", "RS256" },
};

/* The alg of a header that equals one of S_KNOWN_HEADERS, or NULL. */
static const char *s_known_alg(const unsigned char *buf, size_t n)
{
    for (size_t i = 0; i < sizeof S_KNOWN_HEADERS / sizeof S_KNOWN_HEADERS[0]; i++) {
        const char *h = S_KNOWN_HEADERS[i].json;
        if (strlen(h) == n && memcmp(h, buf, n) == 0)
            return S_KNOWN_HEADERS[i].alg;
    }
    return NULL;
}

/* Parses buf[0..n) as a JSON object; NULL for anything else. */
static json_t *s_parse_object(const unsigned char *buf, size_t n)
{
    json_error_t err;
    json_t *j = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, &err);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* Checks the claims of a verified payload; fills sub_out. */
static int s_check_claims(const jwt_verifier_t *self, json_t *claims, int64_t now,
                          char *sub_out, size_t sub_cap)
{
    json_t *exp = json_object_get(claims, "exp");
    json_t *nbf = json_object_get(claims, "nbf");
    if ((exp && !json_is_number(exp)) || (nbf && !json_is_number(nbf)))
        return JWT_ERR_CLAIMS;
    /* doubles: exact for any realistic time, and no int64 overflow */
    double t = (double)now, lw = (double)self->leeway;
    if (exp && json_number_value(exp) <= t - lw)
        return JWT_ERR_EXPIRED;
    if (nbf && json_number_value(nbf) > t + lw)
        return JWT_ERR_NOT_YET;

    json_t *sub = json_object_get(claims, "sub");
    char num[32];
    const char *subtxt;
    size_t sublen;
    if (json_is_string(sub)) {
        subtxt = json_string_value(sub);
        sublen = json_string_length(sub);
        /* an empty subject names nobody; jansson already refuses \u0000 */
        if (sublen == 0 || strlen(subtxt) != sublen)
            return JWT_ERR_CLAIMS;
    } else if (json_is_integer(sub)) {
        int k = snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(sub));
        if (k < 0 || (size_t)k >= sizeof num)
            return JWT_ERR_CLAIMS;
        subtxt = num;
        sublen = (size_t)k;
    } else {
        return JWT_ERR_CLAIMS;
    }
    if (sub_out && sublen >= sub_cap)
        return JWT_ERR_CLAIMS;

    if (self->aud) {
        json_t *aud = json_object_get(claims, "aud");
        int match = 0;
        if (json_is_string(aud)) {
            match = strcmp(json_string_value(aud), self->aud) == 0;
        } else if (json_is_array(aud)) {
            size_t i;
            json_t *a;
            json_array_foreach(aud, i, a) {
                if (json_is_string(a) && strcmp(json_string_value(a), self->aud) == 0)
                    match = 1;
            }
        }
        if (!match)
            return JWT_ERR_AUDIENCE;
    }
    if (self->iss) {
        json_t *iss = json_object_get(claims, "iss");
        if (!json_is_string(iss) || strcmp(json_string_value(iss), self->iss) != 0)
            return JWT_ERR_ISSUER;
    }
    if (sub_out)
        memcpy(sub_out, subtxt, sublen + 1);
    return JWT_OK;
}

int jwt_verify(const jwt_verifier_t *self, const char *token, size_t len, int64_t now,
               json_t **claims_out, char *sub_out, size_t sub_cap)
{
    if (claims_out)
        *claims_out = NULL;
    if (sub_out && sub_cap)
        sub_out[0] = '\0';
    if (self->nomem)
        return JWT_ERR_NOMEM;
    if (!token || len == 0 || len > JWT_MAX_LEN)
        return JWT_ERR_FORMAT;
    /* JWS base64url never carries padding (RFC 7515 §2) */
    if (memchr(token, '=', len))
        return JWT_ERR_FORMAT;

    /* header.payload.signature: exactly two dots */
    const char *d1 = memchr(token, '.', len);
    if (!d1)
        return JWT_ERR_FORMAT;
    const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
        return JWT_ERR_FORMAT;
    size_t hlen = (size_t)(d1 - token);
    size_t plen = (size_t)(d2 - d1 - 1);
    size_t slen = len - (size_t)(d2 + 1 - token);

    unsigned char hbuf[S_DEC_MAX], pbuf[S_DEC_MAX], sbuf[S_DEC_MAX];
    long hn = b64url_decode(token, hlen, hbuf);
    long pn = b64url_decode(d1 + 1, plen, pbuf);
    long sn = b64url_decode(d2 + 1, slen, sbuf);
    if (hn <= 0 || pn <= 0 || sn < 0)
        return JWT_ERR_FORMAT;

    int rc = JWT_OK;
    json_t *header = NULL, *claims = NULL;
    const char *a = s_known_alg(hbuf, (size_t)hn);
    if (!a) {
        header = s_parse_object(hbuf, (size_t)hn);
        if (!header)
            return JWT_ERR_FORMAT;
        json_t *alg = json_object_get(header, "alg");
        if (json_object_get(header, "crit")) {
            rc = JWT_ERR_FORMAT;    /* RFC 7515 §4.1.11: we know no extensions */
            goto done;
        }
        if (!json_is_string(alg)) {
            rc = JWT_ERR_ALG;
            goto done;
        }
        a = json_string_value(alg);
    }
    size_t signed_len = (size_t)(d2 - token);
    if (strcmp(a, "HS256") == 0 && self->hs_secret) {
        unsigned char md[32];
        if (s_hmac(self->hs_secret, self->hs_len, token, signed_len, md) < 0) {
            rc = JWT_ERR_NOMEM;
            goto done;
        }
        if (sn != 32 || CRYPTO_memcmp(md, sbuf, 32) != 0) {
            rc = JWT_ERR_SIGNATURE;
            goto done;
        }
    } else if (strcmp(a, "RS256") == 0 && self->rs_key) {
        int ok = s_rs256_ok(self->rs_key, token, signed_len, sbuf, (size_t)sn);
        if (ok != 1) {
            rc = ok < 0 ? JWT_ERR_NOMEM : JWT_ERR_SIGNATURE;
            goto done;
        }
    } else {
        rc = JWT_ERR_ALG;           /* "none", unknown, or no key for it */
        goto done;
    }

    claims = s_parse_object(pbuf, (size_t)pn);
    if (!claims) {
        rc = JWT_ERR_FORMAT;
        goto done;
    }
    rc = s_check_claims(self, claims, now, sub_out, sub_cap);
    if (rc == JWT_OK && claims_out) {
        *claims_out = claims;
        claims = NULL;
    }
done:
    if (rc != JWT_OK && sub_out && sub_cap)
        sub_out[0] = '\0';
    json_decref(claims);
    json_decref(header);
    return rc;
}

const char *jwt_strerror(int err)
{
    switch (err) {
    case JWT_OK:            return "ok";
    case JWT_ERR_FORMAT:    return "malformed token";
    case JWT_ERR_ALG:       return "algorithm not allowed";
    case JWT_ERR_SIGNATURE: return "bad signature";
    case JWT_ERR_EXPIRED:   return "token expired";
    case JWT_ERR_NOT_YET:   return "token not yet valid";
    case JWT_ERR_CLAIMS:    return "invalid claims";
    case JWT_ERR_AUDIENCE:  return "audience not allowed";
    case JWT_ERR_ISSUER:    return "issuer not allowed";
    case JWT_ERR_NOMEM:     return "out of memory";
    default:                return "unknown error";
    }
}

char *jwt_sign_hs256(const void *secret, size_t len, const json_t *claims)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    if (!secret || len == 0 || len > INT_MAX || !json_is_object(claims))
        return NULL;
    char *tok = NULL;
    char *payload = json_dumps(claims, JSON_COMPACT);
    if (!payload)
        return NULL;
    size_t pl = strlen(payload);
    size_t hl = sizeof header - 1;
    size_t cap = b64url_encoded_len(hl) + 1 + b64url_encoded_len(pl) + 1 +
                 b64url_encoded_len(32) + 1;
    tok = malloc(cap);
    if (!tok)
        goto done;
    size_t o = b64url_encode(header, hl, tok);
    tok[o++] = '.';
    o += b64url_encode(payload, pl, tok + o);
    unsigned char md[32];
    if (s_hmac(secret, len, tok, o, md) < 0) {
        free(tok);
        tok = NULL;
        goto done;
    }
    tok[o++] = '.';
    b64url_encode(md, 32, tok + o);
done:
    free(payload);
    return tok;
}
