/*  cfg - command-line flags and BELFRY_* environment variables
 *
 *  Design: one pass per source, in precedence order, each writing straight
 *  into the targets: defaults, then the environment, then argv, so a later
 *  source simply overwrites an earlier one. `--help`/`-h` is looked for first
 *  so that help works even when the environment holds a bad value. Every
 *  error message starts with the program name and names exactly what was
 *  wrong: "--listen: missing value", "BELFRY_MAX_CONN=abc: not a number".
 *  Values of string settings are never echoed in messages (they may be
 *  secrets); only numbers and booleans, which failed to parse, are.
 */
#include "cfg.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Where a value came from, for error messages. */
typedef enum { S_DEFAULT, S_ENV, S_FLAG } s_src_t;

/* Prints "prog: <what>: reason" where <what> names the source. */
static void s_err(const char *prog, const cfg_opt_t *o, s_src_t src,
                  const char *val, const char *reason)
{
    switch (src) {
    case S_ENV:
        fprintf(stderr, "%s: %s=%s: %s\n", prog, o->env, val, reason);
        break;
    case S_FLAG:
        fprintf(stderr, "%s: --%s=%s: %s\n", prog, o->name, val, reason);
        break;
    default:
        fprintf(stderr, "%s: default of --%s (\"%s\"): %s\n", prog, o->name, val, reason);
        break;
    }
}

/* Parses a bool spelling; 0/1 into *out, or -1. */
static int s_parse_bool(const char *v, int *out)
{
    static const char *const yes[] = { "1", "true", "yes", "on" };
    static const char *const no[] = { "0", "false", "no", "off" };
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) { *out = 1; return 0; }
        if (strcasecmp(v, no[i]) == 0) { *out = 0; return 0; }
    }
    return -1;
}

/* Stores text v into o's target. 0, or -1 after printing why. */
static int s_set(const cfg_opt_t *o, const char *v, s_src_t src, const char *prog)
{
    switch (o->type) {
    case CFG_STR:
        *(char **)o->target = (char *)v;
        return 0;
    case CFG_INT: {
        /* strtol would skip leading blanks and accept "" as 0: refuse both */
        if (!((v[0] >= '0' && v[0] <= '9') ||
              ((v[0] == '-' || v[0] == '+') && v[1] >= '0' && v[1] <= '9'))) {
            s_err(prog, o, src, v, "not a number");
            return -1;
        }
        char *end;
        errno = 0;
        long x = strtol(v, &end, 10);
        if (*end != '\0') {
            s_err(prog, o, src, v, "not a number");
            return -1;
        }
        if (errno == ERANGE || x < o->min || x > o->max) {
            char why[96];
            snprintf(why, sizeof why, "out of range (%ld..%ld)", o->min, o->max);
            s_err(prog, o, src, v, why);
            return -1;
        }
        *(long *)o->target = x;
        return 0;
    }
    case CFG_BOOL: {
        int b;
        if (s_parse_bool(v, &b) < 0) {
            s_err(prog, o, src, v, "not a boolean (1/0, true/false, yes/no, on/off)");
            return -1;
        }
        *(int *)o->target = b;
        return 0;
    }
    }
    return -1;
}

static const char *s_type_hint(const cfg_opt_t *o)
{
    switch (o->type) {
    case CFG_STR: return " VALUE";
    case CFG_INT: return " N";
    default: return "";
    }
}

static void s_usage(const cfg_opt_t *opts, size_t n, const char *prog, const char *summary)
{
    printf("Usage: %s [OPTION]...\n", prog);
    if (summary && *summary)
        printf("%s\n", summary);
    printf("\nEach option can also be set by its environment variable; a flag wins.\n\n");
    for (size_t i = 0; i < n; i++) {
        const cfg_opt_t *o = &opts[i];
        printf("  --%s%s\n", o->name, s_type_hint(o));
        printf("      %s\n", o->help ? o->help : "");
        printf("      env: %s", o->env ? o->env : "(none)");
        if (o->def)
            printf("; default: %s", o->def);
        else
            printf("; default: (none)");
        if (o->type == CFG_INT)
            printf("; range: %ld..%ld", o->min, o->max);
        printf("\n");
    }
    printf("  -h, --help\n      print this help and exit\n");
}

static const cfg_opt_t *s_find(const cfg_opt_t *opts, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(opts[i].name) == len && memcmp(opts[i].name, name, len) == 0)
            return &opts[i];
    return NULL;
}

int cfg_parse(const cfg_opt_t *opts, size_t n, int argc, char **argv,
              const char *prog, const char *summary)
{
    if (!prog)
        prog = argc > 0 && argv[0] ? argv[0] : "belfry";

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(opts, n, prog, summary);
            fflush(stdout);
            return 1;
        }
    }

    for (size_t i = 0; i < n; i++) {
        const cfg_opt_t *o = &opts[i];
        if (o->def) {
            if (s_set(o, o->def, S_DEFAULT, prog) < 0)
                return -1;
        } else if (o->type == CFG_STR) {
            *(char **)o->target = NULL;
        }
    }

    for (size_t i = 0; i < n; i++) {
        const cfg_opt_t *o = &opts[i];
        const char *v = o->env ? getenv(o->env) : NULL;
        if (v && s_set(o, v, S_ENV, prog) < 0)
            return -1;
    }

    int end_of_flags = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!end_of_flags && strcmp(a, "--") == 0) {
            end_of_flags = 1;
            continue;
        }
        if (end_of_flags || a[0] != '-' || a[1] == '\0') {
            fprintf(stderr, "%s: %s: unexpected argument (settings are --name value)\n",
                    prog, a);
            return -1;
        }
        if (a[1] != '-') {
            fprintf(stderr, "%s: %s: unknown flag (see --help)\n", prog, a);
            return -1;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const cfg_opt_t *o = s_find(opts, n, name, nlen);
        if (!o) {
            fprintf(stderr, "%s: --%.*s: unknown flag (see --help)\n", prog, (int)nlen, name);
            return -1;
        }
        const char *v;
        if (eq) {
            v = eq + 1;
        } else if (o->type == CFG_BOOL) {
            v = "1";
        } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
            v = argv[++i];
        } else {
            fprintf(stderr, "%s: --%s: missing value\n", prog, o->name);
            return -1;
        }
        if (s_set(o, v, S_FLAG, prog) < 0)
            return -1;
    }
    return 0;
}
