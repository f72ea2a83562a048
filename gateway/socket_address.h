/*
 * socket_address.h - where a peer daemon listens, as administrators write it in socket=
 * arguments: the milter plugin, clamd, spamassassin and p0f share this one parser.
 *
 * Interface: socket_address_parse turns "unix:/path" (also "local:/path" or a bare "/path"),
 * "inet:PORT@HOST" (libmilter's form), "inet:HOST:PORT" (Postfix's form), "inet6:PORT@ADDR"
 * or "inet6:[ADDR]:PORT" into a sockaddr ready for connect(). HOST may be a name: it is
 * resolved there, once, with getaddrinfo, so call it only at configuration time (a plugin's
 * init), never on the event loop.
 *
 * Not fatal: a bad address is a -1 with a message. Memory: nothing allocated; the result is
 * a plain value.
 */
#ifndef PORTER_SOCKET_ADDRESS_H
#define PORTER_SOCKET_ADDRESS_H

#include <stddef.h>
#include <sys/socket.h>

/* The longest socket= value, and the text kept for logs. */
#define SOCKET_ADDRESS_TEXT_MAX 256

struct socket_address {
    struct sockaddr_storage sockaddr;
    socklen_t length;
    char text[SOCKET_ADDRESS_TEXT_MAX]; /* as given, for logs */
};

/* socket_address_parse - text into out; 0, or -1 with a message in error */
int socket_address_parse(const char *text, struct socket_address *out, char *error,
                         size_t error_size);

#endif /* PORTER_SOCKET_ADDRESS_H */
