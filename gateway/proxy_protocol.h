/*
 * proxy_protocol.h - the PROXY protocol header a load balancer (HAProxy) sends before the
 * client's bytes, versions 1 (text) and 2 (binary), as haproxy's proxy-protocol.txt defines.
 *
 * Interface: proxy_header_parse looks at the bytes received so far and says whether they are
 * a complete header (and how long it is), the beginning of one (read more), or not a header.
 * It is pure: no I/O, no allocation, no globals; the fuzzer and the unit test call it as the
 * session does. The session (session.c) decides who may send one (proxy_sources), how long
 * it waits (proxy_timeout) and what the facts change.
 *
 * What it accepts: v1 "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" (strict: single spaces,
 * numeric addresses of the named family, ports 0-65535 without leading zeros, at most 107
 * bytes) and "PROXY UNKNOWN ...\r\n"; v2 with command LOCAL or PROXY, families UNSPEC, INET
 * and INET6 over STREAM (UNIX and DGRAM are refused: an SMTP listener has no use for them),
 * and its TLVs: AUTHORITY (the SNI the client sent), ALPN, SSL (with VERSION, CIPHER, CN),
 * CRC32C (checked when present), NOOP and UNIQUE_ID (skipped); unknown TLVs are skipped as the
 * specification says. A TLV that runs past the header refuses it. Strings from TLVs are kept
 * only when they are printable ASCII and short enough for their field; otherwise the fact is
 * dropped (never the connection: the balancer is trusted, its data is not parsed further).
 *
 * Memory: the caller owns struct proxy_header (fixed-size fields, nothing to free).
 */
#ifndef PORTER_PROXY_PROTOCOL_H
#define PORTER_PROXY_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* The longest v1 line, CRLF included (the specification's limit). */
#define PROXY_V1_MAX 107
/* The longest v2 header we take: 16 fixed bytes and up to this many address and TLV bytes
 * (HAProxy sends well under 600 even with every SSL TLV). */
#define PROXY_V2_PAYLOAD_MAX 4096
#define PROXY_HEADER_MAX (16 + PROXY_V2_PAYLOAD_MAX)

enum proxy_parse_result {
    PROXY_PARSE_ERROR = -1,    /* not a valid header; error names why */
    PROXY_PARSE_INCOMPLETE = 0, /* a valid beginning: read more */
    PROXY_PARSE_DONE = 1,      /* a complete header of header->length bytes */
};

/* What a header says. Strings are "" when absent. */
struct proxy_header {
    int version;                        /* 1 or 2 */
    size_t length;                      /* bytes of the header (the client's bytes follow) */
    bool local;                         /* v2 LOCAL or v1 UNKNOWN (or UNSPEC): the balancer's
                                           own connection (a health check); keep the socket's
                                           addresses */
    struct sockaddr_storage source;      /* the client, when !local */
    struct sockaddr_storage destination; /* the address the client connected to, when !local */
    /* v2 TLVs */
    bool tls;                           /* PP2_TYPE_SSL with PP2_CLIENT_SSL: the client spoke
                                           TLS to the balancer */
    bool client_certificate;            /* it presented a certificate (CERT_CONN or CERT_SESS) */
    bool certificate_verified;          /* and it verified (SSL verify field 0) */
    char tls_version[32];               /* "TLSv1.3" */
    char tls_cipher[128];
    char tls_cn[256];                   /* the client certificate's common name */
    char sni[256];                      /* PP2_TYPE_AUTHORITY */
    char alpn[64];
};

/*
 * proxy_header_parse - bytes[0..length) as a PROXY header. DONE with *header filled in,
 * INCOMPLETE when they are a valid beginning of one (length < PROXY_HEADER_MAX), or ERROR
 * with *error set to a static description ("bad signature", "v1 line too long", ...).
 */
enum proxy_parse_result proxy_header_parse(const unsigned char *bytes, size_t length,
                                           struct proxy_header *header, const char **error);

/* proxy_crc32c - CRC-32C (Castagnoli) of bytes, as the v2 CRC32C TLV carries it */
unsigned proxy_crc32c(const unsigned char *bytes, size_t length);

#endif
