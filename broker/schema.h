/*  schema - find and apply the versioned SQL schema (deploy/sql/NNN_*.sql)
 *
 *  `belfry-broker --init-schema` runs before any event loop exists, so this
 *  module uses blocking libpq. Each file NNN_name.sql is one version (NNN, a
 *  decimal number); files are applied in version order, each once, each in
 *  its own transaction together with its row in belfry_schema_version. A
 *  transaction-level advisory lock serializes concurrent --init-schema runs,
 *  so running it twice, or twice at once, is fine.
 */
#ifndef BELFRY_SCHEMA_H
#define BELFRY_SCHEMA_H

#include <stddef.h>

/* If name looks like "NNN_anything.sql" (one or more digits, '_', ".sql" at
 * the end, no '/'), stores NNN in *version and returns 0; otherwise -1
 * (including a number that does not fit in an int). Pure. */
int schema_file_version(const char *name, int *version);

/* Chooses the schema directory when none was configured: the first of
 * "<dir of exe>/../deploy/sql", "<dir of exe>/../share/belfry/sql" and
 * "./deploy/sql" that is a directory (exe_dir may be NULL to skip the first
 * two). Writes it into out (capacity cap). Returns 0, or -1 if none exists
 * or it does not fit. */
int schema_find_dir(const char *exe_dir, char *out, size_t cap);

/* Connects to conninfo (blocking) and applies every not-yet-applied version
 * in dir. Logs one line per applied or skipped file. Returns 0, or -1 with a
 * one-line reason in err (capacity errcap; never contains a password). */
int schema_apply(const char *conninfo, const char *dir, char *err, size_t errcap);

#endif
