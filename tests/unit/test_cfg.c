/*  test_cfg - precedence default < env < flag, flag spellings, --help, and
 *  every error (the message must name the flag or the variable). */
#include "cfg.h"
#include "test.h"

#include <stdarg.h>
#include <unistd.h>

/* The settings of a pretend gateway. */
static char *s_listen;
static char *s_db;
static long s_max_conn;
static long s_port;
static int s_verbose;
static int s_json;

static const cfg_opt_t s_opts[] = {
    { "listen", "BELFRY_LISTEN", CFG_STR, &s_listen, "0.0.0.0:8080", "address to listen on", 0, 0 },
    { "db", "BELFRY_DB_URL", CFG_STR, &s_db, NULL, "PostgreSQL URL", 0, 0 },
    { "max-conn", "BELFRY_MAX_CONN", CFG_INT, &s_max_conn, "1000", "connection cap", 1, 100000 },
    { "port", NULL, CFG_INT, &s_port, "-5", "a flag-only int", -10, 10 },
    { "verbose", "BELFRY_VERBOSE", CFG_BOOL, &s_verbose, "0", "chatty logs", 0, 0 },
    { "json", "BELFRY_JSON", CFG_BOOL, &s_json, "1", "JSON logs", 0, 0 },
};
#define N_OPTS (sizeof s_opts / sizeof s_opts[0])

static void s_clear_env(void)
{
    unsetenv("BELFRY_LISTEN");
    unsetenv("BELFRY_DB_URL");
    unsetenv("BELFRY_MAX_CONN");
    unsetenv("BELFRY_VERBOSE");
    unsetenv("BELFRY_JSON");
}

/* Runs cfg_parse on a NULL-terminated argument list, capturing stdout and
 * stderr into s_stdout / s_stderr. */
static char s_stdout[8192], s_stderr[1024];

static void s_drain(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    close(fd);
}

static int s_run(const char *a0, ...)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = "belfry-gateway";
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && argc < 31; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;

    int po[2], pe[2];
    if (pipe(po) < 0 || pipe(pe) < 0)
        return -99;
    fflush(stdout);
    int so = dup(1), se = dup(2);
    dup2(po[1], 1);
    dup2(pe[1], 2);
    close(po[1]);
    close(pe[1]);
    int rc = cfg_parse(s_opts, N_OPTS, argc, argv, "belfry-gateway", "A test gateway.");
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    s_drain(po[0], s_stdout, sizeof s_stdout);
    s_drain(pe[0], s_stderr, sizeof s_stderr);
    return rc;
}

TEST(defaults)
{
    s_clear_env();
    s_db = "stale";
    CHECK_EQ_INT(s_run(NULL), 0);
    CHECK_EQ_STR(s_listen, "0.0.0.0:8080");
    CHECK(s_db == NULL);
    CHECK_EQ_INT(s_max_conn, 1000);
    CHECK_EQ_INT(s_port, -5);
    CHECK_EQ_INT(s_verbose, 0);
    CHECK_EQ_INT(s_json, 1);
    CHECK_EQ_STR(s_stderr, "");
    CHECK_EQ_STR(s_stdout, "");
}

TEST(precedence)
{
    s_clear_env();
    setenv("BELFRY_LISTEN", "127.0.0.1:9000", 1);
    setenv("BELFRY_MAX_CONN", "50", 1);
    setenv("BELFRY_VERBOSE", "yes", 1);
    setenv("BELFRY_DB_URL", "postgresql:///env", 1);
    /* env over default */
    CHECK_EQ_INT(s_run(NULL), 0);
    CHECK_EQ_STR(s_listen, "127.0.0.1:9000");
    CHECK_EQ_INT(s_max_conn, 50);
    CHECK_EQ_INT(s_verbose, 1);
    CHECK_EQ_STR(s_db, "postgresql:///env");
    /* flag over env */
    CHECK_EQ_INT(s_run("--listen", "[::1]:1", "--max-conn=7", "--verbose=off", NULL), 0);
    CHECK_EQ_STR(s_listen, "[::1]:1");
    CHECK_EQ_INT(s_max_conn, 7);
    CHECK_EQ_INT(s_verbose, 0);
    CHECK_EQ_STR(s_db, "postgresql:///env");
    s_clear_env();
}

TEST(flag_forms)
{
    s_clear_env();
    CHECK_EQ_INT(s_run("--db=postgresql://u@h/d", "--max-conn", "100000", "--port", "-10",
                       "--verbose", "--json=0", NULL), 0);
    CHECK_EQ_STR(s_db, "postgresql://u@h/d");
    CHECK_EQ_INT(s_max_conn, 100000);
    CHECK_EQ_INT(s_port, -10);
    CHECK_EQ_INT(s_verbose, 1);
    CHECK_EQ_INT(s_json, 0);
    /* a value may contain '='; an empty string value is allowed; last flag wins */
    CHECK_EQ_INT(s_run("--db=host=h password=x", "--listen=", "--port=1", "--port=2", NULL), 0);
    CHECK_EQ_STR(s_db, "host=h password=x");
    CHECK_EQ_STR(s_listen, "");
    CHECK_EQ_INT(s_port, 2);
    /* bool spellings */
    const char *t[] = { "--json=1", "--json=true", "--json=YES", "--json=on" };
    const char *f[] = { "--json=0", "--json=false", "--json=No", "--json=OFF" };
    for (size_t i = 0; i < 4; i++) {
        CHECK_EQ_INT(s_run(f[i], NULL), 0);
        CHECK_EQ_INT(s_json, 0);
        CHECK_EQ_INT(s_run(t[i], NULL), 0);
        CHECK_EQ_INT(s_json, 1);
    }
    /* "--" ends the flags; nothing may follow */
    CHECK_EQ_INT(s_run("--port=3", "--", NULL), 0);
    CHECK_EQ_INT(s_port, 3);
}

TEST(help)
{
    s_clear_env();
    setenv("BELFRY_MAX_CONN", "abc", 1);   /* help works despite a bad env */
    CHECK_EQ_INT(s_run("--max-conn=5", "--help", NULL), 1);
    CHECK_EQ_STR(s_stderr, "");
    CHECK(strstr(s_stdout, "belfry-gateway") != NULL);
    CHECK(strstr(s_stdout, "A test gateway.") != NULL);
    CHECK(strstr(s_stdout, "--listen") != NULL);
    CHECK(strstr(s_stdout, "BELFRY_LISTEN") != NULL);
    CHECK(strstr(s_stdout, "0.0.0.0:8080") != NULL);
    CHECK(strstr(s_stdout, "address to listen on") != NULL);
    CHECK(strstr(s_stdout, "--max-conn") != NULL);
    CHECK(strstr(s_stdout, "BELFRY_MAX_CONN") != NULL);
    CHECK(strstr(s_stdout, "connection cap") != NULL);
    CHECK(strstr(s_stdout, "1..100000") != NULL);
    CHECK(strstr(s_stdout, "--verbose") != NULL);
    CHECK(strstr(s_stdout, "--port") != NULL);
    CHECK_EQ_INT(s_run("-h", NULL), 1);
    CHECK(strstr(s_stdout, "--json") != NULL);
    s_clear_env();
}

TEST(err_unknown_flag)
{
    s_clear_env();
    CHECK_EQ_INT(s_run("--nope", NULL), -1);
    CHECK_EQ_STR(s_stderr, "belfry-gateway: --nope: unknown flag (see --help)\n");
    CHECK_EQ_INT(s_run("--nope=3", NULL), -1);
    CHECK(strstr(s_stderr, "--nope: unknown flag") != NULL);
    CHECK_EQ_INT(s_run("-x", NULL), -1);
    CHECK(strstr(s_stderr, "-x: unknown flag") != NULL);
    /* a prefix is not a match */
    CHECK_EQ_INT(s_run("--max", "3", NULL), -1);
    CHECK(strstr(s_stderr, "--max: unknown flag") != NULL);
}

TEST(err_missing_value)
{
    s_clear_env();
    CHECK_EQ_INT(s_run("--listen", NULL), -1);
    CHECK_EQ_STR(s_stderr, "belfry-gateway: --listen: missing value\n");
    CHECK_EQ_INT(s_run("--max-conn", "--verbose", NULL), -1);
    CHECK_EQ_STR(s_stderr, "belfry-gateway: --max-conn: missing value\n");
}

TEST(err_not_a_number)
{
    s_clear_env();
    setenv("BELFRY_MAX_CONN", "abc", 1);
    CHECK_EQ_INT(s_run(NULL), -1);
    CHECK_EQ_STR(s_stderr, "belfry-gateway: BELFRY_MAX_CONN=abc: not a number\n");
    /* a bad env value is an error even if a flag would override it */
    setenv("BELFRY_MAX_CONN", "12x", 1);
    CHECK_EQ_INT(s_run("--max-conn=5", NULL), -1);
    CHECK(strstr(s_stderr, "BELFRY_MAX_CONN=12x: not a number") != NULL);
    s_clear_env();
    const char *bad[] = { "--max-conn=", "--max-conn= 5", "--max-conn=5 ", "--max-conn=0x10",
                          "--max-conn=1.5", "--max-conn=-", "--max-conn=+" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(s_run(bad[i], NULL), -1);
        CHECK(strstr(s_stderr, "belfry-gateway: --max-conn=") == s_stderr);
        CHECK(strstr(s_stderr, ": not a number\n") != NULL);
    }
}

TEST(err_out_of_range)
{
    s_clear_env();
    CHECK_EQ_INT(s_run("--max-conn", "0", NULL), -1);
    CHECK_EQ_STR(s_stderr, "belfry-gateway: --max-conn=0: out of range (1..100000)\n");
    CHECK_EQ_INT(s_run("--max-conn=100001", NULL), -1);
    CHECK(strstr(s_stderr, "--max-conn=100001: out of range") != NULL);
    CHECK_EQ_INT(s_run("--max-conn=99999999999999999999999", NULL), -1);
    CHECK(strstr(s_stderr, "out of range") != NULL);
    CHECK_EQ_INT(s_run("--port=-11", NULL), -1);
    CHECK(strstr(s_stderr, "--port=-11: out of range (-10..10)") != NULL);
    setenv("BELFRY_MAX_CONN", "-1", 1);
    CHECK_EQ_INT(s_run(NULL), -1);
    CHECK_EQ_STR(s_stderr, "belfry-gateway: BELFRY_MAX_CONN=-1: out of range (1..100000)\n");
    s_clear_env();
}

TEST(err_bad_bool)
{
    s_clear_env();
    CHECK_EQ_INT(s_run("--verbose=maybe", NULL), -1);
    CHECK(strstr(s_stderr, "belfry-gateway: --verbose=maybe: not a boolean") == s_stderr);
    CHECK_EQ_INT(s_run("--verbose=", NULL), -1);
    CHECK(strstr(s_stderr, "--verbose=: not a boolean") != NULL);
    setenv("BELFRY_JSON", "2", 1);
    CHECK_EQ_INT(s_run(NULL), -1);
    CHECK(strstr(s_stderr, "belfry-gateway: BELFRY_JSON=2: not a boolean") == s_stderr);
    s_clear_env();
}

TEST(err_positional)
{
    s_clear_env();
    CHECK_EQ_INT(s_run("serve", NULL), -1);
    CHECK(strstr(s_stderr, "belfry-gateway: serve: unexpected argument") == s_stderr);
    /* a bool does not take the next argument */
    CHECK_EQ_INT(s_run("--verbose", "1", NULL), -1);
    CHECK(strstr(s_stderr, "1: unexpected argument") != NULL);
    CHECK_EQ_INT(s_run("--", "x", NULL), -1);
    CHECK(strstr(s_stderr, "x: unexpected argument") != NULL);
    CHECK_EQ_INT(s_run("-", NULL), -1);
    CHECK(strstr(s_stderr, "-: unexpected argument") != NULL);
}

TEST(err_bad_default)
{
    static long v;
    static const cfg_opt_t bad[] = {
        { "n", NULL, CFG_INT, &v, "zero", "x", 0, 10 },
    };
    char *argv[] = { "prog", NULL };
    int pe[2];
    CHECK(pipe(pe) == 0);
    int se = dup(2);
    dup2(pe[1], 2);
    close(pe[1]);
    int rc = cfg_parse(bad, 1, 1, argv, "prog", NULL);
    dup2(se, 2);
    close(se);
    s_drain(pe[0], s_stderr, sizeof s_stderr);
    CHECK_EQ_INT(rc, -1);
    CHECK(strstr(s_stderr, "--n") != NULL);
}

TEST_MAIN(defaults, precedence, flag_forms, help, err_unknown_flag, err_missing_value,
          err_not_a_number, err_out_of_range, err_bad_bool, err_positional, err_bad_default)
