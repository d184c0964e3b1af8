/*  test_rid - random ids: length, alphabet, and no repeats across pool refills */
#include "test.h"
#include "rid.h"
#include "map.h"

TEST(ids_have_the_length_and_alphabet_of_base64url)
{
    char id[64];
    CHECK_EQ_INT(rid_b64url(id, 15), 0);
    CHECK_EQ_INT(strlen(id), 20);
    for (const char *p = id; *p; p++)
        CHECK((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_');
    CHECK_EQ_INT(rid_b64url(id, 0), -1);
}

TEST(no_id_repeats_across_many_pool_refills)
{
    map_t *seen = map_new();
    CHECK(seen);
    for (int i = 0; i < 20000; i++) {       /* 20000 * 15 bytes = 73 refills */
        char id[32];
        CHECK_EQ_INT(rid_b64url(id, 15), 0);
        CHECK(map_get(seen, id, 20) == NULL);
        CHECK_EQ_INT(map_put(seen, id, 20, seen), 0);
    }
    map_destroy(&seen);
}

TEST_MAIN(ids_have_the_length_and_alphabet_of_base64url, no_id_repeats_across_many_pool_refills)
