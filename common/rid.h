/*  rid - random identifiers (session ids, socket ids, recovery pids)
 *
 *  Unguessable ids from OpenSSL's CSPRNG, drawn from a pool refilled 4 KiB at
 *  a time: RAND_bytes checks for a fork (getpid) on every call, which was
 *  three system calls per client handshake. Not fork-safe: a process that
 *  forks must call rid_reset() in the child before drawing ids.
 */
#ifndef BELFRY_RID_H
#define BELFRY_RID_H

#include <stddef.h>

/* Writes the base64url encoding of nbytes random bytes into out (capacity
 * >= 4 * ceil(nbytes / 3) + 1, NUL-terminated). Returns 0, or -1 if the
 * CSPRNG failed (out is then an empty string). */
int rid_b64url(char *out, size_t nbytes);
/* Forgets the pool (after fork). */
void rid_reset(void);

#endif
