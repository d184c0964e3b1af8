/*  cfg - command-line flags and BELFRY_* environment variables
 *
 *  A program describes its settings once in a table; every setting is a flag
 *  (--name VALUE or --name=VALUE; a bool is --name alone, or --name=0/1) and an
 *  environment variable. Precedence: default < environment < flag. `--help`
 *  prints every setting with its variable, default and help text. A bad value
 *  (not a number, out of range, unknown flag, missing value) prints a message
 *  that names the flag or the variable and the reason.
 */
#ifndef BELFRY_CFG_H
#define BELFRY_CFG_H

#include <stddef.h>

typedef enum {
    CFG_STR,    /* target: char **  (points into argv/environ or the default; never freed) */
    CFG_INT,    /* target: long *   (checked against min..max) */
    CFG_BOOL,   /* target: int *    (0/1; accepts 1/0/true/false/yes/no/on/off) */
} cfg_type_t;

typedef struct {
    const char *name;       /* flag without dashes: "db" for --db */
    const char *env;        /* "BELFRY_DB_URL", or NULL for flag only */
    cfg_type_t type;
    void *target;
    const char *def;        /* default as text, or NULL (CFG_STR: target stays NULL) */
    const char *help;
    long min, max;          /* CFG_INT only */
} cfg_opt_t;

/* Parses env then argv into the targets. Returns 0 on success, 1 when --help
 * was printed (the caller exits 0), -1 on a bad setting (a message naming it
 * was written to stderr; the caller exits 2). Positional arguments are refused. */
int cfg_parse(const cfg_opt_t *opts, size_t n, int argc, char **argv,
              const char *prog, const char *summary);

#endif
