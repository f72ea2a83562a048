/*
 * fortune - be friendly to human users: a client that greeted with HELO (people typing at
 * telnet do; mail software says EHLO) gets a fortune cookie with its 221 at QUIT.
 *
 * Hook: quit. After HELO (not EHLO) the plugin runs "PROGRAM -s" off the event loop, on the
 * worker's thread pool (porter_command), with a 5 second bound, and answers
 *     221-2.0.0 mx.example.com closing connection.
 *     221-2.0.0  / first line of the fortune
 *     221 2.0.0  / last line of the fortune
 * (porter_reply_lines: one reply line per line of output, empty ones included). EHLO clients,
 * clients that never greeted, and a program that is missing, fails, times out or prints
 * nothing get the ordinary 221 (the plugin declines).
 *
 * Arguments: program=PATH (default /usr/games/fortune; a relative path is relative to the
 * configuration directory). The path need not exist when the plugin loads.
 *
 * Memory: the state is the program path (strdup'ed, freed by fini); porter_command copies the
 * argument vector and owns the output.
 */
#include <stdlib.h>
#include <string.h>

#include <porter/plugin.h>

#define FORTUNE_TIMEOUT 5.0 /* seconds */

static void *fortune_init(porter_args *a)
{
    return strdup(porter_arg_path(a, "program", "/usr/games/fortune"));
}

/* fortune_done - back on the loop: 221 with each output line prefixed by " / " */
static int fortune_done(porter_session *s, void *arg, int status, const char *output)
{
    if (s == NULL || status != 0 || output[0] == '\0')
        return PORTER_DECLINED;
    porter_reply(s, PORTER_DONE, 221, "2.0.0", "%s closing connection.", porter_hostname(s));
    return porter_reply_lines(s, PORTER_DONE, " / ", output);
}

static int fortune_quit(porter_session *s, void *program)
{
    const char *argv[] = {program, "-s", NULL};
    if (porter_said_ehlo(s) || porter_helo(s)[0] == '\0')
        return PORTER_DECLINED;
    return porter_command(s, argv, FORTUNE_TIMEOUT, fortune_done, NULL);
}

PORTER_PLUGIN(.name = "fortune",
              .description = "A fortune cookie for human users at QUIT. A client that greeted "
                             "with HELO (people typing at telnet do; mail software says EHLO) "
                             "gets one with its 221. The program runs on the thread pool for at "
                             "most 5 seconds; when it is missing, fails or prints nothing, the "
                             "client gets the ordinary 221.",
              .arguments = PORTER_ARGUMENTS(
                  {"program", "/usr/games/fortune",
                   "The program, run with -s (Debian's fortune-mod); a relative path is relative "
                   "to the configuration directory."}),
              .init = fortune_init, .fini = free,
              .hooks[PORTER_HOOK_QUIT] = fortune_quit);
