/*  fuzz_cfg - libFuzzer target for command-line and environment settings
 *
 *  Design: the input is split on NUL. The first two pieces become the values
 *  of two BELFRY_* environment variables (an INT and a BOOL setting; a piece
 *  starting with 0xFF means "unset"); the rest is argv after the program
 *  name. cfg_parse runs over a table with each setting type. It must never
 *  crash; invariants that abort(): the result is 0, 1 or -1; on 0 every INT
 *  is within its range, every BOOL is 0 or 1 and every STR is NULL, its
 *  default, or points into argv or the environment. Messages go to stderr and
 *  --help to stdout; the harness sends stdout to /dev/null.
 */
#include "cfg.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_MAX_ARGS 64

static int s_in(const char *p, const char *base, size_t n)
{
    return p >= base && p < base + n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int inited;
    if (!inited) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            close(fd);
        }
        inited = 1;
    }
    if (size > 4096)
        return 0;
    char *buf = malloc(size + 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    buf[size] = '\0';

    char *piece[S_MAX_ARGS + 2];
    int np = 0;
    char *p = buf;
    for (;;) {
        piece[np++] = p;
        char *z = memchr(p, '\0', (size_t)(buf + size - p));
        if (!z || z == buf + size || np == S_MAX_ARGS + 2)
            break;
        p = z + 1;
    }

    const char *envs[2] = { "BELFRY_FZ_PORT", "BELFRY_FZ_VERBOSE" };
    for (int i = 0; i < 2; i++) {
        if (i < np && (unsigned char)piece[i][0] != 0xFF)
            setenv(envs[i], piece[i], 1);
        else
            unsetenv(envs[i]);
    }
    char *argv[S_MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "belfry-fuzz";
    for (int i = 2; i < np; i++)
        argv[argc++] = piece[i];
    argv[argc] = NULL;

    char *db = (char *)1, *name = (char *)1;
    long port = -7, workers = -7;
    int verbose = -7, tls = -7;
    static const char *const def_db = "postgresql:///belfry";
    cfg_opt_t opts[] = {
        { "db", "BELFRY_FZ_DB", CFG_STR, &db, def_db, "database URL", 0, 0 },
        { "name", NULL, CFG_STR, &name, NULL, "instance name", 0, 0 },
        { "port", "BELFRY_FZ_PORT", CFG_INT, &port, "3000", "listen port", 1, 65535 },
        { "workers", NULL, CFG_INT, &workers, NULL, "workers", -5, 1L << 40 },
        { "verbose", "BELFRY_FZ_VERBOSE", CFG_BOOL, &verbose, "0", "log more", 0, 0 },
        { "tls", NULL, CFG_BOOL, &tls, NULL, "use TLS", 0, 0 },
    };
    int rc = cfg_parse(opts, sizeof opts / sizeof opts[0], argc, argv, NULL, "fuzzing");
    if (rc != 0 && rc != 1 && rc != -1)
        abort();
    if (rc == 0) {
        if (port < 1 || port > 65535)
            abort();
        if (workers != -7 && (workers < -5 || workers > (1L << 40)))
            abort();
        if (verbose != 0 && verbose != 1)
            abort();
        if (tls != -7 && tls != 0 && tls != 1)
            abort();
        if (db != def_db && !s_in(db, buf, size + 1))
            abort();
        if (name != NULL && !s_in(name, buf, size + 1))
            abort();
    }
    free(buf);
    return 0;
}
