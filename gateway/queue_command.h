/*
 * queue_command.h - `porter queue list|show ID|flush|delete ID|hold ID|release ID`: look at and
 * act on the spool queue while the daemon runs.
 *
 * Interface: queue_command_main takes the words after "queue" (options -c CONFDIR first) and
 * returns the process exit code (0 done, 1 failed, 2 usage). It reads porter.conf for
 * queue_dir, never the daemon's memory: list/show read queue files, hold/release/delete move
 * or remove them (an attempt already running finishes first), flush touches QUEUE/flush and
 * signals the delivery process (QUEUE/deliver.pid) so every message is tried now.
 * Fatal: out of memory. Output goes to stdout, errors to stderr.
 */
#ifndef PORTER_QUEUE_COMMAND_H
#define PORTER_QUEUE_COMMAND_H

int queue_command_main(int argc, char **argv, const char *default_directory);

#endif
