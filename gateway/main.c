/*
 * main.c - porter's command line: run, stdio, check, plugins, queue, --version, --help. Nothing
 * else.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_command.h"
#include "control.h"
#include "master.h"
#include "plugin_info.h"
#include "queue_command.h"

#ifndef PORTER_SYSCONFDIR
#define PORTER_SYSCONFDIR "/etc/porter"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "usage: porter run [-c CONFDIR] [-f]      run the daemon (-f: foreground, log to stderr)\n"
            "       porter stdio [-c CONFDIR] [--client-ip ADDR] [--trace]\n"
            "                                         one SMTP session on stdin/stdout\n"
            "       porter check [-c CONFDIR]         check the configuration and every plugin\n"
            "       porter plugins [-c CONFDIR] [NAME]\n"
            "                                         plugins found; NAME: what it takes\n"
            "       porter queue [-c CONFDIR] list|show ID|flush|delete ID|hold ID|release ID\n"
            "                                         the spool queue (see porter queue --help)\n"
            "       porter config [-c CONFDIR] [-n]   the effective configuration (-n: not default)\n"
            "       porter status|reload|stop [-c CONFDIR] [-s SOCKET]\n"
            "                                         ask the running master (control socket)\n"
            "       porter top [-c CONFDIR] [-n COUNT] live sessions and latest verdicts\n"
            "       porter --version | --help\n"
            "CONFDIR defaults to %s.\n",
            PORTER_SYSCONFDIR);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *command = argv[1];
    if (strcmp(command, "--version") == 0 || strcmp(command, "-V") == 0) {
        printf("porter %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(command, "config") == 0)
        return config_command_main(argc - 1, argv + 1, PORTER_SYSCONFDIR);
    if (strcmp(command, "queue") == 0)
        return queue_command_main(argc - 1, argv + 1, PORTER_SYSCONFDIR);
    if (strcmp(command, "status") == 0 || strcmp(command, "reload") == 0 ||
        strcmp(command, "stop") == 0 || strcmp(command, "top") == 0)
        return control_command_main(argc - 1, argv + 1, PORTER_SYSCONFDIR);
    const char *directory = PORTER_SYSCONFDIR;
    const char *client_ip = NULL;
    bool foreground = false, trace = false;
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"foreground", no_argument, NULL, 'f'},
        {"client-ip", required_argument, NULL, 'i'},
        {"trace", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 2;
    int option;
    while ((option = getopt_long(argc, argv, "c:fh", options, NULL)) != -1) {
        switch (option) {
        case 'c': directory = optarg; break;
        case 'f': foreground = true; break;
        case 'i': client_ip = optarg; break;
        case 't': trace = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (strcmp(command, "plugins") == 0 && optind + 1 >= argc)
        return plugin_info_main(directory, optind < argc ? argv[optind] : NULL);
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (strcmp(command, "run") == 0)
        return master_run(directory, foreground);
    if (strcmp(command, "check") == 0)
        return master_check(directory);
    if (strcmp(command, "stdio") == 0)
        return master_stdio(directory, client_ip, trace);
    fprintf(stderr, "porter: unknown command '%s'\n", command);
    usage(stderr);
    return 2;
}
