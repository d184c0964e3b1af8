/*  http - incremental HTTP/1.1 request head parser, no I/O
 *
 *  Parses a request line and headers from a buffer that may hold only part of
 *  them; call again with more bytes (the whole buffer from the start: it is
 *  stateless, like picohttpparser). Bodies are the caller's business (it reads
 *  Content-Length bytes after the head). Header names compare
 *  case-insensitively. Limits: the head may not exceed max_head bytes and 64
 *  headers.
 */
#ifndef BELFRY_HTTP_H
#define BELFRY_HTTP_H

#include <stddef.h>

#define HTTP_MAX_HEADERS 64

typedef struct { const char *name; size_t name_len; const char *value; size_t value_len; } http_header_t;

typedef struct {
    const char *method; size_t method_len;
    const char *path;   size_t path_len;   /* the path without the query */
    const char *query;  size_t query_len;  /* after '?', without it; len 0 if none */
    int minor_version;                      /* 1 for HTTP/1.1, 0 for HTTP/1.0 */
    http_header_t headers[HTTP_MAX_HEADERS];
    size_t num_headers;
} http_request_t;

enum { HTTP_INCOMPLETE = -2, HTTP_ERROR = -1, HTTP_TOO_LARGE = -3 };

/* Parses buf[0..len). Returns the head length (> 0, including the final
 * CRLFCRLF) when complete, HTTP_INCOMPLETE when more bytes are needed,
 * HTTP_TOO_LARGE when the head exceeds max_head or has too many headers,
 * HTTP_ERROR when malformed (bad request line, bare LF/CR misuse, header
 * without ':', control characters, obs-fold, a version other than HTTP/1.x).
 * Pointers in *req point into buf. */
int http_parse_request(const char *buf, size_t len, size_t max_head, http_request_t *req);

/* Finds a header (case-insensitive name). Returns it or NULL. */
const http_header_t *http_find_header(const http_request_t *req, const char *name);
/* 1 if the comma-separated header value contains token (case-insensitive),
 * e.g. Connection: keep-alive, Upgrade. */
int http_header_has_token(const http_header_t *h, const char *token);
/* Finds query parameter `name` in query[0..len) and percent-decodes its value
 * (also '+' to space) into out (capacity cap, NUL-terminated). Returns the
 * decoded length, -1 if absent, -2 if it does not fit or is badly encoded. */
long http_query_param(const char *query, size_t len, const char *name, char *out, size_t cap);
/* Parses Content-Length: 0 and *out set, -1 if absent, -2 if invalid. */
int http_content_length(const http_request_t *req, size_t *out);

#endif
