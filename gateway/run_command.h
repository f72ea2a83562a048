/*
 * run_command.h - run a program with a time bound and capture its standard output.
 *
 * Interface: run_command (also porter_run_command in the plugin API). Blocking and
 * thread-safe: call it from porter_run_blocking work, never on the event loop. Nothing is
 * allocated for the caller.
 */
#ifndef PORTER_RUN_COMMAND_H
#define PORTER_RUN_COMMAND_H

#include <stddef.h>

/*
 * run_command - run argv[0] (a path; no shell, no PATH search) with stdin from /dev/null and
 * stdout captured into output (NUL-terminated, cut at output_size - 1 bytes). The program is
 * killed when it runs longer than timeout seconds. Returns its exit status (0-255), or -1 when
 * it could not run, was killed, or timed out.
 */
int run_command(const char *const argv[], double timeout, char *output, size_t output_size);

#endif
