/*
 * test_dns.c - unit tests of gateway/dns_packet.c and gateway/dns.c: names and reverse names,
 * query encoding, reply decoding (every record type, CNAME chains, NXDOMAIN and NODATA with
 * their negative TTL, server failures, truncation, replies that are not ours, malformed
 * packets), the dns_servers and resolv.conf parsers, the cache (TTL, expiry, eviction, what is
 * never cached), and the resolver against a fake DNS server on loopback (a thread serving UDP
 * and TCP): asynchronous and blocking lookups, the cache, TCP after truncation, a silent server
 * followed by a good one, a spoofed reply ignored, SERVFAIL, the refusal to block on the loop,
 * and lookups of one question at once sharing one query (its asker or a follower leaving).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "config.h"
#include "clock.h"
#include "dns.h"
#include "dns_packet.h"

/* ---------------------------------------------------------------- building replies */

/* A reply under construction. */
struct packet {
    unsigned char bytes[8192];
    size_t length;
};

static void put16(struct packet *p, unsigned value)
{
    p->bytes[p->length++] = (unsigned char)(value >> 8);
    p->bytes[p->length++] = (unsigned char)value;
}

static void put32(struct packet *p, uint32_t value)
{
    put16(p, value >> 16);
    put16(p, value & 0xffff);
}

static void put_name(struct packet *p, const char *name)
{
    unsigned char wire[DNS_WIRE_NAME_MAX];
    int n = dns_name_wire(name, wire);
    assert_true(n > 0);
    memcpy(p->bytes + p->length, wire, (size_t)n);
    p->length += (size_t)n;
}

/* reply_start - header and question; counts filled in by the caller later */
static void reply_start(struct packet *p, unsigned id, unsigned flags, const char *name,
                        unsigned type)
{
    p->length = 0;
    put16(p, id);
    put16(p, flags);
    put16(p, 1);
    put16(p, 0);
    put16(p, 0);
    put16(p, 0);
    put_name(p, name);
    put16(p, type);
    put16(p, 1);
}

static void set_counts(struct packet *p, unsigned answers, unsigned authorities)
{
    p->bytes[6] = (unsigned char)(answers >> 8);
    p->bytes[7] = (unsigned char)answers;
    p->bytes[8] = (unsigned char)(authorities >> 8);
    p->bytes[9] = (unsigned char)authorities;
}

/* rr_start - owner as a pointer to the question name (offset 12) or spelled out */
static size_t rr_start(struct packet *p, const char *owner, unsigned type, uint32_t ttl)
{
    if (owner == NULL) {
        put16(p, 0xc00c);
    } else {
        put_name(p, owner);
    }
    put16(p, type);
    put16(p, 1);
    put32(p, ttl);
    size_t rdlength_at = p->length;
    put16(p, 0);
    return rdlength_at;
}

static void rr_end(struct packet *p, size_t rdlength_at)
{
    size_t rdlength = p->length - rdlength_at - 2;
    p->bytes[rdlength_at] = (unsigned char)(rdlength >> 8);
    p->bytes[rdlength_at + 1] = (unsigned char)rdlength;
}

static void rr_txt(struct packet *p, const char *owner, uint32_t ttl, const char *const *strings)
{
    size_t at = rr_start(p, owner, PORTER_DNS_TXT, ttl);
    for (size_t i = 0; strings[i] != NULL; i++) {
        size_t n = strlen(strings[i]);
        p->bytes[p->length++] = (unsigned char)n;
        memcpy(p->bytes + p->length, strings[i], n);
        p->length += n;
    }
    rr_end(p, at);
}

static void rr_a(struct packet *p, const char *owner, uint32_t ttl, const char *address)
{
    size_t at = rr_start(p, owner, PORTER_DNS_A, ttl);
    assert_int_equal(inet_pton(AF_INET, address, p->bytes + p->length), 1);
    p->length += 4;
    rr_end(p, at);
}

static void rr_name(struct packet *p, const char *owner, unsigned type, uint32_t ttl,
                    int preference, const char *target)
{
    size_t at = rr_start(p, owner, type, ttl);
    if (preference >= 0)
        put16(p, (unsigned)preference);
    put_name(p, target);
    rr_end(p, at);
}

static void rr_soa(struct packet *p, const char *owner, uint32_t ttl, uint32_t minimum)
{
    size_t at = rr_start(p, owner, 6, ttl);
    put_name(p, "ns.example");
    put_name(p, "hostmaster.example");
    put32(p, 1);
    put32(p, 3600);
    put32(p, 600);
    put32(p, 86400);
    put32(p, minimum);
    rr_end(p, at);
}

/* ---------------------------------------------------------------- names */

static void test_name_wire(void **state)
{
    static const struct {
        const char *name;
        int want; /* wire length, or -1 */
    } cases[] = {
        {"example.org", 13}, {"example.org.", 13}, {"a", 3}, {"_dmarc.example.org", 20},
        {"", -1}, {".", -1}, {"a..b", -1}, {".a", -1}, {"a b.example", -1},
        {"tab\t.example", -1}, {"x\x80.example", -1},
        {"a23456789012345678901234567890123456789012345678901234567890123.x", 67},
        {"a234567890123456789012345678901234567890123456789012345678901234.x", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char wire[DNS_WIRE_NAME_MAX];
        int got = dns_name_wire(cases[i].name, wire);
        if (got != cases[i].want)
            fail_msg("dns_name_wire(\"%s\"): got %d, want %d", cases[i].name, got, cases[i].want);
    }
    /* 253 characters is the most, 254 too many */
    char name[300];
    memset(name, 'a', sizeof name);
    for (size_t i = 63; i < 253; i += 64)
        name[i] = '.';
    name[253] = '\0';
    unsigned char wire[DNS_WIRE_NAME_MAX];
    assert_int_equal(dns_name_wire(name, wire), 255);
    name[253] = 'a';
    name[254] = '\0';
    assert_int_equal(dns_name_wire(name, wire), -1);
}

static void test_reverse_name(void **state)
{
    static const struct {
        const char *address;
        const char *want;
    } cases[] = {
        {"192.0.2.1", "1.2.0.192.in-addr.arpa"},
        {"2001:db8::1", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"},
        {"example.org", ""},
        {"192.0.2", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[128];
        int rc = dns_reverse_name(cases[i].address, out, sizeof out);
        if (strcmp(out, cases[i].want) != 0 || (rc == 0) != (cases[i].want[0] != '\0'))
            fail_msg("dns_reverse_name(%s): got \"%s\" (%d), want \"%s\"", cases[i].address, out,
                     rc, cases[i].want);
    }
    char small[10];
    assert_int_equal(dns_reverse_name("192.0.2.1", small, sizeof small), -1);
}

/* ---------------------------------------------------------------- queries and replies */

static void test_query_encode(void **state)
{
    unsigned char out[DNS_QUERY_MAX];
    ssize_t n = dns_query_encode(0x1234, PORTER_DNS_TXT, "example.org", true, out, sizeof out);
    assert_int_equal(n, 12 + 13 + 4 + 11);
    static const unsigned char head[] = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1};
    assert_memory_equal(out, head, sizeof head);
    assert_memory_equal(out + 12, "\x07" "example\x03" "org\x00\x00\x10\x00\x01", 17);
    assert_int_equal(out[29], 0);    /* OPT owner: root */
    assert_int_equal(out[31], 41);   /* OPT */
    assert_int_equal((out[32] << 8) | out[33], DNS_EDNS_PAYLOAD);
    n = dns_query_encode(1, PORTER_DNS_A, "example.org", false, out, sizeof out);
    assert_int_equal(n, 12 + 13 + 4);
    assert_int_equal(dns_query_encode(1, PORTER_DNS_A, "bad name", false, out, sizeof out), -1);
    assert_int_equal(dns_query_encode(1, PORTER_DNS_A, "example.org", true, out, 20), -1);
}

/* decode - dns_reply_decode for id 7; the verdict, the answer in *answer */
static enum dns_reply_verdict decode(const struct packet *p, int type, const char *name,
                                     struct porter_dns_answer **answer)
{
    return dns_reply_decode(p->bytes, p->length, 7, type, name, answer);
}

static void test_decode_records(void **state)
{
    struct packet p;
    struct porter_dns_answer *a = NULL;

    /* TXT with two character-strings, and a second record */
    reply_start(&p, 7, 0x8180, "example.org", PORTER_DNS_TXT);
    rr_txt(&p, NULL, 300, (const char *const[]){"v=spf1 ", "-all", NULL});
    rr_txt(&p, NULL, 100, (const char *const[]){"other", NULL});
    set_counts(&p, 2, 0);
    assert_int_equal(decode(&p, PORTER_DNS_TXT, "EXAMPLE.org.", &a), DNS_REPLY_ANSWER);
    assert_int_equal(a->status, PORTER_DNS_OK);
    assert_int_equal(a->count, 2);
    assert_string_equal(a->records[0].text, "v=spf1 -all");
    assert_int_equal(a->records[0].length, 11);
    assert_string_equal(a->records[1].text, "other");
    assert_int_equal(a->ttl, 100);
    assert_int_equal(a->packet_length, p.length);
    assert_memory_equal(a->packet, p.bytes, p.length);
    assert_string_equal(a->name, "EXAMPLE.org.");
    struct porter_dns_answer *copy = dns_answer_copy(a);
    assert_string_equal(copy->records[0].text, "v=spf1 -all");
    assert_memory_equal(copy->packet, p.bytes, p.length);
    dns_answer_free(copy);
    dns_answer_free(a);

    /* A, MX (with compression in the data), AAAA, PTR */
    reply_start(&p, 7, 0x8180, "example.org", PORTER_DNS_A);
    rr_a(&p, NULL, 60, "192.0.2.1");
    rr_a(&p, NULL, 60, "192.0.2.2");
    set_counts(&p, 2, 0);
    assert_int_equal(decode(&p, PORTER_DNS_A, "example.org", &a), DNS_REPLY_ANSWER);
    assert_int_equal(a->count, 2);
    assert_string_equal(a->records[1].text, "192.0.2.2");
    dns_answer_free(a);

    reply_start(&p, 7, 0x8180, "example.org", PORTER_DNS_MX);
    size_t at = rr_start(&p, NULL, PORTER_DNS_MX, 3600);
    put16(&p, 10);
    p.bytes[p.length++] = 2;
    memcpy(p.bytes + p.length, "mx", 2);
    p.length += 2;
    put16(&p, 0xc00c); /* mx.example.org, the suffix compressed */
    rr_end(&p, at);
    set_counts(&p, 1, 0);
    assert_int_equal(decode(&p, PORTER_DNS_MX, "example.org", &a), DNS_REPLY_ANSWER);
    assert_string_equal(a->records[0].text, "mx.example.org");
    assert_int_equal(a->records[0].preference, 10);
    dns_answer_free(a);

    reply_start(&p, 7, 0x8180, "example.org", PORTER_DNS_AAAA);
    at = rr_start(&p, NULL, PORTER_DNS_AAAA, 60);
    inet_pton(AF_INET6, "2001:db8::25", p.bytes + p.length);
    p.length += 16;
    rr_end(&p, at);
    set_counts(&p, 1, 0);
    assert_int_equal(decode(&p, PORTER_DNS_AAAA, "example.org", &a), DNS_REPLY_ANSWER);
    assert_string_equal(a->records[0].text, "2001:db8::25");
    dns_answer_free(a);

    reply_start(&p, 7, 0x8180, "1.2.0.192.in-addr.arpa", PORTER_DNS_PTR);
    rr_name(&p, NULL, PORTER_DNS_PTR, 60, -1, "mail.example.org");
    set_counts(&p, 1, 0);
    assert_int_equal(decode(&p, PORTER_DNS_PTR, "1.2.0.192.in-addr.arpa", &a), DNS_REPLY_ANSWER);
    assert_string_equal(a->records[0].text, "mail.example.org");
    dns_answer_free(a);
}

static void test_decode_cname_and_negative(void **state)
{
    struct packet p;
    struct porter_dns_answer *a = NULL;

    /* a chain of two CNAMEs, then the TXT; the TTL is the least of all */
    reply_start(&p, 7, 0x8180, "a.example", PORTER_DNS_TXT);
    rr_name(&p, NULL, PORTER_DNS_CNAME, 50, -1, "b.example");
    rr_name(&p, "b.example", PORTER_DNS_CNAME, 500, -1, "c.example");
    rr_txt(&p, "c.example", 300, (const char *const[]){"found", NULL});
    rr_txt(&p, "z.example", 300, (const char *const[]){"not ours", NULL});
    set_counts(&p, 4, 0);
    assert_int_equal(decode(&p, PORTER_DNS_TXT, "a.example", &a), DNS_REPLY_ANSWER);
    assert_int_equal(a->status, PORTER_DNS_OK);
    assert_int_equal(a->count, 1);
    assert_string_equal(a->records[0].text, "found");
    assert_int_equal(a->ttl, 50);
    dns_answer_free(a);

    /* a CNAME whose target has no TXT: NODATA */
    reply_start(&p, 7, 0x8180, "a.example", PORTER_DNS_TXT);
    rr_name(&p, NULL, PORTER_DNS_CNAME, 50, -1, "b.example");
    set_counts(&p, 1, 0);
    assert_int_equal(decode(&p, PORTER_DNS_TXT, "a.example", &a), DNS_REPLY_ANSWER);
    assert_int_equal(a->status, PORTER_DNS_NODATA);
    assert_int_equal(a->ttl, 0);
    dns_answer_free(a);

    /* NXDOMAIN with an SOA: min(SOA TTL, MINIMUM) */
    reply_start(&p, 7, 0x8183, "nx.example", PORTER_DNS_TXT);
    rr_soa(&p, "example", 900, 120);
    set_counts(&p, 0, 1);
    assert_int_equal(decode(&p, PORTER_DNS_TXT, "nx.example", &a), DNS_REPLY_ANSWER);
    assert_int_equal(a->status, PORTER_DNS_NXDOMAIN);
    assert_int_equal(a->ttl, 120);
    assert_int_equal(a->count, 0);
    dns_answer_free(a);

    /* NODATA with an SOA whose TTL is smaller */
    reply_start(&p, 7, 0x8180, "example", PORTER_DNS_MX);
    rr_soa(&p, "example", 30, 3600);
    set_counts(&p, 0, 1);
    assert_int_equal(decode(&p, PORTER_DNS_MX, "example", &a), DNS_REPLY_ANSWER);
    assert_int_equal(a->status, PORTER_DNS_NODATA);
    assert_int_equal(a->ttl, 30);
    dns_answer_free(a);

    /* a CNAME loop longer than the limit is malformed */
    reply_start(&p, 7, 0x8180, "l0.example", PORTER_DNS_TXT);
    char owner[32], target[32];
    for (int i = 0; i <= DNS_CNAME_MAX; i++) {
        snprintf(owner, sizeof owner, "l%d.example", i);
        snprintf(target, sizeof target, "l%d.example", i + 1);
        rr_name(&p, owner, PORTER_DNS_CNAME, 60, -1, target);
    }
    set_counts(&p, DNS_CNAME_MAX + 1, 0);
    assert_int_equal(decode(&p, PORTER_DNS_TXT, "l0.example", &a), DNS_REPLY_MALFORMED);
    assert_null(a);
}

static void test_decode_not_an_answer(void **state)
{
    static const struct {
        const char *what;
        unsigned id, flags;
        const char *question;
        unsigned type;
        enum dns_reply_verdict want;
        int status; /* of the answer, -1 when none */
    } cases[] = {
        {"wrong id", 8, 0x8180, "example.org", PORTER_DNS_TXT, DNS_REPLY_MISMATCH, -1},
        {"not a response", 7, 0x0180, "example.org", PORTER_DNS_TXT, DNS_REPLY_MISMATCH, -1},
        {"other name", 7, 0x8180, "example.com", PORTER_DNS_TXT, DNS_REPLY_MISMATCH, -1},
        {"other type", 7, 0x8180, "example.org", PORTER_DNS_A, DNS_REPLY_MISMATCH, -1},
        {"truncated", 7, 0x8380, "example.org", PORTER_DNS_TXT, DNS_REPLY_TRUNCATED, -1},
        {"servfail", 7, 0x8182, "example.org", PORTER_DNS_TXT, DNS_REPLY_SERVER_FAILURE,
         PORTER_DNS_TEMPFAIL},
        {"refused", 7, 0x8185, "example.org", PORTER_DNS_TXT, DNS_REPLY_SERVER_FAILURE,
         PORTER_DNS_TEMPFAIL},
        {"case differs", 7, 0x8180, "ExAmPlE.ORG", PORTER_DNS_TXT, DNS_REPLY_ANSWER,
         PORTER_DNS_NODATA},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct packet p;
        struct porter_dns_answer *a = NULL;
        reply_start(&p, cases[i].id, cases[i].flags, cases[i].question, cases[i].type);
        enum dns_reply_verdict got = decode(&p, PORTER_DNS_TXT, "example.org", &a);
        int status = a != NULL ? a->status : -1;
        if (got != cases[i].want || status != cases[i].status)
            fail_msg("%s: got %s/%d, want %s/%d", cases[i].what, dns_reply_verdict_name(got),
                     status, dns_reply_verdict_name(cases[i].want), cases[i].status);
        dns_answer_free(a);
    }
    /* FORMERR without a question is still ours */
    struct packet p = {.length = 12};
    memset(p.bytes, 0, 12);
    p.bytes[1] = 7;
    p.bytes[2] = 0x81;
    p.bytes[3] = 0x81;
    struct porter_dns_answer *a = NULL;
    assert_int_equal(decode(&p, PORTER_DNS_TXT, "example.org", &a), DNS_REPLY_SERVER_FAILURE);
    assert_int_equal(a->status, PORTER_DNS_TEMPFAIL);
    dns_answer_free(a);
    /* shorter than a header */
    assert_int_equal(dns_reply_decode(p.bytes, 11, 7, PORTER_DNS_TXT, "example.org", &a),
                     DNS_REPLY_MISMATCH);
}

static void test_decode_malformed(void **state)
{
    struct packet p;
    struct porter_dns_answer *a = NULL;

    /* an answer count beyond the packet */
    reply_start(&p, 7, 0x8180, "example.org", PORTER_DNS_TXT);
    set_counts(&p, 3, 0);
    assert_int_equal(decode(&p, PORTER_DNS_TXT, "example.org", &a), DNS_REPLY_MALFORMED);

    /* rdlength beyond the packet */
    reply_start(&p, 7, 0x8180, "example.org", PORTER_DNS_TXT);
    rr_txt(&p, NULL, 60, (const char *const[]){"abc", NULL});
    set_counts(&p, 1, 0);
    p.bytes[p.length - 5] = 0x40;
    assert_int_equal(decode(&p, PORTER_DNS_TXT, "example.org", &a), DNS_REPLY_MALFORMED);

    /* a TXT string longer than its record */
    reply_start(&p, 7, 0x8180, "example.org", PORTER_DNS_TXT);
    rr_txt(&p, NULL, 60, (const char *const[]){"abc", NULL});
    set_counts(&p, 1, 0);
    p.bytes[p.length - 4] = 9;
    assert_int_equal(decode(&p, PORTER_DNS_TXT, "example.org", &a), DNS_REPLY_MALFORMED);

    /* a compression pointer that points forward (a loop) */
    reply_start(&p, 7, 0x8180, "example.org", PORTER_DNS_TXT);
    size_t here = p.length;
    put16(&p, 0xc000 | (unsigned)here);
    put16(&p, PORTER_DNS_TXT);
    put16(&p, 1);
    put32(&p, 60);
    put16(&p, 2);
    put16(&p, 0x0161);
    set_counts(&p, 1, 0);
    assert_int_equal(decode(&p, PORTER_DNS_TXT, "example.org", &a), DNS_REPLY_MALFORMED);

    /* an A record of 5 bytes */
    reply_start(&p, 7, 0x8180, "example.org", PORTER_DNS_A);
    size_t at = rr_start(&p, NULL, PORTER_DNS_A, 60);
    memcpy(p.bytes + p.length, "\1\2\3\4\5", 5);
    p.length += 5;
    rr_end(&p, at);
    set_counts(&p, 1, 0);
    assert_int_equal(decode(&p, PORTER_DNS_A, "example.org", &a), DNS_REPLY_MALFORMED);

    /* a PTR whose name runs past its data */
    reply_start(&p, 7, 0x8180, "example.org", PORTER_DNS_PTR);
    at = rr_start(&p, NULL, PORTER_DNS_PTR, 60);
    put_name(&p, "host.example");
    rr_end(&p, at);
    p.bytes[at + 1] = 3;
    set_counts(&p, 1, 0);
    assert_int_equal(decode(&p, PORTER_DNS_PTR, "example.org", &a), DNS_REPLY_MALFORMED);
    assert_null(a);
}

/* ---------------------------------------------------------------- settings */

static void test_servers_parse(void **state)
{
    static const struct {
        const char *text;
        size_t count;       /* 0: an error */
        const char *first;  /* dns_server_text of the first */
        const char *last;
    } cases[] = {
        {"127.0.0.1", 1, "127.0.0.1:53", "127.0.0.1:53"},
        {"127.0.0.1:5353", 1, "127.0.0.1:5353", "127.0.0.1:5353"},
        {"192.0.2.1, 192.0.2.2:54 ::1 [2001:db8::2]:5300 [::2]", 5, "192.0.2.1:53", "[::2]:53"},
        {"", 0, NULL, NULL},
        {" , ", 0, NULL, NULL},
        {"dns.example", 0, NULL, NULL},
        {"127.0.0.1:0", 0, NULL, NULL},
        {"127.0.0.1:70000", 0, NULL, NULL},
        {"[::1", 0, NULL, NULL},
        {"[::1]x", 0, NULL, NULL},
        {"1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4 1.1.1.5 1.1.1.6 1.1.1.7 1.1.1.8 1.1.1.9", 0, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sockaddr_storage servers[CONFIG_DNS_SERVERS_MAX];
        size_t count = 0;
        const char *error = config_dns_servers_parse(cases[i].text, servers,
                                                     CONFIG_DNS_SERVERS_MAX, &count);
        if (cases[i].count == 0) {
            if (error == NULL)
                fail_msg("\"%s\": got no error, want one", cases[i].text);
            continue;
        }
        if (error != NULL || count != cases[i].count)
            fail_msg("\"%s\": got %zu (%s), want %zu", cases[i].text, count, error ? error : "",
                     cases[i].count);
        char first[64], last[64];
        dns_server_text(&servers[0], first, sizeof first);
        dns_server_text(&servers[count - 1], last, sizeof last);
        if (strcmp(first, cases[i].first) != 0 || strcmp(last, cases[i].last) != 0)
            fail_msg("\"%s\": got %s .. %s, want %s .. %s", cases[i].text, first, last,
                     cases[i].first, cases[i].last);
    }
    /* through porter.conf */
    struct config_error_list errors = {0};
    const char *text = "dns_servers = 127.0.0.1:5300\ndns_timeout = 0.5\ndns_retries = 0\n"
                       "dns_cache_size = 5\n";
    struct porter_config *c = config_parse("/tmp", "porter.conf", text, strlen(text), &errors);
    assert_non_null(c);
    assert_string_equal(c->dns_servers, "127.0.0.1:5300");
    assert_true(c->dns_timeout == 0.5);
    assert_int_equal(c->dns_retries, 0);
    assert_int_equal(c->dns_cache_size, 5);
    config_free(c);
    text = "dns_servers = localhost\n";
    c = config_parse("/tmp", "porter.conf", text, strlen(text), &errors);
    assert_null(c);
    assert_int_equal(errors.count, 1);
    if (strstr(errors.messages[0], "porter.conf:1: dns_servers: 'localhost'") == NULL)
        fail_msg("got \"%s\", want the file, line, setting and value", errors.messages[0]);
    config_errors_clear(&errors);
}

static void test_resolv_conf(void **state)
{
    const char *text = "# comment\nsearch example.org\nnameserver 192.0.2.53\n"
                       "nameserver\tfe80::1%eth0\nnameserver 2001:db8::53\r\noptions ndots:2\n"
                       "nameserver not-an-address\nnameserver 192.0.2.54";
    struct sockaddr_storage servers[3];
    size_t count = dns_resolv_conf_parse(text, strlen(text), servers, 3);
    assert_int_equal(count, 3);
    char out[64];
    dns_server_text(&servers[0], out, sizeof out);
    assert_string_equal(out, "192.0.2.53:53");
    dns_server_text(&servers[1], out, sizeof out);
    assert_string_equal(out, "[2001:db8::53]:53");
    dns_server_text(&servers[2], out, sizeof out);
    assert_string_equal(out, "192.0.2.54:53");
    assert_int_equal(dns_resolv_conf_parse(text, strlen(text), servers, 1), 1);
    assert_int_equal(dns_resolv_conf_parse("", 0, servers, 3), 0);
}

/* ---------------------------------------------------------------- the cache */

static struct porter_dns_answer *answer_of(int status, int type, const char *name, unsigned ttl)
{
    struct porter_dns_record record = {.text = "x", .length = 1, .ttl = ttl};
    return dns_answer_new(status, type, name, &record, status == PORTER_DNS_OK, ttl, NULL, 0);
}

static void test_cache(void **state)
{
    struct dns_cache *c = dns_cache_new(3);
    struct porter_dns_answer *a = answer_of(PORTER_DNS_OK, PORTER_DNS_TXT, "Example.ORG.", 100);
    dns_cache_put(c, a, 1000);
    dns_answer_free(a);
    struct porter_dns_answer *got = dns_cache_get(c, PORTER_DNS_TXT, "example.org", 1040);
    assert_non_null(got);
    assert_int_equal(got->ttl, 60);
    assert_string_equal(got->records[0].text, "x");
    dns_answer_free(got);
    assert_null(dns_cache_get(c, PORTER_DNS_A, "example.org", 1040));
    assert_null(dns_cache_get(c, PORTER_DNS_TXT, "example.org", 1100)); /* expired, removed */
    assert_int_equal(dns_cache_count(c), 0);

    /* not cached: TTL 0, temporary failures, errors */
    int statuses[] = {PORTER_DNS_TEMPFAIL, PORTER_DNS_ERROR};
    for (size_t i = 0; i < 2; i++) {
        a = answer_of(statuses[i], PORTER_DNS_TXT, "fail.example", 100);
        dns_cache_put(c, a, 1000);
        dns_answer_free(a);
    }
    a = answer_of(PORTER_DNS_OK, PORTER_DNS_TXT, "zero.example", 0);
    dns_cache_put(c, a, 1000);
    dns_answer_free(a);
    assert_int_equal(dns_cache_count(c), 0);

    /* negative answers are cached; a full cache drops the entry closest to expiry */
    const char *names[] = {"a.example", "b.example", "c.example", "d.example"};
    unsigned ttls[] = {300, 100, 200, 400};
    for (size_t i = 0; i < 4; i++) {
        a = answer_of(i == 1 ? PORTER_DNS_NXDOMAIN : PORTER_DNS_OK, PORTER_DNS_TXT, names[i],
                      ttls[i]);
        dns_cache_put(c, a, 2000);
        dns_answer_free(a);
    }
    assert_int_equal(dns_cache_count(c), 3);
    assert_null(dns_cache_get(c, PORTER_DNS_TXT, "b.example", 2001));
    for (size_t i = 0; i < 4; i++) {
        if (i == 1)
            continue;
        got = dns_cache_get(c, PORTER_DNS_TXT, names[i], 2001);
        if (got == NULL)
            fail_msg("%s: got no cached answer, want one", names[i]);
        dns_answer_free(got);
    }
    /* replacing an entry keeps one copy */
    a = answer_of(PORTER_DNS_NODATA, PORTER_DNS_TXT, "a.example", 50);
    dns_cache_put(c, a, 2001);
    dns_answer_free(a);
    assert_int_equal(dns_cache_count(c), 3);
    got = dns_cache_get(c, PORTER_DNS_TXT, "a.example", 2002);
    assert_int_equal(got->status, PORTER_DNS_NODATA);
    dns_answer_free(got);
    /* expired entries go first when room is needed */
    a = answer_of(PORTER_DNS_OK, PORTER_DNS_TXT, "e.example", 10);
    dns_cache_put(c, a, 2100);
    dns_answer_free(a);
    assert_int_equal(dns_cache_count(c), 3);
    assert_null(dns_cache_get(c, PORTER_DNS_TXT, "a.example", 2100));
    dns_cache_free(c);

    /* capacity 0: nothing is kept */
    c = dns_cache_new(0);
    a = answer_of(PORTER_DNS_OK, PORTER_DNS_TXT, "a.example", 100);
    dns_cache_put(c, a, 1);
    dns_answer_free(a);
    assert_null(dns_cache_get(c, PORTER_DNS_TXT, "a.example", 2));
    dns_cache_free(c);
    dns_cache_free(NULL);
}

/* ---------------------------------------------------------------- a fake DNS server */

static int fake_udp = -1, fake_tcp = -1;
static int fake_port;
static atomic_int fake_queries;
static atomic_bool fake_stop;
static pthread_t fake_thread;

/* fake_answer - the reply to one query, by name: see the test comments */
static size_t fake_answer(const unsigned char *query, size_t length, bool tcp, unsigned char *out,
                          size_t size, bool *spoof_first)
{
    *spoof_first = false;
    if (length < 17)
        return 0;
    size_t end = 12;
    char name[256] = "";
    size_t used = 0;
    while (end < length && query[end] != 0) {
        unsigned label = query[end];
        if (used > 0)
            name[used++] = '.';
        memcpy(name + used, query + end + 1, label);
        used += label;
        end += 1 + label;
    }
    name[used] = '\0';
    end += 5; /* root, type, class */
    unsigned id = (unsigned)(query[0] << 8 | query[1]);
    unsigned type = (unsigned)(query[end - 4] << 8 | query[end - 3]);
    struct packet p;
    unsigned flags = 0x8180;
    if (strcmp(name, "silent.test") == 0)
        return 0;
    if (strcmp(name, "servfail.test") == 0)
        flags = 0x8182;
    if (strcmp(name, "nx.test") == 0)
        flags = 0x8183;
    if (strcmp(name, "big.test") == 0 && !tcp)
        flags = 0x8380;
    *spoof_first = strcmp(name, "spoof.test") == 0;
    reply_start(&p, id, flags, name, type);
    unsigned answers = 0, authorities = 0;
    if (strcmp(name, "txt.test") == 0 || strcmp(name, "spoof.test") == 0) {
        rr_txt(&p, NULL, 100, (const char *const[]){"hello", "world", NULL});
        answers = 1;
    } else if (strcmp(name, "big.test") == 0 && tcp) {
        static char chunk[201];
        memset(chunk, 'k', 200);
        for (int i = 0; i < 10; i++) {
            rr_txt(&p, NULL, 100, (const char *const[]){chunk, chunk, NULL});
            answers++;
        }
    } else if (strcmp(name, "nx.test") == 0) {
        rr_soa(&p, "test", 60, 30);
        authorities = 1;
    } else if (strcmp(name, "1.2.0.192.in-addr.arpa") == 0) {
        rr_name(&p, NULL, PORTER_DNS_PTR, 100, -1, "host.test");
        answers = 1;
    }
    set_counts(&p, answers, authorities);
    if (p.length > size)
        return 0;
    memcpy(out, p.bytes, p.length);
    return p.length;
}

static void *fake_main(void *arg)
{
    while (!atomic_load(&fake_stop)) {
        fd_set set;
        FD_ZERO(&set);
        FD_SET(fake_udp, &set);
        FD_SET(fake_tcp, &set);
        struct timeval tv = {0, 50000};
        if (select((fake_udp > fake_tcp ? fake_udp : fake_tcp) + 1, &set, NULL, NULL, &tv) <= 0)
            continue;
        unsigned char query[1024], reply[8192];
        bool spoof;
        if (FD_ISSET(fake_udp, &set)) {
            struct sockaddr_storage peer;
            socklen_t peer_length = sizeof peer;
            ssize_t n = recvfrom(fake_udp, query, sizeof query, 0, (struct sockaddr *)&peer,
                                 &peer_length);
            if (n <= 0)
                continue;
            atomic_fetch_add(&fake_queries, 1);
            size_t r = fake_answer(query, (size_t)n, false, reply, sizeof reply, &spoof);
            if (r == 0)
                continue;
            if (spoof) {
                reply[0] ^= 0x55; /* a reply with the wrong id first */
                sendto(fake_udp, reply, r, 0, (struct sockaddr *)&peer, peer_length);
                reply[0] ^= 0x55;
            }
            sendto(fake_udp, reply, r, 0, (struct sockaddr *)&peer, peer_length);
        }
        if (FD_ISSET(fake_tcp, &set)) {
            int client = accept(fake_tcp, NULL, NULL);
            if (client < 0)
                continue;
            struct timeval limit = {2, 0};
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
            unsigned char head[2];
            if (recv(client, head, 2, MSG_WAITALL) == 2) {
                size_t want = (size_t)(head[0] << 8 | head[1]);
                if (want <= sizeof query &&
                    recv(client, query, want, MSG_WAITALL) == (ssize_t)want) {
                    atomic_fetch_add(&fake_queries, 1);
                    size_t r = fake_answer(query, want, true, reply + 2, sizeof reply - 2, &spoof);
                    reply[0] = (unsigned char)(r >> 8);
                    reply[1] = (unsigned char)r;
                    if (r > 0)
                        send(client, reply, r + 2, MSG_NOSIGNAL);
                }
            }
            close(client);
        }
    }
    return NULL;
}

static int fake_setup(void **state)
{
    for (int attempt = 0; attempt < 20; attempt++) {
        fake_udp = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t length = sizeof a;
        bind(fake_udp, (struct sockaddr *)&a, sizeof a);
        getsockname(fake_udp, (struct sockaddr *)&a, &length);
        fake_tcp = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(fake_tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fake_tcp, (struct sockaddr *)&a, sizeof a) == 0 && listen(fake_tcp, 16) == 0) {
            fake_port = ntohs(a.sin_port);
            atomic_store(&fake_stop, false);
            pthread_create(&fake_thread, NULL, fake_main, NULL);
            return 0;
        }
        close(fake_udp);
        close(fake_tcp);
    }
    return -1;
}

static int fake_teardown(void **state)
{
    atomic_store(&fake_stop, true);
    pthread_join(fake_thread, NULL);
    close(fake_udp);
    close(fake_tcp);
    return 0;
}

/* resolver_config - porter.conf text to a config: servers, retries, cache size, timeout */
static struct porter_config *resolver_config(const char *servers, int retries, int cache_size,
                                             double timeout)
{
    char text[512];
    snprintf(text, sizeof text, "dns_servers = %s\ndns_timeout = %g\ndns_retries = %d\n"
             "dns_cache_size = %d\n", servers, timeout, retries, cache_size);
    struct config_error_list errors = {0};
    struct porter_config *c = config_parse("/tmp", "porter.conf", text, strlen(text), &errors);
    assert_non_null(c);
    return c;
}

/* One asynchronous lookup's result. */
struct lookup_result {
    int calls;
    int status;
    char first[2048];
    size_t count;
    struct event_base *base;
};

static void lookup_done(const struct porter_dns_answer *answer, void *arg)
{
    struct lookup_result *r = arg;
    r->calls++;
    r->status = answer->status;
    r->count = answer->count;
    snprintf(r->first, sizeof r->first, "%s", answer->count > 0 ? answer->records[0].text : "");
    event_base_loopbreak(r->base);
}

/* run_for - the loop for at most seconds (or until a callback breaks it) */
static void run_for(struct event_base *base, double seconds)
{
    struct timeval limit = clock_timeval(seconds);
    event_base_loopexit(base, &limit);
    event_base_dispatch(base);
}

/* lookup - one dns_lookup, the loop run until it answers (bounded: 5 s) */
static struct lookup_result lookup(struct dns_resolver *r, struct event_base *base, int type,
                                   const char *name)
{
    struct lookup_result result = {.base = base, .status = -1};
    dns_lookup(r, type, name, lookup_done, &result);
    run_for(base, 5);
    assert_int_equal(result.calls, 1);
    return result;
}

static void test_resolver_async(void **state)
{
    char servers[64];
    snprintf(servers, sizeof servers, "127.0.0.1:%d", fake_port);
    struct porter_config *c = resolver_config(servers, 0, 100, 0.3);
    struct event_base *base = event_base_new();
    struct dns_resolver *r = dns_resolver_new(base, c);

    atomic_store(&fake_queries, 0);
    struct lookup_result got = lookup(r, base, PORTER_DNS_TXT, "txt.test");
    assert_int_equal(got.status, PORTER_DNS_OK);
    assert_string_equal(got.first, "helloworld");
    got = lookup(r, base, PORTER_DNS_TXT, "TXT.test.");
    assert_int_equal(got.status, PORTER_DNS_OK);
    assert_int_equal(atomic_load(&fake_queries), 1); /* the second came from the cache */

    got = lookup(r, base, PORTER_DNS_TXT, "nx.test");
    assert_int_equal(got.status, PORTER_DNS_NXDOMAIN);
    got = lookup(r, base, PORTER_DNS_TXT, "servfail.test");
    assert_int_equal(got.status, PORTER_DNS_TEMPFAIL);
    got = lookup(r, base, PORTER_DNS_TXT, "silent.test");
    assert_int_equal(got.status, PORTER_DNS_TEMPFAIL);
    got = lookup(r, base, PORTER_DNS_TXT, "spoof.test");
    assert_int_equal(got.status, PORTER_DNS_OK);
    got = lookup(r, base, PORTER_DNS_TXT, "big.test"); /* truncated over UDP: TCP */
    assert_int_equal(got.status, PORTER_DNS_OK);
    assert_int_equal(got.count, 10);
    assert_int_equal(strlen(got.first), 400);
    got = lookup(r, base, PORTER_DNS_PTR, "192.0.2.1");
    assert_int_equal(got.status, PORTER_DNS_OK);
    assert_string_equal(got.first, "host.test");
    got = lookup(r, base, PORTER_DNS_TXT, "bad name");
    assert_int_equal(got.status, PORTER_DNS_ERROR);
    got = lookup(r, base, 99, "txt.test");
    assert_int_equal(got.status, PORTER_DNS_ERROR);

    /* a cancelled query never calls back */
    struct lookup_result never = {.base = base};
    struct dns_query *q = dns_lookup(r, PORTER_DNS_TXT, "silent.test", lookup_done, &never);
    dns_query_cancel(q);
    run_for(base, 0.5);
    assert_int_equal(never.calls, 0);

    /* a query still running when the resolver goes: no callback, cancel only frees */
    q = dns_lookup(r, PORTER_DNS_TXT, "silent.test", lookup_done, &never);
    dns_resolver_free(r);
    dns_query_cancel(q);
    assert_int_equal(never.calls, 0);
    event_base_free(base);
    config_free(c);
}

/* One of several lookups run together: its result, and how many are still out. */
struct shared_result {
    int calls, status;
    char first[64];
    int *left;
    struct event_base *base;
};

static void shared_done(const struct porter_dns_answer *answer, void *arg)
{
    struct shared_result *r = arg;
    r->calls++;
    r->status = answer->status;
    snprintf(r->first, sizeof r->first, "%s", answer->count > 0 ? answer->records[0].text : "");
    if (--*r->left == 0)
        event_base_loopbreak(r->base);
}

static void test_resolver_shared(void **state)
{
    char servers[64];
    snprintf(servers, sizeof servers, "127.0.0.1:%d", fake_port);
    /* 1 s: a silent.test query must still be out when the test cancels it after 0.1 s */
    struct porter_config *c = resolver_config(servers, 0, 100, 1);
    struct event_base *base = event_base_new();
    struct dns_resolver *r = dns_resolver_new(base, c);

    /* three lookups of one question at once (names differing in case): one packet, three
     * answers; another type of the same name is a question of its own */
    atomic_store(&fake_queries, 0);
    int left = 4;
    struct shared_result got[4];
    for (int i = 0; i < 4; i++)
        got[i] = (struct shared_result){.left = &left, .base = base, .status = -1};
    dns_lookup(r, PORTER_DNS_TXT, "txt.test", shared_done, &got[0]);
    dns_lookup(r, PORTER_DNS_TXT, "TXT.Test.", shared_done, &got[1]);
    dns_lookup(r, PORTER_DNS_TXT, "txt.test", shared_done, &got[2]);
    dns_lookup(r, PORTER_DNS_A, "txt.test", shared_done, &got[3]);
    run_for(base, 5);
    for (int i = 0; i < 3; i++) {
        if (got[i].calls != 1 || got[i].status != PORTER_DNS_OK ||
            strcmp(got[i].first, "helloworld") != 0)
            fail_msg("lookup %d: got %d calls, status %d, \"%s\"; want 1, OK, \"helloworld\"", i,
                     got[i].calls, got[i].status, got[i].first);
    }
    assert_int_equal(got[3].calls, 1);
    assert_int_equal(atomic_load(&fake_queries), 2); /* TXT once, A once */

    /* the first asker leaves: the others still get the answer (here: no answer, TEMPFAIL
     * after dns_timeout), and its callback never runs */
    atomic_store(&fake_queries, 0);
    left = 2;
    struct shared_result gone = {.left = &left, .base = base};
    struct shared_result stay[2] = {{.left = &left, .base = base}, {.left = &left, .base = base}};
    struct dns_query *first = dns_lookup(r, PORTER_DNS_TXT, "silent.test", shared_done, &gone);
    dns_lookup(r, PORTER_DNS_TXT, "silent.test", shared_done, &stay[0]);
    dns_lookup(r, PORTER_DNS_TXT, "silent.test", shared_done, &stay[1]);
    run_for(base, 0.1); /* all three started (the first loop turn): one asks, two follow */
    dns_query_cancel(first);
    run_for(base, 5);
    assert_int_equal(atomic_load(&fake_queries), 1);
    assert_int_equal(gone.calls, 0);
    assert_int_equal(stay[0].calls, 1);
    assert_int_equal(stay[0].status, PORTER_DNS_TEMPFAIL);
    assert_int_equal(stay[1].calls, 1);

    /* a follower leaves: the others are answered, it is not */
    left = 1;
    struct shared_result asker = {.left = &left, .base = base};
    struct shared_result follower = {.left = &left, .base = base};
    dns_lookup(r, PORTER_DNS_TXT, "silent.test", shared_done, &asker);
    struct dns_query *f = dns_lookup(r, PORTER_DNS_TXT, "silent.test", shared_done, &follower);
    run_for(base, 0.1);
    dns_query_cancel(f);
    run_for(base, 5);
    assert_int_equal(asker.calls, 1);
    assert_int_equal(follower.calls, 0);

    /* the resolver goes while a cancelled asker still runs for a follower: nothing leaks,
     * nothing calls back */
    struct shared_result never = {.left = &left, .base = base};
    first = dns_lookup(r, PORTER_DNS_TXT, "silent.test", shared_done, &never);
    struct dns_query *second = dns_lookup(r, PORTER_DNS_TXT, "silent.test", shared_done, &never);
    run_for(base, 0.1);
    dns_query_cancel(first);
    dns_resolver_free(r);
    dns_query_cancel(second);
    assert_int_equal(never.calls, 0);
    event_base_free(base);
    config_free(c);
}

static void test_resolver_failover(void **state)
{
    /* first server: a closed port (refused at once); second: silent for this name only is not
     * possible, so the fake server answers; with two rounds a name first times out */
    int closed = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof a;
    bind(closed, (struct sockaddr *)&a, sizeof a);
    getsockname(closed, (struct sockaddr *)&a, &length);
    int dead_port = ntohs(a.sin_port);
    close(closed);
    char servers[128];
    snprintf(servers, sizeof servers, "127.0.0.1:%d 127.0.0.1:%d", dead_port, fake_port);
    struct porter_config *c = resolver_config(servers, 0, 0, 0.3);
    struct event_base *base = event_base_new();
    struct dns_resolver *r = dns_resolver_new(base, c);
    atomic_store(&fake_queries, 0);
    struct lookup_result got = lookup(r, base, PORTER_DNS_TXT, "txt.test");
    assert_int_equal(got.status, PORTER_DNS_OK);
    got = lookup(r, base, PORTER_DNS_TXT, "txt.test");
    assert_int_equal(got.status, PORTER_DNS_OK);
    assert_int_equal(atomic_load(&fake_queries), 2); /* no cache */
    dns_resolver_free(r);
    config_free(c);

    /* only the dead server: TEMPFAIL quickly (ICMP port unreachable), not after a timeout */
    snprintf(servers, sizeof servers, "127.0.0.1:%d", dead_port);
    c = resolver_config(servers, 2, 100, 0.3);
    r = dns_resolver_new(base, c);
    got = lookup(r, base, PORTER_DNS_TXT, "txt.test");
    assert_int_equal(got.status, PORTER_DNS_TEMPFAIL);
    dns_resolver_free(r);
    event_base_free(base);
    config_free(c);
}

/* Blocking lookups on another thread. */
struct sync_job {
    struct dns_resolver *resolver;
    int type;
    const char *name;
    struct porter_dns_answer *answer;
};

static void *sync_main(void *arg)
{
    struct sync_job *job = arg;
    job->answer = dns_query_sync(job->resolver, job->type, job->name);
    return NULL;
}

static struct porter_dns_answer *sync_lookup(struct dns_resolver *r, int type, const char *name)
{
    struct sync_job job = {.resolver = r, .type = type, .name = name};
    pthread_t thread;
    pthread_create(&thread, NULL, sync_main, &job);
    pthread_join(thread, NULL);
    return job.answer;
}

static void test_resolver_sync(void **state)
{
    char servers[64];
    snprintf(servers, sizeof servers, "127.0.0.1:%d", fake_port);
    struct porter_config *c = resolver_config(servers, 0, 100, 0.3);
    struct event_base *base = event_base_new();
    struct dns_resolver *r = dns_resolver_new(base, c);
    static const struct {
        int type;
        const char *name;
        int status;
        size_t count;
    } cases[] = {
        {PORTER_DNS_TXT, "txt.test", PORTER_DNS_OK, 1},
        {PORTER_DNS_TXT, "nx.test", PORTER_DNS_NXDOMAIN, 0},
        {PORTER_DNS_TXT, "servfail.test", PORTER_DNS_TEMPFAIL, 0},
        {PORTER_DNS_TXT, "silent.test", PORTER_DNS_TEMPFAIL, 0},
        {PORTER_DNS_TXT, "spoof.test", PORTER_DNS_OK, 1},
        {PORTER_DNS_TXT, "big.test", PORTER_DNS_OK, 10},
        {PORTER_DNS_PTR, "192.0.2.1", PORTER_DNS_OK, 1},
        {PORTER_DNS_MX, "", PORTER_DNS_ERROR, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct porter_dns_answer *a = sync_lookup(r, cases[i].type, cases[i].name);
        if (a->status != cases[i].status || a->count != cases[i].count)
            fail_msg("%s %s: got %s/%zu, want %s/%zu", dns_type_name(cases[i].type),
                     cases[i].name, dns_status_name(a->status), a->count,
                     dns_status_name(cases[i].status), cases[i].count);
        if (cases[i].status == PORTER_DNS_OK || cases[i].status == PORTER_DNS_NXDOMAIN)
            assert_non_null(a->packet);
        dns_answer_free(a);
    }
    /* the SERVFAIL packet is kept for libraries that parse it */
    struct porter_dns_answer *a = sync_lookup(r, PORTER_DNS_TXT, "servfail.test");
    assert_non_null(a->packet);
    assert_int_equal(a->packet[3] & 15, 2);
    dns_answer_free(a);
    /* on the loop thread (the one that made the resolver): refused */
    a = dns_query_sync(r, PORTER_DNS_TXT, "txt.test");
    assert_int_equal(a->status, PORTER_DNS_ERROR);
    dns_answer_free(a);
    a = dns_query_sync(NULL, PORTER_DNS_TXT, "txt.test");
    assert_int_equal(a->status, PORTER_DNS_ERROR);
    dns_answer_free(a);
    dns_resolver_free(r);
    event_base_free(base);
    config_free(c);
}

int main(void)
{
    evthread_use_pthreads();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_wire),
        cmocka_unit_test(test_reverse_name),
        cmocka_unit_test(test_query_encode),
        cmocka_unit_test(test_decode_records),
        cmocka_unit_test(test_decode_cname_and_negative),
        cmocka_unit_test(test_decode_not_an_answer),
        cmocka_unit_test(test_decode_malformed),
        cmocka_unit_test(test_servers_parse),
        cmocka_unit_test(test_resolv_conf),
        cmocka_unit_test(test_cache),
        cmocka_unit_test_setup_teardown(test_resolver_async, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_resolver_shared, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_resolver_failover, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_resolver_sync, fake_setup, fake_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
