/*  fuzz_jwt - libFuzzer target for the JWT verifier
 *
 *  Design: byte 0 of the input chooses a mode. Raw mode hands the rest to
 *  jwt_verify as a token. Structured mode splits the rest on NUL into a
 *  header, a payload and an optional signature, base64url-encodes them and
 *  joins them with dots; flags in byte 0 then sign the token correctly with
 *  the harness's HS256 secret or its RSA private key (generated once at
 *  start), so that the fuzzer reaches the JSON parsing and every claim check
 *  behind the signature. Each token goes to three verifiers: HS256 only,
 *  RS256 only (public key of the harness key), and both with audience, issuer
 *  and leeway configured.
 *  Invariants that abort(): the result is a known jwt_err_t; a verifier
 *  accepts only a token the harness signed with that verifier's key and
 *  whose header alg names that algorithm (no alg none, no confusion); on OK
 *  the subject is non-empty, NUL-terminated, fits and equals the claims'
 *  "sub", and the claims object is returned; on error no claims and an empty
 *  subject; the result does not depend on whether the caller asked for the
 *  claims and subject.
 */
#include "jwt.h"
#include "b64.h"

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_NOW 1700000000LL
static const char s_secret[] = "fuzz-secret-0123456789";

static jwt_verifier_t *s_hs, *s_rs, *s_both;
static EVP_PKEY *s_priv;

static void s_init(void)
{
    s_priv = EVP_RSA_gen(1024);
    if (!s_priv)
        abort();
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio || PEM_write_bio_PUBKEY(bio, s_priv) != 1)
        abort();
    char *pem;
    long pem_len = BIO_get_mem_data(bio, &pem);
    s_hs = jwt_verifier_new();
    s_rs = jwt_verifier_new();
    s_both = jwt_verifier_new();
    if (!s_hs || !s_rs || !s_both)
        abort();
    if (jwt_verifier_set_hs256(s_hs, s_secret, sizeof s_secret - 1) != 0
        || jwt_verifier_set_rs256_pem(s_rs, pem, (size_t)pem_len) != 0
        || jwt_verifier_set_hs256(s_both, s_secret, sizeof s_secret - 1) != 0
        || jwt_verifier_set_rs256_pem(s_both, pem, (size_t)pem_len) != 0)
        abort();
    jwt_verifier_set_audience(s_both, "belfry");
    jwt_verifier_set_issuer(s_both, "https://auth.example");
    jwt_verifier_set_leeway(s_both, 30);
    BIO_free(bio);
}

/* The header's alg, as jansson reads it (NULL if none). Caller frees. */
static char *s_header_alg(const char *tok, size_t len)
{
    const char *dot = memchr(tok, '.', len);
    if (!dot)
        return NULL;
    size_t n = (size_t)(dot - tok);
    char *buf = malloc(n * 3 / 4 + 4);
    if (!buf)
        abort();
    long got = b64url_decode(tok, n, buf);
    char *alg = NULL;
    if (got > 0) {
        json_t *h = json_loadb(buf, (size_t)got, 0, NULL);
        json_t *a = json_object_get(h, "alg");
        if (json_is_string(a))
            alg = strdup(json_string_value(a));
        json_decref(h);
    }
    free(buf);
    return alg;
}

/* signed_by: 'H' if the harness signed it with HS256, 'R' with RS256, 0 not. */
static void s_verify(const jwt_verifier_t *v, int hs_ok, int rs_ok,
                     const char *tok, size_t len, int signed_by)
{
    json_t *claims = (json_t *)1;
    char sub[64];
    memset(sub, 'x', sizeof sub);
    int rc = jwt_verify(v, tok, len, S_NOW, &claims, sub, sizeof sub);
    if (rc > JWT_OK || rc < JWT_ERR_NOMEM || rc == JWT_ERR_NOMEM)
        abort();
    if (rc == JWT_OK) {
        char *alg = s_header_alg(tok, len);
        if (!alg)
            abort();
        int is_hs = strcmp(alg, "HS256") == 0, is_rs = strcmp(alg, "RS256") == 0;
        if (!((is_hs && hs_ok && signed_by == 'H') || (is_rs && rs_ok && signed_by == 'R')))
            abort();
        free(alg);
        if (!claims || !json_is_object(claims))
            abort();
        size_t n = strnlen(sub, sizeof sub);
        if (n == 0 || n == sizeof sub)
            abort();
        json_t *s = json_object_get(claims, "sub");
        if (json_is_string(s)) {
            if (strcmp(json_string_value(s), sub) != 0)
                abort();
        } else if (json_is_integer(s)) {
            char num[32];
            snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(s));
            if (strcmp(num, sub) != 0)
                abort();
        } else {
            abort();
        }
        json_decref(claims);
    } else {
        if (claims != NULL || sub[0] != '\0')
            abort();
    }
    /* same answer without the out parameters (a large enough subject) */
    int rc2 = jwt_verify(v, tok, len, S_NOW, NULL, NULL, 0);
    if (rc == JWT_OK && rc2 != JWT_OK)
        abort();
    if (rc != JWT_OK && rc != JWT_ERR_CLAIMS && rc2 != rc)
        abort();
}

static void s_all(const char *tok, size_t len, int signed_by)
{
    s_verify(s_hs, 1, 0, tok, len, signed_by);
    s_verify(s_rs, 0, 1, tok, len, signed_by);
    s_verify(s_both, 1, 1, tok, len, signed_by);
}

/* Appends base64url of p[0..n) at out; returns the new end. */
static char *s_b64(char *out, const uint8_t *p, size_t n)
{
    return out + b64url_encode(p, n, out);
}

static void s_structured(int flags, const uint8_t *d, size_t n)
{
    const uint8_t *part[3] = { d, NULL, NULL };
    size_t plen[3] = { n, 0, 0 };
    int parts = 1;
    for (size_t i = 0; i < n && parts < 3; i++) {
        if (d[i] == 0) {
            plen[parts - 1] = (size_t)(d + i - part[parts - 1]);
            part[parts] = d + i + 1;
            plen[parts] = n - i - 1;
            parts++;
        }
    }
    size_t cap = b64url_encoded_len(n) + 4 + 4 + 512;
    char *tok = malloc(cap);
    if (!tok)
        abort();
    char *o = s_b64(tok, part[0], plen[0]);
    *o++ = '.';
    o = s_b64(o, part[1] ? part[1] : (const uint8_t *)"", plen[1]);
    size_t signed_len = (size_t)(o - tok);
    *o++ = '.';
    int signed_by = 0;
    if ((flags & 0x06) == 0x02) {
        unsigned char md[32];
        unsigned int mdlen = 0;
        if (!HMAC(EVP_sha256(), s_secret, (int)(sizeof s_secret - 1),
                  (const unsigned char *)tok, signed_len, md, &mdlen))
            abort();
        o = s_b64(o, md, mdlen);
        signed_by = 'H';
    } else if ((flags & 0x06) == 0x04) {
        unsigned char sig[256];
        size_t slen = sizeof sig;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, s_priv) != 1
            || EVP_DigestSign(ctx, sig, &slen, (const unsigned char *)tok, signed_len) != 1)
            abort();
        EVP_MD_CTX_free(ctx);
        o = s_b64(o, sig, slen);
        signed_by = 'R';
    } else if (part[2]) {
        o = s_b64(o, part[2], plen[2]);
    }
    s_all(tok, (size_t)(o - tok), signed_by);
    free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int inited;
    if (!inited) {
        s_init();
        inited = 1;
    }
    if (size < 1 || size > JWT_MAX_LEN + 64)
        return 0;
    int flags = data[0];
    data++;
    size--;
    if (flags & 1) {
        s_structured(flags, data, size);
    } else {
        char *tok = malloc(size ? size : 1);
        if (!tok)
            abort();
        memcpy(tok, data, size);
        s_all(tok, size, 0);
        free(tok);
    }
    return 0;
}
