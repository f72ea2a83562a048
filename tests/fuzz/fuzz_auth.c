/*
 * fuzz_auth.c - libFuzzer target for the pure parsers of gateway/auth.c (strict base64, the
 * PLAIN message, identities) and gateway/tls.c (tls_protocols, fingerprints): the parts that
 * read what a client or an operator wrote.
 *
 * Input: byte 0 chooses the output room of the base64 decoder (0..255 octets, 0 meaning a
 * large buffer); the rest is the text, run through every parser from an exact-size heap copy
 * so ASan sees any read past the length. The target aborts when:
 *   - auth_base64_decode disagrees with a reference (a lenient decode re-encoded canonically
 *     must give back the input exactly when the input is valid), writes past its room, or
 *     returns octets that do not encode back to the input;
 *   - auth_plain_parse accepts a message without exactly two NULs, with an invalid identity,
 *     or with an empty or overlong password, returns parts outside the data, or refuses a
 *     message the reference accepts;
 *   - auth_identity_valid disagrees with its reference;
 *   - tls_fingerprint_normalize succeeds with something not of the canonical form, or its
 *     output does not normalise to itself;
 *   - tls_protocols_check and tls_protocols_range disagree, or the range is inverted.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "smtp_parse.h"
#include "tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(condition)                                                                 \
    do {                                                                                       \
        if (!(condition)) {                                                                    \
            fprintf(stderr, "fuzz_auth: %s:%d: %s\n", __FILE__, __LINE__, #condition);         \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* encode - canonical base64 of length octets into out (room for 4/3 + 4) */
static size_t encode(const unsigned char *in, size_t length, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < length; i += 3) {
        unsigned long group = (unsigned long)in[i] << 16;
        if (i + 1 < length)
            group |= (unsigned long)in[i + 1] << 8;
        if (i + 2 < length)
            group |= in[i + 2];
        out[n++] = alphabet[group >> 18 & 63];
        out[n++] = alphabet[group >> 12 & 63];
        out[n++] = i + 1 < length ? alphabet[group >> 6 & 63] : '=';
        out[n++] = i + 2 < length ? alphabet[group & 63] : '=';
    }
    return n;
}

/* reference_valid - is text canonical base64? (decode leniently, encode, compare) */
static bool reference_valid(const char *text, size_t length)
{
    if (length % 4 != 0)
        return false;
    size_t padding = 0;
    while (padding < 2 && padding < length && text[length - 1 - padding] == '=')
        padding++;
    size_t octets = length / 4 * 3 - (length ? padding : 0);
    unsigned char *decoded = malloc(length / 4 * 3 + 1);
    size_t n = 0;
    for (size_t i = 0; i < length; i += 4) {
        unsigned long group = 0;
        for (size_t j = 0; j < 4; j++) {
            const char *at = strchr(alphabet, text[i + j]);
            unsigned value = text[i + j] != '\0' && at != NULL ? (unsigned)(at - alphabet) : 0;
            group = group << 6 | value;
        }
        decoded[n++] = (unsigned char)(group >> 16);
        decoded[n++] = (unsigned char)(group >> 8);
        decoded[n++] = (unsigned char)group;
    }
    char *again = malloc(length + 8);
    size_t again_length = encode(decoded, octets, again);
    bool same = again_length == length && memcmp(again, text, length) == 0;
    free(decoded);
    free(again);
    return same;
}

static bool reference_identity(const char *text, size_t length)
{
    if (length == 0 || length > AUTH_IDENTITY_MAX)
        return false;
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            return false;
    }
    return smtp_utf8_valid(text, length);
}

static void fuzz_base64(const char *text, size_t length, size_t room)
{
    size_t size = room ? room : length + 8;
    unsigned char *out = malloc(size + 1);
    out[size] = 0x5A;
    long got = auth_base64_decode(text, length, out, size);
    FUZZ_ASSERT(out[size] == 0x5A);
    bool valid = reference_valid(text, length);
    size_t padding = 0;
    while (valid && padding < 2 && padding < length && text[length - 1 - padding] == '=')
        padding++;
    size_t want = valid ? length / 4 * 3 - padding : 0;
    if (!valid || want > size) {
        FUZZ_ASSERT(got == -1);
    } else {
        FUZZ_ASSERT(got == (long)want);
        char *again = malloc(length + 8);
        FUZZ_ASSERT(encode(out, (size_t)got, again) == length);
        FUZZ_ASSERT(memcmp(again, text, length) == 0);
        free(again);
    }
    free(out);
}

static void fuzz_plain(const unsigned char *data, size_t length)
{
    struct auth_plain out;
    int got = auth_plain_parse(data, length, &out);
    size_t nuls = 0, first = 0, second = 0;
    for (size_t i = 0; i < length; i++) {
        if (data[i] == '\0') {
            if (nuls == 0)
                first = i;
            else if (nuls == 1)
                second = i;
            nuls++;
        }
    }
    bool want = nuls == 2 &&
                (first == 0 || reference_identity((const char *)data, first)) &&
                reference_identity((const char *)data + first + 1, second - first - 1) &&
                length - second - 1 >= 1 && length - second - 1 <= AUTH_PASSWORD_MAX;
    FUZZ_ASSERT((got == 0) == want);
    if (got != 0)
        return;
    const char *begin = (const char *)data, *end = (const char *)data + length;
    FUZZ_ASSERT(out.authzid == begin && out.authzid_length == first);
    FUZZ_ASSERT(out.authcid > begin && out.authcid + out.authcid_length <= end);
    FUZZ_ASSERT(out.password > out.authcid && out.password + out.password_length == end);
    FUZZ_ASSERT(out.authzid_length + out.authcid_length + out.password_length + 2 == length);
}

static void fuzz_tls(const char *text)
{
    char out[96];
    if (tls_fingerprint_normalize(text, out, sizeof out) == 0) {
        FUZZ_ASSERT(strlen(out) == 95);
        for (size_t i = 0; i < 95; i++)
            FUZZ_ASSERT(i % 3 == 2 ? out[i] == ':' : strchr("0123456789ABCDEF", out[i]) != NULL);
        char again[96];
        FUZZ_ASSERT(tls_fingerprint_normalize(out, again, sizeof again) == 0);
        FUZZ_ASSERT(strcmp(out, again) == 0);
    }
    int minimum = 0, maximum = 0;
    const char *why = tls_protocols_check(text);
    int range = tls_protocols_range(text, &minimum, &maximum);
    FUZZ_ASSERT((why == NULL) == (range == 0));
    if (range == 0)
        FUZZ_ASSERT(minimum <= maximum);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 20000)
        return 0;
    size_t room = data[0];
    size_t length = size - 1;
    char *text = malloc(length + 1);
    memcpy(text, data + 1, length);
    text[length] = '\0';
    fuzz_base64(text, length, room);
    unsigned char *bytes = malloc(length ? length : 1);
    memcpy(bytes, data + 1, length);
    fuzz_plain(bytes, length);
    FUZZ_ASSERT(auth_identity_valid(text, length) == reference_identity(text, length));
    free(bytes);
    if (memchr(text, '\0', length) == NULL)
        fuzz_tls(text);
    free(text);
    return 0;
}
