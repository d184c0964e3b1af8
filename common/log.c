/*  log - one line per event, with a level and key=value fields
 *
 *  Design: the processes are single-threaded, so the state (component, level,
 *  mode, log file path) and the line buffer are plain statics. Each line is
 *  formatted completely in memory and handed to the kernel with one write(2)
 *  on fd 2: with O_APPEND files shared by several processes, lines never
 *  interleave. The message is capped at LOG_MSG_MAX bytes and a longer one is
 *  cut on a UTF-8 boundary and ends with "…". Control characters are escaped
 *  in both modes so that one event is always exactly one line; JSON mode also
 *  replaces invalid UTF-8 with U+FFFD so the output is always valid JSON.
 *  A log file is opened O_APPEND and dup2'd onto fd 2, so anything else that
 *  writes to stderr (libraries, sanitizers) lands in the same file;
 *  log_reopen() repeats that after logrotate moved the file (SIGHUP).
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_MSG_MAX  4096           /* bytes of formatted message kept */
#define LOG_COMP_MAX 64             /* component name, with NUL */
/* Worst case: every message byte escaped to 6 bytes (\u00XX), plus the rest. */
#define LOG_LINE_MAX (LOG_MSG_MAX * 6 + 2 * LOG_COMP_MAX * 6 + 256)

static char s_comp[LOG_COMP_MAX] = "belfry";    /* component name */
static log_level_t s_level = LOG_LVL_INFO;      /* lowest level written */
static int s_json;                              /* 1: JSON lines */
static char *s_path;                            /* log file, or NULL: stderr as is */
static char s_line[LOG_LINE_MAX];               /* the line being built */

static const char *const s_names[] = { "debug", "info", "warn", "error" };

void log_init(const char *component)
{
    if (!component)
        component = "belfry";
    snprintf(s_comp, sizeof s_comp, "%s", component);
}

void log_set_level(log_level_t level)
{
    if (level >= LOG_LVL_DEBUG && level <= LOG_LVL_ERROR)
        s_level = level;
}

log_level_t log_get_level(void)
{
    return s_level;
}

void log_set_json(int on)
{
    s_json = on ? 1 : 0;
}

int log_parse_level(const char *s, log_level_t *out)
{
    if (!s)
        return -1;
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, s_names[i]) == 0) {
            if (out)
                *out = (log_level_t)i;
            return 0;
        }
    }
    return -1;
}

/* Opens path O_APPEND and puts it on fd 2. 0, or -1 with fd 2 unchanged. */
static int s_open_on_stderr(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    int rc = 0;
    if (fd != STDERR_FILENO) {
        /* dup2 clears FD_CLOEXEC on fd 2, as children expect a stderr. */
        if (dup2(fd, STDERR_FILENO) < 0)
            rc = -1;
        close(fd);
    }
    return rc;
}

int log_set_file(const char *path)
{
    if (!path || !*path)
        return -1;
    char *copy = strdup(path);
    if (!copy)
        return -1;
    if (s_open_on_stderr(copy) < 0) {
        free(copy);
        return -1;
    }
    free(s_path);
    s_path = copy;
    return 0;
}

int log_reopen(void)
{
    if (!s_path)
        return 0;           /* logging to the inherited stderr: nothing to do */
    return s_open_on_stderr(s_path);
}

/* Length of the valid UTF-8 sequence at p[0..n), or 0 if it is invalid. */
static size_t s_utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    unsigned int cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* Appends src[0..n) to s_line at *o, escaped for the current mode. The caller
 * guarantees room for 6 bytes per source byte. */
static void s_put_escaped(size_t *o, const char *src, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)src;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        const char *esc = NULL;
        switch (c) {
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '"':  esc = s_json ? "\\\"" : NULL; break;
        case '\\': esc = s_json ? "\\\\" : NULL; break;
        default: break;
        }
        if (esc) {
            size_t el = strlen(esc);
            memcpy(s_line + *o, esc, el);
            *o += el;
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            /* \u00XX is valid JSON; \xXX keeps text lines short and readable */
            const char *pre = s_json ? "\\u00" : "\\x";
            size_t pl = strlen(pre);
            memcpy(s_line + *o, pre, pl);
            *o += pl;
            s_line[(*o)++] = hex[c >> 4];
            s_line[(*o)++] = hex[c & 15];
            i++;
        } else if (c < 0x80 || !s_json) {
            s_line[(*o)++] = (char)c;
            i++;
        } else {
            size_t l = s_utf8_seq(p + i, n - i);
            if (l == 0) {
                memcpy(s_line + *o, "\\ufffd", 6);
                *o += 6;
                i++;
            } else {
                memcpy(s_line + *o, p + i, l);
                *o += l;
                i += l;
            }
        }
    }
}

static void s_put(size_t *o, const char *s)
{
    size_t n = strlen(s);
    memcpy(s_line + *o, s, n);
    *o += n;
}

/* Writes the whole buffer to fd 2 in one call (retrying on EINTR and, for a
 * pipe that accepted only part, continuing with the rest). */
static void s_write(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;         /* nowhere left to report it */
        }
        p += w;
        n -= (size_t)w;
    }
}

void log_msg(log_level_t level, const char *fmt, ...)
{
    if (level < s_level || level < LOG_LVL_DEBUG || level > LOG_LVL_ERROR)
        return;
    int saved_errno = errno;    /* callers log strerror(errno) after us */

    char msg[LOG_MSG_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t mlen;
    if (n < 0) {
        mlen = (size_t)snprintf(msg, sizeof msg, "(log format error)");
    } else if ((size_t)n < sizeof msg) {
        mlen = (size_t)n;
    } else {
        /* Too long: cut on a UTF-8 boundary and mark the cut with "…". */
        static const char ell[] = "\xe2\x80\xa6";
        mlen = LOG_MSG_MAX - (sizeof ell - 1);
        while (mlen > 0 && ((unsigned char)msg[mlen] & 0xC0) == 0x80)
            mlen--;
        memcpy(msg + mlen, ell, sizeof ell - 1);
        mlen += sizeof ell - 1;
    }

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    time_t secs = ts.tv_sec;
    gmtime_r(&secs, &tm);
    char tsbuf[96];
    snprintf(tsbuf, sizeof tsbuf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000));

    size_t o = 0;
    if (s_json) {
        s_put(&o, "{\"ts\":\"");
        s_put(&o, tsbuf);
        s_put(&o, "\",\"level\":\"");
        s_put(&o, s_names[level]);
        s_put(&o, "\",\"comp\":\"");
        s_put_escaped(&o, s_comp, strlen(s_comp));
        s_put(&o, "\",\"msg\":\"");
        s_put_escaped(&o, msg, mlen);
        s_put(&o, "\"}\n");
    } else {
        s_put(&o, tsbuf);
        s_put(&o, " level=");
        s_put(&o, s_names[level]);
        s_put(&o, " comp=");
        s_put_escaped(&o, s_comp, strlen(s_comp));
        s_put(&o, " ");
        s_put_escaped(&o, msg, mlen);
        s_put(&o, "\n");
    }
    s_write(s_line, o);
    errno = saved_errno;
}

/* A bounded writer into the caller's buffer: always NUL-terminated. */
typedef struct {
    char *out;          /* destination */
    size_t cap;         /* its capacity */
    size_t len;         /* bytes written, excluding the NUL */
} s_wr_t;

static void s_wr(s_wr_t *w, const char *p, size_t n)
{
    if (w->cap == 0)
        return;
    size_t room = w->cap - 1 - w->len;
    if (n > room)
        n = room;
    memcpy(w->out + w->len, p, n);
    w->len += n;
    w->out[w->len] = '\0';
}

/* Copies a URL's query string q[0..n), replacing each password= value. */
static void s_redact_query(s_wr_t *w, const char *q, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t end = i;
        while (end < n && q[end] != '&')
            end++;
        static const char key[] = "password=";
        if (end - i >= sizeof key - 1 && strncasecmp(q + i, key, sizeof key - 1) == 0) {
            s_wr(w, q + i, sizeof key - 1);
            s_wr(w, "***", 3);
        } else {
            s_wr(w, q + i, end - i);
        }
        if (end < n)
            s_wr(w, "&", 1);
        i = end + 1;
    }
}

/* scheme://[user[:password]@]host...[?query] */
static void s_redact_uri(s_wr_t *w, const char *url, size_t len, size_t auth)
{
    /* A raw '@' may appear in a careless password, never in a host: the
     * userinfo ends at the last '@' before the query, or failing that at the
     * last '@' at all (over-redacting is fine, leaking is not). */
    const char *q = memchr(url + auth, '?', len - auth);
    size_t qpos = q ? (size_t)(q - url) : len;
    size_t at = 0;
    for (size_t i = auth; i < qpos; i++)
        if (url[i] == '@')
            at = i;
    if (!at)
        for (size_t i = auth; i < len; i++)
            if (url[i] == '@')
                at = i;
    const char *colon = at ? memchr(url + auth, ':', at - auth) : NULL;
    if (!colon) {
        /* no password in the userinfo */
        s_wr(w, url, qpos);
    } else {
        s_wr(w, url, (size_t)(colon - url) + 1);
        s_wr(w, "***", 3);
        if (at >= qpos) {
            /* the query was swallowed into the userinfo: still hide any
             * password= that follows the '@' */
            s_redact_query(w, url + at, len - at);
            return;
        }
        s_wr(w, url + at, qpos - at);
    }
    if (qpos < len) {
        s_wr(w, "?", 1);
        s_redact_query(w, url + qpos + 1, len - qpos - 1);
    }
}

/* key = value ... conninfo; values may be 'quoted' with \' and \\ escapes. */
static void s_redact_conninfo(s_wr_t *w, const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        /* copy whitespace */
        size_t ws = i;
        while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
            i++;
        s_wr(w, s + ws, i - ws);
        if (i >= len)
            break;
        /* the key, up to '=' or whitespace */
        size_t k = i;
        while (i < len && s[i] != '=' && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            i++;
        size_t klen = i - k;
        int is_pw = klen == 8 && strncasecmp(s + k, "password", 8) == 0;
        s_wr(w, s + k, klen);
        /* optional spaces, '=', optional spaces */
        size_t e = i;
        while (e < len && (s[e] == ' ' || s[e] == '\t'))
            e++;
        if (e >= len || s[e] != '=') {
            continue;           /* not key=value; keep going word by word */
        }
        e++;
        while (e < len && (s[e] == ' ' || s[e] == '\t'))
            e++;
        s_wr(w, s + i, e - i);
        i = e;
        /* the value */
        size_t v = i;
        if (i < len && s[i] == '\'') {
            i++;
            while (i < len && s[i] != '\'') {
                if (s[i] == '\\' && i + 1 < len)
                    i++;
                i++;
            }
            if (i < len)
                i++;            /* closing quote */
        } else {
            while (i < len && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
                if (s[i] == '\\' && i + 1 < len)
                    i++;
                i++;
            }
        }
        if (is_pw)
            s_wr(w, "***", 3);
        else
            s_wr(w, s + v, i - v);
    }
}

char *log_redact_url(const char *url, char *out, size_t cap)
{
    if (!out || cap == 0)
        return out;
    out[0] = '\0';
    if (!url)
        return out;
    s_wr_t w = { out, cap, 0 };
    size_t len = strlen(url);
    const char *sep = strstr(url, "://");
    /* a URI when "://" follows a plain scheme name */
    int is_uri = sep != NULL && sep > url;
    for (const char *p = url; is_uri && p < sep; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.'))
            is_uri = 0;
    if (is_uri)
        s_redact_uri(&w, url, len, (size_t)(sep - url) + 3);
    else
        s_redact_conninfo(&w, url, len);
    return out;
}

void log_rotate(void)
{
    if (log_reopen() < 0)
        log_error("event=log_reopen_failed reason=\"%s\"", strerror(errno));
    else
        log_info("event=log_reopened");
}
