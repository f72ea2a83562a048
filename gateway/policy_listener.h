/*
 * policy_listener.h - the "policy" listener role: Porter's plugin chain as a Postfix SMTPD
 * access policy service (check_policy_service inet:127.0.0.1:10040).
 *
 * Interface: policy_listener_accept takes an accepted connection from Postfix; it carries any
 * number of requests. Requests with the same instance= attribute belong to one Porter session
 * (transport "policy"); a new instance ends the previous one.
 * Fatal: out of memory. A misbehaving peer gets a log line and a closed connection.
 */
#ifndef PORTER_POLICY_LISTENER_H
#define PORTER_POLICY_LISTENER_H

struct worker;
struct porter_config;
struct plugin_registry;

/* policy_listener_accept - serve policy requests on fd (owned from now on) */
void policy_listener_accept(struct worker *worker, const struct porter_config *config,
                            struct plugin_registry *plugins, int fd);

#endif
