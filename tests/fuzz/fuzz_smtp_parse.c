/*
 * fuzz_smtp_parse.c - libFuzzer target for gateway/smtp_parse.c.
 *
 * Input: byte 0 chooses the path kind (bit 0), SMTPUTF8 (bit 1), the limits profile (bits 2-3)
 * and the xtext output size (bits 4-7); the rest is one command line without CRLF. Every
 * parser runs on it, from exact-size heap copies so ASan sees any read past the length, and
 * the target aborts when:
 *   - smtp_parse_command's verdict differs from a plain reference (controls, blank lines), or
 *     its argument lies outside the line, starts with a space or ends with a blank;
 *   - smtp_parse_path succeeds with a result that breaks its contract: address not
 *     local_part "@" domain, a limit exceeded, non-ASCII without SMTPUTF8, malformed UTF-8,
 *     a keyword not upper-case or duplicated, a bad value - or when the canonical form
 *     "FROM:<address> KEY=value ..." does not parse back to the same result;
 *   - smtp_parse_path fails without a 501/553 reply, or leaves the path filled;
 *   - smtp_parse_bdat disagrees with a reference, or changes its outputs on failure;
 *   - smtp_xtext_decode's result does not survive encode + decode, or overflows out;
 *   - smtp_domain_valid accepts a name that smtp_parse_path refuses as a domain;
 *   - smtp_utf8_valid disagrees with a code-point-decoding reference.
 */
#include "config.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(condition)                                                                 \
    do {                                                                                       \
        if (!(condition)) {                                                                    \
            fprintf(stderr, "fuzz_smtp_parse: %s:%d: %s\n", __FILE__, __LINE__, #condition);   \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

/* copy_exact - a heap copy of exactly length octets (no NUL), for ASan */
static char *copy_exact(const uint8_t *bytes, size_t length)
{
    char *copy = malloc(length ? length : 1);
    if (copy == NULL)
        abort();
    if (length)
        memcpy(copy, bytes, length);
    return copy;
}

/* copy_string - a NUL-terminated heap copy */
static char *copy_string(const uint8_t *bytes, size_t length)
{
    char *copy = malloc(length + 1);
    if (copy == NULL)
        abort();
    if (length)
        memcpy(copy, bytes, length);
    copy[length] = '\0';
    return copy;
}

/* ---------------------------------------------------------------- references */

/* reference_utf8_valid - decode code points, then judge them (a different method) */
static bool reference_utf8_valid(const unsigned char *p, size_t length)
{
    size_t i = 0;
    while (i < length) {
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t code;
        if ((c & 0xe0) == 0xc0) {
            n = 2;
            code = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 3;
            code = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 4;
            code = c & 0x07;
        } else {
            return false;
        }
        if (length - i < n)
            return false;
        for (size_t k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            code = (code << 6) | (p[i + k] & 0x3f);
        }
        static const uint32_t smallest[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (code < smallest[n] || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
            return false;
        i += n;
    }
    return true;
}

/* reference_command_rc - what smtp_parse_command must return */
static int reference_command_rc(const unsigned char *line, size_t length)
{
    bool blank = true;
    for (size_t i = 0; i < length; i++) {
        if ((line[i] < 0x20 && line[i] != '\t') || line[i] == 0x7f)
            return -1;
        if (line[i] != ' ' && line[i] != '\t')
            blank = false;
    }
    return blank ? -1 : 0;
}

/* ---------------------------------------------------------------- checks */

static void check_command(const uint8_t *bytes, size_t length)
{
    char *line = copy_exact(bytes, length);
    struct smtp_command command;
    int rc = smtp_parse_command(line, length, &command);
    FUZZ_ASSERT(rc == reference_command_rc(bytes, length));
    if (rc == 0) {
        FUZZ_ASSERT((unsigned)command.verb < SMTP_VERB_COUNT);
        FUZZ_ASSERT(command.argument != NULL);
        if (command.argument_length > 0) {
            FUZZ_ASSERT(command.argument > line);
            FUZZ_ASSERT(command.argument + command.argument_length <= line + length);
            FUZZ_ASSERT(command.argument[0] != ' ');
            char tail = command.argument[command.argument_length - 1];
            FUZZ_ASSERT(tail != ' ' && tail != '\t');
            FUZZ_ASSERT(command.argument[-1] == ' ');
        }
        if (command.verb != SMTP_VERB_UNKNOWN) {
            const char *name = smtp_verb_name(command.verb);
            size_t n = strlen(name);
            FUZZ_ASSERT(length >= n && strncasecmp(line, name, n) == 0);
            FUZZ_ASSERT(n == length || line[n] == ' ' || line[n] == '\t');
        }
    }
    free(line);
}

/* render_path - the canonical argument for a parsed path; NULL when it does not fit */
static char *render_path(const struct smtp_path *path, enum smtp_path_kind kind)
{
    size_t size = 64 + strlen(path->address);
    for (size_t i = 0; i < path->param_count; i++)
        size += 3 + strlen(path->params[i].keyword) +
                (path->params[i].value ? strlen(path->params[i].value) : 0);
    char *out = malloc(size);
    if (out == NULL)
        abort();
    size_t used = (size_t)snprintf(out, size, "%s<%s>", kind == SMTP_PATH_REVERSE ? "from:" : "to:",
                                   path->address);
    for (size_t i = 0; i < path->param_count; i++)
        used += (size_t)snprintf(out + used, size - used, " %s%s%s", path->params[i].keyword,
                                 path->params[i].value ? "=" : "",
                                 path->params[i].value ? path->params[i].value : "");
    FUZZ_ASSERT(used < size);
    return out;
}

static bool has_8bit(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return true;
    return false;
}

static void check_path_result(const struct smtp_path *path, enum smtp_path_kind kind,
                              const struct smtp_parse_limits *limits)
{
    FUZZ_ASSERT(path->address && path->local_part && path->domain);
    size_t local = strlen(path->local_part), domain = strlen(path->domain);
    size_t address = strlen(path->address);
    FUZZ_ASSERT(local <= limits->max_local_part);
    FUZZ_ASSERT(domain <= limits->max_domain);
    FUZZ_ASSERT(address + 2 <= limits->max_path);
    if (address == 0) {
        FUZZ_ASSERT(kind == SMTP_PATH_REVERSE && local == 0 && domain == 0);
    } else if (domain == 0) {
        FUZZ_ASSERT(kind == SMTP_PATH_FORWARD && strcasecmp(path->address, "postmaster") == 0);
        FUZZ_ASSERT(strcmp(path->local_part, path->address) == 0);
    } else {
        FUZZ_ASSERT(address == local + 1 + domain);
        FUZZ_ASSERT(memcmp(path->address, path->local_part, local) == 0);
        FUZZ_ASSERT(path->address[local] == '@');
        FUZZ_ASSERT(strcmp(path->address + local + 1, path->domain) == 0);
        FUZZ_ASSERT(local > 0);
        if (path->domain[0] != '[' && domain <= 255)
            FUZZ_ASSERT(smtp_domain_valid(path->domain, true));
    }
    bool smtputf8 = kind == SMTP_PATH_REVERSE && smtp_path_param(path, "SMTPUTF8") != NULL;
    bool allowed = limits->allow_utf8 || smtputf8;
    if (has_8bit(path->address))
        FUZZ_ASSERT(path->utf8); /* utf8 may also come from a dropped source route */
    if (path->utf8)
        FUZZ_ASSERT(allowed);
    FUZZ_ASSERT(reference_utf8_valid((const unsigned char *)path->address, address));
    FUZZ_ASSERT(path->param_count <= SMTP_PARAM_MAX);
    bool values_8bit = false;
    for (size_t i = 0; i < path->param_count; i++) {
        const char *keyword = path->params[i].keyword;
        FUZZ_ASSERT(keyword != NULL && keyword[0] != '\0' && keyword[0] != '-');
        for (const char *p = keyword; *p; p++)
            FUZZ_ASSERT((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-');
        for (size_t j = 0; j < i; j++)
            FUZZ_ASSERT(strcmp(path->params[j].keyword, keyword) != 0);
        const char *value = path->params[i].value;
        if (value != NULL) {
            FUZZ_ASSERT(value[0] != '\0');
            for (const char *p = value; *p; p++) {
                unsigned char c = (unsigned char)*p;
                FUZZ_ASSERT(c > ' ' && c != '=' && c != 0x7f);
                if (c >= 0x80)
                    values_8bit = true;
            }
            FUZZ_ASSERT(reference_utf8_valid((const unsigned char *)value, strlen(value)));
        }
    }
    FUZZ_ASSERT(path->params_utf8 == values_8bit);
    if (values_8bit)
        FUZZ_ASSERT(allowed);
}

static bool same_path(const struct smtp_path *a, const struct smtp_path *b)
{
    if (strcmp(a->address, b->address) != 0 || strcmp(a->local_part, b->local_part) != 0 ||
        strcmp(a->domain, b->domain) != 0 || a->param_count != b->param_count ||
        a->params_utf8 != b->params_utf8)
        return false;
    for (size_t i = 0; i < a->param_count; i++) {
        if (strcmp(a->params[i].keyword, b->params[i].keyword) != 0)
            return false;
        if ((a->params[i].value == NULL) != (b->params[i].value == NULL))
            return false;
        if (a->params[i].value != NULL && strcmp(a->params[i].value, b->params[i].value) != 0)
            return false;
    }
    return true;
}

static bool path_is_empty(const struct smtp_path *path)
{
    return path->address == NULL && path->local_part == NULL && path->domain == NULL &&
           path->param_count == 0;
}

static void check_path(const char *argument, size_t length, enum smtp_path_kind kind,
                       const struct smtp_parse_limits *limits)
{
    struct smtp_path path;
    struct smtp_parse_error error = {0};
    int rc = smtp_parse_path(argument, length, kind, limits, &path, &error);
    struct smtp_parse_limits defaults = SMTP_PARSE_LIMITS_DEFAULT;
    if (limits == NULL)
        limits = &defaults;
    if (rc != 0) {
        FUZZ_ASSERT(rc == -1);
        FUZZ_ASSERT(error.code == 501 || error.code == 553);
        FUZZ_ASSERT(error.enhanced != NULL && error.text != NULL && error.text[0] != '\0');
        FUZZ_ASSERT(path_is_empty(&path));
        smtp_path_clear(&path);
        return;
    }
    check_path_result(&path, kind, limits);
    char *canonical = render_path(&path, kind);
    struct smtp_path again;
    rc = smtp_parse_path(canonical, strlen(canonical), kind, limits, &again, &error);
    if (rc != 0)
        fprintf(stderr, "canonical \"%s\" refused: %d %s %s\n", canonical, error.code,
                error.enhanced, error.text);
    FUZZ_ASSERT(rc == 0);
    FUZZ_ASSERT(same_path(&path, &again));
    smtp_path_clear(&again);
    free(canonical);
    smtp_path_clear(&path);
    FUZZ_ASSERT(path_is_empty(&path));
}

static void check_bdat(const uint8_t *bytes, size_t length)
{
    char *argument = copy_exact(bytes, length);
    unsigned long long size = 42;
    bool last = true;
    int rc = smtp_parse_bdat(argument, length, &size, &last);

    /* reference: digits, then blanks, then optionally LAST and blanks */
    size_t i = 0;
    while (i < length && bytes[i] >= '0' && bytes[i] <= '9')
        i++;
    size_t digits = i;
    bool want_last = false, ok = digits > 0 && digits <= 20;
    if (ok && i < length && bytes[i] != ' ')
        ok = false;
    while (ok && i < length && bytes[i] == ' ')
        i++;
    if (ok && i < length) {
        ok = length - i >= 4 && strncasecmp(argument + i, "LAST", 4) == 0;
        want_last = true;
        i += 4;
        while (ok && i < length && bytes[i] == ' ')
            i++;
        ok = ok && i == length;
    }
    unsigned long long want = 0;
    if (ok) {
        /* overflow by comparing digit strings against ULLONG_MAX, not by arithmetic */
        char text[32];
        memcpy(text, argument, digits);
        text[digits] = '\0';
        const char *significant = text;
        while (*significant == '0' && significant[1] != '\0')
            significant++;
        char max[32];
        snprintf(max, sizeof max, "%llu", ULLONG_MAX);
        size_t n = strlen(significant);
        if (n > strlen(max) || (n == strlen(max) && strcmp(significant, max) > 0))
            ok = false;
        else
            want = strtoull(significant, NULL, 10);
    }
    FUZZ_ASSERT((rc == 0) == ok);
    if (ok)
        FUZZ_ASSERT(size == want && last == want_last);
    else
        FUZZ_ASSERT(size == 42 && last == true);
    free(argument);
}

static void check_xtext(const uint8_t *bytes, size_t length, size_t out_size)
{
    char *in = copy_string(bytes, length);
    char *out = malloc(out_size ? out_size : 1);
    if (out == NULL)
        abort();
    int rc = smtp_xtext_decode(in, out, out_size);
    if (rc >= 0) {
        FUZZ_ASSERT((size_t)rc < out_size && out[rc] == '\0' && strlen(out) == (size_t)rc);
        /* encode canonically and decode again */
        char *encoded = malloc((size_t)rc * 3 + 1);
        char *decoded = malloc((size_t)rc + 1);
        if (encoded == NULL || decoded == NULL)
            abort();
        size_t used = 0;
        for (int i = 0; i < rc; i++) {
            unsigned char c = (unsigned char)out[i];
            if (c < 33 || c > 126 || c == '+' || c == '=')
                used += (size_t)sprintf(encoded + used, "+%02X", c);
            else
                encoded[used++] = (char)c;
        }
        encoded[used] = '\0';
        int again = smtp_xtext_decode(encoded, decoded, (size_t)rc + 1);
        FUZZ_ASSERT(again == rc && memcmp(decoded, out, (size_t)rc + 1) == 0);
        free(encoded);
        free(decoded);
    }
    free(out);
    free(in);
}

static void check_domain(const uint8_t *bytes, size_t length, bool allow_utf8)
{
    char *name = copy_string(bytes, length);
    bool valid = smtp_domain_valid(name, allow_utf8);
    size_t n = strlen(name);
    if (valid) {
        FUZZ_ASSERT(n > 0 && n <= 255);
        if (!allow_utf8)
            FUZZ_ASSERT(!has_8bit(name));
        /* a valid name without HELO's extras is a valid path domain too */
        if (strchr(name, '_') == NULL && name[n - 1] != '.') {
            char *argument = malloc(n + 16);
            if (argument == NULL)
                abort();
            int length_argument = snprintf(argument, n + 16, "TO:<x@%s>", name);
            struct smtp_parse_limits limits = SMTP_PARSE_LIMITS_DEFAULT;
            limits.max_path = 1000;
            limits.allow_utf8 = true;
            struct smtp_path path;
            struct smtp_parse_error error;
            int rc = smtp_parse_path(argument, (size_t)length_argument, SMTP_PATH_FORWARD,
                                     &limits, &path, &error);
            if (rc != 0)
                fprintf(stderr, "HELO name \"%s\" refused as a domain: %s\n", name, error.text);
            FUZZ_ASSERT(rc == 0 && strcmp(path.domain, name) == 0);
            smtp_path_clear(&path);
            free(argument);
        }
    }
    free(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t control = data[0];
    const uint8_t *line = data + 1;
    size_t length = size - 1;
    if (length > 4096)
        return 0;

    enum smtp_path_kind kind = (control & 1) ? SMTP_PATH_FORWARD : SMTP_PATH_REVERSE;
    static const struct smtp_parse_limits profiles[4] = {
        {64, 255, 256, false},
        {3, 5, 12, false},
        {1000, 1000, 4000, false},
        {0, 0, 0, false},
    };
    struct smtp_parse_limits limits = profiles[(control >> 2) & 3];
    limits.allow_utf8 = (control & 2) != 0;
    size_t out_size = (size_t)(control >> 4) * 8;

    check_command(line, length);
    FUZZ_ASSERT(smtp_utf8_valid((const char *)line, length) == reference_utf8_valid(line, length));

    /* the argument as given, and as the session would pass it after the command parser */
    char *argument = copy_exact(line, length);
    check_path(argument, length, kind, &limits);
    check_path(argument, length, kind, NULL);
    struct smtp_command command;
    if (smtp_parse_command(argument, length, &command) == 0 &&
        (command.verb == SMTP_VERB_MAIL || command.verb == SMTP_VERB_RCPT)) {
        char *exact = copy_exact((const uint8_t *)command.argument, command.argument_length);
        check_path(exact, command.argument_length,
                   command.verb == SMTP_VERB_MAIL ? SMTP_PATH_REVERSE : SMTP_PATH_FORWARD, &limits);
        free(exact);
    }
    free(argument);

    check_bdat(line, length);
    check_xtext(line, length, out_size);
    check_domain(line, length, (control & 2) != 0);
    return 0;
}
