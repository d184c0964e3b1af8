/*  http - HTTP/1.1 request head parser, no I/O
 *
 *  Parses a request line and header fields (RFC 9112) out of a caller's
 *  buffer and points into it; nothing is copied or allocated. It keeps no
 *  state: the caller hands it the whole buffer again when more bytes arrive,
 *  as with picohttpparser, which keeps the gateway's read path simple. The
 *  cost of re-parsing is bounded by max_head.
 *
 *  Design: the head is read line by line. A line must end in CRLF; a CR not
 *  followed by LF, or an LF without CR, is an error, which closes the door to
 *  request smuggling through lenient line endings. The line that is still
 *  arriving is checked as far as it goes, so garbage is refused as soon as it
 *  is seen and not only once the head is complete. Only the first max_head
 *  bytes are ever looked at: a head not complete within them is too large,
 *  however much more the peer sends. Header names are tokens followed directly
 *  by ':'; values may hold HTAB, SP, visible ASCII and obs-text (0x80-0xFF),
 *  no other control character; folded lines (obs-fold) are refused. Empty
 *  lines before the request line are skipped (RFC 9112 §2.2).
 */
#include "http.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

/* tchar (RFC 9110 §5.6.2) */
static int s_is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A byte of a request target: anything visible, no space or control. */
static int s_is_target(unsigned char c)
{
    return c > 0x20 && c != 0x7F;
}

static int s_is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static unsigned char s_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* ASCII case-insensitive equality of a[0..an) and b[0..bn). */
static int s_ieq(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn)
        return 0;
    for (size_t i = 0; i < an; i++)
        if (s_lower((unsigned char)a[i]) != s_lower((unsigned char)b[i]))
            return 0;
    return 1;
}

/* Finds the end of the line starting at pos within buf[0..limit). Returns 1
 * and *eol = index of its CR when the CRLF is there; 0 when the line is
 * unfinished (*eol = where its content ends so far); -1 on a bare CR or LF. */
static int s_find_eol(const char *buf, size_t pos, size_t limit, size_t *eol)
{
    for (size_t i = pos; i < limit; i++) {
        if (buf[i] == '\n')
            return -1;
        if (buf[i] == '\r') {
            *eol = i;
            if (i + 1 == limit)
                return 0;
            return buf[i + 1] == '\n' ? 1 : -1;
        }
    }
    *eol = limit;
    return 0;
}

/* Checks a request line s[0..n) (complete, or the part received so far) and
 * fills the method, target and version of req. Returns 0 or -1. */
static int s_request_line(const char *s, size_t n, int complete, http_request_t *req)
{
    static const char proto[] = "HTTP/1.";
    size_t i = 0, t, vn;
    const char *v, *q;

    while (i < n && s_is_tchar((unsigned char)s[i]))
        i++;
    if (i == n)
        return complete ? -1 : 0;
    if (s[i] != ' ' || i == 0)
        return -1;                          /* empty method, or not a token */
    req->method = s;
    req->method_len = i;

    t = ++i;
    while (i < n && s_is_target((unsigned char)s[i]))
        i++;
    if (i == n)
        return complete ? -1 : 0;
    if (s[i] != ' ' || i == t)
        return -1;
    req->path = s + t;
    req->path_len = i - t;
    q = memchr(req->path, '?', req->path_len);
    if (q) {
        req->query = q + 1;
        req->query_len = (size_t)(req->path + req->path_len - req->query);
        req->path_len = (size_t)(q - req->path);
    } else {
        req->query = req->path + req->path_len;
        req->query_len = 0;
    }

    v = s + i + 1;
    vn = n - i - 1;
    if (vn > 8 || (complete && vn != 8))
        return -1;
    if (memcmp(v, proto, vn < 7 ? vn : 7) != 0)
        return -1;
    if (vn == 8) {
        if (v[7] != '0' && v[7] != '1')
            return -1;
        req->minor_version = v[7] - '0';
    }
    return 0;
}

/* Checks a header line s[0..n), n > 0 (complete, or the part received so
 * far) and fills *h when complete. Returns 0 or -1. */
static int s_header(const char *s, size_t n, int complete, http_header_t *h)
{
    size_t i = 0, a, b;

    if (s_is_ows(s[0]))
        return -1;                          /* obs-fold */
    while (i < n && s_is_tchar((unsigned char)s[i]))
        i++;
    if (i == n)
        return complete ? -1 : 0;           /* no ':' */
    if (s[i] != ':' || i == 0)
        return -1;
    for (size_t k = i + 1; k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        if ((c < 0x20 && c != '\t') || c == 0x7F)
            return -1;
    }
    a = i + 1;
    b = n;
    while (a < b && s_is_ows(s[a]))
        a++;
    while (b > a && s_is_ows(s[b - 1]))
        b--;
    h->name = s;
    h->name_len = i;
    h->value = s + a;
    h->value_len = b - a;
    return 0;
}

/* Parses the request head in buf[0..len); see http.h. On anything but a
 * positive return, *req holds partial results and must not be used. */
int http_parse_request(const char *buf, size_t len, size_t max_head, http_request_t *req)
{
    size_t limit, pos = 0, eol = 0;
    int first = 1;

    if (max_head > INT_MAX)
        max_head = INT_MAX;                 /* the head length is returned as int */
    limit = len < max_head ? len : max_head;
    req->method = req->path = req->query = NULL;
    req->method_len = req->path_len = req->query_len = 0;
    req->minor_version = 0;
    req->num_headers = 0;

    while (pos + 1 < limit && buf[pos] == '\r' && buf[pos + 1] == '\n')
        pos += 2;
    for (;;) {
        int rc = s_find_eol(buf, pos, limit, &eol);
        size_t n;
        if (rc < 0)
            return HTTP_ERROR;
        n = eol - pos;
        if (first) {
            if (s_request_line(buf + pos, n, rc, req) < 0)
                return HTTP_ERROR;
        } else if (n == 0) {
            if (rc == 1)
                return (int)(eol + 2);      /* the empty line: head complete */
        } else {
            if (req->num_headers == HTTP_MAX_HEADERS)
                return HTTP_TOO_LARGE;
            if (s_header(buf + pos, n, rc, &req->headers[req->num_headers]) < 0)
                return HTTP_ERROR;
            if (rc == 1)
                req->num_headers++;
        }
        if (rc == 0)
            return len >= max_head ? HTTP_TOO_LARGE : HTTP_INCOMPLETE;
        pos = eol + 2;
        first = 0;
    }
}

/* The first header named `name` (ASCII case-insensitive), or NULL. */
const http_header_t *http_find_header(const http_request_t *req, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < req->num_headers; i++)
        if (s_ieq(req->headers[i].name, req->headers[i].name_len, name, nl))
            return &req->headers[i];
    return NULL;
}

/* 1 if one comma-separated element of h's value equals token, ignoring case
 * and surrounding whitespace; 0 otherwise (also for h NULL or an empty token). */
int http_header_has_token(const http_header_t *h, const char *token)
{
    size_t tl = strlen(token), i = 0;

    if (!h || tl == 0)
        return 0;
    while (i <= h->value_len) {
        size_t a = i, b;
        while (i < h->value_len && h->value[i] != ',')
            i++;
        b = i;
        while (a < b && s_is_ows(h->value[a]))
            a++;
        while (b > a && s_is_ows(h->value[b - 1]))
            b--;
        if (s_ieq(h->value + a, b - a, token, tl))
            return 1;
        i++;
    }
    return 0;
}

static int s_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes src[0..n) into out (capacity cap, NUL-terminated). */
static long s_decode(const char *src, size_t n, char *out, size_t cap)
{
    size_t o = 0;

    if (cap == 0)
        return -2;
    for (size_t k = 0; k < n; k++) {
        char c = src[k];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi, lo;
            if (k + 2 >= n)
                goto bad;                   /* truncated escape */
            hi = s_hex(src[k + 1]);
            lo = s_hex(src[k + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                goto bad;                   /* not hex, or an embedded NUL */
            c = (char)(hi * 16 + lo);
            k += 2;
        }
        if (o + 1 >= cap)
            goto bad;
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
bad:
    out[0] = '\0';
    return -2;
}

/* Looks up `name` (exact, case-sensitive, not decoded) among the '&'-separated
 * pairs of query[0..len); the first match wins, and a name without '=' has
 * the empty value. The decoded value goes to out; see http.h for returns.
 * %00 counts as badly encoded, so out is always a proper C string. */
long http_query_param(const char *query, size_t len, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name), i = 0;

    if (nl == 0)
        return -1;
    while (i < len) {
        size_t j = i, key_end;
        const char *eq;
        while (j < len && query[j] != '&')
            j++;
        eq = memchr(query + i, '=', j - i);
        key_end = eq ? (size_t)(eq - query) : j;
        if (key_end - i == nl && memcmp(query + i, name, nl) == 0) {
            if (!eq)
                return s_decode("", 0, out, cap);
            return s_decode(eq + 1, (size_t)(query + j - (eq + 1)), out, cap);
        }
        i = j + 1;
    }
    return -1;
}

/* Content-Length: digits only, no overflow; repeated fields must agree. */
int http_content_length(const http_request_t *req, size_t *out)
{
    int found = 0;
    size_t val = 0;

    for (size_t i = 0; i < req->num_headers; i++) {
        const http_header_t *h = &req->headers[i];
        size_t v = 0;
        if (!s_ieq(h->name, h->name_len, "content-length", 14))
            continue;
        if (h->value_len == 0)
            return -2;
        for (size_t k = 0; k < h->value_len; k++) {
            char c = h->value[k];
            if (c < '0' || c > '9')
                return -2;
            if (v > (SIZE_MAX - (size_t)(c - '0')) / 10)
                return -2;
            v = v * 10 + (size_t)(c - '0');
        }
        if (found && v != val)
            return -2;
        found = 1;
        val = v;
    }
    if (!found)
        return -1;
    *out = val;
    return 0;
}
