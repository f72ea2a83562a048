/*
 * list_file.c - domain, address and word lists from files or inline text (list_file.h).
 *
 * The text is kept in one buffer with a NUL after each word; entries index into one array of
 * word pointers. Matching uses a sorted array of the entries' first words, lowercased without
 * a final dot: a domain costs one binary search for itself and one per parent (".b.c", ".c").
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "list_file.h"
#include "memory.h"

/* The longest domain or address matched, bytes (longer ones match nothing). */
#define LIST_NAME_MAX 512

struct list_entry {
    size_t first_word;   /* index into words */
    size_t word_count;
    int line;
};

struct porter_list {
    char *source;
    char *text;          /* the words, each NUL-terminated */
    char **words;
    size_t word_total;
    struct list_entry *entries;
    size_t count;
    char **keys;         /* first words, lowercased, no final dot, sorted (owned) */
    size_t key_count;
};

static int list_key_compare(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* list_key - name lowercased without a final dot into out; false when it does not fit */
static bool list_key(const char *name, size_t length, char *out, size_t size)
{
    if (length > 0 && name[length - 1] == '.')
        length--;
    if (length >= size)
        return false;
    for (size_t i = 0; i < length; i++)
        out[i] = (char)tolower((unsigned char)name[i]);
    out[length] = '\0';
    return true;
}

/* list_index - the sorted keys for matching */
static void list_index(struct porter_list *list)
{
    list->keys = xcalloc(list->count + 1, sizeof *list->keys);
    for (size_t i = 0; i < list->count; i++) {
        const char *word = list->words[list->entries[i].first_word];
        char *key = xmalloc(strlen(word) + 1);
        list_key(word, strlen(word), key, strlen(word) + 1);
        list->keys[list->key_count++] = key;
    }
    qsort(list->keys, list->key_count, sizeof *list->keys, list_key_compare);
}

/* list_separator - a byte between words: blanks, and commas in inline text */
static bool list_separator(char c, bool lines)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\0' || (!lines && c == ',');
}

/* list_build - split text (length bytes and a NUL, owned by the list from now on) into
 * entries: one per line (lines true) or one per word */
static struct porter_list *list_build(char *text, size_t length, const char *source, bool lines)
{
    struct porter_list *list = xcalloc(1, sizeof *list);
    list->source = xstrdup(source);
    list->text = text;
    size_t word_capacity = 0, entry_capacity = 0;
    int line = 1;
    for (size_t i = 0; i <= length; line++) {
        size_t end = i + strcspn(text + i, "\n"), stop = i;
        while (stop < end && text[stop] != '#')
            stop++;
        bool line_started = false;
        for (size_t p = i; p < stop;) {
            if (list_separator(text[p], lines)) {
                p++;
                continue;
            }
            size_t start = p;
            while (p < stop && !list_separator(text[p], lines))
                p++;
            text[p] = '\0'; /* p <= end <= length: the NUL after the text at most */
            if (list->word_total == word_capacity) {
                word_capacity = word_capacity ? word_capacity * 2 : 16;
                list->words = xrealloc(list->words, word_capacity * sizeof *list->words);
            }
            list->words[list->word_total++] = text + start;
            if (!lines || !line_started) {
                if (list->count == entry_capacity) {
                    entry_capacity = entry_capacity ? entry_capacity * 2 : 16;
                    list->entries = xrealloc(list->entries, entry_capacity * sizeof *list->entries);
                }
                list->entries[list->count++] = (struct list_entry){list->word_total - 1, 0, line};
                line_started = true;
            }
            list->entries[list->count - 1].word_count++;
        }
        i = end + 1;
    }
    list_index(list);
    return list;
}

porter_list *list_load_file(const char *path, char **error)
{
    char *text = NULL;
    size_t length = 0;
    if (config_read_file(path, LIST_FILE_MAX, &text, &length, error) != 0)
        return NULL;
    return list_build(text, length, path, true);
}

porter_list *list_parse(const char *text)
{
    const char *source = text != NULL ? text : "";
    size_t length = strlen(source);
    char *copy = xmalloc(length + 1);
    memcpy(copy, source, length + 1);
    return list_build(copy, length, "inline", false);
}

size_t list_count(const porter_list *list)
{
    return list != NULL ? list->count : 0;
}

const char *list_word(const porter_list *list, size_t index, size_t word)
{
    if (list == NULL || index >= list->count || word >= list->entries[index].word_count)
        return NULL;
    return list->words[list->entries[index].first_word + word];
}

size_t list_word_count(const porter_list *list, size_t index)
{
    return list != NULL && index < list->count ? list->entries[index].word_count : 0;
}

int list_line(const porter_list *list, size_t index)
{
    return list != NULL && index < list->count ? list->entries[index].line : 0;
}

const char *list_source(const porter_list *list)
{
    return list != NULL ? list->source : "";
}

/* list_has - whether key (already lowercased) is one of the list's first words */
static bool list_has(const porter_list *list, const char *key)
{
    return bsearch(&key, list->keys, list->key_count, sizeof *list->keys, list_key_compare) != NULL;
}

/* list_match_key - a lowercased domain: itself, then ".parent" for each parent */
static bool list_match_key(const porter_list *list, const char *domain)
{
    if (domain[0] == '\0')
        return false;
    if (list_has(list, domain))
        return true;
    for (const char *dot = strchr(domain, '.'); dot != NULL; dot = strchr(dot + 1, '.'))
        if (dot[1] != '\0' && list_has(list, dot))
            return true;
    return false;
}

bool list_match_domain(const porter_list *list, const char *domain)
{
    char key[LIST_NAME_MAX];
    if (list == NULL || domain == NULL || !list_key(domain, strlen(domain), key, sizeof key))
        return false;
    return list_match_key(list, key);
}

bool list_match_address(const porter_list *list, const char *address)
{
    char key[LIST_NAME_MAX];
    if (list == NULL || address == NULL || !list_key(address, strlen(address), key, sizeof key))
        return false;
    if (list_has(list, key))
        return true;
    char *at = strrchr(key, '@');
    if (at == NULL)
        return false;
    if (list_has(list, at))
        return true;
    return list_match_key(list, at + 1);
}

void list_free(porter_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->key_count; i++)
        free(list->keys[i]);
    free(list->keys);
    free(list->entries);
    free(list->words);
    free(list->text);
    free(list->source);
    free(list);
}
