/*
 * fuzz_daemon_answers.c - libFuzzer target for the answer parsers of the plugins that talk
 * to local daemons: clamd's INSTREAM answer (native-plugins/clamd.c), spamd's answer to
 * SYMBOLS and the X-Spam-Status folding (native-plugins/spamassassin.c), p0f's API answer
 * and deny_os= matching (native-plugins/p0f.c).
 *
 * Input: the first byte picks the parser (modulo their number), the rest is the daemon's
 * answer, copied into a heap block of its exact size plus the NUL daemon_talk adds, so that
 * ASan sees any read past it. The target aborts when a parser gives a result outside its
 * enum, writes a name that is not NUL-terminated within its buffer or holds a byte the
 * cleaning must have replaced, or disagrees with itself on the same input.
 * The plugins' .c files are included (their parsers are static); PORTER_PLUGIN is redefined
 * so that each descriptor is a local, unused object instead of the exported symbol.
 * Memory: the copy is freed before returning.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <porter/plugin.h>

#undef PORTER_PLUGIN
#define PORTER_PLUGIN_LOCAL2(number, ...)                                                          \
    __attribute__((unused)) static const struct porter_plugin fuzz_descriptor_##number = {         \
        .abi = PORTER_PLUGIN_ABI, __VA_ARGS__}
#define PORTER_PLUGIN_LOCAL(number, ...) PORTER_PLUGIN_LOCAL2(number, __VA_ARGS__)
#define PORTER_PLUGIN(...) PORTER_PLUGIN_LOCAL(__COUNTER__, __VA_ARGS__)
const struct porter_api *porter_api;

#include "../../native-plugins/clamd.c"
#include "../../native-plugins/spamassassin.c"
#include "../../native-plugins/p0f.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* check_clean - a name as the plugins log and reply it: terminated, printable, no quotes */
static void check_clean(const char *name, size_t size)
{
    size_t length = strnlen(name, size);
    if (length == size)
        abort();
    for (size_t i = 0; i < length; i++)
        if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] >= 0x7f || name[i] == '"' ||
            name[i] == '\\')
            abort();
}

static void fuzz_clamd(const char *answer, size_t length)
{
    char name[CLAMD_NAME_MAX], again[CLAMD_NAME_MAX];
    int result = clamd_answer_parse(answer, length, name, sizeof name);
    if (result < 0 || result >= CLAMD_RESULT_COUNT)
        abort();
    check_clean(name, sizeof name);
    if (clamd_answer_parse(answer, length, again, sizeof again) != result ||
        strcmp(name, again) != 0)
        abort();
}

static void fuzz_spamd(const char *answer, size_t length)
{
    struct spamd_result r;
    char error[SPAMD_ERROR_MAX], status[SPAMD_TESTS_MAX + 256];
    if (spamd_answer_parse(answer, length, &r, error, sizeof error) != 0) {
        check_clean(error, sizeof error);
        return;
    }
    if (!(r.score > -1e6 && r.score < 1e6) || !(r.required > -1e6 && r.required < 1e6))
        abort();
    for (const char *p = r.tests; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == ','))
            abort();
    spamd_status(&r, status, sizeof status);
    if (strnlen(status, sizeof status) == sizeof status)
        abort();
}

static void fuzz_p0f(const char *answer, size_t length)
{
    struct p0f_facts f;
    int result = p0f_answer_parse((const unsigned char *)answer, length, &f);
    if (result < 0 || result >= P0F_RESULT_COUNT || f.distance < -1 || f.distance > 255)
        abort();
    check_clean(f.os_name, sizeof f.os_name);
    check_clean(f.os_flavor, sizeof f.os_flavor);
    check_clean(f.link, sizeof f.link);
    if (p0f_denied(",,", &f) || (result == P0F_MATCH && f.os_name[0] != '\0' &&
                                 !p0f_denied(",x,Y,", &f) != !(strcasecmp(f.os_name, "x") == 0 ||
                                                                strcasecmp(f.os_name, "y") == 0)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static void (*const parsers[])(const char *, size_t) = {fuzz_clamd, fuzz_spamd, fuzz_p0f};
    if (size == 0)
        return 0;
    size_t length = size - 1;
    char *answer = malloc(length + 1);
    if (answer == NULL)
        abort();
    memcpy(answer, data + 1, length);
    answer[length] = '\0';
    parsers[data[0] % (sizeof parsers / sizeof parsers[0])](answer, length);
    free(answer);
    return 0;
}
