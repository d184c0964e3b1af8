/*  log - one line per event, with a level and key=value fields
 *
 *  Lines go to stderr:  2026-11-22T04:30:00.123Z level=info comp=gateway msg...
 *  or, after log_set_json(1), one JSON object per line:
 *  {"ts":"…","level":"info","comp":"gateway","msg":"…"}
 *  The caller writes the message as key=value pairs ("event=listen addr=%s").
 *  Never log secrets (JWT secret, database password): callers pass URLs through
 *  log_redact_url() first.
 */
#ifndef BELFRY_LOG_H
#define BELFRY_LOG_H

#include <stddef.h>

typedef enum { LOG_LVL_DEBUG = 0, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR } log_level_t;

/* Sets the component name shown on every line ("broker", "gateway"). */
void log_init(const char *component);
void log_set_level(log_level_t level);
log_level_t log_get_level(void);
void log_set_json(int on);
/* Parses "debug", "info", "warn", "error". Returns 0, or -1 for anything else. */
int log_parse_level(const char *s, log_level_t *out);
/* Reopens stderr on the file given by log_set_file() (for SIGHUP); 0/-1. */
int log_set_file(const char *path);
int log_reopen(void);
/* Log rotation (the SIGHUP handler of both programs): reopens the log file
 * and logs event=log_reopened, or event=log_reopen_failed with the reason. */
void log_rotate(void);

void log_msg(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) do { if (log_get_level() <= LOG_LVL_DEBUG) log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)

/* Copies url into out (capacity cap, always NUL-terminated) with any password
 * replaced by "***": postgresql://u:secret@h/db -> postgresql://u:***@h/db, and
 * "password=secret" in a key=value conninfo -> "password=***". Returns out. */
char *log_redact_url(const char *url, char *out, size_t cap);

#endif
