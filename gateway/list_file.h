/*
 * list_file.h - the lists administrators give plugins: domains, addresses, and lines of words
 * (a key table, an override file), from a file or inline in a plugin argument.
 *
 * Interface: list_load_file (a file: one entry per line), list_parse (inline text: entries
 * separated by commas or blanks), accessors for entries, their words and line numbers, and
 * matching of domains and addresses. Plugins get them through the API table (porter_list_*,
 * porter_arg_list; plugin_args.c reads the argument).
 *
 * Syntax: '#' comments out the rest of a line; blank lines and the blanks around words are
 * dropped; an entry of a file is the words of one line, an entry of inline text one word.
 * Matching (list_match_domain, list_match_address) looks at each entry's first word,
 * case-insensitively, a final dot ignored: "example.com" is that domain, ".example.com" its
 * subdomains (not itself), "user@example.com" one address, "@example.com" every address at
 * exactly that domain. IP networks are not for this list: porter_arg_cidr reads those.
 *
 * Errors are malloc'd messages ("PATH: cannot open: ..."); nothing is fatal but out of memory.
 * A list is immutable once made, so reading and matching are thread-safe. The caller owns a
 * list and frees it with list_free (NULL is fine).
 */
#ifndef PORTER_LIST_FILE_H
#define PORTER_LIST_FILE_H

#include <stdbool.h>
#include <stddef.h>

#ifndef PORTER_CORE
#define PORTER_CORE
#endif
#include <porter/plugin.h>

/* The largest file list_load_file reads, in bytes. */
#define LIST_FILE_MAX (64 * 1024 * 1024)

/* list_load_file - the list in the file at path; NULL with *error set (caller frees) */
porter_list *list_load_file(const char *path, char **error);
/* list_parse - a list from inline text (NULL reads as "": an empty list); never NULL */
porter_list *list_parse(const char *text);
size_t list_count(const porter_list *list);
/* list_word - word number word (0: the first) of entry index; NULL past either end */
const char *list_word(const porter_list *list, size_t index, size_t word);
size_t list_word_count(const porter_list *list, size_t index);
/* list_line - the line entry index is on (1: the first; inline entries: 1); 0 past the end */
int list_line(const porter_list *list, size_t index);
/* list_source - the file's path, or "inline" */
const char *list_source(const porter_list *list);
/* list_match_domain - whether domain is on the list (false for NULL) */
bool list_match_domain(const porter_list *list, const char *domain);
/* list_match_address - whether address (local@domain) is on the list, as itself, by
 * "@domain", or by its domain as list_match_domain sees it (false for NULL) */
bool list_match_address(const porter_list *list, const char *address);
void list_free(porter_list *list);

#endif
