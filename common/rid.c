/*  rid - random identifiers  (see rid.h) */
#include "rid.h"
#include "b64.h"

#include <openssl/rand.h>
#include <string.h>

#define RID_POOL 4096

static unsigned char s_pool[RID_POOL];
static size_t s_left;           /* unused bytes at the end of the pool */

void rid_reset(void)
{
    memset(s_pool, 0, sizeof s_pool);
    s_left = 0;
}

int rid_b64url(char *out, size_t nbytes)
{
    out[0] = 0;
    if (nbytes == 0 || nbytes > RID_POOL)
        return -1;
    if (s_left < nbytes) {
        if (RAND_bytes(s_pool, RID_POOL) != 1)
            return -1;
        s_left = RID_POOL;
    }
    unsigned char *p = s_pool + RID_POOL - s_left;
    b64url_encode(p, nbytes, out);
    memset(p, 0, nbytes);       /* an id is never handed out twice */
    s_left -= nbytes;
    return 0;
}
