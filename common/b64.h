/*  b64 - base64 (RFC 4648 §4, padded) and base64url (§5, unpadded) */
#ifndef BELFRY_B64_H
#define BELFRY_B64_H

#include <stddef.h>

/* Length of the encoding of n bytes, without the NUL. */
size_t b64_encoded_len(size_t n);
size_t b64url_encoded_len(size_t n);
/* Encode src[0..n) into out (capacity >= *_encoded_len(n) + 1, NUL-terminated).
 * Returns the encoded length. */
size_t b64_encode(const void *src, size_t n, char *out);
size_t b64url_encode(const void *src, size_t n, char *out);
/* Decode; out needs n*3/4+3 bytes. Returns the decoded length, or -1 on any
 * invalid character, bad padding or impossible length. b64url_decode accepts
 * input with or without padding; b64_decode requires correct padding. */
long b64_decode(const char *src, size_t n, void *out);
long b64url_decode(const char *src, size_t n, void *out);

#endif
