/*
 * fuzz_policy_parse.c - libFuzzer target for gateway/policy_parse.c.
 *
 * Interface: LLVMFuzzerTestOneInput. The input is what a policy client sends: it is cut into
 * lines at LF as the listener does, each line copied to a heap block of its exact size (so
 * ASan sees a read past it) and fed to policy_request_line; a complete request is read back
 * (protocol_state parsed, every attribute looked up, the answer for a refusal formatted with
 * its sender as the text) and cleared; -1 ends the input as the listener closes. Every answer
 * must be exactly one "action=" line and an empty line. Fatal: a bad answer aborts.
 * Memory: everything is freed.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "memory.h"
#include "policy_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_answer(char *answer)
{
    size_t length = strlen(answer);
    if (strncmp(answer, "action=", 7) != 0 || length < 9 || answer[length - 1] != '\n' ||
        answer[length - 2] != '\n' || strchr(answer, '\n') != answer + length - 2)
        abort();
    free(answer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct policy_request request = {0};
    size_t offset = 0;
    while (offset < size) {
        const uint8_t *end = memchr(data + offset, '\n', size - offset);
        size_t length = end ? (size_t)(end - (data + offset)) : size - offset;
        char *line = xmalloc(length ? length : 1);
        memcpy(line, data + offset, length);
        int got = policy_request_line(&request, line, length, NULL);
        free(line);
        offset += length + 1;
        if (got < 0)
            break;
        if (got == 1) {
            enum policy_state state = policy_state_parse(policy_request_get(&request, "protocol_state"));
            for (size_t i = 0; i < request.count; i++)
                if (policy_request_get(&request, request.names[i]) == NULL)
                    abort();
            const char *sender = policy_request_get(&request, "sender");
            check_answer(policy_answer_format(NULL, 400 + (int)state * 30, "5.7.1", sender));
            check_answer(policy_answer_format("HOLD", 0, NULL, policy_request_get(&request, "x")));
            policy_request_clear(&request);
        }
    }
    policy_request_clear(&request);
    return 0;
}
