/*
 * test_proxy_protocol.c - unit tests of gateway/proxy_protocol.c: v1 lines (TCP4, TCP6,
 * UNKNOWN, malformed ones), v2 headers built here byte by byte (PROXY over INET and INET6,
 * LOCAL, TLVs: AUTHORITY, SSL with its sub-TLVs, CRC32C right and wrong, unknown types,
 * TLVs running past the header), every proper prefix of a valid header being INCOMPLETE,
 * the length bounds, and CRC-32C against its published check value.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/proxy_protocol.h"

static const unsigned char v2_signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                               0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A v2 header under construction. */
struct v2_builder {
    unsigned char bytes[PROXY_HEADER_MAX + 64];
    size_t length;
};

/* v2_start - signature, version/command, family/transport; the length is set by v2_finish */
static void v2_start(struct v2_builder *b, unsigned command, unsigned family_transport)
{
    memcpy(b->bytes, v2_signature, 12);
    b->bytes[12] = (unsigned char)(0x20 | command);
    b->bytes[13] = (unsigned char)family_transport;
    b->length = 16;
}

static void v2_append(struct v2_builder *b, const void *bytes, size_t length)
{
    memcpy(b->bytes + b->length, bytes, length);
    b->length += length;
}

static void v2_tlv(struct v2_builder *b, unsigned type, const void *value, size_t length)
{
    unsigned char head[3] = {(unsigned char)type, (unsigned char)(length >> 8),
                             (unsigned char)length};
    v2_append(b, head, 3);
    v2_append(b, value, length);
}

/* v2_inet - the INET address block: 192.0.2.1:40000 -> 198.51.100.2:25 */
static void v2_inet(struct v2_builder *b)
{
    unsigned char block[12] = {192, 0, 2, 1, 198, 51, 100, 2, 0x9C, 0x40, 0x00, 0x19};
    v2_append(b, block, sizeof block);
}

static void v2_finish(struct v2_builder *b)
{
    size_t payload = b->length - 16;
    b->bytes[14] = (unsigned char)(payload >> 8);
    b->bytes[15] = (unsigned char)payload;
}

static const char *address_text(const struct sockaddr_storage *sa, char *out, size_t size, int *port)
{
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, out, (socklen_t)size);
        *port = ntohs(in->sin_port);
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, out, (socklen_t)size);
        *port = ntohs(in6->sin6_port);
    } else {
        snprintf(out, size, "none");
        *port = -1;
    }
    return out;
}

/* every proper prefix of a valid header asks for more */
static void check_prefixes_incomplete(const unsigned char *bytes, size_t length)
{
    for (size_t n = 0; n < length; n++) {
        struct proxy_header h;
        const char *error = NULL;
        enum proxy_parse_result r = proxy_header_parse(bytes, n, &h, &error);
        if (r != PROXY_PARSE_INCOMPLETE)
            fail_msg("prefix of %zu of %zu bytes: got %d (%s), want INCOMPLETE", n, length, r,
                     error ? error : "-");
    }
}

struct v1_case {
    const char *line;
    int want;                 /* enum proxy_parse_result */
    const char *source;       /* "IP port" when DONE and not local */
    const char *destination;
    bool local;
};

static const struct v1_case v1_cases[] = {
    {"PROXY TCP4 192.0.2.1 198.51.100.2 40000 25\r\n", PROXY_PARSE_DONE, "192.0.2.1 40000",
     "198.51.100.2 25", false},
    {"PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n", PROXY_PARSE_DONE, "2001:db8::1 65535",
     "2001:db8::2 0", false},
    {"PROXY UNKNOWN\r\n", PROXY_PARSE_DONE, NULL, NULL, true},
    {"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", PROXY_PARSE_DONE, NULL,
     NULL, true},
    {"PROXY TCP4 192.0.2.1 198.51.100.2 40000 25\n", PROXY_PARSE_ERROR, NULL, NULL, false},
    {"PROXY TCP4 192.0.2.1 198.51.100.2 40000\r\n", PROXY_PARSE_ERROR, NULL, NULL, false},
    {"PROXY TCP4 192.0.2.1 198.51.100.2 40000 25 7\r\n", PROXY_PARSE_ERROR, NULL, NULL, false},
    {"PROXY TCP4  192.0.2.1 198.51.100.2 40000 25\r\n", PROXY_PARSE_ERROR, NULL, NULL, false},
    {"PROXY TCP4 2001:db8::1 198.51.100.2 40000 25\r\n", PROXY_PARSE_ERROR, NULL, NULL, false},
    {"PROXY TCP6 192.0.2.1 2001:db8::2 40000 25\r\n", PROXY_PARSE_ERROR, NULL, NULL, false},
    {"PROXY TCP4 192.0.2.1 198.51.100.2 65536 25\r\n", PROXY_PARSE_ERROR, NULL, NULL, false},
    {"PROXY TCP4 192.0.2.1 198.51.100.2 040000 25\r\n", PROXY_PARSE_ERROR, NULL, NULL, false},
    {"PROXY TCP4 192.0.2.1 198.51.100.2 -1 25\r\n", PROXY_PARSE_ERROR, NULL, NULL, false},
    {"PROXY TCP4 192.0.2.256 198.51.100.2 1 25\r\n", PROXY_PARSE_ERROR, NULL, NULL, false},
    {"PROXY UDP4 192.0.2.1 198.51.100.2 40000 25\r\n", PROXY_PARSE_ERROR, NULL, NULL, false},
    {"PROXY tcp4 192.0.2.1 198.51.100.2 40000 25\r\n", PROXY_PARSE_ERROR, NULL, NULL, false},
    {"PROXY TCP4 192.0.2.1\r198.51.100.2 40000 25\r\n", PROXY_PARSE_ERROR, NULL, NULL, false},
    {"EHLO client.example\r\n", PROXY_PARSE_ERROR, NULL, NULL, false},
    {"proxy TCP4 192.0.2.1 198.51.100.2 40000 25\r\n", PROXY_PARSE_ERROR, NULL, NULL, false},
};

static void test_v1_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof v1_cases / sizeof v1_cases[0]; i++) {
        const struct v1_case *c = &v1_cases[i];
        struct proxy_header h;
        const char *error = NULL;
        size_t length = strlen(c->line);
        enum proxy_parse_result r =
            proxy_header_parse((const unsigned char *)c->line, length, &h, &error);
        if ((int)r != c->want)
            fail_msg("%s: got %d (%s), want %d", c->line, r, error ? error : "-", c->want);
        if (r == PROXY_PARSE_ERROR && error == NULL)
            fail_msg("%s: an error without a reason", c->line);
        if (r != PROXY_PARSE_DONE)
            continue;
        assert_int_equal(h.version, 1);
        assert_int_equal(h.length, length);
        assert_int_equal(h.local, c->local);
        if (c->local)
            continue;
        char ip[64], text[80];
        int port;
        address_text(&h.source, ip, sizeof ip, &port);
        snprintf(text, sizeof text, "%s %d", ip, port);
        if (strcmp(text, c->source) != 0)
            fail_msg("%s: source got %s, want %s", c->line, text, c->source);
        address_text(&h.destination, ip, sizeof ip, &port);
        snprintf(text, sizeof text, "%s %d", ip, port);
        if (strcmp(text, c->destination) != 0)
            fail_msg("%s: destination got %s, want %s", c->line, text, c->destination);
        check_prefixes_incomplete((const unsigned char *)c->line, length);
    }
}

/* the header's length says where the client's own bytes start */
static void test_v1_followed_by_smtp(void **state)
{
    (void)state;
    const char *text = "PROXY TCP4 192.0.2.1 198.51.100.2 40000 25\r\nEHLO x\r\n";
    struct proxy_header h;
    const char *error;
    assert_int_equal(proxy_header_parse((const unsigned char *)text, strlen(text), &h, &error),
                     PROXY_PARSE_DONE);
    assert_string_equal(text + h.length, "EHLO x\r\n");
}

static void test_v1_too_long(void **state)
{
    (void)state;
    char line[200];
    memset(line, '1', sizeof line);
    memcpy(line, "PROXY TCP4 ", 11);
    struct proxy_header h;
    const char *error = NULL;
    assert_int_equal(proxy_header_parse((const unsigned char *)line, PROXY_V1_MAX - 1, &h, &error),
                     PROXY_PARSE_INCOMPLETE);
    assert_int_equal(proxy_header_parse((const unsigned char *)line, PROXY_V1_MAX, &h, &error),
                     PROXY_PARSE_ERROR);
    assert_string_equal(error, "v1 line too long");
}

static void test_v2_inet_proxy(void **state)
{
    (void)state;
    struct v2_builder b;
    v2_start(&b, 0x1, 0x11);
    v2_inet(&b);
    v2_finish(&b);
    struct proxy_header h;
    const char *error = NULL;
    assert_int_equal(proxy_header_parse(b.bytes, b.length, &h, &error), PROXY_PARSE_DONE);
    assert_int_equal(h.version, 2);
    assert_int_equal(h.length, 28);
    assert_false(h.local);
    assert_false(h.tls);
    char ip[64];
    int port;
    assert_string_equal(address_text(&h.source, ip, sizeof ip, &port), "192.0.2.1");
    assert_int_equal(port, 40000);
    assert_string_equal(address_text(&h.destination, ip, sizeof ip, &port), "198.51.100.2");
    assert_int_equal(port, 25);
    check_prefixes_incomplete(b.bytes, b.length);
}

static void test_v2_inet6_with_tls(void **state)
{
    (void)state;
    struct v2_builder b;
    v2_start(&b, 0x1, 0x21);
    unsigned char block[36] = {0};
    inet_pton(AF_INET6, "2001:db8::7", block);
    inet_pton(AF_INET6, "2001:db8::25", block + 16);
    block[32] = 0x30; /* port 12345 */
    block[33] = 0x39;
    block[35] = 25;
    v2_append(&b, block, sizeof block);
    v2_tlv(&b, 0x02, "mx.example.org", 14);
    /* SSL: client SSL|CERT_CONN, verify 0, sub-TLVs version, cipher, CN */
    unsigned char ssl[128];
    size_t n = 0;
    ssl[n++] = 0x01 | 0x02;
    ssl[n++] = 0;
    ssl[n++] = 0;
    ssl[n++] = 0;
    ssl[n++] = 0;
    const char *subs[3][2] = {{"\x21", "TLSv1.3"}, {"\x23", "TLS_AES_256_GCM_SHA384"},
                              {"\x22", "client one"}};
    for (size_t i = 0; i < 3; i++) {
        size_t length = strlen(subs[i][1]);
        ssl[n++] = (unsigned char)subs[i][0][0];
        ssl[n++] = 0;
        ssl[n++] = (unsigned char)length;
        memcpy(ssl + n, subs[i][1], length);
        n += length;
    }
    v2_tlv(&b, 0x20, ssl, n);
    v2_tlv(&b, 0xE0, "custom", 6); /* unknown: skipped */
    v2_tlv(&b, 0x04, "", 0);       /* NOOP */
    v2_finish(&b);
    struct proxy_header h;
    const char *error = NULL;
    assert_int_equal(proxy_header_parse(b.bytes, b.length, &h, &error), PROXY_PARSE_DONE);
    char ip[64];
    int port;
    assert_string_equal(address_text(&h.source, ip, sizeof ip, &port), "2001:db8::7");
    assert_int_equal(port, 12345);
    assert_true(h.tls);
    assert_true(h.client_certificate);
    assert_true(h.certificate_verified);
    assert_string_equal(h.sni, "mx.example.org");
    assert_string_equal(h.tls_version, "TLSv1.3");
    assert_string_equal(h.tls_cipher, "TLS_AES_256_GCM_SHA384");
    assert_string_equal(h.tls_cn, "client one");
    check_prefixes_incomplete(b.bytes, b.length);
}

/* a fact with a byte that could break a log line or a header is dropped, not the connection */
static void test_v2_unprintable_fact_dropped(void **state)
{
    (void)state;
    struct v2_builder b;
    v2_start(&b, 0x1, 0x11);
    v2_inet(&b);
    v2_tlv(&b, 0x02, "mx.example\"org", 14);
    v2_finish(&b);
    struct proxy_header h;
    const char *error = NULL;
    assert_int_equal(proxy_header_parse(b.bytes, b.length, &h, &error), PROXY_PARSE_DONE);
    assert_string_equal(h.sni, "");
}

static void test_v2_local(void **state)
{
    (void)state;
    struct v2_builder b;
    v2_start(&b, 0x0, 0x00);
    v2_finish(&b);
    struct proxy_header h;
    const char *error = NULL;
    assert_int_equal(proxy_header_parse(b.bytes, b.length, &h, &error), PROXY_PARSE_DONE);
    assert_true(h.local);
    assert_int_equal(h.length, 16);
    /* LOCAL with an address block: the block is discarded */
    v2_start(&b, 0x0, 0x11);
    v2_inet(&b);
    v2_finish(&b);
    assert_int_equal(proxy_header_parse(b.bytes, b.length, &h, &error), PROXY_PARSE_DONE);
    assert_true(h.local);
    assert_int_equal(h.length, 28);
}

static void test_v2_crc32c(void **state)
{
    (void)state;
    assert_int_equal(proxy_crc32c((const unsigned char *)"123456789", 9), 0xE3069283u);
    struct v2_builder b;
    v2_start(&b, 0x1, 0x11);
    v2_inet(&b);
    size_t at = b.length + 3;
    v2_tlv(&b, 0x03, "\0\0\0\0", 4);
    v2_finish(&b);
    unsigned crc = proxy_crc32c(b.bytes, b.length);
    b.bytes[at] = (unsigned char)(crc >> 24);
    b.bytes[at + 1] = (unsigned char)(crc >> 16);
    b.bytes[at + 2] = (unsigned char)(crc >> 8);
    b.bytes[at + 3] = (unsigned char)crc;
    struct proxy_header h;
    const char *error = NULL;
    assert_int_equal(proxy_header_parse(b.bytes, b.length, &h, &error), PROXY_PARSE_DONE);
    b.bytes[at + 3] ^= 1;
    assert_int_equal(proxy_header_parse(b.bytes, b.length, &h, &error), PROXY_PARSE_ERROR);
    assert_string_equal(error, "v2 CRC32C does not match");
}

struct v2_bad_case {
    const char *what;
    unsigned version_command;
    unsigned family_transport;
    size_t block;         /* address bytes appended */
    const unsigned char *tlv;
    size_t tlv_length;
    const char *error;
};

static void test_v2_errors(void **state)
{
    (void)state;
    static const unsigned char tlv_past[] = {0x02, 0x00, 0x10, 'a', 'b'};
    static const unsigned char tlv_short[] = {0x02, 0x00};
    static const unsigned char ssl_bad[] = {0x20, 0x00, 0x08, 0x01, 0, 0, 0, 0, 0x21, 0x00, 0x09};
    static const struct v2_bad_case cases[] = {
        {"version 1", 0x11, 0x11, 12, NULL, 0, "v2 version is not 2"},
        {"command 2", 0x22, 0x11, 12, NULL, 0, "v2 command is not LOCAL or PROXY"},
        {"unix family", 0x21, 0x31, 216, NULL, 0, "v2 family is not INET or INET6"},
        {"datagram", 0x21, 0x12, 12, NULL, 0, "v2 transport is not STREAM"},
        {"short inet block", 0x21, 0x11, 8, NULL, 0, "v2 address block too short"},
        {"short inet6 block", 0x21, 0x21, 12, NULL, 0, "v2 address block too short"},
        {"TLV past the end", 0x21, 0x11, 12, tlv_past, sizeof tlv_past, "v2 TLV runs past the header"},
        {"truncated TLV head", 0x21, 0x11, 12, tlv_short, sizeof tlv_short,
         "v2 TLV runs past the header"},
        {"SSL sub-TLV past its TLV", 0x21, 0x11, 12, ssl_bad, sizeof ssl_bad,
         "v2 SSL TLV is malformed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct v2_bad_case *c = &cases[i];
        struct v2_builder b;
        memcpy(b.bytes, v2_signature, 12);
        b.bytes[12] = (unsigned char)c->version_command;
        b.bytes[13] = (unsigned char)c->family_transport;
        b.length = 16;
        unsigned char zeros[256] = {0};
        v2_append(&b, zeros, c->block);
        if (c->tlv != NULL)
            v2_append(&b, c->tlv, c->tlv_length);
        v2_finish(&b);
        struct proxy_header h;
        const char *error = NULL;
        enum proxy_parse_result r = proxy_header_parse(b.bytes, b.length, &h, &error);
        if (r != PROXY_PARSE_ERROR || error == NULL || strcmp(error, c->error) != 0)
            fail_msg("%s: got %d (%s), want ERROR (%s)", c->what, r, error ? error : "-", c->error);
    }
}

static void test_v2_bad_signature_and_length(void **state)
{
    (void)state;
    unsigned char bytes[32];
    memcpy(bytes, v2_signature, 12);
    bytes[7] = 'X'; /* "QUIT" -> "XUIT" */
    struct proxy_header h;
    const char *error = NULL;
    assert_int_equal(proxy_header_parse(bytes, 8, &h, &error), PROXY_PARSE_ERROR);
    assert_string_equal(error, "bad v2 signature");
    /* a payload over the bound is refused as soon as the length is known */
    memcpy(bytes, v2_signature, 12);
    bytes[12] = 0x21;
    bytes[13] = 0x11;
    bytes[14] = (unsigned char)((PROXY_V2_PAYLOAD_MAX + 1) >> 8);
    bytes[15] = (unsigned char)(PROXY_V2_PAYLOAD_MAX + 1);
    assert_int_equal(proxy_header_parse(bytes, 16, &h, &error), PROXY_PARSE_ERROR);
    assert_string_equal(error, "v2 header too long");
    /* at the bound it waits for the rest */
    bytes[14] = (unsigned char)(PROXY_V2_PAYLOAD_MAX >> 8);
    bytes[15] = (unsigned char)PROXY_V2_PAYLOAD_MAX;
    assert_int_equal(proxy_header_parse(bytes, 16, &h, &error), PROXY_PARSE_INCOMPLETE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_table),
        cmocka_unit_test(test_v1_followed_by_smtp),
        cmocka_unit_test(test_v1_too_long),
        cmocka_unit_test(test_v2_inet_proxy),
        cmocka_unit_test(test_v2_inet6_with_tls),
        cmocka_unit_test(test_v2_unprintable_fact_dropped),
        cmocka_unit_test(test_v2_local),
        cmocka_unit_test(test_v2_crc32c),
        cmocka_unit_test(test_v2_errors),
        cmocka_unit_test(test_v2_bad_signature_and_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
