/*  test_http - HTTP/1.1 request head parser
 *
 *  Complete heads, every prefix of them (incomplete, never an error nor a
 *  success), each class of malformed input (refused, and refused already from
 *  the prefix that shows it), the size and header-count limits, and the
 *  helpers: header lookup, token lists, query parameters, Content-Length.
 *  Every parse runs on a heap copy of exactly the bytes given, so ASan
 *  catches a read past the end.
 */
#include "http.h"
#include "test.h"

#include <stdint.h>

static http_request_t req;

/* Parses s[0..n) from a heap copy of exactly n bytes. The copy is kept
 * (leaked into `last`) so that req's pointers stay valid until the next call. */
static char *last;
static int parse_n(const char *s, size_t n, size_t max_head)
{
    free(last);
    last = malloc(n ? n : 1);
    if (!last)
        abort();
    memcpy(last, s, n);
    return http_parse_request(last, n, max_head, &req);
}

static int parse(const char *s, size_t max_head)
{
    return parse_n(s, strlen(s), max_head);
}

#define HDR(i, n, v) do { CHECK(req.num_headers > (i)); \
    CHECK_EQ_MEM(req.headers[i].name, req.headers[i].name_len, n); \
    CHECK_EQ_MEM(req.headers[i].value, req.headers[i].value_len, v); } while (0)

static const char WS_REQ[] =
    "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
    "Host: example.com:8080\r\n"
    "Upgrade: websocket\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "X-Spaces: \t  padded value \t \r\n"
    "X-Empty:\r\n"
    "\r\n";

TEST(complete_request)
{
    int n = parse(WS_REQ, 8192);
    CHECK_EQ_INT(n, (int)strlen(WS_REQ));
    CHECK_EQ_MEM(req.method, req.method_len, "GET");
    CHECK_EQ_MEM(req.path, req.path_len, "/socket.io/");
    CHECK_EQ_MEM(req.query, req.query_len, "EIO=4&transport=websocket");
    CHECK_EQ_INT(req.minor_version, 1);
    CHECK_EQ_INT(req.num_headers, 7);
    HDR(0, "Host", "example.com:8080");
    HDR(1, "Upgrade", "websocket");
    HDR(2, "Connection", "keep-alive, Upgrade");
    HDR(5, "X-Spaces", "padded value");
    HDR(6, "X-Empty", "");
}

TEST(body_is_not_part_of_head)
{
    const char s[] = "POST /emit HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello";
    int n = parse(s, 8192);
    CHECK_EQ_INT(n, (int)strlen(s) - 5);
    CHECK_EQ_INT(req.minor_version, 0);
    CHECK_EQ_MEM(req.method, req.method_len, "POST");
    CHECK_EQ_MEM(req.path, req.path_len, "/emit");
    CHECK_EQ_INT(req.query_len, 0);
    size_t cl = 0;
    CHECK_EQ_INT(http_content_length(&req, &cl), 0);
    CHECK_EQ_INT(cl, 5);
}

TEST(no_headers_and_empty_query)
{
    CHECK_EQ_INT(parse("GET /x? HTTP/1.1\r\n\r\n", 100), 20);
    CHECK_EQ_MEM(req.path, req.path_len, "/x");
    CHECK_EQ_INT(req.query_len, 0);
    CHECK_EQ_INT(req.num_headers, 0);
    CHECK_EQ_INT(parse("OPTIONS * HTTP/1.1\r\n\r\n", 100), 22);
    CHECK_EQ_MEM(req.path, req.path_len, "*");
}

TEST(leading_empty_lines_skipped)
{
    const char s[] = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    CHECK_EQ_INT(parse(s, 100), (int)strlen(s));
    CHECK_EQ_MEM(req.method, req.method_len, "GET");
    HDR(0, "Host", "a");
    /* only empty lines so far: wait for the request line */
    CHECK_EQ_INT(parse("\r\n\r\n", 100), HTTP_INCOMPLETE);
    CHECK_EQ_INT(parse("\r\n\r\n\r\n", 6), HTTP_TOO_LARGE);
}

/* Every proper prefix is incomplete; the whole is complete. */
TEST(every_split_point)
{
    static const char *const reqs[] = {
        WS_REQ,
        "GET / HTTP/1.0\r\n\r\n",
        "\r\nPUT /a?b=c HTTP/1.1\r\nA:b\r\nC: d\r\n\r\n",
    };
    for (size_t r = 0; r < sizeof reqs / sizeof reqs[0]; r++) {
        size_t n = strlen(reqs[r]);
        for (size_t k = 0; k < n; k++) {
            int rc = parse_n(reqs[r], k, 8192);
            if (rc != HTTP_INCOMPLETE)
                fprintf(stderr, "  request %zu prefix %zu: %d\n", r, k, rc);
            CHECK_EQ_INT(rc, HTTP_INCOMPLETE);
        }
        CHECK_EQ_INT(parse_n(reqs[r], n, 8192), (int)n);
    }
}

/* The full request is HTTP_ERROR, and no prefix of it parses as complete. */
static int error_everywhere(const char *s)
{
    size_t n = strlen(s);
    for (size_t k = 0; k < n; k++) {
        int rc = parse_n(s, k, 8192);
        if (rc != HTTP_INCOMPLETE && rc != HTTP_ERROR)
            return 0;
    }
    return parse_n(s, n, 8192) == HTTP_ERROR;
}

TEST(malformed_requests)
{
    static const char *const bad[] = {
        "GET / HTTP/1.1\n\n",                       /* LF-only line endings */
        "GET / HTTP/1.1\r\nHost: a\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\n",
        "GET / HTTP/1.1\r\nHo\rst: a\r\n\r\n",      /* bare CR */
        "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
        "GET /\r HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\x01" "b\r\n\r\n", /* control characters */
        "GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: \x1b[31m\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n X-Folded: b\r\n\r\n",  /* obs-fold */
        "GET / HTTP/1.1\r\nHost: a\r\n\tb\r\n\r\n",
        "GET / HTTP/1.1\r\n Host: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost a\r\n\r\n",         /* no ':' */
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",       /* space before ':' */
        "GET / HTTP/1.1\r\n: a\r\n\r\n",            /* empty name */
        "GET / HTTP/1.1\r\nHo(st: a\r\n\r\n",       /* name not a token */
        " / HTTP/1.1\r\n\r\n",                      /* empty method */
        "GE(T / HTTP/1.1\r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n",                  /* empty target */
        "GET /a b HTTP/1.1\r\n\r\n",
        "GET /a\x01 HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.2\r\n\r\n",                   /* versions */
        "GET / HTTP/2.0\r\n\r\n",
        "GET / HTTP/1.10\r\n\r\n",
        "GET / http/1.1\r\n\r\n",
        "GET / HTTP/1\r\n\r\n",
        "GET / HTTP/1.1 \r\n\r\n",
        "GET /\r\n\r\n",                            /* HTTP/0.9 */
        "GET\r\n\r\n",
        "\r\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int ok = error_everywhere(bad[i]);
        if (!ok)
            fprintf(stderr, "  case %zu not refused\n", i);
        CHECK(ok);
    }
    /* embedded NUL in a header value (strlen cannot carry it) */
    const char nul[] = "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n";
    CHECK_EQ_INT(parse_n(nul, sizeof nul - 1, 8192), HTTP_ERROR);
}

TEST(tab_and_obs_text_allowed_in_values)
{
    const char s[] = "GET / HTTP/1.1\r\nX-A: a\tb\r\nX-B: caf\xc3\xa9\r\n\r\n";
    CHECK_EQ_INT(parse(s, 8192), (int)strlen(s));
    HDR(0, "X-A", "a\tb");
    HDR(1, "X-B", "caf\xc3\xa9");
}

TEST(errors_seen_before_head_is_complete)
{
    CHECK_EQ_INT(parse("GET / HTTP/2", 8192), HTTP_ERROR);
    CHECK_EQ_INT(parse("GET / HTTP/1.1x", 8192), HTTP_ERROR);
    CHECK_EQ_INT(parse("G\x01", 8192), HTTP_ERROR);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nBad Name", 8192), HTTP_ERROR);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nA: b\x02", 8192), HTTP_ERROR);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\n folded", 8192), HTTP_ERROR);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nA: b\rx", 8192), HTTP_ERROR);
    /* ...but a partial line that may still become valid is just incomplete */
    CHECK_EQ_INT(parse("GET / HTTP/1.", 8192), HTTP_INCOMPLETE);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nHost", 8192), HTTP_INCOMPLETE);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nHost: a\r", 8192), HTTP_INCOMPLETE);
}

TEST(head_size_limit)
{
    const char s[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t n = strlen(s);
    CHECK_EQ_INT(parse(s, n), (int)n);                      /* exactly the limit */
    CHECK_EQ_INT(parse(s, n - 1), HTTP_TOO_LARGE);          /* one byte over */
    /* incomplete, but already over the limit: no point waiting */
    CHECK_EQ_INT(parse_n(s, 10, 10), HTTP_TOO_LARGE);
    CHECK_EQ_INT(parse_n(s, 10, 11), HTTP_INCOMPLETE);
    CHECK_EQ_INT(parse_n(s, n - 1, 12), HTTP_TOO_LARGE);
    /* an endless header line with no CR at all */
    char big[5000];
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    memset(big + 19, 'a', sizeof big - 19);
    CHECK_EQ_INT(parse_n(big, sizeof big, 4096), HTTP_TOO_LARGE);
    CHECK_EQ_INT(parse_n(big, 4095, 4096), HTTP_INCOMPLETE);
    CHECK_EQ_INT(parse_n(big, 4096, 4096), HTTP_TOO_LARGE);
    CHECK_EQ_INT(parse_n(s, 0, 0), HTTP_TOO_LARGE);
}

TEST(header_count_limit)
{
    char buf[4096];
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < HTTP_MAX_HEADERS; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "H%d: %d\r\n", i, i);
    size_t before_end = n;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "\r\n");
    CHECK_EQ_INT(parse_n(buf, n, sizeof buf), (int)n);
    CHECK_EQ_INT(req.num_headers, HTTP_MAX_HEADERS);
    HDR(63, "H63", "63");
    /* one more header */
    n = before_end;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "X: y\r\n\r\n");
    CHECK_EQ_INT(parse_n(buf, n, sizeof buf), HTTP_TOO_LARGE);
    /* seen as soon as the 65th line starts */
    CHECK_EQ_INT(parse_n(buf, before_end + 1, sizeof buf), HTTP_TOO_LARGE);
    CHECK_EQ_INT(parse_n(buf, before_end, sizeof buf), HTTP_INCOMPLETE);
}

TEST(find_header)
{
    const char s[] = "GET / HTTP/1.1\r\nhost: one\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n";
    CHECK(parse(s, 8192) > 0);
    const http_header_t *h = http_find_header(&req, "HOST");
    CHECK(h != NULL);
    CHECK_EQ_MEM(h->value, h->value_len, "one");
    h = http_find_header(&req, "x-dup");
    CHECK(h != NULL);
    CHECK_EQ_MEM(h->value, h->value_len, "1");
    CHECK(http_find_header(&req, "Hos") == NULL);
    CHECK(http_find_header(&req, "Hostx") == NULL);
    CHECK(http_find_header(&req, "Upgrade") == NULL);
}

TEST(header_tokens)
{
    CHECK(parse(WS_REQ, 8192) > 0);
    const http_header_t *c = http_find_header(&req, "connection");
    CHECK(c != NULL);
    CHECK_EQ_INT(http_header_has_token(c, "upgrade"), 1);
    CHECK_EQ_INT(http_header_has_token(c, "Upgrade"), 1);
    CHECK_EQ_INT(http_header_has_token(c, "KEEP-ALIVE"), 1);
    CHECK_EQ_INT(http_header_has_token(c, "upgrad"), 0);
    CHECK_EQ_INT(http_header_has_token(c, "grade"), 0);
    CHECK_EQ_INT(http_header_has_token(c, "keep"), 0);
    CHECK_EQ_INT(http_header_has_token(c, "close"), 0);
    CHECK_EQ_INT(http_header_has_token(c, ""), 0);
    CHECK_EQ_INT(http_header_has_token(NULL, "upgrade"), 0);

    http_header_t h = { "Connection", 10, "Upgrade", 7 };
    CHECK_EQ_INT(http_header_has_token(&h, "upgrade"), 1);
    http_header_t h2 = { "Connection", 10, " ,,\tfoo , Upgrade\t,", 19 };
    CHECK_EQ_INT(http_header_has_token(&h2, "upgrade"), 1);
    CHECK_EQ_INT(http_header_has_token(&h2, "foo"), 1);
    CHECK_EQ_INT(http_header_has_token(&h2, "foo , Upgrade"), 0);
    http_header_t h3 = { "Connection", 10, "keep-alive,Upgrade-ish", 22 };
    CHECK_EQ_INT(http_header_has_token(&h3, "upgrade"), 0);
}

TEST(query_params)
{
    char out[64];
    const char *q = "xsid=1&sidx=2&EIO=4&sid=abc%2Fdef&transport=polling";
    size_t ql = strlen(q);
    CHECK_EQ_INT(http_query_param(q, ql, "sid", out, sizeof out), 7);
    CHECK_EQ_STR(out, "abc/def");
    CHECK_EQ_INT(http_query_param(q, ql, "xsid", out, sizeof out), 1);
    CHECK_EQ_STR(out, "1");
    CHECK_EQ_INT(http_query_param(q, ql, "sidx", out, sizeof out), 1);
    CHECK_EQ_STR(out, "2");
    CHECK_EQ_INT(http_query_param(q, ql, "transport", out, sizeof out), 7);
    CHECK_EQ_STR(out, "polling");
    CHECK_EQ_INT(http_query_param(q, ql, "si", out, sizeof out), -1);
    CHECK_EQ_INT(http_query_param(q, ql, "eio", out, sizeof out), -1);     /* case matters */
    CHECK_EQ_INT(http_query_param(q, ql, "", out, sizeof out), -1);
    CHECK_EQ_INT(http_query_param("", 0, "sid", out, sizeof out), -1);
    /* the length bounds the query: "sid" beyond it is not seen */
    CHECK_EQ_INT(http_query_param("a=1&sid=2", 3, "sid", out, sizeof out), -1);

    /* decoding */
    const char *d = "a=hello+world&b=%41%62%e2%82%ac&c=&d&e=x=y&a=second";
    size_t dl = strlen(d);
    CHECK_EQ_INT(http_query_param(d, dl, "a", out, sizeof out), 11);
    CHECK_EQ_STR(out, "hello world");                                     /* first wins */
    CHECK_EQ_INT(http_query_param(d, dl, "b", out, sizeof out), 5);
    CHECK_EQ_STR(out, "Ab\xe2\x82\xac");
    CHECK_EQ_INT(http_query_param(d, dl, "c", out, sizeof out), 0);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(http_query_param(d, dl, "d", out, sizeof out), 0);
    CHECK_EQ_INT(http_query_param(d, dl, "e", out, sizeof out), 3);
    CHECK_EQ_STR(out, "x=y");
}

TEST(query_param_errors)
{
    char out[8];
    CHECK_EQ_INT(http_query_param("a=%zz", 5, "a", out, sizeof out), -2);
    CHECK_EQ_INT(http_query_param("a=%4", 4, "a", out, sizeof out), -2);
    CHECK_EQ_INT(http_query_param("a=%", 3, "a", out, sizeof out), -2);
    CHECK_EQ_INT(http_query_param("a=%4g", 5, "a", out, sizeof out), -2);
    CHECK_EQ_INT(http_query_param("a=x%00y", 7, "a", out, sizeof out), -2);
    /* truncated escape at the end of a pair, not of the query */
    CHECK_EQ_INT(http_query_param("a=%4&b=1", 8, "a", out, sizeof out), -2);
    /* capacity: 7 characters + NUL fit in 8, 8 do not */
    CHECK_EQ_INT(http_query_param("a=1234567", 9, "a", out, 8), 7);
    CHECK_EQ_STR(out, "1234567");
    CHECK_EQ_INT(http_query_param("a=12345678", 10, "a", out, 8), -2);
    CHECK_EQ_INT(http_query_param("a=%41%41", 8, "a", out, 3), 2);
    CHECK_EQ_INT(http_query_param("a=%41%41", 8, "a", out, 2), -2);
    CHECK_EQ_INT(http_query_param("a=", 2, "a", out, 1), 0);
    CHECK_EQ_INT(http_query_param("a=", 2, "a", out, 0), -2);
    /* an error in another pair does not matter */
    CHECK_EQ_INT(http_query_param("b=%zz&a=ok", 10, "a", out, sizeof out), 2);
    CHECK_EQ_STR(out, "ok");
}

static int cl_of(const char *head, size_t *out)
{
    if (parse(head, 8192) <= 0)
        return -99;
    return http_content_length(&req, out);
}

TEST(content_length)
{
    size_t v = 7;
    CHECK_EQ_INT(cl_of("POST / HTTP/1.1\r\n\r\n", &v), -1);
    CHECK_EQ_INT(cl_of("POST / HTTP/1.1\r\ncontent-LENGTH: 0\r\n\r\n", &v), 0);
    CHECK_EQ_INT(v, 0);
    CHECK_EQ_INT(cl_of("POST / HTTP/1.1\r\nContent-Length:  1234 \r\n\r\n", &v), 0);
    CHECK_EQ_INT(v, 1234);
    CHECK_EQ_INT(cl_of("POST / HTTP/1.1\r\nContent-Length: 12\r\nContent-Length: 12\r\n\r\n", &v), 0);
    CHECK_EQ_INT(v, 12);
    CHECK_EQ_INT(cl_of("POST / HTTP/1.1\r\nContent-Length: 12\r\nContent-Length: 13\r\n\r\n", &v), -2);
    CHECK_EQ_INT(cl_of("POST / HTTP/1.1\r\nContent-Length: 12, 12\r\n\r\n", &v), -2);
    CHECK_EQ_INT(cl_of("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", &v), -2);
    CHECK_EQ_INT(cl_of("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", &v), -2);
    CHECK_EQ_INT(cl_of("POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", &v), -2);
    CHECK_EQ_INT(cl_of("POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", &v), -2);
    CHECK_EQ_INT(cl_of("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", &v), -2);
    CHECK_EQ_INT(cl_of("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n", &v), -2);
    char head[128];
    snprintf(head, sizeof head, "POST / HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", (size_t)SIZE_MAX);
    CHECK_EQ_INT(cl_of(head, &v), 0);
    CHECK(v == SIZE_MAX);
    snprintf(head, sizeof head, "POST / HTTP/1.1\r\nContent-Length: %zu0\r\n\r\n", (size_t)SIZE_MAX);
    CHECK_EQ_INT(cl_of(head, &v), -2);
}

TEST_MAIN(complete_request, body_is_not_part_of_head, no_headers_and_empty_query,
          leading_empty_lines_skipped, every_split_point, malformed_requests,
          tab_and_obs_text_allowed_in_values, errors_seen_before_head_is_complete,
          head_size_limit, header_count_limit, find_header, header_tokens, query_params,
          query_param_errors, content_length)
