/*  test_log - level parsing, password redaction, the line format (captured
 *  through a pipe on fd 2), JSON escaping, truncation and the log file. */
#include "log.h"
#include "test.h"

#include <fcntl.h>
#include <jansson.h>
#include <unistd.h>

/* Redirects fd 2 into a pipe; s_capture_end() restores it and returns what
 * was written (NUL-terminated, static). */
static int s_saved_fd = -1, s_pipe_r = -1;
static char s_out[65536];

static int s_capture_begin(void)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    s_saved_fd = dup(2);
    dup2(p[1], 2);
    close(p[1]);
    s_pipe_r = p[0];
    return 0;
}

static const char *s_capture_end(void)
{
    dup2(s_saved_fd, 2);    /* closes the pipe's last write end */
    close(s_saved_fd);
    size_t n = 0;
    ssize_t r;
    while (n < sizeof s_out - 1 && (r = read(s_pipe_r, s_out + n, sizeof s_out - 1 - n)) > 0)
        n += (size_t)r;
    s_out[n] = '\0';
    close(s_pipe_r);
    return s_out;
}

/* Checks "YYYY-MM-DDTHH:MM:SS.mmmZ" at p. */
static int s_is_ts(const char *p)
{
    const char *pat = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; pat[i]; i++) {
        if (pat[i] == 'd' ? (p[i] < '0' || p[i] > '9') : p[i] != pat[i])
            return 0;
    }
    return 1;
}

TEST(parse_level)
{
    log_level_t l = LOG_LVL_ERROR;
    CHECK_EQ_INT(log_parse_level("debug", &l), 0);
    CHECK_EQ_INT(l, LOG_LVL_DEBUG);
    CHECK_EQ_INT(log_parse_level("info", &l), 0);
    CHECK_EQ_INT(l, LOG_LVL_INFO);
    CHECK_EQ_INT(log_parse_level("warn", &l), 0);
    CHECK_EQ_INT(l, LOG_LVL_WARN);
    CHECK_EQ_INT(log_parse_level("ERROR", &l), 0);
    CHECK_EQ_INT(l, LOG_LVL_ERROR);
    CHECK_EQ_INT(log_parse_level("verbose", &l), -1);
    CHECK_EQ_INT(log_parse_level("", &l), -1);
    CHECK_EQ_INT(log_parse_level("info ", &l), -1);
    CHECK_EQ_INT(log_parse_level(NULL, &l), -1);
    CHECK_EQ_INT(l, LOG_LVL_ERROR);     /* unchanged on failure */
}

static const char *s_red(const char *in)
{
    static char buf[512];
    return log_redact_url(in, buf, sizeof buf);
}

TEST(redact_url)
{
    CHECK_EQ_STR(s_red("postgresql://u:secret@h/db"), "postgresql://u:***@h/db");
    CHECK_EQ_STR(s_red("postgres://belfry:s3cr3t@db.example:5432/belfry?sslmode=require"),
                 "postgres://belfry:***@db.example:5432/belfry?sslmode=require");
    /* no password: unchanged */
    CHECK_EQ_STR(s_red("postgresql://u@h/db"), "postgresql://u@h/db");
    CHECK_EQ_STR(s_red("postgresql://h:5432/db"), "postgresql://h:5432/db");
    CHECK_EQ_STR(s_red("postgresql:///belfry"), "postgresql:///belfry");
    /* a raw '@' (and ':' '/' '?') inside the password */
    CHECK_EQ_STR(s_red("postgresql://u:p@ss@h/db"), "postgresql://u:***@h/db");
    CHECK_EQ_STR(s_red("postgresql://u:a:b/c@h/db"), "postgresql://u:***@h/db");
    CHECK_EQ_STR(s_red("postgresql://u:p?x@h/db"), "postgresql://u:***@h/db");
    CHECK(strstr(s_red("postgresql://u:p@ss@h/db"), "ss") == NULL);
    /* password as a query parameter */
    CHECK_EQ_STR(s_red("postgresql://h/db?user=u&password=secret&sslmode=disable"),
                 "postgresql://h/db?user=u&password=***&sslmode=disable");
    CHECK_EQ_STR(s_red("postgresql://u:pw@h/db?password=pw2"),
                 "postgresql://u:***@h/db?password=***");
    /* an '@' only in the query never lets a password through */
    CHECK(strstr(s_red("postgresql://h:5432/db?user=a@b&password=secret"), "secret") == NULL);
}

TEST(redact_conninfo)
{
    CHECK_EQ_STR(s_red("host=h user=u password=secret dbname=d"),
                 "host=h user=u password=*** dbname=d");
    CHECK_EQ_STR(s_red("password=secret"), "password=***");
    CHECK_EQ_STR(s_red("host=h password = secret port=5432"),
                 "host=h password = *** port=5432");
    /* quoted, with spaces and escaped quotes */
    CHECK_EQ_STR(s_red("host=h password='a b\\' c' dbname=d"),
                 "host=h password=*** dbname=d");
    CHECK_EQ_STR(s_red("password='' user=u"), "password=*** user=u");
    CHECK_EQ_STR(s_red("host=h user=u dbname=d"), "host=h user=u dbname=d");
    CHECK_EQ_STR(s_red("PASSWORD=x"), "PASSWORD=***");
    /* "passwordfile" / "mypassword" are other keys */
    CHECK_EQ_STR(s_red("passfile=/x mypassword=y"), "passfile=/x mypassword=y");
    CHECK(strstr(s_red("user=u password=p@ss host=h"), "p@ss") == NULL);
}

TEST(redact_bounds)
{
    char small[16];
    log_redact_url("postgresql://u:secret@host/db", small, sizeof small);
    CHECK_EQ_STR(small, "postgresql://u:");
    CHECK_EQ_INT(strlen(small), 15);
    char one[1] = { 'x' };
    log_redact_url("password=x", one, 1);
    CHECK_EQ_INT(one[0], '\0');
    char buf[8];
    CHECK_EQ_STR(log_redact_url(NULL, buf, sizeof buf), "");
}

TEST(text_format)
{
    log_init("gateway");
    log_set_json(0);
    log_set_level(LOG_LVL_INFO);
    CHECK_EQ_INT(s_capture_begin(), 0);
    log_info("event=listen addr=%s port=%d", "0.0.0.0", 8080);
    log_debug("event=hidden");
    log_warn("two\nlines");
    const char *out = s_capture_end();
    CHECK(s_is_ts(out));
    const char *nl = strchr(out, '\n');
    CHECK(nl != NULL);
    CHECK_EQ_MEM(out + 24, (size_t)(nl + 1 - (out + 24)),
                 " level=info comp=gateway event=listen addr=0.0.0.0 port=8080\n");
    CHECK(s_is_ts(nl + 1));
    CHECK_EQ_STR(nl + 25, " level=warn comp=gateway two\\nlines\n");
}

TEST(level_filter)
{
    log_init("broker");
    log_set_json(0);
    log_set_level(LOG_LVL_WARN);
    CHECK_EQ_INT(log_get_level(), LOG_LVL_WARN);
    CHECK_EQ_INT(s_capture_begin(), 0);
    log_debug("a=1");
    log_info("b=2");
    log_warn("c=3");
    log_error("d=4");
    const char *out = s_capture_end();
    log_set_level(LOG_LVL_INFO);
    CHECK(strstr(out, "a=1") == NULL);
    CHECK(strstr(out, "b=2") == NULL);
    CHECK(strstr(out, " level=warn comp=broker c=3\n") != NULL);
    CHECK(strstr(out, " level=error comp=broker d=4\n") != NULL);
}

TEST(json_format)
{
    log_init("gateway");
    log_set_json(1);
    log_set_level(LOG_LVL_DEBUG);
    CHECK_EQ_INT(s_capture_begin(), 0);
    log_debug("say=\"hi\" path=C:\\x tab=\t nl=\n bell=\a bad=\xff end");
    const char *out = s_capture_end();
    log_set_json(0);
    log_set_level(LOG_LVL_INFO);
    size_t n = strlen(out);
    CHECK(n > 0 && out[n - 1] == '\n');
    CHECK(memchr(out, '\n', n - 1) == NULL);        /* one line */
    json_error_t err;
    json_t *j = json_loadb(out, n, 0, &err);
    CHECK(j != NULL);
    int ok = json_is_object(j) && json_object_size(j) == 4 &&
             s_is_ts(json_string_value(json_object_get(j, "ts"))) &&
             strcmp(json_string_value(json_object_get(j, "level")), "debug") == 0 &&
             strcmp(json_string_value(json_object_get(j, "comp")), "gateway") == 0 &&
             strcmp(json_string_value(json_object_get(j, "msg")),
                    "say=\"hi\" path=C:\\x tab=\t nl=\n bell=\a bad=\xef\xbf\xbd end") == 0;
    json_decref(j);
    CHECK(ok);
    CHECK(strncmp(out, "{\"ts\":\"", 7) == 0);
}

TEST(truncation)
{
    log_init("gateway");
    log_set_json(0);
    log_set_level(LOG_LVL_INFO);
    static char big[10000];
    /* multi-byte characters so the cut has to respect UTF-8 */
    for (size_t i = 0; i + 2 < sizeof big; i += 2) {
        big[i] = '\xc3';
        big[i + 1] = '\xa9';
    }
    big[sizeof big - 2] = '\0';
    CHECK_EQ_INT(s_capture_begin(), 0);
    log_info("m=%s", big);
    const char *out = s_capture_end();
    size_t n = strlen(out);
    CHECK(n > 4000 && n < 4200);
    CHECK(memcmp(out + n - 4, "\xe2\x80\xa6\n", 4) == 0);
    /* no half character before the ellipsis */
    CHECK(memcmp(out + n - 6, "\xc3\xa9", 2) == 0);

    /* and still valid JSON in JSON mode */
    log_set_json(1);
    CHECK_EQ_INT(s_capture_begin(), 0);
    log_info("m=%s", big);
    out = s_capture_end();
    log_set_json(0);
    json_t *j = json_loads(out, 0, NULL);
    CHECK(j != NULL);
    const char *m = json_string_value(json_object_get(j, "msg"));
    int ok = m && strlen(m) <= 4096 && strlen(m) > 4000 &&
             strcmp(m + strlen(m) - 3, "\xe2\x80\xa6") == 0;
    json_decref(j);
    CHECK(ok);
}

TEST(log_file_reopen)
{
    char dir[] = "/tmp/test_log_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[64], moved[64];
    snprintf(path, sizeof path, "%s/a.log", dir);
    snprintf(moved, sizeof moved, "%s/a.log.1", dir);
    int saved = dup(2);
    log_init("broker");
    log_set_json(0);
    log_set_level(LOG_LVL_INFO);
    int rc1 = log_set_file(path);
    int fl = fcntl(2, F_GETFL);
    log_info("first=1");
    int rc2 = rename(path, moved);
    log_info("second=2");               /* still goes to the moved file */
    int rc3 = log_reopen();
    log_info("third=3");                /* a fresh file at path */
    int rc4 = log_set_file("/nonexistent-dir/x.log");
    dup2(saved, 2);
    close(saved);
    CHECK_EQ_INT(rc1, 0);
    CHECK_EQ_INT(rc2, 0);
    CHECK_EQ_INT(rc3, 0);
    CHECK_EQ_INT(rc4, -1);
    CHECK(fl >= 0 && (fl & O_APPEND));
    char buf[1024];
    FILE *f = fopen(moved, "r");
    CHECK(f != NULL);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    CHECK(strstr(buf, "level=info comp=broker first=1\n") != NULL);
    CHECK(strstr(buf, "second=2") != NULL);
    CHECK(strstr(buf, "third=3") == NULL);
    f = fopen(path, "r");
    CHECK(f != NULL);
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    CHECK(s_is_ts(buf));
    CHECK_EQ_STR(buf + 24, " level=info comp=broker third=3\n");
    unlink(path);
    unlink(moved);
    rmdir(dir);
}

TEST_MAIN(parse_level, redact_url, redact_conninfo, redact_bounds, text_format,
          level_filter, json_format, truncation, log_file_reopen)
