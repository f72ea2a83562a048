/*
 * master.h - the process model behind `porter run`, `porter check` and `porter stdio`.
 * Each returns the process exit code. See master.c.
 */
#ifndef PORTER_MASTER_H
#define PORTER_MASTER_H

#include <stdbool.h>

int master_run(const char *directory, bool foreground);
int master_check(const char *directory);
int master_stdio(const char *directory, const char *client_ip, bool trace);

#endif
