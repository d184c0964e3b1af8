/*  fuzz_http - libFuzzer target for the HTTP/1.1 request head parser
 *
 *  Design: the input is a request head as it would arrive on a socket. It is
 *  parsed whole at several max_head limits (tiny, exact, default, huge), and
 *  also as every prefix the connection would see while bytes trickle in, so
 *  the incomplete paths are exercised too. On success every header pointer
 *  must lie inside the input, and the query / Content-Length helpers run over
 *  what was found. Invariants that abort(): pointers in range; a complete head
 *  length never exceeds the input or max_head; a prefix of a complete head is
 *  never reported complete at a different length.
 */
#include "http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_in(const char *buf, size_t len, const char *p, size_t n)
{
    if (n == 0)
        return;
    if (p < buf || p + n > buf + len)
        abort();
}

static int s_parse(const char *buf, size_t len, size_t max_head, http_request_t *req)
{
    int rc = http_parse_request(buf, len, max_head, req);
    if (rc > 0) {
        if ((size_t)rc > len || (size_t)rc > max_head)
            abort();
        s_in(buf, len, req->method, req->method_len);
        s_in(buf, len, req->path, req->path_len);
        s_in(buf, len, req->query, req->query_len);
        if (req->num_headers > HTTP_MAX_HEADERS)
            abort();
        for (size_t i = 0; i < req->num_headers; i++) {
            s_in(buf, len, req->headers[i].name, req->headers[i].name_len);
            s_in(buf, len, req->headers[i].value, req->headers[i].value_len);
        }
    } else if (rc != HTTP_INCOMPLETE && rc != HTTP_ERROR && rc != HTTP_TOO_LARGE) {
        abort();
    }
    return rc;
}

static void s_helpers(const http_request_t *req)
{
    static const char *const names[] = { "EIO", "transport", "sid", "token", "t", "" };
    char out[64];
    char big[4096];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        long r = http_query_param(req->query, req->query_len, names[i], out, sizeof out);
        if (r >= 0 && ((size_t)r >= sizeof out || out[r] != '\0'))
            abort();
        r = http_query_param(req->query, req->query_len, names[i], big, sizeof big);
        if (r >= 0 && ((size_t)r >= sizeof big || big[r] != '\0'))
            abort();
        /* capacity 1 holds only the NUL */
        r = http_query_param(req->query, req->query_len, names[i], out, 1);
        if (r > 0)
            abort();
    }
    size_t cl = 0;
    int c = http_content_length(req, &cl);
    if (c != 0 && c != -1 && c != -2)
        abort();
    const http_header_t *h = http_find_header(req, "connection");
    if (h)
        (void)http_header_has_token(h, "upgrade");
    h = http_find_header(req, "Upgrade");
    if (h)
        (void)http_header_has_token(h, "websocket");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a private copy with no slack, so ASan sees any read past the end */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    http_request_t req;
    static const size_t limits[] = { 1, 16, 64, 256, 8192, (size_t)-1 };
    int full = HTTP_INCOMPLETE;
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        memset(&req, 0xA5, sizeof req);
        int rc = s_parse(buf, size, limits[i], &req);
        if (rc > 0)
            s_helpers(&req);
        if (limits[i] == (size_t)-1)
            full = rc;
    }
    /* exact limit: a head of exactly max_head bytes is accepted */
    if (full > 0) {
        memset(&req, 0xA5, sizeof req);
        if (s_parse(buf, size, (size_t)full, &req) != full)
            abort();
    }
    /* arriving in pieces: any prefix shorter than a complete head is
     * incomplete (or already an error); the complete length never moves */
    if (size <= 2048) {
        for (size_t n = 0; n < size; n += 1 + n / 8) {
            memset(&req, 0xA5, sizeof req);
            int rc = s_parse(buf, n, (size_t)-1, &req);
            if (full > 0 && rc > 0 && rc != full)
                abort();
            if (full > 0 && (size_t)full > n && rc > 0)
                abort();
        }
    }
    free(buf);
    return 0;
}
