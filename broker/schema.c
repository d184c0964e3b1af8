/*  schema - find and apply the versioned SQL schema (deploy/sql/NNN_*.sql)
 *
 *  Design: list the directory, keep the names that parse as NNN_*.sql, sort
 *  by version (two files with one version is an error: the order would be a
 *  guess), then for each one open a transaction, take the migration advisory
 *  lock, skip it if belfry_schema_version already has the version, else run
 *  the file's text as one simple-protocol query (several statements are
 *  allowed; PQexec reports the first error) and record the version. Files are
 *  capped at SCHEMA_FILE_MAX bytes.
 */
#include "schema.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libpq-fe.h>

#include "log.h"

#define SCHEMA_FILE_MAX   (1024 * 1024)
#define SCHEMA_FILES_MAX  1000
/* pg_advisory_xact_lock key for migrations ("belfmigr"); distinct from the
 * broker's leadership key. */
#define SCHEMA_LOCK_KEY   "7090733163107018098"

typedef struct {
    int version;
    char name[256];
} s_file_t;

int schema_file_version(const char *name, int *version)
{
    size_t len = strlen(name);
    size_t i = 0;
    long v = 0;
    while (i < len && name[i] >= '0' && name[i] <= '9') {
        v = v * 10 + (name[i] - '0');
        if (v > INT_MAX)
            return -1;
        i++;
    }
    if (i == 0 || i >= len || name[i] != '_')
        return -1;
    if (len < i + 1 + 4 || strcmp(name + len - 4, ".sql") != 0)
        return -1;
    if (strchr(name, '/'))
        return -1;
    *version = (int)v;
    return 0;
}

static int s_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int schema_find_dir(const char *exe_dir, char *out, size_t cap)
{
    const char *rel[] = { "/../deploy/sql", "/../share/belfry/sql" };
    char path[PATH_MAX];
    if (exe_dir) {
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
            int n = snprintf(path, sizeof path, "%s%s", exe_dir, rel[i]);
            if (n < 0 || (size_t)n >= sizeof path)
                continue;
            if (s_is_dir(path) && (size_t)n < cap) {
                memcpy(out, path, (size_t)n + 1);
                return 0;
            }
        }
    }
    if (s_is_dir("./deploy/sql") && cap > strlen("./deploy/sql")) {
        strcpy(out, "./deploy/sql");
        return 0;
    }
    return -1;
}

static int s_cmp(const void *a, const void *b)
{
    const s_file_t *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

/* Reads path into a NUL-terminated malloc'd buffer; NULL with err set. */
static char *s_read_file(const char *path, char *err, size_t errcap)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    if (!f) {
        snprintf(err, errcap, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    buf = malloc(SCHEMA_FILE_MAX + 1);
    if (!buf) {
        snprintf(err, errcap, "out of memory");
        goto done;
    }
    size_t n = fread(buf, 1, SCHEMA_FILE_MAX + 1, f);
    if (ferror(f)) {
        snprintf(err, errcap, "cannot read %s", path);
        free(buf);
        buf = NULL;
    } else if (n > SCHEMA_FILE_MAX) {
        snprintf(err, errcap, "%s is larger than %d bytes", path, SCHEMA_FILE_MAX);
        free(buf);
        buf = NULL;
    } else {
        buf[n] = '\0';
    }
done:
    fclose(f);
    return buf;
}

/* Copies a libpq error message to err as one line. */
static void s_pg_err(char *err, size_t errcap, const char *what, const char *msg)
{
    snprintf(err, errcap, "%s: %s", what, msg ? msg : "unknown error");
    for (char *p = err; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    size_t n = strlen(err);
    while (n > 0 && err[n - 1] == ' ')
        err[--n] = '\0';
}

/* Runs sql; returns 0 if it succeeded (any OK status), -1 with err set. */
static int s_exec(PGconn *conn, const char *sql, const char *what, char *err, size_t errcap)
{
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        s_pg_err(err, errcap, what, r ? PQresultErrorMessage(r) : PQerrorMessage(conn));
        rc = -1;
    }
    PQclear(r);
    return rc;
}

static void s_quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

/* Applies one file unless already recorded. 0 or -1. */
static int s_apply_one(PGconn *conn, const char *dir, const s_file_t *f,
                       char *err, size_t errcap)
{
    char path[PATH_MAX], ver[16];
    char *sql = NULL;
    PGresult *r = NULL;
    int rc = -1;
    snprintf(ver, sizeof ver, "%d", f->version);
    int n = snprintf(path, sizeof path, "%s/%s", dir, f->name);
    if (n < 0 || (size_t)n >= sizeof path) {
        snprintf(err, errcap, "path too long: %s", f->name);
        return -1;
    }
    if (s_exec(conn, "BEGIN", "begin", err, errcap) < 0)
        return -1;
    if (s_exec(conn, "SELECT pg_advisory_xact_lock(" SCHEMA_LOCK_KEY ")", "lock", err, errcap) < 0)
        goto rollback;
    const char *params[2] = { ver, f->name };
    r = PQexecParams(conn, "SELECT 1 FROM belfry_schema_version WHERE version = $1::int",
                     1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        s_pg_err(err, errcap, "read belfry_schema_version", PQresultErrorMessage(r));
        goto rollback;
    }
    if (PQntuples(r) > 0) {
        log_info("event=schema_skip version=%d file=%s", f->version, f->name);
        rc = s_exec(conn, "COMMIT", "commit", err, errcap);
        goto done;
    }
    PQclear(r);
    r = NULL;
    sql = s_read_file(path, err, errcap);
    if (!sql)
        goto rollback;
    if (s_exec(conn, sql, f->name, err, errcap) < 0)
        goto rollback;
    r = PQexecParams(conn, "INSERT INTO belfry_schema_version (version, name) VALUES ($1::int, $2)",
                     2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        s_pg_err(err, errcap, "record version", PQresultErrorMessage(r));
        goto rollback;
    }
    if (s_exec(conn, "COMMIT", "commit", err, errcap) < 0)
        goto done;
    log_info("event=schema_applied version=%d file=%s", f->version, f->name);
    rc = 0;
    goto done;
rollback:
    PQclear(PQexec(conn, "ROLLBACK"));
done:
    PQclear(r);
    free(sql);
    return rc;
}

int schema_apply(const char *conninfo, const char *dir, char *err, size_t errcap)
{
    PGconn *conn = NULL;
    DIR *d = NULL;
    s_file_t *files = NULL;
    size_t nfiles = 0;
    int rc = -1;

    files = calloc(SCHEMA_FILES_MAX, sizeof *files);
    if (!files) {
        snprintf(err, errcap, "out of memory");
        goto done;
    }
    d = opendir(dir);
    if (!d) {
        snprintf(err, errcap, "cannot open schema dir %s: %s", dir, strerror(errno));
        goto done;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int v;
        if (schema_file_version(e->d_name, &v) < 0)
            continue;
        if (nfiles == SCHEMA_FILES_MAX || strlen(e->d_name) >= sizeof files[0].name) {
            snprintf(err, errcap, "too many or too long file names in %s", dir);
            goto done;
        }
        files[nfiles].version = v;
        strcpy(files[nfiles].name, e->d_name);
        nfiles++;
    }
    if (nfiles == 0) {
        snprintf(err, errcap, "no NNN_*.sql files in %s", dir);
        goto done;
    }
    qsort(files, nfiles, sizeof *files, s_cmp);
    for (size_t i = 1; i < nfiles; i++) {
        if (files[i].version == files[i - 1].version) {
            snprintf(err, errcap, "two files with version %d: %s and %s",
                     files[i].version, files[i - 1].name, files[i].name);
            goto done;
        }
    }

    conn = PQconnectdb(conninfo);
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        s_pg_err(err, errcap, "connect", conn ? PQerrorMessage(conn) : "out of memory");
        goto done;
    }
    PQsetNoticeProcessor(conn, s_quiet, NULL);
    if (s_exec(conn,
               "BEGIN; SELECT pg_advisory_xact_lock(" SCHEMA_LOCK_KEY ");"
               " CREATE TABLE IF NOT EXISTS belfry_schema_version ("
               " version int PRIMARY KEY, name text NOT NULL,"
               " applied_at timestamptz NOT NULL DEFAULT now()); COMMIT",
               "create belfry_schema_version", err, errcap) < 0) {
        PQclear(PQexec(conn, "ROLLBACK"));
        goto done;
    }
    for (size_t i = 0; i < nfiles; i++)
        if (s_apply_one(conn, dir, &files[i], err, errcap) < 0)
            goto done;
    rc = 0;
done:
    if (conn)
        PQfinish(conn);
    if (d)
        closedir(d);
    free(files);
    return rc;
}
