/*
 * fuzz_proxy_protocol.c - libFuzzer target for the PROXY protocol header parser
 * (gateway/proxy_protocol.c).
 *
 * Input: the bytes a load balancer (or anybody on a proxy_protocol listener) sends first. The
 * target aborts when:
 *   - two parses of the same bytes disagree (the parser must be pure);
 *   - a complete header claims more bytes than it was given or than PROXY_HEADER_MAX;
 *   - the header alone (without what follows it) does not parse to the same facts;
 *   - INCOMPLETE is answered for PROXY_HEADER_MAX bytes or more (the wait must be bounded);
 *   - an ERROR comes without a reason, or a fact string is not NUL-terminated printable text.
 * Memory: everything is on the stack; nothing is kept between inputs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_printable - a fact field holds printable ASCII up to its NUL */
static void fuzz_printable(const char *field, size_t size)
{
    size_t length = strnlen(field, size);
    if (length == size)
        abort();
    for (size_t i = 0; i < length; i++)
        if ((unsigned char)field[i] < 0x20 || (unsigned char)field[i] > 0x7e)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxy_header first, second;
    const char *error = NULL, *error_again = NULL;
    enum proxy_parse_result r = proxy_header_parse(data, size, &first, &error);
    if (proxy_header_parse(data, size, &second, &error_again) != r ||
        memcmp(&first, &second, sizeof first) != 0 || error != error_again)
        abort();
    if (r == PROXY_PARSE_ERROR) {
        if (error == NULL)
            abort();
        return 0;
    }
    if (r == PROXY_PARSE_INCOMPLETE) {
        if (size >= PROXY_HEADER_MAX)
            abort();
        return 0;
    }
    if (first.length == 0 || first.length > size || first.length > PROXY_HEADER_MAX)
        abort();
    if (first.version != 1 && first.version != 2)
        abort();
    if (proxy_header_parse(data, first.length, &second, &error_again) != PROXY_PARSE_DONE ||
        memcmp(&first, &second, sizeof first) != 0)
        abort();
    fuzz_printable(first.tls_version, sizeof first.tls_version);
    fuzz_printable(first.tls_cipher, sizeof first.tls_cipher);
    fuzz_printable(first.tls_cn, sizeof first.tls_cn);
    fuzz_printable(first.sni, sizeof first.sni);
    fuzz_printable(first.alpn, sizeof first.alpn);
    return 0;
}
