/*
 * fortune - be friendly to human users: a client that greeted with HELO (people typing at
 * telnet do; mail software says EHLO) gets a fortune cookie with its 221 at QUIT.
 *
 * Hook: quit. After HELO (not EHLO) the plugin runs "PROGRAM -s" off the event loop, on the
 * worker's thread pool, with a 5 second bound, and answers
 *     221-mx.example.com closing connection.
 *     221- / first line of the fortune
 *     221  / last line of the fortune
 * EHLO clients, clients that never greeted, and a program that is missing, fails, times out
 * or prints nothing get the ordinary 221 (the plugin declines).
 *
 * Arguments: program=PATH (default /usr/games/fortune; a relative path is relative to the
 * configuration directory). The path need not exist when the plugin loads.
 *
 * Memory: the state is the program path (strdup'ed, freed by fini); one job per QUIT, freed
 * by fortune_done.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <porter/plugin.h>

#define FORTUNE_TIMEOUT 5.0 /* seconds */

/* One QUIT's run of the program, handed to a pool thread. */
struct fortune_job {
    const char *program;
    char output[4096];
};

static void *fortune_init(porter_args *a)
{
    return strdup(porter_arg_path(a, "program", "/usr/games/fortune"));
}

/* fortune_run - on a pool thread: the program's output, or -1 */
static int fortune_run(void *arg)
{
    struct fortune_job *job = arg;
    const char *argv[] = {job->program, "-s", NULL};
    return porter_run_command(argv, FORTUNE_TIMEOUT, job->output, sizeof job->output);
}

/* fortune_done - back on the loop: 221 with each output line prefixed by " / " */
static int fortune_done(porter_session *s, void *arg, int status)
{
    struct fortune_job *job = arg;
    int rc = PORTER_DECLINED;
    if (s != NULL && status == 0 && job->output[0] != '\0') {
        char text[8192], *saveptr = NULL;
        int used = snprintf(text, sizeof text, "%s closing connection.", porter_hostname(s));
        for (char *line = strtok_r(job->output, "\n", &saveptr); line && used < (int)sizeof text;
             line = strtok_r(NULL, "\n", &saveptr))
            used += snprintf(text + used, sizeof text - (size_t)used, "\n / %s", line);
        rc = porter_reply(s, PORTER_DONE, 221, "2.0.0", "%s", text);
    }
    free(job);
    return rc;
}

static int fortune_quit(porter_session *s, void *program)
{
    if (porter_said_ehlo(s) || porter_helo(s)[0] == '\0')
        return PORTER_DECLINED;
    struct fortune_job *job = calloc(1, sizeof *job);
    job->program = program;
    return porter_run_blocking(s, fortune_run, fortune_done, job);
}

PORTER_PLUGIN(.name = "fortune", .init = fortune_init, .fini = free,
              .hooks[PORTER_HOOK_QUIT] = fortune_quit);
