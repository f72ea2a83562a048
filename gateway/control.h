/*
 * control.h - the master's control socket: a unix socket in the spool directory that
 * `porter status`, `porter reload`, `porter stop` and `porter top` talk to.
 *
 * Protocol: the client sends one command line ("status", "reload", "stop", "sessions");
 * the master answers with text lines and closes the connection, or, when the handler asks
 * for it (stop), keeps it open until the master exits, so the client learns when the drain
 * is over. Only root and the master's own user may connect (the socket is 0600 and every
 * peer's credentials are checked with SO_PEERCRED).
 *
 * Interface: control_server_start / control_server_free (master); control_client.c is the
 * other end. Fatal: none; a socket that cannot be made is an error for the caller.
 * Memory: the handler returns text the server frees.
 */
#ifndef PORTER_CONTROL_H
#define PORTER_CONTROL_H

#include <stdbool.h>
#include <sys/types.h>

struct event_base;
struct control_server;

#define CONTROL_SOCKET_NAME "control.sock" /* in the spool directory */
#define CONTROL_COMMAND_MAX 256            /* bytes in a command line */

/* control_handler - the answer to command (caller frees); *keep_open: hold the connection
 * until the server is freed */
typedef char *(*control_handler)(const char *command, bool *keep_open, void *arg);

/* control_server_start - listen on path (an existing socket there is replaced); NULL with
 * *error set (caller frees) */
struct control_server *control_server_start(struct event_base *base, const char *path,
                                            control_handler handler, void *arg, char **error);
/* control_server_free - close every connection and the socket, unlink its path */
void control_server_free(struct control_server *server);

/* control_socket_owner - the pid of the process that answers on path, 0 when none does */
pid_t control_socket_owner(const char *path);

/* control_socket_path - where the control socket of a spool directory is; caller frees */
char *control_socket_path(const char *spool_dir);

/* control_command_main - `porter status|reload|stop|top [-c DIR] [-s SOCKET]`; exit code */
int control_command_main(int argc, char **argv, const char *default_directory);

#endif
