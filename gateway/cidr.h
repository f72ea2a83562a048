/*
 * cidr.h - lists of IP networks ("10.0.0.0/8, 2001:db8::/32") and matching addresses on them.
 *
 * Interface: cidr_parse (text), cidr_load_file (a file), cidr_match (a textual address),
 * cidr_match_sockaddr, cidr_count, cidr_free. Plugins get cidr_match and cidr_free through the
 * API table (porter_cidr_match, porter_cidr_free) and lists from porter_arg_cidr.
 *
 * Entries: an IPv4 address, IPv4/prefix, an IPv6 address or IPv6/prefix, separated by commas,
 * spaces, tabs or line ends; '#' comments out the rest of a line. An entry whose address has
 * bits set beyond its prefix ("10.1.2.3/8") is refused with a suggestion ("10.0.0.0/8"): it is
 * almost always a typo, and guessing wrong widens or narrows an access list silently.
 * IPv4-mapped IPv6 addresses (::ffff:1.2.3.4) are IPv4 addresses: they match IPv4 entries,
 * and an entry inside ::ffff:0:0/96 is stored as the IPv4 entry it means. IPv6 entries do not
 * match IPv4 addresses (so ::/0 means every IPv6 address, not every address).
 *
 * Errors are returned as malloc'd messages naming the bad entry; nothing is fatal but out of
 * memory. Lists are immutable after parsing: cidr_match and cidr_match_sockaddr are pure and
 * thread-safe. The caller owns a list and frees it with cidr_free (NULL is fine).
 */
#ifndef PORTER_CIDR_H
#define PORTER_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#ifndef PORTER_CORE
#define PORTER_CORE
#endif
#include <porter/plugin.h>

/* The largest file cidr_load_file reads, in bytes. */
#define CIDR_FILE_MAX (64 * 1024 * 1024)

/* One network. */
struct cidr_entry {
    unsigned char family;      /* 4 or 6 */
    unsigned char prefix;      /* 0-32 or 0-128 */
    unsigned char address[16]; /* IPv4 in the first 4 bytes; host bits are zero */
};

struct porter_cidr_list {
    struct cidr_entry *entries;
    size_t count;
};

/* cidr_parse - a list from text (NULL reads as ""); NULL with *error set (caller frees) on a
 * bad entry. An empty text gives an empty list, which matches nothing. */
porter_cidr_list *cidr_parse(const char *text, char **error);
/* cidr_load_file - the same from the file at path; errors read "PATH:LINE: ..." */
porter_cidr_list *cidr_load_file(const char *path, char **error);
/* cidr_match - whether ip (textual IPv4 or IPv6) is on the list; false for NULL or a bad ip */
bool cidr_match(const porter_cidr_list *list, const char *ip);
/* cidr_match_sockaddr - the same for an AF_INET or AF_INET6 socket address */
bool cidr_match_sockaddr(const porter_cidr_list *list, const struct sockaddr *sa);
size_t cidr_count(const porter_cidr_list *list);
void cidr_free(porter_cidr_list *list);

#endif
