/*
 * dns_packet.h - DNS messages on the wire (RFC 1035, 2181, 2308, 3596, 6891): build a query,
 * decode a reply into a struct porter_dns_answer, and the small name helpers the resolver
 * needs. Everything here is pure: no I/O, no globals, no clock.
 *
 * Interface: dns_query_encode writes one query (recursion desired, EDNS0 with our UDP payload
 * size when asked). dns_reply_decode checks that a reply answers exactly that query (id, flags,
 * question) and returns what to do with it; for a usable reply it builds the answer: the
 * records of the type asked for at the end of any CNAME chain (at most DNS_CNAME_MAX links),
 * the least TTL, the negative TTL of NXDOMAIN / NODATA from the SOA (RFC 2308), and a copy of
 * the packet. dns_answer_new / dns_answer_copy / dns_answer_free manage answers: one
 * allocation each, so free() of the pointer frees everything.
 *
 * Limits: names are at most DNS_NAME_MAX characters of text (255 bytes on the wire); a reply
 * holds at most DNS_RECORDS_MAX records of the type asked for (more is treated as malformed);
 * every length and pointer in a packet is checked against the packet's end, and compression
 * pointers may only point backwards, so decoding always terminates.
 *
 * Fatal: out of memory (memory.h). Memory: answers belong to the caller (dns_answer_free).
 */
#ifndef PORTER_DNS_PACKET_H
#define PORTER_DNS_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#ifndef PORTER_CORE
#define PORTER_CORE
#endif
#include <porter/plugin.h>

#define DNS_NAME_MAX 253          /* text form of a name, without the final dot */
#define DNS_WIRE_NAME_MAX 255     /* wire form, length bytes and the root label included */
#define DNS_QUERY_MAX 512         /* a query we build always fits */
#define DNS_EDNS_PAYLOAD 1232     /* the UDP reply size we advertise (DNS flag day 2020) */
#define DNS_PACKET_MAX 65535      /* the largest reply (TCP) */
#define DNS_RECORDS_MAX 256       /* records of the asked type in one answer */
#define DNS_CNAME_MAX 8           /* CNAME links followed in one answer */
#define DNS_TTL_MAX 604800        /* TTLs are capped at a week (RFC 8767 suggests so) */

/* What a received packet means for the query it claims to answer. */
enum dns_reply_verdict {
    DNS_REPLY_ANSWER = 0,     /* NOERROR or NXDOMAIN: *answer is set (OK, NODATA, NXDOMAIN) */
    DNS_REPLY_TRUNCATED,      /* TC set: ask again over TCP */
    DNS_REPLY_SERVER_FAILURE, /* SERVFAIL, REFUSED, FORMERR, ...: *answer is set (TEMPFAIL) */
    DNS_REPLY_MISMATCH,       /* not a reply to this query (id, question, QR): ignore it */
    DNS_REPLY_MALFORMED,      /* a reply to this query that cannot be parsed: try elsewhere */
    DNS_REPLY_VERDICT_COUNT
};
const char *dns_reply_verdict_name(int verdict);
const char *dns_status_name(int status);
/* dns_type_name - "A", "TXT", ... ("TYPE123" style is not needed: unknown types are "?") */
const char *dns_type_name(int type);
/* dns_type_supported - the types porter_dns_lookup accepts */
bool dns_type_supported(int type);

/* dns_name_wire - text name to wire form (labels of 1..63 bytes of printable ASCII other than
 * '.', an optional final dot); the wire length, or -1 when the name is not valid */
int dns_name_wire(const char *name, unsigned char out[DNS_WIRE_NAME_MAX]);
/* dns_reverse_name - "192.0.2.1" -> "1.2.0.192.in-addr.arpa", an IPv6 address -> its
 * ip6.arpa name; 0, or -1 when address is not an IP address (out is then "") */
int dns_reverse_name(const char *address, char *out, size_t size);

/* dns_query_encode - the query for (type, name) with this id; its length, or -1 for a bad
 * name or a buffer smaller than needed */
ssize_t dns_query_encode(unsigned id, int type, const char *name, bool edns, unsigned char *out,
                         size_t size);

/* dns_reply_decode - see the header comment; *answer is NULL unless the verdict says it is
 * set. name is the name asked for as given to dns_query_encode. */
enum dns_reply_verdict dns_reply_decode(const unsigned char *packet, size_t length, unsigned id,
                                        int type, const char *name,
                                        struct porter_dns_answer **answer);

/* dns_answer_new - one allocation holding copies of everything given (records may be NULL
 * when count is 0; packet may be NULL) */
struct porter_dns_answer *dns_answer_new(int status, int type, const char *name,
                                         const struct porter_dns_record *records, size_t count,
                                         unsigned ttl, const unsigned char *packet,
                                         size_t packet_length);
struct porter_dns_answer *dns_answer_copy(const struct porter_dns_answer *answer);
/* dns_answer_free - accepts NULL */
void dns_answer_free(struct porter_dns_answer *answer);

#endif
