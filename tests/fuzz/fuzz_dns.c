/*
 * fuzz_dns.c - libFuzzer target for gateway/dns_packet.c (DNS replies from the network) and
 * the two server-list readers (config_dns_servers_parse, dns_resolv_conf_parse).
 *
 * Interface: LLVMFuzzerTestOneInput. The first input byte picks the record type asked for;
 * the rest is a reply packet, copied into a heap block of its exact size (so ASan sees any read
 * past it) and decoded as the answer to "example.org" with the packet's own id (so the fuzzer
 * reaches past the id check). Invariants checked: an answer exists exactly for the verdicts
 * that promise one, its status agrees with the verdict, it holds at most DNS_RECORDS_MAX
 * records, every record's text is NUL-terminated at its length, the packet copy is the input,
 * and a copy of the answer is equal to it. The whole input is also read as a dns_servers value
 * and as a resolv.conf text. Fatal: a broken invariant aborts (libFuzzer reports a crash).
 * Memory: everything allocated is freed before returning.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "dns.h"
#include "dns_packet.h"
#include "memory.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* check - abort (a finding) when an invariant does not hold */
static void check(bool condition)
{
    if (!condition)
        abort();
}

/* check_answer - the invariants of a decoded answer */
static void check_answer(const struct porter_dns_answer *a, int type, const unsigned char *packet,
                         size_t length)
{
    check(a->type == type && strcmp(a->name, "example.org") == 0);
    check(a->count <= DNS_RECORDS_MAX);
    check((a->status == PORTER_DNS_OK) == (a->count > 0));
    check(a->packet_length == length && memcmp(a->packet, packet, length) == 0);
    for (size_t i = 0; i < a->count; i++) {
        check(a->records[i].text[a->records[i].length] == '\0');
        check(strlen(a->records[i].text) <= a->records[i].length);
    }
    struct porter_dns_answer *copy = dns_answer_copy(a);
    check(copy->count == a->count && copy->status == a->status && copy->ttl == a->ttl);
    for (size_t i = 0; i < a->count; i++)
        check(copy->records[i].length == a->records[i].length &&
              memcmp(copy->records[i].text, a->records[i].text, a->records[i].length) == 0 &&
              copy->records[i].preference == a->records[i].preference);
    dns_answer_free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int types[] = {PORTER_DNS_TXT, PORTER_DNS_A,   PORTER_DNS_AAAA, PORTER_DNS_MX,
                                PORTER_DNS_PTR, PORTER_DNS_CNAME, PORTER_DNS_NS};
    if (size < 1)
        return 0;
    int type = types[data[0] % (sizeof types / sizeof types[0])];
    size_t length = size - 1;
    unsigned char *packet = xmalloc(length > 0 ? length : 1);
    memcpy(packet, data + 1, length);
    unsigned id = length >= 2 ? (unsigned)(packet[0] << 8 | packet[1]) : 0;
    struct porter_dns_answer *answer = NULL;
    enum dns_reply_verdict verdict =
        dns_reply_decode(packet, length, id, type, "example.org", &answer);
    check(verdict >= 0 && verdict < DNS_REPLY_VERDICT_COUNT);
    if (verdict == DNS_REPLY_ANSWER) {
        check(answer != NULL && (answer->status == PORTER_DNS_OK ||
                                 answer->status == PORTER_DNS_NXDOMAIN ||
                                 answer->status == PORTER_DNS_NODATA));
        check_answer(answer, type, packet, length);
    } else if (verdict == DNS_REPLY_SERVER_FAILURE) {
        check(answer != NULL && answer->status == PORTER_DNS_TEMPFAIL);
        check_answer(answer, type, packet, length);
    } else {
        check(answer == NULL);
    }
    dns_answer_free(answer);
    free(packet);

    /* the same bytes as a dns_servers value and as a resolv.conf */
    char *text = xstrndup((const char *)data, size);
    struct sockaddr_storage servers[CONFIG_DNS_SERVERS_MAX];
    size_t count = 0;
    const char *error = config_dns_servers_parse(text, servers, CONFIG_DNS_SERVERS_MAX, &count);
    check(error != NULL ? error[0] != '\0' : count >= 1 && count <= CONFIG_DNS_SERVERS_MAX);
    for (size_t i = 0; error == NULL && i < count; i++)
        check(servers[i].ss_family == AF_INET || servers[i].ss_family == AF_INET6);
    check(dns_resolv_conf_parse((const char *)data, size, servers, 3) <= 3);
    free(text);
    return 0;
}
