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

static const rpc_status_t st1 = { 1, 0, "" };

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
    rpc_status_t st = { 12345, 1, "e1" };
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

TEST_MAIN(ping_replies_ok_with_last_seq, standby_ping_says_not_leader, unknown_op_gets_error_with_id,
          missing_op_is_bad_request, malformed_bodies_get_no_reply)
