/*
 * dnsbl_common.h - what the dnsbl and rhsbl plugins share: DNS list zones and the answers that
 * count in each (RFC 5782), the names asked, and one set of lookups running in the background
 * from the moment a name is known until RCPT reads the verdict.
 *
 * Zones: "zones=ZONE[=MATCH][,ZONE[=MATCH]...]". MATCH is one or more IPv4 addresses or
 * ranges "FIRST-LAST" joined by ';' ("127.0.0.2-127.0.0.11;127.0.0.20"); a zone without one
 * takes the plugin's match= (default DNSBL_MATCH_DEFAULT). An A record outside the zone's
 * MATCH does not list the name; one outside 127.0.0.0/8 is logged as a zone misbehaving (RFC
 * 5782 section 2.1: answers are 127.0.0.0/8; a zone whose domain expired may answer anything).
 *
 * Names (pure functions): an IPv4 address's octets reversed, an IPv6 address's 32 nibbles
 * reversed (RFC 5782 section 2.4), or a domain name, each followed by the zone.
 *
 * Lookups: dnsbl_start asks one name (the client's address, the HELO name, the sender's
 * domain) in every zone with porter_dns_background, all at once (A, then TXT for a listed name
 * when txt= is on): a dnsbl_set per name, kept in the connection's porter_data. dnsbl_rcpt
 * waits (porter_suspend, resumed by the last answer) for the sets still running and then
 * refuses for the first listing, newest set first, zones in order. Temporary failures and
 * timeouts never list a name: they are logged. A set whose name is replaced (a new MAIL FROM)
 * is retired: freed when its last answer is in, or at disconnect (the core cancels the lookups
 * before the disconnect hook, so no callback comes after).
 *
 * Memory: zone lists are the plugin's state (dnsbl_zones_free); sets are per connection
 * (freed by dnsbl_disconnect) and kept small, since idle sessions hold them: a set is sized
 * to the zones, keeps no query name, a TXT record takes memory only once it arrived for a
 * listed name, and a set no zone listed is freed as soon as its answers are in (with the
 * connection's record when it was the last: a client the lists do not name holds nothing). Fatal: nothing; out of memory makes a lookup fail (logged),
 * never a listing.
 */
#ifndef PORTER_DNSBL_COMMON_H
#define PORTER_DNSBL_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <porter/plugin.h>

#define DNSBL_MATCH_DEFAULT "127.0.0.2-127.0.0.255"
#define DNSBL_ZONES_MAX 16
#define DNSBL_RANGES_MAX 16
#define DNSBL_TXT_MAX 200       /* bytes of a TXT record kept for the reply */

/* An IPv4 range of answers, host order, first <= last. */
struct dnsbl_range {
    uint32_t first, last;
};

struct dnsbl_zone {
    char *name;                               /* without a final dot */
    struct dnsbl_range ranges[DNSBL_RANGES_MAX];
    size_t range_count;
};

struct dnsbl_zones {
    struct dnsbl_zone items[DNSBL_ZONES_MAX];
    size_t count;
};

/* dnsbl_match_parse - "A[-B][;...]" into ranges; 0, or -1 with a message in error */
int dnsbl_match_parse(const char *text, struct dnsbl_range *ranges, size_t *count, char *error,
                      size_t error_size);
/* dnsbl_zones_parse - the zones= value with match_default for zones without =MATCH; 0, or -1
 * with a message in error (zones then holds nothing to free) */
int dnsbl_zones_parse(const char *text, const char *match_default, struct dnsbl_zones *zones,
                      char *error, size_t error_size);
void dnsbl_zones_free(struct dnsbl_zones *zones);

/* How one A record of a zone reads. */
enum dnsbl_answer_kind {
    DNSBL_ANSWER_LISTED = 0,   /* in the zone's ranges */
    DNSBL_ANSWER_IGNORED,      /* in 127.0.0.0/8, outside the ranges (another list's code) */
    DNSBL_ANSWER_INVALID,      /* not an address in 127.0.0.0/8: the zone misbehaves */
    DNSBL_ANSWER_KIND_COUNT
};
enum dnsbl_answer_kind dnsbl_answer_kind(const struct dnsbl_zone *zone, const char *address);

/* dnsbl_ip_name - "4.3.2.1.ZONE" / the reversed nibbles of an IPv6 address then ZONE; 0, or -1
 * when ip is not an address or the name does not fit */
int dnsbl_ip_name(const char *ip, const char *zone, char *out, size_t size);
/* dnsbl_domain_name - "DOMAIN.ZONE" (a final dot dropped, lower case); 0, or -1 when domain
 * is empty, an address literal, has an empty label, or the name does not fit (253 bytes) */
int dnsbl_domain_name(const char *domain, const char *zone, char *out, size_t size);
/* dnsbl_txt_clean - a TXT record made safe for a reply: printable ASCII only (others become
 * '?'), at most DNSBL_TXT_MAX bytes */
void dnsbl_txt_clean(const char *text, size_t length, char *out, size_t size);
/* dnsbl_rcpt_allowed - is recipient in list (comma-separated local parts, matching any of our
 * domains, or whole addresses; case-insensitive)? */
bool dnsbl_rcpt_allowed(const char *list, const char *recipient);

/* ---- the settings both plugins take ---- */

struct dnsbl_settings {
    struct dnsbl_zones zones;
    int action;                 /* PORTER_DENY, PORTER_DENYSOFT, or PORTER_DECLINED (log only) */
    int code;                   /* the reply's code and enhanced code for DENY / DENYSOFT */
    char enhanced[16];
    char *allow_rcpt;           /* recipients always accepted (dnsbl_rcpt_allowed) */
    porter_cidr_list *allow;    /* clients never looked up */
    bool txt;                   /* ask TXT of a listed name, for the reply */
    double wait;                /* dnsbl_wait_seconds */
};

/* The arguments both plugins take after zones= (for .arguments; defaults as in conf/plugins). */
#define DNSBL_ARGUMENTS                                                                         \
    {"match", DNSBL_MATCH_DEFAULT,                                                             \
     "The answers (A records) that list a name, for zones without their own =MATCH: IPv4 "     \
     "addresses and ranges FIRST-LAST joined by ';'."},                                         \
    {"action", "deny",                                                                         \
     "What a listing does at RCPT: deny (554 5.7.1), denysoft (451 4.7.1) or log (a log "      \
     "line only; RCPT still waits for answers not in yet, so that each is logged)."},          \
    {"allow_rcpt", "postmaster,abuse",                                                         \
     "Recipients that are never refused: local parts (any of our domains) or whole "          \
     "addresses, comma-separated."},                                                           \
    {"allow", NULL, "CIDR list or file of clients that are never looked up."},                  \
    {"txt", "yes", "Ask the TXT record of a listed name and put it in the reply."}

/* dnsbl_settings_read - zones, match, action, code, allow_rcpt, allow, txt (errors through
 * porter_arg_error); 0 or -1 */
int dnsbl_settings_read(porter_args *a, struct dnsbl_settings *settings);
void dnsbl_settings_free(struct dnsbl_settings *settings);

/* ---- lookups in the background ---- */

enum dnsbl_status {
    DNSBL_PENDING = 0,
    DNSBL_NOT_LISTED,
    DNSBL_LISTED,
    DNSBL_FAILED,               /* timeout, SERVFAIL, bad name: never refuses */
    DNSBL_STATUS_COUNT
};

struct dnsbl_set;

/* One name in one zone. The name asked is not kept: dnsbl_check_name builds it again (on the
 * stack) for the TXT lookup and the rare log line that shows it. */
struct dnsbl_check {
    struct dnsbl_set *set;
    const struct dnsbl_zone *zone;
    char *txt;                  /* the listed name's TXT record (dnsbl_txt_clean), NULL until
                                   one arrives; owned by the check */
    uint32_t answer;            /* the A record that listed it, host order; 0 before */
    enum dnsbl_status status;
};

/* One name asked in every zone: one allocation holding the set, one check per zone and a
 * copy of the name (dnsbl_start; freed by dnsbl_set_free). */
struct dnsbl_set {
    struct dnsbl_set *next;
    struct dnsbl_connection *connection;
    const char *what;           /* "client", "helo", "sender" (static): logs and replies */
    const char *name;           /* the IP address or domain asked, after checks[count] */
    size_t count;
    size_t pending;             /* lookups out */
    bool ip;                    /* name is an IP address (else a domain) */
    bool retired;               /* replaced: freed when the last answer is in */
    struct dnsbl_check checks[]; /* count of them: one per zone, in zone order */
};

/* A connection's sets, and the RCPT waiting for them: the plugin's porter_data. */
struct dnsbl_connection {
    const struct dnsbl_settings *settings;
    struct dnsbl_set *sets;
    bool waiting;
    porter_handle handle;
};

/* dnsbl_start - ask name (an IP address when ip, else a domain) in every zone; a set of the
 * same what before it is retired. Names that cannot be built count as failed (logged). */
void dnsbl_start(porter_session *s, const struct dnsbl_settings *settings, const char *what,
                 const char *name, bool ip);
/* dnsbl_forget - retire the set of what (a new transaction: no sender yet) */
void dnsbl_forget(porter_session *s, const char *what);
/* dnsbl_rcpt - the RCPT hook of both plugins: relay clients, authenticated users and allowed
 * recipients pass; otherwise wait for the sets, then refuse for the first listing */
int dnsbl_rcpt(porter_session *s, const struct dnsbl_settings *settings);
/* dnsbl_disconnect - free the connection's sets (the core cancelled their lookups) */
int dnsbl_disconnect(porter_session *s, void *state);

/* dnsbl_wait_seconds - from porter.conf's dns_timeout, dns_retries and dns_servers (or
 * /etc/resolv.conf): the longest an A then a TXT lookup can take, plus a margin; a RCPT that
 * waits extends its deadline to this so that DNS, not the hook timeout, decides */
double dnsbl_wait_seconds(porter_args *a);

#endif
