/*
 * service_manager.c - the listening sockets a service manager passes to the master: socket
 * activation (porter.socket; LISTEN_FDS/LISTEN_PID, sd_listen_fds), matched to the listen
 * lines by address. (Readiness notifications are master.c's sd_notify calls.)
 *
 * The same hand-over serves an upgrade in place (master.c, SIGUSR2): the old master starts
 * the new binary with its listeners as fds 3.. and LISTEN_FDS/LISTEN_PID set, exactly as
 * systemd would.
 *
 * Interface: service_manager.h. Nothing is fatal here: without a service manager every call
 * does nothing. Owns the inherited descriptors until service_manager_take hands one out;
 * service_manager_close_unused closes the rest.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "log.h"
#include "memory.h"
#include "service_manager.h"

#define SERVICE_MANAGER_FDS_MAX 256

static int inherited[SERVICE_MANAGER_FDS_MAX];
static size_t inherited_count;

void service_manager_collect(void)
{
    int count = sd_listen_fds(1); /* unsets LISTEN_*: the workers and the new binary never see them */
    if (count < 0) {
        log_message(PORTER_LOG_WARNING, NULL, "event=listen_fds_error error=\"%s\"", strerror(-count));
        return;
    }
    for (int i = 0; i < count && inherited_count < SERVICE_MANAGER_FDS_MAX; i++)
        inherited[inherited_count++] = SD_LISTEN_FDS_START + i;
    if (count > 0)
        log_message(PORTER_LOG_INFO, NULL, "event=listen_fds count=%d", count);
}

/* service_manager_matches - whether fd is a listening stream socket on address
 * ("host:port", "[v6]:port" or "unix:PATH") */
static bool service_manager_matches(int fd, const char *address, const char *host, const char *port)
{
    if (strncmp(address, "unix:", 5) == 0)
        return sd_is_socket_unix(fd, SOCK_STREAM, 1, address + 5, 0) > 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST};
    struct addrinfo *result = NULL;
    if (getaddrinfo(host[0] ? host : NULL, port, &hints, &result) != 0)
        return false;
    bool match = false;
    for (struct addrinfo *a = result; a != NULL && !match; a = a->ai_next)
        match = sd_is_socket_sockaddr(fd, SOCK_STREAM, a->ai_addr, (unsigned)a->ai_addrlen, 1) > 0;
    freeaddrinfo(result);
    return match;
}

int service_manager_take(const char *address, const char *host, const char *port)
{
    for (size_t i = 0; i < inherited_count; i++) {
        int fd = inherited[i];
        if (!service_manager_matches(fd, address, host, port))
            continue;
        inherited[i] = inherited[--inherited_count];
        log_message(PORTER_LOG_INFO, NULL, "event=listener_inherited address=%s fd=%d", address, fd);
        return fd;
    }
    return -1;
}

void service_manager_close_unused(void)
{
    for (size_t i = 0; i < inherited_count; i++) {
        log_message(PORTER_LOG_WARNING, NULL, "event=listener_unused fd=%d warning=\"a passed "
                    "socket matches no listen line; closed\"", inherited[i]);
        close(inherited[i]);
    }
    inherited_count = 0;
}

int service_manager_pass(const int *fds, size_t count)
{
    /* first out of the way of 3..3+count, then into place (dup2 clears FD_CLOEXEC) */
    int moved[SERVICE_MANAGER_FDS_MAX];
    if (count > SERVICE_MANAGER_FDS_MAX)
        return -1;
    for (size_t i = 0; i < count; i++) {
        moved[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, SD_LISTEN_FDS_START + (int)count);
        if (moved[i] < 0)
            return -1;
    }
    for (size_t i = 0; i < count; i++)
        close(fds[i]);
    for (size_t i = 0; i < count; i++) {
        if (dup2(moved[i], SD_LISTEN_FDS_START + (int)i) < 0)
            return -1;
        close(moved[i]);
    }
    char text[32];
    snprintf(text, sizeof text, "%zu", count);
    setenv("LISTEN_FDS", text, 1);
    snprintf(text, sizeof text, "%ld", (long)getpid());
    setenv("LISTEN_PID", text, 1);
    unsetenv("LISTEN_FDNAMES");
    return 0;
}
