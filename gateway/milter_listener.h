/*
 * milter_listener.h - the "milter" listener role: Porter's plugin chain as a Sendmail milter
 * (protocol version 6, filter side) for an MTA such as Postfix (smtpd_milters) or Sendmail.
 *
 * Interface: milter_listener_accept takes an accepted connection from the MTA; the connection
 * lives until the MTA quits or misbehaves. Each SMTP connection the MTA reports is one Porter
 * session (gateway/session.h, transport "milter") running the same hooks the SMTP path runs.
 * Fatal: out of memory. A misbehaving MTA gets a log line and a closed connection.
 */
#ifndef PORTER_MILTER_LISTENER_H
#define PORTER_MILTER_LISTENER_H

#include <sys/socket.h>

struct worker;
struct porter_config;
struct plugin_registry;

/* milter_listener_accept - serve the milter protocol on fd (owned from now on) */
void milter_listener_accept(struct worker *worker, const struct porter_config *config,
                            struct plugin_registry *plugins, int fd);

#endif
