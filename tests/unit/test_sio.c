/*  test_sio - Socket.IO v5 packet codec (cases from the official v5 suite) */
#include "test.h"
#include "sio.h"

#include <stdint.h>

static int s_dec(const char *s, sio_packet_t *p)
{
    memset(p, 0x5a, sizeof *p);
    return sio_decode(s, strlen(s), p);
}

TEST(connect_main)
{
    sio_packet_t p;
    CHECK_EQ_INT(s_dec("0", &p), 0);
    CHECK_EQ_INT(p.type, SIO_CONNECT);
    CHECK_EQ_MEM(p.nsp, p.nsp_len, "/");
    CHECK_EQ_INT(p.ack_id, -1);
    CHECK_EQ_INT(p.attachments, 0);
    CHECK(p.data == NULL);
    CHECK_EQ_INT(p.data_len, 0);

    const char *s = "0{\"token\":\"123\"}";
    CHECK_EQ_INT(s_dec(s, &p), 0);
    CHECK_EQ_MEM(p.nsp, p.nsp_len, "/");
    CHECK(p.data == s + 1);
    CHECK_EQ_MEM(p.data, p.data_len, "{\"token\":\"123\"}");
}

TEST(connect_custom)
{
    sio_packet_t p;
    CHECK_EQ_INT(s_dec("0/custom,", &p), 0);
    CHECK_EQ_INT(p.type, SIO_CONNECT);
    CHECK_EQ_MEM(p.nsp, p.nsp_len, "/custom");
    CHECK(p.data == NULL);

    CHECK_EQ_INT(s_dec("0/custom,{\"token\":\"abc\"}", &p), 0);
    CHECK_EQ_MEM(p.nsp, p.nsp_len, "/custom");
    CHECK_EQ_MEM(p.data, p.data_len, "{\"token\":\"abc\"}");

    /* no trailing comma: still valid */
    CHECK_EQ_INT(s_dec("0/custom", &p), 0);
    CHECK_EQ_MEM(p.nsp, p.nsp_len, "/custom");
    CHECK(p.data == NULL);

    /* CONNECT payload must be an object */
    CHECK_EQ_INT(s_dec("0[]", &p), -1);
    CHECK_EQ_INT(s_dec("0\"x\"", &p), -1);
    CHECK_EQ_INT(s_dec("0/custom,[1]", &p), -1);
}

TEST(disconnect)
{
    sio_packet_t p;
    CHECK_EQ_INT(s_dec("1", &p), 0);
    CHECK_EQ_INT(p.type, SIO_DISCONNECT);
    CHECK_EQ_MEM(p.nsp, p.nsp_len, "/");
    CHECK_EQ_INT(s_dec("1/custom,", &p), 0);
    CHECK_EQ_MEM(p.nsp, p.nsp_len, "/custom");
    CHECK(p.data == NULL);
    CHECK_EQ_INT(s_dec("1/custom", &p), 0);
    CHECK_EQ_MEM(p.nsp, p.nsp_len, "/custom");
    /* DISCONNECT carries nothing */
    CHECK_EQ_INT(s_dec("1{}", &p), -1);
    CHECK_EQ_INT(s_dec("112", &p), -1);
}

TEST(event)
{
    sio_packet_t p;
    const char *s = "2[\"message\",1,\"2\",{\"3\":[true]}]";
    CHECK_EQ_INT(s_dec(s, &p), 0);
    CHECK_EQ_INT(p.type, SIO_EVENT);
    CHECK_EQ_MEM(p.nsp, p.nsp_len, "/");
    CHECK_EQ_INT(p.ack_id, -1);
    CHECK(p.data == s + 1);
    CHECK_EQ_MEM(p.data, p.data_len, "[\"message\",1,\"2\",{\"3\":[true]}]");

    CHECK_EQ_INT(s_dec("2456[\"message-with-ack\",1,\"2\",{\"3\":[true]}]", &p), 0);
    CHECK_EQ_INT(p.type, SIO_EVENT);
    CHECK_EQ_INT(p.ack_id, 456);
    CHECK_EQ_MEM(p.data, p.data_len, "[\"message-with-ack\",1,\"2\",{\"3\":[true]}]");

    CHECK_EQ_INT(s_dec("2/custom,12[\"x\"]", &p), 0);
    CHECK_EQ_MEM(p.nsp, p.nsp_len, "/custom");
    CHECK_EQ_INT(p.ack_id, 12);
    CHECK_EQ_MEM(p.data, p.data_len, "[\"x\"]");

    /* raw bytes are kept, whitespace and all */
    CHECK_EQ_INT(s_dec("2[ \"a\" , 1 ] ", &p), 0);
    CHECK_EQ_MEM(p.data, p.data_len, "[ \"a\" , 1 ] ");
    /* numbers beyond 64 bits and escaped NULs are valid JSON */
    CHECK_EQ_INT(s_dec("2[\"a\",123456789012345678901234567890,\"\\u0000\"]", &p), 0);
}

TEST(binary_event_and_acks)
{
    sio_packet_t p;
    CHECK_EQ_INT(s_dec("52-[\"message\",{\"_placeholder\":true,\"num\":0},"
                       "{\"_placeholder\":true,\"num\":1}]", &p), 0);
    CHECK_EQ_INT(p.type, SIO_BINARY_EVENT);
    CHECK_EQ_INT(p.attachments, 2);
    CHECK_EQ_INT(p.ack_id, -1);
    CHECK_EQ_INT(sio_count_placeholders(p.data, p.data_len), 2);

    CHECK_EQ_INT(s_dec("52-789[\"message-with-ack\",{\"_placeholder\":true,\"num\":0},"
                       "{\"_placeholder\":true,\"num\":1}]", &p), 0);
    CHECK_EQ_INT(p.type, SIO_BINARY_EVENT);
    CHECK_EQ_INT(p.attachments, 2);
    CHECK_EQ_INT(p.ack_id, 789);

    CHECK_EQ_INT(s_dec("52-/admin,[\"baz\",{\"_placeholder\":true,\"num\":0},"
                       "{\"_placeholder\":true,\"num\":1}]", &p), 0);
    CHECK_EQ_MEM(p.nsp, p.nsp_len, "/admin");
    CHECK_EQ_INT(p.attachments, 2);

    CHECK_EQ_INT(s_dec("3456[1,\"2\",{\"3\":[true]}]", &p), 0);
    CHECK_EQ_INT(p.type, SIO_ACK);
    CHECK_EQ_INT(p.ack_id, 456);
    CHECK_EQ_MEM(p.data, p.data_len, "[1,\"2\",{\"3\":[true]}]");
    CHECK_EQ_INT(s_dec("312[]", &p), 0);                /* empty ack array is fine */
    CHECK_EQ_MEM(p.data, p.data_len, "[]");

    CHECK_EQ_INT(s_dec("62-789[{\"_placeholder\":true,\"num\":0},"
                       "{\"_placeholder\":true,\"num\":1}]", &p), 0);
    CHECK_EQ_INT(p.type, SIO_BINARY_ACK);
    CHECK_EQ_INT(p.attachments, 2);
    CHECK_EQ_INT(p.ack_id, 789);
    CHECK_EQ_INT(sio_count_placeholders(p.data, p.data_len), 2);
}

TEST(malformed)
{
    static const char *const bad[] = {
        "",
        "abc",                           /* type 'a' */
        "7",                             /* unknown type */
        "2{}",                           /* non-array payload */
        "2abc[\"a\"]",                   /* bad ack id */
        "2[]",                           /* empty event */
        "2[1]",                          /* non-string name */
        "2",                             /* event without data */
        "2[\"a\"",                       /* truncated */
        "5[\"a\"]",                      /* binary without count */
        "5-[\"a\"]",                     /* binary with an empty count */
        "52[\"a\"]",                     /* count without '-' */
        "565-[\"a\"]",                   /* more than SIO_MAX_ATTACHMENTS */
        "51234-[\"a\"]",
        "2[\"a\"]x",                     /* trailing garbage */
        "2[\"a\"][]",
        "3[]",                           /* ack without id */
        "0123",                          /* ack id on CONNECT */
        "4/x,12{}",
        "2/custom[\"a\"]",               /* no comma: all of it is the namespace */
        "2/a\001b,[\"a\"]",              /* control character in the namespace */
        "29007199254740993[\"a\"]",      /* ack id above 2^53 */
        "299999999999999999999999[\"a\"]",
        "2[\"\xff\"]",                   /* invalid UTF-8 */
        "4[]",                           /* CONNECT_ERROR must be an object */
        "2 ",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        sio_packet_t p;
        if (s_dec(bad[k], &p) != -1) {
            fprintf(stderr, "  accepted: %s\n", bad[k]);
            CHECK(0);
        }
    }
    /* length is honoured: "2[\"a\"]" cut one byte short is truncated */
    sio_packet_t p;
    CHECK_EQ_INT(sio_decode("2[\"a\"]", 5, &p), -1);
    CHECK_EQ_INT(sio_decode("2[\"a\"]", 6, &p), 0);
    CHECK_EQ_INT(sio_decode(NULL, 0, &p), -1);
}

TEST(ack_id_bounds)
{
    sio_packet_t p;
    CHECK_EQ_INT(s_dec("29007199254740992[\"a\"]", &p), 0);   /* 2^53 */
    CHECK_EQ_INT(p.ack_id, INT64_C(9007199254740992));
    CHECK_EQ_INT(s_dec("20[\"a\"]", &p), 0);
    CHECK_EQ_INT(p.ack_id, 0);
    CHECK_EQ_INT(s_dec("564-[\"a\"]", &p), 0);                /* the maximum count */
    CHECK_EQ_INT(p.attachments, 64);
    CHECK_EQ_INT(s_dec("50-[\"a\"]", &p), 0);
    CHECK_EQ_INT(p.attachments, 0);
}

TEST(every_prefix_is_safe)
{
    /* Every truncation of valid packets decodes or fails cleanly (ASan). */
    static const char *const good[] = {
        "52-/admin,789[\"message\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
        "0/custom,{\"token\":\"abc\"}",
        "2/custom,12[\"a\\\"b\",1]",
    };
    for (size_t k = 0; k < sizeof good / sizeof good[0]; k++) {
        size_t n = strlen(good[k]);
        for (size_t cut = 0; cut <= n; cut++) {
            char *copy = malloc(cut ? cut : 1);   /* exact size: ASan sees over-reads */
            CHECK(copy);
            memcpy(copy, good[k], cut);
            sio_packet_t p;
            int rc = sio_decode(copy, cut, &p);
            free(copy);
            if (cut == n)
                CHECK_EQ_INT(rc, 0);
        }
    }
}

TEST(event_split)
{
    char *name = NULL;
    const char *rest;
    size_t rest_len;
    const char *d = "[\"msg\",1,{\"a\":2}]";
    CHECK_EQ_INT(sio_event_split(d, strlen(d), &name, &rest, &rest_len), 0);
    CHECK_EQ_STR(name, "msg");
    CHECK(rest == d + 6);
    CHECK_EQ_MEM(rest, rest_len, ",1,{\"a\":2}]");
    free(name);

    d = "[\"msg\"]";
    CHECK_EQ_INT(sio_event_split(d, strlen(d), &name, &rest, &rest_len), 0);
    CHECK_EQ_STR(name, "msg");
    CHECK_EQ_MEM(rest, rest_len, "]");
    free(name);

    /* escapes in the name */
    d = "[\"a\\\"b\",1]";
    CHECK_EQ_INT(sio_event_split(d, strlen(d), &name, &rest, &rest_len), 0);
    CHECK_EQ_STR(name, "a\"b");
    CHECK_EQ_MEM(rest, rest_len, ",1]");
    free(name);

    d = "[\"\\\\\\/\\b\\f\\n\\r\\t\",0]";
    CHECK_EQ_INT(sio_event_split(d, strlen(d), &name, &rest, &rest_len), 0);
    CHECK_EQ_STR(name, "\\/\b\f\n\r\t");
    free(name);

    /* whitespace around the first element; the rest is byte-exact */
    d = "[ \"a\" , 1 ]";
    CHECK_EQ_INT(sio_event_split(d, strlen(d), &name, &rest, &rest_len), 0);
    CHECK_EQ_STR(name, "a");
    CHECK_EQ_MEM(rest, rest_len, ", 1 ]");
    free(name);

    d = " \n[\t\"a\"\r\n]";
    CHECK_EQ_INT(sio_event_split(d, strlen(d), &name, &rest, &rest_len), 0);
    CHECK_EQ_STR(name, "a");
    CHECK_EQ_MEM(rest, rest_len, "]");
    free(name);
}

TEST(event_split_unicode)
{
    char *name = NULL;
    const char *rest;
    size_t rest_len;
    const char *d = "[\"caf\\u00e9\",1]";
    CHECK_EQ_INT(sio_event_split(d, strlen(d), &name, &rest, &rest_len), 0);
    CHECK_EQ_STR(name, "caf\xc3\xa9");
    free(name);

    d = "[\"\\u20AC \\u0041\\u007f\"]";          /* 3-byte, 1-byte, uppercase hex */
    CHECK_EQ_INT(sio_event_split(d, strlen(d), &name, &rest, &rest_len), 0);
    CHECK_EQ_STR(name, "\xe2\x82\xac A\x7f");
    free(name);

    d = "[\"\\ud83d\\ude00\"]";                  /* surrogate pair -> U+1F600 */
    CHECK_EQ_INT(sio_event_split(d, strlen(d), &name, &rest, &rest_len), 0);
    CHECK_EQ_STR(name, "\xf0\x9f\x98\x80");
    free(name);

    d = "[\"caf\xc3\xa9\"]";                     /* raw UTF-8 passes through */
    CHECK_EQ_INT(sio_event_split(d, strlen(d), &name, &rest, &rest_len), 0);
    CHECK_EQ_STR(name, "caf\xc3\xa9");
    free(name);
}

TEST(event_split_rejects)
{
    static const char *const bad[] = {
        "", "[", "[]", "[1]", "{\"a\":1}", "[\"a\"", "[\"a", "[\"a\" 1]", "[\"a\"x]",
        "[\"a\\\"]", "[\"\\x\"]", "[\"\\u12\"]", "[\"\\u12g4\"]",
        "[\"\\ud83d\"]", "[\"\\ude00\"]", "[\"\\ud83d\\u0041\"]", "[\"\\u0000\"]",
        "[\"a\nb\"]", "\"a\"",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char *name = (char *)"untouched";
        const char *rest;
        size_t rest_len;
        if (sio_event_split(bad[k], strlen(bad[k]), &name, &rest, &rest_len) != -1) {
            fprintf(stderr, "  accepted: %s\n", bad[k]);
            free(name);
            CHECK(0);
        }
        CHECK_EQ_STR(name, "untouched");
    }
    /* length is honoured: the closing quote beyond len does not count */
    char *name;
    const char *rest;
    size_t rest_len;
    CHECK_EQ_INT(sio_event_split("[\"ab\"]", 4, &name, &rest, &rest_len), -1);
    CHECK_EQ_INT(sio_event_split("[\"a\\", 4, &name, &rest, &rest_len), -1);
}

TEST(encode_header)
{
    char out[64];
    int n = sio_encode_header(out, sizeof out, SIO_EVENT, "/", 1, 0, -1);
    CHECK_EQ_MEM(out, (size_t)n, "2");
    n = sio_encode_header(out, sizeof out, SIO_EVENT, "/custom", 7, 0, 12);
    CHECK_EQ_MEM(out, (size_t)n, "2/custom,12");
    n = sio_encode_header(out, sizeof out, SIO_BINARY_ACK, "/", 1, 2, 789);
    CHECK_EQ_MEM(out, (size_t)n, "62-789");
    n = sio_encode_header(out, sizeof out, SIO_CONNECT_ERROR, "/random", 7, 0, -1);
    CHECK_EQ_MEM(out, (size_t)n, "4/random,");
    CHECK_EQ_STR(out, "4/random,");
    n = sio_encode_header(out, sizeof out, SIO_BINARY_EVENT, "/admin", 6, 2, -1);
    CHECK_EQ_MEM(out, (size_t)n, "52-/admin,");
    n = sio_encode_header(out, sizeof out, SIO_CONNECT, NULL, 0, 0, -1);
    CHECK_EQ_MEM(out, (size_t)n, "0");
    /* attachments are written only for BINARY_* */
    n = sio_encode_header(out, sizeof out, SIO_ACK, "/", 1, 3, 0);
    CHECK_EQ_MEM(out, (size_t)n, "30");
    n = sio_encode_header(out, sizeof out, SIO_EVENT, "/", 1, 0, INT64_C(9007199254740992));
    CHECK_EQ_MEM(out, (size_t)n, "29007199254740992");
}

TEST(encode_header_limits)
{
    char out[16];
    /* "2/custom,12" is 11 bytes: needs 12 with the NUL */
    CHECK_EQ_INT(sio_encode_header(out, 12, SIO_EVENT, "/custom", 7, 0, 12), 11);
    CHECK_EQ_INT(sio_encode_header(out, 11, SIO_EVENT, "/custom", 7, 0, 12), -1);
    CHECK_EQ_INT(sio_encode_header(out, 1, SIO_EVENT, "/", 1, 0, -1), -1);
    CHECK_EQ_INT(sio_encode_header(out, 0, SIO_EVENT, "/", 1, 0, -1), -1);
    CHECK_EQ_INT(sio_encode_header(out, sizeof out, 7, "/", 1, 0, -1), -1);
    CHECK_EQ_INT(sio_encode_header(out, sizeof out, -1, "/", 1, 0, -1), -1);
    CHECK_EQ_INT(sio_encode_header(out, sizeof out, SIO_EVENT, "/a,b", 4, 0, -1), -1);
    CHECK_EQ_INT(sio_encode_header(out, sizeof out, SIO_EVENT, "custom", 6, 0, -1), -1);

    /* an encoded header decodes back to the same fields */
    char pkt[64];
    int n = sio_encode_header(pkt, sizeof pkt, SIO_BINARY_EVENT, "/chat", 5, 1, 42);
    CHECK(n > 0);
    memcpy(pkt + n, "[\"e\",{\"_placeholder\":true,\"num\":0}]", 36);
    sio_packet_t p;
    CHECK_EQ_INT(sio_decode(pkt, (size_t)n + 35, &p), 0);
    CHECK_EQ_INT(p.type, SIO_BINARY_EVENT);
    CHECK_EQ_INT(p.attachments, 1);
    CHECK_EQ_MEM(p.nsp, p.nsp_len, "/chat");
    CHECK_EQ_INT(p.ack_id, 42);
}

TEST(json_string)
{
    char out[128];
    int n = sio_json_string(out, sizeof out, "plain", 5);
    CHECK_EQ_MEM(out, (size_t)n, "\"plain\"");
    n = sio_json_string(out, sizeof out, "a\"b\\c", 5);
    CHECK_EQ_MEM(out, (size_t)n, "\"a\\\"b\\\\c\"");
    n = sio_json_string(out, sizeof out, "\b\f\n\r\t", 5);
    CHECK_EQ_MEM(out, (size_t)n, "\"\\b\\f\\n\\r\\t\"");
    n = sio_json_string(out, sizeof out, "\x00\x01\x1f\x7f", 4);
    CHECK_EQ_MEM(out, (size_t)n, "\"\\u0000\\u0001\\u001f\x7f\"");
    n = sio_json_string(out, sizeof out, "caf\xc3\xa9 /", 7);   /* UTF-8 and '/' as is */
    CHECK_EQ_MEM(out, (size_t)n, "\"caf\xc3\xa9 /\"");
    n = sio_json_string(out, sizeof out, "", 0);
    CHECK_EQ_MEM(out, (size_t)n, "\"\"");
    CHECK_EQ_STR(out, "\"\"");

    /* what it writes, sio_event_split reads back */
    const char raw[] = "we\"ird\\\n\x01name";
    char arr[128];
    arr[0] = '[';
    n = sio_json_string(arr + 1, sizeof arr - 2, raw, sizeof raw - 1);
    CHECK(n > 0);
    arr[1 + n] = ']';
    char *name;
    const char *rest;
    size_t rest_len;
    CHECK_EQ_INT(sio_event_split(arr, (size_t)n + 2, &name, &rest, &rest_len), 0);
    int same = strcmp(name, raw) == 0;
    free(name);
    CHECK(same);
}

TEST(json_string_limits)
{
    char out[8];
    /* "\"abc\"" is 5 bytes + NUL */
    CHECK_EQ_INT(sio_json_string(out, 6, "abc", 3), 5);
    CHECK_EQ_INT(sio_json_string(out, 5, "abc", 3), -1);
    /* an escape that does not fit fails, never half-written past cap */
    CHECK_EQ_INT(sio_json_string(out, 8, "a\x01", 2), -1);
    CHECK_EQ_INT(sio_json_string(out, 0, "", 0), -1);
}

TEST(placeholders)
{
    CHECK_EQ_INT(sio_count_placeholders("[\"a\"]", 5), 0);
    const char *d = "[\"a\",{\"_placeholder\":true,\"num\":1},{\"x\":[{\"_placeholder\":true,\"num\":0}]}]";
    CHECK_EQ_INT(sio_count_placeholders(d, strlen(d)), 2);
    /* any depth */
    d = "[{\"a\":{\"b\":[[[{\"_placeholder\":true,\"num\":0}]]]}}]";
    CHECK_EQ_INT(sio_count_placeholders(d, strlen(d)), 1);
    /* "_placeholder" not exactly true: an ordinary object */
    d = "[{\"_placeholder\":1,\"num\":0},{\"_placeholder\":\"true\",\"num\":0},{\"_placeholder\":false}]";
    CHECK_EQ_INT(sio_count_placeholders(d, strlen(d)), 0);
    /* the two-placeholder payload of the suite */
    d = "[\"message\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]";
    CHECK_EQ_INT(sio_count_placeholders(d, strlen(d)), 2);
}

TEST(placeholders_bad)
{
    static const char *const bad[] = {
        "[{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":0}]",  /* duplicate */
        "[{\"_placeholder\":true,\"num\":1}]",                                    /* gap */
        "[{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":2}]",
        "[{\"_placeholder\":true,\"num\":-1}]",
        "[{\"_placeholder\":true,\"num\":0.5}]",
        "[{\"_placeholder\":true,\"num\":\"0\"}]",
        "[{\"_placeholder\":true}]",
        "[{\"_placeholder\":true,\"num\":64}]",
        "[{\"_placeholder\":true,\"num\":1e30}]",
        "[\"a\"",
        "[\"a\"] x",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        if (sio_count_placeholders(bad[k], strlen(bad[k])) != -1) {
            fprintf(stderr, "  accepted: %s\n", bad[k]);
            CHECK(0);
        }
    CHECK_EQ_INT(sio_count_placeholders(NULL, 0), -1);
}

TEST(placeholders_max)
{
    /* 64 placeholders, nums in reverse order */
    char buf[4096];
    size_t o = 0;
    buf[o++] = '[';
    for (int k = 63; k >= 0; k--)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s{\"_placeholder\":true,\"num\":%d}",
                              k == 63 ? "" : ",", k);
    buf[o++] = ']';
    CHECK_EQ_INT(sio_count_placeholders(buf, o), 64);
}

TEST(deep_nesting)
{
    /* hostile nesting fails cleanly rather than overflowing a stack */
    size_t depth = 100000;
    char *s = malloc(1 + 2 * depth + 8);
    CHECK(s);
    size_t o = 0;
    s[o++] = '2';
    for (size_t k = 0; k < depth; k++)
        s[o++] = '[';
    for (size_t k = 0; k < depth; k++)
        s[o++] = ']';
    sio_packet_t p;
    int rc = sio_decode(s, o, &p);
    int rc2 = sio_count_placeholders(s + 1, o - 1);
    free(s);
    CHECK_EQ_INT(rc, -1);
    CHECK_EQ_INT(rc2, -1);
}

/* sio_decode_json: the same verdicts, and the parsed data handed over. */
TEST(decode_json)
{
    sio_packet_t p;
    json_t *j = (json_t *)&p;       /* must be overwritten */
    const char *s = "0/a,{\"token\":\"t\\u0041\",\"n\":1}";
    CHECK_EQ_INT(sio_decode_json(s, strlen(s), &p, &j), 0);
    CHECK(json_is_object(j));
    CHECK_EQ_STR(json_string_value(json_object_get(j, "token")), "tA");
    CHECK(json_is_real(json_object_get(j, "n")));      /* SIO_JSON_FLAGS */
    json_decref(j);
    j = (json_t *)&p;
    CHECK_EQ_INT(sio_decode_json("0", 1, &p, &j), 0);
    CHECK(j == NULL);
    j = (json_t *)&p;
    CHECK_EQ_INT(sio_decode_json("0[1]", 4, &p, &j), -1);   /* CONNECT: an object */
    CHECK(j == NULL);
    j = (json_t *)&p;
    CHECK_EQ_INT(sio_decode_json("0{\"a\":", 6, &p, &j), -1);
    CHECK(j == NULL);
    j = (json_t *)&p;
    CHECK_EQ_INT(sio_decode_json("2[\"e\",{}]", 9, &p, &j), 0);
    CHECK(json_is_array(j));
    json_decref(j);
    CHECK_EQ_INT(sio_decode_json("0{}", 3, &p, NULL), 0);
}

TEST_MAIN(connect_main, connect_custom, disconnect, event, binary_event_and_acks, malformed,
          ack_id_bounds, every_prefix_is_safe, event_split, event_split_unicode,
          event_split_rejects, encode_header, encode_header_limits, json_string,
          json_string_limits, placeholders, placeholders_bad, placeholders_max, deep_nesting,
          decode_json)
