/*
 * service_manager.h - socket activation (LISTEN_FDS) for the master
 * (see service_manager.c).
 */
#ifndef PORTER_SERVICE_MANAGER_H
#define PORTER_SERVICE_MANAGER_H

#include <stdbool.h>
#include <stddef.h>

/* service_manager_collect - at start: remember the sockets passed in LISTEN_FDS (for this
 * pid), and unset LISTEN_* */
void service_manager_collect(void);

/* service_manager_take - a passed listening socket bound to address (its host and port
 * already split; unused for unix:PATH), now the caller's; -1 when none matches */
int service_manager_take(const char *address, const char *host, const char *port);

/* service_manager_close_unused - close the passed sockets no listen line took */
void service_manager_close_unused(void);

/* service_manager_pass - in a child about to exec: fds become 3.. with LISTEN_FDS and
 * LISTEN_PID (this pid) set, the originals closed; -1 on failure */
int service_manager_pass(const int *fds, size_t count);

#endif
