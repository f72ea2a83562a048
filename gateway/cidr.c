/*
 * cidr.c - lists of IP networks and matching addresses on them (see cidr.h).
 *
 * Every entry is stored as a family (4 or 6), a prefix length and the network's bytes with the
 * host bits zero; an IPv4-mapped IPv6 address or entry is turned into its IPv4 form once, at
 * parse or match time, so matching compares like with like. Matching is a linear scan: the
 * lists this serves (relay networks, allow and deny lists) are short, and a scan over a
 * packed array is fast enough for thousands of entries.
 *
 * Fatal: out of memory. Memory: the caller owns a list (cidr_free) and error messages.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "memory.h"

/* The longest entry: an IPv6 address in its longest spelling plus "/128". */
#define CIDR_ENTRY_MAX 64

/* cidr_is_separator - what separates entries */
static bool cidr_is_separator(char c)
{
    return c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* cidr_is_mapped - whether 16 bytes are an IPv4-mapped IPv6 address (::ffff:a.b.c.d) */
static bool cidr_is_mapped(const unsigned char *bytes)
{
    static const unsigned char prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(bytes, prefix, sizeof prefix) == 0;
}

/* cidr_mask - zero the bits of bytes after the first prefix bits; whether any was set */
static bool cidr_mask(unsigned char *bytes, size_t size, unsigned prefix)
{
    bool changed = false;
    for (size_t i = 0; i < size; i++) {
        unsigned keep = prefix >= (i + 1) * 8 ? 8 : prefix > i * 8 ? prefix - (unsigned)i * 8 : 0;
        unsigned char mask = keep == 0 ? 0 : (unsigned char)(0xff << (8 - keep));
        if ((bytes[i] & ~mask) != 0)
            changed = true;
        bytes[i] &= mask;
    }
    return changed;
}

/* cidr_entry_parse - one entry; NULL, or an error message (caller frees) */
static char *cidr_entry_parse(const char *text, size_t length, struct cidr_entry *out)
{
    for (size_t i = 0; i < length; i++) {
        char c = text[i];
        bool allowed = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                       (c >= 'A' && c <= 'F') || c == '.' || c == ':' || c == '/';
        if (allowed)
            continue;
        if (c > 0x20 && c < 0x7f && length <= CIDR_ENTRY_MAX)
            return xasprintf("'%.*s' is not an IPv4 or IPv6 address or network", (int)length,
                             text);
        return xstrdup("an entry has a character that is not allowed (want addresses like "
                       "192.0.2.0/24 or 2001:db8::/32)");
    }
    if (length > CIDR_ENTRY_MAX)
        return xasprintf("'%.*s...' is too long for an address", 20, text);

    char buffer[CIDR_ENTRY_MAX + 1];
    memcpy(buffer, text, length);
    buffer[length] = '\0';
    memset(out, 0, sizeof *out);
    bool v6 = strchr(buffer, ':') != NULL;
    unsigned maximum = v6 ? 128 : 32;
    unsigned prefix = maximum;
    char *slash = strchr(buffer, '/');
    if (slash != NULL) {
        *slash = '\0';
        const char *digits = slash + 1;
        size_t count = strspn(digits, "0123456789");
        prefix = 0;
        for (size_t i = 0; i < count && i < 4; i++)
            prefix = prefix * 10 + (unsigned)(digits[i] - '0');
        if (count == 0 || count > 3 || digits[count] != '\0' || prefix > maximum)
            return xasprintf("'%.*s' has a bad prefix length (want 0 to %u)", (int)length, text,
                             maximum);
    }
    if (inet_pton(v6 ? AF_INET6 : AF_INET, buffer, out->address) != 1)
        return xasprintf("'%.*s' is not an IPv4 or IPv6 address or network", (int)length, text);

    unsigned char masked[16];
    memcpy(masked, out->address, sizeof masked);
    if (cidr_mask(masked, v6 ? 16 : 4, prefix)) {
        char suggestion[INET6_ADDRSTRLEN];
        inet_ntop(v6 ? AF_INET6 : AF_INET, masked, suggestion, sizeof suggestion);
        return xasprintf("'%.*s' has address bits set after the prefix (did you mean %s/%u?)",
                         (int)length, text, suggestion, prefix);
    }
    out->family = v6 ? 6 : 4;
    out->prefix = (unsigned char)prefix;
    if (v6 && prefix >= 96 && cidr_is_mapped(out->address)) {
        memmove(out->address, out->address + 12, 4);
        memset(out->address + 4, 0, 12);
        out->family = 4;
        out->prefix = (unsigned char)(prefix - 96);
    }
    return NULL;
}

/* cidr_parse_text - add the entries of length bytes to list; 0, or -1 with *error and *line */
static int cidr_parse_text(struct porter_cidr_list *list, const char *text, size_t length,
                           char **error, int *line)
{
    size_t capacity = list->count;
    size_t i = 0;
    *line = 1;
    while (i < length) {
        char c = text[i];
        if (c == '\n')
            ++*line;
        if (cidr_is_separator(c)) {
            i++;
            continue;
        }
        if (c == '#') {
            while (i < length && text[i] != '\n')
                i++;
            continue;
        }
        size_t start = i;
        while (i < length && !cidr_is_separator(text[i]) && text[i] != '#')
            i++;
        struct cidr_entry entry;
        *error = cidr_entry_parse(text + start, i - start, &entry);
        if (*error != NULL)
            return -1;
        if (list->count == capacity) {
            capacity = capacity == 0 ? 8 : capacity * 2;
            list->entries = xrealloc(list->entries, capacity * sizeof *list->entries);
        }
        list->entries[list->count++] = entry;
    }
    return 0;
}

porter_cidr_list *cidr_parse(const char *text, char **error)
{
    struct porter_cidr_list *list = xcalloc(1, sizeof *list);
    int line;
    if (text != NULL && cidr_parse_text(list, text, strlen(text), error, &line) != 0) {
        cidr_free(list);
        return NULL;
    }
    return list;
}

porter_cidr_list *cidr_load_file(const char *path, char **error)
{
    char *text = NULL, *message = NULL;
    size_t length = 0;
    if (config_read_file(path, CIDR_FILE_MAX, &text, &length, error) != 0)
        return NULL;
    struct porter_cidr_list *list = xcalloc(1, sizeof *list);
    int line;
    if (cidr_parse_text(list, text, length, &message, &line) != 0) {
        *error = xasprintf("%s:%d: %s", path, line, message);
        free(message);
        cidr_free(list);
        list = NULL;
    }
    free(text);
    return list;
}

/* cidr_prefix_equal - whether a and b agree on their first prefix bits */
static bool cidr_prefix_equal(const unsigned char *a, const unsigned char *b, unsigned prefix)
{
    size_t whole = prefix / 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    unsigned rest = prefix % 8;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

/* cidr_match_bytes - whether an address (family 4 or 6, mapped addresses already IPv4) is on
 * the list */
static bool cidr_match_bytes(const porter_cidr_list *list, unsigned family,
                             const unsigned char *bytes)
{
    if (list == NULL)
        return false;
    for (size_t i = 0; i < list->count; i++) {
        const struct cidr_entry *e = &list->entries[i];
        if (e->family == family && cidr_prefix_equal(e->address, bytes, e->prefix))
            return true;
    }
    return false;
}

/* cidr_match_v6 - match 16 bytes of IPv6 address, as IPv4 when it is IPv4-mapped */
static bool cidr_match_v6(const porter_cidr_list *list, const unsigned char *bytes)
{
    if (cidr_is_mapped(bytes))
        return cidr_match_bytes(list, 4, bytes + 12);
    return cidr_match_bytes(list, 6, bytes);
}

bool cidr_match(const porter_cidr_list *list, const char *ip)
{
    if (list == NULL || ip == NULL)
        return false;
    char buffer[CIDR_ENTRY_MAX];
    size_t length = strcspn(ip, "%"); /* a zone ("fe80::1%eth0") does not change the address */
    if (length >= sizeof buffer)
        return false;
    memcpy(buffer, ip, length);
    buffer[length] = '\0';
    unsigned char bytes[16];
    if (inet_pton(AF_INET, buffer, bytes) == 1)
        return cidr_match_bytes(list, 4, bytes);
    if (inet_pton(AF_INET6, buffer, bytes) == 1)
        return cidr_match_v6(list, bytes);
    return false;
}

bool cidr_match_sockaddr(const porter_cidr_list *list, const struct sockaddr *sa)
{
    if (list == NULL || sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)(const void *)sa;
        return cidr_match_bytes(list, 4, (const unsigned char *)&v4->sin_addr);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)(const void *)sa;
        return cidr_match_v6(list, v6->sin6_addr.s6_addr);
    }
    return false;
}

size_t cidr_count(const porter_cidr_list *list)
{
    return list != NULL ? list->count : 0;
}

void cidr_free(porter_cidr_list *list)
{
    if (list == NULL)
        return;
    free(list->entries);
    free(list);
}
