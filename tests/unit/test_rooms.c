/*  test_rooms - the gateway room index: membership, O(1) removal, and the
 *  subscribe/unsubscribe edges that drive the fan-out subscriptions. */
#include "test.h"
#include "../../gateway/rooms.h"

typedef struct { int subs, unsubs; char last[64]; size_t last_len; } sub_log_t;

static void s_sub(void *arg, room_t *room, int subscribe)
{
    sub_log_t *l = arg;
    size_t klen;
    const char *key = room_key(room, &klen);
    if (subscribe) l->subs++; else l->unsubs++;
    memcpy(l->last, key, klen < sizeof l->last ? klen : sizeof l->last);
    l->last_len = klen;
}

TEST(first_join_subscribes_last_leave_unsubscribes)
{
    sub_log_t log = {0};
    rooms_t *r = rooms_new(s_sub, &log);
    CHECK(r);
    int a, b;
    room_slot_t sa = {0}, sb = {0};
    CHECK_EQ_INT(rooms_join(r, "/\0user_1\0", 9, &a, &sa), 0);
    CHECK_EQ_INT(log.subs, 1);
    CHECK(log.last_len == 9 && memcmp(log.last, "/\0user_1\0", 9) == 0);
    CHECK_EQ_INT(rooms_join(r, "/\0user_1\0", 9, &b, &sb), 0);
    CHECK_EQ_INT(log.subs, 1);
    CHECK_EQ_INT(rooms_count(r), 1);
    rooms_leave(r, &sa);
    CHECK_EQ_INT(log.unsubs, 0);
    room_t *room = rooms_find(r, "/\0user_1\0", 9);
    CHECK(room);
    CHECK_EQ_INT(room_size(room), 1);
    CHECK(room_members(room)[0] == &b);
    rooms_leave(r, &sb);
    CHECK_EQ_INT(log.unsubs, 1);
    CHECK(rooms_find(r, "/\0user_1\0", 9) == NULL);
    CHECK_EQ_INT(rooms_count(r), 0);
    rooms_leave(r, &sb);                /* a cleared slot is a no-op */
    CHECK_EQ_INT(log.unsubs, 1);
    rooms_destroy(&r);
    CHECK(r == NULL);
}

TEST(keys_are_exact_not_prefixes)
{
    rooms_t *r = rooms_new(NULL, NULL);
    int a;
    room_slot_t s = {0};
    CHECK_EQ_INT(rooms_join(r, "/\0user_12\0", 10, &a, &s), 0);
    CHECK(rooms_find(r, "/\0user_1\0", 9) == NULL);
    CHECK(rooms_find(r, "/notifs\0user_12\0", 16) == NULL);
    CHECK(rooms_find(r, "/\0user_12\0", 10) != NULL);
    rooms_destroy(&r);
}

TEST(swap_removal_keeps_every_slot_index_true)
{
    enum { N = 1000 };
    static int members[N];
    static room_slot_t slots[N];
    memset(slots, 0, sizeof slots);
    rooms_t *r = rooms_new(NULL, NULL);
    for (int i = 0; i < N; i++)
        CHECK_EQ_INT(rooms_join(r, "/\0all\0", 6, &members[i], &slots[i]), 0);
    /* remove every third member, then check the invariant for the rest */
    for (int i = 0; i < N; i += 3)
        rooms_leave(r, &slots[i]);
    room_t *room = rooms_find(r, "/\0all\0", 6);
    CHECK(room);
    CHECK_EQ_INT(room_size(room), N - (N + 2) / 3);
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0) {
            CHECK(slots[i].room == NULL);
            continue;
        }
        CHECK(slots[i].room == room);
        CHECK(room_members(room)[slots[i].index] == &members[i]);
    }
    for (int i = 0; i < N; i++)
        rooms_leave(r, &slots[i]);
    CHECK_EQ_INT(rooms_count(r), 0);
    rooms_destroy(&r);
}

TEST(iteration_visits_every_room_once)
{
    rooms_t *r = rooms_new(NULL, NULL);
    int m;
    room_slot_t slots[50];
    memset(slots, 0, sizeof slots);
    for (int i = 0; i < 50; i++) {
        char key[32];
        int kl = snprintf(key, sizeof key, "/%c%d%c", 0, i, 0);
        CHECK_EQ_INT(rooms_join(r, key, (size_t)kl, &m, &slots[i]), 0);
        room_set_data(slots[i].room, &slots[i]);
    }
    size_t pos = 0, seen = 0;
    room_t *room;
    while ((room = rooms_next(r, &pos)) != NULL) {
        room_slot_t *s = room_data(room);
        CHECK(s->room == room);     /* each room's data is its own slot */
        seen++;
    }
    CHECK_EQ_INT(seen, 50);
    rooms_destroy(&r);
}

TEST_MAIN(first_join_subscribes_last_leave_unsubscribes, keys_are_exact_not_prefixes,
          swap_removal_keeps_every_slot_index_true, iteration_visits_every_room_once)
