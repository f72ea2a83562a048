/*
 * test_auth.c - unit tests of auth.c's pure parts: strict base64 decoding, the PLAIN message
 * (RFC 4616), identities, mechanism and stage names. Table-driven; failures print got/want.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"

/* ---- base64 ---- */

struct base64_case {
    const char *in;
    long want;              /* decoded length, or -1 */
    const char *want_bytes; /* want octets (may hold NULs: compared with want) */
    size_t out_size;        /* 0: a large buffer */
};

static const struct base64_case base64_cases[] = {
    {"", 0, "", 0},
    {"YQ==", 1, "a", 0},
    {"YWI=", 2, "ab", 0},
    {"YWJj", 3, "abc", 0},
    {"AGFsaWNlAHNlY3JldA==", 13, "\0alice\0secret", 0},
    {"+/+/", 3, "\xfb\xff\xbf", 0},
    {"VXNlcm5hbWU6", 9, "Username:", 0},
    {"YWJj", -1, NULL, 2},          /* no room */
    {"YWJj", 3, "abc", 3},          /* exactly enough room */
    {"YQ", -1, NULL, 0},            /* not a multiple of 4 */
    {"YQ=", -1, NULL, 0},
    {"Y===", -1, NULL, 0},          /* padding too early */
    {"=YWJ", -1, NULL, 0},
    {"YQ==YQ==", -1, NULL, 0},      /* padding in the middle */
    {"YW=j", -1, NULL, 0},          /* data after padding */
    {"YR==", -1, NULL, 0},          /* unused bits set: not canonical */
    {"YWJ=", -1, NULL, 0},          /* unused bits set with one '=' */
    {"YW J", -1, NULL, 0},          /* space */
    {"YWJj\r\n", -1, NULL, 0},
    {"YW-_", -1, NULL, 0},          /* base64url is not base64 */
    {"*", -1, NULL, 0},
    {"====", -1, NULL, 0},
};

static void test_base64(void **state)
{
    for (size_t i = 0; i < sizeof base64_cases / sizeof base64_cases[0]; i++) {
        const struct base64_case *c = &base64_cases[i];
        unsigned char out[64];
        memset(out, 0xAA, sizeof out);
        size_t size = c->out_size ? c->out_size : sizeof out;
        long got = auth_base64_decode(c->in, strlen(c->in), out, size);
        if (got != c->want)
            fail_msg("decode '%s': got %ld, want %ld", c->in, got, c->want);
        if (got > 0 && memcmp(out, c->want_bytes, (size_t)got) != 0)
            fail_msg("decode '%s': got other octets than wanted", c->in);
        if (got >= 0 && c->out_size == 0 && out[got] != 0xAA)
            fail_msg("decode '%s': got a write past the result, want none", c->in);
    }
}

/* every 0..255 octet survives an encode made here and the decoder */
static void test_base64_round_trip(void **state)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char data[256];
    for (int i = 0; i < 256; i++)
        data[i] = (unsigned char)i;
    for (size_t length = 0; length <= sizeof data; length += 1 + length / 7) {
        char encoded[400] = "";
        size_t n = 0;
        for (size_t i = 0; i < length; i += 3) {
            unsigned long group = (unsigned long)data[i] << 16;
            if (i + 1 < length)
                group |= (unsigned long)data[i + 1] << 8;
            if (i + 2 < length)
                group |= data[i + 2];
            encoded[n++] = alphabet[group >> 18 & 63];
            encoded[n++] = alphabet[group >> 12 & 63];
            encoded[n++] = i + 1 < length ? alphabet[group >> 6 & 63] : '=';
            encoded[n++] = i + 2 < length ? alphabet[group & 63] : '=';
        }
        unsigned char out[256];
        long got = auth_base64_decode(encoded, n, out, sizeof out);
        if (got != (long)length || memcmp(out, data, length) != 0)
            fail_msg("round trip of %zu octets: got %ld, want %zu", length, got, length);
    }
}

/* ---- PLAIN ---- */

struct plain_case {
    const char *data;
    size_t length;
    int want;
    const char *authzid, *authcid, *password;
};

#define PLAIN(literal) literal, sizeof literal - 1

static const struct plain_case plain_cases[] = {
    {PLAIN("\0alice\0secret"), 0, "", "alice", "secret"},
    {PLAIN("alice\0alice\0secret"), 0, "alice", "alice", "secret"},
    {PLAIN("admin\0alice\0pass word with spaces"), 0, "admin", "alice", "pass word with spaces"},
    {PLAIN("\0j\xc3\xb6rg\0p\xc3\xa4ss"), 0, "", "j\xc3\xb6rg", "p\xc3\xa4ss"},
    {PLAIN("\0alice\0\xff\xfe binary"), 0, "", "alice", "\xff\xfe binary"},
    {PLAIN("\0alice\0"), -1, NULL, NULL, NULL},            /* empty password */
    {PLAIN("\0\0secret"), -1, NULL, NULL, NULL},           /* empty user */
    {PLAIN("alice\0secret"), -1, NULL, NULL, NULL},        /* one NUL */
    {PLAIN("\0alice\0sec\0ret"), -1, NULL, NULL, NULL},    /* three NULs */
    {PLAIN("alicesecret"), -1, NULL, NULL, NULL},
    {PLAIN(""), -1, NULL, NULL, NULL},
    {PLAIN("\0al\x01ice\0secret"), -1, NULL, NULL, NULL},  /* control in the user */
    {PLAIN("\0al\"ice\0secret"), -1, NULL, NULL, NULL},    /* quote in the user */
    {PLAIN("\0al\\ice\0secret"), -1, NULL, NULL, NULL},    /* backslash in the user */
    {PLAIN("\0\xc3\x28\0secret"), -1, NULL, NULL, NULL},   /* bad UTF-8 in the user */
    {PLAIN("\xff\0alice\0secret"), -1, NULL, NULL, NULL},  /* bad UTF-8 in authzid */
};

static void test_plain(void **state)
{
    for (size_t i = 0; i < sizeof plain_cases / sizeof plain_cases[0]; i++) {
        const struct plain_case *c = &plain_cases[i];
        struct auth_plain out;
        memset(&out, 0, sizeof out);
        int got = auth_plain_parse((const unsigned char *)c->data, c->length, &out);
        if (got != c->want)
            fail_msg("plain case %zu: got %d, want %d", i, got, c->want);
        if (got != 0)
            continue;
        if (out.authzid_length != strlen(c->authzid) ||
            memcmp(out.authzid, c->authzid, out.authzid_length) != 0 ||
            out.authcid_length != strlen(c->authcid) ||
            memcmp(out.authcid, c->authcid, out.authcid_length) != 0 ||
            out.password_length != strlen(c->password) ||
            memcmp(out.password, c->password, out.password_length) != 0)
            fail_msg("plain case %zu: got parts '%.*s' '%.*s' '%.*s', want '%s' '%s' '%s'", i,
                     (int)out.authzid_length, out.authzid, (int)out.authcid_length, out.authcid,
                     (int)out.password_length, out.password, c->authzid, c->authcid, c->password);
    }
}

static void test_plain_limits(void **state)
{
    unsigned char data[2 + AUTH_IDENTITY_MAX + 1 + AUTH_PASSWORD_MAX + 2];
    struct auth_plain out;
    /* the longest identity and password pass */
    size_t n = 0;
    data[n++] = '\0';
    memset(data + n, 'u', AUTH_IDENTITY_MAX);
    n += AUTH_IDENTITY_MAX;
    data[n++] = '\0';
    memset(data + n, 'p', AUTH_PASSWORD_MAX);
    n += AUTH_PASSWORD_MAX;
    if (auth_plain_parse(data, n, &out) != 0)
        fail_msg("identity of %d and password of %d octets: got -1, want 0", AUTH_IDENTITY_MAX,
                 AUTH_PASSWORD_MAX);
    data[n++] = 'p';
    if (auth_plain_parse(data, n, &out) != -1)
        fail_msg("password of %d octets: got 0, want -1", AUTH_PASSWORD_MAX + 1);
    n = 0;
    data[n++] = '\0';
    memset(data + n, 'u', AUTH_IDENTITY_MAX + 1);
    n += AUTH_IDENTITY_MAX + 1;
    data[n++] = '\0';
    data[n++] = 'p';
    if (auth_plain_parse(data, n, &out) != -1)
        fail_msg("identity of %d octets: got 0, want -1", AUTH_IDENTITY_MAX + 1);
}

static void test_identity_and_names(void **state)
{
    static const struct {
        const char *text;
        bool want;
    } identities[] = {
        {"alice", true},
        {"alice@example.org", true},
        {"first last", true},
        {"\xe6\x97\xa5\xe6\x9c\xac", true},
        {"", false},
        {"tab\there", false},
        {"del\x7f", false},
        {"quote\"", false},
        {"back\\slash", false},
        {"\xc0\xaf", false},
    };
    for (size_t i = 0; i < sizeof identities / sizeof identities[0]; i++) {
        bool got = auth_identity_valid(identities[i].text, strlen(identities[i].text));
        if (got != identities[i].want)
            fail_msg("identity '%s': got %d, want %d", identities[i].text, got, identities[i].want);
    }
    static const struct {
        const char *name;
        int want;
    } mechanisms[] = {
        {"PLAIN", AUTH_MECHANISM_PLAIN}, {"plain", AUTH_MECHANISM_PLAIN},
        {"LOGIN", AUTH_MECHANISM_LOGIN}, {"Login", AUTH_MECHANISM_LOGIN},
        {"CRAM-MD5", -1}, {"PLAINX", -1}, {"PLAI", -1}, {"", -1},
    };
    for (size_t i = 0; i < sizeof mechanisms / sizeof mechanisms[0]; i++) {
        int got = auth_mechanism_from_name(mechanisms[i].name, strlen(mechanisms[i].name));
        if (got != mechanisms[i].want)
            fail_msg("mechanism '%s': got %d, want %d", mechanisms[i].name, got, mechanisms[i].want);
    }
    assert_string_equal(auth_mechanism_name(AUTH_MECHANISM_LOGIN), "LOGIN");
    assert_string_equal(auth_mechanism_name(AUTH_MECHANISM_COUNT), "invalid");
    assert_string_equal(auth_mechanism_name(-1), "invalid");
    assert_string_equal(auth_stage_name(AUTH_STAGE_DELAY), "delay");
    assert_string_equal(auth_stage_name(AUTH_STAGE_COUNT), "invalid");
    auth_exchange_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_base64_round_trip),
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_plain_limits),
        cmocka_unit_test(test_identity_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
