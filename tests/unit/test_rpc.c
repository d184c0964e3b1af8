/* Unit tests for broker/rpc.c: the pure request handler rpc_handle(). */
#include "../../broker/rpc.c"

#include "test.h"


static int s_unpack_map(const msgpack_sbuffer *sb, msgpack_unpacked *u)
{
    size_t off = 0;
    msgpack_unpacked_init(u);
    if (msgpack_unpack_next(u, sb->data, sb->size, &off) != MSGPACK_UNPACK_SUCCESS)
        return -1;
    return u->data.type == MSGPACK_OBJECT_MAP ? 0 : -1;
}

static const msgpack_object *s_get(const msgpack_unpacked *u, const char *key)
{
    for (uint32_t i = 0; i < u->data.via.map.size; i++)
        if (s_key_is(&u->data.via.map.ptr[i].key, key))
            return &u->data.via.map.ptr[i].val;
    return NULL;
}

static const rpc_status_t st1 = { 1, 0, "", 0 };

static void s_req(msgpack_sbuffer *sb, const char *op, int with_id, int64_t id)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, (op ? 1 : 0) + (with_id ? 1 : 0) + 1);
    if (op) {
        s_pack_key(&pk, "op");
        s_pack_key(&pk, op);
    }
    if (with_id) {
        s_pack_key(&pk, "id");
        msgpack_pack_int64(&pk, id);
    }
    s_pack_key(&pk, "future");       /* unknown keys are ignored */
    msgpack_pack_nil(&pk);
}

TEST(ping_replies_ok_with_last_seq)
{
    msgpack_sbuffer req, out;
    msgpack_unpacked u;
    int is_err = -1;
    s_req(&req, "ping", 1, 42);
    msgpack_sbuffer_init(&out);
    rpc_status_t st = { 12345, 1, "e1", 77 };
    CHECK_EQ_INT(rpc_handle(req.data, req.size, &st, &out, &is_err), 0);
    CHECK_EQ_INT(is_err, 0);
    CHECK_EQ_INT(s_unpack_map(&out, &u), 0);
    const msgpack_object *id = s_get(&u, "id"), *ok = s_get(&u, "ok"), *seq = s_get(&u, "seq");
    CHECK(id && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER && id->via.u64 == 42);
    CHECK(ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean);
    CHECK(seq && seq->type == MSGPACK_OBJECT_POSITIVE_INTEGER && seq->via.u64 == 12345);
    const msgpack_object *leader = s_get(&u, "leader"), *epoch = s_get(&u, "epoch");
    CHECK(leader && leader->type == MSGPACK_OBJECT_BOOLEAN && leader->via.boolean);
    CHECK(epoch && epoch->type == MSGPACK_OBJECT_STR);
    CHECK_EQ_MEM(epoch->via.str.ptr, epoch->via.str.size, "e1");
    CHECK(s_get(&u, "error") == NULL);
    const msgpack_object *oldest = s_get(&u, "oldest");
    CHECK(oldest && oldest->type == MSGPACK_OBJECT_POSITIVE_INTEGER && oldest->via.u64 == 77);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&req);
    msgpack_sbuffer_destroy(&out);
}

TEST(standby_ping_says_not_leader)
{
    msgpack_sbuffer req, out;
    msgpack_unpacked u;
    int is_err = -1;
    s_req(&req, "ping", 1, 1);
    msgpack_sbuffer_init(&out);
    CHECK_EQ_INT(rpc_handle(req.data, req.size, &st1, &out, &is_err), 0);
    CHECK_EQ_INT(is_err, 0);
    CHECK_EQ_INT(s_unpack_map(&out, &u), 0);
    const msgpack_object *leader = s_get(&u, "leader"), *epoch = s_get(&u, "epoch");
    CHECK(leader && leader->type == MSGPACK_OBJECT_BOOLEAN && !leader->via.boolean);
    CHECK(epoch && epoch->type == MSGPACK_OBJECT_STR && epoch->via.str.size == 0);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&req);
    msgpack_sbuffer_destroy(&out);
}

TEST(unknown_op_gets_error_with_id)
{
    msgpack_sbuffer req, out;
    msgpack_unpacked u;
    int is_err = 0;
    s_req(&req, "explode", 1, -3);
    msgpack_sbuffer_init(&out);
    CHECK_EQ_INT(rpc_handle(req.data, req.size, &st1, &out, &is_err), 0);
    CHECK_EQ_INT(is_err, 1);
    CHECK_EQ_INT(s_unpack_map(&out, &u), 0);
    const msgpack_object *id = s_get(&u, "id"), *e = s_get(&u, "error");
    CHECK(id && id->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && id->via.i64 == -3);
    CHECK(e && e->type == MSGPACK_OBJECT_STR);
    CHECK_EQ_MEM(e->via.str.ptr, e->via.str.size, "unknown op");
    CHECK(s_get(&u, "ok") == NULL);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&req);
    msgpack_sbuffer_destroy(&out);
}

TEST(missing_op_is_bad_request)
{
    msgpack_sbuffer req, out;
    msgpack_unpacked u;
    int is_err = 0;
    s_req(&req, NULL, 1, 5);
    msgpack_sbuffer_init(&out);
    CHECK_EQ_INT(rpc_handle(req.data, req.size, &st1, &out, &is_err), 0);
    CHECK_EQ_INT(is_err, 1);
    CHECK_EQ_INT(s_unpack_map(&out, &u), 0);
    const msgpack_object *e = s_get(&u, "error");
    CHECK(e && e->type == MSGPACK_OBJECT_STR);
    CHECK_EQ_MEM(e->via.str.ptr, e->via.str.size, "bad request");
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&req);
    msgpack_sbuffer_destroy(&out);
}

TEST(malformed_bodies_get_no_reply)
{
    msgpack_sbuffer req, out;
    int is_err = 0;
    msgpack_sbuffer_init(&out);
    /* no id */
    s_req(&req, "ping", 0, 0);
    CHECK_EQ_INT(rpc_handle(req.data, req.size, &st1, &out, &is_err), -1);
    /* every truncation of a valid request */
    msgpack_sbuffer_destroy(&req);
    s_req(&req, "ping", 1, 1);
    for (size_t n = 0; n < req.size; n++)
        CHECK_EQ_INT(rpc_handle(req.data, n, &st1, &out, &is_err), -1);
    /* trailing garbage after a valid request */
    char buf[256];
    memcpy(buf, req.data, req.size);
    buf[req.size] = (char)0xc0;
    CHECK_EQ_INT(rpc_handle(buf, req.size + 1, &st1, &out, &is_err), -1);
    /* not a map, invalid byte, a string id */
    const char arr[] = { (char)0x93, 1, 2, 3 };
    CHECK_EQ_INT(rpc_handle(arr, sizeof arr, &st1, &out, &is_err), -1);
    const char bad[] = { (char)0xc1 };
    CHECK_EQ_INT(rpc_handle(bad, sizeof bad, &st1, &out, &is_err), -1);
    const char strid[] = { (char)0x81, (char)0xa2, 'i', 'd', (char)0xa1, '7' };
    CHECK_EQ_INT(rpc_handle(strid, sizeof strid, &st1, &out, &is_err), -1);
    CHECK_EQ_INT(out.size, 0);     /* nothing written for any of them */
    msgpack_sbuffer_destroy(&req);
    msgpack_sbuffer_destroy(&out);
}


/* A request map built field by field: s_begin(n) then n key/value pairs. */
static msgpack_packer s_pk;
static void s_begin(msgpack_sbuffer *sb, const char *op, uint32_t nfields)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&s_pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&s_pk, nfields + 2);
    s_pack_key(&s_pk, "op");
    s_pack_key(&s_pk, op);
    s_pack_key(&s_pk, "id");
    msgpack_pack_uint64(&s_pk, 9);
}

static void s_kv(const char *k, const char *v)
{
    s_pack_key(&s_pk, k);
    s_pack_key(&s_pk, v);
}

static void s_rooms(const char *const *rooms, uint32_t n)
{
    s_pack_key(&s_pk, "rooms");
    msgpack_pack_array(&s_pk, n);
    for (uint32_t i = 0; i < n; i++)
        s_pack_key(&s_pk, rooms[i]);
}

TEST(data_ops_go_to_the_handler_only_on_the_leader)
{
    msgpack_sbuffer req, out;
    msgpack_unpacked u;
    int is_err = 0;
    s_begin(&req, "replay", 0);
    msgpack_sbuffer_init(&out);
    rpc_status_t lead = { 5, 1, "e", 0 };
    CHECK_EQ_INT(rpc_handle(req.data, req.size, &lead, &out, &is_err), 1);
    CHECK_EQ_INT(out.size, 0);
    CHECK_EQ_INT(rpc_handle(req.data, req.size, &st1, &out, &is_err), 0);
    CHECK_EQ_INT(is_err, 1);
    CHECK_EQ_INT(s_unpack_map(&out, &u), 0);
    const msgpack_object *e = s_get(&u, "error");
    CHECK(e && e->type == MSGPACK_OBJECT_STR);
    CHECK_EQ_MEM(e->via.str.ptr, e->via.str.size, "not leader");
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&req);
    msgpack_sbuffer_destroy(&out);
}

TEST(replay_parses_rooms_after_and_clamps_limit)
{
    msgpack_sbuffer sb;
    const char *rooms[] = { "user_1", "news" };
    s_begin(&sb, "replay", 4);
    s_kv("ns", "/");
    s_rooms(rooms, 2);
    s_pack_key(&s_pk, "after");
    msgpack_pack_uint64(&s_pk, 123);
    s_pack_key(&s_pk, "limit");
    msgpack_pack_uint64(&s_pk, 1000000);
    const char *err = NULL;
    rpc_req_t *r = rpc_parse(sb.data, sb.size, &err);
    CHECK(r);
    CHECK_EQ_INT(r->op, RPC_OP_REPLAY);
    CHECK_EQ_STR(r->ns.ptr, "/");
    CHECK_EQ_INT(r->nrooms, 2);
    CHECK_EQ_STR(r->rooms[1].ptr, "news");
    CHECK_EQ_INT(r->after, 123);
    CHECK_EQ_INT(r->limit, RPC_LIMIT_MAX);
    rpc_req_free(r);
    msgpack_sbuffer_destroy(&sb);
    /* without a limit: the default */
    s_begin(&sb, "replay", 3);
    s_kv("ns", "/");
    s_rooms(rooms, 1);
    s_pack_key(&s_pk, "after");
    msgpack_pack_uint64(&s_pk, 0);
    r = rpc_parse(sb.data, sb.size, &err);
    CHECK(r);
    CHECK_EQ_INT(r->limit, RPC_REPLAY_LIMIT_DEFAULT);
    rpc_req_free(r);
    msgpack_sbuffer_destroy(&sb);
}

TEST(missing_or_mistyped_fields_name_the_field)
{
    msgpack_sbuffer sb;
    const char *err = NULL;
    const char *rooms[] = { "a" };
    /* replay without after */
    s_begin(&sb, "replay", 2);
    s_kv("ns", "/");
    s_rooms(rooms, 1);
    CHECK(rpc_parse(sb.data, sb.size, &err) == NULL);
    CHECK_EQ_STR(err, "bad request: after");
    msgpack_sbuffer_destroy(&sb);
    /* positions with a negative after is fine (not used) but rooms not an array */
    s_begin(&sb, "positions", 2);
    s_kv("ns", "/");
    s_kv("rooms", "a");
    CHECK(rpc_parse(sb.data, sb.size, &err) == NULL);
    CHECK_EQ_STR(err, "bad request: rooms");
    msgpack_sbuffer_destroy(&sb);
    /* a string with a NUL inside (PostgreSQL text cannot hold it) */
    s_begin(&sb, "unread", 2);
    s_pack_key(&s_pk, "user");
    msgpack_pack_str(&s_pk, 3);
    msgpack_pack_str_body(&s_pk, "a\0b", 3);
    s_kv("ns", "/");
    CHECK(rpc_parse(sb.data, sb.size, &err) == NULL);
    CHECK_EQ_STR(err, "bad request: user");
    msgpack_sbuffer_destroy(&sb);
    /* mark_read needs ids or all:true; ids must be integers */
    s_begin(&sb, "mark_read", 2);
    s_kv("user", "1");
    s_kv("ns", "/");
    CHECK(rpc_parse(sb.data, sb.size, &err) == NULL);
    CHECK_EQ_STR(err, "bad request: ids");
    msgpack_sbuffer_destroy(&sb);
    s_begin(&sb, "mark_read", 3);
    s_kv("user", "1");
    s_kv("ns", "/");
    s_pack_key(&s_pk, "ids");
    msgpack_pack_array(&s_pk, 2);
    msgpack_pack_int64(&s_pk, 4);
    s_pack_key(&s_pk, "5");
    CHECK(rpc_parse(sb.data, sb.size, &err) == NULL);
    CHECK_EQ_STR(err, "bad request: ids");
    msgpack_sbuffer_destroy(&sb);
    /* too many rooms */
    s_begin(&sb, "positions", 2);
    s_kv("ns", "/");
    s_pack_key(&s_pk, "rooms");
    msgpack_pack_array(&s_pk, RPC_ROOMS_MAX + 1);
    for (int i = 0; i <= RPC_ROOMS_MAX; i++)
        s_pack_key(&s_pk, "r");
    CHECK(rpc_parse(sb.data, sb.size, &err) == NULL);
    CHECK_EQ_STR(err, "bad request: rooms");
    msgpack_sbuffer_destroy(&sb);
    /* event without args_json */
    s_begin(&sb, "event", 3);
    s_kv("user", "1");
    s_kv("ns", "/");
    s_kv("name", "ping");
    CHECK(rpc_parse(sb.data, sb.size, &err) == NULL);
    CHECK_EQ_STR(err, "bad request: args_json");
    msgpack_sbuffer_destroy(&sb);
}

TEST(mark_read_publish_and_event_fields)
{
    msgpack_sbuffer sb;
    const char *err = NULL;
    s_begin(&sb, "mark_read", 3);
    s_kv("user", "42");
    s_kv("ns", "/notifs");
    s_pack_key(&s_pk, "ids");
    msgpack_pack_array(&s_pk, 2);
    msgpack_pack_int64(&s_pk, 7);
    msgpack_pack_int64(&s_pk, -1);
    rpc_req_t *r = rpc_parse(sb.data, sb.size, &err);
    CHECK(r);
    CHECK_EQ_INT(r->nids, 2);
    CHECK_EQ_INT(r->ids[0], 7);
    CHECK_EQ_INT(r->ids[1], -1);
    CHECK_EQ_INT(r->all, 0);
    CHECK_EQ_STR(r->user.ptr, "42");
    rpc_req_free(r);
    msgpack_sbuffer_destroy(&sb);

    s_begin(&sb, "mark_read", 3);
    s_kv("user", "42");
    s_kv("ns", "/");
    s_pack_key(&s_pk, "all");
    msgpack_pack_true(&s_pk);
    r = rpc_parse(sb.data, sb.size, &err);
    CHECK(r);
    CHECK_EQ_INT(r->all, 1);
    rpc_req_free(r);
    msgpack_sbuffer_destroy(&sb);

    s_begin(&sb, "publish", 3);
    s_kv("user", "42");
    s_kv("ns", "/");
    s_kv("room", "news");
    r = rpc_parse(sb.data, sb.size, &err);
    CHECK(r);
    CHECK_EQ_STR(r->event.ptr, "notification");
    CHECK_EQ_STR(r->json.ptr, "{}");
    rpc_req_free(r);
    msgpack_sbuffer_destroy(&sb);

    s_begin(&sb, "event", 4);
    s_kv("user", "42");
    s_kv("ns", "/");
    s_kv("name", "note");
    s_kv("args_json", "[{\"text\":\"hi\"}]");
    r = rpc_parse(sb.data, sb.size, &err);
    CHECK(r);
    CHECK_EQ_STR(r->name.ptr, "note");
    CHECK_EQ_STR(r->json.ptr, "[{\"text\":\"hi\"}]");
    rpc_req_free(r);
    msgpack_sbuffer_destroy(&sb);

    s_begin(&sb, "recover", 4);
    s_kv("pid", "p1");
    s_kv("user", "42");
    s_kv("ns", "/");
    s_pack_key(&s_pk, "after");
    msgpack_pack_uint64(&s_pk, 17);
    r = rpc_parse(sb.data, sb.size, &err);
    CHECK(r);
    CHECK_EQ_STR(r->pid.ptr, "p1");
    CHECK_EQ_INT(r->after, 17);
    CHECK_EQ_INT(r->limit, RPC_REPLAY_LIMIT_DEFAULT);
    rpc_req_free(r);
    msgpack_sbuffer_destroy(&sb);
}

TEST(parse_survives_every_truncation)
{
    msgpack_sbuffer sb;
    const char *err = NULL;
    const char *rooms[] = { "a", "b" };
    s_begin(&sb, "session_put", 4);
    s_kv("pid", "p");
    s_kv("user", "u");
    s_kv("ns", "/");
    s_rooms(rooms, 2);
    for (size_t n = 0; n < sb.size; n++)
        CHECK(rpc_parse(sb.data, n, &err) == NULL);
    rpc_req_t *r = rpc_parse(sb.data, sb.size, &err);
    CHECK(r);
    CHECK_EQ_INT(r->nrooms, 2);
    rpc_req_free(r);
    msgpack_sbuffer_destroy(&sb);
}

/* A request whose container counts are not backed by bytes (an array of
 * 2^28 elements in 11 bytes) is refused, with no reply. That msgpack-c is not
 * even called (it would first allocate for the declared count) is shown by
 * the fuzz_rpc target under libFuzzer's malloc limit, where this input was
 * found; here we check the refusal. */
TEST(huge_declared_counts_are_refused_before_allocation)
{
    static const uint8_t bomb[] = { 0x81, 0xa4, 'm', 's', 'g', 's', 0xdd, 0x10, 0x00, 0x00, 0x00 };
    static const uint8_t bomb2[] = { 0x82, 0xa2, 'i', 'd', 0x01, 0xa2, 'o', 'p', 0xdf, 0x10, 0x00, 0x00, 0x00 };
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    rpc_status_t st = { 1, 1, "e", 0 };
    int is_err = -1;
    CHECK_EQ_INT(rpc_handle(bomb, sizeof bomb, &st, &out, &is_err), -1);
    CHECK_EQ_INT(rpc_handle(bomb2, sizeof bomb2, &st, &out, &is_err), -1);
    CHECK_EQ_INT(out.size, 0);
    const char *err = NULL;
    CHECK(rpc_parse(bomb, sizeof bomb, &err) == NULL);
    CHECK(rpc_parse(bomb2, sizeof bomb2, &err) == NULL && err);
    msgpack_sbuffer_destroy(&out);
}

TEST_MAIN(huge_declared_counts_are_refused_before_allocation, ping_replies_ok_with_last_seq, standby_ping_says_not_leader, unknown_op_gets_error_with_id,
          missing_op_is_bad_request, malformed_bodies_get_no_reply,
          data_ops_go_to_the_handler_only_on_the_leader, replay_parses_rooms_after_and_clamps_limit,
          missing_or_mistyped_fields_name_the_field, mark_read_publish_and_event_fields,
          parse_survives_every_truncation)
