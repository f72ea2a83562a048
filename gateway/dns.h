/*
 * dns.h - the one DNS resolver of a worker: asynchronous lookups on the worker's event loop for
 * hooks (porter_dns_lookup), blocking lookups for pool threads (porter_dns_query_sync, used by
 * libspf2 and libopendkim), and one TTL-honouring cache shared by both.
 *
 * Why not evdns: libevent 2.1's evdns resolves only A, AAAA and PTR; SPF, DKIM and DMARC need
 * TXT and MX. So this is a small stub resolver of our own on the same event loop: UDP with
 * EDNS0 (a 1232-byte payload), TCP when a reply is truncated, a fresh socket (random source
 * port) and a random id per try, replies accepted only from the server asked and only when id
 * and question match. Packets are built and parsed by dns_packet.c (pure, fuzzed).
 *
 * Servers: dns_servers in porter.conf (IP[:PORT] words), else the nameserver lines of
 * /etc/resolv.conf, else 127.0.0.1:53. Each query tries the servers in order, dns_timeout per
 * try, and dns_retries more rounds over the list; SERVFAIL, REFUSED, a malformed reply, a
 * network error or a timeout moves on to the next try. When every try failed the answer is
 * PORTER_DNS_TEMPFAIL (with the last server-failure packet, if any). resolv.conf's options
 * (timeout, attempts, search, ndots) are not used: names are always absolute.
 *
 * Cache: answers with status OK, NXDOMAIN or NODATA and a TTL above zero are kept for that TTL
 * (negative answers for the SOA's negative TTL), at most dns_cache_size answers per worker;
 * when full, expired answers go first, then the one closest to expiry. Temporary failures are
 * never cached. The cache is guarded by a mutex, so pool threads share it with the loop.
 * Asynchronous lookups of one question (type and name) in flight at once ask the servers
 * once: the later ones wait for the first one's answer (a flood of sessions from one client
 * makes one DNSBL query, not one per session).
 *
 * Threads: dns_resolver_new, dns_lookup, dns_query_cancel and dns_resolver_free run on the
 * loop thread; dns_query_sync on any other thread (on the loop thread it refuses to block and
 * answers PORTER_DNS_ERROR). Fatal: out of memory. A misbehaving server is never fatal.
 * Memory: answers given to a callback belong to the resolver and live until the callback
 * returns; dns_query_sync's answer belongs to the caller (dns_answer_free).
 */
#ifndef PORTER_DNS_H
#define PORTER_DNS_H

#include <stddef.h>
#include <sys/socket.h>

#include "dns_packet.h"

struct event_base;
struct porter_config;
struct dns_resolver;
struct dns_query;
struct dns_cache;

/* The answer to dns_lookup, on the loop thread; answer is freed after the call. */
typedef void (*dns_callback)(const struct porter_dns_answer *answer, void *arg);

/* dns_resolver_new - servers, timeout, retries and cache size from config (see above); the
 * file /etc/resolv.conf is read here when dns_servers is not set */
struct dns_resolver *dns_resolver_new(struct event_base *base, const struct porter_config *config);
/* dns_resolver_free - accepts NULL; queries still running are stopped without their callback
 * (their owners still call dns_query_cancel, which then only frees) */
void dns_resolver_free(struct dns_resolver *r);

/*
 * dns_lookup - ask for (type, name); callback(answer, arg) runs exactly once, later, on the
 * loop (never inside dns_lookup, not even for a cached answer or a bad name), unless the query
 * is cancelled first. For PTR, name may be an IP address. Never NULL; the query is forgotten
 * once its callback ran (do not cancel it after that).
 */
struct dns_query *dns_lookup(struct dns_resolver *r, int type, const char *name,
                             dns_callback callback, void *arg);
/* dns_query_cancel - stop a query whose callback has not run; the callback never runs */
void dns_query_cancel(struct dns_query *q);

/* dns_query_sync - the same question, answered by blocking; never NULL; caller frees. r may be
 * NULL (no worker: PORTER_DNS_ERROR). */
struct porter_dns_answer *dns_query_sync(struct dns_resolver *r, int type, const char *name);

/* dns_resolv_conf_parse - the nameserver lines of a resolv.conf text (port 53; addresses with
 * a %scope are skipped); how many were stored (at most max). Pure. */
size_t dns_resolv_conf_parse(const char *text, size_t length, struct sockaddr_storage *servers,
                             size_t max);
/* dns_server_text - "192.0.2.1:53" / "[2001:db8::1]:53" for logs */
void dns_server_text(const struct sockaddr_storage *server, char *out, size_t size);

/* The cache, on its own for tests. now is any monotonic clock in seconds. */
struct dns_cache *dns_cache_new(size_t capacity);
void dns_cache_free(struct dns_cache *c);
/* dns_cache_get - a copy of the live answer for (type, name) with its TTL counted down, or NULL */
struct porter_dns_answer *dns_cache_get(struct dns_cache *c, int type, const char *name,
                                        double now);
/* dns_cache_put - keep a copy of answer for answer->ttl seconds (if cacheable, see above) */
void dns_cache_put(struct dns_cache *c, const struct porter_dns_answer *answer, double now);
size_t dns_cache_count(struct dns_cache *c);

#endif
