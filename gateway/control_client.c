/*
 * control_client.c - `porter status|reload|stop|top`: the client end of the master's control
 * socket (control.h has the protocol).
 *
 * The socket is found from the configuration (-c DIR: spool_dir/control.sock) or given with
 * -s PATH. status prints the master's answer; reload prints whether the new configuration
 * was taken or why it was refused (exit 1 when refused); stop asks for a drain and waits
 * until the master has exited (at most --timeout seconds); top shows the sessions and the
 * latest verdicts every --interval seconds (-n COUNT times; 0: until interrupted).
 *
 * Exit codes: 0 done, 1 refused or no master answers, 2 usage. Memory: freed before return.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "control.h"
#include "memory.h"

#define CONTROL_ANSWER_MAX (16 * 1024 * 1024)

static void control_usage(FILE *out)
{
    fprintf(out, "usage: porter status [-c CONFDIR] [-s SOCKET]\n"
                 "       porter reload [-c CONFDIR] [-s SOCKET]\n"
                 "       porter stop [-c CONFDIR] [-s SOCKET] [--timeout SECONDS]\n"
                 "       porter top [-c CONFDIR] [-s SOCKET] [-n COUNT] [--interval SECONDS]\n");
}

/* control_ask - send command, read the answer until the master closes (*closed) or the
 * deadline; the answer (caller frees) or NULL with a message on stderr */
static char *control_ask(const char *path, const char *command, double timeout, bool *closed)
{
    *closed = false;
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof address.sun_path) {
        fprintf(stderr, "porter: %s: path too long for a unix socket\n", path);
        return NULL;
    }
    memcpy(address.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        fprintf(stderr, "porter: no master answers on %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    char line[CONTROL_COMMAND_MAX + 2];
    int length = snprintf(line, sizeof line, "%s\n", command);
    if (write(fd, line, (size_t)length) != length) {
        fprintf(stderr, "porter: %s: %s\n", path, strerror(errno));
        close(fd);
        return NULL;
    }
    size_t used = 0, capacity = 4096;
    char *answer = xmalloc(capacity);
    double deadline = clock_monotonic() + timeout;
    for (;;) {
        double left = deadline - clock_monotonic();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) == 0) {
            fprintf(stderr, "porter: the master did not finish within %.0f seconds\n", timeout);
            break;
        }
        if (used + 1 >= capacity) {
            if (capacity >= CONTROL_ANSWER_MAX)
                break;
            capacity *= 2;
            answer = xrealloc(answer, capacity);
        }
        ssize_t got = read(fd, answer + used, capacity - used - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            *closed = got == 0;
            break;
        }
        used += (size_t)got;
    }
    close(fd);
    answer[used] = '\0';
    return answer;
}

/* control_socket_from_config - spool_dir/control.sock of the configuration in directory */
static char *control_socket_from_config(const char *directory, double *shutdown_timeout)
{
    struct config_error_list errors = {0};
    struct porter_config *config = config_read_settings(directory, NULL, &errors);
    if (config == NULL) {
        /* a configuration being edited may have errors elsewhere (a reload will say which):
         * the master is still found by these lines */
        static const char *const needed[] = {"spool_dir", "shutdown_timeout", NULL};
        struct config_error_list ignored = {0};
        config = config_read_settings(directory, needed, &ignored);
        config_errors_clear(&ignored);
        if (config == NULL)
            for (size_t i = 0; i < errors.count; i++)
                fprintf(stderr, "%s\n", errors.messages[i]);
    }
    config_errors_clear(&errors);
    if (config == NULL)
        return NULL;
    char *spool = config_path(config, config->spool_dir);
    char *path = control_socket_path(spool);
    *shutdown_timeout = config->shutdown_timeout;
    free(spool);
    config_free(config);
    return path;
}

int control_command_main(int argc, char **argv, const char *default_directory)
{
    const char *directory = default_directory, *socket_path = NULL;
    double timeout = -1, interval = 1;
    long count = 0;
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"socket", required_argument, NULL, 's'},
        {"timeout", required_argument, NULL, 't'},
        {"interval", required_argument, NULL, 'i'},
        {"count", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    int option;
    while ((option = getopt_long(argc, argv, "c:s:t:i:n:h", options, NULL)) != -1) {
        switch (option) {
        case 'c': directory = optarg; break;
        case 's': socket_path = optarg; break;
        case 't': timeout = atof(optarg); break;
        case 'i': interval = atof(optarg); break;
        case 'n': count = atol(optarg); break;
        case 'h': control_usage(stdout); return 0;
        default: control_usage(stderr); return 2;
        }
    }
    const char *verb = argv[0];
    if (optind != argc || interval <= 0 || count < 0) {
        control_usage(stderr);
        return 2;
    }
    double shutdown_timeout = 30;
    char *path = socket_path != NULL ? xstrdup(socket_path)
                                     : control_socket_from_config(directory, &shutdown_timeout);
    if (path == NULL)
        return 1;
    int rc = 0;
    if (strcmp(verb, "top") == 0) {
        bool screen = count != 1 && isatty(STDOUT_FILENO);
        for (long i = 0; count == 0 || i < count; i++) {
            if (i > 0) {
                struct timespec pause = {(time_t)interval,
                                         (long)((interval - (double)(time_t)interval) * 1e9)};
                nanosleep(&pause, NULL);
            }
            bool closed;
            char *answer = control_ask(path, "sessions", 10, &closed);
            if (answer == NULL) {
                rc = 1;
                break;
            }
            if (screen)
                fputs("\033[H\033[2J", stdout);
            fputs(answer, stdout);
            fflush(stdout);
            free(answer);
        }
        free(path);
        return rc;
    }
    const char *command = strcmp(verb, "status") == 0   ? "status"
                          : strcmp(verb, "reload") == 0 ? "reload"
                          : strcmp(verb, "stop") == 0   ? "stop"
                                                        : NULL;
    if (command == NULL) {
        free(path);
        control_usage(stderr);
        return 2;
    }
    if (timeout <= 0)
        timeout = strcmp(command, "stop") == 0 ? shutdown_timeout + 30 : 60;
    bool closed;
    char *answer = control_ask(path, command, timeout, &closed);
    free(path);
    if (answer == NULL)
        return 1;
    fputs(answer, stdout);
    if (strncmp(answer, "refused", 7) == 0 || strncmp(answer, "error", 5) == 0 ||
        answer[0] == '\0' || !closed)
        rc = 1;
    if (strcmp(command, "stop") == 0 && rc == 0)
        printf("stopped\n");
    free(answer);
    return rc;
}
