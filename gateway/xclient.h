/*
 * xclient.h - the XCLIENT command received (Postfix's XCLIENT_README): a trusted front end or
 * a test client presents another client (NAME, ADDR, PORT, PROTO, HELO, LOGIN, DESTADDR,
 * DESTPORT) and the session starts over as if that client had just connected.
 *
 *   xclient_parse     the command's argument into attributes (pure; unit-tested)
 *   xclient_offered   whether EHLO advertises XCLIENT: only to clients on xclient_clients
 *   xclient_check / xclient_proceed  the session's command table row
 *
 * Replies, as Postfix gives them: 550 5.7.0 to a client not on xclient_clients (the command is
 * never advertised to it either), 503 5.5.1 inside a mail transaction, 501 5.5.4 for a bad
 * attribute name or value. On success there is no 250: the disconnect notification ends the
 * old client's connection for the plugins, the session forgets HELO, authentication, the
 * connection notes and the relay permission, takes the attributes, runs the connect hook for
 * the new client and answers with its greeting (220, or the connect hook's refusal).
 * Being on xclient_clients is decided once, for the connection's real (or PROXY) client, and
 * stays for the connection, so a front end may send XCLIENT again.
 *
 * Memory: struct xclient_attributes has fixed-size fields; nothing to free.
 */
#ifndef PORTER_XCLIENT_H
#define PORTER_XCLIENT_H

#include <stdbool.h>
#include <stddef.h>

struct porter_session;

/* The EHLO keyword line. */
#define XCLIENT_EHLO_KEYWORD "XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT"

/* Attributes of one XCLIENT command; a value of [UNAVAILABLE] or [TEMPUNAVAIL] leaves its
 * has_ flag set and its value empty (NAME "unknown", ADDR "unknown", PORT 0, LOGIN none). */
struct xclient_attributes {
    bool has_name, has_addr, has_port, has_proto, has_helo, has_login, has_destaddr,
        has_destport;
    char name[256];
    char addr[64];     /* IPv4 or IPv6 text (the "IPV6:" prefix removed) */
    int port;
    bool esmtp;        /* PROTO=ESMTP */
    char helo[256];
    char login[256];
    char destaddr[64];
    int destport;
};

/* xclient_parse - "NAME=v ADDR=v ..." (xtext values, attribute names in any case) into out.
 * 0, or -1 with error (size bytes) set to the reply text ("Bad XCLIENT attribute name: FOO",
 * "Bad ADDR syntax"). Pure. */
int xclient_parse(const char *argument, struct xclient_attributes *out, char *error, size_t size);

bool xclient_offered(const struct porter_session *s);
int xclient_check(struct porter_session *s, const char *argument);
void xclient_proceed(struct porter_session *s, int rc);

#endif
