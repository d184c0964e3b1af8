/*  test_eio - Engine.IO packet and polling payload codec */
#include "test.h"
#include "eio.h"
#include "b64.h"

#include <jansson.h>

TEST(decode_all_types)
{
    static const char *const pkts[] = { "0{}", "1", "2", "3probe", "4hello", "5", "6" };
    for (int t = 0; t <= 6; t++) {
        eio_packet_t p;
        CHECK_EQ_INT(eio_decode(pkts[t], strlen(pkts[t]), &p), 0);
        CHECK_EQ_INT(p.type, t);
        CHECK_EQ_INT(p.binary, 0);
        CHECK(p.data == pkts[t] + 1);
        CHECK_EQ_INT(p.len, strlen(pkts[t]) - 1);
    }
    eio_packet_t p;
    CHECK_EQ_INT(eio_decode("3probe", 6, &p), 0);
    CHECK_EQ_MEM(p.data, p.len, "probe");
    /* Only the given length counts: "4hello" cut after the type. */
    CHECK_EQ_INT(eio_decode("4hello", 1, &p), 0);
    CHECK_EQ_INT(p.type, EIO_MESSAGE);
    CHECK_EQ_INT(p.len, 0);
}

TEST(decode_rejects)
{
    eio_packet_t p;
    CHECK_EQ_INT(eio_decode("", 0, &p), -1);
    CHECK_EQ_INT(eio_decode("7", 1, &p), -1);
    CHECK_EQ_INT(eio_decode("abc", 3, &p), -1);
    CHECK_EQ_INT(eio_decode("/", 1, &p), -1);
    CHECK_EQ_INT(eio_decode("bAQID", 5, &p), -1);   /* 'b' is polling-only */
    CHECK_EQ_INT(eio_decode("\x1e" "4", 2, &p), -1);
}

/* Collects the records of a payload as "[rec]" strings. */
static int s_records(const char *payload, size_t len, char *out, size_t cap)
{
    size_t pos = 0, o = 0;
    const char *rec;
    size_t rlen;
    int count = 0;
    out[0] = '\0';
    while (eio_payload_next(payload, len, &pos, &rec, &rlen) == 1) {
        int n = snprintf(out + o, cap - o, "[%.*s]", (int)rlen, rec);
        if (n < 0 || (size_t)n >= cap - o)
            return -1;
        o += (size_t)n;
        if (++count > 100)
            return -1;
    }
    return count;
}

TEST(payload_iteration)
{
    char got[256];
    CHECK_EQ_INT(s_records("4hello\x1e" "2\x1e" "4world", 15, got, sizeof got), 3);
    CHECK_EQ_STR(got, "[4hello][2][4world]");
    CHECK_EQ_INT(s_records("4hello", 6, got, sizeof got), 1);
    CHECK_EQ_STR(got, "[4hello]");
}

TEST(payload_empty_records)
{
    char got[256];
    /* trailing separator: a final empty record */
    CHECK_EQ_INT(s_records("4a\x1e", 3, got, sizeof got), 2);
    CHECK_EQ_STR(got, "[4a][]");
    /* leading and doubled separators */
    CHECK_EQ_INT(s_records("\x1e" "4a\x1e\x1e" "4b", 7, got, sizeof got), 4);
    CHECK_EQ_STR(got, "[][4a][][4b]");
    /* an empty payload is one empty record, which eio_decode refuses */
    CHECK_EQ_INT(s_records("", 0, got, sizeof got), 1);
    CHECK_EQ_STR(got, "[]");
    CHECK_EQ_INT(s_records("\x1e", 1, got, sizeof got), 2);
    CHECK_EQ_STR(got, "[][]");

    size_t pos = 0;
    const char *rec;
    size_t rlen;
    eio_packet_t p;
    CHECK_EQ_INT(eio_payload_next("\x1e", 1, &pos, &rec, &rlen), 1);
    CHECK_EQ_INT(rlen, 0);
    CHECK_EQ_INT(eio_decode(rec, rlen, &p), -1);
    CHECK_EQ_INT(eio_decode_record(rec, rlen, NULL, &p), -1);
}

TEST(payload_binary_round_trip)
{
    const char payload[] = "4hello\x1e" "bAQIDBA==";
    size_t len = sizeof payload - 1;
    size_t pos = 0;
    const char *rec;
    size_t rlen;
    char scratch[64];
    eio_packet_t p;

    CHECK_EQ_INT(eio_payload_next(payload, len, &pos, &rec, &rlen), 1);
    CHECK_EQ_INT(eio_decode_record(rec, rlen, scratch, &p), 0);
    CHECK_EQ_INT(p.type, EIO_MESSAGE);
    CHECK_EQ_INT(p.binary, 0);
    CHECK_EQ_MEM(p.data, p.len, "hello");

    CHECK_EQ_INT(eio_payload_next(payload, len, &pos, &rec, &rlen), 1);
    CHECK_EQ_MEM(rec, rlen, "bAQIDBA==");
    CHECK_EQ_INT(eio_decode_record(rec, rlen, scratch, &p), 0);
    CHECK_EQ_INT(p.type, EIO_MESSAGE);
    CHECK_EQ_INT(p.binary, 1);
    CHECK(p.data == scratch);
    CHECK_EQ_MEM(p.data, p.len, "\x01\x02\x03\x04");
    CHECK_EQ_INT(eio_payload_next(payload, len, &pos, &rec, &rlen), 0);
    /* and it stays at the end */
    CHECK_EQ_INT(eio_payload_next(payload, len, &pos, &rec, &rlen), 0);

    /* encode the same bytes back */
    char out[1 + 8 + 1 + 8];
    size_t n = eio_encode_binary_record("\x01\x02\x03\x04", 4, out);
    CHECK_EQ_MEM(out, n, "bAQIDBA==");
}

TEST(binary_record_sizes)
{
    /* Round trip every length 0..300, each decoded into scratch of exactly
     * the record's length (the documented capacity). */
    unsigned char data[300];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof data; n++) {
        char rec[1 + 404 + 1];
        size_t rlen = eio_encode_binary_record(data, n, rec);
        CHECK_EQ_INT(rlen, 1 + b64_encoded_len(n));
        char *scratch = malloc(rlen);
        CHECK(scratch);
        eio_packet_t p;
        int rc = eio_decode_record(rec, rlen, scratch, &p);
        int ok = rc == 0 && p.binary == 1 && p.len == n && memcmp(p.data, data, n) == 0;
        free(scratch);
        CHECK(ok);
    }
}

TEST(binary_record_bad_base64)
{
    char scratch[64];
    eio_packet_t p;
    CHECK_EQ_INT(eio_decode_record("b!!!!", 5, scratch, &p), -1);
    CHECK_EQ_INT(eio_decode_record("bAQID", 5, scratch, &p), 0);    /* 3 bytes, no padding needed */
    CHECK_EQ_MEM(p.data, p.len, "\x01\x02\x03");
    CHECK_EQ_INT(eio_decode_record("bAQI", 4, scratch, &p), -1);    /* 3 chars: impossible */
    CHECK_EQ_INT(eio_decode_record("bAQIDBA", 7, scratch, &p), -1); /* padding missing */
    CHECK_EQ_INT(eio_decode_record("bA", 2, scratch, &p), -1);      /* impossible length */
    /* an empty binary message is legal */
    CHECK_EQ_INT(eio_decode_record("b", 1, scratch, &p), 0);
    CHECK_EQ_INT(p.binary, 1);
    CHECK_EQ_INT(p.len, 0);
    /* text records go through eio_decode */
    CHECK_EQ_INT(eio_decode_record("9x", 2, scratch, &p), -1);
    CHECK_EQ_INT(eio_decode_record("2", 1, scratch, &p), 0);
    CHECK_EQ_INT(p.type, EIO_PING);
}

TEST(open_json_exact)
{
    char out[256];
    int n = eio_open_json(out, sizeof out, "lv_VI97HAXpY6yYWAAAC", 1, 300, 200, 1000000);
    CHECK_EQ_MEM(out, (size_t)n,
                 "{\"sid\":\"lv_VI97HAXpY6yYWAAAC\",\"upgrades\":[\"websocket\"],"
                 "\"pingInterval\":300,\"pingTimeout\":200,\"maxPayload\":1000000}");
    CHECK_EQ_INT(out[n], '\0');
    n = eio_open_json(out, sizeof out, "abc", 0, 25000, 20000, 1000000);
    CHECK_EQ_MEM(out, (size_t)n,
                 "{\"sid\":\"abc\",\"upgrades\":[],"
                 "\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}");
    /* and it is JSON a client can parse */
    json_t *j = json_loadb(out, (size_t)n, 0, NULL);
    CHECK(j);
    int ok = json_is_array(json_object_get(j, "upgrades")) &&
             json_integer_value(json_object_get(j, "pingInterval")) == 25000;
    json_decref(j);
    CHECK(ok);
}

TEST(open_json_limits)
{
    char out[256];
    const char *want = "{\"sid\":\"s\",\"upgrades\":[],\"pingInterval\":1,"
                       "\"pingTimeout\":2,\"maxPayload\":3}";
    size_t wl = strlen(want);
    /* exactly enough room (with the NUL) works, one byte less fails */
    CHECK_EQ_INT(eio_open_json(out, wl + 1, "s", 0, 1, 2, 3), (int)wl);
    CHECK_EQ_INT(eio_open_json(out, wl, "s", 0, 1, 2, 3), -1);
    CHECK_EQ_INT(eio_open_json(out, 0, "s", 0, 1, 2, 3), -1);
    /* a sid that would break the JSON is refused */
    CHECK_EQ_INT(eio_open_json(out, sizeof out, "a\"b", 0, 1, 2, 3), -1);
    CHECK_EQ_INT(eio_open_json(out, sizeof out, "a\\b", 0, 1, 2, 3), -1);
    CHECK_EQ_INT(eio_open_json(out, sizeof out, "a\nb", 0, 1, 2, 3), -1);
}

TEST_MAIN(decode_all_types, decode_rejects, payload_iteration, payload_empty_records,
          payload_binary_round_trip, binary_record_sizes, binary_record_bad_base64,
          open_json_exact, open_json_limits)
