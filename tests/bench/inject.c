/*  inject - inserts notification rows into PostgreSQL for the benchmarks
 *
 *  Each row is one autocommitted single-row INSERT into
 *  notifications(room, event, payload), the statement an application would
 *  run. The payload is {"ts": <µs since the epoch>, "c": <stream>, "n": <k>}:
 *  ts is taken by clock_timestamp() inside the statement, so as late before
 *  the commit as SQL allows, and the load generator measures commit-to-client
 *  latency from it; c is the writing connection and n counts that
 *  connection's rows per room from 1, so a client can tell a lost row from a
 *  duplicate.
 *
 *  Design: --conns processes (fork), each with its own blocking libpq
 *  connection and a prepared statement, each writing its share of --rows.
 *  With --rate R the rows of a process are scheduled at fixed instants
 *  (R/conns per second each, never skipped: a late row is sent at once);
 *  with --rate 0 as fast as the database answers. Rooms are random among
 *  user_1..user_N (--users N), or one fixed room (--room all). Each process
 *  reports (rows, errors, first and last send time) over a pipe and the
 *  parent prints one JSON object: rows, seconds, rows_per_s.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "cfg.h"

#define INJ_MAX_CONNS 64

typedef struct {
    uint64_t rows, errors;
    int64_t t_first, t_last;    /* µs, CLOCK_REALTIME */
    char err[256];              /* the first error */
} inj_report_t;

static char *o_db, *o_room, *o_event;
static long o_rows, o_rate, o_conns, o_users, o_duration, o_seed;

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void s_sleep_until(int64_t t_us)
{
    struct timespec ts = { (time_t)(t_us / 1000000), (long)(t_us % 1000000) * 1000 };
    while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* xorshift64*: cheap, reproducible per process. */
static uint64_t s_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static void s_one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r')
            *s = ' ';
}

/* One writer: rows [0, nrows) at `rate` rows/s (0: no pacing). */
static void s_writer(int idx, long nrows, double rate, int64_t deadline, int fd)
{
    inj_report_t r;
    memset(&r, 0, sizeof r);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    uint32_t *counts = NULL;
    PGconn *pg = PQconnectdb(o_db);
    if (PQstatus(pg) != CONNECTION_OK) {
        snprintf(r.err, sizeof r.err, "connect: %s", PQerrorMessage(pg));
        r.errors = 1;
        goto done;
    }
    PGresult *res = PQprepare(pg, "ins",
        "INSERT INTO notifications (room, event, payload) VALUES ($1, $2, "
        "jsonb_build_object('ts', (extract(epoch from clock_timestamp()) * 1e6)::bigint, "
        "'c', $3::int, 'n', $4::bigint))", 4, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        snprintf(r.err, sizeof r.err, "prepare: %s", PQresultErrorMessage(res));
        r.errors = 1;
        PQclear(res);
        goto done;
    }
    PQclear(res);
    int fixed = strcmp(o_room, "") != 0;
    counts = calloc((size_t)(fixed ? 1 : o_users + 1), sizeof *counts);
    if (!counts) {
        snprintf(r.err, sizeof r.err, "out of memory");
        r.errors = 1;
        goto done;
    }
    uint64_t seed = (uint64_t)o_seed * 7919 + (uint64_t)idx * 104729 + 1;
    int64_t t0 = s_now_us();
    for (long i = 0; i < nrows; i++) {
        if (rate > 0)
            s_sleep_until(t0 + (int64_t)((double)i * 1e6 / rate));
        if (s_now_us() > deadline)
            break;
        char room[64], cbuf[16], nbuf[24];
        uint32_t *cnt;
        if (fixed) {
            snprintf(room, sizeof room, "%s", o_room);
            cnt = &counts[0];
        } else {
            long u = 1 + (long)(s_rand(&seed) % (uint64_t)o_users);
            snprintf(room, sizeof room, "user_%ld", u);
            cnt = &counts[u];
        }
        snprintf(cbuf, sizeof cbuf, "%d", idx);
        snprintf(nbuf, sizeof nbuf, "%u", *cnt + 1);
        const char *params[4] = { room, o_event, cbuf, nbuf };
        int64_t t = s_now_us();
        res = PQexecPrepared(pg, "ins", 4, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_COMMAND_OK) {
            (*cnt)++;
            r.rows++;
            if (!r.t_first)
                r.t_first = t;
            r.t_last = s_now_us();
        } else {
            if (!r.errors)
                snprintf(r.err, sizeof r.err, "insert: %s", PQresultErrorMessage(res));
            r.errors++;
            if (PQstatus(pg) != CONNECTION_OK) {
                PQclear(res);
                break;
            }
        }
        PQclear(res);
    }
done:
    s_one_line(r.err);
    free(counts);
    PQfinish(pg);
    if (write(fd, &r, sizeof r) != (ssize_t)sizeof r)
        _exit(3);
    _exit(0);
}

int main(int argc, char **argv)
{
    const cfg_opt_t opts[] = {
        { "db", "BELFRY_DB_URL", CFG_STR, &o_db, "", "PostgreSQL connection URL", 0, 0 },
        { "rows", NULL, CFG_INT, &o_rows, "1000", "rows to insert in all", 1, 1000000000 },
        { "rate", NULL, CFG_INT, &o_rate, "0", "rows per second in all (0: as fast as possible)",
          0, 10000000 },
        { "conns", NULL, CFG_INT, &o_conns, "4", "database connections (one process each)",
          1, INJ_MAX_CONNS },
        { "users", NULL, CFG_INT, &o_users, "1000", "rooms user_1..user_N, chosen at random",
          1, 100000000 },
        { "room", NULL, CFG_STR, &o_room, "", "one fixed room instead (e.g. all)", 0, 0 },
        { "event", NULL, CFG_STR, &o_event, "bench", "event name of the rows", 0, 0 },
        { "duration", NULL, CFG_INT, &o_duration, "600", "stop after this many seconds", 1, 86400 },
        { "seed", NULL, CFG_INT, &o_seed, "1", "random seed of the room choice", 0, 1000000000 },
    };
    int rc = cfg_parse(opts, sizeof opts / sizeof opts[0], argc, argv, "inject",
                       "insert benchmark rows into notifications (one JSON result on stdout)");
    if (rc)
        return rc > 0 ? 0 : 2;
    if (!*o_db) {
        fprintf(stderr, "inject: --db is required\n");
        return 2;
    }
    if (strlen(o_room) >= 60) {
        fprintf(stderr, "inject: --room is too long\n");
        return 2;
    }
    if (o_conns > o_rows)
        o_conns = o_rows;
    int n = (int)o_conns;
    pid_t pids[INJ_MAX_CONNS];
    int fds[INJ_MAX_CONNS];
    int64_t deadline = s_now_us() + o_duration * 1000000LL;
    fflush(NULL);
    for (int i = 0; i < n; i++) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) {
            perror("inject: pipe");
            return 1;
        }
        long share = o_rows * (i + 1) / n - o_rows * i / n;
        pid_t pid = fork();
        if (pid < 0) {
            perror("inject: fork");
            return 1;
        }
        if (pid == 0) {
            close(p[0]);
            s_writer(i, share, (double)o_rate / n, deadline, p[1]);
        }
        close(p[1]);
        pids[i] = pid;
        fds[i] = p[0];
    }
    inj_report_t a;
    memset(&a, 0, sizeof a);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        inj_report_t r;
        ssize_t k;
        do
            k = read(fds[i], &r, sizeof r);
        while (k < 0 && errno == EINTR);
        waitpid(pids[i], NULL, 0);
        if (k != (ssize_t)sizeof r) {
            failed++;
            continue;
        }
        a.rows += r.rows;
        a.errors += r.errors;
        if (r.t_first && (!a.t_first || r.t_first < a.t_first))
            a.t_first = r.t_first;
        if (r.t_last > a.t_last)
            a.t_last = r.t_last;
        if (r.errors && !a.err[0])
            memcpy(a.err, r.err, sizeof a.err);
    }
    double secs = a.t_last > a.t_first ? (double)(a.t_last - a.t_first) / 1e6 : 0.0;
    /* The error text goes to stderr; the JSON carries only numbers. */
    if (a.err[0])
        fprintf(stderr, "inject: %llu errors, first: %s\n", (unsigned long long)a.errors, a.err);
    printf("{\"rows\":%llu,\"errors\":%llu,\"writers_failed\":%d,\"conns\":%d,\"rate\":%ld,"
           "\"seconds\":%.3f,\"rows_per_s\":%.1f,\"t_first_us\":%lld,\"t_last_us\":%lld}\n",
           (unsigned long long)a.rows, (unsigned long long)a.errors, failed, n, o_rate, secs,
           secs > 0 ? (double)a.rows / secs : 0.0, (long long)a.t_first, (long long)a.t_last);
    return (a.errors || failed || a.rows != (uint64_t)o_rows) ? 1 : 0;
}
