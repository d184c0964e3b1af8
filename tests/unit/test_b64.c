/*  test_b64 - RFC 4648 §10 vectors, the url alphabet and every decode error */
#include "b64.h"
#include "test.h"

static const char *const s_plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
static const char *const s_std[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==",
                                     "Zm9vYmE=", "Zm9vYmFy" };
static const char *const s_url[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg",
                                     "Zm9vYmE", "Zm9vYmFy" };

TEST(rfc4648_encode)
{
    char out[32];
    for (size_t i = 0; i < 7; i++) {
        size_t n = strlen(s_plain[i]);
        CHECK_EQ_INT(b64_encoded_len(n), strlen(s_std[i]));
        CHECK_EQ_INT(b64_encode(s_plain[i], n, out), strlen(s_std[i]));
        CHECK_EQ_STR(out, s_std[i]);
        CHECK_EQ_INT(b64url_encoded_len(n), strlen(s_url[i]));
        CHECK_EQ_INT(b64url_encode(s_plain[i], n, out), strlen(s_url[i]));
        CHECK_EQ_STR(out, s_url[i]);
    }
}

TEST(rfc4648_decode)
{
    char out[32];
    for (size_t i = 0; i < 7; i++) {
        long n = b64_decode(s_std[i], strlen(s_std[i]), out);
        CHECK(n >= 0);
        CHECK_EQ_MEM(out, (size_t)n, s_plain[i]);
        n = b64url_decode(s_url[i], strlen(s_url[i]), out);
        CHECK(n >= 0);
        CHECK_EQ_MEM(out, (size_t)n, s_plain[i]);
        /* base64url also accepts correct padding */
        n = b64url_decode(s_std[i], strlen(s_std[i]), out);
        CHECK(n >= 0);
        CHECK_EQ_MEM(out, (size_t)n, s_plain[i]);
    }
}

TEST(url_alphabet)
{
    const unsigned char bin[] = { 0xfb, 0xff, 0xbf, 0xfe };
    char out[16];
    unsigned char dec[16];
    b64_encode(bin, 4, out);
    CHECK_EQ_STR(out, "+/+//g==");
    b64url_encode(bin, 4, out);
    CHECK_EQ_STR(out, "-_-__g");
    CHECK_EQ_INT(b64url_decode("-_-__g", 6, dec), 4);
    CHECK(memcmp(dec, bin, 4) == 0);
    CHECK_EQ_INT(b64_decode("+/+//g==", 8, dec), 4);
    CHECK(memcmp(dec, bin, 4) == 0);
    /* each alphabet refuses the other's two symbols */
    CHECK_EQ_INT(b64url_decode("+/+//g", 6, dec), -1);
    CHECK_EQ_INT(b64_decode("-_-__g==", 8, dec), -1);
}

TEST(roundtrip_all_bytes)
{
    unsigned char bin[256], dec[400];
    char enc[400];
    for (int i = 0; i < 256; i++)
        bin[i] = (unsigned char)i;
    for (size_t n = 0; n <= 256; n++) {
        size_t e = b64_encode(bin, n, enc);
        CHECK_EQ_INT(b64_decode(enc, e, dec), n);
        CHECK(memcmp(dec, bin, n) == 0);
        e = b64url_encode(bin, n, enc);
        CHECK_EQ_INT(b64url_decode(enc, e, dec), n);
        CHECK(memcmp(dec, bin, n) == 0);
    }
}

TEST(invalid_char)
{
    char out[16];
    CHECK_EQ_INT(b64_decode("Zm9*", 4, out), -1);
    CHECK_EQ_INT(b64_decode("Zm 9v", 5, out), -1);
    CHECK_EQ_INT(b64_decode("Zm9v\n", 5, out), -1);
    CHECK_EQ_INT(b64_decode("Zm\0v", 4, out), -1);
    CHECK_EQ_INT(b64url_decode("Zm9*", 4, out), -1);
    CHECK_EQ_INT(b64url_decode("Zm\x80v", 4, out), -1);
    CHECK_EQ_INT(b64url_decode("Zm.v", 4, out), -1);
}

TEST(bad_padding)
{
    char out[16];
    CHECK_EQ_INT(b64_decode("Zg", 2, out), -1);       /* std requires padding */
    CHECK_EQ_INT(b64_decode("Zg=", 3, out), -1);
    CHECK_EQ_INT(b64_decode("Zg===", 5, out), -1);
    CHECK_EQ_INT(b64_decode("Z===", 4, out), -1);
    CHECK_EQ_INT(b64_decode("====", 4, out), -1);
    CHECK_EQ_INT(b64_decode("Z=g=", 4, out), -1);     /* padding in the middle */
    CHECK_EQ_INT(b64_decode("Zg==Zg==", 8, out), -1);
    CHECK_EQ_INT(b64url_decode("Zg=", 3, out), -1);
    CHECK_EQ_INT(b64url_decode("Zg===", 5, out), -1);
    CHECK_EQ_INT(b64url_decode("Z=g=", 4, out), -1);
    CHECK_EQ_INT(b64url_decode("=", 1, out), -1);
    /* non-zero unused bits: "Zh==" would also decode to "f" if not strict */
    CHECK_EQ_INT(b64_decode("Zh==", 4, out), -1);
    CHECK_EQ_INT(b64_decode("Zm9=", 4, out), -1);
    CHECK_EQ_INT(b64url_decode("Zh", 2, out), -1);
}

TEST(impossible_length)
{
    char out[16];
    CHECK_EQ_INT(b64_decode("Z", 1, out), -1);
    CHECK_EQ_INT(b64_decode("Zm9vY", 5, out), -1);
    CHECK_EQ_INT(b64_decode("Zm9", 3, out), -1);
    CHECK_EQ_INT(b64url_decode("Z", 1, out), -1);
    CHECK_EQ_INT(b64url_decode("Zm9vY", 5, out), -1);
    CHECK_EQ_INT(b64_decode("", 0, out), 0);
    CHECK_EQ_INT(b64url_decode("", 0, out), 0);
}

TEST_MAIN(rfc4648_encode, rfc4648_decode, url_alphabet, roundtrip_all_bytes,
          invalid_char, bad_padding, impossible_length)
