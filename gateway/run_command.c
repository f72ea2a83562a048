/*
 * run_command.c - spawn a program, read its output with a deadline, reap it (see run_command.h).
 * posix_spawn is used because the caller runs on a thread of a multithreaded process.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "run_command.h"

extern char **environ;

int run_command(const char *const argv[], double timeout, char *output, size_t output_size)
{
    if (output_size > 0)
        output[0] = '\0';
    if (argv == NULL || argv[0] == NULL || access(argv[0], X_OK) != 0)
        return -1;
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0)
        return -1;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
    pid_t pid;
    int spawned = posix_spawn(&pid, argv[0], &actions, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(pipe_fds[1]);
    if (spawned != 0) {
        close(pipe_fds[0]);
        return -1;
    }
    size_t used = 0;
    bool timed_out = false;
    double deadline = clock_monotonic() + timeout;
    for (;;) {
        double left = deadline - clock_monotonic();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd pfd = {.fd = pipe_fds[0], .events = POLLIN};
        int ready = poll(&pfd, 1, left > 1 ? 1000 : (int)(left * 1000) + 1);
        if (ready < 0 && errno != EINTR)
            break;
        if (ready <= 0)
            continue;
        char scratch[512];
        char *into = used + 1 < output_size ? output + used : scratch;
        size_t room = used + 1 < output_size ? output_size - 1 - used : sizeof scratch;
        ssize_t n = read(pipe_fds[0], into, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (into != scratch)
            used += (size_t)n;
    }
    close(pipe_fds[0]);
    if (output_size > 0)
        output[used] = '\0';
    /* Reap it; a program that closed its output but keeps running is killed at the deadline. */
    int status = 0;
    for (;;) {
        if (timed_out) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        pid_t reaped = waitpid(pid, &status, WNOHANG);
        if (reaped == pid)
            break;
        if (reaped < 0 && errno != EINTR)
            return -1;
        if (clock_monotonic() >= deadline)
            timed_out = true;
        else
            usleep(5000);
    }
    if (timed_out || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}
