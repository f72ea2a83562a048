/*
 * ip_board.h - connections per client IP, counted once for the whole daemon.
 *
 * The board is one shared memory region (mmap MAP_SHARED, made by the master before it forks)
 * of records, one per worker process. A worker writes only its own record (a hash table of
 * client address -> open connections); the count of an address is the sum over every record
 * in use, so a limit holds across workers. The master hands a record to each worker it spawns
 * and wipes it when it reaps that process, whatever the way it ended (exit after a reload,
 * crash, kill -9): a dead worker's connections never stay counted.
 *
 * Readers take no lock: a worker counting while another inserts or compacts its record may see
 * one connection fewer for an instant (the limit may be passed by one); counts are never
 * inflated. A record holds 2 x max_connections addresses as sized at start; past that (a
 * reload raised max_connections a lot) new addresses are not counted (fail open, logged once).
 *
 * Interface: ip_board_create (master, or a worker that got no record: private), _record_claim
 * and _record_release (master), _acquire / _release / _count (the worker owning the record).
 * Fatal: out of memory (mmap failure at create aborts).
 */
#ifndef PORTER_IP_BOARD_H
#define PORTER_IP_BOARD_H

#include <stdbool.h>
#include <stddef.h>

struct ip_board;

/* ip_board_create - records of capacity for max_connections each; shared: visible to the
 * processes forked after it (else private to this process) */
struct ip_board *ip_board_create(size_t records, size_t max_connections, bool shared);
/* ip_board_free - unmap (each process that has the board) */
void ip_board_free(struct ip_board *board);
/* ip_board_record_claim - a free record for a new process, or -1 when none is left */
int ip_board_record_claim(struct ip_board *board);
/* ip_board_record_release - the process of the record is gone: forget its connections */
void ip_board_record_release(struct ip_board *board, int record);
/* ip_board_acquire - one more connection from ip in record, unless the whole daemon already
 * has limit of them (false then) */
bool ip_board_acquire(struct ip_board *board, int record, const char *ip, unsigned limit);
/* ip_board_release - one connection from ip in record ended */
void ip_board_release(struct ip_board *board, int record, const char *ip);
/* ip_board_count - connections from ip over every record in use */
unsigned ip_board_count(const struct ip_board *board, const char *ip);

#endif
