/*
 * testlib.h - helpers the cmocka unit tests share: a printable form of bytes for failure
 * messages, and a byte-string comparison that fails showing both sides.
 *
 * Header-only (static inline, so a test that uses one of them does not warn about the other);
 * include it after <cmocka.h>. Memory: nothing is allocated; escape writes into the caller's
 * buffer and returns it.
 */
#ifndef PORTER_TESTLIB_H
#define PORTER_TESTLIB_H

#include <stdio.h>
#include <string.h>

/* escape - bytes as text: \r \n \t, other control, 8-bit bytes and the backslash as \xNN;
 * cut to fit size (at least 6) */
static inline const char *escape(const char *bytes, size_t length, char *out, size_t size)
{
    size_t used = 0;
    for (size_t i = 0; i < length && used + 5 < size; i++) {
        unsigned char c = (unsigned char) bytes[i];
        if (c == '\r')
            used += (size_t) snprintf(out + used, size - used, "\\r");
        else if (c == '\n')
            used += (size_t) snprintf(out + used, size - used, "\\n");
        else if (c == '\t')
            used += (size_t) snprintf(out + used, size - used, "\\t");
        else if (c < 32 || c >= 127 || c == '\\')
            used += (size_t) snprintf(out + used, size - used, "\\x%02x", c);
        else
            out[used++] = (char) c;
    }
    out[used] = '\0';
    return out;
}

/* check_bytes - fail with "got X, want Y" when two byte strings differ */
static inline void check_bytes(const char *what, const char *got, size_t got_length,
                               const char *want, size_t want_length)
{
    if (got_length == want_length && memcmp(got, want, got_length) == 0)
        return;
    char a[4096], b[4096];
    fail_msg("%s: got \"%s\" (%zu bytes), want \"%s\" (%zu bytes)", what,
             escape(got, got_length, a, sizeof a), got_length,
             escape(want, want_length, b, sizeof b), want_length);
}

#endif
