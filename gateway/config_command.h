/*
 * config_command.h - `porter config [-c CONFDIR] [-n]`: the effective configuration (see
 * config_command.c). Returns the exit status.
 */
#ifndef PORTER_CONFIG_COMMAND_H
#define PORTER_CONFIG_COMMAND_H

int config_command_main(int argc, char **argv, const char *default_directory);

#endif
