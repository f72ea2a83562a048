/*
 * control.c - the master's control socket (server side; see control.h for the protocol).
 *
 * One evconnlistener on a unix socket, mode 0600, created with a umask that never lets it be
 * world-accessible even for an instant. Each connection: check the peer (SO_PEERCRED: root
 * or our own uid), read one line of at most CONTROL_COMMAND_MAX bytes within
 * CONTROL_READ_TIMEOUT, call the handler, write its answer, close after the flush (or keep
 * the connection until control_server_free when the handler says so).
 *
 * After fork, a child frees the server to close its descriptors: only the process that
 * created the socket unlinks it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "control.h"
#include "log.h"
#include "memory.h"

#define CONTROL_READ_TIMEOUT 10 /* seconds for a client to send its command */
#define CONTROL_CONNECTIONS_MAX 64

struct control_connection {
    struct control_server *server;
    struct bufferevent *bev;
    bool answered;
    bool keep_open;
};

struct control_server {
    struct evconnlistener *listener;
    char *path;
    pid_t owner;
    control_handler handler;
    void *arg;
    struct control_connection *connections[CONTROL_CONNECTIONS_MAX];
};

char *control_socket_path(const char *spool_dir)
{
    size_t length = strlen(spool_dir);
    return xasprintf("%s%s%s", spool_dir, length > 0 && spool_dir[length - 1] == '/' ? "" : "/",
                     CONTROL_SOCKET_NAME);
}

/* control_connection_free - forget a connection */
static void control_connection_free(struct control_connection *c)
{
    struct control_server *server = c->server;
    for (size_t i = 0; i < CONTROL_CONNECTIONS_MAX; i++)
        if (server->connections[i] == c)
            server->connections[i] = NULL;
    bufferevent_free(c->bev);
    free(c);
}

/* control_written - the answer is out: close unless the handler keeps the connection */
static void control_written(struct bufferevent *bev, void *arg)
{
    struct control_connection *c = arg;
    if (c->answered && !c->keep_open)
        control_connection_free(c);
}

/* control_read - one command line arrived (or not yet) */
static void control_read(struct bufferevent *bev, void *arg)
{
    struct control_connection *c = arg;
    struct evbuffer *input = bufferevent_get_input(bev);
    if (c->answered) {
        evbuffer_drain(input, evbuffer_get_length(input));
        return;
    }
    size_t length = 0;
    char *line = evbuffer_readln(input, &length, EVBUFFER_EOL_CRLF);
    if (line == NULL) {
        if (evbuffer_get_length(input) > CONTROL_COMMAND_MAX) {
            c->answered = true;
            bufferevent_write(bev, "error: command too long\n", 24);
        }
        return;
    }
    c->answered = true;
    bufferevent_set_timeouts(bev, NULL, NULL);
    char *answer = length > CONTROL_COMMAND_MAX
                       ? xstrdup("error: command too long\n")
                       : c->server->handler(line, &c->keep_open, c->server->arg);
    free(line);
    bufferevent_write(bev, answer, strlen(answer));
    free(answer);
}

/* control_event - EOF, error or timeout: drop the connection */
static void control_event(struct bufferevent *bev, short what, void *arg)
{
    control_connection_free(arg);
}

/* control_peer_allowed - root, or the user the master runs as */
static bool control_peer_allowed(int fd, uid_t *uid)
{
    struct ucred credentials;
    socklen_t size = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0)
        return false;
    *uid = credentials.uid;
    return credentials.uid == 0 || credentials.uid == geteuid();
}

static void control_accept(struct evconnlistener *listener, evutil_socket_t fd,
                           struct sockaddr *address, int length, void *arg)
{
    struct control_server *server = arg;
    uid_t uid = (uid_t)-1;
    size_t free_index = CONTROL_CONNECTIONS_MAX;
    for (size_t i = 0; i < CONTROL_CONNECTIONS_MAX && free_index == CONTROL_CONNECTIONS_MAX; i++)
        if (server->connections[i] == NULL)
            free_index = i;
    if (!control_peer_allowed(fd, &uid) || free_index == CONTROL_CONNECTIONS_MAX) {
        log_message(PORTER_LOG_WARNING, NULL, "event=control_refused uid=%ld reason=%s",
                    (long)uid, free_index == CONTROL_CONNECTIONS_MAX ? "too_many" : "not_allowed");
        evutil_closesocket(fd);
        return;
    }
    evutil_make_socket_nonblocking(fd);
    struct control_connection *c = xcalloc(1, sizeof *c);
    c->server = server;
    c->bev = bufferevent_socket_new(evconnlistener_get_base(listener), fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        evutil_closesocket(fd);
        free(c);
        return;
    }
    server->connections[free_index] = c;
    struct timeval timeout = {CONTROL_READ_TIMEOUT, 0};
    bufferevent_set_timeouts(c->bev, &timeout, NULL);
    bufferevent_setcb(c->bev, control_read, control_written, control_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

struct control_server *control_server_start(struct event_base *base, const char *path,
                                            control_handler handler, void *arg, char **error)
{
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof address.sun_path) {
        *error = xasprintf("%s: path too long for a unix socket (at most %zu bytes)", path,
                           sizeof address.sun_path - 1);
        return NULL;
    }
    memcpy(address.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *error = xasprintf("%s: socket: %s", path, strerror(errno));
        return NULL;
    }
    unlink(path); /* a socket left by a master that died (run refuses while one answers) */
    mode_t old_mask = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&address, sizeof address);
    umask(old_mask);
    if (rc != 0 || chmod(path, 0600) != 0) {
        *error = xasprintf("%s: bind: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    evutil_make_socket_nonblocking(fd);
    struct control_server *server = xcalloc(1, sizeof *server);
    server->listener = evconnlistener_new(base, control_accept, server, LEV_OPT_CLOSE_ON_FREE,
                                          16, fd);
    if (server->listener == NULL) {
        *error = xasprintf("%s: listen: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        free(server);
        return NULL;
    }
    server->path = xstrdup(path);
    server->owner = getpid();
    server->handler = handler;
    server->arg = arg;
    return server;
}

pid_t control_socket_owner(const char *path)
{
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof address.sun_path)
        return 0;
    memcpy(address.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    pid_t owner = 0;
    if (connect(fd, (struct sockaddr *)&address, sizeof address) == 0) {
        struct ucred credentials;
        socklen_t size = sizeof credentials;
        owner = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &size) == 0 &&
                        credentials.pid > 0
                    ? credentials.pid
                    : 1;
    }
    close(fd);
    return owner;
}

void control_server_free(struct control_server *server)
{
    if (server == NULL)
        return;
    bool owner = server->owner == getpid();
    for (size_t i = 0; i < CONTROL_CONNECTIONS_MAX; i++) {
        struct control_connection *c = server->connections[i];
        if (c == NULL)
            continue;
        evutil_socket_t fd = bufferevent_getfd(c->bev);
        if (owner) { /* what is still queued (a short answer) goes out before the close */
            evbuffer_write(bufferevent_get_output(c->bev), fd);
        } else if (fd >= 0) {
            /* a forked child: close its copy now (freeing a bufferevent may defer the close
             * to a loop that will never run again), so the client sees the master's EOF */
            bufferevent_setfd(c->bev, -1);
            evutil_closesocket(fd);
        }
        control_connection_free(c);
    }
    evconnlistener_free(server->listener);
    if (owner)
        unlink(server->path);
    free(server->path);
    free(server);
}
